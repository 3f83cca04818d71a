"""The admin API's one error format: `{"message": ...}` for every status."""

from __future__ import annotations

from collections.abc import Mapping

from mockserver.contract.errors import RequestInvalid
from mockserver.errors import ApiError


def error_body(error: ApiError, headers: Mapping[str, str] | None = None) -> dict:
    return {"message": error.message}


def contract_error(error: RequestInvalid) -> ApiError:
    return ApiError(400, error.message)

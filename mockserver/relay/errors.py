"""Relay's error format: `{"message": ...}` for every status, no codes."""

from __future__ import annotations

from collections.abc import Mapping

from mockserver.contract.errors import RequestInvalid
from mockserver.errors import ApiError


def error_body(error: ApiError, headers: Mapping[str, str] | None = None) -> dict:
    return {"message": error.message}


def contract_error(error: RequestInvalid) -> ApiError:
    """A request that breaks the contract is a plain 400 naming the field."""
    return ApiError(400, error.message)

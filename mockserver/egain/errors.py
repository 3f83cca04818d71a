"""eGain's error format: `{"code": "NNN-NNN", "developerMessage": ...}`, one code per cause.

The 400 codes are listed in the spec's `EgainError` description; this table
is the one place a contract rule gets its code.
"""

from __future__ import annotations

from mockserver.contract.errors import RequestInvalid
from mockserver.errors import ApiError

CONTRACT_CODES = {
    "unknown_query": "400-101",
    "body_missing": "400-102",
    "body_malformed": "400-103",
    "body_schema": "400-104",
    "content_type": "400-105",
    "body_forbidden": "400-118",
    "body_too_large": "400-121",
    "prefer": "400-119",
    "session": "400-122",
}
PARAMETER_CODES = {"header": "400-106", "path": "400-116", "query": "400-117"}


def error_body(error: ApiError) -> dict:
    return {"code": error.code or f"{error.status}-101", "developerMessage": error.message}


def contract_error(error: RequestInvalid) -> ApiError:
    code = PARAMETER_CODES[error.location] if error.kind == "parameter" else CONTRACT_CODES[error.kind]
    return ApiError(400, error.message, code)

"""eGain's error format: `{"code": "NNN-NNN", "developerMessage": ..., "details"?, "userMessage"?}`.

Codes eGain publishes keep eGain's meaning (400-101, 400-102, 400-108,
401-101, 401-104, 403-178, 403-197, 404-101, 406-100, 500-100); the mock's
own causes use numbers eGain has not published. The spec's `EgainError`
description lists them all; this table is the one place a contract rule
gets its code.
"""

from __future__ import annotations

from collections.abc import Mapping

from mockserver.contract.errors import RequestInvalid
from mockserver.errors import ApiError

CONTRACT_CODES = {
    "unknown_query": "400-101",
    "body_malformed": "400-103",
    "body_schema": "400-104",
    "body_forbidden": "400-118",
    "prefer": "400-119",
    "body_too_large": "400-121",
    "session": "400-122",
    "body_missing": "400-123",
    "content_type": "400-124",
}
# The code of a cause that has none of its own, by status: eGain's 500-100; 404-102 is a path no operation has
# (eGain's 404-101 names ids not found).
STATUS_CODES = {404: "404-102", 500: "500-100"}
# What `X-egain-error-message: yes` adds: a message fit to show an end user, per status.
USER_MESSAGES = {
    400: "The request could not be completed because some of the information sent is not valid.",
    401: "Your session has expired. Please sign in again.",
    403: "You are not allowed to perform this action.",
    404: "What you are looking for was not found.",
    405: "This action is not available here.",
    406: "The requested language or format is not available.",
    408: "The request took too long to arrive. Please try again.",
    500: "Something went wrong. Please try again later or contact your administrator.",
    503: "The service is busy. Please try again in a moment.",
}
ACCEPT_LANGUAGE_INVALID = "Invalid 'Accept-Language' header value provided."


def error_body(error: ApiError, headers: Mapping[str, str] | None = None) -> dict:
    """The error as eGain words it; `headers` are the request's, for `X-egain-error-message: yes`."""
    body: dict = {"code": error.code or STATUS_CODES.get(error.status, f"{error.status}-101"), "developerMessage": error.message}
    if error.details:
        body["details"] = [{"key": key, "value": value} for key, value in error.details]
    if headers is not None and headers.get("x-egain-error-message", "").strip().lower() == "yes":
        body["userMessage"] = USER_MESSAGES.get(error.status, USER_MESSAGES[500])
    return body


def contract_error(error: RequestInvalid) -> ApiError:
    if error.kind != "parameter":
        return ApiError(400, error.message, CONTRACT_CODES[error.kind])
    details, problem = [(error.location, error.name)], error.problem
    if error.location == "header" and error.name.lower() == "accept-language":
        return ApiError(406, ACCEPT_LANGUAGE_INVALID, "406-100", details=details)
    if error.location == "path":
        return ApiError(400, f"Invalid path parameter value for '{error.name}': {problem}", "400-108", details=details)
    if error.location == "query":
        return ApiError(400, f"Unsupported value for query parameter '{error.name}': {problem}", "400-102", details=details)
    return ApiError(400, error.message, "400-104", details=details)

"""The one place that decides how answers look on the wire.

Every error, whether raised by the domain (ApiError) or by the contract stage
(RequestInvalid), becomes the documented error body of its API family here:
Relay `{"message": ...}`, eGain `{"code": "NNN-NNN", "developerMessage": ...}`,
in JSON or XML as negotiated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mockserver.contract import xmlcodec
from mockserver.contract.compiled import JSON, XML, Operation
from mockserver.contract.errors import RequestInvalid
from mockserver.errors import ApiError

# eGain's 400 code for each contract rule (listed in the spec's EgainError description).
EGAIN_CONTRACT_CODES = {
    "unknown_query": "400-101",
    "body_missing": "400-102",
    "body_malformed": "400-103",
    "body_schema": "400-104",
    "content_type": "400-105",
    "body_forbidden": "400-118",
    "body_too_large": "400-121",
    "prefer": "400-119",
}
EGAIN_PARAMETER_CODES = {"header": "400-106", "path": "400-116", "query": "400-117"}


@dataclass(frozen=True)
class WireResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def contract_error(family: str, error: RequestInvalid) -> ApiError:
    """The documented 400 for a request that breaks the contract."""
    if family != "egain":
        return ApiError(400, error.message)
    code = EGAIN_PARAMETER_CODES[error.location] if error.kind == "parameter" else EGAIN_CONTRACT_CODES[error.kind]
    return ApiError(400, error.message, code)


def error_payload(family: str | None, error: ApiError) -> dict:
    if family == "egain":
        return {"code": error.code or f"{error.status}-101", "developerMessage": error.message}
    return {"message": error.message}


def serialize(operation: Operation | None, status: int, payload: Any, mimetype: str) -> bytes:
    if payload is None:
        return b""
    if mimetype == XML and operation is not None:
        return xmlcodec.encode(payload, operation.response_schema(status, XML))
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def wire(operation: Operation | None, status: int, payload: Any, mimetype: str, headers: dict[str, str] | None = None) -> WireResponse:
    body = serialize(operation, status, payload, mimetype)
    fields = list((headers or {}).items())
    if payload is not None:
        fields.append(("Content-Type", mimetype if mimetype in (JSON, XML) else JSON))
    return WireResponse(status, fields, body)

"""How answers look on the wire: a status, headers and bytes, in JSON or XML as negotiated.

What an error body holds is each family's own business (`relay/errors.py`,
`egain/errors.py`); this module only serializes what the exchange hands it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from mockserver.contract import xmlcodec
from mockserver.contract.compiled import JSON, XML, Operation
from mockserver.errors import ApiError

ABANDONED = "abandoned"  # the client left before its request was whole, or while it waited: nothing is sent
NOT_ANSWERED = ("connection_reset", "empty_response", ABANDONED)  # faults after which the journal has no status


@dataclass(frozen=True)
class WireResponse:
    """An answer ready for the wire, with what the journal records of it."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    operation_id: str | None = None
    violations: tuple[str, ...] = ()  # how the request broke the contract
    rule: str | None = None  # the fault rule that acted on it
    fault: str | None = None  # the wire fault to perform instead of a clean answer
    content_length: int | None = None  # when not len(body): a HEAD answer announces its GET's length

    def headed(self) -> WireResponse:
        """The answer to a HEAD: the GET's status and headers, no body."""
        return replace(self, body=b"", content_length=len(self.body))

    @property
    def length(self) -> int:
        return len(self.body) if self.content_length is None else self.content_length


def generic_error_body(error: ApiError) -> dict:
    """The error body outside every API family (admin, unknown prefixes): `{"message": ...}`."""
    return {"message": error.message}


def serialize(operation: Operation | None, status: int, payload: Any, mimetype: str) -> bytes:
    if payload is None:
        return b""
    if mimetype == XML and operation is not None:
        return xmlcodec.encode(payload, operation.response_schema(status, XML))
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def wire(
    operation: Operation | None,
    status: int,
    payload: Any,
    mimetype: str,
    headers: dict[str, str] | None = None,
    violations: tuple[str, ...] = (),
) -> WireResponse:
    """The answer on the wire, with what the journal records of it (the operation it answered, the request's violations)."""
    body = serialize(operation, status, payload, mimetype)
    fields = list((headers or {}).items())
    if payload is not None:
        fields.append(("Content-Type", mimetype if mimetype in (JSON, XML) else JSON))
    return WireResponse(status, fields, body, operation.operation_id if operation else None, violations)

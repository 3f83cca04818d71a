"""The request pipeline: one direction, one stage after another.

    route -> negotiate -> authenticate -> Prefer -> validate -> handler -> render -> self-check

Every stage raises what it finds wrong; the error becomes the documented
answer of the operation's API family in exactly one place (`render`). The
self-check compares each answer with the spec before it leaves: a mismatch is
the mock's own bug, logged and answered with the documented 500 (or raised,
in strict mode, so a test fails).
"""

from __future__ import annotations

import logging

from mockserver.contract.compiled import JSON, Contract, Operation, RawRequest
from mockserver.contract.errors import MethodNotAllowed, RequestInvalid, ResponseInvalid, RouteNotFound
from mockserver.errors import ApiError
from mockserver.family import Call, Family, Reply
from mockserver.http import render
from mockserver.http.prefer import PreferInvalid, requested_status
from mockserver.state.model import Config
from mockserver.state.store import Store

log = logging.getLogger("mockserver")


class Pipeline:
    def __init__(
        self, contract: Contract, config: Config, store: Store, families: dict[str, Family], check_responses: bool = True, strict: bool = False
    ):
        self.contract = contract
        self.config = config
        self.store = store
        self.families = families
        self.check_responses = check_responses
        self.strict = strict
        for op in contract.operations.values():
            family = families.get(op.family)
            if family is None or op.operation_id not in family.handlers:
                raise LookupError(f"no handler for operationId {op.operation_id} (family {op.family})")

    def handle(self, raw: RawRequest) -> render.WireResponse:
        try:
            operation, path_values = self.contract.match(raw.method, raw.path)
        except RouteNotFound:
            return self._unrouted(raw, ApiError(404, f"No route matches {_shown(raw.method)} {_shown(raw.path)}."), {})
        except MethodNotAllowed as exc:
            error = ApiError(405, f"Method {_shown(raw.method)} is not allowed on {_shown(raw.path)}; allowed: {', '.join(exc.allowed)}.")
            return self._unrouted(raw, error, {"Allow": ", ".join(exc.allowed)})
        family = self.families[operation.family]
        mimetype = family.negotiate(raw)
        try:
            reply = self._answer(operation, family, raw, path_values, mimetype)
        except ApiError as error:
            reply = Reply(error.status, family.error_body(error))
        return self._render(operation, family, reply, mimetype or JSON)

    def _answer(self, operation: Operation, family: Family, raw: RawRequest, path_values: dict[str, str], mimetype: str | None) -> Reply:
        family.authenticate(self.config, operation, raw, path_values)
        if mimetype is None:
            accept = _shown(raw.headers.get("accept", ""))
            raise ApiError(406, f"Accept '{accept}' is not supported; use application/json or application/xml.")
        forced = self._forced_status(operation, family, raw)
        if forced is not None:
            return Reply(forced, operation.example(forced, mimetype))
        try:
            request = operation.validate(raw, path_values)
        except RequestInvalid as exc:
            raise family.contract_error(exc) from exc
        return family.handlers[operation.operation_id](Call(request, self.store))

    def _forced_status(self, operation: Operation, family: Family, raw: RawRequest) -> int | None:
        try:
            status = requested_status(raw.headers.get("prefer"))
        except PreferInvalid as exc:
            raise family.contract_error(RequestInvalid("prefer", str(exc), "header", "Prefer")) from exc
        if status is not None and not operation.documents(status):
            documented = ", ".join(operation.responses)
            message = f"Prefer: code={status} is not documented for {operation.operation_id}; documented: {documented}."
            raise family.contract_error(RequestInvalid("prefer", message, "header", "Prefer"))
        return status

    def _render(self, operation: Operation, family: Family, reply: Reply, negotiated: str) -> render.WireResponse:
        mimetype = operation.media_type_for(reply.status, negotiated)
        if self.check_responses:
            try:
                operation.check_response(reply.status, mimetype if reply.payload is not None else None, reply.payload)
            except ResponseInvalid as exc:
                if self.strict:
                    raise
                log.error("contract violation by the mock itself: %s", exc)
                error = ApiError(500, f"The mock produced a response its contract does not document: {exc}.")
                reply = Reply(500, family.error_body(error))
                mimetype = operation.media_type_for(500, negotiated)
        return render.wire(operation, reply.status, reply.payload, mimetype)

    def _unrouted(self, raw: RawRequest, error: ApiError, headers: dict[str, str]) -> render.WireResponse:
        """404/405 outside every operation: no spec entry to check against, JSON in the family's format."""
        return render.wire(None, error.status, self.error_body_for_path(raw.path, error), JSON, headers)

    def error_body_for_path(self, path: str, error: ApiError) -> dict:
        """The error format of the family whose prefix `path` starts with, or the generic one."""
        family = self.families.get(self.contract.family_of_path(path) or "")
        return family.error_body(error) if family else render.generic_error_body(error)


def _shown(text: str, limit: int = 120) -> str:
    """A client's value as echoed in an error message: never a huge one whole."""
    return text if len(text) <= limit else text[:limit] + "…"

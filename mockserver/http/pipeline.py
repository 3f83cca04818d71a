"""The request pipeline: one direction, one stage after another.

    route -> negotiate -> authenticate -> Prefer -> (wait) -> validate -> handler -> render -> self-check

Every stage raises what it finds wrong; the error becomes the documented
answer of the operation's API family in exactly one place (`render`). The
self-check compares each answer with the spec before it leaves: a mismatch is
the mock's own bug, logged and answered with the documented 500 (or raised,
in strict mode, so a test fails).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from mockserver.contract.compiled import JSON, Contract, Operation, RawRequest
from mockserver.contract.errors import MethodNotAllowed, RequestInvalid, ResponseInvalid, RouteNotFound
from mockserver.errors import UNEXPECTED, ApiError
from mockserver.family import Call, Family, Reply
from mockserver.http import render
from mockserver.http.prefer import Preferences, PreferInvalid, parse_prefer
from mockserver.state.model import Config
from mockserver.state.store import Store

log = logging.getLogger("mockserver")


@dataclass(frozen=True)
class Pending:
    """A request routed, authenticated, negotiated and with its `Prefer` read: left are its wait and its handler."""

    operation: Operation
    family: Family
    raw: RawRequest
    path_values: dict[str, str]
    mimetype: str
    forced: int | None  # Prefer: code=
    delay_s: float  # Prefer: delay=


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
        """The whole pipeline at once, with no wait (in-process callers and tests)."""
        step = self.prepare(raw)
        return step if isinstance(step, render.WireResponse) else self.finish(step)

    def prepare(self, raw: RawRequest) -> render.WireResponse | Pending:
        """Every check that needs no state: the final answer when one fails, else what is left to do.

        The server awaits `Pending.delay_s` between `prepare` and `finish`, so a
        delayed request holds no lock and, on the event loop, no thread.
        """
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
            family.authenticate(self.config, operation, raw, path_values)
            if mimetype is None:
                accept = _shown(raw.headers.get("accept", ""))
                raise ApiError(406, f"Accept '{accept}' is not supported; use application/json or application/xml.")
            preferences = self._preferences(operation, family, raw)
        except ApiError as error:
            return self._render(operation, family, Reply(error.status, family.error_body(error)), mimetype or JSON)
        return Pending(operation, family, raw, path_values, mimetype, preferences.code, preferences.delay_ms / 1000)

    def finish(self, pending: Pending) -> render.WireResponse:
        """Validate and run the handler (or answer the forced status), render and self-check."""
        operation, family = pending.operation, pending.family
        try:
            reply = self._answer(pending)
        except ApiError as error:
            reply = Reply(error.status, family.error_body(error))
        return self._render(operation, family, reply, pending.mimetype)

    def refuse(self, pending: Pending, error: ApiError) -> render.WireResponse:
        """Answer a pending request with a documented error instead of running it (nothing changes)."""
        return self._render(pending.operation, pending.family, Reply(error.status, pending.family.error_body(error)), pending.mimetype)

    def _answer(self, pending: Pending) -> Reply:
        operation, family = pending.operation, pending.family
        if pending.forced is not None:
            return Reply(pending.forced, operation.example(pending.forced, pending.mimetype))
        try:
            request = operation.validate(pending.raw, pending.path_values)
        except RequestInvalid as exc:
            raise family.contract_error(exc) from exc
        return family.handlers[operation.operation_id](Call(request, self.store))

    def _preferences(self, operation: Operation, family: Family, raw: RawRequest) -> Preferences:
        try:
            preferences = parse_prefer(raw.headers.get("prefer"))
        except PreferInvalid as exc:
            raise family.contract_error(RequestInvalid("prefer", str(exc), "header", "Prefer")) from exc
        status = preferences.code
        if status is not None and not operation.documents(status):
            documented = ", ".join(operation.responses)
            message = f"Prefer: code={status} is not documented for {operation.operation_id}; documented: {documented}."
            raise family.contract_error(RequestInvalid("prefer", message, "header", "Prefer"))
        return preferences

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

    def transport_error(self, method: str, path: str, error: ApiError, headers: dict[str, str]) -> render.WireResponse:
        """An answer of the HTTP layer itself (a body that never came): documented by the operation, if one matches."""
        try:
            operation, _ = self.contract.match(method, path)
        except (RouteNotFound, MethodNotAllowed):
            return render.wire(None, error.status, self.error_body_for_path(path, error), JSON, headers)
        family = self.families[operation.family]
        answer = self._render(operation, family, Reply(error.status, family.error_body(error)), JSON)
        return render.WireResponse(answer.status, [*answer.headers, *headers.items()], answer.body)

    def unexpected(self, raw: RawRequest) -> render.WireResponse:
        """The documented 500 for a bug of the mock's own (logged by the caller), in the family's format."""
        return render.wire(None, 500, self.error_body_for_path(raw.path, ApiError(500, UNEXPECTED)), JSON)

    def error_body_for_path(self, path: str, error: ApiError) -> dict:
        """The error format of the family whose prefix `path` starts with, or the generic one."""
        family = self.families.get(self.contract.family_of_path(path) or "")
        return family.error_body(error) if family else render.generic_error_body(error)


def _shown(text: str, limit: int = 120) -> str:
    """A client's value as echoed in an error message: never a huge one whole."""
    return text if len(text) <= limit else text[:limit] + "…"

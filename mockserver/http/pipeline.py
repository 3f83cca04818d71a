"""The request pipeline: one direction, one stage after another.

    route -> fault rules -> negotiate -> authenticate -> Prefer -> (wait) -> validate -> handler -> render -> self-check

Every stage raises what it finds wrong; the error becomes the documented
answer of the operation's API family in exactly one place (`render`). The
self-check compares each answer with the spec before it leaves: a mismatch is
the mock's own bug, logged and answered with the documented 500 (or raised,
in strict mode, so a test fails).

The pipeline never waits: `prepare` does every check that needs no state and
says how long to wait (`Pending.delay_s`); the server awaits that (on its
event loop, or in a thread under waitress), then calls `finish`. A long poll
comes back from `finish` as `Waiting`, resolved by the server the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from mockserver.contract.compiled import JSON, Contract, Operation, RawRequest
from mockserver.contract.errors import MethodNotAllowed, RequestInvalid, ResponseInvalid, RouteNotFound
from mockserver.errors import UNEXPECTED, ApiError
from mockserver.family import Call, Family, Reply, Wait
from mockserver.http import render
from mockserver.http.prefer import Preferences, PreferInvalid, parse_prefer
from mockserver.qa.faults import FaultRules
from mockserver.qa.sessions import Session
from mockserver.state.model import Config

log = logging.getLogger("mockserver")


@dataclass(frozen=True)
class Pending:
    """A request routed, authenticated, negotiated and with its `Prefer` read: left are its wait and its handler."""

    operation: Operation
    family: Family
    raw: RawRequest
    path_values: dict[str, str]
    mimetype: str
    forced: int | None  # Prefer: code=, or a fault rule's status
    delay_s: float  # Prefer: delay=, or a fault rule's delay
    rule: str | None = None  # the id of the fault rule acting on it
    fault: str | None = None  # the wire fault that rule asks for
    example: str | None = None  # Prefer: example=, the named example of the forced status


@dataclass(frozen=True)
class Waiting:
    """A long poll: resolve `wait`, then `Pipeline.render_reply` what it gives."""

    pending: Pending
    wait: Wait


class Pipeline:
    def __init__(self, contract: Contract, config: Config, families: dict[str, Family], check_responses: bool = True, strict: bool = False):
        self.contract = contract
        self.config = config
        self.families = families
        self.check_responses = check_responses
        self.strict = strict
        for op in contract.operations.values():
            family = families.get(op.family)
            if family is None or op.operation_id not in family.handlers:
                raise LookupError(f"no handler for operationId {op.operation_id} (family {op.family})")

    def handle(self, raw: RawRequest, session: Session) -> render.WireResponse:
        """The whole pipeline at once, with no wait (in-process callers and tests)."""
        step = self.prepare(raw, session.faults)
        if isinstance(step, render.WireResponse):
            return step
        done = self.finish(step, session)
        return done if isinstance(done, render.WireResponse) else self.render_reply(done.pending, done.wait.expired())

    def prepare(self, raw: RawRequest, faults: FaultRules | None) -> render.WireResponse | Pending:
        """Every check that needs no state: the final answer when one fails, else what is left to do.

        `faults` are the rules of the request's session (None when it has none yet). A rule that answers
        (a status or a wire fault) acts before authentication; a delay-only rule counts only requests
        that pass every check, so `times` is spent on requests it really delayed.
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
        rules = faults if family.controlled else None
        try:  # rules kept in Redis (`--store redis://`) may answer the documented 503
            action = rules.match(operation, raw, answering=True) if rules is not None else None
        except ApiError as error:
            return self._render(raw, operation, family, _error_reply(family, error, raw), mimetype or JSON)
        if action is not None:  # the rule answers for the request, before authentication; the request is not run
            return Pending(
                operation, family, raw, path_values, mimetype or JSON, action.status, action.delay_s, action.rule_id, action.fault
            )
        try:
            family.authenticate(self.config, operation, raw, path_values)
            if mimetype is None:
                accept = _shown(raw.headers.get("accept", ""))
                unacceptable = ApiError(406, f"Accept '{accept}' is not supported; use application/json or application/xml.")
                unacceptable.violation = unacceptable.message
                raise unacceptable
            preferences = self._preferences(operation, family, raw) if family.controlled else Preferences()
            action = rules.match(operation, raw, answering=False) if rules is not None else None
        except ApiError as error:
            return self._render(raw, operation, family, _error_reply(family, error, raw), mimetype or JSON, violation=error.violation)
        delay_s = preferences.delay_ms / 1000 + (action.delay_s if action else 0.0)
        rule = action.rule_id if action else None
        return Pending(operation, family, raw, path_values, mimetype, preferences.code, delay_s, rule, None, preferences.example)

    def finish(self, pending: Pending, session: Session) -> render.WireResponse | Waiting:
        """Validate and run the handler in `session` (or answer the forced status), render and self-check."""
        try:
            reply = self._answer(pending, session)
        except ApiError as error:
            return self.render_reply(pending, _error_reply(pending.family, error, pending.raw), error.violation)
        if reply.wait is not None:
            return Waiting(pending, reply.wait)
        return self.render_reply(pending, reply)

    def render_reply(self, pending: Pending, reply: Reply, violation: str | None = None) -> render.WireResponse:
        answer = self._render(pending.raw, pending.operation, pending.family, reply, pending.mimetype, violation)
        if pending.rule is None:
            return answer
        return replace(answer, rule=pending.rule)

    def refuse(self, pending: Pending, error: ApiError) -> render.WireResponse:
        """Answer a pending request with a documented error instead of running it (nothing changes)."""
        return self.render_reply(pending, _error_reply(pending.family, error, pending.raw))

    def malformed(self, pending: Pending) -> render.WireResponse:
        """A documented status and headers with a body cut in half: what a `malformed_body` fault sends."""
        operation = pending.operation
        status = pending.forced or next(int(s) for s in operation.responses if operation.responses[s])
        example = Reply(status, operation.example(status, pending.mimetype))
        answer = self._render(pending.raw, operation, pending.family, example, pending.mimetype)
        body = answer.body[: max(1, len(answer.body) // 2)] if answer.body else b"{"
        return replace(answer, body=body, violations=(), rule=pending.rule, fault="malformed_body")

    def _answer(self, pending: Pending, session: Session) -> Reply:
        operation, family = pending.operation, pending.family
        if pending.forced is not None:
            return Reply(pending.forced, operation.example(pending.forced, pending.mimetype, pending.example))
        try:
            request = operation.validate(pending.raw, pending.path_values)
        except RequestInvalid as exc:
            raise _breach(family, exc) from exc
        return family.handlers[operation.operation_id](Call(request, session))

    def _preferences(self, operation: Operation, family: Family, raw: RawRequest) -> Preferences:
        try:
            preferences = parse_prefer(raw.headers.get("prefer"))
        except PreferInvalid as exc:
            raise _breach(family, RequestInvalid("prefer", str(exc), "header", "Prefer")) from exc
        status = preferences.code
        if status is not None and not operation.documents(status):
            documented = ", ".join(operation.responses)
            message = f"Prefer: code={status} is not documented for {operation.operation_id}; documented: {documented}."
            raise _breach(family, RequestInvalid("prefer", message, "header", "Prefer"))
        if preferences.example is not None:
            status = self._status_of_example(operation, family, status, preferences.example)
        return replace(preferences, code=status)

    def _status_of_example(self, operation: Operation, family: Family, status: int | None, name: str) -> int:
        """The status whose documented examples include `name` (the one asked for with `code=`, else the only one)."""
        statuses = [status] if status is not None else [int(s) for s in operation.responses]
        having = [s for s in statuses if name in operation.example_names(s)]
        if not having:
            known = "; ".join(f"{s}: {', '.join(operation.example_names(s))}" for s in statuses if operation.example_names(s))
            message = (
                f"Prefer: example={name} is not documented for {operation.operation_id}{f' {status}' if status else ''}; examples: {known}."
            )
            raise _breach(family, RequestInvalid("prefer", message, "header", "Prefer"))
        return having[0]

    def _render(
        self, raw: RawRequest, operation: Operation, family: Family, reply: Reply, negotiated: str, violation: str | None = None
    ) -> render.WireResponse:
        """The reply to `raw` on the wire. Unless --no-check-responses, a reply its contract does not document becomes
        the 500 of a mock bug, in the family's error format as that request asks for it (eGain's userMessage)."""
        mimetype = operation.media_type_for(reply.status, negotiated)
        if self.check_responses:
            try:
                operation.check_response(reply.status, mimetype if reply.payload is not None else None, reply.payload)
            except ResponseInvalid as exc:
                if self.strict:
                    raise
                log.error("contract violation by the mock itself: %s", exc)
                error = ApiError(500, f"The mock produced a response its contract does not document: {exc}.")
                reply = _error_reply(family, error, raw)
                mimetype = operation.media_type_for(500, negotiated)
        return render.wire(operation, reply.status, reply.payload, mimetype, reply.headers, (violation,) if violation else ())

    def _unrouted(self, raw: RawRequest, error: ApiError, headers: dict[str, str]) -> render.WireResponse:
        """404/405 outside every operation: no spec entry to check against, JSON in the family's format."""
        return render.wire(None, error.status, self.error_body_for_path(raw.path, error, raw.headers), JSON, headers, (error.message,))

    def layer_answer(
        self, raw: RawRequest, make_error: Callable[[Family | None], ApiError], headers: dict[str, str]
    ) -> render.WireResponse:
        """An answer of the HTTP layer itself (a body that never came, a refused session), in the format and with the
        documentation of the operation `raw` routes to, else generic; `make_error(family)` makes the error."""
        try:
            operation, _ = self.contract.match(raw.method, raw.path)
        except (RouteNotFound, MethodNotAllowed):
            error = make_error(None)
            violations = (error.violation,) if error.violation else ()
            return render.wire(None, error.status, self.error_body_for_path(raw.path, error, raw.headers), JSON, headers, violations)
        family = self.families[operation.family]
        error = make_error(family)
        reply = _error_reply(family, error, raw)
        reply.headers.update(headers)
        return self._render(raw, operation, family, reply, JSON, error.violation)

    def refuse_as_contract(self, raw: RawRequest, invalid: RequestInvalid) -> render.WireResponse:
        """The operation's documented 400 for a contract rule broken before the pipeline runs (a bad session id)."""

        def breach(family: Family | None) -> ApiError:
            if family is not None:
                return _breach(family, invalid)
            error = ApiError(400, invalid.message)
            error.violation = invalid.message
            return error

        return self.layer_answer(raw, breach, {})

    def unexpected(self, raw: RawRequest) -> render.WireResponse:
        """The documented 500 for a bug of the mock's own (logged by the caller), in the family's format."""
        return render.wire(None, 500, self.error_body_for_path(raw.path, ApiError(500, UNEXPECTED), raw.headers), JSON)

    def error_body_for_path(self, path: str, error: ApiError, request_headers: Mapping[str, str] | None = None) -> dict:
        """The error format of the family whose prefix `path` starts with, or the generic one."""
        family = self.families.get(self.contract.family_of_path(path) or "")
        return family.error_body(error, request_headers) if family else render.generic_error_body(error)


def _error_reply(family: Family, error: ApiError, raw: RawRequest) -> Reply:
    return Reply(error.status, family.error_body(error, raw.headers), dict(error.headers))


def _breach(family: Family, invalid: RequestInvalid) -> ApiError:
    """The family's documented 400 for a broken contract rule, remembering the rule for the journal."""
    error = family.contract_error(invalid)
    error.violation = invalid.message
    return error


def _shown(text: str, limit: int = 120) -> str:
    """A client's value as echoed in an error message: never a huge one whole."""
    return text if len(text) <= limit else text[:limit] + "…"

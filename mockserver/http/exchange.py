"""One request's exchange, stage after stage, written once for both servers.

    session -> body -> route -> fault rules -> negotiation -> authentication -> Prefer -> delay
      -> validation -> handler (-> long poll) -> self-check -> durability -> journal

Each stage reads and fills the request's `Context` and raises what it finds wrong: an `ApiError`, or a
`RequestInvalid` for a broken contract rule, a `StoreUnavailable`. Each becomes the documented answer of the operation's
family in one place (`Exchange._error_reply`); the mock's own failures (an answer its spec does not document, a
bug) become the documented 500 in `_wire` and `_unexpected`. The self-check compares each answer with the spec
before it leaves: a mismatch is the mock's own bug, logged and answered with the documented 500 (raised,
in strict mode, so a test fails).

The adapters do I/O only, through `Io`: the ASGI adapter (asgi.py) awaits the exchange on its event loop;
the WSGI adapter (wsgi.py) drives the same coroutine in the request's thread, where every wait blocks and
nothing ever suspends (`io.run_to_end`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from mockserver.contract.compiled import JSON, Contract, Operation, RawRequest
from mockserver.contract.errors import MethodNotAllowed, RequestInvalid, ResponseInvalid, RouteNotFound
from mockserver.credentials import Secrets
from mockserver.errors import UNEXPECTED, ApiError, StoreUnavailable
from mockserver.families import credentials
from mockserver.family import Call, Family, Reply, Wait
from mockserver.http import render
from mockserver.http.access import log_access
from mockserver.http.cors import CorsPolicy
from mockserver.http.io import BodyTimeout, ClientGone, Io
from mockserver.http.pages import Pages
from mockserver.http.prefer import PreferInvalid, parse_prefer
from mockserver.http.render import ABANDONED, NOT_ANSWERED, WireResponse
from mockserver.qa.journal import BODY_LIMIT, Entry
from mockserver.qa.sessions import SESSION_HEADER, Session, SessionRefused, Visit
from mockserver.settings import Settings
from mockserver.state.model import Config

log = logging.getLogger("mockserver")
ADMIN_PREFIX = "/__admin/"
# What one journal entry keeps of the path and query at most (headers: credentials.HEADERS_KEPT, body: BODY_LIMIT),
# so that --journal-size x --max-sessions bounds the memory: about 20 KiB an entry in the worst case.
TEXT_LIMIT = 2048
CONNECTION_FAULTS = ("connection_reset", "empty_response")  # nothing is sent: the adapter breaks the connection


@dataclass
class Context:
    """What the stages know of one request so far."""

    raw: RawRequest  # as it came (a HEAD is journaled as a HEAD)
    query: str
    received: float  # seconds since the epoch
    started: float  # perf_counter
    request: RawRequest | None = None  # as it is routed and run: a HEAD as the GET it asks the headers of
    visit: Visit | None = None
    session: Session | None = None
    operation: Operation | None = None
    family: Family | None = None
    path_values: dict[str, str] = field(default_factory=dict)
    mimetype: str = JSON  # negotiated (JSON until then, and when nothing the client accepts is offered)
    forced: int | None = None  # the status a fault rule or `Prefer: code=` answers with, instead of running
    example: str | None = None  # Prefer: example=, the named example of the forced status
    delay_s: float = 0.0
    rule: str | None = None  # the id of the fault rule acting on the request
    fault: str | None = None  # the wire fault to perform instead of a clean answer
    violation: str | None = None  # how the request broke its contract (the journal keeps it)
    syncs: list = field(default_factory=list)  # the changes to make durable before answering
    cut: bool = False  # a `malformed_body` fault's answer: its body cut in half


class Exchange:
    def __init__(self, contract: Contract, config: Config, families: dict[str, Family], sessions: Any, settings: Settings):
        self.contract = contract
        self.config = config  # swapped by `serve --reload`
        self.families = families
        self.sessions = sessions
        self.settings = settings
        self.secrets = Secrets(credentials(list(families.values())))
        self.cors = CorsPolicy.from_option(settings.cors, settings.cors_origins, tuple(self.secrets.headers))
        self.pages = Pages(settings, {k: v for family in families.values() for k, v in family.demo_schemes.items()})
        for op in contract.operations.values():
            family = families.get(op.family)
            if family is None or op.operation_id not in family.handlers:
                raise LookupError(f"no handler for operationId {op.operation_id} (family {op.family})")

    async def answer(self, raw: RawRequest, query: str, io: Io, received: float, started: float) -> WireResponse:
        """The answer to `raw` as it is to be sent (its CORS headers, no body for a HEAD), journaled first: a
        client that has its answer finds its request. A wire fault comes back unsent, for the adapter to do."""
        own = self._own_answer(raw)
        if own is not None:
            return own
        ctx = Context(raw, query, received, started)
        try:
            answer = await self._answered(ctx, io)
            self._journal(ctx, answer)
        finally:
            if ctx.visit is not None:
                ctx.visit.close()
        if answer.fault in NOT_ANSWERED:
            return answer
        answer = self._with_cors(answer, raw.headers)
        return answer.headed() if raw.method == "HEAD" else answer

    async def _answered(self, ctx: Context, io: Io) -> WireResponse:
        try:
            try:
                reply = await self._stages(ctx, io)
            except (ApiError, RequestInvalid, StoreUnavailable) as error:
                reply = self._error_reply(ctx, error)
            answer = self._wire(ctx, reply)
            if ctx.syncs:  # `--fsync always`: the change is on disk before its answer leaves
                try:
                    await io.settle(ctx.syncs)
                except OSError:
                    log.exception("could not flush the command log: the change is not durable")
                    return self._unexpected(ctx)
            return answer
        except Exception:
            if self.settings.strict_responses:
                raise
            log.exception("unexpected error on %s %s", ctx.raw.method, ctx.raw.path)
            if ctx.syncs:  # what the request changed before the bug is made durable all the same
                try:
                    await io.settle(ctx.syncs)
                except OSError:
                    log.exception("could not flush the command log: the change is not durable")
            return self._unexpected(ctx)

    # ---------------------------------------------------------------- the stages

    async def _stages(self, ctx: Context, io: Io) -> Reply | None:
        """Every stage in order: the reply to render, or None for an answer that is not sent (a wire fault)."""
        try:
            ctx.visit = self.sessions.visit(ctx.raw.headers.get(SESSION_HEADER))
        except SessionRefused as exc:
            raise RequestInvalid("session", str(exc), "header", "X-Mock-Session") from exc
        try:
            ctx.raw = await io.body(ctx.raw)
        except BodyTimeout:
            message = f"The request body did not arrive within {self.settings.body_timeout:g} s; the connection is closed."
            raise ApiError(408, message, headers={"Connection": "close"}) from None
        except ClientGone:  # nothing runs for a request that never arrived whole, and nobody is left to answer
            ctx.fault = ABANDONED
            return None
        self._route(ctx)
        family, operation, request = ctx.family, ctx.operation, ctx.request
        assert family is not None and operation is not None and request is not None
        negotiated = family.negotiate(request)
        ctx.mimetype = negotiated or JSON
        faults = ctx.visit.faults if family.controlled else None
        action = faults.match(operation, request, answering=True) if faults is not None else None
        if action is not None:  # the rule answers for the request, before authentication; the request is not run
            ctx.forced, ctx.delay_s, ctx.rule, ctx.fault = action.status, action.delay_s, action.rule_id, action.fault
        else:
            family.authenticate(self.config.families.get(family.name), operation, request, ctx.path_values)
            if negotiated is None:
                accept = _shown(request.headers.get("accept", ""))
                error = ApiError(406, f"Accept '{accept}' is not supported; use application/json or application/xml.")
                error.violation = error.message
                raise error
            if family.controlled:
                self._prefer(ctx)
            delaying = faults.match(operation, request, answering=False) if faults is not None else None
            if delaying is not None:  # counted only on requests that passed every check: `times` is spent on real delays
                ctx.delay_s += delaying.delay_s
                ctx.rule = delaying.rule_id
        try:
            ctx.session = ctx.visit.enter()
        except SessionRefused as exc:
            raise RequestInvalid("session", str(exc), "header", "X-Mock-Session") from exc
        if ctx.delay_s:
            await self._delay(ctx, io)
        return await self._run(ctx, io)

    def _route(self, ctx: Context) -> None:
        raw = ctx.request = replace(ctx.raw, method="GET") if ctx.raw.method == "HEAD" else ctx.raw
        try:
            ctx.operation, ctx.path_values = self.contract.match(raw.method, raw.path)
        except RouteNotFound:
            raise _unrouted(ApiError(404, f"No route matches {_shown(raw.method)} {_shown(raw.path)}.")) from None
        except MethodNotAllowed as exc:
            allowed = ", ".join(exc.allowed)
            message = f"Method {_shown(raw.method)} is not allowed on {_shown(raw.path)}; allowed: {allowed}."
            raise _unrouted(ApiError(405, message, headers={"Allow": allowed})) from None
        ctx.family = self.families[ctx.operation.family]

    def _prefer(self, ctx: Context) -> None:
        """`Prefer: code=, example=, delay=`: a documented status or example instead of running, and a delay."""
        operation = ctx.operation
        assert operation is not None
        try:
            preferences = parse_prefer(ctx.raw.headers.get("prefer"))  # headers: the same for the request run
        except PreferInvalid as exc:
            raise RequestInvalid("prefer", str(exc), "header", "Prefer") from exc
        status = preferences.code
        if status is not None and not operation.documents(status):
            documented = ", ".join(operation.responses)
            message = f"Prefer: code={status} is not documented for {operation.operation_id}; documented: {documented}."
            raise RequestInvalid("prefer", message, "header", "Prefer")
        if preferences.example is not None:
            status = _status_of_example(operation, status, preferences.example)
        ctx.forced, ctx.example, ctx.delay_s = status, preferences.example, preferences.delay_ms / 1000

    async def _delay(self, ctx: Context, io: Io) -> None:
        """Wait out the delay, within the cap on waits; past it, the documented 500 and nothing run. The request
        runs when the delay ends even if its client left meanwhile, as on a slow real server."""
        if not io.hold():
            raise ApiError(500, f"Too many requests are waiting at once (--max-waits {self.settings.max_waits}); this one was not run.")
        try:
            assert ctx.visit is not None
            ctx.visit.keep_alive(ctx.delay_s)  # a request in flight keeps its session alive, on every store
            await io.sleep(ctx.delay_s)
        finally:
            io.release()

    async def _run(self, ctx: Context, io: Io) -> Reply | None:
        """A wire fault, a forced status, or the request validated and run in its session."""
        operation, family, session = ctx.operation, ctx.family, ctx.session
        assert operation is not None and family is not None and session is not None
        if ctx.fault in CONNECTION_FAULTS:
            return None
        if ctx.fault == "malformed_body":
            status = ctx.forced or next(int(s) for s in operation.responses if operation.responses[s])
            ctx.cut = True
            return Reply(status, operation.example(status, ctx.mimetype))
        if ctx.forced is not None:
            return Reply(ctx.forced, operation.example(ctx.forced, ctx.mimetype, ctx.example))
        assert ctx.request is not None
        request = operation.validate(ctx.request, ctx.path_values)
        reply = family.handlers[operation.operation_id](Call(request, session, ctx.syncs))
        return await self._long_poll(ctx, reply.wait, io) if reply.wait is not None else reply

    async def _long_poll(self, ctx: Context, wait: Wait, io: Io) -> Reply | None:
        """Ask again after each matching journal entry until ready, expired, stopped or abandoned; it holds no lock,
        and no thread on the loop. A shared journal (Redis) that cannot be read ends it with the documented 503."""
        seen = wait.journal.newest_id()
        reply = wait.poll()
        if reply is not None:
            return reply
        if not io.hold():
            raise ApiError(503, f"Too many requests are waiting at once (--max-waits {self.settings.max_waits}); try again later.")
        try:
            assert ctx.visit is not None
            ctx.visit.keep_alive(wait.timeout_s)
            deadline = time.monotonic() + wait.timeout_s
            while reply is None and (left := deadline - time.monotonic()) > 0:
                going_on = await io.changed(wait.journal, wait.wanted, seen, left)
                seen = wait.journal.newest_id()
                reply = wait.poll()
                if not going_on:
                    break
        finally:
            io.release()
        if reply is None and io.client_gone:
            ctx.fault = ABANDONED
            return None
        return reply or wait.expired()

    # ---------------------------------------------------------------- answers

    def _error_reply(self, ctx: Context, error: ApiError | RequestInvalid | StoreUnavailable) -> Reply:
        """The one place an error becomes an answer: the documented error of the family whose operation the
        request routes to (its contract error for a broken rule; the documented 503 for a shared store that
        could not answer), else of the family its path belongs to."""
        if ctx.family is None:  # an error before routing (a session refused, a body that never came): found for its format
            with contextlib.suppress(ApiError):  # no route: the format of the family its path belongs to, below
                self._route(ctx)
        family = ctx.family
        if isinstance(error, StoreUnavailable):
            error = ApiError(503, error.message)
        if isinstance(error, RequestInvalid):
            invalid = error
            error = family.contract_error(invalid) if family is not None else ApiError(400, invalid.message)
            error.violation = invalid.message
        ctx.violation = error.violation
        if family is None:
            return Reply(error.status, self.error_body_for_path(ctx.raw.path, error, ctx.raw.headers), dict(error.headers))
        return Reply(error.status, family.error_body(error, ctx.raw.headers), dict(error.headers))

    def _wire(self, ctx: Context, reply: Reply | None) -> WireResponse:
        """The reply rendered and checked against the spec; a wire fault's empty answer."""
        operation, family = ctx.operation, ctx.family
        operation_id = operation.operation_id if operation is not None else None
        if reply is None:
            return WireResponse(0, [], b"", operation_id, (), ctx.rule, ctx.fault)
        violations = (ctx.violation,) if ctx.violation else ()
        if operation is None or family is None:  # outside every operation: nothing to check against
            return render.wire(None, reply.status, reply.payload, JSON, reply.headers, violations)
        mimetype = operation.media_type_for(reply.status, ctx.mimetype)
        if self.settings.check_responses:
            try:
                operation.check_response(reply.status, mimetype if reply.payload is not None else None, reply.payload)
            except ResponseInvalid as exc:
                if self.settings.strict_responses:
                    raise
                log.error("contract violation by the mock itself: %s", exc)
                error = ApiError(500, f"The mock produced a response its contract does not document: {exc}.")
                reply = Reply(500, family.error_body(error, ctx.raw.headers))
                mimetype = operation.media_type_for(500, ctx.mimetype)
        answer = render.wire(operation, reply.status, reply.payload, mimetype, reply.headers, violations)
        if ctx.cut:  # a documented status and headers with a body cut in half
            body = answer.body[: max(1, len(answer.body) // 2)] if answer.body else b"{"
            return replace(answer, body=body, violations=(), rule=ctx.rule, fault=ctx.fault)
        return replace(answer, rule=ctx.rule) if ctx.rule is not None else answer

    def _unexpected(self, ctx: Context) -> WireResponse:
        """The documented 500 for a bug of the mock's own (logged by the caller), in the family's format."""
        error = ApiError(500, UNEXPECTED)
        return render.wire(None, 500, self.error_body_for_path(ctx.raw.path, error, ctx.raw.headers), JSON)

    def error_body_for_path(self, path: str, error: ApiError, request_headers: Mapping[str, str] | None = None) -> dict:
        """The error format of the family whose prefix `path` starts with, or the generic one."""
        family = self.families.get(self.contract.family_of_path(path) or "")
        return family.error_body(error, request_headers) if family else render.generic_error_body(error)

    def _own_answer(self, raw: RawRequest) -> WireResponse | None:
        """The HTTP layer's own answers, before any session or contract (not journaled: no operation of an API):
        a browser's CORS preflight, or one of the pages (specs, docs, index)."""
        if self.cors.is_preflight(raw.method, raw.headers):
            status, fields = self.cors.preflight(raw.headers)
            return WireResponse(status, fields, b"")
        page = self.pages.answer(raw.method, raw.path)
        return self._with_cors(page, raw.headers) if page is not None else None

    def _with_cors(self, answer: WireResponse, headers: Mapping[str, str]) -> WireResponse:
        extra = self.cors.answer_headers(headers)
        return replace(answer, headers=[*answer.headers, *extra]) if extra else answer

    # ---------------------------------------------------------------- the journal

    def _journal(self, ctx: Context, answer: WireResponse) -> None:
        """One journal entry for the request (credentials masked) in its session, and the access-log line if asked
        for. A request refused before it had a session is journaled in the default one."""
        raw, settings = ctx.raw, self.settings
        session = ctx.visit.journal_session if ctx.visit is not None else self.sessions.default
        seconds = time.perf_counter() - ctx.started
        status = None if answer.fault in NOT_ANSWERED else answer.status
        if settings.access_log:
            log_access(raw.method, raw.path, self.secrets.credential(raw.headers), status, seconds, answer.operation_id, session.id)
        if not settings.journal_size:  # --journal-size 0: no journal (and no long poll ever answers early)
            return
        if raw.method == "GET" and raw.headers.get("x-mock-journal") == "skip" and raw.path.startswith(ADMIN_PREFIX):
            return  # an admin read asking to leave no trace: the dashboard's polling must not push the app's requests out
        entry = Entry(
            0,
            ctx.received,
            raw.method,
            raw.path[:TEXT_LIMIT],
            ctx.query[:TEXT_LIMIT],
            answer.operation_id,
            status,
            seconds * 1000,
            session.id,
            raw.path.startswith(ADMIN_PREFIX),
            answer.rule,
            answer.violations,
            self.secrets.shown(raw.headers),
            raw.body[:BODY_LIMIT],
        )
        session.journal.record(entry)


def _unrouted(error: ApiError) -> ApiError:
    error.violation = error.message  # the journal shows why nothing answered it
    return error


def _status_of_example(operation: Operation, status: int | None, name: str) -> int:
    """The status whose documented examples include `name` (the one asked for with `code=`, else the only one)."""
    statuses = [status] if status is not None else [int(s) for s in operation.responses]
    having = [s for s in statuses if name in operation.example_names(s)]
    if not having:
        known = "; ".join(f"{s}: {', '.join(operation.example_names(s))}" for s in statuses if operation.example_names(s))
        message = (
            f"Prefer: example={name} is not documented for {operation.operation_id}{f' {status}' if status else ''}; examples: {known}."
        )
        raise RequestInvalid("prefer", message, "header", "Prefer")
    return having[0]


def _shown(text: str, limit: int = 120) -> str:
    """A client's value as echoed in an error message: never a huge one whole."""
    return text if len(text) <= limit else text[:limit] + "…"

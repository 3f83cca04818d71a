"""What both servers do around the pipeline for every request: pick its session, journal it, log it.

The outermost layer (DESIGN.md): a request enters its session (`X-Mock-Session`),
goes through the pipeline, and leaves one journal entry in that session, the
admin API's calls included. The ASGI and WSGI adapters differ only in how
they read, wait and write.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import replace

from mockserver.contract.compiled import RawRequest
from mockserver.contract.errors import RequestInvalid
from mockserver.credentials import Secrets
from mockserver.errors import ApiError
from mockserver.families import credentials
from mockserver.http.access import log_access
from mockserver.http.cors import CorsPolicy
from mockserver.http.pages import Pages
from mockserver.http.pipeline import Pending, Pipeline, Waiting
from mockserver.http.render import NOT_ANSWERED, WireResponse
from mockserver.qa.journal import BODY_LIMIT, Entry
from mockserver.qa.sessions import SESSION_HEADER, Session, SessionRefused, Sessions, Visit
from mockserver.settings import Settings

log = logging.getLogger("mockserver")
ADMIN_PREFIX = "/__admin/"
# What one journal entry keeps at most, so that --journal-size x --max-sessions bounds the memory:
# about 8 KiB of body + 8 KiB of headers (credentials.HEADERS_KEPT) + 4 KiB of path and query, 20 KiB an entry at worst.
TEXT_LIMIT = 2048


class Front:
    def __init__(self, pipeline: Pipeline, sessions: Sessions, settings: Settings):
        self.pipeline = pipeline
        self.sessions = sessions
        self.settings = settings
        self.secrets = Secrets(credentials(list(pipeline.families.values())))
        self.cors = CorsPolicy.from_option(settings.cors, settings.cors_origins, tuple(self.secrets.headers))
        self.pages = Pages(settings, {k: v for family in pipeline.families.values() for k, v in family.demo_schemes.items()})

    def before(self, raw: RawRequest) -> WireResponse | None:
        """The HTTP layer's own answers, before any session or contract (not journaled: no operation of an API):
        a browser's CORS preflight, or one of the pages (specs, docs, index)."""
        if self.cors.is_preflight(raw.method, raw.headers):
            status, fields = self.cors.preflight(raw.headers)
            return WireResponse(status, fields, b"")
        page = self.pages.answer(raw.method, raw.path)
        return self.with_cors(page, raw.headers) if page is not None else None

    def finished(self, answer: WireResponse, raw: RawRequest) -> WireResponse:
        """The answer as sent: with the CORS headers, and without its body for a HEAD."""
        answer = self.with_cors(answer, raw.headers)
        return answer.headed() if raw.method == "HEAD" else answer

    def with_cors(self, answer: WireResponse, headers: Mapping[str, str]) -> WireResponse:
        extra = self.cors.answer_headers(headers)
        return replace(answer, headers=[*answer.headers, *extra]) if extra else answer

    def refused(self, raw: RawRequest, exc: SessionRefused) -> WireResponse:
        """The documented 400 of the operation (or a generic one) for a session the request cannot have."""
        return self.pipeline.refuse_as_contract(raw, RequestInvalid("session", str(exc), "header", "X-Mock-Session"))

    def begin(self, raw: RawRequest, visit: Visit) -> WireResponse | tuple[Pending, Session]:
        """The pipeline up to its wait: the final answer, or what is left to run and the session to run it in."""
        routed = replace(raw, method="GET") if raw.method == "HEAD" else raw  # HEAD: the GET, answered without its body
        step = self.pipeline.prepare(routed, visit.faults)
        if isinstance(step, WireResponse):
            return step
        try:
            return step, visit.enter()
        except SessionRefused as exc:
            return self.refused(raw, exc)
        except ApiError as error:  # a shared store's session registry could not be read: the documented 503
            return self.pipeline.refuse(step, error)

    def conclude(self, pending: Pending, session: Session) -> WireResponse | Waiting:
        """The pipeline after its wait: a wire fault, or the request run (a long poll comes back as Waiting)."""
        if pending.fault == "malformed_body":
            return self.pipeline.malformed(pending)
        if pending.fault is not None:  # connection_reset or empty_response: nothing is sent, nothing runs
            return WireResponse(0, [], b"", pending.operation.operation_id, (), pending.rule, pending.fault)
        return self.pipeline.finish(pending, session)

    def unexpected(self, raw: RawRequest) -> WireResponse:
        """Called from an `except` in the adapters (which re-raise instead in strict mode): logged, a documented 500."""
        log.exception("unexpected error on %s %s", raw.method, raw.path)
        return self.pipeline.unexpected(raw)

    def record(self, session: Session, raw: RawRequest, query: str, answer: WireResponse, received: float, started: float) -> None:
        """One journal entry for the request (credentials masked), and the access-log line if asked for."""
        seconds = time.perf_counter() - started
        status = None if answer.fault in NOT_ANSWERED else answer.status
        if self.settings.access_log:
            credential = self.secrets.credential(raw.headers)
            log_access(raw.method, raw.path, credential, status, seconds, answer.operation_id, session.id)
        if not self.settings.journal_size:  # --journal-size 0: no journal (and no long poll ever answers early)
            return
        if raw.method == "GET" and raw.headers.get("x-mock-journal") == "skip" and raw.path.startswith(ADMIN_PREFIX):
            return  # an admin read asking to leave no trace: the dashboard's polling must not push the app's requests out
        session.journal.record(
            Entry(
                0,
                received,
                raw.method,
                raw.path[:TEXT_LIMIT],
                query[:TEXT_LIMIT],
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
        )


def now() -> float:
    """When a request was received: seconds since the epoch (cheap; the journal makes a date-time of it when read)."""
    return time.time()


def session_header(raw: RawRequest) -> str | None:
    return raw.headers.get(SESSION_HEADER)

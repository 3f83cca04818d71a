"""The mock served from WSGI (waitress, and Flask's test client), in front of the Flask app.

Flask's per-request machinery (contexts, URL map, hooks) cost more than the
whole contract pipeline here; the pipeline needs none of it, so every
request (vendor and admin APIs) is answered by this middleware. Every answer,
whatever its method or path, is JSON or XML in the API's own format: Flask's
HTML error pages can never be reached. Delays and long polls wait in the
request's thread: WSGI has no event loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.wrappers import Request

from mockserver.contract.compiled import RawRequest
from mockserver.errors import ApiError
from mockserver.http.front import Front, now, session_header
from mockserver.http.pipeline import Waiting
from mockserver.http.render import WireResponse
from mockserver.http.wirefaults import break_connection
from mockserver.qa.sessions import SessionRefused, Visit

log = logging.getLogger("mockserver")
StartResponse = Callable[..., Any]


class ApiMiddleware:
    """Every request through the pipeline, in the thread the WSGI server gives it (waits hold that thread)."""

    def __init__(self, flask_app: Callable[..., Iterable[bytes]], front: Front):
        self.flask_app = flask_app
        self.front = front
        self.pipeline = front.pipeline

    def __call__(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        started, received = time.perf_counter(), now()
        raw = raw_request(Request(environ), self.front.settings.max_body_bytes)
        own = self.front.before(raw)
        if own is not None:
            return _send(own, start_response)
        query = environ.get("QUERY_STRING", "")
        try:
            visit = self.front.sessions.visit(session_header(raw))
        except SessionRefused as exc:
            answer = self.front.refused(raw, exc)
            self.front.record(self.front.sessions.default, raw, query, answer, received, started)
            return _send(self.front.finished(answer, raw), start_response)
        try:
            answer = self._answer(raw, visit)
            # Journaled before it is sent (or the connection broken): a client that has its answer finds its request.
            self.front.record(visit.journal_session, raw, query, answer, received, started)
            if answer.fault in ("connection_reset", "empty_response"):
                _break(environ, answer.fault)
        finally:
            visit.close()
        return _send(self.front.finished(answer, raw), start_response)

    def _answer(self, raw: RawRequest, visit: Visit) -> WireResponse:
        try:
            begun = self.front.begin(raw, visit)
            if isinstance(begun, WireResponse):
                return begun
            pending, session = begun
            if pending.delay_s:
                time.sleep(pending.delay_s)  # holds this thread: WSGI has no event loop (see the README)
            done = self.front.conclude(pending, session)
            return self._poll(done) if isinstance(done, Waiting) else done
        except Exception:
            if self.front.settings.strict_responses:
                raise
            return self.front.unexpected(raw)

    def _poll(self, waiting: Waiting) -> WireResponse:
        wait = waiting.wait
        deadline = time.monotonic() + wait.timeout_s
        try:  # a shared journal (Redis) may be unreachable: the documented 503
            seen = wait.journal.newest_id()
            reply = wait.poll()
            while reply is None and (left := deadline - time.monotonic()) > 0:
                wait.journal.changed_blocking(seen, left)
                seen = wait.journal.newest_id()
                reply = wait.poll()
        except ApiError as error:
            return self.pipeline.refuse(waiting.pending, error)
        return self.pipeline.render_reply(waiting.pending, reply or wait.expired())


def _break(environ: dict, kind: str) -> None:
    """Act on waitress's own socket for this request (its channel is reachable from the environ)."""
    channel = getattr(environ.get("waitress.client_disconnected"), "__self__", None)
    sock = getattr(channel, "socket", None)
    if sock is None:
        log.error("fault %s: this WSGI server does not expose its socket; answering instead", kind)
        return
    break_connection(sock.fileno(), kind)


def _send(answer: WireResponse, start_response: StartResponse) -> list[bytes]:
    if answer.status == 0:  # a wire fault already done (or impossible here): an empty 500 for the server to try
        answer = WireResponse(500, [], b"")
    headers = [*answer.headers, ("Content-Length", str(answer.length))]
    start_response(f"{answer.status} {HTTP_STATUS_CODES.get(answer.status, '')}", headers)
    return [answer.body]


def raw_request(incoming: Request, max_body_bytes: int) -> RawRequest:
    """A werkzeug request as the contract sees it; an oversized body is refused unread."""
    environ = incoming.environ
    headers = {key[5:].replace("_", "-").lower(): value for key, value in environ.items() if key.startswith("HTTP_")}
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = environ["CONTENT_TYPE"]
    length = incoming.content_length
    too_large = length is not None and length > max_body_bytes
    body = b""
    if not too_large and (length or environ.get("wsgi.input_terminated")):
        body = incoming.stream.read(max_body_bytes + 1)
        too_large = len(body) > max_body_bytes
    return RawRequest(
        method=incoming.method,
        path=incoming.path,
        query=list(incoming.args.items(multi=True)) if environ.get("QUERY_STRING") else [],
        headers=headers,
        body=b"" if too_large else body,
        body_too_large=too_large,
    )

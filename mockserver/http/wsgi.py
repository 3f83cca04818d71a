"""The vendor APIs served straight from WSGI, in front of the Flask app.

Flask's per-request machinery (contexts, URL map, hooks) cost more than the
whole contract pipeline here; the pipeline needs none of it, so requests
outside `/__admin/` are answered by this middleware, and Flask serves the
admin API only. Every answer, whatever its method or path, is JSON or XML in
the API's own format: Flask's HTML error pages can never be reached.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.wrappers import Request

from mockserver.contract.compiled import RawRequest
from mockserver.http.access import log_access
from mockserver.http.pipeline import Pending, Pipeline
from mockserver.http.render import WireResponse
from mockserver.settings import Settings

log = logging.getLogger("mockserver")
ADMIN_PREFIX = "/__admin/"
StartResponse = Callable[..., Any]


class ApiMiddleware:
    def __init__(self, flask_app: Callable[..., Iterable[bytes]], pipeline: Pipeline, settings: Settings):
        self.flask_app = flask_app
        self.pipeline = pipeline
        self.settings = settings

    def __call__(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        incoming = Request(environ)
        if incoming.path.startswith(ADMIN_PREFIX):
            return self.flask_app(environ, start_response)
        started = time.perf_counter()
        raw = raw_request(incoming, self.settings.max_body_bytes)
        try:
            step = self.pipeline.prepare(raw)
            if isinstance(step, Pending):
                time.sleep(step.delay_s)  # holds this thread: waitress has no event loop (see the README)
                step = self.pipeline.finish(step)
            answer = step
        except Exception:
            if self.settings.strict_responses:
                raise
            log.exception("unexpected error on %s %s", raw.method, raw.path)
            answer = self.pipeline.unexpected(raw)
        if self.settings.access_log:
            log_access(raw.method, raw.path, raw.headers, answer.status, time.perf_counter() - started)
        return _send(answer, start_response)


def _send(answer: WireResponse, start_response: StartResponse) -> list[bytes]:
    headers = [*answer.headers, ("Content-Length", str(len(answer.body)))]
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

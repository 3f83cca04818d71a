"""The Flask app factory: wires contract, store, families and admin into one WSGI app.

Flask only carries requests in and bytes out; routing is the contract's (a
`before_request` hook hands every non-admin request to the pipeline), so an
unknown path or method, even one Flask does not know, is answered in the
API's JSON error format rather than with Flask's HTML pages.
"""

from __future__ import annotations

import json
import logging
import time

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request

from mockserver import persistence
from mockserver.admin import admin_blueprint
from mockserver.contract.compiled import Contract, RawRequest
from mockserver.contract.spec import dereference, load_document
from mockserver.egain.api import FAMILY as EGAIN
from mockserver.fixtures import Fixtures
from mockserver.masking import mask
from mockserver.pipeline import Pipeline
from mockserver.relay.api import FAMILY as RELAY
from mockserver.settings import Settings
from mockserver.store import MemoryStore

log = logging.getLogger("mockserver")
access_log = logging.getLogger("mockserver.access")
ADMIN_PREFIX = "/__admin/"


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings()
    document = load_document(settings.spec)
    contract = Contract(document)
    schemas = dereference(document)["components"]["schemas"]
    fixtures = Fixtures.load(settings.fixtures, schemas)
    saved = persistence.read(settings.state_file, schemas) if settings.state_file else None
    store = MemoryStore(fixtures.build, initial=saved.build() if saved else None)
    pipeline = Pipeline(
        contract, store, {"relay": RELAY, "egain": EGAIN}, check_responses=settings.check_responses, strict=settings.strict_responses
    )

    app = Flask(__name__)
    state_file = persistence.StateFile(settings.state_file, store) if settings.state_file else None
    app.extensions["mockserver"] = {"pipeline": pipeline, "store": store, "contract": contract, "settings": settings, "state_file": state_file}
    app.register_blueprint(admin_blueprint(store, settings.admin_token))

    @app.before_request
    def api() -> Response | None:
        """Every request outside /__admin goes to the pipeline, whatever its method or path."""
        if request.path.startswith(ADMIN_PREFIX):
            return None
        started = time.perf_counter()
        raw = raw_request(request, settings.max_body_bytes)
        answer = pipeline.handle(raw)
        if settings.access_log:
            _log_access(raw, answer.status, time.perf_counter() - started)
        response = Response(answer.body, answer.status, answer.headers)
        if not answer.body:
            del response.headers["Content-Type"]
        return response

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        """Flask's own errors (admin routes only) in JSON, keeping headers such as Allow."""
        response = _json_error(error.code or 500, error.description or error.name)
        response.headers.extend((k, v) for k, v in error.get_headers() if k.lower() != "content-type")
        return response

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        if settings.strict_responses:
            raise error
        log.exception("unexpected error")
        return _json_error(500, "An unexpected server error occurred. Please retry your request.")

    return app


def raw_request(incoming: Request, max_body_bytes: int) -> RawRequest:
    """A werkzeug request as the contract sees it; an oversized body is refused unread."""
    length = incoming.content_length
    too_large = length is not None and length > max_body_bytes
    body = b""
    if not too_large:
        body = incoming.stream.read(max_body_bytes + 1)
        too_large = len(body) > max_body_bytes
    return RawRequest(
        method=incoming.method,
        path=incoming.path,
        query=list(incoming.args.items(multi=True)),
        headers={name.lower(): value for name, value in incoming.headers.items()},
        body=b"" if too_large else body,
        body_too_large=too_large,
    )


def _log_access(raw: RawRequest, status: int, seconds: float) -> None:
    credential = raw.headers.get("xx-relay-api-key") or raw.headers.get("authorization", "").partition(" ")[2]
    access_log.info("%s %s %d %.1fms credential=%s", raw.method, raw.path, status, seconds * 1000, mask(credential))


def _json_error(status: int, message: str) -> Response:
    return Response(json.dumps({"message": message}), status, {"Content-Type": "application/json"})

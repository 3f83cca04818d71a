"""The Flask app factory: wires contract, store, families and admin into one WSGI app.

Flask only carries requests in and bytes out; routing is the contract's (a
`before_request` hook hands every non-admin request to the pipeline), so an
unknown path or method, even one Flask does not know, is answered in the
API's JSON error format rather than with Flask's HTML pages.
"""

from __future__ import annotations

import json
import logging

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request

from mockserver.admin import admin_blueprint
from mockserver.contract.compiled import Contract, RawRequest
from mockserver.contract.spec import dereference, load_document
from mockserver.egain.api import FAMILY as EGAIN
from mockserver.fixtures import Fixtures
from mockserver.pipeline import Pipeline
from mockserver.relay.api import FAMILY as RELAY
from mockserver.settings import Settings
from mockserver.store import MemoryStore

log = logging.getLogger("mockserver")
ADMIN_PREFIX = "/__admin/"


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings()
    document = load_document(settings.spec)
    contract = Contract(document)
    fixtures = Fixtures.load(settings.fixtures, dereference(document)["components"]["schemas"])
    store = MemoryStore(fixtures.build)
    pipeline = Pipeline(
        contract, store, {"relay": RELAY, "egain": EGAIN}, check_responses=settings.check_responses, strict=settings.strict_responses
    )

    app = Flask(__name__)
    app.extensions["mockserver"] = {"pipeline": pipeline, "store": store, "contract": contract, "settings": settings}
    app.register_blueprint(admin_blueprint(store))

    @app.before_request
    def api() -> Response | None:
        """Every request outside /__admin goes to the pipeline, whatever its method or path."""
        if request.path.startswith(ADMIN_PREFIX):
            return None
        answer = pipeline.handle(raw_request(request, settings.max_body_bytes))
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


def _json_error(status: int, message: str) -> Response:
    return Response(json.dumps({"message": message}), status, {"Content-Type": "application/json"})

"""The Flask app factory: wires contract, store, families and admin into one WSGI app.

The vendor APIs are answered by `ApiMiddleware` (mockserver/http/wsgi.py) in
front of Flask: routing is the contract's, so an unknown path or method,
even one Flask does not know, is answered in the API's JSON error format.
Flask serves the admin API.
"""

from __future__ import annotations

import logging

from flask import Flask, Response
from werkzeug.exceptions import HTTPException

from mockserver.contract.compiled import JSON, Contract
from mockserver.contract.spec import load_document
from mockserver.egain.api import FAMILY as EGAIN
from mockserver.errors import UNEXPECTED
from mockserver.http import render
from mockserver.http.admin import admin_blueprint
from mockserver.http.pipeline import Pipeline
from mockserver.http.wsgi import ApiMiddleware, raw_request  # noqa: F401 - raw_request is used by tools and tests
from mockserver.relay.api import FAMILY as RELAY
from mockserver.settings import Settings
from mockserver.state import persistence
from mockserver.state.fixtures import Fixtures
from mockserver.state.store import MemoryStore

log = logging.getLogger("mockserver")


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings()
    document = load_document(settings.spec)
    contract = Contract(document)
    schemas = contract.schemas
    fixtures = Fixtures.load(settings.fixtures, schemas)
    saved = persistence.read(settings.state_file, schemas) if settings.state_file else None
    config = fixtures.config
    if saved is not None and saved.config != config:
        raise persistence.StateFileError(
            f"{settings.state_file}: saved under another configuration (API keys, product groups or actors) than {fixtures.source};"
            " start with the fixtures it was saved with, or move it away"
        )
    store = MemoryStore(fixtures.build, initial=saved.build(config) if saved else None)
    families = {"relay": RELAY, "egain": EGAIN}
    pipeline = Pipeline(contract, config, store, families, check_responses=settings.check_responses, strict=settings.strict_responses)

    app = Flask(__name__)
    state_file = persistence.StateFile(settings.state_file, store) if settings.state_file else None
    app.extensions["mockserver"] = {
        "pipeline": pipeline,
        "store": store,
        "config": config,
        "contract": contract,
        "settings": settings,
        "state_file": state_file,
    }
    app.register_blueprint(admin_blueprint(store, settings.admin_token))

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
        return _json_error(500, UNEXPECTED)

    app.wsgi_app = ApiMiddleware(app.wsgi_app, pipeline, settings)  # type: ignore[method-assign]
    return app


def _json_error(status: int, message: str) -> Response:
    answer = render.wire(None, status, {"message": message}, JSON)
    return Response(answer.body, answer.status, answer.headers)

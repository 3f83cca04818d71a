"""The Flask face of a mock (WSGI: what waitress serves, and Flask's in-process test client).

One view answers every request, vendor and admin APIs alike, whatever its method or path, by running
the exchange (mockserver/http/exchange.py) through the WSGI adapter (wsgi.py): routing is the contracts',
so an unknown path or method is answered in the API's own JSON error format. Flask's error handlers
answer what escapes the view (a bug of the mock's own) in JSON too: its HTML pages are never sent.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from mockserver.contract.compiled import JSON
from mockserver.errors import UNEXPECTED
from mockserver.http import render, wsgi
from mockserver.http.exchange import Exchange
from mockserver.settings import Settings

log = logging.getLogger("mockserver")


class Faced(Protocol):
    """What the face needs of its mock (mockserver/mock.py)."""

    settings: Settings
    exchange: Exchange


class MockApp(Flask):
    mock: Any  # the Mock this app is the face of (mockserver/mock.py)

    def dispatch_request(self) -> Any:
        """Every request, whatever its method or path, to the one view: the contracts route, not werkzeug (its URL
        map is empty, so the routing error Flask found is moot)."""
        return self.view_functions["exchange"]()


def flask_face(mock: Faced) -> MockApp:
    app = MockApp(__name__, static_folder=None)
    app.mock = mock
    strict = mock.settings.strict_responses

    def exchange() -> Response:
        answer = wsgi.answer(mock.exchange, request._get_current_object())  # type: ignore[attr-defined]
        if answer.status == 0:  # a wire fault already done (or impossible here): an empty 500 for the server to try
            return _Sent(b"", 500)
        response = _Sent(answer.body, answer.status, answer.headers)
        response.headers["Content-Length"] = str(answer.length)
        return response

    app.view_functions["exchange"] = exchange

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        """Flask's own errors in JSON, keeping headers such as Allow."""
        response = _json_error(error.code or 500, error.description or error.name)
        response.headers.extend((k, v) for k, v in error.get_headers() if k.lower() != "content-type")
        return response

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        if strict:
            raise error
        log.exception("unexpected error")
        return _json_error(500, UNEXPECTED)

    return app


class _Sent(Response):
    default_mimetype = None  # the headers are the answer's own: no Content-Type where it has none (a 204, a preflight)


def _json_error(status: int, message: str) -> Response:
    answer = render.wire(None, status, {"message": message}, JSON)
    return Response(answer.body, answer.status, answer.headers)

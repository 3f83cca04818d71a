"""The Flask face of a mock (WSGI: what waitress serves, and Flask's in-process test client).

Every request, vendor and admin APIs alike, whatever its method or path, runs the exchange
(mockserver/http/exchange.py) through the WSGI adapter (wsgi.py): routing is the contracts', so an unknown
path or method is answered in the API's own JSON error format. It enters straight from `wsgi_app`: Flask's
per-request machinery (contexts, sessions, URL matching, the response object) cost more than the exchange
itself, and measured 0.74x the requests a second under waitress as a view. What escapes the exchange (a bug
of the mock's own) goes to Flask's error handlers, in a request context: JSON too, never an HTML page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.wrappers import Request

from mockserver.contract.compiled import JSON
from mockserver.errors import UNEXPECTED, ApiError
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
    exchange: Exchange

    def wsgi_app(self, environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        try:
            answer = wsgi.answer(self.exchange, Request(environ))
        except Exception as error:
            with self.request_context(environ):
                response = self.make_response(self.handle_user_exception(error))
            return response(environ, start_response)
        if answer.status == 0:  # a wire fault already done (or impossible here): an empty 500 for the server to try
            start_response("500 Internal Server Error", [("Content-Length", "0")])
            return [b""]
        start_response(
            f"{answer.status} {HTTP_STATUS_CODES.get(answer.status, '')}", [*answer.headers, ("Content-Length", str(answer.length))]
        )
        return [answer.body]


def flask_face(mock: Faced) -> MockApp:
    app = MockApp(__name__, static_folder=None)
    app.mock, app.exchange = mock, mock.exchange
    strict = mock.settings.strict_responses

    def in_format(error: ApiError) -> Response:
        """An error answered outside the exchange, in the error format of the family its path belongs to."""
        headers = {name.lower(): value for name, value in request.headers.items()}
        answer = render.wire(None, error.status, mock.exchange.error_body_for_path(request.path, error, headers), JSON)
        return Response(answer.body, answer.status, answer.headers)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        """Flask's own errors, in the API's format, keeping headers such as Allow."""
        response = in_format(ApiError(error.code or 500, error.description or error.name))
        response.headers.extend((k, v) for k, v in error.get_headers() if k.lower() != "content-type")
        return response

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        if strict:
            raise error
        log.exception("unexpected error")
        return in_format(ApiError(500, UNEXPECTED))

    return app

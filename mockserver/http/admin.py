"""The admin API under `/__admin` (WireMock's vocabulary): health and reset to the fixtures.

With an admin token configured (required when the server is not bound to
loopback), every admin call needs `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, jsonify, request

from mockserver.credentials import bearer_token
from mockserver.state.store import Store


def admin_blueprint(store: Store, token: str | None = None) -> Blueprint:
    admin = Blueprint("admin", __name__, url_prefix="/__admin")

    @admin.before_request
    def require_token() -> Response | None:
        if token is None:
            return None
        given = bearer_token(request.headers.get("Authorization"))
        if given is not None and hmac.compare_digest(given.encode(), token.encode()):
            return None
        response = jsonify(message="The admin API needs 'Authorization: Bearer <admin token>'.")
        response.status_code = 401
        response.headers["WWW-Authenticate"] = 'Bearer realm="mockserver-admin"'
        return response

    @admin.get("/health")
    def health() -> Response:
        return jsonify(status="ok")

    @admin.post("/reset")
    def reset() -> Response:
        store.reset()
        return jsonify(status="reset", message="State restored from the fixtures.")

    return admin

"""The admin API under `/__admin` (WireMock's vocabulary): health and reset to the fixtures."""

from __future__ import annotations

from flask import Blueprint, jsonify

from mockserver.store import Store


def admin_blueprint(store: Store) -> Blueprint:
    admin = Blueprint("admin", __name__, url_prefix="/__admin")

    @admin.get("/health")
    def health():  # noqa: ANN202
        return jsonify(status="ok")

    @admin.post("/reset")
    def reset():  # noqa: ANN202
        store.reset()
        return jsonify(status="reset", message="State restored from the fixtures.")

    return admin

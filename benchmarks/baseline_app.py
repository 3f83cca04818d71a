"""The bare-Flask baseline: what the same WSGI server gives a trivial Flask app.

One PUT route and one GET route, each answering a small JSON object. Both
match any path, so the benchmark sends the baseline the very requests it
sends the mock (same paths, headers and bodies) and nothing else differs.
No validation, no state.
"""

from __future__ import annotations

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.put("/<path:path>")
def put(path: str):
    request.get_data()  # read the body, as any real handler would
    return jsonify(message="ok")


@app.get("/<path:path>")
def get(path: str):
    return jsonify(message="ok", path=path)

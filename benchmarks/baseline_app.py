"""The bare baseline: what the same server gives an app that does nothing.

`asgi` for granian (the mock's default server runs its ASGI app on uvloop), `wsgi`
(Flask) for waitress (the mock's WSGI fallback). Either reads the request's body,
as a real handler would, and answers any method and path with `{"status": "ok"}`
(the mock's health answer, so one probe tells when either is up): no validation,
no state. The benchmark sends it the very requests it sends the mock.
"""

from __future__ import annotations

from flask import Flask, request

BODY = b'{"status": "ok"}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]
METHODS = ["GET", "PUT", "POST", "DELETE", "PATCH"]


async def asgi(scope: dict, receive, send) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:  # the whole body, or until the client goes
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


wsgi = Flask(__name__)


@wsgi.route("/", defaults={"path": ""}, methods=METHODS)
@wsgi.route("/<path:path>", methods=METHODS)
def answer(path: str):
    request.get_data()
    return BODY, 200, {"Content-Type": "application/json"}

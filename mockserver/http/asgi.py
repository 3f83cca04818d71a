"""The vendor APIs served natively on the event loop (ASGI); Flask serves `/__admin` beside them.

Waiting costs no thread here: reading a slow body, and any delay, are awaited
on the loop. The validated request work itself (`Pipeline.handle`) is short
and synchronous, and runs inline between two awaits: requests on the loop
never interleave inside a command. The store's lock still guards the state
against the other threads that can reach it (Flask's admin pool, autosave).

A body that does not arrive within `Settings.body_timeout` is answered 408
with `Connection: close` (the server then drops the connection): a client
trickling bytes holds one socket and nothing else.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, unquote_to_bytes

import werkzeug.urls  # noqa: F401 - registers the "werkzeug.url_quote" codec error handler used below

from mockserver.contract.compiled import RawRequest
from mockserver.errors import ApiError
from mockserver.http.access import log_access
from mockserver.http.pipeline import Pending, Pipeline
from mockserver.http.render import WireResponse
from mockserver.settings import Settings

log = logging.getLogger("mockserver")
ADMIN_PREFIX = "/__admin/"
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]
Asgi = Callable[[dict, Receive, Send], Awaitable[None]]


class Waits:
    """How many requests wait on the loop (delays, long polls), against a cap.

    Only the loop's thread touches it, so a plain counter is exact.
    """

    def __init__(self, limit: int):
        self.limit = limit
        self.active = 0

    def enter(self) -> bool:
        if self.active >= self.limit:
            return False
        self.active += 1
        return True

    def leave(self) -> None:
        self.active -= 1


class BodyTimeout(Exception):
    """The request body did not arrive within the body deadline."""


class AsgiApp:
    def __init__(self, pipeline: Pipeline, admin: Asgi, settings: Settings):
        self.pipeline = pipeline
        self.admin = admin
        self.settings = settings
        self.waits = Waits(settings.max_waits)

    async def __call__(self, scope: dict, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path = _path(scope)
        if path.startswith(ADMIN_PREFIX):
            await self.admin(scope, receive, send)
            return
        started = time.perf_counter()
        headers = _headers(scope)
        try:
            body, too_large = await self._read_body(receive, headers)
        except BodyTimeout:
            message = f"The request body did not arrive within {self.settings.body_timeout:g} s; the connection is closed."
            answer = self.pipeline.transport_error(scope["method"], path, ApiError(408, message), {"Connection": "close"})
        else:
            raw = RawRequest(scope["method"], path, _query(scope), headers, body, too_large)
            answer = await self._answer(raw)
        if self.settings.access_log:
            log_access(scope["method"], path, headers, answer.status, time.perf_counter() - started)
        await _send(send, answer)

    async def _answer(self, raw: RawRequest) -> WireResponse:
        try:
            step = self.pipeline.prepare(raw)
            if isinstance(step, Pending) and step.delay_s:
                step = await self._wait(step)
            return step if isinstance(step, WireResponse) else self.pipeline.finish(step)
        except Exception:
            if self.settings.strict_responses:
                raise
            log.exception("unexpected error on %s %s", raw.method, raw.path)
            return self.pipeline.unexpected(raw)

    async def _wait(self, pending: Pending) -> Pending | WireResponse:
        """Sleep on the loop, within the cap on waiting requests; past it, refuse without running anything."""
        if not self.waits.enter():
            message = f"Too many requests are waiting at once (--max-waits {self.waits.limit}); this one was not run."
            return self.pipeline.refuse(pending, ApiError(500, message))
        try:
            await asyncio.sleep(pending.delay_s)
        finally:
            self.waits.leave()
        return pending

    async def _read_body(self, receive: Receive, headers: dict[str, str]) -> tuple[bytes, bool]:
        """The whole body, or (b"", True) past `max_body_bytes` (an announced excess is not read at all)."""
        limit = self.settings.max_body_bytes
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            return b"", True
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.settings.body_timeout):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        break
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > limit:
                        return b"", True
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            raise BodyTimeout from None
        return b"".join(chunks), False


async def _send(send: Send, answer: WireResponse) -> None:
    fields = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in answer.headers]
    fields.append((b"content-length", str(len(answer.body)).encode()))
    await send({"type": "http.response.start", "status": answer.status, "headers": fields})
    await send({"type": "http.response.body", "body": answer.body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def _path(scope: dict) -> str:
    """The path as werkzeug gives it to the WSGI side: percent-decoded, UTF-8 with replacement."""
    raw = scope.get("raw_path")
    if raw is None:
        return scope["path"]
    return unquote_to_bytes(raw.split(b"?", 1)[0]).decode("utf-8", "replace")


def _query(scope: dict) -> list[tuple[str, str]]:
    query = scope.get("query_string", b"")
    if not query:
        return []
    return parse_qsl(query.decode("utf-8", "replace"), keep_blank_values=True, errors="werkzeug.url_quote")


def _headers(scope: dict) -> dict[str, str]:
    """Lower-case names; repeated headers joined with ', ' as HTTP allows."""
    found: dict[str, str] = {}
    for name, value in scope["headers"]:
        key, text = name.decode("latin-1").lower(), value.decode("latin-1")
        found[key] = f"{found[key]}, {text}" if key in found else text
    return found


def admin_app(flask_app: Any, threads: int) -> Asgi:
    """Flask (the admin API) behind a2wsgi: its own small thread pool, off the API's path."""
    from a2wsgi import WSGIMiddleware

    return WSGIMiddleware(flask_app, workers=threads)

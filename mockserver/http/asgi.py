"""The mock served natively on the event loop (ASGI): the vendor APIs and the admin API.

Waiting costs no thread here: reading a slow body, a delay and a long poll
are awaited on the loop. The validated request work itself (the pipeline)
is short and synchronous, and runs inline between two awaits, so requests
on the loop never interleave inside a command. The store's lock still
guards the state against the other threads that can reach it (the
state-file saver).

A body that does not arrive within `Settings.body_timeout` is answered 408
with `Connection: close` (the server then drops the connection): a client
trickling bytes holds one socket and nothing else.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl, unquote_to_bytes

import werkzeug.urls  # noqa: F401 - registers the "werkzeug.url_quote" codec error handler used below

from mockserver.contract.compiled import RawRequest
from mockserver.errors import ApiError
from mockserver.http.front import Front, now, session_header
from mockserver.http.pipeline import Pending, Waiting
from mockserver.http.render import WireResponse
from mockserver.http.wirefaults import break_connection, find_socket
from mockserver.qa.sessions import Session, SessionRefused

log = logging.getLogger("mockserver")
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]


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
    def __init__(self, front: Front):
        self.front = front
        self.pipeline = front.pipeline
        self.settings = front.settings
        self.waits = Waits(front.settings.max_waits)

    async def __call__(self, scope: dict, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        started, received = time.perf_counter(), now()
        path, headers = _path(scope), _headers(scope)
        raw = RawRequest(scope["method"], path, _query(scope), headers)
        query = scope.get("query_string", b"").decode("latin-1")
        try:
            with self.front.sessions.using(session_header(raw)) as session:
                try:
                    body, too_large = await self._read_body(receive, headers)
                except BodyTimeout:
                    message = f"The request body did not arrive within {self.settings.body_timeout:g} s; the connection is closed."
                    answer = self.pipeline.transport_error(raw.method, path, ApiError(408, message), {"Connection": "close"})
                else:
                    raw = replace(raw, body=body, body_too_large=too_large)
                    answer = await self._answer(raw, session)
                await self._deliver(scope, send, answer)
                self.front.record(session, raw, query, answer, received, started)
        except SessionRefused as exc:
            answer = self.front.refused(raw, exc)
            await _send(send, answer)
            self.front.record(self.front.sessions.default, raw, query, answer, received, started)

    async def _answer(self, raw: RawRequest, session: Session) -> WireResponse:
        try:
            step: Any = self.pipeline.prepare(raw, session)
            if isinstance(step, Pending):
                if step.delay_s:
                    refused = await self._sleep(step)
                    if refused is not None:
                        return refused
                step = self.pipeline.malformed(step) if step.fault == "malformed_body" else self._finish_or_break(step)
            if isinstance(step, Waiting):
                step = await self._poll(step)
            return step
        except Exception:
            if self.settings.strict_responses:
                raise
            return self.front.unexpected(raw)

    def _finish_or_break(self, pending: Pending) -> WireResponse | Waiting:
        if pending.fault is not None:  # connection_reset or empty_response: nothing is sent, nothing runs
            return WireResponse(0, [], b"", pending.operation.operation_id, (), pending.rule, pending.fault)
        return self.pipeline.finish(pending)

    async def _sleep(self, pending: Pending) -> WireResponse | None:
        """Wait out the delay on the loop, within the cap on waits; past it, the documented 500 and nothing run."""
        if not self.waits.enter():
            message = f"Too many requests are waiting at once (--max-waits {self.waits.limit}); this one was not run."
            return self.pipeline.refuse(pending, ApiError(500, message))
        try:
            await asyncio.sleep(pending.delay_s)
        finally:
            self.waits.leave()
        return None

    async def _poll(self, waiting: Waiting) -> WireResponse:
        """A long poll: re-ask after each journal change until ready or expired, holding nothing."""
        wait = waiting.wait
        reply = wait.poll()
        if reply is None:
            if not self.waits.enter():
                message = f"Too many requests are waiting at once (--max-waits {self.waits.limit}); try again later."
                return self.pipeline.refuse(waiting.pending, ApiError(503, message))
            try:
                deadline = time.monotonic() + wait.timeout_s
                while reply is None and (left := deadline - time.monotonic()) > 0:
                    await wait.journal.changed(wait.wanted, left)
                    reply = wait.poll()
            finally:
                self.waits.leave()
        return self.pipeline.render_reply(waiting.pending, reply or wait.expired())

    async def _deliver(self, scope: dict, send: Send, answer: WireResponse) -> None:
        if answer.fault in ("connection_reset", "empty_response"):
            fd = find_socket(tuple(scope["server"]), tuple(scope["client"]))
            if fd is not None:
                break_connection(fd, answer.fault)
                return
            log.error("fault %s: the connection's socket was not found; answering instead", answer.fault)
        await _send(send, answer)

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
    if answer.status == 0:  # a wire fault with no socket to break: an empty 500 is the closest honest answer
        answer = WireResponse(500, [], b"")
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

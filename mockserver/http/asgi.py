"""The mock served natively on the event loop (ASGI): the request's I/O, around the one exchange (exchange.py).

Waiting costs no thread here: reading a slow body, a delay and a long poll
are awaited on the loop. The validated request work itself (the exchange's
stages) is short and synchronous, and runs inline between two awaits, so
requests on the loop never interleave inside a command. The store's lock
still guards the state against the other threads that can reach it (the
state-file saver); `--fsync always` makes a change durable in a worker
thread while the loop goes on.

A body that does not arrive within `Settings.body_timeout` is answered 408
with `Connection: close` (the server then drops the connection): a client
trickling bytes holds one socket and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from urllib.parse import parse_qsl, unquote_to_bytes

import werkzeug.urls  # noqa: F401 - registers the "werkzeug.url_quote" codec error handler used below

from mockserver.contract.compiled import RawRequest
from mockserver.http.exchange import CONNECTION_FAULTS, Exchange
from mockserver.http.io import BodyTimeout, ClientGone
from mockserver.http.render import ABANDONED, WireResponse
from mockserver.http.wirefaults import break_connection, find_socket
from mockserver.qa.journal import Journal, RequestFilter
from mockserver.state.store import settle

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


class AsgiApp:
    def __init__(self, exchange: Exchange):
        self.exchange = exchange
        self.settings = exchange.settings
        self.waits = Waits(exchange.settings.max_waits)
        # Set when the server stops: delays end at once and long polls answer, so shutdown (and the
        # state file's last save) never waits for them.
        self.stopping = asyncio.Event()

    async def __call__(self, scope: dict, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        started, received = time.perf_counter(), time.time()
        raw = RawRequest(scope["method"], _path(scope), _query(scope), _headers(scope))
        io = LoopIo(self, receive)
        try:
            answer = await self.exchange.answer(raw, scope.get("query_string", b"").decode("latin-1"), io, received, started)
        finally:
            io.close()
        await _deliver(scope, send, answer)


class LoopIo:
    """One request's reading and waiting on the loop (exchange.Io)."""

    def __init__(self, app: AsgiApp, receive: Receive):
        self._app = app
        self._receive = receive
        self._gone: asyncio.Future | None = None  # the client closing the connection, watched once a long poll waits
        self._stop: asyncio.Future | None = None

    async def body(self, raw: RawRequest) -> RawRequest:
        """The request with its whole body, or marked too large past `max_body_bytes` (an announced excess is not read)."""
        limit = self._app.settings.max_body_bytes
        declared = raw.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            return replace(raw, body_too_large=True)
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self._app.settings.body_timeout):
                while True:
                    message = await self._receive()
                    if message["type"] == "http.disconnect":
                        raise ClientGone
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > limit:
                        return replace(raw, body_too_large=True)
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        return replace(raw, body=b"".join(chunks))
        except TimeoutError:
            raise BodyTimeout from None

    def hold(self) -> bool:
        return self._app.waits.enter()

    def release(self) -> None:
        self._app.waits.leave()

    async def sleep(self, seconds: float) -> None:
        """The delay, ended early when the server stops."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._app.stopping.wait(), seconds)

    async def changed(self, journal: Journal, wanted: RequestFilter, after_id: int, timeout: float) -> bool:
        if self._gone is None:
            self._gone = asyncio.ensure_future(_disconnected(self._receive))
            self._stop = asyncio.ensure_future(self._app.stopping.wait())
        assert self._stop is not None
        change = journal.subscribe(wanted, after_id)
        try:
            await asyncio.wait([change, self._gone, self._stop], timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            journal.unsubscribe(change)
        return not (self._gone.done() or self._stop.done())

    @property
    def client_gone(self) -> bool:
        return self._gone is not None and self._gone.done() and not self._gone.cancelled()

    async def settle(self, syncs: list) -> None:
        await asyncio.get_running_loop().run_in_executor(None, settle, syncs)

    def close(self) -> None:
        for watch in (self._gone, self._stop):
            if watch is not None:
                watch.cancel()


async def _deliver(scope: dict, send: Send, answer: WireResponse) -> None:
    if answer.fault == ABANDONED:
        return
    if answer.fault in CONNECTION_FAULTS:
        fd = find_socket(tuple(scope["server"]), tuple(scope["client"]))
        if fd is not None:
            break_connection(fd, answer.fault)
            return
        log.error("fault %s: the connection's socket was not found; answering instead", answer.fault)
    await _send(send, answer)


async def _disconnected(receive: Receive) -> None:
    """Returns when the client closes the connection (the body was read whole before, so nothing else comes)."""
    message = await receive()
    while message["type"] != "http.disconnect":
        message = await receive()


async def _send(send: Send, answer: WireResponse) -> None:
    if answer.status == 0:  # a wire fault with no socket to break: an empty 500 is the closest honest answer
        answer = WireResponse(500, [], b"")
    fields = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in answer.headers]
    fields.append((b"content-length", str(answer.length).encode()))
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

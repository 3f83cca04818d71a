"""The held load's connections: opened, kept and closed on an event loop of their own, in a thread.

Raw HTTP/1.1 over asyncio streams; every wait is bounded. `hold()` (the package) drives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from mockserver.testing.held_load.shape import HeldLoad, HeldReport, KindReport

HEALTH_PATH = "/__admin/health"
TRICKLE_PATH = "/cdm/client/demo/load-customer-record"
RELAY_KEY = "demo-key"
TRICKLE_LENGTH = 4096  # the announced Content-Length; at most TRICKLE_LENGTH - 1 bytes are ever sent
TRICKLE_JSON = b'{"product_group_id": "default", "customer": {"ccid": "BAK-22000-001", "first_name": "Ada"}}'
CLOSE_TIMEOUT = 1.0  # a graceful close that takes longer is aborted
STOP_SLACK = 10.0  # beyond answer_grace: cancelling and closing every connection
SEND_TIMEOUT = 5.0  # writing every waiting request once the connections are open
OPEN_ERRORS = (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError)


class Holder:
    """The load's event loop, run in its own thread; `stop()` is the only call from other threads."""

    def __init__(self, base_url: str, shape: HeldLoad, report: HeldReport) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"an http:// base URL is needed, not {base_url!r}")
        self.port = parts.port or 80
        self.ip = str(socket.getaddrinfo(parts.hostname, self.port, type=socket.SOCK_STREAM)[0][4][0])  # once, not per connection
        self.host_header = parts.netloc
        self.shape, self.report = shape, report
        self.ready = threading.Event()
        self.failure: BaseException | None = None
        self.stop_requested = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self.release: asyncio.Event | None = None
        self.fire: asyncio.Event | None = None
        self.semaphore: asyncio.Semaphore | None = None
        self.deadline = 0.0
        self.writers: set[asyncio.StreamWriter] = set()
        self.written: list[asyncio.Future[None]] = []

    def run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # handed to the caller's thread by hold()
            self.failure = exc
        finally:
            self.ready.set()

    def stop(self) -> None:
        self.stop_requested = True
        loop, release = self.loop, self.release
        if loop is not None and release is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already ended
                loop.call_soon_threadsafe(release.set)

    async def _main(self) -> None:
        shape, report = self.shape, self.report
        loop = asyncio.get_running_loop()
        self.release, self.fire = asyncio.Event(), asyncio.Event()
        self.semaphore = asyncio.Semaphore(shape.open_concurrency)
        self.loop = loop
        if self.stop_requested:
            self.release.set()
        started = loop.time()
        self.deadline = started + shape.open_timeout
        health = f"GET {HEALTH_PATH} HTTP/1.1\r\nHost: {self.host_header}\r\n\r\n".encode("latin-1")
        trickle_head = (
            f"POST {TRICKLE_PATH} HTTP/1.1\r\nHost: {self.host_header}\r\nxx-relay-api-key: {RELAY_KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {TRICKLE_LENGTH}\r\n\r\n"
        ).encode("latin-1")
        phases: list[list[Callable[[asyncio.Future[None]], Coroutine[Any, Any, None]]]] = [
            [partial(self._held, report.idle, partial(self._ask, health), self._stay_idle)] * shape.idle_connections,
            [partial(self._held, report.trickling, partial(self._send, trickle_head), self._trickle)] * shape.trickling_bodies,
            [
                partial(self._waiting, kind, request)
                for kind, requests in ((report.delayed, shape.delayed_requests), (report.long_polls, shape.long_polls))
                for request in requests
            ],
        ]
        held: list[asyncio.Task[None]] = []
        waiting: list[asyncio.Task[None]] = []
        for number, phase in enumerate(phases):
            opened = [loop.create_future() for _ in phase]
            tasks = [asyncio.create_task(make(signal)) for make, signal in zip(phase, opened, strict=True)]
            (waiting if number == 2 else held).extend(tasks)
            if opened:
                await asyncio.wait(opened, timeout=max(0.0, self.deadline - loop.time()))
        self.fire.set()
        if self.written:  # each waiting task resolves its future once its request is written (or it gave up)
            await asyncio.wait(self.written, timeout=SEND_TIMEOUT)
        report.open_seconds = loop.time() - started
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.release.wait(), shape.settle_seconds)
        self.ready.set()
        held_from = loop.time()
        try:
            await asyncio.wait_for(self.release.wait(), shape.hold_seconds)
            report.released_by = "exit"
        except TimeoutError:
            report.released_by = "hold_seconds"
        self.release.set()
        report.held_seconds = loop.time() - held_from
        unanswered = [task for task in waiting if not task.done()]
        if unanswered:
            await asyncio.wait(unanswered, timeout=shape.answer_grace)
        everything = held + waiting
        for task in everything:
            task.cancel()
        _, stuck = await asyncio.wait(everything, timeout=STOP_SLACK / 2)
        if stuck:
            report.errors["connections not closed in time"] += len(stuck)
        for writer in list(self.writers):
            writer.transport.abort()

    async def _held(
        self,
        kind: KindReport,
        begin: Callable[[KindReport, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
        keep: Callable[[KindReport, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
        opened: asyncio.Future[None],
    ) -> None:
        """One held connection: `begin` within the open deadline, then `keep` until released or ended by the server."""
        assert self.semaphore is not None
        writer: asyncio.StreamWriter | None = None
        try:
            try:
                async with asyncio.timeout_at(self.deadline), self.semaphore:
                    reader, writer = await self._connect()
                    await begin(kind, reader, writer)
            except OPEN_ERRORS as exc:
                kind.errors[f"opening: {_why(exc)}"] += 1
                return
            finally:
                _signal(opened)
            kind.established += 1
            await keep(kind, reader, writer)
        except OPEN_ERRORS as exc:
            kind.errors[_why(exc)] += 1
        finally:
            if writer is not None:
                await self._close(writer)

    async def _waiting(self, kind: KindReport, request: bytes, opened: asyncio.Future[None]) -> None:
        """One waiting request: connect within the open deadline, send when every connection is open, wait for the answer."""
        assert self.semaphore is not None and self.fire is not None and self.release is not None
        loop = asyncio.get_running_loop()
        written: asyncio.Future[None] = loop.create_future()
        self.written.append(written)
        writer: asyncio.StreamWriter | None = None
        try:
            try:
                async with asyncio.timeout_at(self.deadline), self.semaphore:
                    reader, writer = await self._connect()
            except OPEN_ERRORS as exc:
                kind.errors[f"opening: {_why(exc)}"] += 1
                return
            finally:
                _signal(opened)
            await self.fire.wait()
            kind.established += 1
            while True:
                writer.write(request)
                sent = loop.time()
                kind.sent += 1
                _signal(written)
                try:
                    await writer.drain()
                    status = await _read_answer(reader)
                except asyncio.IncompleteReadError:
                    kind.closed_early += 1
                    kind.closed_after.append(loop.time() - sent)
                    kind.errors["closed without an answer"] += 1
                    return
                kind.answered += 1
                kind.statuses[status] += 1
                kind.elapsed.append(loop.time() - sent)
                if not await self._resend_due(sent):
                    return
        except OPEN_ERRORS as exc:
            kind.errors[_why(exc)] += 1
        finally:
            _signal(written)
            if writer is not None:
                await self._close(writer)

    async def _resend_due(self, sent: float) -> bool:
        """With `resend_after`, wait until that long after `sent`; False without it or once the load is released."""
        assert self.release is not None
        if self.shape.resend_after is None or self.release.is_set():
            return False
        remaining = sent + self.shape.resend_after - asyncio.get_running_loop().time()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.release.wait(), max(0.0, remaining))
        return not self.release.is_set()

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection(self.ip, self.port)
        self.writers.add(writer)
        return reader, writer

    async def _close(self, writer: asyncio.StreamWriter) -> None:
        """Close politely (FIN) when it is quick, else abort (RST); never wait longer than CLOSE_TIMEOUT."""
        self.writers.discard(writer)
        try:
            writer.close()
            await asyncio.wait_for(writer.wait_closed(), CLOSE_TIMEOUT)
        except (Exception, asyncio.CancelledError) as exc:
            writer.transport.abort()
            if isinstance(exc, asyncio.CancelledError):
                raise

    @staticmethod
    async def _send(data: bytes, kind: KindReport, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(data)
        await writer.drain()

    @staticmethod
    async def _ask(request: bytes, kind: KindReport, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        began = time.monotonic()
        writer.write(request)
        await writer.drain()
        status = await _read_answer(reader)
        kind.answered += 1
        kind.statuses[status] += 1
        kind.elapsed.append(time.monotonic() - began)

    async def _stay_idle(self, kind: KindReport, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        since = time.monotonic()
        data = await _read_or_reset(reader)
        self._ended_early(kind, since)
        if data:
            kind.errors["data on an idle connection"] += 1

    async def _trickle(self, kind: KindReport, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        since = time.monotonic()
        body = TRICKLE_JSON.ljust(TRICKLE_LENGTH)
        sent = 0
        watch = asyncio.ensure_future(_read_or_reset(reader))
        try:
            while not watch.done():
                await asyncio.wait([watch], timeout=self.shape.trickle_interval)
                if not watch.done() and sent < TRICKLE_LENGTH - 1 and not writer.is_closing():
                    writer.write(body[sent : sent + 1])
                    sent += 1
            data = watch.result()
        finally:
            watch.cancel()
        self._ended_early(kind, since)
        if data:
            kind.answered += 1
            kind.statuses[_status_of(data)] += 1
            kind.elapsed.append(time.monotonic() - since)

    def _ended_early(self, kind: KindReport, since: float) -> None:
        kind.closed_early += 1
        kind.closed_after.append(time.monotonic() - since)


async def _read_or_reset(reader: asyncio.StreamReader) -> bytes:
    """Whatever the server sends next; b"" when it closes or resets the connection."""
    try:
        return await reader.read(65536)
    except ConnectionError:
        return b""


async def _read_answer(reader: asyncio.StreamReader) -> int:
    """Read one whole HTTP/1.1 response (Content-Length, chunked or until close); its status."""
    while True:
        head = await reader.readuntil(b"\r\n\r\n")
        status = _status_of(head)
        if status >= 200:
            break  # 1xx (100 Continue) is followed by the real answer
    headers = dict(line.split(b":", 1) for line in head.split(b"\r\n")[1:] if b":" in line)
    headers = {name.strip().lower(): value.strip().lower() for name, value in headers.items()}
    if status in (204, 304):
        return status
    if headers.get(b"transfer-encoding", b"").endswith(b"chunked"):
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            await reader.readexactly(size + 2)
        while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
            pass
    elif b"content-length" in headers:
        await reader.readexactly(int(headers[b"content-length"]))
    else:
        await reader.read()  # delimited by the close
    return status


def _status_of(head: bytes) -> int:
    parts = head.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP response: {head[:40]!r}")
    return int(parts[1])


def _signal(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _why(exc: BaseException) -> str:
    if isinstance(exc, asyncio.IncompleteReadError):
        return "closed mid-answer"
    if isinstance(exc, TimeoutError):
        return "timeout"
    return type(exc).__name__

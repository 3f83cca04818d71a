"""Held load: slow and idle clients held against a server while a normal client is measured.

A server whose request threads can be pinned by clients that are slow (a body
trickling in) or waiting (a delayed answer, a long poll) freezes for everybody
else. `hold()` opens such connections from a background thread with its own
event loop and keeps them while the caller measures a normal client
(`probe_moves` in the tests, wrk in the benchmark runner); its report says
what was held and what the server did to it. Stdlib only (raw sockets through
asyncio), and every wait is bounded, so a frozen server fails a measurement
instead of hanging it.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import math
import resource
import socket
import statistics
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from urllib.parse import urlsplit

HEALTH_PATH = "/__admin/health"
TRICKLE_PATH = "/cdm/client/demo/load-customer-record"
RELAY_KEY = "demo-key"
TRICKLE_LENGTH = 4096  # the announced Content-Length; at most TRICKLE_LENGTH - 1 bytes are ever sent
TRICKLE_JSON = b'{"product_group_id": "default", "customer": {"ccid": "BAK-22000-001", "first_name": "Ada"}}'
MOVE_CCID = "BAK-11984-007"
MOVE_GROUPS = ("vip", "default")
CLOSE_TIMEOUT = 1.0  # a graceful close that takes longer is aborted
STOP_SLACK = 10.0  # beyond answer_grace: cancelling and closing every connection
READY_SLACK = 10.0  # beyond open_timeout: the thread starting and resolving the host
SEND_TIMEOUT = 5.0  # writing every waiting request once the connections are open
FD_MARGIN = 256  # descriptors beyond the held connections: the probe, wrk's pipes, logs
RequestTemplate = bytes | Callable[[int], bytes]  # a fixed raw request, or one built from its index
OPEN_ERRORS = (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError)


def repeat(template: RequestTemplate | None, count: int) -> list[bytes]:
    """`count` raw requests from a fixed request or a function of the index (None: no requests)."""
    if template is None:
        return []
    return [template(i) if callable(template) else template for i in range(count)]


def long_poll_request(base_url: str, timeout_ms: int = 30_000) -> bytes:
    """A journal long poll that nothing in the held load answers (it waits for a merge): it waits out `timeout_ms`."""
    body = b'{"operationId": "mergeCustomer", "timeout_ms": ' + str(timeout_ms).encode() + b"}"
    return raw_request(base_url, "POST", "/__admin/requests/wait", {"Content-Type": "application/json"}, body)


def raw_request(base_url: str, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b"") -> bytes:
    """One complete HTTP/1.1 request as bytes (Host and Content-Length filled in), for the waiting-request templates."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {urlsplit(base_url).netloc}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@dataclass(frozen=True)
class HeldLoad:
    """The shape of the load: how many connections of each kind, and for how long at most.

    `delayed_requests` and `long_polls` are complete raw requests, each sent on
    its own connection, all at once when every connection is open. With
    `resend_after`, each is sent again on its connection once answered, but
    no sooner than that many seconds after its previous send, until the
    release: a hold longer than the delay keeps every one waiting throughout,
    and a server that answers at once gets the same paced stream, not a flood.
    """

    idle_connections: int = 0  # one answered health check each, then silence on a kept-alive connection
    trickling_bodies: int = 0  # a load-customer-record head, then one body byte per trickle_interval, never complete
    delayed_requests: list[bytes] = field(default_factory=list)
    long_polls: list[bytes] = field(default_factory=list)
    hold_seconds: float = 30.0  # the load is released at the latest this long after hold() yields
    trickle_interval: float = 1.0
    open_concurrency: int = 200  # connections being opened at once: a fast ramp without a SYN flood
    open_timeout: float = 30.0  # one deadline for all three phases: every connection is open (or given up) within it
    answer_grace: float = 5.0  # on release, how long unanswered waiting requests may still be answered
    settle_seconds: float = 0.5  # between everything sent and the yield: the server takes up the held work
    resend_after: float | None = None  # seconds: send each waiting request again once answered (None: once only)

    @classmethod
    def full(cls, delayed: RequestTemplate | None = None, long_poll: RequestTemplate | None = None) -> HeldLoad:
        """The issue's shape: 2000 idle, 100 trickling, 200 delayed, 50 long polls, held 30 s."""
        return cls(2000, 100, repeat(delayed, 200), repeat(long_poll, 50), hold_seconds=30.0)

    @classmethod
    def light(cls, delayed: RequestTemplate | None = None, long_poll: RequestTemplate | None = None) -> HeldLoad:
        """A CI-sized shape: 300 idle, 20 trickling, 20 delayed, 10 long polls, held 8 s."""
        return cls(300, 20, repeat(delayed, 20), repeat(long_poll, 10), hold_seconds=8.0, open_timeout=10.0)

    @property
    def connections(self) -> int:
        return self.idle_connections + self.trickling_bodies + len(self.delayed_requests) + len(self.long_polls)


@dataclass
class KindReport:
    """What happened to the connections of one kind.

    `answered`/`statuses`/`elapsed`: for idle connections their health check,
    for trickling bodies an answer the server gave before the body was
    complete, for waiting requests their answer (elapsed from the send).
    `closed_early`: the server ended the connection (answered, closed, reset)
    before the load was released. `sent`: waiting requests sent (more than
    `established` when they are resent).
    """

    wanted: int = 0
    established: int = 0
    sent: int = 0
    closed_early: int = 0
    closed_after: list[float] = field(default_factory=list)  # seconds from established to the server's end
    answered: int = 0
    answered_late: int = 0  # of `answered`, after the release (within answer_grace)
    statuses: Counter[int] = field(default_factory=Counter)
    elapsed: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def unanswered(self) -> int:
        """Waiting requests still open when the load was closed (neither answered nor ended by the server)."""
        return self.sent - self.answered - self.closed_early

    @property
    def closed_after_min(self) -> float:
        return min(self.closed_after, default=math.nan)

    @property
    def closed_after_median(self) -> float:
        return statistics.median(self.closed_after) if self.closed_after else math.nan

    @property
    def elapsed_min(self) -> float:
        return min(self.elapsed, default=math.nan)

    @property
    def elapsed_median(self) -> float:
        return statistics.median(self.elapsed) if self.elapsed else math.nan

    @property
    def elapsed_max(self) -> float:
        return max(self.elapsed, default=math.nan)


@dataclass
class HeldReport:
    """Filled by the load's thread while it runs; final once `hold()` has exited."""

    idle: KindReport
    trickling: KindReport
    delayed: KindReport
    long_polls: KindReport
    open_seconds: float = math.nan  # from the start to every connection open (or given up)
    held_seconds: float = math.nan  # from the yield to the release
    released_by: str = ""  # "exit" (the with-block ended) or "hold_seconds"
    errors: Counter[str] = field(default_factory=Counter)  # the harness's own troubles

    @classmethod
    def of(cls, shape: HeldLoad) -> HeldReport:
        counts = (shape.idle_connections, shape.trickling_bodies, len(shape.delayed_requests), len(shape.long_polls))
        return cls(*(KindReport(wanted=count) for count in counts))

    def kinds(self) -> dict[str, KindReport]:
        return {"idle": self.idle, "trickling": self.trickling, "delayed": self.delayed, "long polls": self.long_polls}

    @property
    def all_established(self) -> bool:
        return all(kind.established == kind.wanted for kind in self.kinds().values())


@dataclass
class ProbeResult:
    """A normal client's view. Latencies cover every attempt, a failed one counting its time to fail."""

    answered: int
    failed: int  # timeouts, connection errors, 5xx
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def req_per_s(self) -> float:
        return self.answered / self.seconds if self.seconds > 0 else 0.0


@contextlib.contextmanager
def hold(base_url: str, shape: HeldLoad) -> Iterator[HeldReport]:
    """Hold `shape` against the server at `base_url` (http only) for the duration of the with-block.

    Opens idle connections first, then trickling bodies, then the waiting
    requests' connections (so a server frozen by the trickles still gets its
    idle connections), sends every waiting request at once, lets the server
    take it all up for `settle_seconds` and yields the report (check
    `report.all_established`). The load is released when the block ends or
    `hold_seconds` after the yield, whichever comes first; on exit unanswered
    waiting requests get `answer_grace` seconds, then every connection is
    closed and the thread is joined. A server that refuses or freezes shows
    in the report, never as a hang.
    """
    report = HeldReport.of(shape)
    raise_fd_limit(shape.connections + FD_MARGIN)
    holder = _Holder(base_url, shape, report)
    thread = threading.Thread(target=holder.run, name="held-load", daemon=True)
    thread.start()
    try:
        if not holder.ready.wait(shape.open_timeout + READY_SLACK):
            report.errors["not open in time"] += 1
        if holder.failure is not None:
            raise holder.failure
        yield report
    finally:
        holder.stop()
        thread.join(shape.answer_grace + STOP_SLACK)
        if thread.is_alive():
            raise RuntimeError("the held-load thread did not stop")  # a bug here: every wait in it is bounded
    if holder.failure is not None:
        raise holder.failure


def raise_fd_limit(needed: int) -> None:
    """Lift this process's soft descriptor limit to `needed` when the hard limit allows, or refuse early.

    Do it before starting the server from this process: a child inherits
    the limit in force when it starts.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise ValueError(f"the held load needs {needed} file descriptors; the hard limit is {hard} (ulimit -n)")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


class _Holder:
    """The load's event loop, run in its own thread; `stop()` is the only call from other threads."""

    def __init__(self, base_url: str, shape: HeldLoad, report: HeldReport) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"an http:// base URL is needed, not {base_url!r}")
        self.port = parts.port or 80
        self.ip = socket.getaddrinfo(parts.hostname, self.port, type=socket.SOCK_STREAM)[0][4][0]  # once, not per connection
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
        phases: list[list[Callable[[asyncio.Future[None]], Awaitable[None]]]] = [
            [partial(self._held, report.idle, partial(self._ask, health), self._stay_idle)] * shape.idle_connections,
            [partial(self._held, report.trickling, partial(self._send, trickle_head), self._trickle)] * shape.trickling_bodies,
            [partial(self._waiting, report.delayed, request) for request in shape.delayed_requests]
            + [partial(self._waiting, report.long_polls, request) for request in shape.long_polls],
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
                kind.answered_late += self.release.is_set()
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


# ---------------------------------------------------------------- the normal client


def probe_moves(
    base_url: str,
    seconds: float,
    *,
    timeout: float = 3.0,
    ccid: str = MOVE_CCID,
    groups: tuple[str, ...] = MOVE_GROUPS,
    key: str = RELAY_KEY,
) -> ProbeResult:
    """Sequential moveCustomer requests over one keep-alive connection for `seconds`, in the calling thread.

    Moves `ccid` to each of `groups` in turn; a 409 (it was there already,
    the state being unknown) is an answer like a 200. A timeout or a
    connection error reconnects. `timeout` bounds each socket operation, so
    the probe ends within about `seconds + timeout`.
    """
    parts = urlsplit(base_url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"an http:// base URL is needed, not {base_url!r}")
    prefix = parts.path.rstrip("/")
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    answered = failed = 0
    conn: http.client.HTTPConnection | None = None
    start = time.monotonic()
    deadline = start + seconds
    try:
        while time.monotonic() < deadline:
            path = f"{prefix}/cdm/client/demo/customer/{ccid}/move/{groups[len(latencies) % len(groups)]}"
            if conn is None:
                conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
            began = time.perf_counter()
            try:
                conn.request("PUT", path, headers={"xx-relay-api-key": key})
                response = conn.getresponse()
                response.read()
            except (OSError, http.client.HTTPException) as exc:
                latencies.append(time.perf_counter() - began)
                failed += 1
                errors["timeout" if isinstance(exc, TimeoutError) else type(exc).__name__] += 1
                conn.close()
                conn = None
                time.sleep(0.01)  # a refusing server must not turn this into a busy loop
                continue
            latencies.append(time.perf_counter() - began)
            statuses[response.status] += 1
            if response.status >= 500:
                failed += 1
            else:
                answered += 1
            if response.will_close:
                conn.close()
                conn = None
    finally:
        if conn is not None:
            conn.close()
    ordered = sorted(latencies)
    return ProbeResult(
        answered=answered,
        failed=failed,
        seconds=time.monotonic() - start,
        p50_ms=_percentile(ordered, 0.50) * 1000,
        p99_ms=_percentile(ordered, 0.99) * 1000,
        max_ms=(ordered[-1] if ordered else math.nan) * 1000,
        statuses=statuses,
        errors=errors,
    )


def _percentile(ordered: list[float], fraction: float) -> float:
    """Nearest rank."""
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


def describe(report: HeldReport | ProbeResult) -> str:
    """One line for a log or an assertion message."""
    if isinstance(report, ProbeResult):
        statuses = " ".join(f"{status}:{count}" for status, count in sorted(report.statuses.items()))
        errors = " ".join(f"{why}:{count}" for why, count in report.errors.most_common())
        return (
            f"probe: {report.answered} answered, {report.failed} failed in {report.seconds:.1f} s ({report.req_per_s:.0f} req/s), "
            f"p50 {report.p50_ms:.1f} ms, p99 {report.p99_ms:.1f} ms, max {report.max_ms:.1f} ms; statuses {statuses or '-'}"
            + (f"; errors {errors}" if errors else "")
        )
    parts = []
    for name, kind in report.kinds().items():
        if not kind.wanted:
            continue
        text = f"{name} {kind.established}/{kind.wanted}"
        if kind.closed_early:
            after = f"after >= {kind.closed_after_min:.1f} s, median {kind.closed_after_median:.1f} s"
            text += f" ({kind.closed_early} ended by the server, {after})"
        if name in ("delayed", "long polls") or (name == "trickling" and kind.answered):
            statuses = ",".join(f"{status}:{count}" for status, count in sorted(kind.statuses.items()))
            text += f" answered {kind.answered}/{kind.sent or kind.established} [{statuses}]"
            if kind.elapsed:
                text += f" in {kind.elapsed_min:.2f}-{kind.elapsed_max:.2f} s"
        if kind.errors:
            text += " errors " + ",".join(f"{why}:{count}" for why, count in kind.errors.most_common())
        parts.append(text)
    harness = f"; harness errors {dict(report.errors)}" if report.errors else ""
    return (
        f"held: {'; '.join(parts) or 'nothing'}; opened in {report.open_seconds:.1f} s, "
        f"held {report.held_seconds:.1f} s (released by {report.released_by or '-'}){harness}"
    )


__all__ = [
    "HeldLoad",
    "HeldReport",
    "KindReport",
    "ProbeResult",
    "describe",
    "hold",
    "probe_moves",
    "raise_fd_limit",
    "raw_request",
    "repeat",
]

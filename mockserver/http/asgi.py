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
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from urllib.parse import parse_qsl, unquote_to_bytes

import werkzeug.urls  # noqa: F401 - registers the "werkzeug.url_quote" codec error handler used below

from mockserver.contract.compiled import RawRequest
from mockserver.errors import ApiError
from mockserver.http.front import Front, now, session_header
from mockserver.http.pipeline import Pending, Waiting
from mockserver.http.render import ABANDONED, WireResponse
from mockserver.http.wirefaults import break_connection, find_socket
from mockserver.qa.sessions import SessionRefused, Visit
from mockserver.state import persistence

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


class ClientGone(Exception):
    """The client closed the connection before its request was whole."""


class AsgiApp:
    def __init__(self, front: Front):
        self.front = front
        self.pipeline = front.pipeline
        self.settings = front.settings
        self.waits = Waits(front.settings.max_waits)
        # Set when the server stops: delays end at once and long polls answer, so shutdown (and the
        # state file's last save) never waits for them.
        self.stopping = asyncio.Event()

    async def __call__(self, scope: dict, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        started, received = time.perf_counter(), now()
        raw = RawRequest(scope["method"], _path(scope), _query(scope), _headers(scope))
        own = self.front.before(raw)
        if own is not None:
            await _send(send, own)
            return
        query = scope.get("query_string", b"").decode("latin-1")
        try:
            visit = self.front.sessions.visit(session_header(raw))
        except SessionRefused as exc:
            answer = self.front.refused(raw, exc)
            self.front.record(self.front.sessions.default, raw, query, answer, received, started)
            await _send(send, self.front.finished(answer, raw))
            return
        try:
            try:
                raw = await self._with_body(raw, receive)
            except BodyTimeout:
                message = f"The request body did not arrive within {self.settings.body_timeout:g} s; the connection is closed."
                timeout = ApiError(408, message)
                answer = self.pipeline.layer_answer(raw, lambda family: timeout, {"Connection": "close"})
            except ClientGone:  # nothing runs for a request that never arrived whole, and nobody is left to answer
                answer = WireResponse(0, [], b"", None, (), None, ABANDONED)
            else:
                with persistence.deferred_syncs() as syncs:
                    answer = await self._answer(raw, visit, receive)
                if syncs:  # `--fsync always`: the change is on disk before its answer leaves; the loop goes on meanwhile
                    answer = await self._settled(syncs, answer, raw)
            # Journaled before it is sent: a client that has its answer finds its request in the journal.
            self.front.record(visit.journal_session, raw, query, answer, received, started)
            await self._deliver(scope, send, answer, raw)
        finally:
            visit.close()

    async def _answer(self, raw: RawRequest, visit: Visit, receive: Receive) -> WireResponse:
        try:
            begun = self.front.begin(raw, visit)
            if isinstance(begun, WireResponse):
                return begun
            pending, session = begun
            if pending.delay_s:
                refused = await self._sleep(pending)
                if refused is not None:
                    return refused
            done = self.front.conclude(pending, session)
            return await self._poll(done, receive) if isinstance(done, Waiting) else done
        except Exception:
            if self.settings.strict_responses:
                raise
            return self.front.unexpected(raw)

    async def _settled(self, syncs: list, answer: WireResponse, raw: RawRequest) -> WireResponse:
        """The answer once its changes are on disk (in a worker thread); a failed fsync is the documented 500."""
        try:
            await asyncio.get_running_loop().run_in_executor(None, persistence.settle, syncs)
        except OSError:
            log.exception("could not flush the command log: the change is not durable")
            return self.front.unexpected(raw)
        return answer

    async def _sleep(self, pending: Pending) -> WireResponse | None:
        """Wait out the delay on the loop, within the cap on waits; past it, the documented 500 and nothing run.

        The request runs when the delay ends even if its client left meanwhile, as on a slow real server.
        """
        if not self.waits.enter():
            message = f"Too many requests are waiting at once (--max-waits {self.waits.limit}); this one was not run."
            return self.pipeline.refuse(pending, ApiError(500, message))
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), pending.delay_s)
        finally:
            self.waits.leave()
        return None

    async def _poll(self, waiting: Waiting, receive: Receive) -> WireResponse:
        """A long poll: re-ask after each matching journal entry until ready, expired, stopped or abandoned.

        It holds no lock and no thread, and gives its slot back as soon as its client leaves. A shared
        journal (Redis) that cannot be read ends it with the documented 503.
        """
        try:
            return await self._polled(waiting, receive)
        except ApiError as error:
            return self.pipeline.refuse(waiting.pending, error)

    async def _polled(self, waiting: Waiting, receive: Receive) -> WireResponse:
        wait = waiting.wait
        seen = wait.journal.newest_id()
        reply = wait.poll()
        if reply is None:
            if not self.waits.enter():
                message = f"Too many requests are waiting at once (--max-waits {self.waits.limit}); try again later."
                return self.pipeline.refuse(waiting.pending, ApiError(503, message))
            gone = asyncio.ensure_future(_disconnected(receive))
            stop = asyncio.ensure_future(self.stopping.wait())
            try:
                deadline = time.monotonic() + wait.timeout_s
                while reply is None and (left := deadline - time.monotonic()) > 0 and not (gone.done() or stop.done()):
                    change = wait.journal.subscribe(wait.wanted, seen)
                    try:
                        await asyncio.wait([change, gone, stop], timeout=left, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        wait.journal.unsubscribe(change)
                    seen = wait.journal.newest_id()
                    reply = wait.poll()
            finally:
                self.waits.leave()
                gone.cancel()
                stop.cancel()
            if reply is None and gone.done() and not gone.cancelled():
                return WireResponse(0, [], b"", waiting.pending.operation.operation_id, (), None, ABANDONED)
        return self.pipeline.render_reply(waiting.pending, reply or wait.expired())

    async def _deliver(self, scope: dict, send: Send, answer: WireResponse, raw: RawRequest) -> None:
        if answer.fault == ABANDONED:
            return
        if answer.fault in ("connection_reset", "empty_response"):
            fd = find_socket(tuple(scope["server"]), tuple(scope["client"]))
            if fd is not None:
                break_connection(fd, answer.fault)
                return
            log.error("fault %s: the connection's socket was not found; answering instead", answer.fault)
        await _send(send, self.front.finished(answer, raw))

    async def _with_body(self, raw: RawRequest, receive: Receive) -> RawRequest:
        """The request with its whole body, or marked too large past `max_body_bytes` (an announced excess is not read)."""
        limit = self.settings.max_body_bytes
        declared = raw.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            return replace(raw, body_too_large=True)
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.settings.body_timeout):
                while True:
                    message = await receive()
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

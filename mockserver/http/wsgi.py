"""The mock served from WSGI (waitress, and Flask's test client): the request's I/O, around the one exchange.

The Flask face (app.py: `MockApp.wsgi_app`) hands every request here, vendor and admin APIs alike, whatever
its method or path: every answer is JSON or XML in the API's own format. Delays and long polls wait in the request's
thread (WSGI has no event loop), so the exchange's coroutine is driven to its end in one step
(io.run_to_end).
"""

from __future__ import annotations

import logging
import time

from werkzeug.wrappers import Request

from mockserver.contract.compiled import RawRequest
from mockserver.http.exchange import CONNECTION_FAULTS, Exchange
from mockserver.http.io import run_to_end
from mockserver.http.render import WireResponse
from mockserver.http.wirefaults import break_connection
from mockserver.qa.journal import Journal, RequestFilter
from mockserver.state.store import settle

log = logging.getLogger("mockserver")


def answer(exchange: Exchange, incoming: Request) -> WireResponse:
    """The exchange run in this thread; a connection fault is done on the server's socket before returning."""
    started, received = time.perf_counter(), time.time()
    raw = raw_request(incoming, exchange.settings.max_body_bytes)
    environ = incoming.environ
    done = run_to_end(exchange.answer(raw, environ.get("QUERY_STRING", ""), ThreadIo(), received, started))
    if done.fault in CONNECTION_FAULTS:
        _break(environ, done.fault)
    return done


class ThreadIo:
    """One request's waiting in its own thread (exchange.Io): every wait blocks, so the exchange never suspends."""

    client_gone = False  # WSGI does not tell: a long poll waits out its time

    async def body(self, raw: RawRequest) -> RawRequest:
        return raw  # read whole before the exchange (raw_request)

    def hold(self) -> bool:
        return True  # the server's threads are the cap

    def release(self) -> None:
        """Nothing was taken: `hold` counts nothing here."""

    async def sleep(self, seconds: float) -> None:
        time.sleep(seconds)  # holds this thread: WSGI has no event loop (see the README)

    async def changed(self, journal: Journal, wanted: RequestFilter, after_id: int, timeout: float) -> bool:
        journal.changed_blocking(after_id, timeout)
        return True

    async def settle(self, syncs: list) -> None:
        settle(syncs)


def _break(environ: dict, kind: str) -> None:
    """Act on waitress's own socket for this request (its channel is reachable from the environ)."""
    channel = getattr(environ.get("waitress.client_disconnected"), "__self__", None)
    sock = getattr(channel, "socket", None)
    if sock is None:
        log.error("fault %s: this WSGI server does not expose its socket; answering instead", kind)
        return
    break_connection(sock.fileno(), kind)


def raw_request(incoming: Request, max_body_bytes: int) -> RawRequest:
    """A werkzeug request as the contract sees it; an oversized body is refused unread."""
    environ = incoming.environ
    headers = {key[5:].replace("_", "-").lower(): value for key, value in environ.items() if key.startswith("HTTP_")}
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = environ["CONTENT_TYPE"]
    length = incoming.content_length
    too_large = length is not None and length > max_body_bytes
    body = b""
    if not too_large and (length or environ.get("wsgi.input_terminated")):
        body = incoming.stream.read(max_body_bytes + 1)
        too_large = len(body) > max_body_bytes
    return RawRequest(
        method=incoming.method,
        path=incoming.path,
        query=list(incoming.args.items(multi=True)) if environ.get("QUERY_STRING") else [],
        headers=headers,
        body=b"" if too_large else body,
        body_too_large=too_large,
    )

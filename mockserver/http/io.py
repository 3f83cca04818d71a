"""What an adapter does for the exchange (`Io`): the only reading and waiting a request needs.

The exchange (exchange.py) is one coroutine for both servers. Under granian each wait is awaited on the
event loop (asgi.LoopIo); under WSGI each blocks its thread (wsgi.ThreadIo), so the coroutine never
suspends and `run_to_end` completes it in one step, with no event loop.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, Protocol, TypeVar

from mockserver.contract.compiled import RawRequest
from mockserver.qa.journal import Journal, RequestFilter

T = TypeVar("T")


class BodyTimeout(Exception):
    """The request body did not arrive within the body deadline."""


class ClientGone(Exception):
    """The client closed the connection before its request was whole."""


class Io(Protocol):
    """What an adapter does for the exchange: the only reading and waiting a request needs."""

    async def body(self, raw: RawRequest) -> RawRequest:
        """The request with its whole body (or marked too large); BodyTimeout or ClientGone when it never came whole."""
        ...

    def hold(self) -> bool:
        """Take a place among the requests waiting at once (delays, long polls); False past the cap."""
        ...

    def release(self) -> None: ...

    async def sleep(self, seconds: float) -> None: ...

    async def changed(self, journal: Journal, wanted: RequestFilter, after_id: int, timeout: float) -> bool:
        """Wait until `journal` has an entry `wanted` accepts past `after_id`, or `timeout`; False when the wait
        must end anyway (the client left, the server stops)."""
        ...

    @property
    def client_gone(self) -> bool: ...

    async def settle(self, syncs: list) -> None:
        """Make the request's changes durable (`--fsync always`); OSError when they cannot be."""
        ...


def run_to_end(exchange: Coroutine[Any, Any, T]) -> T:
    """Run the exchange in this thread (WSGI): its I/O blocks instead of suspending, so one step completes it."""
    try:
        exchange.send(None)
    except StopIteration as done:
        return done.value
    exchange.close()
    raise RuntimeError("the exchange suspended in a thread: a blocking Io must never suspend")

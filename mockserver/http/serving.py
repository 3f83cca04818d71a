"""Running the mock: granian on an event loop in this very process, or waitress as the fallback.

granian (Rust HTTP) runs embedded on our own event loop (uvloop when
installed) with the ASGI app of `asgi.py`: idle connections, slow bodies and
delays wait on the loop and hold no thread, and the state lives in the one
process that serves it (no fork, no second copy). Its deadlines are ours:
`header_read_timeout` for request heads and idle keep-alive connections, the
body deadline in `asgi.py`, `backpressure` as the cap on open connections.

Waitress (pure Python, WSGI, a thread per request) is the fallback where
granian is not available; it buffers whole requests before the app sees
them, but a delay holds one of its threads (see the README).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
import logging
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from mockserver.http.asgi import AsgiApp
from mockserver.http.reload import Reloader
from mockserver.mock import Mock, create_mock
from mockserver.settings import Settings

log = logging.getLogger("mockserver")
SERVERS = ("granian", "waitress")
# Request line and headers larger than this are refused (431) by either server.
MAX_HEADER_BYTES = 32 * 1024


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the server on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def available_server() -> str:
    try:
        import granian  # noqa: F401
    except ImportError:
        return "waitress"
    return "granian"


def serve(settings: Settings, on_listening: Callable[[int], None] | None = None) -> None:
    """Build the app (so a bad fixture fails here, in the foreground) and serve it until stopped.

    `on_listening(port)` is called once the port is bound (the port actually bound for `--port 0`);
    a port that cannot be had raises OSError before it is called.
    """
    listened: list[int] = []

    def announce(port: int) -> None:
        listened.append(port)
        (on_listening or (lambda bound: _log_listening(settings, bound)))(port)

    mock = create_mock(settings)
    # The loaded state lives as long as the process and holds no reference
    # cycles: keep it out of the cyclic collector's sweeps, which grow with the heap.
    gc.freeze()
    state_file = mock.state_file
    if state_file:
        state_file.start(settings.save_interval)
    try:
        if settings.server == "waitress":
            _serve_waitress(mock, settings, announce)
        else:
            _serve_granian(mock, settings, announce)
    finally:
        if state_file:
            _final_save(state_file)
        if listened:  # a server that never listened (a busy port) just fails, with one error line
            log.info("mockserver stopped")


def _serve_waitress(mock: Mock, settings: Settings, announce: Callable[[int], None]) -> None:
    from waitress.server import create_server

    if settings.reload:
        Reloader(mock).start()  # swaps under the stores' and the registry's locks
    server = create_server(  # binds now: a busy port fails here, before anything is announced
        mock.flask,
        host=settings.host,
        port=settings.port,
        threads=settings.threads,
        ident="mockserver",
        max_request_header_size=MAX_HEADER_BYTES,
    )
    # One host: a TcpWSGIServer, whose effective_port (set by BaseWSGIServer.__init__) types-waitress leaves out.
    announce(server.effective_port)  # type: ignore[union-attr]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # unwind, so the state is saved
    try:
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a user stops it: a clean end, then the final save
            server.run()
    finally:
        server.close()


def _serve_granian(mock: Mock, settings: Settings, announce: Callable[[int], None]) -> None:
    asgi = mock.asgi()
    claimed = contextlib.nullcontext(settings.port) if settings.worker else claim_port(settings.host, settings.port)
    with claimed as port:  # a worker's port is its supervisor's, shared with its siblings (SO_REUSEPORT)
        run = _run_granian(asgi, replace(settings, port=port), announce, mock)
        try:
            import uvloop
        except ImportError:  # not on every platform: the standard loop serves too, a little slower
            asyncio.run(run)
        else:
            uvloop.run(run)


async def _run_granian(asgi: AsgiApp, settings: Settings, announce: Callable[[int], None], mock: Mock) -> None:
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings
    from granian.server.embed import Server

    logging.getLogger("_granian").setLevel(logging.ERROR)  # "embedded server is experimental" and start-up chatter
    server = Server(
        target=asgi,
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGINL,
        http=HTTPModes.http1,
        websockets=False,
        backlog=settings.max_connections,
        backpressure=settings.max_connections,
        http1_settings=HTTP1Settings(header_read_timeout=int(settings.head_timeout * 1000), max_buffer_size=MAX_HEADER_BYTES),
        log_enabled=False,
    )
    loop = asyncio.get_running_loop()

    def stop() -> None:
        asgi.stopping.set()  # pending delays end and long polls answer, so stopping waits for none of them
        server.stop()

    for number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(number, stop)
    if settings.reload:
        Reloader(mock, loop.call_soon_threadsafe).start()  # the swap runs on the loop, between two requests
    serving = asyncio.ensure_future(server.serve())
    await _until_accepting(settings.host, settings.port, serving)
    announce(settings.port)  # only now: a script reading --port-file may connect at once
    await serving


async def _until_accepting(host: str, port: int, serving: asyncio.Future, timeout: float = 30.0) -> None:
    """Return once the port accepts connections (granian's worker binds it a moment after `serve` starts);
    raise what `serve` raised if it ended first."""
    deadline = time.monotonic() + timeout
    while not serving.done():
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            if time.monotonic() > deadline:
                raise OSError(f"granian did not listen on {host}:{port} within {timeout:g} s") from None
            await asyncio.sleep(0.01)
            continue
        writer.close()
        return
    await serving  # it ended before listening: its error, if any, is raised here


def _log_listening(settings: Settings, port: int) -> None:
    log.info("mockserver listening on http://%s:%d (%s, fixtures %s)", settings.host, port, settings.server, settings.fixtures)


@contextlib.contextmanager
def claim_port(host: str, port: int) -> Iterator[int]:
    """The port granian is to bind: `port` if free, or for 0 one the system picks, held until the server is done.

    granian binds with SO_REUSEPORT, so a second mockserver on the same port would silently share it
    (and split the state): a taken port is refused here, like any server does. For port 0, a socket
    bound (not listening) with SO_REUSEPORT keeps the picked port ours while granian binds it too.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is fine, a listener is not
        if port:
            probe.bind((host, port))  # raises OSError (EADDRINUSE) when another server holds it
            probe.close()
            yield port
            return
        reuse_port = getattr(socket, "SO_REUSEPORT", None)
        if reuse_port is not None:
            probe.setsockopt(socket.SOL_SOCKET, reuse_port, 1)
        probe.bind((host, 0))
        picked = probe.getsockname()[1]
        if reuse_port is None:  # cannot be shared here: free it for granian (a moment's race)
            probe.close()
        yield picked


def _final_save(state_file: Any) -> None:
    try:
        if state_file.close():
            log.info("state saved to %s", state_file.path)
    except OSError as exc:
        log.error("could not save the state file %s: %s", state_file.path, exc)

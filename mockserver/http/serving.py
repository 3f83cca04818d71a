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
import gc
import ipaddress
import logging
import signal
import socket
import sys
from typing import Any

from flask import Flask

from mockserver.http.app import create_app
from mockserver.http.asgi import AsgiApp
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


def serve(settings: Settings) -> None:
    """Build the app (so a bad fixture fails here, in the foreground) and serve it until stopped."""
    app = create_app(settings)
    # The loaded state lives as long as the process and holds no reference
    # cycles: keep it out of the cyclic collector's sweeps, which grow with the heap.
    gc.freeze()
    state_file = app.extensions["mockserver"]["state_file"]
    stop_autosave = state_file.start_autosave(settings.save_interval) if state_file else None
    try:
        if settings.server == "waitress":
            _serve_waitress(app, settings)
        else:
            _serve_granian(app, settings)
    finally:
        if stop_autosave is not None:
            stop_autosave.set()
            _final_save(state_file)
        log.info("mockserver stopped")


def _serve_waitress(app: Flask, settings: Settings) -> None:
    import waitress

    _log_listening(settings, "waitress")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # unwind, so the state is saved
    try:
        waitress.serve(
            app,
            host=settings.host,
            port=settings.port,
            threads=settings.threads,
            ident="mockserver",
            max_request_header_size=MAX_HEADER_BYTES,
            _quiet=True,
        )
    except KeyboardInterrupt:
        pass


def _serve_granian(app: Flask, settings: Settings) -> None:
    asgi = AsgiApp(app.extensions["mockserver"]["front"])
    _refuse_busy_port(settings.host, settings.port)
    try:
        import uvloop
    except ImportError:  # not on every platform: the standard loop serves too, a little slower
        asyncio.run(_run_granian(asgi, settings))
    else:
        uvloop.run(_run_granian(asgi, settings))


async def _run_granian(asgi: AsgiApp, settings: Settings) -> None:
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
    _log_listening(settings, "granian")
    await server.serve()


def _log_listening(settings: Settings, server: str) -> None:
    log.info("mockserver listening on http://%s:%d (%s, fixtures %s)", settings.host, settings.port, server, settings.fixtures)


def _refuse_busy_port(host: str, port: int) -> None:
    """Fail like any server when the port is taken: granian binds with SO_REUSEPORT, so a
    second mockserver on the same port would silently share it (and split the state)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is fine, a listener is not
        probe.bind((host, port))  # raises OSError (EADDRINUSE) when another server holds it


def _final_save(state_file: Any) -> None:
    try:
        state_file.save()
        log.info("state saved to %s", state_file.path)
    except OSError as exc:
        log.error("could not save the state file %s: %s", state_file.path, exc)

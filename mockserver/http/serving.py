"""Running the app under a production WSGI server, in one process (state is in memory).

Granian (a Rust HTTP server) is the default: it serves the same Flask app
about twice as fast as waitress here (see benchmarks/RESULTS.md). Waitress,
pure Python, is the fallback where granian cannot be installed or started.
"""

from __future__ import annotations

import gc
import ipaddress
import json
import logging
import signal
import socket
import sys
from dataclasses import asdict
from functools import partial
from multiprocessing.util import Finalize
from pathlib import Path
from typing import Any

from flask import Flask

from mockserver.http.app import create_app
from mockserver.settings import Settings

log = logging.getLogger("mockserver")
SERVERS = ("granian", "waitress")
# Granian hands a request to a thread before its body has arrived, so a slow
# client holds a thread: many cheap idle threads keep others served. Waitress
# buffers whole requests first and needs few.
DEFAULT_THREADS = {"granian": 64, "waitress": 8}
# Request line and headers larger than this are refused (431) by either server.
MAX_HEADER_BYTES = 32 * 1024

# The app built in the parent before granian forks its worker; the worker
# reuses it instead of loading everything again (see `_worker_app`).
_prebuilt: Flask | None = None
_save_interval = 30.0


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


def serve(settings: Settings, host: str, port: int, server: str, threads: int, save_interval: float = 30.0) -> None:
    """Build the app (so a bad fixture fails here, in the foreground) and serve it until stopped."""
    global _prebuilt, _save_interval
    app = create_app(settings)
    # The loaded state lives as long as the process and holds no reference
    # cycles: keep it out of the cyclic collector's sweeps (which grow with
    # the heap) and out of copy-on-write faults after granian's fork.
    gc.freeze()
    _save_interval = save_interval
    log.info("mockserver listening on http://%s:%d (%s, fixtures %s)", host, port, server, settings.fixtures)
    if server == "waitress":
        import waitress

        _keep_state(app)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # exit cleanly, so the state is saved
        waitress.serve(
            app, host=host, port=port, threads=threads, ident="mockserver", max_request_header_size=MAX_HEADER_BYTES, _quiet=True
        )
        return
    from granian.constants import Interfaces
    from granian.http import HTTP1Settings
    from granian.server import Server

    _refuse_busy_port(host, port)

    _prebuilt = app
    settings_json = json.dumps({k: str(v) if isinstance(v, Path) else v for k, v in asdict(settings).items()})
    granian = Server(
        target="mockserver",
        address=host,
        port=port,
        interface=Interfaces.WSGI,
        workers=1,
        blocking_threads=threads,
        http1_settings=HTTP1Settings(max_buffer_size=MAX_HEADER_BYTES),
        log_enabled=False,
    )
    granian.serve(target_loader=partial(_worker_app, settings_json), wrap_loader=False)


def _refuse_busy_port(host: str, port: int) -> None:
    """Fail like any server when the port is taken: granian binds with SO_REUSEPORT, so a
    second mockserver on the same port would silently share it (and split the state)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is fine, a listener is not
        probe.bind((host, port))  # raises OSError (EADDRINUSE) when another server holds it


def _worker_app(settings_json: str) -> Any:
    """The WSGI app inside granian's worker: inherited when forked, rebuilt when spawned."""
    app = _prebuilt
    if app is None:
        values = json.loads(settings_json)
        for name in ("fixtures", "spec", "state_file"):
            values[name] = Path(values[name]) if values[name] else None
        app = create_app(Settings(**values))
    _keep_state(app)
    return app


def _keep_state(app: Flask) -> None:
    """In the process that serves: save the state periodically and when the process ends cleanly.

    Threads do not survive granian's fork, so this runs in the worker itself;
    multiprocessing's exit finalizers run both in a worker that returns and
    in the main process at interpreter exit.
    """
    state_file = app.extensions["mockserver"]["state_file"]
    if state_file is None:
        return
    state_file.start_autosave(_save_interval)
    Finalize(None, _final_save, args=(state_file,), exitpriority=100)


def _final_save(state_file: Any) -> None:
    try:
        state_file.save()
        log.info("state saved to %s", state_file.path)
    except OSError as exc:
        log.error("could not save the state file %s: %s", state_file.path, exc)

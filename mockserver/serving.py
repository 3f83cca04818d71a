"""Running the app under a production WSGI server, in one process (state is in memory).

Granian (a Rust HTTP server) is the default: it serves the same Flask app
about twice as fast as waitress here (see benchmarks/RESULTS.md). Waitress,
pure Python, is the fallback where granian cannot be installed or started.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

from flask import Flask

from mockserver.app import create_app
from mockserver.settings import Settings

log = logging.getLogger("mockserver")
SERVERS = ("granian", "waitress")

# The app built in the parent before granian forks its worker; the worker
# reuses it instead of loading everything again (see `_worker_app`).
_prebuilt: Flask | None = None


def available_server() -> str:
    try:
        import granian  # noqa: F401
    except ImportError:
        return "waitress"
    return "granian"


def serve(settings: Settings, host: str, port: int, server: str, threads: int) -> None:
    """Build the app (so a bad fixture fails here, in the foreground) and serve it until stopped."""
    global _prebuilt
    app = create_app(settings)
    log.info("mockserver listening on http://%s:%d (%s, fixtures %s)", host, port, server, settings.fixtures)
    if server == "waitress":
        import waitress

        waitress.serve(app, host=host, port=port, threads=threads, ident="mockserver", _quiet=True)
        return
    from granian.constants import Interfaces
    from granian.server import Server

    _prebuilt = app
    settings_json = json.dumps({k: str(v) if isinstance(v, Path) else v for k, v in asdict(settings).items()})
    granian = Server(
        target="mockserver",
        address=host,
        port=port,
        interface=Interfaces.WSGI,
        workers=1,
        blocking_threads=threads,
        log_enabled=False,
    )
    granian.serve(target_loader=partial(_worker_app, settings_json), wrap_loader=False)


def _worker_app(settings_json: str) -> Any:
    """The WSGI app inside granian's worker: inherited when forked, rebuilt when spawned."""
    if _prebuilt is not None:
        return _prebuilt
    values = json.loads(settings_json)
    values["fixtures"], values["spec"] = Path(values["fixtures"]), Path(values["spec"])
    return create_app(Settings(**values))

"""The pre-#10 serving design, for comparison: the mock's WSGI app under granian's WSGI interface.

    MOCKSERVER_BENCH_FIXTURES=fixture.json python -m granian --interface wsgi --workers 1 \\
        --blocking-threads 64 --no-log --http 1 benchmarks.wsgi_app:app

That was `mockserver serve`'s default before #10: one forked worker, 64
blocking threads, the app built by `create_app` (the worker loads it here).
The fixture file is the only state (no state file). `Prefer: delay` is
dropped on the way in: the old design had no delays (it ignored unknown
preferences, RFC 7240), while today's WSGI middleware would sleep one of the
threads on it, which is not what the old default did.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from mockserver.mock import create_app
from mockserver.resources import default_fixtures_path
from mockserver.settings import Settings

Wsgi = Callable[[dict, Callable[..., Any]], Iterable[bytes]]


def settings_from_env() -> Settings:
    """MOCKSERVER_BENCH_FIXTURES (default: the bundled demo)."""
    fixtures = os.environ.get("MOCKSERVER_BENCH_FIXTURES")
    return Settings(fixtures=Path(fixtures) if fixtures else default_fixtures_path())


def without_delay(app: Wsgi) -> Wsgi:
    """Drop `delay=` from `Prefer` (keeping `code=`), so a delayed request is answered at once, as before #10."""

    def wsgi(environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        prefer = environ.get("HTTP_PREFER")
        if prefer and "delay" in prefer.lower():
            kept = [item for item in prefer.split(",") if item.split(";", 1)[0].split("=", 1)[0].strip().lower() != "delay"]
            if kept:
                environ["HTTP_PREFER"] = ",".join(kept)
            else:
                del environ["HTTP_PREFER"]
        return app(environ, start_response)

    return wsgi


def build() -> Wsgi:
    flask_app = create_app(settings_from_env())
    gc.freeze()  # as the old `serve` did: the loaded state stays out of the cyclic collector's sweeps
    return without_delay(flask_app)


app = build()

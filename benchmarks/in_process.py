"""In process: the mock's ASGI app awaited directly on one uvloop loop, no sockets, no HTTP parsing, no wrk.

What a request costs the mock's own Python code, with none of the noise a
load generator sharing the machine's cores brings; the scope, receive and
send are built by hand, as tests/http/test_asgi.py does.
"""

from __future__ import annotations

import gc
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

CCID = "BAK-11984-007"  # of the default fixtures, in `default`: moved to vip and back, every answer a 200
MOVES = [("PUT", f"/cdm/client/demo/customer/{CCID}/move/{group}") for group in ("vip", "default")]
RETRIEVES = [("GET", f"/cdm/client/demo/customer/{CCID}")]
HEADERS = [(b"xx-relay-api-key", b"demo-key")]


def _scope(method: str, path: str) -> dict:
    return {
        "type": "http", "http_version": "1.1", "scheme": "http", "server": ("127.0.0.1", 8080), "client": ("127.0.0.1", 50000),
        "root_path": "", "method": method, "path": path, "raw_path": path.encode(), "query_string": b"", "headers": HEADERS,
    }  # fmt: skip


def app(settings: dict[str, Any]) -> tuple[Any, Any]:
    """The ASGI app `mockserver serve` would run with these Settings, and its state file (None without one)."""
    from mockserver.mock import create_mock
    from mockserver.settings import Settings

    mock = create_mock(Settings(**settings))
    return mock.asgi(), mock.state_file


async def _send_all(asgi: Any, requests: list[tuple[str, str]], count: int, statuses: Counter) -> float:
    """Seconds for `count` requests, one at a time, cycling through `requests`."""
    scopes, status = [_scope(method, path) for method, path in requests], [0]

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            status[0] = message["status"]

    started = time.perf_counter()
    for i in range(count):
        await asgi(scopes[i % len(scopes)], receive, send)
        statuses[status[0]] += 1
    return time.perf_counter() - started


def us_per_request(
    requests: list[tuple[str, str]], settings: Callable[[], dict[str, Any]], calls: int, repeats: int, warmup: int
) -> tuple[list[float], Counter]:
    """µs per request of each of `repeats` groups of `calls`, each group on a fresh app (`settings()` called anew) after
    `warmup` unrecorded requests (enough to fill the journal, so each new entry drops the oldest); the timed statuses."""
    import uvloop

    loop, groups, statuses = uvloop.new_event_loop(), list[float](), Counter[int]()
    try:
        for _ in range(repeats):
            gc.collect()  # the previous group's app is gone before this one is built
            asgi, state_file = app(settings())
            loop.run_until_complete(_send_all(asgi, requests, warmup, Counter()))
            groups.append(loop.run_until_complete(_send_all(asgi, requests, calls, statuses)) / calls * 1e6)
            if state_file is not None:
                state_file.close()
    finally:
        loop.close()
    return groups, statuses

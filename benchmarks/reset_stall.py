"""How long requests wait while the state is reset: the stall a test suite's resets inflict on the requests around them.

One client thread sends retrieveCustomer in a tight loop on one keep-alive
connection and times every request; meanwhile another thread posts
`/__admin/reset` a few times, a pause after each (the pause covers the work a
reset leaves to the background: the next spare state, freeing the old one).
The latencies of the requests sent while resets and their pauses ran are
compared with those of the same loop just before, with no reset (the
baseline, same run, same server).
"""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass

from benchmarks.servers import HOST

RETRIEVE = "/cdm/client/demo/customer/BAK-11984-007"
HEADERS = {"xx-relay-api-key": "demo-key"}


@dataclass
class Stall:
    baseline_max_ms: float
    baseline_p99_ms: float
    during_max_ms: float
    during_p99_ms: float
    requests_during: int
    reset_ms: list[float]  # how long each POST /__admin/reset took to answer
    errors: int


def measure(port: int, resets: int = 5, pause_s: float = 1.5, baseline_s: float = 2.0) -> Stall:
    """Baseline for `baseline_s`, then `resets` resets `pause_s` apart, the loop running throughout."""
    samples: list[tuple[float, float]] = []  # (sent at, latency s)
    stop = threading.Event()
    errors = [0]
    client = threading.Thread(target=_loop, args=(port, samples, stop, errors), daemon=True)
    client.start()
    time.sleep(baseline_s)
    first_reset = time.perf_counter()
    reset_ms = []
    for _ in range(resets):
        started = time.perf_counter()
        status = _post_reset(port)
        reset_ms.append((time.perf_counter() - started) * 1000)
        if status != 200:
            errors[0] += 1
        time.sleep(pause_s)
    stop.set()
    client.join(timeout=10)
    before = [latency for sent, latency in samples if sent < first_reset and sent > first_reset - baseline_s + 0.5]
    during = [latency for sent, latency in samples if sent >= first_reset]
    return Stall(_max(before), _p99(before), _max(during), _p99(during), len(during), reset_ms, errors[0])


def _loop(port: int, samples: list[tuple[float, float]], stop: threading.Event, errors: list[int]) -> None:
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    while not stop.is_set():
        sent = time.perf_counter()
        try:
            connection.request("GET", RETRIEVE, headers=HEADERS)
            response = connection.getresponse()
            response.read()
            ok = response.status == 200
        except (OSError, http.client.HTTPException):
            ok = False
            connection.close()
            connection = http.client.HTTPConnection(HOST, port, timeout=30)
        samples.append((sent, time.perf_counter() - sent))
        if not ok:
            errors[0] += 1
    connection.close()


def _post_reset(port: int) -> int:
    connection = http.client.HTTPConnection(HOST, port, timeout=120)
    try:
        connection.request("POST", "/__admin/reset")
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def _max(latencies: list[float]) -> float:
    return max(latencies, default=0.0) * 1000


def _p99(latencies: list[float]) -> float:
    if not latencies:
        return 0.0
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000

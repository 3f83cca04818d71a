"""Waiting costs no thread: idle, trickling, delayed and long-polling clients held at once, a normal client still served (#10).

The light shape runs in CI; `MOCKSERVER_HELD_LOAD=full` runs the issue's
shape (2,000 idle keep-alive connections, 100 trickling bodies, 200 requests
inside a 5 s delay and 50 journal long polls, held 30 s). The server's own deadlines are set above the
hold, so everything stays held for the whole measurement.
"""

from __future__ import annotations

import http.client
import math
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest

from mockserver.testing.harness import running_server
from mockserver.testing.held_load import HeldLoad, describe, hold, long_poll_request, raise_fd_limit, raw_request

pytestmark = pytest.mark.e2e
FULL = os.environ.get("MOCKSERVER_HELD_LOAD") == "full"
DELAY_MS = 5000
RETRIEVE = "/cdm/client/demo/customer/BAK-11984-008"
MOVE_CCID = "BAK-11984-007"
MOVE_GROUPS = ("vip", "default")
RELAY_KEY = "demo-key"


def shape_for(base: str) -> HeldLoad:
    delayed = raw_request(base, "GET", RETRIEVE, {"xx-relay-api-key": "demo-key", "Prefer": f"delay={DELAY_MS}"})
    long_poll = long_poll_request(base)
    return HeldLoad.full(delayed, long_poll) if FULL else HeldLoad.light(delayed, long_poll)


def test_a_normal_client_is_served_while_idle_trickling_and_delayed_clients_are_held():
    raise_fd_limit(2400 + 256)  # before the server starts: it inherits the limit
    deadline = str(120 if FULL else 60)
    with running_server("--head-timeout", deadline, "--body-timeout", deadline) as base:
        shape = shape_for(base)
        with hold(base, shape) as report:
            assert report.all_established, describe(report)
            probe = probe_moves(base, seconds=shape.hold_seconds - 3, timeout=3.0)
        print(describe(report), probe.describe(), sep="\n")
        idle, trickling, delayed = report.idle, report.trickling, report.delayed
        assert probe.failed == 0 and probe.answered > 100, probe.describe()
        assert probe.p99_ms < 250, probe.describe()  # a frozen server shows as 3 s timeouts; this bounds a real stall
        assert idle.closed_early == 0 and trickling.closed_early == 0, describe(report)
        assert delayed.statuses == {200: len(shape.delayed_requests)}, describe(report)
        assert delayed.elapsed_min >= DELAY_MS / 1000 - 0.05, describe(report)
        polls = report.long_polls
        assert polls.closed_early == 0 and set(polls.statuses) <= {408}, describe(report)  # still waiting, or timed out


# ---------------------------------------------------------------- the normal client


@dataclass
class ProbeResult:
    """A normal client's view. Latencies cover every attempt, a failed one counting its time to fail."""

    answered: int
    failed: int  # timeouts, connection errors, 5xx
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def req_per_s(self) -> float:
        return self.answered / self.seconds if self.seconds > 0 else 0.0

    def describe(self) -> str:
        """One line for a log or an assertion message."""
        statuses = " ".join(f"{status}:{count}" for status, count in sorted(self.statuses.items()))
        errors = " ".join(f"{why}:{count}" for why, count in self.errors.most_common())
        return (
            f"probe: {self.answered} answered, {self.failed} failed in {self.seconds:.1f} s ({self.req_per_s:.0f} req/s), "
            f"p50 {self.p50_ms:.1f} ms, p99 {self.p99_ms:.1f} ms, max {self.max_ms:.1f} ms; statuses {statuses or '-'}"
            + (f"; errors {errors}" if errors else "")
        )


def probe_moves(
    base_url: str,
    seconds: float,
    *,
    timeout: float = 3.0,
    ccid: str = MOVE_CCID,
    groups: tuple[str, ...] = MOVE_GROUPS,
    key: str = RELAY_KEY,
) -> ProbeResult:
    """Sequential moveCustomer requests over one keep-alive connection for `seconds`, in the calling thread.

    Moves `ccid` to each of `groups` in turn; a 409 (it was there already,
    the state being unknown) is an answer like a 200. A timeout or a
    connection error reconnects. `timeout` bounds each socket operation, so
    the probe ends within about `seconds + timeout`.
    """
    parts = urlsplit(base_url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"an http:// base URL is needed, not {base_url!r}")
    prefix = parts.path.rstrip("/")
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    answered = failed = 0
    conn: http.client.HTTPConnection | None = None
    start = time.monotonic()
    deadline = start + seconds
    try:
        while time.monotonic() < deadline:
            path = f"{prefix}/cdm/client/demo/customer/{ccid}/move/{groups[len(latencies) % len(groups)]}"
            if conn is None:
                conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
            began = time.perf_counter()
            try:
                conn.request("PUT", path, headers={"xx-relay-api-key": key})
                response = conn.getresponse()
                response.read()
            except (OSError, http.client.HTTPException) as exc:
                latencies.append(time.perf_counter() - began)
                failed += 1
                errors["timeout" if isinstance(exc, TimeoutError) else type(exc).__name__] += 1
                conn.close()
                conn = None
                time.sleep(0.01)  # a refusing server must not turn this into a busy loop
                continue
            latencies.append(time.perf_counter() - began)
            statuses[response.status] += 1
            if response.status >= 500:
                failed += 1
            else:
                answered += 1
            if response.will_close:
                conn.close()
                conn = None
    finally:
        if conn is not None:
            conn.close()
    ordered = sorted(latencies)
    return ProbeResult(
        answered=answered,
        failed=failed,
        seconds=time.monotonic() - start,
        p50_ms=_percentile(ordered, 0.50) * 1000,
        p99_ms=_percentile(ordered, 0.99) * 1000,
        max_ms=(ordered[-1] if ordered else math.nan) * 1000,
        statuses=statuses,
        errors=errors,
    )


def _percentile(ordered: list[float], fraction: float) -> float:
    """Nearest rank."""
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]

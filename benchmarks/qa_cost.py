"""What the QA toolkit of issue #9 costs every request: the journal, an active fault rule, live sessions.

Four configurations of `mockserver serve`, each measured two ways:

* over HTTP with wrk (moveCustomer, each load thread moving its own customers,
  so no 409), a fresh server per run loading the same fixture file, rounds
  interleaved so slow drift of a shared machine hits all alike;
* in process, the ASGI app called directly on one event loop, no sockets, so
  the difference between configurations is not buried in wrk's noise.

(a) is the path before #9 (journal off, no rules): every other figure is
compared with (a) of the same round.
"""

from __future__ import annotations

import asyncio
import gc
import http.client
import json
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from benchmarks import load, servers
from benchmarks.designs import Plan, Watch

GOAL = 0.9  # #9: moveCustomer req/s with the journal on and no rules vs the journal off, at least
SESSIONS = 100
SESSION_IDLE = "3600"  # s: the sessions stay live through the run
RULE = {"operationId": "getCustomersByIds", "status": 500}  # active, never matches a move
INPROCESS_CCID = "BAK-11984-007"  # starts in `default` in the default fixtures
INPROCESS_GROUPS = ("vip", "default")
TICKS_WINDOW = 0.25  # s: a shorter timed group is too short for CPU clock ticks to say what other processes used


@dataclass(frozen=True)
class Variant:
    """One configuration, given to `serve` as flags and to `create_app` as Settings, so both measurements agree."""

    key: str
    name: str
    journal_size: int
    rule: bool = False
    sessions: int = 0

    @property
    def label(self) -> str:
        return f"({self.key}) {self.name}"

    def serve_argv(self, port: int, fixture: Path) -> list[str]:
        argv = servers.mockserver_argv("granian", port, fixture) + ["--journal-size", str(self.journal_size)]
        return argv + ["--session-idle", SESSION_IDLE] if self.sessions else argv

    def settings(self) -> dict:
        """The same configuration for `create_app(Settings(...))`."""
        return {"journal_size": self.journal_size, **({"session_idle": float(SESSION_IDLE)} if self.sessions else {})}


BASELINE = Variant("a", "journal off (`--journal-size 0`), no rules: the path before #9", 0)
JOURNAL = Variant("b", "journal on (1,000 entries), no rules", 1000)
VARIANTS = (
    BASELINE,
    JOURNAL,
    Variant("c", "journal on + 1 active rule that never matches a move", 1000, rule=True),
    Variant("d", f"journal on + {SESSIONS} live sessions", 1000, sessions=SESSIONS),
)


def session_id(i: int) -> str:
    return f"s{i:03d}"


# ---------------------------------------------------------------- over HTTP (wrk)


@dataclass
class Run:
    round: int
    variant: Variant
    result: load.LoadResult | None = None
    checked: str = ""  # what the admin API said after the load
    error: str = ""  # the first line, for the table
    detail: str = ""  # the whole error (with the server's log tail), for stderr: the log dies with the temporary directory

    def failures(self) -> list[str]:
        if self.error:
            return [self.error]
        assert self.result is not None
        why = []
        if self.result.requests == 0:
            why.append("no answer")
        if self.result.socket_errors:
            why.append(f"{self.result.socket_errors:,} socket errors/timeouts")
        if self.result.non_2xx:
            why.append(f"{self.result.non_2xx:,} non-2xx")
        return why

    @property
    def rps(self) -> float | None:
        """None for a failed run: its rate measures nothing comparable."""
        return self.result.rps if self.result and not self.failures() else None


def admin(port: int, method: str, path: str, body: dict | None = None, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    conn = http.client.HTTPConnection(servers.HOST, port, timeout=5)
    try:
        data = None if body is None else json.dumps(body).encode()
        sent = {**(headers or {}), **({"Content-Type": "application/json"} if data else {})}
        conn.request(method, path, body=data, headers=sent)
        response = conn.getresponse()
        raw = response.read()
        return response.status, json.loads(raw) if raw else {}
    finally:
        conn.close()


def prepare(port: int, variant: Variant) -> None:
    """The rule and the sessions, before the load; raises if the server did not take them."""
    if variant.rule:
        status, answer = admin(port, "POST", "/__admin/faults", RULE)
        if status != 201:
            raise RuntimeError(f"POST /__admin/faults answered {status}: {answer}")
    for i in range(variant.sessions):
        status, answer = admin(port, "GET", "/__admin/health", headers={"X-Mock-Session": session_id(i)})
        if status != 200:
            raise RuntimeError(f"session {session_id(i)}: GET /__admin/health answered {status}: {answer}")


def inspect(port: int, variant: Variant) -> str:
    """What the admin API says after the load: the journal filled (or off), the rule unmatched, the sessions still live."""
    _, found = admin(port, "GET", "/__admin/requests?limit=1")
    checked = [f"journal {found.get('total', '?'):,} entries"]
    if variant.rule:
        _, faults = admin(port, "GET", "/__admin/faults")
        checked.append("rule matched " + ", ".join(str(rule["matched"]) for rule in faults.get("faults", [])))
    if variant.sessions:
        _, live = admin(port, "GET", "/__admin/sessions")
        checked.append(f"{len(live.get('sessions', [])) - 1} sessions live")
    return "; ".join(checked)


def measure(variant: Variant, fixture: Path, plan: Plan, round_: int, watch: Watch) -> Run:
    """One wrk run of moveCustomer on a fresh server set up as `variant`; errors become a failed Run."""
    run = Run(round_, variant)
    tag = f"qa-cost-{round_}-{variant.key}"
    port = servers.free_port()
    scenario = load.move_scenario(plan.customers)
    moves = partial(load.run_load, scenario, port, plan.duration, plan.threads, plan.connections, plan.workdir, plan.client)
    try:
        with servers.ServerProcess(tag, variant.serve_argv(port, fixture), plan.workdir) as proc:
            proc.wait_ready(partial(servers.mockserver_probe, port), 60)
            prepare(port, variant)
            if plan.full:  # one unrecorded second of GETs (no state change): first-request costs are not measured
                load.run_load(load.retrieve_scenario(), port, 1, plan.threads, plan.connections, plan.workdir, plan.client)
            run.result = watch(proc, moves)
            run.checked = inspect(port, variant)
    except Exception as exc:  # noqa: BLE001 - shown as a failed run; the other runs go on
        run.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        run.detail = f"{type(exc).__name__}: {exc}"
    return run


def reference(run: Run, runs: list[Run]) -> Run | None:
    return next((r for r in runs if r.round == run.round and r.variant == BASELINE), None)


def ratio(run: Run, runs: list[Run]) -> float | None:
    ref = reference(run, runs)
    return run.rps / ref.rps if ref and ref.rps and run.rps else None


def cost_us(run: Run, runs: list[Run]) -> float | None:
    """Extra µs per request vs (a): the server answers on one loop, so 1e6 / req/s is its time per request."""
    ref = reference(run, runs)
    return 1e6 / run.rps - 1e6 / ref.rps if ref and ref.rps and run.rps else None


def worst_journal_ratio(runs: list[Run]) -> float | None:
    """(b) vs (a), the worst round; None if any round has no figure (a failed run)."""
    ratios = [ratio(r, runs) for r in runs if r.variant == JOURNAL]
    return None if not ratios or None in ratios else min(r for r in ratios if r is not None)


HEADER = [
    "round", "configuration", "req/s", "p50 (ms)", "p99 (ms)", "vs (a)", "µs/request (1e6 / req/s)", "cost vs (a) (µs/request)",
    "statuses", "failures", "checked after the run", "other CPU (cores)",
]  # fmt: skip
ALIGN = "rlrrrrrrllll"


def row(run: Run, runs: list[Run]) -> list[str]:
    result = run.result
    answered = result is not None and result.requests > 0
    measured, cost = ratio(run, runs), cost_us(run, runs)
    return [
        str(run.round),
        run.variant.label,
        f"{result.rps:,.0f}" if result else "—",
        f"{result.p50_ms:.2f}" if answered else "—",
        f"{result.p99_ms:.2f}" if answered else "—",
        "reference" if run.variant == BASELINE else ("—" if measured is None else f"{measured:.2f}x"),
        f"{1e6 / run.rps:.1f}" if run.rps else "—",
        "—" if run.variant == BASELINE or cost is None else f"{cost:+.1f}",
        (result.status_mix() if result else "") or "—",
        "; ".join(run.failures()) or "none",
        run.checked or "—",
        "—" if result is None or result.other_cpu is None else f"{result.other_cpu:.2f}",
    ]


# ---------------------------------------------------------------- in process (the ASGI app, no sockets)


@dataclass
class Timing:
    variant: Variant
    groups_us: list[float] = field(default_factory=list)  # µs per request of each timed group
    statuses: Counter = field(default_factory=Counter)
    other_cpu: list[float] = field(default_factory=list)  # cores other processes used, groups long enough to tell

    @property
    def best(self) -> float:
        return min(self.groups_us)

    @property
    def worst_other_cpu(self) -> float | None:
        return max(self.other_cpu, default=None)


def _scope(method: str, path: str, headers: dict[str, str]) -> dict:
    """What granian hands the app, as tests/http/test_asgi.py builds it."""
    return {
        "type": "http", "http_version": "1.1", "scheme": "http", "server": ("127.0.0.1", 8080), "client": ("127.0.0.1", 50000),
        "root_path": "", "method": method, "path": path, "raw_path": path.encode(), "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }  # fmt: skip


async def _call(app, scope: dict, body: bytes = b"") -> tuple[int, bytes]:
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


async def _build(variant: Variant):
    """A fresh app set up as `variant`, through its own admin API."""
    from mockserver.mock import create_app
    from mockserver.settings import Settings

    app = create_app(Settings(**variant.settings())).mock.asgi()
    if variant.rule:
        status, body = await _call(app, _scope("POST", "/__admin/faults", {"content-type": "application/json"}), json.dumps(RULE).encode())
        if status != 201:
            raise RuntimeError(f"in-process POST /__admin/faults answered {status}: {body[:200]!r}")
    for i in range(variant.sessions):
        status, body = await _call(app, _scope("GET", "/__admin/health", {"x-mock-session": session_id(i)}))
        if status != 200:
            raise RuntimeError(f"in-process session {session_id(i)} answered {status}: {body[:200]!r}")
    return app


async def _moves(app, count: int, statuses: Counter) -> float:
    """Seconds for `count` moves of one customer, alternately to each group (every one a 200)."""
    scopes = [_scope("PUT", f"/cdm/client/demo/customer/{INPROCESS_CCID}/move/{g}", load.RELAY_KEY) for g in INPROCESS_GROUPS]
    status = [0]

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            status[0] = message["status"]

    started = time.perf_counter()
    for i in range(count):
        await app(scopes[i % 2], receive, send)
        statuses[status[0]] += 1
    return time.perf_counter() - started


async def _time_group(variant: Variant, calls: int, warmup: int, timing: Timing) -> None:
    """One timed group on a fresh app, after `warmup` unrecorded moves (enough to fill the journal)."""
    gc.collect()  # the previous group's app is gone before this one is built
    app = await _build(variant)
    await _moves(app, warmup, Counter())
    busy, own = servers.busy_ticks(), _own_ticks()
    seconds = await _moves(app, calls, timing.statuses)
    if seconds >= TICKS_WINDOW:
        others = (servers.busy_ticks() - busy - (_own_ticks() - own)) / os.sysconf("SC_CLK_TCK") / seconds
        timing.other_cpu.append(max(0.0, others))
    timing.groups_us.append(seconds / calls * 1e6)


def _own_ticks() -> int:
    """This process's CPU (all its threads), in clock ticks."""
    user, system = os.times()[:2]
    return round((user + system) * os.sysconf("SC_CLK_TCK"))


def _new_loop() -> tuple[asyncio.AbstractEventLoop, str]:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop(), "asyncio's default loop (uvloop not installed)"
    return uvloop.new_event_loop(), "uvloop"


def in_process(calls: int, repeats: int, warmup: int, progress: Callable[[str], None]) -> tuple[list[Timing], str]:
    """µs per moveCustomer of each variant: `repeats` rounds of one group per variant, interleaved, on one loop."""
    timings = [Timing(variant) for variant in VARIANTS]
    loop, loop_name = _new_loop()
    try:
        for round_ in range(1, repeats + 1):
            for timing in timings:
                loop.run_until_complete(_time_group(timing.variant, calls, warmup, timing))
                progress(f"qa-cost in-process round {round_}: {timing.variant.label}: {timing.groups_us[-1]:.1f} µs/request")
    finally:
        loop.close()
    return timings, loop_name


INPROCESS_HEADER = [
    "configuration", "µs/request (best)", "every group (µs/request)", "cost vs (a) (µs/request)", "req/s equivalent vs (a)",
    "statuses", "other CPU (cores, worst group)",
]  # fmt: skip
INPROCESS_ALIGN = "lrrrrlr"


def in_process_row(timing: Timing, baseline: Timing) -> list[str]:
    first = timing.variant == BASELINE
    return [
        timing.variant.label,
        f"{timing.best:.1f}",
        ", ".join(f"{us:.1f}" for us in timing.groups_us),
        "reference" if first else f"{timing.best - baseline.best:+.1f}",
        "reference" if first else f"{baseline.best / timing.best:.2f}x",
        " ".join(f"{status}:{count}" for status, count in sorted(timing.statuses.items())),
        "—" if timing.worst_other_cpu is None else f"{timing.worst_other_cpu:.2f}",
    ]

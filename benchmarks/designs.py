"""The serving designs of issue #10 side by side: a normal client's moveCustomer, idle and under the held load.

Designs: the old default (granian's WSGI interface, 64 blocking threads in
a forked worker: `mockserver serve` before #10), the same with 1 thread, and
the new design (`mockserver serve`: granian embedded on uvloop, ASGI front).
Each run gets a fresh server loading the same fixture file, so every run's
moves start from the same state and none can be a 409. `measure` never
raises and never hangs: a frozen server is a failed run (wrk's own deadline
and timeouts, the held load's bounded waits).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

from benchmarks import load, servers
from mockserver.testing.held_load import HeldLoad, HeldReport, KindReport, hold, long_poll_request, raise_fd_limit, raw_request

DELAY_MS = 5000  # the held load's delayed requests: `Prefer: delay=5000`, as in tests/e2e/test_held_load.py
DELAYED_PATH = "/cdm/client/demo/customer/BAK-11984-008"
HELD_DEADLINE = "120"  # --head-timeout/--body-timeout (s) of the new design's held runs: nothing is closed during a run
OLD_THREADS = 64  # `mockserver serve --threads` default on granian before #10
OLD_BUFFER = "32768"  # the old serve's HTTP1Settings(max_buffer_size=MAX_HEADER_BYTES)
HOLD_SLACK = 60.0  # the load is released when wrk ends; hold_seconds is only a backstop
OPEN_TIMEOUT = 10.0  # 2,000 connections open in about 1 s on a healthy server; a refusing one costs this much
ANSWER_GRACE = 1.0  # on release, delayed requests still in flight are not waited for: they are not measured
FD_MARGIN = 256


@dataclass(frozen=True)
class Design:
    name: str
    wsgi_threads: int | None = None  # granian WSGI with this many blocking threads; None: `mockserver serve`

    def argv(self, port: int, fixture: Path, held: bool) -> list[str]:
        if self.wsgi_threads is None:
            argv = servers.mockserver_argv("granian", port, fixture)
            return argv + ["--head-timeout", HELD_DEADLINE, "--body-timeout", HELD_DEADLINE] if held else argv
        return [
            sys.executable, "-m", "granian", "--interface", "wsgi", "--workers", "1", "--blocking-threads", str(self.wsgi_threads),
            "--no-log", "--host", servers.HOST, "--port", str(port), "--http", "1", "--http1-buffer-size", OLD_BUFFER,
            "benchmarks.wsgi_app:app",
        ]  # fmt: skip

    def env(self, fixture: Path) -> dict[str, str]:
        return {} if self.wsgi_threads is None else {"MOCKSERVER_BENCH_FIXTURES": str(fixture)}


OLD = Design(f"old default: granian WSGI, {OLD_THREADS} threads", OLD_THREADS)
NEW = Design("new: `mockserver serve` (embedded granian, uvloop, ASGI)")
DESIGNS = (OLD, Design("granian WSGI, 1 thread", 1), NEW)


@dataclass(frozen=True)
class Goal:
    ratio: float  # req/s vs the old default's idle run, at least
    p99_ms: float  # at most

    def text(self, held: bool) -> str:
        return f"≥ {self.ratio:g}x, p99 ≤ {self.p99_ms:g} ms" + (", no failure" if held else "")


GOALS = {False: Goal(1.6, 2.5), True: Goal(1.3, 5.0)}  # idle, held


@dataclass(frozen=True)
class Plan:
    """What every run of the phase shares."""

    duration: float
    threads: int
    connections: int
    client: str
    customers: int
    full: bool  # the held shape (else the CI-sized one) and a warm-up before measuring
    workdir: Path


@dataclass
class Outcome:
    round: int
    design: Design
    held: bool
    result: load.LoadResult | None = None
    held_report: HeldReport | None = None
    error: str = ""

    def failures(self) -> list[str]:
        """Why this run failed: the normal client's errors, or a held load the server refused or cut."""
        if self.error:
            return [self.error]
        assert self.result is not None
        result, why = self.result, []
        if result.requests == 0:
            why.append(f"no answer in {result.seconds:.0f} s")
        if result.socket_errors:
            why.append(f"{result.socket_errors:,} socket errors/timeouts")
        if result.non_2xx:
            why.append(f"{result.non_2xx:,} non-2xx")
        if self.held_report is not None:
            why += _held_failures(self.held_report)
        return why


def _held_failures(report: HeldReport) -> list[str]:
    why = []
    refused = [f"{name} {kind.established}/{kind.wanted}" for name, kind in report.kinds().items() if kind.established < kind.wanted]
    if refused:
        why.append("held load not accepted: " + ", ".join(refused))
    cut = sum(kind.closed_early for kind in report.kinds().values())
    if cut:
        why.append(f"{cut:,} held connections ended by the server")
    if any(status != 200 for status in report.delayed.statuses):
        why.append("delayed answers other than 200")
    return why


def held_shape(base_url: str, plan: Plan) -> HeldLoad:
    """The issue's shape (or the CI one), held until wrk ends, each delayed request resent so 200 keep waiting."""
    delayed = raw_request(base_url, "GET", DELAYED_PATH, {"xx-relay-api-key": "demo-key", "Prefer": f"delay={DELAY_MS}"})
    long_poll = long_poll_request(base_url)  # waits for a merge that never comes: held through the run
    shape = HeldLoad.full(delayed, long_poll) if plan.full else HeldLoad.light(delayed, long_poll)
    return replace(
        shape,
        hold_seconds=plan.duration + HOLD_SLACK,
        open_timeout=min(shape.open_timeout, OPEN_TIMEOUT),
        answer_grace=ANSWER_GRACE,
        resend_after=DELAY_MS / 1000,
    )


def describe_shape(plan: Plan) -> str:
    shape = held_shape(f"http://{servers.HOST}:0", plan)
    return (
        f"{shape.idle_connections:,} idle keep-alive connections, {shape.trickling_bodies:,} trickling bodies"
        f" (1 byte/{shape.trickle_interval:g} s), {len(shape.delayed_requests):,} GET retrieveCustomer with `Prefer: delay={DELAY_MS}`,"
        f" {len(shape.long_polls):,} journal long polls (`POST /__admin/requests/wait`, 30 s, for a merge that never comes)"
    )


Watch = Callable[[servers.ServerProcess, Callable[[], load.LoadResult]], load.LoadResult]


def measure(design: Design, held: bool, fixture: Path, plan: Plan, round_: int, watch: Watch) -> Outcome:
    """One wrk run of moveCustomer on a fresh server, idle or under the held load; errors become a failed Outcome.

    `watch(proc, run)` runs the load and records what else used the CPU meanwhile.
    """
    outcome = Outcome(round_, design, held)
    tag = f"serving-{round_}-{DESIGNS.index(design)}-{'held' if held else 'idle'}"
    port = servers.free_port()
    base = f"http://{servers.HOST}:{port}"
    shape = held_shape(base, plan)
    moves = load.move_scenario(plan.customers)
    run = partial(load.run_load, moves, port, plan.duration, plan.threads, plan.connections, plan.workdir, plan.client)
    try:
        raise_fd_limit(shape.connections + FD_MARGIN)  # before the server starts: it inherits the limit
        with servers.ServerProcess(tag, design.argv(port, fixture, held), plan.workdir, design.env(fixture)) as proc:
            proc.wait_ready(partial(servers.mockserver_probe, port), 60)
            if plan.full:  # one unrecorded second of GETs (no state change): first-request costs are not measured
                load.run_load(load.retrieve_scenario(), port, 1, plan.threads, plan.connections, plan.workdir, plan.client)
            if not held:
                outcome.result = watch(proc, run)
                return outcome
            with hold(base, shape) as report:
                outcome.held_report = report
                outcome.result = watch(proc, run)
    except Exception as exc:  # noqa: BLE001 - shown as a failed run; the other runs go on
        outcome.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return outcome


# ---------------------------------------------------------------- the table


def reference(outcomes: list[Outcome], round_: int) -> float | None:
    """req/s of the old default's idle run in this round: what the ratios are against."""
    for outcome in outcomes:
        if outcome.round == round_ and outcome.design == OLD and not outcome.held and outcome.result and not outcome.failures():
            return outcome.result.rps
    return None


def ratio(outcome: Outcome, outcomes: list[Outcome]) -> float | None:
    ref = reference(outcomes, outcome.round)
    return outcome.result.rps / ref if outcome.result and ref else None


def p99(outcome: Outcome) -> float | None:
    """None when nothing was answered (wrk's 0 would look like a perfect latency)."""
    return outcome.result.p99_ms if outcome.result and outcome.result.requests else None


def verdict(outcome: Outcome, outcomes: list[Outcome]) -> str:
    if outcome.design == OLD and not outcome.held:
        return "reference"
    if outcome.failures():
        return "**failed**"
    goal, measured, latency = GOALS[outcome.held], ratio(outcome, outcomes), p99(outcome)
    missed = []
    if measured is None or measured < goal.ratio:
        missed.append("req/s")
    if latency is None or latency > goal.p99_ms:
        missed.append("p99")
    return f"**missed** ({', '.join(missed)})" if missed else "met"


def held_summary(report: HeldReport | None) -> str:
    """What was held during the run, kind by kind."""
    if report is None:
        return "—"
    parts = [f"idle {_kind(report.idle)}", f"trickling {_kind(report.trickling)}", f"delayed {_kind(report.delayed)}"]
    delayed = report.delayed
    if delayed.answered:
        parts[-1] += f" ({delayed.answered:,} answers in {delayed.elapsed_min:.2f}–{delayed.elapsed_max:.2f} s)"
    parts.append(f"long polls {_kind(report.long_polls)}")
    return "; ".join(parts)


def _kind(kind: KindReport) -> str:
    text = f"{kind.established:,}/{kind.wanted:,}"
    return text + (f", {kind.closed_early:,} ended by the server" if kind.closed_early else "")


def row(outcome: Outcome, outcomes: list[Outcome]) -> list[str]:
    result = outcome.result
    figures = ["—"] * 3 if result is None else [f"{result.rps:,.0f}", _ms(result.p50_ms if result.requests else None), _ms(p99(outcome))]
    measured = ratio(outcome, outcomes)
    other = "—" if result is None or result.other_cpu is None else f"{result.other_cpu:.2f}"
    return [
        str(outcome.round),
        outcome.design.name,
        "held" if outcome.held else "idle",
        *figures,
        "—" if measured is None else f"{measured:.2f}x",
        "; ".join(outcome.failures()) or "none",
        (result.status_mix() if result else "") or "—",
        held_summary(outcome.held_report),
        GOALS[outcome.held].text(outcome.held),
        verdict(outcome, outcomes),
        other,
    ]


HEADER = [
    "round", "design", "load", "req/s", "p50 (ms)", "p99 (ms)", "vs old idle", "failures", "statuses", "held during the run",
    "goal", "verdict", "other CPU (cores)",
]  # fmt: skip
ALIGN = "rllrrrrlllllr"


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"

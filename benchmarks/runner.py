"""The benchmark run: every figure of issue 4 in one run, printed as Markdown.

    python -m benchmarks                   # full run (about 17 minutes on 2 cores)
    python -m benchmarks --smoke           # seconds: checks the harness works, not how fast
    python -m benchmarks --write-results   # also record the output in benchmarks/RESULTS.md
    python -m benchmarks --only serving    # one phase (or a comma-separated few)
    python -m benchmarks --only qa-cost    # what the QA toolkit (#9) costs each request

Phases: start-up time and idle memory; throughput and latency of each scenario
on each server, next to the bare-Flask baseline on the same server; the serving
designs of #10 (old granian WSGI vs `mockserver serve`), idle and under held
load; the cost of #9's QA toolkit (journal on, an active fault rule, 100 live
sessions vs the journal off), over HTTP and in process; memory and lookup
latency with 100 / 100k / 1M Relay customers; an in-process profile of
moveCustomer. Nothing is written into the repository unless --write-results is
given; fixtures and logs go to a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shlex
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from benchmarks import designs, durability, load, machine, qa_cost, reset_stall, servers
from mockserver.testing.fixturegen import move_ccid, write_fixture

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
SERVERS = ("granian", "waitress")
PHASES = ("start-up", "throughput", "serving", "qa-cost", "durability", "shared-store", "scale", "profile")
MOVE_CUSTOMERS = 1024  # split between the load threads: a customer comes round every 1024/threads requests
MERGE_RATE_CEILING = 15_000  # merges/s the stream of fresh pairs is sized for (x duration); the table says if it ran out
QUIET = 0.15  # cores used by other processes below which a load run starts
DISTURBED = 0.2  # cores used by other processes during a run from which the summary warns
TARGETS = {
    "throughput": 0.7,  # validated moveCustomer req/s vs bare Flask on the same server, at least
    "startup_s": 0.5,  # spawn to first valid response, at most
    "rss_idle_mb": 80,  # at most
    "p50_1m_vs_100": 1.15,  # at most
    "start_1m_s": 10,  # spawn to first valid response with 1M customers, at most
    "reset_stall_ms": 50,  # worst request while resets run, 200k customers, at most
}


@dataclass
class Config:
    duration: float
    scale_duration: float
    threads: int
    connections: int
    startup_repeats: int
    sizes: tuple[int, ...]
    servers: tuple[str, ...]
    client: str
    load_timeout: float
    profile_requests: int
    merge_pairs: int
    one_ccid: bool
    smoke: bool
    serving_rounds: int = 1  # each serving design, idle and held, measured this many times (interleaved)
    qa_rounds: int = 1  # each QA-cost configuration measured with wrk this many times (interleaved)
    qa_calls: int = 500  # in-process moves per timed group of the QA-cost phase
    qa_repeats: int = 1  # in-process timed groups per configuration (interleaved; the best counts)
    settle: float = 1.0  # seconds between the first answer and reading memory
    quiet_wait: float = 0.0  # seconds a load run may wait for other processes to leave the CPU


@dataclass
class Report:
    sections: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    targets: list[tuple[str, str, str, str]] = field(default_factory=list)  # target, measured, limit, verdict

    def add(self, text: str) -> None:
        self.sections.append(text)
        print(text, flush=True)

    def target(self, name: str, measured: float | None, limit: float, at_least: bool, unit: str = "") -> None:
        if measured is None:
            self.targets.append((name, "not measured", f"{'≥' if at_least else '≤'} {limit:g}{unit}", "—"))
            return
        met = measured >= limit if at_least else measured <= limit
        shown = f"{measured:.2f}{unit}" if unit != " MB" else f"{measured:.0f}{unit}"
        self.targets.append((name, shown, f"{'≥' if at_least else '≤'} {limit:g}{unit}", "met" if met else "**missed**"))


def progress(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _table(header: list[str], rows: list[list[str]], align: str | None = None) -> str:
    align = align or "l" + "r" * (len(header) - 1)
    marks = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(marks) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a is not None and b else "—"


# ---------------------------------------------------------------- phases


def phase_startup(cfg: Config, tmp: Path, report: Report) -> None:
    """Spawn to first valid 200, median of N, and memory idle right after, for mockserver and the baseline."""
    rows = []
    for server in cfg.servers:
        figures: dict[str, tuple[float, servers.Memory]] = {}
        for app in ("mockserver", "bare Flask"):
            times, memory = [], None
            for attempt in range(cfg.startup_repeats):
                port = servers.free_port()
                argv = servers.mockserver_argv(server, port) if app == "mockserver" else servers.baseline_argv(server, port)
                probe = servers.mockserver_probe if app == "mockserver" else servers.baseline_probe
                with servers.ServerProcess(f"startup-{app}-{server}-{attempt}", argv, tmp) as proc:
                    times.append(proc.wait_ready(partial(probe, port), 60))
                    if attempt == cfg.startup_repeats - 1:
                        time.sleep(cfg.settle)  # let the worker settle (granian forks it before the first answer)
                        memory = proc.memory()
            assert memory is not None
            figures[app] = (statistics.median(times), memory)
            progress(f"startup {app} on {server}: {figures[app][0]:.3f} s, RSS {memory.rss_mb:.0f} MB")
        (ms_t, ms_m), (bl_t, bl_m) = figures["mockserver"], figures["bare Flask"]
        rows.append(
            [
                server,
                "mockserver",
                f"{ms_t:.3f}",
                f"{ms_m.rss_mb:.1f}",
                f"{ms_m.pss_mb:.1f}",
                str(ms_m.processes),
                _ratio(ms_t, bl_t),
                _ratio(ms_m.rss_mb, bl_m.rss_mb),
            ]
        )
        rows.append(
            [server, "bare Flask", f"{bl_t:.3f}", f"{bl_m.rss_mb:.1f}", f"{bl_m.pss_mb:.1f}", str(bl_m.processes), "1.00x", "1.00x"]
        )
        if server == cfg.servers[0]:
            report.target(f"start to first valid response ({server}, default fixtures)", ms_t, TARGETS["startup_s"], False, " s")
            report.target(f"RSS idle ({server}, sum over the process tree)", ms_m.rss_mb, TARGETS["rss_idle_mb"], False, " MB")
    header = [
        "server",
        "app",
        "start → first valid 200 (s)",
        "RSS idle (MB)",
        "PSS idle (MB)",
        "processes",
        "start vs baseline",
        "RSS vs baseline",
    ]
    report.add(
        f"## Start-up and idle memory (default fixtures, median of {cfg.startup_repeats})\n\n"
        "Start: from spawning the process to the first valid answer (mockserver: a 200 retrieveCustomer with the demo record;\n"
        "polled every 10 ms). RSS: VmRSS summed over the server's process tree (granian's master and its forked worker share\n"
        "copy-on-write pages, counted in both); PSS splits shared pages, so it is the memory actually used.\n\n"
        + _table(header, rows, "llrrrrrr")
    )


def phase_throughput(cfg: Config, tmp: Path, report: Report) -> None:
    # the data of the mockserver runs, a JSON fixture file (100k merge pairs load in seconds, not minutes as YAML)
    fixture = write_fixture(tmp / "bench-fixture.json", move_customers=MOVE_CUSTOMERS, merge_pairs=cfg.merge_pairs)
    scenarios = [load.move_scenario(MOVE_CUSTOMERS)]
    if cfg.one_ccid:
        scenarios.append(load.move_one_ccid_scenario())
    scenarios += [load.retrieve_scenario(), load.get_by_ids_scenario(), load.merge_scenario()]
    baseline_scenarios = {"PUT": load.move_scenario(MOVE_CUSTOMERS), "GET": load.retrieve_scenario()}
    for server in cfg.servers:
        base: dict[str, load.LoadResult] = {}
        port = servers.free_port()
        with servers.ServerProcess(f"baseline-{server}", servers.baseline_argv(server, port), tmp) as proc:
            proc.wait_ready(partial(servers.baseline_probe, port), 60)
            _warm_up(cfg, port, tmp)
            for method, scenario in baseline_scenarios.items():
                base[method] = _measured_load(proc, scenario, port, cfg.duration, cfg, tmp, report, f"bare Flask on {server}")
                progress(f"baseline {server} {method}: {base[method].rps:.0f} req/s")
        results = []
        port = servers.free_port()
        with servers.ServerProcess(f"mockserver-{server}", servers.mockserver_argv(server, port, fixture), tmp) as proc:
            loaded = proc.wait_ready(partial(servers.mockserver_probe, port), cfg.load_timeout)
            progress(f"mockserver {server} ready in {loaded:.1f} s with the benchmark state ({cfg.merge_pairs:,} merge pairs)")
            _warm_up(cfg, port, tmp)
            for scenario in scenarios:
                result = _measured_load(proc, scenario, port, cfg.duration, cfg, tmp, report, f"mockserver on {server}")
                progress(f"mockserver {server} {scenario.name}: {result.rps:.0f} req/s, {result.status_mix()}")
                results.append((scenario, result))
        rows = []
        for scenario, result in results:
            ref = base[scenario.method]
            note = ""
            if scenario.name == "mergeCustomer" and result.requests > cfg.merge_pairs:
                note = f" (stream of {cfg.merge_pairs:,} fresh pairs ran out: later merges are 400s)"
            rows.append(_load_row("mockserver", scenario.name, result, ref, note))
        for method, result in base.items():
            rows.append(_load_row("bare Flask", f"baseline {method}", result, result, ""))
        move = next(r for s, r in results if s.name == "moveCustomer")
        report.target(
            f"validated moveCustomer throughput vs bare Flask ({server})", move.rps / base["PUT"].rps, TARGETS["throughput"], True, "x"
        )
        header = [
            "app",
            "scenario",
            "req/s",
            "p50 (ms)",
            "p99 (ms)",
            "non-2xx",
            "socket errors",
            "statuses",
            "req/s vs baseline",
            "p50 vs baseline",
            "other CPU (cores)",
        ]
        client = (
            f"wrk -t{cfg.threads} -c{cfg.connections} -d{max(1, round(cfg.duration))}s"
            if cfg.client == "wrk"
            else f"Python client, {cfg.connections} connections, {cfg.duration:g} s"
        )
        report.add(
            f"## Throughput and latency on {server} ({client})\n\n"
            f"Baseline: the bare-Flask app (benchmarks/baseline_app.py) on {server} with the same settings, sent the same requests;\n"
            "each mockserver scenario is compared with the baseline run of the same HTTP method (PUT or GET).\n"
            f"mockserver: `serve --state-file` restoring the default data, {MOVE_CUSTOMERS:,} customers to move"
            f" and {cfg.merge_pairs:,} merge pairs;\n"
            "moveCustomer: each wrk thread moves its own customers round robin (no races); moveCustomer 1 ccid: every thread\n"
            "moves BAK-11984-007 back and forth, so concurrent moves race and 409s are expected; mergeCustomer: each request\n"
            "merges a fresh source into a fresh target.\n"
            "Other CPU: cores kept busy during the run by processes other than the server, wrk and this runner (0 on an idle machine).\n\n"
            + _table(header, rows, "llrrrrrlrrr")
        )


def _measured_load(
    proc: servers.ServerProcess, scenario: load.Scenario, port: int, seconds: float, cfg: Config, tmp: Path, report: Report, where: str
) -> load.LoadResult:
    """A load run once the machine is quiet, with the CPU other processes used meanwhile."""
    _wait_quiet(cfg)
    run = partial(load.run_load, scenario, port, seconds, cfg.threads, cfg.connections, tmp, cfg.client)
    return _with_other_cpu(proc, run, report, f"{where} {scenario.name}")


def _with_other_cpu(proc: servers.ServerProcess, run: Callable[[], load.LoadResult], report: Report, what: str) -> load.LoadResult:
    """`run()`, with the CPU other processes used meanwhile (the machine may be shared): busy minus the server's and ours."""
    assert proc.proc is not None
    tree = servers.process_tree(proc.proc.pid)
    before = (servers.busy_ticks(), servers.cpu_ticks(tree), _own_ticks())
    started = time.perf_counter()
    result = run()
    elapsed = time.perf_counter() - started
    after = (servers.busy_ticks(), servers.cpu_ticks(tree), _own_ticks())
    others = (after[0] - before[0]) - (after[1] - before[1]) - (after[2] - before[2])
    result.other_cpu = max(0.0, others / os.sysconf("SC_CLK_TCK") / elapsed)
    if result.other_cpu >= DISTURBED:
        report.warnings.append(f"{what}: other processes kept {result.other_cpu:.2f} cores busy during the run")
    return result


def _wait_quiet(cfg: Config) -> None:
    """Wait, at most cfg.quiet_wait seconds, until other processes leave the CPU (sampled over 0.5 s)."""
    deadline = time.perf_counter() + cfg.quiet_wait
    told = False
    while True:
        busy, own, started = servers.busy_ticks(), _own_ticks(), time.perf_counter()
        time.sleep(0.5)
        others = (servers.busy_ticks() - busy - (_own_ticks() - own)) / os.sysconf("SC_CLK_TCK") / (time.perf_counter() - started)
        if others < QUIET or time.perf_counter() >= deadline:
            return
        if not told:
            progress(f"other processes keep {others:.2f} cores busy; waiting up to {cfg.quiet_wait:.0f} s for them")
            told = True


def _own_ticks() -> int:
    """This runner's CPU and that of its finished children (wrk), in clock ticks."""
    hz = os.sysconf("SC_CLK_TCK")
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return round((own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime) * hz)


def _warm_up(cfg: Config, port: int, tmp: Path) -> None:
    """One unrecorded second of GETs, so no measured run pays for first-request costs (lazy imports, caches)."""
    if not cfg.smoke:
        load.run_load(load.retrieve_scenario(), port, 1, cfg.threads, cfg.connections, tmp, cfg.client)


def _load_row(app: str, name: str, result: load.LoadResult, ref: load.LoadResult, note: str) -> list[str]:
    return [
        app,
        name + note,
        f"{result.rps:,.0f}",
        f"{result.p50_ms:.2f}",
        f"{result.p99_ms:.2f}",
        f"{result.non_2xx:,}",
        f"{result.socket_errors:,}",
        result.status_mix(),
        _ratio(result.rps, ref.rps),
        _ratio(result.p50_ms, ref.p50_ms),
        _other(result),
    ]


def _other(result: load.LoadResult) -> str:
    return "—" if result.other_cpu is None else f"{result.other_cpu:.2f}"


def phase_serving(cfg: Config, tmp: Path, report: Report) -> None:
    """moveCustomer on the old WSGI design, WSGI with 1 thread and `mockserver serve`, idle and under held load (#10).

    Rounds are interleaved (every design, then again), so slow drift of a shared machine hits all designs alike.
    """
    fixture = write_fixture(tmp / "serving-fixture.json", move_customers=MOVE_CUSTOMERS)
    plan = designs.Plan(cfg.duration, cfg.threads, cfg.connections, cfg.client, MOVE_CUSTOMERS, not cfg.smoke, tmp)
    outcomes: list[designs.Outcome] = []
    for round_ in range(1, cfg.serving_rounds + 1):
        for design in designs.DESIGNS:
            for held in (False, True):
                _wait_quiet(cfg)
                what = f"serving round {round_}: {design.name}, {'held' if held else 'idle'}"
                outcome = designs.measure(design, held, fixture, plan, round_, partial(_with_other_cpu, report=report, what=what))
                outcomes.append(outcome)
                result = outcome.result
                progress(f"{what}: {f'{result.rps:,.0f} req/s' if result else '—'}; {'; '.join(outcome.failures()) or 'no failure'}")
                if outcome.error:
                    report.failures.append(f"{what}: {outcome.error}")
    _serving_targets(outcomes, report)
    report.add(_serving_section(cfg, plan, outcomes))


def _serving_targets(outcomes: list[designs.Outcome], report: Report) -> None:
    """The goals of #10 for the new design, each judged on its worst round."""
    new = [o for o in outcomes if o.design == designs.NEW]
    for held in (False, True):
        runs = [o for o in new if o.held == held]
        goal, what = designs.GOALS[held], f"`mockserver serve` moveCustomer {'under held load' if held else 'idle'}"
        ratios, p99s = [designs.ratio(o, outcomes) for o in runs], [designs.p99(o) for o in runs]
        worst_ratio = None if not runs or None in ratios else min(r for r in ratios if r is not None)
        worst_p99 = None if not runs or None in p99s else max(p for p in p99s if p is not None)
        report.target(f"{what}: req/s vs old default idle (worst round)", worst_ratio, goal.ratio, True, "x")
        report.target(f"{what}: p99 (worst round)", worst_p99, goal.p99_ms, False, " ms")
    held_runs = [o for o in new if o.held]
    failed = sum(1 for o in held_runs if o.failures())
    verdict = "met" if held_runs and not failed else "**missed**"
    report.targets.append(("`mockserver serve` moveCustomer under held load: failed runs", f"{failed} of {len(held_runs)}", "0", verdict))


def _serving_section(cfg: Config, plan: designs.Plan, outcomes: list[designs.Outcome]) -> str:
    if cfg.client == "wrk":
        client = f"wrk -t{cfg.threads} -c{cfg.connections} -d{max(1, round(cfg.duration))}s --timeout 5s"
    else:
        client = f"Python client, {cfg.connections} connections, {cfg.duration:g} s, 5 s socket timeout"
    goals = "; ".join(f"{'held' if held else 'idle'}: {goal.text(held)}" for held, goal in designs.GOALS.items())
    delay = f"{designs.DELAY_MS / 1000:g} s"
    return (
        f"## Serving designs (#10): moveCustomer, idle and under held load ({client})\n\n"
        f"Normal client: moveCustomer, each load thread moving its own {MOVE_CUSTOMERS // cfg.threads:,} customers round robin\n"
        "(no 409 can happen), on a fresh server per run restoring the same state file.\n"
        f"Designs: the old default is `mockserver serve` before #10: granian's WSGI interface, one forked worker, {designs.OLD_THREADS}\n"
        "blocking threads (`python -m granian --interface wsgi benchmarks.wsgi_app:app`, granian's defaults otherwise, so at\n"
        "most 1,024 connections are served at once: backpressure = backlog = 1,024); the same with 1 thread; the new design is\n"
        "`mockserver serve` (granian embedded on uvloop, ASGI front), with"
        f" `--head-timeout {designs.HELD_DEADLINE} --body-timeout {designs.HELD_DEADLINE}` for its held runs.\n"
        f"Held load (benchmarks/held_load.py{', smoke: the CI-sized shape' if cfg.smoke else ''}), opened before wrk starts"
        " and held until it ends:\n"
        f"{designs.describe_shape(plan)},\n"
        f"the delayed requests resent once answered and no sooner than {delay} after their previous send, so they keep waiting\n"
        "through the run. The WSGI variants drop `Prefer: delay` (the old design had none): their delayed requests are\n"
        f"answered at once, and resent every {delay}; their long polls hold a thread each.\n"
        "vs old idle: req/s against the old default's idle run of the same round. A run fails on wrk socket errors or\n"
        "timeouts, any non-2xx, no answer at all, or a held load the server did not accept or cut short.\n"
        f"Goals of #10 for the new design, applied to every row: {goals}.\n\n"
        + _table(designs.HEADER, [designs.row(o, outcomes) for o in outcomes], designs.ALIGN)
    )


def phase_qa_cost(cfg: Config, tmp: Path, report: Report) -> None:
    """moveCustomer with #9's journal, an active rule and 100 sessions vs the journal off: over HTTP, then in process.

    wrk sees the whole server but is noisy on a shared machine; the in-process figure isolates the Python work.
    """
    _qa_cost_http(cfg, tmp, report)
    _qa_cost_in_process(cfg, report)


def _qa_cost_http(cfg: Config, tmp: Path, report: Report) -> None:
    """The four configurations under wrk, a fresh server per run, rounds interleaved; the #9 goal on the worst round."""
    fixture = write_fixture(tmp / "qa-cost-fixture.json", move_customers=MOVE_CUSTOMERS)
    plan = designs.Plan(cfg.duration, cfg.threads, cfg.connections, cfg.client, MOVE_CUSTOMERS, not cfg.smoke, tmp)
    runs = _interleaved(cfg, report, "qa-cost", qa_cost.VARIANTS, partial(qa_cost.measure, fixture=fixture, plan=plan))
    report.target(
        "moveCustomer req/s, journal on and no rules vs journal off (`mockserver serve`, worst round)",
        qa_cost.worst_journal_ratio(runs),
        qa_cost.GOAL,
        True,
        "x",
    )
    report.add(_qa_cost_section(cfg, runs))


def _interleaved(cfg: Config, report: Report, phase: str, variants: tuple, measure: Callable[..., Any]) -> list[Any]:
    """`measure(variant, round_=, watch=)` for every variant, round after round (slow drift of a shared machine
    hits all alike), each run on a quiet CPU; a failed run is a failure of the report."""
    runs = []
    for round_ in range(1, cfg.qa_rounds + 1):
        for variant in variants:
            _wait_quiet(cfg)
            what = f"{phase} round {round_}: {variant.label}"
            run = measure(variant, round_=round_, watch=partial(_with_other_cpu, report=report, what=what))
            runs.append(run)
            progress(f"{what}: {f'{run.result.rps:,.0f} req/s' if run.result else '—'}; {run.error or 'no error'}")
            if run.error:
                report.failures.append(f"{what}: {run.error}")
                progress(f"{what}: {getattr(run, 'detail', '') or run.error}")
    return runs


def _rows_vs_baseline(runs: list[Any], is_baseline: Callable[[Any], bool]) -> list[list[str]]:
    """Table rows (round, configuration, req/s, p50, p99, ratio to the same round's baseline, statuses) of `runs`."""
    rows = []
    for run in runs:
        base = next((r for r in runs if r.round == run.round and is_baseline(r)), None)
        result, reference = run.result, base.result if base else None
        rows.append(
            [str(run.round), run.variant.label, f"{result.rps:,.0f}" if result else "—", f"{result.p50_ms:.2f}" if result else "—",
             f"{result.p99_ms:.2f}" if result else "—", _ratio(result.rps if result else None, reference.rps if reference else None),
             result.status_mix() if result else run.error]
        )  # fmt: skip
    return rows


def _qa_cost_in_process(cfg: Config, report: Report) -> None:
    """The same configurations through the ASGI app, no sockets: µs per request, best of cfg.qa_repeats."""
    _wait_quiet(cfg)
    warmup = qa_cost.JOURNAL.journal_size + (200 if cfg.smoke else 2000)
    timings, loop_name = qa_cost.in_process(cfg.qa_calls, cfg.qa_repeats, warmup, progress)
    for timing in timings:
        what = f"qa-cost in-process {timing.variant.label}"
        if set(timing.statuses) != {200}:
            report.failures.append(f"{what}: statuses {dict(timing.statuses)}")
        if timing.worst_other_cpu is not None and timing.worst_other_cpu >= DISTURBED:
            report.warnings.append(f"{what}: other processes kept {timing.worst_other_cpu:.2f} cores busy during a timed group")
    report.add(_qa_in_process_section(cfg, timings, loop_name, warmup))


def _qa_cost_section(cfg: Config, runs: list[qa_cost.Run]) -> str:
    if cfg.client == "wrk":
        client = f"wrk -t{cfg.threads} -c{cfg.connections} -d{max(1, round(cfg.duration))}s --timeout 5s"
    else:
        client = f"Python client, {cfg.connections} connections, {cfg.duration:g} s, 5 s socket timeout"
    configurations = "\n".join(f"* {v.label}" for v in qa_cost.VARIANTS)
    return (
        f"## QA toolkit cost (#9): moveCustomer over HTTP ({client})\n\n"
        f"Each run: a fresh `mockserver serve` (the default design: granian embedded, uvloop) restoring the same state file,\n"
        f"each load thread moving its own {MOVE_CUSTOMERS // cfg.threads:,} customers round robin (no 409 can happen),"
        f" after {'one unrecorded second of GETs' if not cfg.smoke else 'no warm-up (smoke)'}. Configurations:\n\n"
        f"{configurations}\n\n"
        f"(c): `POST /__admin/faults {json.dumps(qa_cost.RULE)}` before the load: tried on every move, matching none.\n"
        f"(d): one `GET /__admin/health` with `X-Mock-Session: s000`..`s{qa_cost.SESSIONS - 1:03d}` each before the load,"
        f" `--session-idle {qa_cost.SESSION_IDLE}` so they stay live; the load runs in the default session.\n"
        "Rounds interleaved ((a), (b), (c), (d), then again). vs (a): req/s against (a) of the same round. The server's Python\n"
        "work runs on its one event loop, the bottleneck, so 1e6 / req/s is the time a request takes there (with the HTTP layer\n"
        "and the CPU shared with wrk), and the cost is its difference with (a) (negative: within the noise).\n"
        "Checked after the run: the admin API's journal total, the rule's match count, the live sessions.\n"
        f"Goal of #9: (b) ≥ {qa_cost.GOAL:g}x of (a), judged on the worst round; (c) and (d) are reported as costs, no goal.\n\n"
        + _table(qa_cost.HEADER, [qa_cost.row(r, runs) for r in runs], qa_cost.ALIGN)
    )


def _qa_in_process_section(cfg: Config, timings: list[qa_cost.Timing], loop_name: str, warmup: int) -> str:
    baseline = timings[0]
    groups = " ↔ ".join(qa_cost.INPROCESS_GROUPS)
    return (
        f"### QA toolkit cost in process: the ASGI app called directly ({cfg.qa_calls:,} moves a group, best of {cfg.qa_repeats})\n\n"
        "No sockets, no HTTP parsing, no wrk: `AsgiApp(front)` of `create_app(Settings(...))` awaited on one event loop\n"
        f"({loop_name}) with a hand-built scope, receive and send, as tests/http/test_asgi.py does. Each call moves\n"
        f"{qa_cost.INPROCESS_CCID} of the default fixtures ({groups}, alternately: every answer a 200). Each group runs on a fresh app\n"
        f"(the previous one collected, so no configuration's garbage collections walk another's journal) after {warmup:,}\n"
        "unrecorded moves, so the journal is full and each new entry drops the oldest, as on a server that has run a while.\n"
        f"Configurations as above, set up through the app's own admin API; groups interleaved, {cfg.qa_repeats} per configuration,\n"
        "the best one counts. req/s equivalent: (a)'s µs over this one's, the in-process analogue of the HTTP ratio.\n"
        f"Other CPU: cores other processes used during a group (— for groups under {qa_cost.TICKS_WINDOW:g} s: too short to tell).\n\n"
        + _table(qa_cost.INPROCESS_HEADER, [qa_cost.in_process_row(t, baseline) for t in timings], qa_cost.INPROCESS_ALIGN)
    )


SCALE_STARTS = (  # label, fixture suffix, fixture cache (a folder of the run, or off)
    ("YAML, cache empty", ".yaml", "run"),
    ("YAML, from the cache", ".yaml", "run"),
    ("JSON, no cache", ".json", "off"),
)
STALL_RESETS = 5


def phase_scale(cfg: Config, tmp: Path, report: Report) -> None:
    """Start time, memory, lookup latency and the stall of resets with N generated Relay customers, on the first server.

    Each size starts the server three times: on the YAML file with an empty fixture cache (parse, check, cache
    written), on the same file again (read back from the cache), and on the same data as JSON with the cache
    off. The JSON-started server is then measured: memory, two load passes, resets under load, memory after.
    """
    server = cfg.servers[0]
    start_rows, memory_rows, latency_rows, stall_rows = [], [], [], []
    p50s: dict[tuple[int, int], float] = {}
    starts: dict[tuple[int, str], float] = {}
    stalls: dict[int, reset_stall.Stall] = {}
    for size in cfg.sizes:
        fixtures = {suffix: write_fixture(tmp / f"relay-{size}{suffix}", relay_customers=size) for suffix in (".yaml", ".json")}
        cache = tmp / f"fixture-cache-{size}"
        row = [f"{size:,}", f"{fixtures['.yaml'].stat().st_size / 1e6:.0f}", f"{fixtures['.json'].stat().st_size / 1e6:.0f}"]
        for label, suffix, cached in SCALE_STARTS:
            port = servers.free_port()
            progress(f"scale {size:,}: starting mockserver, {label} (bound {cfg.load_timeout:.0f} s)")
            try:
                argv = servers.mockserver_argv(server, port, fixtures[suffix])
                argv += ["--fixture-cache", str(cache) if cached == "run" else "off"]
                with servers.ServerProcess(f"scale-{size}-{suffix[1:]}-{cached}", argv, tmp) as proc:
                    starts[(size, label)] = proc.wait_ready(partial(servers.mockserver_probe, port), cfg.load_timeout, interval=0.05)
                    progress(f"scale {size:,}: {label}: first valid 200 after {starts[(size, label)]:.1f} s")
                    if suffix == ".json":
                        measured = _scale_server(cfg, tmp, report, proc, port, size)
            except (TimeoutError, RuntimeError) as exc:
                first_line = str(exc).splitlines()[0]
                report.failures.append(f"scale {size:,} ({label}): {first_line}")
                progress(f"scale {size:,}: {first_line}")
                row.append(f"> {cfg.load_timeout:.0f} (stopped)" if isinstance(exc, TimeoutError) else "failed")
                continue
            row.append(f"{starts[(size, label)]:.1f}")
        start_rows.append(row)
        if (size, "JSON, no cache") not in starts:
            continue
        idle, after_load, after_resets, passes, stall = measured
        stalls[size] = stall
        memory = [idle.rss_mb, idle.pss_mb, after_load.rss_mb, after_resets.pss_mb]
        memory_rows.append([f"{size:,}", *(f"{mb:,.0f}" for mb in memory)])
        stall_rows.append(
            [
                f"{size:,}",
                f"{max(stall.reset_ms):.1f}",
                f"{stall.baseline_max_ms:.1f}",
                f"{stall.baseline_p99_ms:.1f}",
                f"{stall.during_max_ms:.1f}",
                f"{stall.during_p99_ms:.1f}",
                f"{stall.requests_during:,}",
                str(stall.errors),
            ]
        )
        for number, (result, faults) in enumerate(passes, 1):
            p50s[(size, number)] = result.p50_ms
            latency_rows.append(
                [
                    f"{size:,}",
                    "first" if number == 1 else "second",
                    f"{result.rps:,.0f}",
                    f"{result.p50_ms:.2f}",
                    f"{result.p99_ms:.2f}",
                    f"{faults:.2f}",
                    result.status_mix(),
                    _other(result),
                ]
            )
    smallest = cfg.sizes[0]
    for row in latency_rows:
        size, number = int(row[0].replace(",", "")), 1 if row[1] == "first" else 2
        row.append(_ratio(p50s.get((size, number)), p50s.get((smallest, number))))
    if not cfg.smoke:
        _scale_targets(cfg, report, server, p50s, starts, stalls)
    report.add(_scale_section(cfg, server, start_rows, memory_rows, latency_rows, stall_rows))


def _scale_server(cfg: Config, tmp: Path, report: Report, proc: servers.ServerProcess, port: int, size: int) -> tuple:
    """Memory idle, two load passes, memory after them, resets under a request loop, memory after the resets."""
    time.sleep(cfg.settle)
    idle = proc.memory()
    assert proc.proc is not None
    passes: list[tuple[load.LoadResult, float]] = []
    for _ in range(2):
        faults = servers.minor_faults(servers.process_tree(proc.proc.pid))
        result = _measured_load(proc, load.retrieve_spread_scenario(size), port, cfg.scale_duration, cfg, tmp, report, "scale")
        faults = servers.minor_faults(servers.process_tree(proc.proc.pid)) - faults
        passes.append((result, faults / result.requests if result.requests else 0.0))
    after_load = proc.memory()
    progress(f"scale {size:,}: {STALL_RESETS} resets under a retrieveCustomer loop")
    stall = reset_stall.measure(port, resets=STALL_RESETS, pause_s=max(1.5, size / 200_000))
    time.sleep(cfg.settle)
    return idle, after_load, proc.memory(), passes, stall


def _scale_targets(
    cfg: Config, report: Report, server: str, p50s: dict, starts: dict[tuple[int, str], float], stalls: dict[int, reset_stall.Stall]
) -> None:
    smallest = cfg.sizes[0]
    for number, label in ((2, "second pass: steady state"), (1, "first pass")):
        big, small = p50s.get((1_000_000, number)), p50s.get((smallest, number))
        report.target(
            f"p50 retrieveCustomer with 1,000,000 vs {smallest} customers ({server}, {label})",
            big / small if big and small else None,
            TARGETS["p50_1m_vs_100"],
            False,
            "x",
        )
    for label, _, _ in SCALE_STARTS:
        start = starts.get((1_000_000, label))
        report.target(f"start with 1,000,000 customers, {label} ({server})", start, TARGETS["start_1m_s"], False, " s")
    stall = stalls.get(200_000)
    report.target(
        f"worst request during {STALL_RESETS} resets with 200,000 customers ({server})",
        stall.during_max_ms if stall else None,
        TARGETS["reset_stall_ms"],
        False,
        " ms",
    )


def _scale_section(cfg: Config, server: str, start_rows: list, memory_rows: list, latency_rows: list, stall_rows: list) -> str:
    duration = f"{max(1, round(cfg.scale_duration))} s" if cfg.client == "wrk" else f"{cfg.scale_duration:g} s"
    start_header = ["Relay customers", "YAML (MB)", "JSON (MB)", *(f"start: {label} (s)" for label, _, _ in SCALE_STARTS)]
    memory_header = ["Relay customers", "RSS idle (MB)", "PSS idle (MB)", "RSS after load (MB)", f"PSS after {STALL_RESETS} resets (MB)"]
    latency_header = ["Relay customers", "pass", "req/s", "p50 (ms)", "p99 (ms)", "page faults/request", "statuses", "other CPU (cores)"]
    latency_header.append(f"p50 vs {cfg.sizes[0]} (same pass)")
    stall_header = [
        "Relay customers",
        "reset answered in, worst (ms)",
        "no reset: max (ms)",
        "no reset: p99 (ms)",
        "during resets: max (ms)",
        "during resets: p99 (ms)",
        "requests during resets",
        "errors",
    ]
    return (
        f"## Start, memory, lookup latency and resets vs number of customers ({server})\n\n"
        "Fixtures: the default data plus N generated Relay customers of client `demo` (ccid, product group, first and last name).\n"
        "Start: spawn to the first valid 200 (retrieveCustomer), which includes reading and checking the file and building the\n"
        "states a start needs. Three starts a size: the YAML file with an empty fixture cache (parsed, checked, cache written),\n"
        "the same file again (read back from the cache), the same data as a JSON file with the cache off.\n\n"
        + _table(start_header, start_rows, "lrrrrr")
        + "\n\nThe server started on JSON is measured next. One process (granian runs embedded, no forked worker): RSS and PSS\n"
        "of that process. PSS after the resets includes the fresh state kept ready for the next reset (from 10,000 records).\n\n"
        + _table(memory_header, memory_rows, "lrrrr")
        + f"\n\nLoad: retrieveCustomer walking all N ccids in a fixed scattered order, {duration} a pass, twice over the same ccids.\n"
        "First pass: each record read for the first time since it was built (cold caches, first page touches); second pass:\n"
        "the same requests again, steady state (page faults/request: minor faults of the server process).\n\n"
        + _table(latency_header, latency_rows, "llrrrrlrr")
        + f"\n\nResets: one client thread sends retrieveCustomer in a tight loop on one keep-alive connection while another posts\n"
        f"`/__admin/reset` {STALL_RESETS} times, a pause after each (long enough for the background work a reset leaves: making the\n"
        "next fresh state, freeing the old one). Latencies of the loop before the first reset (no reset) and from it on.\n\n"
        + _table(stall_header, stall_rows, "lrrrrrrr")
    )


def phase_durability(cfg: Config, tmp: Path, report: Report) -> None:
    """#11: moveCustomer with `--state-file` at each `--fsync` vs none, over HTTP and in process; restart and compaction."""
    from benchmarks.durability import VARIANTS
    from mockserver.contract.compiled import Contract
    from mockserver.contract.spec import load_document

    fixture = write_fixture(tmp / "durability.yaml", move_customers=MOVE_CUSTOMERS)
    plan = designs.Plan(cfg.duration, cfg.threads, cfg.connections, cfg.client, MOVE_CUSTOMERS, not cfg.smoke, tmp)
    runs = _interleaved(cfg, report, "durability", durability.VARIANTS, partial(durability.measure_http, fixture=fixture, plan=plan))
    rows = _rows_vs_baseline(runs, lambda run: run.variant.fsync is None)
    calls = 500 if cfg.smoke else 5000
    _wait_quiet(cfg)
    fsync_us = durability.bare_fsync_us()
    timed = [(v, *durability.in_process_us(v, fixture, calls // 5 if v.fsync == "always" else calls, cfg.qa_repeats)) for v in VARIANTS]
    in_process_rows = [
        [v.label, f"{us:.1f}", f"{us - timed[0][1]:+.1f}", ", ".join(f"{k}: {n}" for k, n in sorted(statuses.items()))]
        for v, us, statuses in timed
    ]
    schemas = Contract(load_document()).schemas
    customers = 1_000 if cfg.smoke else 100_000
    big = write_fixture(tmp / f"durability-{customers}.yaml", relay_customers=customers, move_customers=MOVE_CUSTOMERS)
    progress(f"durability: restart and compaction with {customers:,} customers")
    ccids = [move_ccid(i) for i in range(MOVE_CUSTOMERS)]
    restart = durability.restart(big, customers, customers, schemas, ccids)
    stall = durability.compaction_stall(big, schemas)
    report.add(
        "## Durability (#11): what `--state-file` costs a move\n\n"
        "Over HTTP: wrk as in the QA-cost phase, a fresh server per run, its state file starting empty.\n\n"
        + _table(["round", "configuration", "req/s", "p50 (ms)", "p99 (ms)", "vs (a)", "statuses"], rows, "llrrrrl")
        + f"\n\nIn process (ASGI app, no sockets, one move at a time, best of {cfg.qa_repeats}; {calls:,} moves a group,"
        f" {calls // 5:,} at `always`). A bare append + fsync of one line here: {fsync_us:.0f} µs (median of 200).\n\n"
        + _table(["configuration", "µs/move", "vs (a)", "statuses"], in_process_rows, "lrrl")
        + f"\n\nRestart with {restart.customers:,} customers (snapshot {restart.snapshot_mb:.1f} MB):"
        f" {restart.restore_s:.2f} s from the snapshot alone; {restart.restore_with_log_s:.2f} s with a log of"
        f" {restart.changes:,} moves ({restart.log_mb:.1f} MB): {restart.replay_us:.1f} µs per replayed change.\n\n"
        f"Compaction with {stall.customers:,} customers: the checkpoint took {stall.checkpoint_s:.2f} s (fork, the child's write,"
        f" the wait for it); the worst wait of a store command meanwhile {stall.worst_wait_ms:.1f} ms,"
        f" against {stall.worst_wait_baseline_ms:.1f} ms over the same span without one."
    )


def phase_shared_store(cfg: Config, tmp: Path, report: Report) -> None:
    """#14: moveCustomer on 1, 2 and 4 processes sharing one Redis against 1 process in memory; µs per move in process."""
    from benchmarks import shared_store
    from mockserver.testing.redis_server import redis_server

    customers = MOVE_CUSTOMERS * 4  # each process's wrk its own quarter at 4 processes, a customer a slice as before
    fixture = write_fixture(tmp / "shared-store.json", move_customers=customers)
    plan = designs.Plan(cfg.duration, cfg.threads, cfg.connections, cfg.client, customers, not cfg.smoke, tmp)
    with redis_server() as url:
        measure = partial(shared_store.measure, fixture=fixture, redis_url=url, customers=customers, plan=plan)
        runs = _interleaved(cfg, report, "shared-store", shared_store.VARIANTS, measure)
        _wait_quiet(cfg)
        calls = 500 if cfg.smoke else 5000
        memory_us = shared_store.in_process_us(fixture, None, calls, cfg.qa_repeats)
        redis_us = shared_store.in_process_us(fixture, url, calls, cfg.qa_repeats)
    rows = _rows_vs_baseline(runs, lambda run: not run.variant.redis)
    report.add(
        "## Shared store (#14): moveCustomer on Redis\n\n"
        f"Each process its own wrk (-t1, {cfg.connections} connections in all, disjoint customers: no 409), side by side, "
        f"{cfg.duration:g} s; req/s summed, p50/p99 the worst generator's. Redis: Debian's redis-server, no persistence, "
        "on the same 2 cores as the servers and the load generators, so processes cannot scale here.\n\n"
        + _table(["round", "configuration", "req/s", "p50 (ms)", "p99 (ms)", "vs (a)", "statuses"], rows, "llrrrrl")
        + f"\n\nIn process (ASGI app, no sockets, one move at a time, best of {cfg.qa_repeats}, {calls:,} moves a group):"
        f" memory {memory_us:.1f} µs a move, Redis {redis_us:.1f} µs ({redis_us - memory_us:+.1f} µs: four round trips,"
        " the session's visit (a script: live or not, its request counted, its fault rules' version), WATCH and MGET of the"
        " generation and the record, MULTI/MSET/EXEC, and the journal"
        " entry, waited for on the event loop)."
    )


def phase_profile(cfg: Config, report: Report) -> None:
    from benchmarks.profiling import profile

    report.add("## Profile\n\n" + profile("moveCustomer", cfg.profile_requests, 20))


# ---------------------------------------------------------------- main


def parse(argv: list[str] | None) -> tuple[argparse.Namespace, Config]:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description="mockserver vs bare Flask, in one bounded run (issues 4, 9 and 10)."
    )
    parser.add_argument(
        "--smoke", action="store_true", help="a few seconds: 1 s runs, small fixtures, no 1M (CI checks the harness, not the speed)"
    )
    parser.add_argument("--duration", type=float, default=None, help="seconds per load run (default 10; smoke 1)")
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma-separated WSGI servers to measure (default: granian,waitress)")
    parser.add_argument("--client", choices=("auto", "wrk", "python"), default="auto", help="load generator (auto: wrk when installed)")
    parser.add_argument("--threads", type=int, default=2, help="load-generator threads (wrk -t)")
    parser.add_argument("--connections", type=int, default=16, help="connections (wrk -c)")
    parser.add_argument("--skip-1m", action="store_true", help="leave out the 1M-customer step (its YAML start alone takes about 30 s)")
    parser.add_argument(
        "--load-timeout", type=float, default=None, help="seconds to wait for a server to load its fixtures (default 600; smoke 60)"
    )
    parser.add_argument(
        "--quiet-wait", type=float, default=120, help="seconds each load run may wait for other processes to leave the CPU (default 120)"
    )
    parser.add_argument("--no-profile", action="store_true", help="leave out the in-process profile")
    parser.add_argument("--only", default=None, help=f"comma-separated phases to run, of {', '.join(PHASES)} (default: all)")
    parser.add_argument(
        "--serving-rounds", type=int, default=None, help="rounds of the serving phase, each design idle and held (default 2; smoke 1)"
    )
    parser.add_argument(
        "--qa-rounds", type=int, default=None, help="wrk rounds of the qa-cost phase, each configuration once (default 2; smoke 1)"
    )
    parser.add_argument(
        "--write-results",
        action="store_true",
        help=f"record the output and a machine description in {RESULTS.relative_to(RESULTS.parent.parent)}",
    )
    args = parser.parse_args(argv)
    chosen = tuple(s.strip() for s in args.servers.split(",") if s.strip())
    unknown = [s for s in chosen if s not in SERVERS]
    if unknown or not chosen:
        parser.error(f"--servers: choose from {', '.join(SERVERS)}")
    only = tuple(p.strip() for p in (args.only or ",".join(PHASES)).split(",") if p.strip())
    if not only or any(p not in PHASES for p in only):
        parser.error(f"--only: choose from {', '.join(PHASES)}")
    args.only = only
    client = args.client if args.client != "auto" else ("wrk" if load.have_wrk() else "python")
    pairs = math.ceil(max(1, round(args.duration or (1.0 if args.smoke else 10.0))) * MERGE_RATE_CEILING)
    common = {"threads": args.threads, "connections": args.connections, "servers": chosen, "client": client}
    if args.smoke:
        duration = args.duration or 1.0
        cfg = Config(
            duration=duration, scale_duration=duration, startup_repeats=1, sizes=(100, 1_000), load_timeout=args.load_timeout or 60,
            profile_requests=300, merge_pairs=pairs, one_ccid=False, smoke=True, settle=0.3, serving_rounds=args.serving_rounds or 1,
            qa_rounds=args.qa_rounds or 1, qa_calls=500, qa_repeats=1, **common,
        )  # fmt: skip
    else:
        duration = args.duration or 10.0
        cfg = Config(
            duration=duration, scale_duration=min(5.0, duration), startup_repeats=3,
            sizes=(100, 100_000, 200_000) if args.skip_1m else (100, 100_000, 200_000, 1_000_000), load_timeout=args.load_timeout or 600,
            profile_requests=5000, merge_pairs=pairs, one_ccid=True, smoke=False, quiet_wait=args.quiet_wait,
            serving_rounds=args.serving_rounds or 2, qa_rounds=args.qa_rounds or 2, qa_calls=20_000, qa_repeats=3, **common,
        )  # fmt: skip
    return args, cfg


def main(argv: list[str] | None = None) -> int:
    args, cfg = parse(argv)
    started = time.perf_counter()
    report = Report()
    load_generator = machine.wrk_version() if cfg.client == "wrk" else "bounded Python client (benchmarks/load.py): wrk not found"
    description = machine.describe(load_generator)
    load_before = machine.load_average()
    others = machine.busy_processes()
    description.append(("load average at start (1/5/15 min)", " / ".join(f"{x:.2f}" for x in load_before)))
    description.append(("other processes using CPU at start", "; ".join(f"`{o}`" for o in others) if others else "none over 5% of a core"))
    command = "python -m benchmarks " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    report.add(
        f"# mockserver benchmark{' (smoke: checks the harness, not the speed)' if cfg.smoke else ''}\n\n"
        f"`{command.strip()}` — {time.strftime('%Y-%m-%d %H:%M %Z')}\n\n" + _table(["", ""], [[k, v] for k, v in description], "ll")
    )
    phases = [
        ("start-up", lambda: phase_startup(cfg, tmp_path, report)),
        ("throughput", lambda: phase_throughput(cfg, tmp_path, report)),
        ("serving", lambda: phase_serving(cfg, tmp_path, report)),
        ("qa-cost", lambda: phase_qa_cost(cfg, tmp_path, report)),
        ("durability", lambda: phase_durability(cfg, tmp_path, report)),
        ("shared-store", lambda: phase_shared_store(cfg, tmp_path, report)),
        ("scale", lambda: phase_scale(cfg, tmp_path, report)),
        ("profile", lambda: phase_profile(cfg, report)),
    ]
    phases = [(name, run) for name, run in phases if name in args.only and not (name == "profile" and args.no_profile)]
    with tempfile.TemporaryDirectory(prefix="mockserver-bench-") as tmp:
        tmp_path = Path(tmp)
        for name, run in phases:
            progress(f"phase {name}")
            try:
                run()
            except Exception as exc:  # noqa: BLE001 - one failed phase must not hide the others
                report.failures.append(f"{name}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
                traceback.print_exc()
    if others:
        report.warnings.append("other processes were using the CPU at the start (see above): check the other-CPU column of each run")
    rows = [list(t) for t in report.targets]
    summary = "## Targets (issues 4, 9 and 10)\n\n" + _table(["target", "measured", "limit", "verdict"], rows, "lrrl")
    if report.failures:
        summary += "\n\nFailures:\n\n" + "\n".join(f"- {f}" for f in report.failures)
    if report.warnings:
        summary += "\n\nWarnings:\n\n" + "\n".join(f"- {w}" for w in report.warnings)
    summary += f"\n\nTotal benchmark time: {time.perf_counter() - started:.0f} s."
    report.add(summary)
    if args.write_results:
        RESULTS.write_text("\n\n".join(report.sections) + "\n", encoding="utf-8")
        progress(f"wrote {RESULTS}")
    return 1 if report.failures else 0

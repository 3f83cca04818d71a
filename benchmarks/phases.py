"""The phases of a run. Each prints a table or two, every figure beside a reference measured in the same run (the
bare app on the same server, or the mock's plainest configuration), so that a run on a busy machine still compares
like with like."""

from __future__ import annotations

import math
import os
import re
import signal
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks import load
from benchmarks.in_process import MOVES, RETRIEVES, us_per_request
from benchmarks.runner import HELD_DEADLINE, Config, Report, bare, call, measured, median, memory, mock, progress, quiet, ratio, table
from benchmarks.stalls import RELAY_KEY, RequestLoop, change_something
from mockserver.testing.fixturegen import write_fixture
from mockserver.testing.held_load import HeldLoad, HeldReport, describe, hold, long_poll_request, raise_fd_limit, raw_request
from mockserver.testing.process import ServerProcess
from mockserver.testing.redis_server import redis_server

MOVE_CUSTOMERS = 1024  # moveCustomer's stream: each wrk thread moves its own half round robin, so no move races
DELAY_MS = 5000  # the held load's delayed requests: `Prefer: delay=5000`, as in tests/e2e/test_held_load.py
HTTP_COLUMNS = "configuration | req/s | p50 (ms) | p99 (ms) | vs (a) | statuses | failures | other CPU (cores)"
IN_PROCESS_COLUMNS = "configuration | µs/request (best) | every group | vs (a) (µs) | requests a group"


def _start(cfg: Config, app: str, server: str, name: str, *args: str) -> AbstractContextManager[ServerProcess]:
    return mock(cfg, name, "--server", server, *args) if app == "mockserver" else bare(cfg, name, server)


def _figures(result: load.LoadResult) -> list[str]:
    return [f"{result.rps:,.0f}", f"{result.p50_ms:.2f}", f"{result.p99_ms:.2f}"]


def _other(result: load.LoadResult) -> str:
    return "—" if result.other_cpu is None else f"{result.other_cpu:.2f}"


def _fresh(cfg: Config, name: str) -> Path:
    """A state file's path in a folder of its own."""
    folder = cfg.tmp / f"{name}-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    return folder / "state.json"


def _variants(cfg: Config, report: Report, fixture: Path, variants: list[tuple[str, tuple[str, ...]]]) -> list[list[str]]:
    """moveCustomer under wrk on a fresh `serve --fixtures FIXTURE ARGS` per variant; rows against the first, (a)."""
    rows, results = [], []
    for key, (label, args) in zip("abcdef", variants, strict=False):
        with mock(cfg, f"variant-{uuid.uuid4().hex[:8]}", "--fixtures", str(fixture), *args) as proc:
            if "--workers" in args:  # the port answers from the first worker on: wait for them all
                _until_logged(proc, "workers serve port", 60)
            results.append(result := measured(cfg, load.move(MOVE_CUSTOMERS), proc))
        why = report.check(f"moveCustomer, {label}", result)
        rows.append(
            [
                f"({key}) {label}",
                *_figures(result),
                ratio(result.rps, results[0].rps),
                result.status_mix(),
                "; ".join(why) or "none",
                _other(result),
            ]
        )
    return rows


def _until_logged(proc: ServerProcess, line: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while line not in proc.output():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{proc.name} did not log {line!r} within {timeout:g} s")
        time.sleep(0.05)


def _in_process(cfg: Config, report: Report, configs: Sequence[tuple[str, list, Callable[[], dict[str, Any]], int]]) -> list[list[str]]:
    """µs per request of each (label, requests, settings, calls), best of cfg.repeats groups; rows against the first, (a)."""
    rows, first = [], math.nan
    warmup = 200 if cfg.smoke else 1_200  # past the journal's 1,000 entries
    for key, (label, requests, settings, calls) in zip("abcdef", configs, strict=False):
        groups, statuses = us_per_request(requests, settings, calls, cfg.repeats, warmup)
        best = min(groups)
        first = best if key == "a" else first
        if set(statuses) != {200}:
            report.failures.append(f"in process, {label}: answered {dict(statuses)}")
        progress(f"in process, {label}: {best:.1f} µs a request")
        rows.append([f"({key}) {label}", f"{best:.1f}", ", ".join(f"{us:.1f}" for us in groups), f"{best - first:+.1f}", f"{calls:,}"])
    return rows


# ---------------------------------------------------------------- start-up


def startup(cfg: Config, report: Report) -> None:
    rows = []
    for server in cfg.servers:
        figures = {}
        for app in ("mockserver", "bare app"):
            times, used = [], (math.nan, math.nan, 0)
            for attempt in range(cfg.repeats):
                with _start(cfg, app, server, f"start-{app.replace(' ', '-')}-{server}-{attempt}") as proc:
                    times.append(proc.ready_after or math.nan)
                    time.sleep(cfg.settle)  # granian's worker (the bare app's) is forked before the first answer
                    used = memory(proc)
            figures[app] = (median(times), used)
        (start, used), (bare_start, bare_used) = figures["mockserver"], figures["bare app"]
        rows.append([server, "mockserver", f"{start:.3f}", f"{used[0]:.0f}", f"{used[1]:.0f}", str(used[2]), ratio(start, bare_start)])
        rows.append([server, "bare app", f"{bare_start:.3f}", f"{bare_used[0]:.0f}", f"{bare_used[1]:.0f}", str(bare_used[2]), "1.00x"])
        report.headline.append((f"start to first healthy answer, PSS idle ({server})", f"{start:.2f} s, {used[1]:.0f} MB"))
    report.add(
        f"## Start-up and idle memory (default fixtures; the median of {cfg.repeats} start(s))\n\n"
        "Start: from spawning the process to its first healthy answer (`GET /__admin/health`, polled every 10 ms). RSS sums\n"
        "VmRSS over the server's process tree (shared pages count in each process); PSS splits shared pages among them.\n\n"
        + table("server | app | start (s) | RSS (MB) | PSS (MB) | processes | start vs bare", rows)
    )


# ---------------------------------------------------------------- serving: throughput and p99, idle and held


def held_shape(url: str, cfg: Config) -> HeldLoad:
    """The issue's held load (smoke: the CI-sized one), held until wrk ends, each delayed request resent once answered."""
    delayed = raw_request(url, "GET", "/cdm/client/demo/customer/BAK-11984-008", {**RELAY_KEY, "Prefer": f"delay={DELAY_MS}"})
    shape = (HeldLoad.light if cfg.smoke else HeldLoad.full)(delayed, long_poll_request(url))
    return replace(shape, hold_seconds=cfg.duration + 60, open_timeout=10.0, answer_grace=1.0, resend_after=DELAY_MS / 1000)


def _held_failures(held: HeldReport) -> list[str]:
    why = [f"held {name} {kind.established}/{kind.wanted}" for name, kind in held.kinds().items() if kind.established < kind.wanted]
    if cut := sum(kind.closed_early for kind in held.kinds().values()):
        why.append(f"{cut:,} held connections ended by the server")
    if set(held.delayed.statuses) - {200}:
        why.append(f"delayed answers {dict(held.delayed.statuses)}")
    return why


def _serve(cfg: Config, report: Report, app: str, server: str, fixture: Path, runs: list, notes: list[str]) -> list:
    """`runs` (scenario name, held or not) against one server of `app`: each run's result and failures."""
    deadlines = ("--head-timeout", str(HELD_DEADLINE), "--body-timeout", str(HELD_DEADLINE)) if server == "granian" else ()
    done = []
    with _start(cfg, app, server, f"serving-{app.replace(' ', '-')}-{server}", "--fixtures", str(fixture), *deadlines) as proc:
        if not cfg.smoke:  # one unrecorded second, so that no measured run pays first-request costs
            load.run(load.retrieve(), proc.url, 1, cfg.threads, cfg.connections, cfg.tmp)
        for name, held in runs:
            call(proc.url, "POST", "/__admin/reset")  # every moveCustomer stream starts from the fixtures
            scenario = load.move(MOVE_CUSTOMERS) if name == "moveCustomer" else load.retrieve()
            what, extra = f"{app} on {server}, {name}, {'held load' if held else 'idle'}", []
            if not held:
                result = measured(cfg, scenario, proc)
            else:
                quiet(cfg, proc)  # before the load is held: its connections must not wait out a deadline meanwhile
                with hold(proc.url, held_shape(proc.url, cfg)) as held_report:
                    result = measured(cfg, scenario, proc, wait=False)
                extra = _held_failures(held_report)
                notes.append(f"- {what}: {describe(held_report)}")
            done.append((result, "; ".join(report.check(what, result, extra)) or "none"))
    return done


def serving(cfg: Config, report: Report) -> None:
    fixture = write_fixture(cfg.tmp / "serving.json", move_customers=MOVE_CUSTOMERS)
    shape = held_shape("http://127.0.0.1:1", cfg)
    raise_fd_limit(shape.connections + 256)  # before a server starts: it inherits the limit
    rows, notes = [], list[str]()
    for server in cfg.servers:
        runs = [("moveCustomer", False), ("retrieveCustomer", False)]
        runs += [("moveCustomer", True)] if server == "granian" else []  # waitress would give a thread to each waiting request
        bare_runs = _serve(cfg, report, "bare app", server, fixture, runs, notes)
        mock_runs = _serve(cfg, report, "mockserver", server, fixture, runs, notes)
        for app, app_runs in (("bare app", bare_runs), ("mockserver", mock_runs)):
            for (name, held), (result, why), (base, _) in zip(runs, app_runs, bare_runs, strict=True):
                vs = [ratio(result.rps, base.rps), ratio(result.p99_ms, base.p99_ms)]
                rows.append(
                    [server, app, name, "held" if held else "idle", *_figures(result), *vs, result.status_mix(), why, _other(result)]
                )
                if app == "mockserver" and name == "moveCustomer":
                    what = f"moveCustomer over HTTP, memory, {'held load' if held else 'idle'} ({server})"
                    report.headline.append((what, f"{result.rps:,.0f} req/s, p99 {result.p99_ms:.2f} ms ({vs[0]}, {vs[1]} the bare app)"))
    report.add(
        f"## Throughput and p99: the mock against the bare app, idle and under the held load (wrk -t{cfg.threads}"
        f" -c{cfg.connections}, {cfg.duration:g} s a run)\n\n"
        f"The mock: `serve --fixtures` of the default data and {MOVE_CUSTOMERS:,} generated customers; moveCustomer moves each wrk\n"
        "thread's own customers round robin (every answer a 200; the state is reset before each run), retrieveCustomer reads\n"
        "one. The bare app (benchmarks/baseline_app.py) on the same server is sent the same requests. The held load\n"
        f"(mockserver/testing/held_load), opened before wrk starts and held until it ends: {shape.idle_connections:,} idle keep-alive\n"
        f"connections, {shape.trickling_bodies:,} bodies trickling in (a byte a second), {len(shape.delayed_requests):,} retrieveCustomer"
        f" with `Prefer: delay={DELAY_MS}` (resent once answered)\nand {len(shape.long_polls):,} journal long polls"
        " (`POST /__admin/requests/wait`); the bare app answers these two at once (so every 5 s).\n\n"
        + table(
            "server | app | scenario | load | req/s | p50 (ms) | p99 (ms) | req/s vs bare | p99 vs bare | statuses | failures"
            " | other CPU (cores)",
            rows,
        )
        + ("\n\nWhat the held load saw:\n\n" + "\n".join(notes) if notes else "")
    )


# ---------------------------------------------------------------- in process


def in_process(cfg: Config, report: Report) -> None:
    configs = [
        ("moveCustomer", MOVES, dict, cfg.calls),
        ("moveCustomer, journal off (`--journal-size 0`)", MOVES, lambda: {"journal_size": 0}, cfg.calls),
        ("retrieveCustomer", RETRIEVES, dict, cfg.calls),
    ]
    rows = _in_process(cfg, report, configs)
    report.headline.append(("moveCustomer in process, memory", f"{rows[0][1]} µs"))
    report.add(
        f"## In process: µs per request (benchmarks/in_process.py; the best of {cfg.repeats} group(s), each on a fresh app)\n\n"
        "The ASGI app `mockserver serve` runs, awaited directly, one request at a time: routing, authentication, validation,\n"
        "the handler under the store's lock, the self-check, rendering and the journal, without sockets or HTTP parsing.\n"
        "moveCustomer alternates BAK-11984-007 between two groups (every answer a 200).\n\n" + table(IN_PROCESS_COLUMNS, rows)
    )


# ---------------------------------------------------------------- the state file


def state_file(cfg: Config, report: Report) -> None:
    fixture = write_fixture(cfg.tmp / "state-file.json", move_customers=MOVE_CUSTOMERS)
    fsyncs = ("no", "everysec", "always")
    labels = ["no state file", *(f"`--state-file --fsync {fsync}`" for fsync in fsyncs)]
    variants = [("--state-file", str(_fresh(cfg, "state")), "--fsync", fsync) for fsync in fsyncs]
    rows = _variants(cfg, report, fixture, list(zip(labels, [(), *variants], strict=True)))
    in_process_configs = [(labels[0], MOVES, dict, cfg.calls)] + [
        (label, MOVES, lambda f=fsync: {"state_file": _fresh(cfg, "in-process"), "fsync": f}, cfg.calls // (5 if fsync == "always" else 1))
        for label, fsync in zip(labels[1:], fsyncs, strict=True)
    ]
    in_process_rows = _in_process(cfg, report, in_process_configs)
    restart = _restart(cfg, report)
    report.add(
        f"## The state file: what `--state-file` costs a move, a restart and a compaction\n\n"
        f"Over HTTP: moveCustomer as above on a fresh server per run, its state file starting empty (wrk -t{cfg.threads}"
        f" -c{cfg.connections}, {cfg.duration:g} s).\n\n"
        + table(HTTP_COLUMNS, rows)
        + f"\n\nIn process (as in the in-process phase; `always`: a fifth of the moves). A bare append and fsync of one line here:"
        f" {_bare_fsync_us(cfg):.0f} µs.\n\n" + table(IN_PROCESS_COLUMNS, in_process_rows) + "\n\n" + restart
    )


def _bare_fsync_us(cfg: Config, samples: int = 200) -> float:
    """Median µs to append one line to a file and fsync it, in this run's temporary folder."""
    fd, timings = os.open(_fresh(cfg, "fsync").with_name("probe.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644), []
    try:
        for _ in range(samples):
            started = time.perf_counter()
            os.write(fd, b'{"records":[["relay","demo/customers","MOV-00001",{"ccid":"MOV-00001"}]]}\n')
            os.fsync(fd)
            timings.append((time.perf_counter() - started) * 1e6)
    finally:
        os.close(fd)
    return median(timings)


def _restart(cfg: Config, report: Report) -> str:
    """A restart reads the snapshot and replays the log after it; a compaction forks a snapshot writer while serving."""
    customers = cfg.restart_customers
    fixture = write_fixture(cfg.tmp / f"restart-{customers}.json", relay_customers=customers, move_customers=MOVE_CUSTOMERS)
    state = _fresh(cfg, "restart")
    args = ("--fixtures", str(fixture), "--state-file", str(state))
    # The first start writes the snapshot; the moves go to the log. The compactor's first check comes a second after
    # the start, before any move (nothing is due then), and the next one an hour later: the log keeps every move.
    with mock(cfg, "restart-0", *args, "--save-interval", "3600") as proc:
        time.sleep(1.5)
        moved = load.run(load.move(MOVE_CUSTOMERS), proc.url, cfg.duration, cfg.threads, cfg.connections, cfg.tmp)
        os.kill(proc.pid, signal.SIGKILL)  # no compaction on the way out: the log stays, to be replayed
        proc.process.wait()
    with mock(cfg, "restart-1", *args, "--save-interval", "1") as proc:
        with_log = proc.ready_after or math.nan
        replayed = int(next(iter(re.findall(r"replayed (\d+) changes", proc.output())), 0))
        stall = _compaction_stall(report, proc, state)
    with mock(cfg, "restart-2", *args) as proc:  # the clean stop before compacted everything into the snapshot
        snapshot_only = proc.ready_after or math.nan
    if replayed < moved.requests * 0.9:
        report.failures.append(f"restart: {replayed:,} changes replayed of {moved.requests:,} moves answered")
    per_change = (with_log - snapshot_only) / replayed * 1e6 if replayed else math.nan
    what = f"restart with {customers:,} customers: snapshot alone, + {replayed:,} changes"
    report.headline.append((what, f"{snapshot_only:.2f} s, {with_log:.2f} s"))
    return (
        f"Restart with {customers:,} customers (snapshot {state.stat().st_size / 1e6:.1f} MB), spawn to first healthy answer:"
        f" {snapshot_only:.2f} s from the snapshot alone, {with_log:.2f} s with a log of {replayed:,} changes to replay"
        f" (moves answered before a kill -9): {per_change:.1f} µs a replayed change.\n\n{stall}"
    )


def _compaction_stall(report: Report, proc: ServerProcess, state: Path) -> str:
    """The worst wait of a request loop while a compaction runs (one change makes it due at the next check, 1 s)."""
    before = state.stat().st_mtime_ns
    with RequestLoop(proc.url) as loop:
        time.sleep(1.0)
        due = time.perf_counter()
        changed = change_something(proc.url)
        deadline = due + 15
        while state.stat().st_mtime_ns == before and time.perf_counter() < deadline:
            time.sleep(0.02)
        compacted = time.perf_counter() - due
        time.sleep(0.5)
    if state.stat().st_mtime_ns == before or changed != 200:
        report.failures.append(f"compaction not seen within 15 s of a change (the change answered {changed})")
        return "Compaction: **not seen**."
    (quiet_max, quiet_p99), (worst, p99) = loop.worst(due - 0.8, due), loop.worst(due)
    return (
        f"Compaction: the snapshot was rewritten {compacted:.2f} s after one change made it due; a request loop (retrieveCustomer"
        f" on one keep-alive connection) waited at worst {worst:.1f} ms (p99 {p99:.1f} ms) from then on, against {quiet_max:.1f} ms"
        f" (p99 {quiet_p99:.1f} ms) in the second before; {loop.errors} failed requests."
    )


# ---------------------------------------------------------------- the shared store


def shared_store(cfg: Config, report: Report) -> None:
    fixture = write_fixture(cfg.tmp / "shared-store.json", move_customers=MOVE_CUSTOMERS)
    with redis_server() as url:
        namespace = lambda: f"bench-{uuid.uuid4().hex[:8]}"  # noqa: E731
        variants = [
            ("1 process, memory", ()),
            ("1 process, Redis (`--store redis://`)", ("--store", url, "--namespace", namespace())),
            ("`--workers 2` on one port, Redis", ("--store", url, "--namespace", namespace(), "--workers", "2")),
        ]
        rows = _variants(cfg, report, fixture, variants)
        redis = lambda: {"store": url, "namespace": namespace()}  # noqa: E731
        in_process_rows = _in_process(cfg, report, [("memory", MOVES, dict, cfg.calls), ("Redis", MOVES, redis, cfg.calls)])
    report.headline.append(("moveCustomer over HTTP, 1 process on Redis", f"{rows[1][1]} req/s ({rows[1][4]} memory)"))
    report.headline.append(("moveCustomer in process, Redis", f"{in_process_rows[1][1]} µs"))
    report.add(
        "## The shared store: moveCustomer on Redis\n\n"
        f"Over HTTP as above, a fresh server per run (wrk -t{cfg.threads} -c{cfg.connections}, {cfg.duration:g} s); Debian's"
        " redis-server, no persistence, on the same cores as the servers and wrk (its CPU counts as other CPU).\n\n"
        + table(HTTP_COLUMNS, rows)
        + "\n\nIn process (as in the in-process phase; each Redis group under a namespace of its own):\n\n"
        + table(IN_PROCESS_COLUMNS, in_process_rows)
    )


# ---------------------------------------------------------------- scale


SCALE_STARTS = (("YAML, fixture cache empty", ".yaml", True), ("YAML, from the cache", ".yaml", True), ("JSON, cache off", ".json", False))


def scale(cfg: Config, report: Report) -> None:
    start_rows, served_rows, p50s = [], [], dict[int, float]()
    for size in cfg.sizes:
        fixtures = {suffix: write_fixture(cfg.tmp / f"scale-{size}{suffix}", relay_customers=size) for suffix in (".yaml", ".json")}
        row = [f"{size:,}", *(f"{fixtures[suffix].stat().st_size / 1e6:.0f}" for suffix in (".yaml", ".json"))]
        for label, suffix, cached in SCALE_STARTS:
            args = ("--fixtures", str(fixtures[suffix]), "--fixture-cache", str(cfg.tmp / f"cache-{size}") if cached else "off")
            progress(f"scale {size:,}: starting, {label}")
            try:
                with mock(cfg, f"scale-{size}{suffix}-{cached}", *args, timeout=60 if cfg.smoke else 600) as proc:
                    row.append(f"{proc.ready_after:.1f}")
                    if suffix == ".json":
                        served_rows.append(_served_at_scale(cfg, report, proc, size, p50s))
            except RuntimeError as exc:  # a start that fails or runs out of time: the others go on
                report.failures.append(f"scale {size:,}, {label}: {str(exc).splitlines()[0]}")
                row.append("failed")
        start_rows.append(row)
    for row in served_rows:
        row.insert(6, ratio(p50s.get(int(row[0].replace(",", ""))), p50s.get(cfg.sizes[0])))
    report.headline.append((f"start with {start_rows[-1][0]} customers: YAML, cached YAML, JSON", " s, ".join(start_rows[-1][3:]) + " s"))
    report.add(
        "## Scale: start, memory, lookups and resets with N Relay customers (granian)\n\n"
        "Fixtures: the default data plus N generated customers of client `demo`. Start: spawn to the first healthy answer,\n"
        "reading and checking the file and building the states a start needs; three starts a size.\n\n"
        + table("customers | YAML (MB) | JSON (MB) | " + " | ".join(f"start: {label} (s)" for label, _, _ in SCALE_STARTS), start_rows)
        + "\n\nThe server started on JSON, next: its memory; a wrk pass of retrieveCustomer over all N ccids in a scattered order;\n"
        "then resets (`POST /__admin/reset`), a pause after each for the work a reset leaves (the next spare state, freeing the\n"
        "old one), while a request loop (retrieveCustomer on one keep-alive connection) runs: its worst waits before and during.\n\n"
        + table(
            "customers | RSS idle (MB) | PSS idle (MB) | req/s | p50 (ms) | p99 (ms) | p50 vs smallest | reset answered in, worst (ms)"
            " | loop max: before / during resets (ms) | loop p99: before / during (ms) | PSS after resets (MB)",
            served_rows,
        )
    )


def _served_at_scale(cfg: Config, report: Report, proc: ServerProcess, size: int, p50s: dict[int, float]) -> list[str]:
    time.sleep(cfg.settle)
    rss, pss, _ = memory(proc)
    result = measured(cfg, load.retrieve_spread(size), proc, seconds=min(5.0, cfg.duration))
    report.check(f"scale {size:,}: retrieveCustomer over all", result)
    p50s[size] = result.p50_ms
    resets, pause = (2, 0.2) if cfg.smoke else (5, max(1.5, size / 200_000))
    answered_in = []
    with RequestLoop(proc.url) as loop:
        time.sleep(1.0)
        first = time.perf_counter()
        for _ in range(resets):
            started = time.perf_counter()
            if (status := call(proc.url, "POST", "/__admin/reset", timeout=120)[0]) != 200:
                report.failures.append(f"scale {size:,}: a reset answered {status}")
            answered_in.append((time.perf_counter() - started) * 1000)
            time.sleep(pause)
    (quiet_max, quiet_p99), (during_max, during_p99) = loop.worst(first - 0.8, first), loop.worst(first)
    if loop.errors:
        report.failures.append(f"scale {size:,}: {loop.errors} failed requests in the loop around the resets")
    time.sleep(cfg.settle)
    waits = [f"{max(answered_in):.1f}", f"{quiet_max:.1f} / {during_max:.1f}", f"{quiet_p99:.1f} / {during_p99:.1f}"]
    return [f"{size:,}", f"{rss:,.0f}", f"{pss:,.0f}", *_figures(result), *waits, f"{memory(proc)[1]:,.0f}"]

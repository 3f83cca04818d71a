"""The run: its settings, the servers it starts, the report it prints, and `main`.

Every figure is printed as Markdown as soon as it is measured; the summary
at the end lists the headline figures, failed runs and noise warnings, and
the exit status is 1 if any run failed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import load, machine
from mockserver.testing.harness import MockServer, call
from mockserver.testing.process import ServerProcess, free_port, process_tree, pss_kib, rss_kib

SERVERS = ("granian", "waitress")
PHASES = ("start-up", "serving", "in-process", "state-file", "shared-store", "scale")
QUIET = 0.15  # cores other processes may use when a load run starts
DISTURBED = 0.2  # cores other processes used during a run from which the summary warns
HELD_DEADLINE = 60  # s, the servers' deadline for a request head and an idle connection (granian: 60 at most)
# The bare app on each server, set up as `mockserver serve` sets that server up (granian: one event loop on uvloop,
# HTTP/1 only, its caps at --max-connections, the head deadline of the mock's held runs; waitress: --threads 8).
BARE = {
    "granian": "-m granian --interface asginl --loop uvloop --workers 1 --http 1 --no-ws --backlog 8192 --backpressure 8192"
    " --http1-header-read-timeout {deadline_ms} --no-log --host 127.0.0.1 --port {port} benchmarks.baseline_app:asgi",
    "waitress": "-m waitress --listen=127.0.0.1:{port} --threads=8 benchmarks.baseline_app:wsgi",
}


@dataclass
class Config:
    smoke: bool
    only: tuple[str, ...]
    servers: tuple[str, ...]
    duration: float  # seconds of each load run
    threads: int  # wrk -t
    connections: int  # wrk -c
    repeats: int  # starts a figure is the median of; in-process groups it is the best of
    calls: int  # in-process requests in a group
    sizes: tuple[int, ...]  # Relay customers of the scale phase
    restart_customers: int  # customers in the state file a restart reads
    quiet_wait: float  # seconds a load run may wait for other processes to leave the CPU
    tmp: Path = Path()

    @property
    def settle(self) -> float:
        """Seconds between a server's first answer and reading its memory."""
        return 0.3 if self.smoke else 1.0


@dataclass
class Report:
    sections: list[str] = field(default_factory=list)
    headline: list[tuple[str, str]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def add(self, text: str) -> None:
        self.sections.append(text)
        print(text + "\n", flush=True)

    def check(self, what: str, result: load.LoadResult, extra: list[str] | None = None) -> list[str]:
        """A run's failures (recorded in the summary) and its noise (a warning); the failures, for its row."""
        why = result.failures() + (extra or [])
        if why:
            self.failures.append(f"{what}: {'; '.join(why)}")
        if result.other_cpu is not None and result.other_cpu >= DISTURBED:
            self.warnings.append(f"{what}: other processes kept {result.other_cpu:.2f} cores busy during the run")
        progress(f"{what}: {result.rps:,.0f} req/s, p99 {result.p99_ms:.2f} ms, {result.status_mix()}")
        return why


def progress(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def table(columns: str, rows: list[list[str]]) -> str:
    """Markdown, `columns` separated by " | "; a column whose first cell is a figure is right-aligned."""
    header = columns.split(" | ")
    marks = ["---:" if rows and i and rows[0][i][:1] in "0123456789+-—" else "---" for i in range(len(header))]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in [header, marks, *rows])


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a is not None and b else "—"


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# ---------------------------------------------------------------- servers


@contextmanager
def mock(cfg: Config, name: str, *args: str, timeout: float = 60.0) -> Iterator[MockServer]:
    """`mockserver serve ARGS` on a free port, waited for (its health polled every 10 ms), stopped on exit."""
    with MockServer.start(args, cfg.tmp / f"{name}.log", timeout=timeout, poll=0.01) as server:
        yield server


@contextmanager
def bare(cfg: Config, name: str, server: str) -> Iterator[ServerProcess]:
    """The bare baseline app on `server`, as `mock` starts the mock."""
    port = free_port()
    command = [sys.executable, *BARE[server].format(port=port, deadline_ms=HELD_DEADLINE * 1000).split()]
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(machine.REPO), os.environ.get("PYTHONPATH")]))}
    with ServerProcess.spawn(command, port, cfg.tmp / f"{name}.log", cwd=machine.REPO, env=env, name=f"the bare app on {server}") as proc:
        proc.wait_ready(lambda: healthy(proc.url), 60, 0.01)
        yield proc


def healthy(url: str) -> bool:
    return call(url, "GET", "/__admin/health", timeout=1) == (200, {"status": "ok"})


def memory(proc: ServerProcess) -> tuple[float, float, int]:
    """RSS and PSS (MB) summed over the server's process tree, and how many processes it has."""
    return rss_kib(proc.pid) / 1024, pss_kib(proc.pid) / 1024, len(process_tree(proc.pid))


def quiet(cfg: Config, proc: ServerProcess) -> None:
    """Wait (at most cfg.quiet_wait seconds) for processes other than the server and this one to leave the CPU."""
    if cfg.quiet_wait:
        machine.wait_quiet(cfg.quiet_wait, QUIET, progress, proc.pid)


def measured(cfg: Config, scenario: load.Scenario, proc: ServerProcess, seconds: float | None = None, wait: bool = True) -> load.LoadResult:
    """One wrk run against `proc` (once the machine is quiet, unless `wait` is False), with the cores other processes
    used meanwhile."""
    if wait:
        quiet(cfg, proc)
    result, others = machine.others_during(
        lambda: load.run(scenario, proc.url, seconds or cfg.duration, cfg.threads, cfg.connections, cfg.tmp), proc.pid
    )
    result.other_cpu = others
    return result


# ---------------------------------------------------------------- main


def parse(argv: list[str] | None) -> Config:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description="mockserver against a bare app, in one bounded run.")
    parser.add_argument("--smoke", action="store_true", help="about a minute: checks the harness works, not how fast (CI)")
    parser.add_argument("--only", default=",".join(PHASES), help=f"comma-separated phases, of {', '.join(PHASES)} (default: all)")
    parser.add_argument("--servers", default=None, help="granian and/or waitress (default: both; smoke: granian)")
    parser.add_argument("--duration", type=float, default=None, help="seconds per load run (default 10; smoke 1)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    parser.add_argument("--skip-1m", action="store_true", help="leave out the scale phase's million customers (2-3 minutes)")
    parser.add_argument("--quiet-wait", type=float, default=60, help="seconds a load run may wait for a quiet CPU (default 60)")
    args = parser.parse_args(argv)
    only = tuple(p.strip() for p in args.only.split(",") if p.strip())
    servers = tuple(s.strip() for s in (args.servers or ("granian" if args.smoke else ",".join(SERVERS))).split(","))
    if not only or set(only) - set(PHASES) or not servers or set(servers) - set(SERVERS):
        parser.error(f"--only: choose from {', '.join(PHASES)}; --servers: from {', '.join(SERVERS)}")
    load.wrk()  # refuses at once when wrk is missing
    if args.smoke:
        return Config(True, only, servers, args.duration or 1.0, args.threads, args.connections, 1, 300, (1_000,), 1_000, 0)
    sizes = (100, 100_000) if args.skip_1m else (100, 100_000, 1_000_000)
    return Config(False, only, servers, args.duration or 10.0, args.threads, args.connections, 3, 5_000, sizes, 100_000, args.quiet_wait)


def main(argv: list[str] | None = None) -> int:
    from benchmarks import phases

    cfg, report, started = parse(argv), Report(), time.perf_counter()
    command = " ".join(["python -m benchmarks", *(argv if argv is not None else sys.argv[1:])])
    report.add(f"# mockserver benchmark{' (smoke)' if cfg.smoke else ''}\n\n`{command}`, {time.strftime('%Y-%m-%d %H:%M %Z')}")
    report.add(table("machine | ", [[k, v] for k, v in machine.describe()]))
    runs: dict[str, Callable[[Config, Report], None]] = {
        "start-up": phases.startup, "serving": phases.serving, "in-process": phases.in_process,
        "state-file": phases.state_file, "shared-store": phases.shared_store, "scale": phases.scale,
    }  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="mockserver-bench-") as tmp:
        cfg.tmp = Path(tmp)
        for name in cfg.only:
            progress(f"phase {name}")
            try:
                runs[name](cfg, report)
            except Exception as exc:  # noqa: BLE001 - one failed phase must not hide the others
                report.failures.append(f"{name}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
                traceback.print_exc()
    summary = "## Summary\n\n" + table("figure | measured", [list(row) for row in report.headline])
    for title, items in (("Failures", report.failures), ("Warnings (noise)", report.warnings)):
        summary += f"\n\n{title}:\n\n" + "\n".join(f"- {item}" for item in items) if items else ""
    report.add(summary + f"\n\nTotal: {time.perf_counter() - started:.0f} s.")
    return 1 if report.failures else 0

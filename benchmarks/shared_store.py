"""What the shared store (#14) costs and gives: moveCustomer on Redis against the in-memory store.

* Over HTTP (wrk): one `serve` process in memory (the baseline), then one, two and
  four processes on one Redis, each with its own wrk (disjoint customers, so no
  409), run side by side; req/s summed, p99 the worst of them; then `--workers 2`
  and `--workers 4` behind one port, one wrk. On a 2-core
  machine the servers, Redis and the load generators share the cores, so more
  processes cannot scale here: the figures say what one Redis round trip costs
  and that several processes stay correct together, not how far they scale.
* In process: µs per move through the ASGI app, memory against Redis.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from benchmarks import load, servers


@dataclass(frozen=True)
class Variant:
    key: str
    processes: int  # `serve` processes, each on its own port with its own wrk
    redis: bool
    workers: int = 1  # `serve --workers`: processes behind one port, one wrk

    @property
    def label(self) -> str:
        where = "Redis (`--store redis://`)" if self.redis else "memory"
        if self.workers > 1:
            return f"({self.key}) `--workers {self.workers}` on one port, {where}"
        return f"({self.key}) {self.processes} process{'es' if self.processes > 1 else ''}, {where}"


VARIANTS = (
    Variant("a", 1, False), Variant("b", 1, True), Variant("c", 2, True), Variant("d", 4, True),
    Variant("e", 1, True, workers=2), Variant("f", 1, True, workers=4),
)  # fmt: skip


@dataclass
class Run:
    variant: Variant
    round: int
    results: list[load.LoadResult] = field(default_factory=list)
    error: str = ""

    @property
    def result(self) -> load.LoadResult | None:
        """The runs side by side as one: requests summed over the longest duration, the worst p50 and p99."""
        if not self.results:
            return None
        statuses: Counter = Counter()
        for result in self.results:
            statuses.update(result.statuses)
        seconds = max(r.seconds for r in self.results)
        return load.LoadResult(
            "moveCustomer", sum(r.requests for r in self.results), seconds, max(r.p50_ms for r in self.results),
            max(r.p99_ms for r in self.results), dict(statuses), sum(r.socket_errors for r in self.results), self.results[0].client,
        )  # fmt: skip


def measure(variant: Variant, fixture: Path, redis_url: str, customers: int, plan, round_: int, watch) -> Run:
    """`variant.processes` fresh servers (one Redis namespace), each loaded by its own wrk at the same time."""
    run = Run(variant, round_)
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    per_process = customers // variant.processes
    try:
        with _servers(variant, fixture, redis_url, namespace, plan.workdir) as procs:
            threads, results = [], [None] * len(procs)

            def one(k: int, port: int) -> None:
                folder = plan.workdir / f"shared-{round_}-{variant.key}-{k}"
                folder.mkdir(exist_ok=True)
                scenario = load.move_scenario(per_process, first=k * per_process)
                connections = max(1, plan.connections // variant.processes)  # the same total for every variant
                results[k] = load.run_load(scenario, port, plan.duration, 1, connections, folder, plan.client)

            for k, (_, port) in enumerate(procs):
                threads.append(threading.Thread(target=one, args=(k, port)))
            if variant.processes == 1:  # what else used the CPU (Redis included) is told for one server only
                watch(procs[0][0], lambda: _all(threads))
            else:
                _all(threads)
            if any(r is None for r in results):
                raise RuntimeError("a load generator failed")
            run.results = [r for r in results if r is not None]
    except Exception as exc:  # noqa: BLE001 - a failed run in the table; the others go on
        run.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return run


def _all(threads: list[threading.Thread]) -> load.LoadResult:
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return load.LoadResult("moveCustomer", 0, 1.0, 0.0, 0.0)  # the figures are read from each generator


class _servers:
    """Start the variant's server processes (all ready before any load), and stop them all on exit."""

    def __init__(self, variant: Variant, fixture: Path, redis_url: str, namespace: str, workdir: Path):
        self._argvs = []
        for k in range(variant.processes):
            port = servers.free_port()
            argv = servers.mockserver_argv("granian", port, fixture)
            if variant.redis:
                argv += ["--store", redis_url, "--namespace", namespace]
            if variant.workers > 1:
                argv += ["--workers", str(variant.workers)]
            self._argvs.append((f"shared-{variant.key}-{k}-{uuid.uuid4().hex[:4]}", argv, port))
        self._workdir = workdir
        self._procs: list[tuple[servers.ServerProcess, int]] = []

    def __enter__(self) -> list[tuple[servers.ServerProcess, int]]:
        try:
            for name, argv, port in self._argvs:
                proc = servers.ServerProcess(name, argv, self._workdir)
                proc.__enter__()
                self._procs.append((proc, port))
                proc.wait_ready(partial(servers.mockserver_probe, port), 60)
                if "--workers" in argv:  # the port answers from the first worker on: wait for them all
                    _until_logged(proc, "workers serve port", 60)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self._procs

    def __exit__(self, *exc) -> None:
        for proc, _ in self._procs:
            proc.__exit__(None, None, None)


def _until_logged(proc: servers.ServerProcess, line: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while line not in proc.log_path.read_text(errors="replace"):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{proc.name} did not log {line!r} within {timeout:g} s")
        time.sleep(0.05)


def in_process_us(fixture: Path, redis_url: str | None, calls: int, repeats: int) -> float:
    """Best µs per move through the ASGI app (memory, or Redis under a fresh namespace)."""
    from benchmarks.qa_cost import _moves, _new_loop
    from mockserver.mock import create_app
    from mockserver.settings import Settings

    loop, _ = _new_loop()
    groups = []
    try:
        for _ in range(repeats):
            shared = {"store": redis_url, "namespace": f"bench-{uuid.uuid4().hex[:8]}"} if redis_url else {}
            app = create_app(Settings(fixtures=fixture, **shared)).mock.asgi()
            loop.run_until_complete(_moves(app, 200, Counter()))
            statuses: Counter = Counter()
            groups.append(loop.run_until_complete(_moves(app, calls, statuses)) / calls * 1e6)
            if set(statuses) != {200}:
                raise RuntimeError(f"in-process moves answered {dict(statuses)}")
    finally:
        loop.close()
    return min(groups)

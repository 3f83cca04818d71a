"""What durability (#11) costs a request, and what restarts and compactions cost.

* Over HTTP (wrk, moveCustomer, fresh server per run): no state file, the
  baseline, against `--state-file` with `--fsync no`, `everysec` and `always`.
  Concurrent clients share fsyncs at `always` (group commit).
* In process (the ASGI app, no sockets, one request at a time): µs per move
  at each setting; at `always` every move waits for its own fsync, measured
  here beside a bare fsync of one appended line.
* Restart: seconds to restore a snapshot of N customers, alone and followed
  by a log of M moves (replay rate).
* Compaction: the worst wait of a store command while a checkpoint runs (the
  fork holds the store's lock; the forked child writes meanwhile), against the
  worst wait over the same span without one.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from benchmarks import load, servers
from benchmarks.designs import Plan, Watch


@dataclass(frozen=True)
class Variant:
    key: str
    fsync: str | None  # None: no state file

    @property
    def label(self) -> str:
        return f"({self.key}) " + ("no state file" if self.fsync is None else f"`--state-file --fsync {self.fsync}`")

    def flags(self, state: Path) -> list[str]:
        return [] if self.fsync is None else ["--state-file", str(state), "--fsync", self.fsync]


VARIANTS = (Variant("a", None), Variant("b", "no"), Variant("c", "everysec"), Variant("d", "always"))


@dataclass
class Run:
    variant: Variant
    round: int
    result: load.LoadResult | None = None
    error: str = ""


def measure_http(variant: Variant, fixture: Path, plan: Plan, round_: int, watch: Watch) -> Run:
    """One wrk run of moveCustomer on a fresh server; its state file starts empty (first start from the fixtures)."""
    run = Run(variant, round_)
    tag = f"durability-{round_}-{variant.key}"
    folder = plan.workdir / tag
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    port = servers.free_port()
    argv = servers.mockserver_argv("granian", port, fixtures=fixture) + variant.flags(folder / "state.json")
    scenario = load.move_scenario(plan.customers)
    moves = partial(load.run_load, scenario, port, plan.duration, plan.threads, plan.connections, folder, plan.client)
    try:
        with servers.ServerProcess(tag, argv, folder) as proc:
            proc.wait_ready(partial(servers.mockserver_probe, port), 120)
            if plan.full:
                load.run_load(load.retrieve_scenario(), port, 1, plan.threads, plan.connections, folder, plan.client)
            run.result = watch(proc, moves)
    except Exception as exc:  # noqa: BLE001 - a failed run in the table; the others go on
        run.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return run


# ---------------------------------------------------------------- in process


def _app(fixture: Path, state: Path | None, fsync: str):
    from mockserver.mock import create_app
    from mockserver.settings import Settings

    mock = create_app(Settings(fixtures=fixture, state_file=state, fsync=fsync)).mock
    return mock.asgi(), mock.state_file


def in_process_us(variant: Variant, fixture: Path, calls: int, repeats: int) -> tuple[float, Counter]:
    """Best µs per move over `repeats` groups of `calls`, each group on a fresh app (and a fresh state file)."""
    from benchmarks.qa_cost import _moves, _new_loop

    loop, _ = _new_loop()
    statuses: Counter = Counter()
    groups = []
    try:
        for _ in range(repeats):
            with tempfile.TemporaryDirectory(prefix="mockserver-durability-") as scratch:
                state = Path(scratch) / "state.json" if variant.fsync else None
                app, state_file = _app(fixture, state, variant.fsync or "everysec")
                loop.run_until_complete(_moves(app, 200, Counter()))  # warm-up
                groups.append(loop.run_until_complete(_moves(app, calls, statuses)) / calls * 1e6)
                if state_file is not None:
                    state_file.close()
    finally:
        loop.close()
    return min(groups), statuses


def bare_fsync_us(samples: int = 200) -> float:
    """Median µs to append one line and fsync it, in this machine's temporary folder."""
    with tempfile.TemporaryDirectory(prefix="mockserver-fsync-") as scratch:
        fd = os.open(Path(scratch) / "probe.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            timings = []
            for _ in range(samples):
                started = time.perf_counter()
                os.write(fd, b'{"records":[["relay","demo","X",{"ccid":"X"}]],"next_id":10000}\n')
                os.fsync(fd)
                timings.append((time.perf_counter() - started) * 1e6)
        finally:
            os.close(fd)
    return statistics.median(timings)


# ---------------------------------------------------------------- restart and compaction


@dataclass
class Restart:
    customers: int
    changes: int
    snapshot_mb: float
    log_mb: float
    restore_s: float  # snapshot only
    restore_with_log_s: float  # snapshot, then the log

    @property
    def replay_us(self) -> float:
        return (self.restore_with_log_s - self.restore_s) / self.changes * 1e6 if self.changes else 0.0


def restart(fixture: Path, customers: int, changes: int, schemas: dict, move_ccids: list[str]) -> Restart:
    """Write a snapshot of the fixture's state, then `changes` logged moves; time a restore without and with the log."""
    from mockserver.families import built_in_sections
    from mockserver.relay.api import _move
    from mockserver.state.fixtures import Fixtures
    from mockserver.state.persistence import StateFile
    from mockserver.state.store import MemoryStore

    fixtures = Fixtures.load(fixture, schemas, built_in_sections())
    with tempfile.TemporaryDirectory(prefix="mockserver-restart-") as scratch:
        path = Path(scratch) / "state.json"
        state_file, store = _opened(path, fixtures, schemas, StateFile, MemoryStore)
        state_file.checkpoint(fork=False)
        snapshot_mb = path.stat().st_size / 1e6
        restore_s = _timed_restore(path, fixtures, schemas, StateFile)
        for n in range(changes):
            store.run(_move, "demo", move_ccids[n % len(move_ccids)], ("vip", "default")[(n // len(move_ccids)) % 2])
        log_mb = sum(p.stat().st_size for p in Path(scratch).glob("state.json.log.*")) / 1e6
        with_log = _timed_restore(path, fixtures, schemas, StateFile)
        state_file.close()
    return Restart(customers, changes, snapshot_mb, log_mb, restore_s, with_log)


def _opened(path, fixtures, schemas, state_file_class, store_class):
    state_file = state_file_class(path, "no")
    store = store_class(fixtures.build, initial=state_file.restore(fixtures, schemas))
    state_file.attach(store)
    return state_file, store


def _timed_restore(path: Path, fixtures, schemas: dict, state_file_class) -> float:
    started = time.perf_counter()
    state_file_class(path, "no").restore(fixtures, schemas)
    return time.perf_counter() - started


@dataclass
class Stall:
    customers: int
    checkpoint_s: float  # the whole checkpoint: fork, the child's write, the wait for it
    worst_wait_ms: float  # of a store command, during the checkpoint
    worst_wait_baseline_ms: float  # over the same span without a checkpoint


def compaction_stall(fixture: Path, schemas: dict) -> Stall:
    """A thread runs store commands back to back; the worst wait of one, during a checkpoint and without one."""
    from mockserver.families import built_in_sections
    from mockserver.relay.api import _retrieve
    from mockserver.state.fixtures import Fixtures
    from mockserver.state.persistence import StateFile
    from mockserver.state.store import MemoryStore

    fixtures = Fixtures.load(fixture, schemas, built_in_sections())
    customers = sum(len(book.customers) for book in fixtures.build()["relay"].books.values())
    with tempfile.TemporaryDirectory(prefix="mockserver-stall-") as scratch:
        state_file, store = _opened(Path(scratch) / "state.json", fixtures, schemas, StateFile, MemoryStore)
        started = time.perf_counter()
        during = _worst_wait(store, _retrieve, lambda: state_file.checkpoint())
        checkpoint_s = time.perf_counter() - started
        baseline = _worst_wait(store, _retrieve, lambda: time.sleep(checkpoint_s))
        state_file.close()
    return Stall(customers, checkpoint_s, during * 1e3, baseline * 1e3)


def _worst_wait(store, command: Callable, action: Callable[[], object]) -> float:
    """The longest single `store.run` of a reader thread while `action` runs in this one."""
    worst, stop = [0.0], threading.Event()

    def reader() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            store.run(command, "demo", "BAK-11984-007")
            worst[0] = max(worst[0], time.perf_counter() - started)

    thread = threading.Thread(target=reader)
    thread.start()
    time.sleep(0.05)
    worst[0] = 0.0
    try:
        action()
    finally:
        stop.set()
        thread.join()
    return worst[0]

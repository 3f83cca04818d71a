"""Keeping the default session's state across restarts and crashes (`serve --state-file PATH`).

Two kinds of file, as in Redis (snapshot plus append-only file):

* `PATH`, the snapshot (mockserver/state/snapshot_file.py): the fixture
  format wrapped in a marker, naming the first command log it does not
  contain and the next free id.
* `PATH.log.N`, the command logs (mockserver/state/oplog.py): every change
  answered since, one JSON line each, written before the answer leaves.

A restart reads the snapshot and replays the logs after it. Compaction
("checkpoint") starts a new log and writes a fresh snapshot of the state as
it was at that instant, then deletes the logs it covers. On Linux the
snapshot is written by a forked child (mockserver/state/snapshot_writer.py:
the server keeps answering, the child sees a still picture); elsewhere it is
serialized in the store's lock. A missing snapshot means a first start
(fixtures are used); a file that cannot be read, is not JSON, or is not a
mockserver file stops the start with a clear error: it is never ignored.

`--fsync` decides what a machine crash (power loss, kernel panic) can lose;
a killed process loses nothing it answered at any setting, since every
change is written before it is answered:

* `always`: the log is flushed to disk before the answer is sent (concurrent
  answers share one fsync);
* `everysec`: a thread flushes it once a second: about a second at most;
* `no`: the operating system flushes when it likes (Linux: about 30 s).
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mockserver.state import changes, oplog, snapshot_writer
from mockserver.state.fixtures import Fixtures
from mockserver.state.model import State
from mockserver.state.snapshot_file import StateFileError, atomic_write, document, read, remove_leftovers, sync_folder
from mockserver.state.store import MemoryStore

log = logging.getLogger("mockserver")
FSYNC_MODES = ("always", "everysec", "no")
# A log is compacted once it holds changes and has grown to a quarter of the snapshot, checked every
# `--save-interval` s: a small state is compacted at each check, a large one when replaying it would
# cost a noticeable part of loading the snapshot.
COMPACT_RATIO = 4


class StateFile:
    """The default session's snapshot and command log: restore at start, record every change, compact, close.

    Threads: request handlers call `record` (in the store's lock) and `settle`; a flusher thread fsyncs once a
    second at `everysec` and notices a log removed under the server; a keeper thread compacts. If a change
    cannot be logged, or the log cannot be flushed, the state file is "failed": every change is refused (the
    operation's documented 500, nothing changed) until the keeper has written a new log and a full snapshot.
    """

    def __init__(self, path: Path, fsync: str = "everysec"):
        if fsync not in FSYNC_MODES:
            raise ValueError(f"fsync must be one of {', '.join(FSYNC_MODES)}")
        self.path = path
        self.fsync = fsync
        self.restored = False  # the snapshot or a log held state
        self.store: MemoryStore | None = None
        self._log: oplog.CommandLog | None = None  # where changes go; None once closed
        self._retiring: oplog.CommandLog | None = None  # the log before it, during a checkpoint, until flushed
        self._generation = 1  # of the log changes go to
        self._written = 0  # changes appended by this process, over every log
        self._synced = 0  # of which known to be on disk
        self._failed: str | None = None  # why changes are refused until the next successful checkpoint
        self._sync_lock = threading.Lock()  # one fsync at a time; logs are closed only under it
        self._checkpoint_lock = threading.Lock()
        self._compact_soon = False  # replayed logs, a reset, a failure: compact at the next check
        self._snapshot_size = 0
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._written_at_switch = 0  # the last change in the log a checkpoint retired
        self._failed_at_switch: str | None = None  # a failure the checkpoint's snapshot, once written, ends

    # ------------------------------------------------------------ start

    def restore(self, fixtures: Fixtures, schemas: dict[str, dict]) -> State | None:
        """The state the files hold (snapshot, then the logs after it), or None on a first start.

        Removes what a crash can leave: temporary files of an unfinished snapshot, and logs an earlier
        snapshot already covers (the crash came between writing it and deleting them). A snapshot saved under
        another configuration is refused, unless a log after it starts again from these fixtures (a reset, as
        `--reload` of an edited fixture file logs).
        """
        remove_leftovers(self.path)
        saved = read(self.path, schemas, fixtures.sections)
        logs = self._logs()
        first = saved.log_generation if saved else (min(logs) if logs else 1)
        for generation in [g for g in logs if g < first]:
            logs.pop(generation).unlink()
        expected = list(range(first, first + len(logs)))
        if sorted(logs) != expected:
            raise StateFileError(
                f"{self.path}: command logs {sorted(logs)} do not follow on from the snapshot (log {first} first, none missing);"
                " a log was removed or copied from elsewhere: move the files away to start from the fixtures"
            )
        if saved is None and not logs:
            return None  # a first start
        self._snapshot_size = self.path.stat().st_size if saved else 0
        state: State | None = fixtures.build()
        if saved is not None and saved.fixtures.config != fixtures.config:
            state = None  # only a reset in the logs can make it usable
        elif saved is not None:
            state = saved.fixtures.build(fixtures.config)
            if saved.next_id:
                state.sources.ids.restart_at(saved.next_id)
        replayed = 0
        for generation in expected:
            state, count = self._replay(logs[generation], generation, state, fixtures.build)
            replayed += count
        if state is None:
            raise StateFileError(
                f"{self.path}: saved under another configuration (API keys, product groups or actors) than {fixtures.source};"
                " start with the fixtures it was saved with, or move it away"
            )
        self._generation = expected[-1] + 1 if expected else first
        self.restored = saved is not None or replayed > 0
        self._compact_soon = bool(logs)
        return state if self.restored else None

    def attach(self, store: MemoryStore) -> None:
        """From now on every change `store` makes is logged here before it is answered.

        On a first start the first snapshot is written now, so what the start made (fixtures, `--scenario`)
        is on disk before any change is logged after it.
        """
        self.store = store
        path = self._log_path(self._generation)
        try:
            self._log = oplog.CommandLog(path, self._generation)
            sync_folder(self.path)
        except OSError as exc:
            raise StateFileError(f"{path}: cannot create the command log: {exc.strerror or exc}") from exc
        with contextlib.suppress(ValueError):  # not the main thread (a test's app): leave it as it is
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # an inherited "ignore" would make waitpid fail
        store.recorder = self
        if not self.restored and not self.checkpoint(fork=False):
            raise StateFileError(f"{self.path}: cannot write the first snapshot: {self._failed}")

    def _replay(self, path: Path, generation: int, state: State | None, fresh: Any) -> tuple[State | None, int]:
        count = 0
        try:
            for count, entry in enumerate(oplog.entries(path, generation), 1):  # noqa: B007 - the count is reported
                if state is None and entry != changes.RESET:
                    continue  # changes to a snapshot of another configuration: moot once a reset follows, else refused
                state = changes.apply(state, entry, fresh)  # type: ignore[arg-type]
        except changes.ChangeInvalid as exc:
            raise StateFileError(f"{path}: change {count}: {exc}; the log does not fit these fixtures") from exc
        except oplog.LogCorrupt as exc:
            raise StateFileError(str(exc)) from exc
        except OSError as exc:
            raise StateFileError(f"{path}: cannot read the command log: {exc}") from exc
        log.info("replayed %d changes from %s", count, path)
        return state, count

    # ------------------------------------------------------------ recording (the store calls these)

    def record(self, change: dict[str, Any]) -> int:
        """Append one change; called in the store's lock, right after the command made it. Returns its number.

        Raises OSError (the store then undoes the change) when the log is closed, failed, or the write fails.
        """
        current = self._log
        if current is None:
            raise OSError(f"the state file {self.path} is closed: changes are not taken")
        if self._failed:
            raise OSError(f"the state file {self.path} cannot be written ({self._failed}): changes are refused until it can")
        try:
            current.append(change)
        except OSError as exc:
            self._fail(f"appending to {current.path} failed: {exc}")
            raise
        self._written += 1
        if change == changes.RESET:
            self._compact_soon = True  # every earlier change is moot now
        return self._written

    def settle(self, number: int) -> None:
        """Called once the store's lock is released (by a request's exchange, off the event loop, where there is
        one): at `always`, change `number` is on disk when this returns."""
        if self.fsync == "always":
            self.sync_through(number)

    def sync_through(self, number: int) -> None:
        """Make every change up to `number` durable; one fsync covers all changes written before it (group commit).

        Raises OSError if it cannot: a failed fsync is never followed by a claim of success (Linux forgets a
        write-back error once reported, so a later fsync that succeeds proves nothing).
        """
        if self._synced >= number and not self._failed:
            return
        with self._sync_lock:
            if self._failed:
                raise OSError(f"the state file {self.path} cannot be written ({self._failed})")
            if self._synced >= number:
                return
            written = self._written  # read first: every change it counts is in one of the logs read next
            try:
                for current in (self._retiring, self._log):
                    if current is not None:
                        current.sync()
            except OSError as exc:
                self._fail(f"flushing the command log failed: {exc}")
                raise
            self._synced = max(self._synced, written)

    def _fail(self, why: str) -> None:
        if not self._failed:
            log.error("the state file %s cannot be written (%s): changes are refused until it can", self.path, why)
        self._failed = why
        self._compact_soon = True

    # ------------------------------------------------------------ compaction

    def checkpoint(self, fork: bool = True) -> bool:
        """Start a new log and write a snapshot of the state as it is now; then drop the logs it covers.

        True when the snapshot was written (which also ends a failure: the snapshot holds every change made).
        `fork=False` serializes in the store's lock (the start, shutdown, or where there is no fork).
        """
        assert self.store is not None
        with self._checkpoint_lock:
            if self._log is None:
                return False
            try:
                # Before the store's lock, so requests do not wait for them: the next log made and its name durable.
                fresh = oplog.CommandLog(self._log_path(self._generation + 1), self._generation + 1)
            except OSError as exc:  # the current log goes on (the flusher notices if it was removed too)
                log.error("could not save the state file %s: cannot create the next command log: %s", self.path, exc)
                self._compact_soon = True
                return False
            try:
                sync_folder(self.path)
                outcome = self.store.run(self._switch_and_capture, fresh, fork and sys.platform == "linux")
            except BaseException:
                os.close(fresh.fd)
                raise
            self._retire()
            if isinstance(outcome, int):
                written = snapshot_writer.child_succeeded(outcome)
            else:
                written = self._write(outcome)
            if not written:
                self._compact_soon = True  # try again at the next check
                return False
            self._snapshot_size = self.path.stat().st_size
            for old, path in self._logs().items():
                if old < fresh.generation:
                    path.unlink(missing_ok=True)
            if self._failed is self._failed_at_switch:  # no new failure since the instant the snapshot is of
                self._failed = None
            return True

    def _switch_and_capture(self, state: State, fresh: oplog.CommandLog, forking: bool) -> int | bytes:
        """In the store's lock, only what must be of one instant: changes go to `fresh` from now on, and the
        snapshot is of this instant (a forked child's still picture, else serialized here). No disk I/O."""
        self._retiring, self._log = self._log, fresh
        self._generation = fresh.generation
        self._compact_soon = False
        self._written_at_switch = self._written
        self._failed_at_switch = self._failed
        if forking and (pid := snapshot_writer.fork(self.path, state, fresh.generation)) is not None:
            return pid
        return document(state, fresh.generation)

    def _retire(self) -> None:
        """Flush and close the log before the switch (out of the store's lock)."""
        with self._sync_lock:
            old, self._retiring = self._retiring, None
            if old is None:
                return
            try:
                old.close()
            except OSError as exc:
                self._fail(f"flushing {old.path} failed: {exc}")
                return
            if not self._failed:
                self._synced = max(self._synced, self._written_at_switch)

    def _write(self, content: bytes) -> bool:
        try:
            atomic_write(self.path, content)
        except OSError as exc:
            log.error("could not save the state file %s: %s", self.path, exc)
            return False
        return True

    def compaction_due(self) -> bool:
        current = self._log
        if current is None:
            return False
        if self._compact_soon or self._failed:
            return True
        return current.changes > 0 and current.size >= self._snapshot_size // COMPACT_RATIO

    # ------------------------------------------------------------ running

    def start(self, interval: float) -> None:
        """The flusher (every second: fsync at `everysec`, and a check that the log is still on disk) and the
        keeper (compacts when due, checked every `interval` s, and at once after a failure)."""
        self._threads = [
            threading.Thread(target=self._flusher, name="mockserver-flusher", daemon=True),
            threading.Thread(target=self._keeper, args=(interval,), name="mockserver-compactor", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _flusher(self) -> None:
        while not self._stop.wait(1.0):
            if self._failed:
                continue  # the keeper is on it
            with _logged_errors(self.path):
                current = self._log
                if self.fsync == "everysec" and self._written > self._synced:
                    self.sync_through(self._written)
                elif current is not None:
                    try:
                        current.check_linked()
                    except OSError as exc:
                        self._fail(str(exc))

    def _keeper(self, interval: float) -> None:
        checked = time.monotonic() - interval  # the first check comes at the first tick
        while not self._stop.wait(min(1.0, interval)):
            with _logged_errors(self.path):
                if self._failed or time.monotonic() - checked >= interval:
                    checked = time.monotonic()
                    if self.compaction_due():
                        self.checkpoint()

    def close(self) -> bool:
        """At a clean shutdown: stop the threads, compact if anything is in the log (the next start reads one
        file), then close it; changes after this are refused. True if the state is all on disk."""
        self._stop.set()
        for thread in self._threads:
            thread.join()
        if self._log is None or self.store is None:
            return False
        saved = self.checkpoint(fork=False) if self.compaction_due() or self._log.changes else not self._failed
        last = self.store.run(self._detach)
        with self._sync_lock:
            try:
                last.close()
            except OSError as exc:
                log.error("could not flush the command log %s: %s", last.path, exc)
                return False
        return saved

    def _detach(self, state: State) -> oplog.CommandLog:
        current, self._log = self._log, None
        assert current is not None
        return current

    def _log_path(self, generation: int) -> Path:
        return self.path.with_name(f"{self.path.name}.log.{generation}")

    def _logs(self) -> dict[int, Path]:
        """The command logs next to the snapshot, by generation."""
        found = {}
        for path in self.path.parent.glob(f"{glob.escape(self.path.name)}.log.*"):
            suffix = path.name.rsplit(".", 1)[1]
            if suffix.isdigit():
                found[int(suffix)] = path
        return dict(sorted(found.items()))


@contextlib.contextmanager
def _logged_errors(path: Path) -> Iterator[None]:
    """A background thread logs what went wrong and goes on: it must never die silently."""
    try:
        yield
    except OSError as exc:
        log.error("could not save the state file %s: %s", path, exc)
    except Exception:
        log.exception("unexpected error while keeping the state file %s", path)

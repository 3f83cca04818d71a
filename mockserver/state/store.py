"""The state of both APIs, in memory, behind one lock per command.

Handlers never touch state directly: they hand a domain command to
`Store.run`, which runs it whole under the lock. A command checks everything
before it changes anything, so under concurrent requests every change is
atomic and a refused request leaves no trace. `reset` rebuilds the state from
the fixtures from scratch, so no field can be forgotten.

With a state file, a `recorder` (mockserver/state/persistence.py) logs each
change of a `Write` command inside the lock, right after it was made, and
`settle` makes it as durable as `--fsync` asks once the lock is released.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from mockserver.state.background import dispose
from mockserver.state.changes import RESET, Write, apply, capture
from mockserver.state.model import State

T = TypeVar("T")


class Store(Protocol):
    """What the HTTP layer needs of a store: MemoryStore here, RedisStore (mockserver/state/redis_store.py)."""

    def run(self, command: Callable[..., T], *args: Any) -> T: ...

    def reset(self) -> None: ...

    def rebuild(self, build: Callable[[], State]) -> None: ...

    def ping(self) -> None: ...


class Recorder(Protocol):
    """Where changes go to be durable (the state file's command log)."""

    def record(self, change: dict[str, Any]) -> int: ...

    def settle(self, number: int) -> None: ...


class MemoryStore:
    def __init__(self, build: Callable[[], State], initial: State | None = None):
        """`build` makes the fixture state (used by reset); `initial`, if given, is served first."""
        self._build = build
        self._lock = threading.Lock()
        self.state = initial or build()
        self.recorder: Recorder | None = None

    def run(self, command: Callable[..., T], *args: Any) -> T:
        """Run `command(state, *args)` alone: no other command sees it half done.

        A `Write` that returned (it raises before changing anything when it refuses) is logged before the
        lock is released, so the log holds changes in the order they were made; one that cannot be logged
        is undone, from copies of the records it names, and its error raised.
        """
        recorder = self.recorder
        with self._lock:
            if recorder is None or not isinstance(command, Write):
                return command(self.state, *args)
            keys = command.keys(self.state, *args)
            before = capture(self.state, keys, copies=True)
            result = command(self.state, *args)
            try:
                number = recorder.record(capture(self.state, keys))
            except BaseException:
                apply(self.state, before, self._build)  # not logged, so not made: the error answer changes nothing
                raise
        recorder.settle(number)
        return result

    def reset(self) -> None:
        """Serve a fresh fixture state from now on, swapped in whole under the lock.

        With a large fixture file, `build` hands over a state made in advance in the background (see
        Fixtures.build), so this is a swap; the old state is freed in the background, a batch of records
        at a time, rather than in one decref cascade here (both would stall every request).
        """
        fresh = self._build()
        recorder, number = self.recorder, 0
        with self._lock:
            if recorder is not None:
                number = recorder.record(RESET)  # raises before the swap if it cannot be logged
            old, self.state = self.state, fresh
        dispose(old)
        if recorder is not None and number:
            recorder.settle(number)

    def ping(self) -> None:
        """Always reachable: it is this process's memory."""

    def rebuild(self, build: Callable[[], State]) -> None:
        """From now on `build` makes the fixture state (`serve --reload`); start again from it."""
        self._build = build
        self.reset()

"""The state of both APIs, in memory, behind one lock per command.

Handlers never touch state directly: they hand a domain command to
`Store.run`, which runs it whole under the lock. A command checks everything
before it changes anything, so under concurrent requests every change is
atomic and a refused request leaves no trace. `reset` rebuilds the state from
the fixtures from scratch, so no field can be forgotten.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from mockserver.state.model import State

T = TypeVar("T")

class Store(Protocol):
    """What the HTTP layer needs of a store; a shared backend could implement it later."""

    def run(self, command: Callable[..., T], *args: Any) -> T: ...

    def reset(self) -> None: ...


class MemoryStore:
    def __init__(self, build: Callable[[], State], initial: State | None = None):
        """`build` makes the fixture state (used by reset); `initial`, if given, is served first."""
        self._build = build
        self._lock = threading.Lock()
        self.state = initial or build()

    def run(self, command: Callable[..., T], *args: Any) -> T:
        """Run `command(state, *args)` alone: no other command sees it half done."""
        with self._lock:
            return command(self.state, *args)

    def reset(self) -> None:
        fresh = self._build()
        with self._lock:
            self.state = fresh

    def rebuild(self, build: Callable[[], State]) -> None:
        """From now on `build` makes the fixture state (`serve --reload`); start again from it."""
        self._build = build
        self.reset()

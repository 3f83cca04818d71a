"""Work moved off the request path: one daemon thread, jobs in order, each done in small steps.

Requests run on one thread (the event loop), so anything long that runs
there, or that holds the GIL in one long C call anywhere, stalls every
request. Building a large fresh state and freeing an old one are both long
(about 0.3 s and 0.05 s at 200k customers), so they run here instead, in
steps of a few thousand records: between two steps the interpreter can hand
the GIL to the loop, so no request waits on more than one step.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from mockserver.state.model import State

log = logging.getLogger("mockserver")
T = TypeVar("T")
BATCH = 2000  # records freed a step: about a millisecond of work
# How long a background job steps aside between two steps. A voluntary release of the GIL alone rarely hands
# it over (the releasing thread takes it straight back); a short sleep does, so a request waits one step at
# most instead of the interpreter's 5 ms switch interval, several times over.
STEP_ASIDE_S = 0.0002


class _Worker:
    """The one background thread, started on first use (importing this module starts nothing)."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], Any]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start = threading.Lock()

    def submit(self, job: Callable[[], Any]) -> None:
        with self._start:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="mockserver-background", daemon=True)
                self._thread.start()
        self._jobs.put(job)

    def is_current(self) -> bool:
        return threading.current_thread() is self._thread

    def _loop(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                with collector_paused():
                    job()
            except Exception:  # noqa: BLE001 - a failed job must not end the thread the next ones need
                log.exception("a background job failed")


_WORKER = _Worker()


def later(job: Callable[[], Any]) -> None:
    """Run `job` on the background thread, after the jobs already given."""
    _WORKER.submit(job)


def pause() -> None:
    """Between two steps of a background job: let the request thread have the GIL now, not at the next switch interval."""
    if _WORKER.is_current():
        time.sleep(STEP_ASIDE_S)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while millions of objects are made or freed (none of them cyclic garbage).

    A collection walks every young object, and a full one every object: with a large state being built,
    each walks its growing mapping of records (10 to 30 ms at 200k customers, holding the GIL), hundreds of
    times over a build; PyYAML parses a large file about four times faster without them. Collections go on
    as before once the work is done (a caller that had them off keeps them off).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def dispose(state: State) -> None:
    """Free a state that nothing serves any more, a batch of records at a time, in the background.

    Dropping the last reference to 200k records frees them all in one decref cascade that holds the GIL
    throughout; popping them in batches spreads the same work. The state is emptied: a caller that kept a
    reference to it (rather than asking the store again) sees empty books. A small state is simply dropped.
    """
    mappings = [mapping for name, section in state.sections.items() for mapping in section.mappings(state[name]).values()]
    if sum(map(len, mappings)) > BATCH:
        later(lambda: _empty(mappings))


def _empty(mappings: list) -> None:
    for mapping in mappings:
        _drain(mapping)


def _drain(mapping: dict) -> None:
    while mapping:
        for _ in range(min(BATCH, len(mapping))):
            mapping.popitem()
        pause()


class Spare(Generic[T]):
    """One value kept made in advance: `take` hands it over at once and has the next one made in the background.

    For a fresh state of a large fixture file: a reset then only swaps, and the cost of building moves to
    the background thread, in steps. When none is ready yet, `take` waits for the one being made (never
    slower than making it there and then). Made in the background and taken once, a spare is never shared.
    """

    def __init__(self, make: Callable[[], T]):
        self._make = make
        self._ready: T | None = None
        self._failure: Exception | None = None
        self._making = False
        self._changed = threading.Condition()

    def take(self) -> T:
        if _WORKER.is_current():  # a background job may not wait for the thread it runs on
            return self._make()
        with self._changed:
            self._make_one_unless_under_way()
            while self._ready is None and self._failure is None:
                self._changed.wait()
            if self._failure is not None:
                failure, self._failure = self._failure, None
                raise failure
            taken, self._ready = self._ready, None
            assert taken is not None  # the wait ends on a state made or on a failure, raised above
            self._make_one_unless_under_way()
            return taken

    def _make_one_unless_under_way(self) -> None:
        if self._ready is None and not self._making:
            self._making = True
            later(self._make_one)

    def _make_one(self) -> None:
        made, failure = None, None
        try:
            made = self._make()
        except Exception as exc:  # noqa: BLE001 - handed to the caller of take(), who raises it
            failure = exc
        with self._changed:
            self._making = False
            self._ready, self._failure = made, failure
            self._changed.notify_all()

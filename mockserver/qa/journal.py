"""The request journal of one session: every request, newest kept, oldest dropped (WireMock's lesson).

Entries are appended by whichever thread served the request (the event
loop's under granian, waitress's request threads otherwise), under a lock
held for the append only. Long polls wait for a change without holding it:
on the loop through futures woken only by entries they match, on threads
through a condition.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

BODY_LIMIT = 8 * 1024  # bytes of a request body kept in its entry (see http/exchange.py for the rest of an entry's bounds)


@dataclass(slots=True)
class Entry:
    """One request as the mock saw it, in the admin spec's `Entry` shape (see `as_json`).

    Built on every request, so it holds what it was given as is (the body as bytes, the violations as
    the answer's tuple) and turns it into JSON only when read.
    """

    id: int
    time: float  # when it was received, seconds since the epoch (turned into a date-time when read)
    method: str
    path: str
    query: str
    operation_id: str | None
    status: int | None
    duration_ms: float
    session: str
    admin: bool
    fault: str | None
    violations: tuple[str, ...]
    headers: dict[str, str]  # credentials already masked
    body: bytes  # cut at BODY_LIMIT

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "time": datetime.fromtimestamp(self.time, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "operationId": self.operation_id,
            "status": self.status,
            "duration_ms": round(self.duration_ms, 3),
            "session": self.session,
            "admin": self.admin,
            "fault": self.fault,
            "violations": list(self.violations),
            "request": {"headers": dict(self.headers), "body": self.body.decode("utf-8", "replace")},
        }


@dataclass(frozen=True)
class RequestFilter:
    """What `/__admin/requests`, `count` and `wait` select; every field given must hold."""

    operation_id: str | None = None
    method: str | None = None
    path: Any = None  # a compiled RE2 pattern (qa/patterns.py)
    status: int | None = None
    since: float | None = None  # seconds since the epoch
    invalid: bool | None = None

    def accepts(self, entry: Entry) -> bool:
        return (
            (self.operation_id is None or entry.operation_id == self.operation_id)
            and (self.method is None or entry.method == self.method)
            and (self.path is None or self.path.search(entry.path) is not None)
            and (self.status is None or entry.status == self.status)
            and (self.since is None or entry.time >= self.since)
            and (self.invalid is None or bool(entry.violations) == self.invalid)
        )


@dataclass
class Journal:
    size: int
    _entries: deque[Entry] = field(init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _changed: threading.Condition = field(init=False)
    _waiters: dict[asyncio.Future, tuple[asyncio.AbstractEventLoop, RequestFilter]] = field(default_factory=dict, init=False)
    _next_id: int = field(default=1, init=False)
    _blocked: int = field(default=0, init=False)  # threads in changed_blocking

    def __post_init__(self) -> None:
        self._entries = deque(maxlen=max(self.size, 1))
        self._changed = threading.Condition(self._lock)

    def record(self, entry: Entry) -> Entry:
        """Append `entry` (given its id here), and wake the waits it matches (threads: every wait)."""
        with self._lock:
            entry.id = self._next_id
            self._next_id += 1
            self._entries.append(entry)
            if self._blocked:  # waitress long polls waiting; none under granian
                self._changed.notify_all()
        if self._waiters:
            wake(self._waiters, self._lock, lambda waiter: waiter[1].accepts(entry))
        return entry

    def find(self, wanted: RequestFilter) -> list[Entry]:
        """Matching entries, newest first."""
        return self.find_marked(wanted)[0]

    def find_marked(self, wanted: RequestFilter) -> tuple[list[Entry], int]:
        """Matching entries, newest first, and the id of the last entry they were chosen from."""
        with self._lock:
            entries, last = list(self._entries), self._next_id - 1
        return [entry for entry in reversed(entries) if wanted.accepts(entry)], last

    def find_after(self, last_seen: int, wanted: RequestFilter) -> list[Entry]:
        """Matching entries newer than id `last_seen`, newest first (what a long poll has not seen yet)."""
        fresh: list[Entry] = []
        with self._lock:
            for entry in reversed(self._entries):
                if entry.id <= last_seen:
                    break
                fresh.append(entry)
        return [entry for entry in fresh if wanted.accepts(entry)]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def newest_id(self) -> int:
        """The id of the newest entry (0 when none yet): a wait started after reading it misses nothing newer."""
        return self._next_id - 1

    def subscribe(self, wanted: RequestFilter, after_id: int) -> asyncio.Future:
        """A future (on the running loop) done at the next entry `wanted` accepts, or at once when an entry
        newer than `after_id` arrived meanwhile. Entries it does not accept wake nobody: a long poll on a busy
        session costs each request one filter check."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self._lock:
            if self._next_id - 1 > after_id:
                future.set_result(None)
            else:
                self._waiters[future] = (loop, wanted)
        return future

    def unsubscribe(self, future: asyncio.Future) -> None:
        with self._lock:
            self._waiters.pop(future, None)

    def changed_blocking(self, after_id: int, timeout: float) -> None:
        """For a server that waits in threads (waitress): return once an entry newer than `after_id` exists,
        or after `timeout` seconds. The check and the wait are under one lock, so no entry slips between."""
        with self._changed:
            self._blocked += 1
            try:
                self._changed.wait_for(lambda: self._next_id - 1 > after_id, timeout)
            finally:
                self._blocked -= 1


def wake(waiters: dict[asyncio.Future, tuple], lock: threading.Lock, chosen: Callable[[tuple], bool]) -> None:
    """Wake, and forget, the waits (`future: (loop, ...)`) that `chosen` picks; each on its own loop."""
    with lock:
        woken = [(future, waiter[0]) for future, waiter in waiters.items() if chosen(waiter)]
        for future, _ in woken:
            del waiters[future]
    for future, loop in woken:
        loop.call_soon_threadsafe(_wake, future)


def _wake(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)

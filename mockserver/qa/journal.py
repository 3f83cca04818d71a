"""The request journal of one session: every request, newest kept, oldest dropped (WireMock's lesson).

`Journal` is the journal's logic, written once: recording, filtering, and
the waits of long polls (on the loop through futures woken only by entries
they match; on threads through a condition). What keeps the entries is an
`EntryStorage`: this process's memory (`LocalEntries`), or a Redis stream
every process shares (mockserver/qa/shared_journal.py), whose entries from
other processes a poller notices within POLL_S. Entries are appended by
whichever thread served the request, under a lock held for the append only.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from mockserver.errors import StoreUnavailable

BODY_LIMIT = 8 * 1024  # bytes of a request body kept in its entry (credentials.py bounds its headers, http/exchange.py its path and query)
POLL_S = 0.05  # how soon a wait notices an entry another process recorded (a shared storage)


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


class EntryStorage(Protocol):
    """Where a session's entries are kept: appended with their ids, read newest first."""

    size: int
    shared: bool  # other processes append too: waits poll for their entries

    def append(self, entry: Entry) -> int:
        """Keep `entry`; its id, or 0 when it is not kept (its session ended while its request ran, or the storage
        is unreachable: the journal is an observer, the request is answered all the same)."""
        ...

    def newest_first(self, after: int = 0) -> tuple[list[Entry], int]:
        """The entries newer than id `after`, newest first, and the newest id when they were read (read together:
        an entry appended meanwhile is after the mark, not lost between)."""
        ...

    def newest_id(self) -> int:
        """The id of the newest entry (0 when none yet): a wait started after reading it misses nothing newer."""
        ...

    def clear(self) -> None: ...


class Journal:
    def __init__(self, storage: EntryStorage):
        self.storage = storage
        self.size = storage.size
        self._lock = threading.Lock()  # the waits' (the storage keeps its own for its entries)
        self._changed = threading.Condition(self._lock)
        self._blocked = 0  # threads in changed_blocking
        self._waiters: dict[asyncio.Future, tuple[asyncio.AbstractEventLoop, RequestFilter, int]] = {}
        self._poller: threading.Thread | None = None

    def record(self, entry: Entry) -> Entry:
        """Append `entry` (given its id by the storage), and wake the waits it matches (threads: every wait)."""
        entry.id = self.storage.append(entry)
        if not entry.id:
            return entry
        if self._blocked:  # waitress long polls waiting; none under granian
            with self._changed:
                self._changed.notify_all()
        if self._waiters:
            wake(self._waiters, self._lock, lambda waiter: waiter[1].accepts(entry))
        return entry

    def find(self, wanted: RequestFilter) -> list[Entry]:
        """Matching entries, newest first."""
        return self.find_marked(wanted)[0]

    def find_marked(self, wanted: RequestFilter) -> tuple[list[Entry], int]:
        """Matching entries, newest first, and the id of the last entry they were chosen from."""
        entries, newest = self.storage.newest_first()
        return [entry for entry in entries if wanted.accepts(entry)], newest

    def find_after(self, last_seen: int, wanted: RequestFilter) -> list[Entry]:
        """Matching entries newer than id `last_seen`, newest first (what a long poll has not seen yet)."""
        return [entry for entry in self.storage.newest_first(last_seen)[0] if wanted.accepts(entry)]

    def clear(self) -> None:
        self.storage.clear()

    def newest_id(self) -> int:
        return self.storage.newest_id()

    def subscribe(self, wanted: RequestFilter, after_id: int) -> asyncio.Future:
        """A future (on the running loop) done at the next entry `wanted` accepts, or at once when an entry
        newer than `after_id` arrived meanwhile. Entries it does not accept wake nobody: a long poll on a busy
        session costs each request one filter check. Entries of other processes wake it within POLL_S."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self._lock:
            self._waiters[future] = (loop, wanted, after_id)
            if self.storage.shared and self._poller is None:
                self._poller = threading.Thread(target=self._poll, name="mockserver-journal-poll", daemon=True)
                self._poller.start()
        if not self.storage.shared and self.storage.newest_id() > after_id:  # registered first: nothing slips between
            self.unsubscribe(future)
            future.set_result(None)
        return future

    def unsubscribe(self, future: asyncio.Future) -> None:
        with self._lock:
            self._waiters.pop(future, None)

    def changed_blocking(self, after_id: int, timeout: float) -> None:
        """For a server that waits in threads (waitress): return once an entry newer than `after_id` exists, or
        after `timeout` seconds. The check and the wait are under one lock, so no entry of this process slips
        between; a shared storage's are looked for every POLL_S."""
        deadline = time.monotonic() + timeout
        if self.storage.shared:  # its newest id is a round trip: asked outside the lock every request's entry needs
            while self.storage.newest_id() <= after_id and (left := deadline - time.monotonic()) > 0:
                with self._changed:
                    self._blocked += 1
                    try:
                        self._changed.wait(min(left, POLL_S))
                    finally:
                        self._blocked -= 1
            return
        with self._changed:
            self._blocked += 1
            try:
                while self.storage.newest_id() <= after_id and (left := deadline - time.monotonic()) > 0:
                    self._changed.wait(left)
            finally:
                self._blocked -= 1

    def _poll(self) -> None:
        """While waits are pending: wake those an entry newer than they have seen exists for (they re-check)."""
        while True:
            with self._lock:
                if not self._waiters:
                    self._poller = None
                    return
            try:
                newest: int | None = self.storage.newest_id()
            except StoreUnavailable:
                newest = None  # every wait wakes, and finds the storage gone: the documented 503 at once
            wake(self._waiters, self._lock, functools.partial(_behind, newest))
            time.sleep(POLL_S)


class LocalEntries:
    """A session's entries in this process's memory, the newest `size` of them."""

    shared = False

    def __init__(self, size: int):
        self.size = size
        self._entries: deque[Entry] = deque(maxlen=max(size, 1))
        self._lock = threading.Lock()
        self._next_id = 1

    def append(self, entry: Entry) -> int:
        with self._lock:
            entry.id = self._next_id
            self._next_id += 1
            self._entries.append(entry)
            return entry.id

    def newest_first(self, after: int = 0) -> tuple[list[Entry], int]:
        fresh: list[Entry] = []
        with self._lock:
            newest = self._next_id - 1
            for entry in reversed(self._entries):
                if entry.id <= after:
                    break
                fresh.append(entry)
        return fresh, newest

    def newest_id(self) -> int:
        return self._next_id - 1

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def _behind(newest: int | None, waiter: tuple) -> bool:
    """Whether a wait has not seen entry `newest` (None: the storage did not answer, every wait wakes to find that)."""
    return newest is None or newest > waiter[2]


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

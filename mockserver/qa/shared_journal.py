"""A session's journal entries in Redis (`serve --store redis://`): every process records into them and reads them.

An `EntryStorage` (mockserver/qa/journal.py, where the journal's logic is).
Entries go into one Redis stream per session, capped at `--journal-size`;
each gets its id from one counter, in the same round trip (a short script:
INCR then XADD, so ids and stream order agree; a test session's entry also
marks the session used, and is dropped if the session ended while its
request ran). A long poll is woken at once by a matching entry recorded in
its own process, and within POLL_S by one recorded in another.

A request whose entry cannot be recorded (Redis unreachable) is still
answered, and logged: the journal is an observer. A query that cannot read
it is the admin API's documented 503.
"""

from __future__ import annotations

import logging
from typing import Any

import redis

from mockserver.qa.journal import Entry
from mockserver.qa.sessions import DEFAULT
from mockserver.state import codec
from mockserver.state.redis_client import UNAVAILABLE_TO_READ, LuaScript, unavailable_as

log = logging.getLogger("mockserver")


class RedisEntries:
    shared = True

    def __init__(self, client: redis.Redis, prefix: str, size: int, live_sessions: str, session_id: str, life: bytes | None, idle_ms: int):
        """`live_sessions`: the registry's key; `session_id` and `life`: whose journal, in which of its lives (the
        default session never ends); `idle_ms`: --session-idle."""
        self.size = size
        self._client = client
        self._stream, self._counter = prefix + "journal", prefix + "journal:id"
        self._life_key = prefix + "life"
        test_session = session_id != DEFAULT
        self._owner = life if test_session else b""  # '' for the default session, which never ends
        self._whose = {"session_id": session_id if test_session else "", "idle_ms": idle_ms if test_session else 0}
        keys = ("stream", "counter", "live", "life")
        record = LuaScript(client, "journal_record", keys, ("fields", "size", "session_id", "owner", "idle_ms"))
        self._record = record.bound(stream=self._stream, counter=self._counter, live=live_sessions, life=self._life_key)
        self._clear = LuaScript(client, "journal_clear", ("life", "stream"), ("owner",))

    def append(self, entry: Entry) -> int:
        """With Redis gone, the entry is lost (logged)."""
        if self.size <= 0:
            return 0
        try:
            return int(self._record.fast(fields=codec.text(_fields(entry)), size=self.size, owner=self._owner, **self._whose))
        except redis.RedisError as exc:
            log.warning("request not journaled, the shared store (Redis) is unavailable: %s %s: %s", entry.method, entry.path, exc)
            return 0

    def newest_first(self, after: int = 0) -> tuple[list[Entry], int]:
        """Only the entries newer than `after` are read, in one transaction with the counter."""
        with unavailable_as(UNAVAILABLE_TO_READ), self._client.pipeline(transaction=True) as pipe:
            pipe.get(self._counter)
            pipe.xrevrange(self._stream, min=f"{after + 1}-0" if after else "-", count=self.size)
            newest, raw = pipe.execute()
        return _entries(raw), int(newest or 0)

    def newest_id(self) -> int:
        with unavailable_as(UNAVAILABLE_TO_READ):
            return int(self._client.get(self._counter) or 0)

    def clear(self) -> None:
        """The entries go (not the ids); not those of the session's next life, if this one ended meanwhile."""
        with unavailable_as(UNAVAILABLE_TO_READ):
            self._clear(life=self._life_key, stream=self._stream, owner=self._owner)


def _entries(raw: list) -> list[Entry]:
    """Stream entries (`<id>-0`, {e: fields}) as journal entries."""
    return [_entry(int(stream_id.split(b"-")[0]), codec.loads(fields[b"e"])) for stream_id, fields in raw]


def _fields(entry: Entry) -> list[Any]:
    return [
        entry.time, entry.method, entry.path, entry.query, entry.operation_id, entry.status, entry.duration_ms, entry.session,
        entry.admin, entry.fault, list(entry.violations), entry.headers, entry.body.decode("latin-1"),
    ]  # fmt: skip


def _entry(entry_id: int, fields: list[Any]) -> Entry:
    (moment, method, path, query, operation_id, status, duration_ms, session, admin, fault, violations, headers, body) = fields
    return Entry(
        entry_id, moment, method, path, query, operation_id, status, duration_ms, session, admin, fault, tuple(violations), headers,
        body.encode("latin-1"),
    )  # fmt: skip

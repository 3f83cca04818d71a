"""The sessions' registry on a shared store (`serve --store redis://`): one in Redis for every process.

A `Registry` (mockserver/qa/sessions.py, where the sessions' logic is): what
`LocalRegistry` keeps in one process's memory is kept in Redis here, so that
every process sharing the store sees the same sessions: which are live (a
sorted set, each test session scored by when it was last used, on Redis's
clock), when each was created and how many requests it had, the cap
(`--max-sessions`, counted over every process), and the end of a session:
deleted, or idle longer than `--session-idle`. A session that ends loses its
state, its fault rules and its journal, in one script, so no process can
apply a rule of a session that is over. A session created again is a new
life (a number that never repeats): each process's handles (store, rules,
journal) belong to one life, so what a request still in flight at the end
does (a change, a rule, a journal entry) goes nowhere, as in memory, where it
acts on the state that went with its session.

Each request costs one script (`visit`), which also reads the session's rules
version: it takes the place of that read, so sessions add no round trip. A
session not live yet is created by `enter`, once the request passed routing
and authentication (as in memory). Sessions nobody uses again are ended by a
sweep that one process at a time runs in the background about once a second.

A request in flight keeps its session alive, as in memory: before it waits
(a delay, a long poll) it holds its session live for that long (`hold`: the
session's score moved ahead, never back), and its journal entry marks the
session used when it ends. Requests that do not wait cost nothing more.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

import redis

from mockserver.qa import sessions
from mockserver.qa.sessions import DEFAULT
from mockserver.state.redis_client import UNAVAILABLE_TO_READ, Bound, LuaScript, unavailable_as
from mockserver.state.redis_store import generations_key, unlink_generation

SWEPT_AT_ONCE = 100

# The session scripts' keys, named (state/lua/sessions_common.lua says what each is).
_KEYS: tuple[str, ...] = ("live_key", "generation_key", "rules_key", "spent_key", "next_rule_key", "version_key")
_KEYS += ("journal_key", "journal_ids_key", "meta_key", "counter_key", "life_key")
_ARGS = ("session_id", "idle_ms", "prefix")


class SessionRegistry:
    """The sessions of a namespace, in Redis (a `Registry`: mockserver/qa/sessions.py): every method is one atomic
    script or read, and raises StoreUnavailable when Redis cannot answer."""

    shared = True

    def __init__(self, client: redis.Redis, namespace: str, idle_s: float, max_sessions: int):
        self._client = client
        self._namespace = namespace
        self.live_key = f"{namespace}:sessions"
        self.versions_key = f"{namespace}:versions"  # the counter every session's rules' versions come from
        self._generations_key = generations_key(namespace)
        self.idle_ms = max(1, round(idle_s * 1000))
        self.max_sessions = max_sessions
        self._keys = functools.lru_cache(maxsize=4096)(self._keys_of)  # a request's visit builds none
        self._visit_of = functools.lru_cache(maxsize=4096)(self._bound_visit)
        common = ("sessions_common",)
        self._visit = LuaScript(client, "sessions_visit", _KEYS, (*_ARGS, "is_default"), common)
        self._enter = LuaScript(client, "sessions_enter", _KEYS, (*_ARGS, "cap"), common)
        self._end = LuaScript(client, "sessions_end", _KEYS, (*_ARGS, "lapsed_only"), common)
        self._hold = LuaScript(client, "sessions_hold", ("live_key",), ("session_id", "hold_ms", "idle_ms"))

    def prefix(self, session_id: str) -> str:
        return f"{self._namespace}:{session_id}:"

    def _bound_visit(self, session_id: str) -> Bound:
        return self._visit.bound(**self._keys(session_id))

    def _keys_of(self, session_id: str) -> dict[str, str]:
        p = self.prefix(session_id)
        faults = p + "faults"
        journal = p + "journal"
        rules = [faults, faults + ":used", faults + ":next", faults + ":v"]
        named = [self.live_key, p + "gen", *rules, journal, journal + ":id", p + "meta", self._generations_key, p + "life"]
        return dict(zip(_KEYS, named, strict=True))

    def visit(self, session_id: str) -> tuple[bool, bytes | None, bytes | None]:
        """Whether the session is live (kept so, and its request counted), its rules' version and its life."""
        with unavailable_as():
            live, version, life, old = self._visit_of(session_id).fast(**self._args(session_id), is_default=int(session_id == DEFAULT))
        self._unlink(session_id, old)
        return bool(live), version, life

    def enter(self, session_id: str) -> bytes | None:
        """Make the session live (counted; a new life from the fixtures if it was not); its life, or None past
        --max-sessions."""
        with unavailable_as():
            life, *old = self._enter(**self._keys(session_id), **self._args(session_id), cap=self.max_sessions)
        self._unlink(session_id, *old)
        return life

    def release(self, session_id: str, life: Any) -> None:
        """Nothing to do: a session's use is marked by its request's journal entry (in the same script)."""

    def live_here(self) -> None:
        return None  # other processes end sessions too: ask Redis

    def end(self, session_id: str, lapsed_only: bool = False) -> str:
        """End the session (its state, rules and journal go), or with `lapsed_only`, only if it is idle past
        --session-idle; how it stood: 'live', 'lapsed' or 'none' (no such session)."""
        with unavailable_as():
            where, _, old = self._end(**self._keys(session_id), **self._args(session_id), lapsed_only=int(lapsed_only))
        self._unlink(session_id, old)
        return where.decode()

    def hold(self, session_id: str, seconds: float) -> bool:
        """Keep a live session live for `seconds` more at least (a request of its about to wait); False if it was not."""
        with unavailable_as():
            return bool(self._hold(live_key=self.live_key, session_id=session_id, hold_ms=round(seconds * 1000), idle_ms=self.idle_ms))

    def listed(self) -> list[dict]:
        """The live sessions, the default first, then by creation."""
        with unavailable_as(UNAVAILABLE_TO_READ):
            return self._listed()

    def _listed(self) -> list[dict]:
        seconds, micros = self._client.time()
        now_ms = seconds * 1000 + micros // 1000
        live = self._client.zrangebyscore(self.live_key, now_ms - self.idle_ms, "+inf", withscores=True)
        used = {DEFAULT: None, **{member.decode(): min(int(score), now_ms) for member, score in live}}  # held: ahead
        with self._client.pipeline(transaction=False) as pipe:
            for session_id in used:
                pipe.hmget(self.prefix(session_id) + "meta", "created", "requests", "last_used")
            records = pipe.execute()
        listed = [
            {
                "id": session_id,
                "created": _stamp(created or now_ms),
                "last_used": _stamp(last or default_last or now_ms),
                "requests": int(requests or 0),
            }
            for (session_id, last), (created, requests, default_last) in zip(used.items(), records, strict=True)
            if session_id == DEFAULT or created is not None  # ended between the two reads: not listed
        ]
        return listed[:1] + sorted(listed[1:], key=lambda session: session["created"])

    def sweep(self) -> int:
        """End the sessions idle past --session-idle (some process does it about once a second); how many."""
        with unavailable_as():
            return self._sweep()

    def _sweep(self) -> int:
        if not self._client.set(f"{self._namespace}:sweeping", b"1", nx=True, px=round(sessions.SWEEP_EVERY_S * 1000)):
            return 0  # another process swept a moment ago
        seconds, micros = self._client.time()
        cutoff = seconds * 1000 + micros // 1000 - self.idle_ms
        lapsed = self._client.zrangebyscore(self.live_key, "-inf", f"({cutoff}", start=0, num=SWEPT_AT_ONCE)
        return sum(self.end(member.decode(), lapsed_only=True) == "lapsed" for member in lapsed)

    def _args(self, session_id: str) -> dict[str, Any]:
        return {"session_id": session_id, "idle_ms": self.idle_ms, "prefix": self.prefix(session_id)}

    def _unlink(self, session_id: str, *generations: int) -> None:
        for generation in generations:
            if int(generation) >= 0:
                unlink_generation(self._client, self.prefix(session_id), int(generation))


def _stamp(ms: bytes | int) -> str:
    return datetime.fromtimestamp(int(ms) / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

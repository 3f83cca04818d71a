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
from mockserver.state.redis_client import UNAVAILABLE_TO_READ, run_script, unavailable_as
from mockserver.state.redis_store import generations_key, unlink_generation

SWEPT_AT_ONCE = 100

# KEYS: 1 the live sessions (zset: a test session's score is its last use), 2 the session's generation,
# 3-5 its rules, their spent counts and next id, 6 their version, 7-8 its journal and its ids, 9 its record
# (created, requests; the default session's last use), 10 the namespace's counter, 11 the session's life.
# ARGV: 1 its id, 2 --session-idle in ms, 3 the prefix of its keys, 4 as each script says.
# A life is a session from its creation to its end; its number, drawn from the namespace's counter (as
# generations and rules' versions are), never repeats, so what a process holds of an ended life (a store,
# compiled rules) is never taken for the new one's. An ended session leaves no key.
_COMMON = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function standing(now)
  local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
  if not score then return 'none' end
  if tonumber(score) >= now - tonumber(ARGV[2]) then return 'live' end
  return 'lapsed'
end
local function written(generation)
  if redis.call('EXISTS', ARGV[3] .. generation .. ':keys', ARGV[3] .. generation .. ':next_id') > 0 then return generation end
  return -1
end
local function life()  -- a live session's; one made now for a session live before lives were kept
  local number = redis.call('GET', KEYS[11])
  if number then return number end
  number = tostring(redis.call('INCR', KEYS[10]))
  redis.call('SET', KEYS[11], number)
  return number
end
local function finish()
  local generation = redis.call('GET', KEYS[2]) or '0'
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[11])
  return written(generation)
end
"""
# A request arrives (ARGV[4]: '1' for the default session, which never ends). Returns {live 1/0, the rules'
# version, its life, a generation to unlink or -1}. A lapsed session ends here.
_VISIT = (
    _COMMON
    + """
local now = now_ms()
if ARGV[4] == '1' then
  redis.call('HSETNX', KEYS[9], 'created', now)
  redis.call('HSET', KEYS[9], 'last_used', now)
  redis.call('HINCRBY', KEYS[9], 'requests', 1)
  return {1, redis.call('GET', KEYS[6]), false, -1}
end
local where = standing(now)
if where == 'live' then
  redis.call('ZADD', KEYS[1], now, ARGV[1])
  redis.call('HINCRBY', KEYS[9], 'requests', 1)
  return {1, redis.call('GET', KEYS[6]), life(), -1}
end
local old = -1
if where == 'lapsed' then old = finish() end
return {0, false, false, old}
"""
)
# A request that passed routing and authentication needs its session (ARGV[4]: --max-sessions). Returns
# {its life, or false past the cap; a generation to unlink or -1; another}. A new life starts clean: what a
# request still in flight at the end of the last one wrote (rules, an id, generation 0) is dropped.
_ENTER = (
    _COMMON
    + """
local now = now_ms()
local where = standing(now)
if where == 'live' then
  redis.call('ZADD', KEYS[1], now, ARGV[1])
  redis.call('HINCRBY', KEYS[9], 'requests', 1)
  return {life(), -1, -1}
end
local old = -1
if where == 'lapsed' then old = finish() end
if redis.call('ZCOUNT', KEYS[1], now - tonumber(ARGV[2]), '+inf') >= tonumber(ARGV[4]) then return {false, old, -1} end
local stray = written(redis.call('GET', KEYS[2]) or '0')
redis.call('DEL', KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8])
local number = redis.call('INCR', KEYS[10])
redis.call('SET', KEYS[2], number)
redis.call('SET', KEYS[11], number)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('HSET', KEYS[9], 'created', now, 'requests', 1)
return {tostring(number), old, stray}
"""
)
# End a session (ARGV[4]: '1' to end it only if it lapsed, the sweep's). Returns {how it stood: 'live',
# 'lapsed' or 'none' (nothing done), whether it was ended 1/0, a generation to unlink or -1}.
_END = (
    _COMMON
    + """
local where = standing(now_ms())
if where == 'none' or (ARGV[4] == '1' and where == 'live') then return {where, 0, -1} end
return {where, 1, finish()}
"""
)


# A request about to wait ARGV[2] ms holds its session (KEYS[1]: the live sessions; ARGV[1] its id) live that
# long, if it still is (ARGV[3]: --session-idle in ms): its score moves ahead, never back. 1 if held.
_HOLD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) < now - tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], 'XX', 'GT', now + tonumber(ARGV[2]), ARGV[1])
return 1
"""


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
        self._visit = client.register_script(_VISIT)
        self._enter = client.register_script(_ENTER)
        self._end = client.register_script(_END)
        self._hold = client.register_script(_HOLD)

    def prefix(self, session_id: str) -> str:
        return f"{self._namespace}:{session_id}:"

    def _keys_of(self, session_id: str) -> list[str]:
        p = self.prefix(session_id)
        faults = p + "faults"
        journal = p + "journal"
        rules = [faults, faults + ":used", faults + ":next", faults + ":v"]
        return [self.live_key, p + "gen", *rules, journal, journal + ":id", p + "meta", self._generations_key, p + "life"]

    def visit(self, session_id: str) -> tuple[bool, bytes | None, bytes | None]:
        """Whether the session is live (kept so, and its request counted), its rules' version and its life."""
        args = self._args(session_id, int(session_id == DEFAULT))
        with unavailable_as():
            live, version, life, old = run_script(self._client, self._visit, self._keys(session_id), args)
        self._unlink(session_id, old)
        return bool(live), version, life

    def enter(self, session_id: str) -> bytes | None:
        """Make the session live (counted; a new life from the fixtures if it was not); its life, or None past
        --max-sessions."""
        with unavailable_as():
            life, *old = self._enter(keys=self._keys(session_id), args=self._args(session_id, self.max_sessions))
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
            where, _, old = self._end(keys=self._keys(session_id), args=self._args(session_id, int(lapsed_only)))
        self._unlink(session_id, old)
        return where.decode()

    def hold(self, session_id: str, seconds: float) -> bool:
        """Keep a live session live for `seconds` more at least (a request of its about to wait); False if it was not."""
        with unavailable_as():
            return bool(self._hold(keys=[self.live_key], args=[session_id, round(seconds * 1000), self.idle_ms]))

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

    def _args(self, session_id: str, last: int) -> list:
        return [session_id, self.idle_ms, self.prefix(session_id), last]

    def _unlink(self, session_id: str, *generations: int) -> None:
        for generation in generations:
            if int(generation) >= 0:
                unlink_generation(self._client, self.prefix(session_id), int(generation))


def _stamp(ms: bytes | int) -> str:
    return datetime.fromtimestamp(int(ms) / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

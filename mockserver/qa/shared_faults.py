"""A session's fault rules in Redis (`serve --store redis://`): every process sharing the store applies them.

The admin API sees the interface of `FaultRules`; the pipeline matches
through `as_of`, with the rules' version its request read when it visited
its session (mockserver/qa/shared_sessions.py). The rules are kept as the
JSON the admin API took, in one hash per session, with a version: each
process keeps them compiled and reads them again only after a change.
`times` is counted in Redis, so N matches across all processes fire a rule at
most N times. `probability` and delay ranges are drawn in each process (a
`seed` makes each process's draws reproducible, not the interleaving of
processes). The rules of a session's life that ended change nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import redis

from mockserver.contract.compiled import Operation, RawRequest
from mockserver.qa.faults import MAX_RULES, Action, FaultRule, RuleInvalid
from mockserver.state import codec
from mockserver.state.redis_store import UNAVAILABLE_TO_READ, answered_503

# Each script first checks that the session's life (the key `life`) is still the one the rules belong to
# (ARGV[1]; '' for the default session, which never ends): a request that outlived its session must not
# write into the session's next life, nor leave keys nobody removes. It then does nothing, as in memory,
# where such a request acts on rules that went with their session.
_SAME_LIFE = "if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[1] then return -2 end\n"
# KEYS: 1 the life, 2 the rules, 3 their spent counts, 4 their version, 5 the namespace's counter of versions
# (a version is never repeated), 6 the next rule id.
# A match of rule ARGV[2] counted.
_SPEND = _SAME_LIFE + "return redis.call('HINCRBY', KEYS[3], ARGV[2], 1)"
# The cap, a new id, the rule (its spent count cleared: a process may still count a deleted rule's old
# matches under its id), and the new version: one atomic step.
_ADD = (
    _SAME_LIFE
    + """
if redis.call('HLEN', KEYS[2]) >= tonumber(ARGV[2]) then return -1 end
local number = redis.call('INCR', KEYS[6])
redis.call('HSET', KEYS[2], 'f' .. number, ARGV[3])
redis.call('HDEL', KEYS[3], 'f' .. number)
redis.call('SET', KEYS[4], redis.call('INCR', KEYS[5]))
return number
"""
)
# Rule ARGV[2] deleted (1), or not there (0).
_DELETE = (
    _SAME_LIFE
    + """
local deleted = redis.call('HDEL', KEYS[2], ARGV[2])
redis.call('HDEL', KEYS[3], ARGV[2])
redis.call('SET', KEYS[4], redis.call('INCR', KEYS[5]))
return deleted
"""
)
# Every rule deleted.
_CLEAR = (
    _SAME_LIFE
    + """
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('SET', KEYS[4], redis.call('INCR', KEYS[5]))
return 1
"""
)


class SharedFaultRules:
    def __init__(
        self, client: redis.Redis, prefix: str, versions_key: str, compile_rule: Callable[[str, dict], FaultRule], life: bytes | None
    ):
        """`versions_key`: the namespace's counter of versions; `compile_rule(id, spec)` makes a rule from its
        JSON (as the admin API does, against the spec); `life`: the session's life these rules belong to
        (mockserver/qa/shared_sessions.py; None for the default session)."""
        self._client = client
        self._rules_key, self._used_key = prefix + "faults", prefix + "faults:used"
        self._version_key, self._next_key = prefix + "faults:v", prefix + "faults:next"
        self._compile = compile_rule
        self._life = [life or b""]
        self._keys = [prefix + "life", self._rules_key, self._used_key, self._version_key, versions_key, self._next_key]
        self._add, self._delete, self._clear, self._spend = (client.register_script(s) for s in (_ADD, _DELETE, _CLEAR, _SPEND))
        self._lock = threading.Lock()
        self._version: bytes | None = None
        self._compiled: list[FaultRule] = []

    def add(self, build: Callable[[str], FaultRule]) -> FaultRule:
        """Add the rule `build(id)` makes (it may raise RuleInvalid, and then nothing is added, no id taken).
        The cap, the id and the rule are one step in Redis, whichever processes add at once."""
        rule = build("f0")  # checked first; its id is given by Redis
        with answered_503(UNAVAILABLE_TO_READ):
            number = int(self._add(keys=self._keys, args=[*self._life, MAX_RULES, codec.text(rule.spec)]))
        if number == -2:  # the session ended meanwhile: the rule went with it (kept nowhere, `f0`)
            return replace(rule, id="f0")
        if number < 0:
            raise RuleInvalid(f"a session holds at most {MAX_RULES} rules; delete some (DELETE /__admin/faults).")
        return replace(rule, id=f"f{number}")

    def as_of(self, version: bytes | None) -> RulesAsOf:
        """The rules as a request sees them: `version` was read with its session (mockserver/qa/shared_sessions.py)."""
        return RulesAsOf(self, version)

    def match(self, operation: Operation, raw: RawRequest, answering: bool, version: bytes | None) -> Action | None:
        """As FaultRules.match, with the rules of `version`; raises ApiError(503) if Redis does not answer. A
        request asks for answering rules first, then (none answered) for delaying ones: the rules are brought
        up to date on the first ask only."""
        with answered_503(UNAVAILABLE_TO_READ):
            for rule in self._current(version) if answering else self._compiled:
                if rule.answers != answering or not rule.applies_to(operation, raw):
                    continue
                with self._lock:  # one rule's draws in order, whichever thread serves (waitress)
                    skipped = rule.probability < 1 and rule.random.random() >= rule.probability
                if skipped:
                    continue
                used = int(self._spend(keys=self._keys[:3], args=[*self._life, rule.id]))
                if rule.remaining is not None and (used > rule.remaining or used == -2):
                    continue  # its `times` ran out, in some process (or its count went with its session's life)
                low, high = rule.delay_ms or (0.0, 0.0)
                with self._lock:
                    delay = low if low == high else rule.random.uniform(low, high)
                return Action(rule.id, rule.status, delay / 1000, rule.fault)
        return None

    def listed(self) -> list[dict[str, Any]]:
        with answered_503(UNAVAILABLE_TO_READ):
            specs, used = self._client.hgetall(self._rules_key), self._client.hgetall(self._used_key)
        listed = []
        for rule_id, raw in sorted(specs.items(), key=lambda item: int(item[0][1:])):
            spec, count = codec.loads(raw), int(used.get(rule_id, 0))
            times = spec.get("times")
            matched = count if times is None else min(count, times)
            listed.append({"id": rule_id.decode(), **spec, "remaining": None if times is None else times - matched, "matched": matched})
        return listed

    def delete(self, rule_id: str) -> bool:
        with answered_503(UNAVAILABLE_TO_READ):
            return int(self._delete(keys=self._keys[:5], args=[*self._life, rule_id])) == 1

    def clear(self) -> None:
        with answered_503(UNAVAILABLE_TO_READ):
            self._clear(keys=self._keys[:5], args=self._life)

    def _current(self, version: bytes | None) -> list[FaultRule]:
        """The rules of `version`, compiled: read only when it moved."""
        with self._lock:
            if version == self._version:
                return self._compiled
        specs = self._client.hgetall(self._rules_key)
        with self._lock:
            # A rule's JSON never changes: rules already compiled are kept, with their draws (`seed`) where they were.
            known = {rule.id: rule for rule in self._compiled}
            ordered = sorted(specs.items(), key=lambda item: int(item[0][1:]))
            compiled = [known.get(key.decode()) or self._compile(key.decode(), codec.loads(raw)) for key, raw in ordered]
            self._version, self._compiled = version, compiled
        return compiled


class RulesAsOf:
    """A session's shared rules with the version its request read (what the pipeline calls `match` on)."""

    def __init__(self, rules: SharedFaultRules, version: bytes | None):
        self._rules, self._version = rules, version

    def match(self, operation: Operation, raw: RawRequest, answering: bool) -> Action | None:
        return self._rules.match(operation, raw, answering, self._version)

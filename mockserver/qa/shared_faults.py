"""A session's fault rules kept in Redis (`serve --store redis://`): every process sharing the store applies them.

A `RuleStorage` (mockserver/qa/faults.py, where rules are matched and fired):
the exchange matches through `FaultRules.as_of`, with the rules' version its
request read when it visited its session (mockserver/qa/shared_sessions.py).
The rules are kept as the JSON the admin API took, in one hash per session,
with a version: each process keeps them compiled and reads them again only
after a change. `times` is counted in Redis, so N matches across all
processes fire a rule at most N times. The rules of a session's life that
ended change nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import redis

from mockserver.qa.faults import MAX_RULES, FaultRule, RuleInvalid
from mockserver.state import codec
from mockserver.state.redis_client import UNAVAILABLE_TO_READ, LuaScript, unavailable_as

# Each script (mockserver/state/lua/rules_*.lua) first checks that the session's life (the key `life`) is still
# the one the rules belong to (`owner`; '' for the default session, which never ends): a request that outlived
# its session must not write into the session's next life, nor leave keys nobody removes. It then does nothing,
# as in memory, where such a request acts on rules that went with their session.
_KEYS = ("life", "rules", "spent", "version", "versions", "next_id")


class SharedRules:
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
        self._owner = life or b""
        self._keys = dict(
            zip(_KEYS, (prefix + "life", self._rules_key, self._used_key, self._version_key, versions_key, self._next_key), strict=True)
        )
        self._add = LuaScript(client, "rules_add", _KEYS, ("owner", "cap", "spec"))
        self._delete = LuaScript(client, "rules_delete", _KEYS[:5], ("owner", "rule_id"))
        self._clear = LuaScript(client, "rules_clear", _KEYS[:5], ("owner",))
        self._spend = LuaScript(client, "rules_spend", _KEYS[:3], ("owner", "rule_id"))
        self._lock = threading.Lock()
        self._version: bytes | None = None
        self._compiled: list[FaultRule] = []

    def add(self, rule: FaultRule) -> FaultRule:
        """The cap, the id and the rule are one step in Redis, whichever processes add at once."""
        with unavailable_as(UNAVAILABLE_TO_READ):
            number = int(self._add(**self._keys, owner=self._owner, cap=MAX_RULES, spec=codec.text(rule.spec)))
        if number == -2:  # the session ended meanwhile: the rule went with it (kept nowhere, `f0`)
            return replace(rule, id="f0")
        if number < 0:
            raise RuleInvalid(f"a session holds at most {MAX_RULES} rules; delete some (DELETE /__admin/faults).")
        return replace(rule, id=f"f{number}")

    def current(self, version: bytes | None, refresh: bool) -> list[FaultRule]:
        """The rules of `version`, compiled: read only when it moved (StoreUnavailable when Redis does not answer)."""
        if not refresh:
            return self._compiled
        with self._lock:
            if version == self._version:
                return self._compiled
        with unavailable_as(UNAVAILABLE_TO_READ):
            specs = self._client.hgetall(self._rules_key)
        with self._lock:
            # A rule's JSON never changes: rules already compiled are kept, with their draws (`seed`) where they were.
            known = {rule.id: rule for rule in self._compiled}
            ordered = sorted(specs.items(), key=lambda item: int(item[0][1:]))
            compiled = [known.get(key.decode()) or self._compile(key.decode(), codec.loads(raw)) for key, raw in ordered]
            self._version, self._compiled = version, compiled
        return compiled

    def spend(self, rule: FaultRule) -> bool:
        """One match counted in Redis: past the rule's `times` in any process (or gone with its session's life), no."""
        with unavailable_as(UNAVAILABLE_TO_READ):
            used = int(self._spend(**self._named(3), owner=self._owner, rule_id=rule.id))
        return rule.remaining is None or not (used > rule.remaining or used == -2)

    def _named(self, count: int) -> dict[str, str]:
        """The first `count` of the rules' keys by name (what the delete, clear and spend scripts touch)."""
        return {name: self._keys[name] for name in _KEYS[:count]}

    def listed(self) -> list[dict[str, Any]]:
        with unavailable_as(UNAVAILABLE_TO_READ):
            specs, used = self._client.hgetall(self._rules_key), self._client.hgetall(self._used_key)
        listed = []
        for rule_id, raw in sorted(specs.items(), key=lambda item: int(item[0][1:])):
            spec, count = codec.loads(raw), int(used.get(rule_id, 0))
            times = spec.get("times")
            matched = count if times is None else min(count, times)
            listed.append({"id": rule_id.decode(), **spec, "remaining": None if times is None else times - matched, "matched": matched})
        return listed

    def delete(self, rule_id: str) -> bool:
        with unavailable_as(UNAVAILABLE_TO_READ):
            return int(self._delete(**self._named(5), owner=self._owner, rule_id=rule_id)) == 1

    def clear(self) -> None:
        with unavailable_as(UNAVAILABLE_TO_READ):
            self._clear(**self._named(5), owner=self._owner)

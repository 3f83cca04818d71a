"""Fault and latency rules: data, matched against each vendor API request before it is run.

A rule is the JSON the admin API takes (`FaultRuleInput` in spec/admin.yaml):
what to match (operationId, method, path and header regexes) and what to do
(answer a documented status, wait, or break the connection on the wire).
`FaultRules` is the one place rules are matched and fired (probability,
`times`, the delay draw), whatever keeps them: a `RuleStorage`, this
process's memory (`LocalRules`) or Redis (mockserver/qa/shared_faults.py).
`times` is counted by the storage in one atomic step, so N concurrent matches
never fire a rule more than N times; `seed` makes `probability` and a delay
range reproducible (in each process).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from mockserver.contract.compiled import Operation, RawRequest
from mockserver.qa.patterns import PatternInvalid, compile_pattern

FAULT_KINDS = ("connection_reset", "empty_response", "malformed_body")
MAX_RULES = 100  # per session: rules are matched on every request, and listed whole


class RuleInvalid(ValueError):
    """A rule that cannot be honoured as written; the message says why."""


@dataclass(frozen=True)
class Action:
    """What a matched rule does to one request."""

    rule_id: str
    status: int | None
    delay_s: float
    fault: str | None


@dataclass
class FaultRule:
    id: str
    spec: dict[str, Any]  # as given (echoed by the admin API)
    operation_id: str | None
    method: str | None
    path: Any  # a compiled RE2 pattern (qa/patterns.py), or None
    headers: dict[str, Any]
    status: int | None
    delay_ms: tuple[float, float] | None
    fault: str | None
    probability: float
    remaining: int | None
    matched: int = 0
    random: random.Random = field(default_factory=random.Random)

    @property
    def answers(self) -> bool:
        """Whether the rule answers for the request (else it only delays it)."""
        return self.status is not None or self.fault is not None

    def applies_to(self, operation: Operation, raw: RawRequest) -> bool:
        return (
            (self.operation_id is None or operation.operation_id == self.operation_id)
            and (self.method is None or raw.method == self.method)
            and (self.path is None or self.path.search(raw.path) is not None)
            and all(name in raw.headers and pattern.search(raw.headers[name]) for name, pattern in self.headers.items())
            and (self.status is None or operation.documents(self.status))
        )

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, **self.spec, "remaining": self.remaining, "matched": self.matched}


def parse_rule(rule_id: str, spec: Mapping[str, Any], operations: Iterable[Operation], faults_supported: Iterable[str]) -> FaultRule:
    """A rule from its (schema-checked) JSON; raise RuleInvalid for what a schema cannot say."""
    candidates = [op for op in operations if spec.get("operationId") in (None, op.operation_id)]
    candidates = [op for op in candidates if spec.get("method") is None or op.method == spec["method"].upper()]
    if "operationId" in spec and not candidates:
        raise RuleInvalid(f"operationId '{spec['operationId']}' is not an operation of the vendor APIs (with method {spec.get('method')}).")
    status = spec.get("status")
    if status is not None:
        undocumented = [op for op in candidates if not op.documents(status)]
        if undocumented:
            named = "; ".join(f"{op.operation_id} documents {', '.join(sorted(op.responses))}" for op in undocumented)
            raise RuleInvalid(f"status {status} is not documented by every operation the rule can match: {named}.")
    fault = spec.get("fault")
    if fault == "malformed_body" and status is not None and any(not op.responses.get(str(status)) for op in candidates):
        raise RuleInvalid(f"fault 'malformed_body' needs a status with a body; {status} has none.")
    if fault is not None and fault not in faults_supported:
        raise RuleInvalid(f"fault '{fault}' cannot be produced by this server; it can produce: {', '.join(faults_supported) or 'none'}.")
    delay = spec.get("delay_ms")
    if isinstance(delay, list):
        if delay[0] > delay[1]:
            raise RuleInvalid(f"delay_ms range [{delay[0]}, {delay[1]}] must have min <= max.")
        delay_range: tuple[float, float] | None = (float(delay[0]), float(delay[1]))
    else:
        delay_range = None if delay is None else (float(delay), float(delay))
    return FaultRule(
        id=rule_id,
        spec=dict(spec),
        operation_id=spec.get("operationId"),
        method=spec["method"].upper() if "method" in spec else None,
        path=_regex("path", spec.get("path")),
        headers={name.lower(): _regex(f"headers.{name}", pattern) for name, pattern in spec.get("headers", {}).items()},
        status=status,
        delay_ms=delay_range,
        fault=fault,
        probability=float(spec.get("probability", 1)),
        remaining=spec.get("times"),
        random=random.Random(spec.get("seed")),
    )


def _regex(where: str, pattern: str | None) -> Any:
    if pattern is None:
        return None
    try:
        return compile_pattern(pattern)
    except PatternInvalid as exc:
        raise RuleInvalid(f"{where}: {exc}.") from exc


class RuleStorage(Protocol):
    """Where a session's rules are kept, and their matches counted."""

    def add(self, rule: FaultRule) -> FaultRule:
        """Keep `rule` under a new id (RuleInvalid past MAX_RULES); the rule as kept (id `f0`: kept nowhere, its
        session ended meanwhile)."""
        ...

    def current(self, version: Any, refresh: bool) -> list[FaultRule]:
        """The rules in the order they were added, as of `version` (what the request's session visit read; brought
        up to date only when `refresh`)."""
        ...

    def spend(self, rule: FaultRule) -> bool:
        """Count one match of `rule`, atomically; False when its `times` ran out (or it went with its session)."""
        ...

    def listed(self) -> list[dict[str, Any]]: ...

    def delete(self, rule_id: str) -> bool: ...

    def clear(self) -> None: ...


class FaultRules:
    """A session's rules: added, listed and deleted through their storage, matched and fired here."""

    def __init__(self, storage: RuleStorage | None = None):
        self.storage = storage or LocalRules()
        self._draws = threading.Lock()  # one rule's draws in order, whichever thread serves (waitress)

    def add(self, build: Any) -> FaultRule:
        """Add the rule `build(id)` makes (it may raise RuleInvalid, and then nothing is added, no id taken)."""
        return self.storage.add(build("f0"))  # checked first; its id is the storage's

    def as_of(self, version: Any) -> FaultRules | RulesAsOf:
        """The rules as a request sees them: `version` was read with its session (a shared store's; None for this
        process's, whose rules need no version: then these rules themselves, nothing made a request)."""
        return self if version is None else RulesAsOf(self, version)

    def match(self, operation: Operation, raw: RawRequest, answering: bool, version: Any = None) -> Action | None:
        """The action of the first rule of its kind that matches and fires: rules that answer (a status or a
        wire fault) when `answering`, delay-only rules otherwise. A request asks for answering rules first, then
        (none answered) for delaying ones: the rules are brought up to date on the first ask only. A rule whose
        `times` ran out stays listed, matching nothing."""
        for rule in self.storage.current(version, refresh=answering):
            if rule.answers != answering or rule.remaining == 0 or not rule.applies_to(operation, raw):
                continue
            with self._draws:
                skipped = rule.probability < 1 and rule.random.random() >= rule.probability
            if skipped or not self.storage.spend(rule):
                continue
            low, high = rule.delay_ms or (0.0, 0.0)
            with self._draws:
                delay = low if low == high else rule.random.uniform(low, high)
            return Action(rule.id, rule.status, delay / 1000, rule.fault)
        return None

    def listed(self) -> list[dict[str, Any]]:
        return self.storage.listed()

    def delete(self, rule_id: str) -> bool:
        return self.storage.delete(rule_id)

    def clear(self) -> None:
        self.storage.clear()


class RulesAsOf:
    """A session's rules with the version its request read (what the exchange calls `match` on)."""

    def __init__(self, rules: FaultRules, version: Any):
        self._rules, self._version = rules, version

    def match(self, operation: Operation, raw: RawRequest, answering: bool) -> Action | None:
        return self._rules.match(operation, raw, answering, self._version)


class LocalRules:
    """A session's rules in this process's memory; a rule's own counters count its matches."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()
        self._next_id = 1

    def add(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            if len(self._rules) >= MAX_RULES:
                raise RuleInvalid(f"a session holds at most {MAX_RULES} rules; delete some (DELETE /__admin/faults).")
            rule = replace(rule, id=f"f{self._next_id}")
            self._next_id += 1
            self._rules = [*self._rules, rule]
            return rule

    def current(self, version: Any, refresh: bool) -> list[FaultRule]:
        return self._rules  # replaced whole on a change, never edited in place: iterating it needs no lock

    def spend(self, rule: FaultRule) -> bool:
        with self._lock:
            if rule.remaining == 0:
                return False
            rule.matched += 1
            if rule.remaining is not None:
                rule.remaining -= 1
            return True

    def listed(self) -> list[dict[str, Any]]:
        with self._lock:
            return [rule.as_json() for rule in self._rules]

    def delete(self, rule_id: str) -> bool:
        with self._lock:
            kept = [rule for rule in self._rules if rule.id != rule_id]
            found = len(kept) != len(self._rules)
            self._rules = kept
            return found

    def clear(self) -> None:
        with self._lock:
            self._rules = []

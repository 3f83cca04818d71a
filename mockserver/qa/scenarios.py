"""Scenarios: named, reviewable test situations (`fixtures/scenarios/*.yaml`) applied to a session.

A scenario is state changes on top of the fixtures plus fault rules. Every
file is checked at start against the spec (changed records against the
record schemas, rules against the operations they name), so a bad scenario
stops the start with a message naming the file and the field, like a bad
fixture file; applying one then cannot fail half way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import jsonschema_rs
import yaml

from mockserver.contract.compiled import Operation, SchemaCheck
from mockserver.qa.faults import FAULT_KINDS, FaultRule, RuleInvalid, parse_rule
from mockserver.qa.sessions import Session
from mockserver.state.changes import Key, Write, egain_key, relay_key
from mockserver.state.fixtures import FixtureError, where
from mockserver.state.model import State

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_RECORDS = {"type": "array", "items": {"type": "object"}, "maxItems": 10000}
FILE_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "description"],
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,63}$"},
        "description": {"type": "string", "minLength": 1},
        "state": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "relay": {"type": "object", "additionalProperties": _RECORDS},
                "egain": _RECORDS,
            },
        },
        "faults": {"type": "array", "items": {"type": "object"}, "maxItems": 100},
    },
}


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    relay: dict[str, list[dict]] = field(default_factory=dict)  # client_id -> records (a patch of one, by ccid)
    egain: list[dict] = field(default_factory=list)  # customers (a patch of one, by id)
    faults: list[dict] = field(default_factory=list)  # rule specs, as the admin API takes them
    source: str = ""

    def apply(self, session: Session, operations: list[Operation], faults_supported: Iterable[str]) -> list[FaultRule]:
        """Reset the session to the fixtures, make the changes, add the rules; raise RuleInvalid before any of it."""
        rules = [parse_rule("f0", spec, operations, faults_supported) for spec in self.faults]
        session.store.reset()
        session.store.run(Write(self.change, self.touches))
        return [session.faults.add(lambda rule_id, rule=rule: replace(rule, id=rule_id)) for rule in rules]

    def touches(self) -> list[Key]:
        """The records `change` sets (for the command log)."""
        relay = [relay_key(client_id, patch["ccid"]) for client_id, records in self.relay.items() for patch in records]
        return relay + [egain_key(patch["id"]) for patch in self.egain]

    def change(self, state: State) -> None:
        """Make the scenario's state changes (a store command: run under the session's lock)."""
        for client_id, records in self.relay.items():
            book = state.relay.books[client_id]
            for patch in records:
                old = book.customers.get(patch["ccid"])
                record = {**(old or {}), **patch}
                book.customers[patch["ccid"]] = record
                book.index_phones(patch["ccid"], old, record)
        for patch in self.egain:
            state.egain.customers[patch["id"]] = {**state.egain.customers.get(patch["id"], {}), **patch}


class Scenarios:
    """Every scenario of a folder, checked, by name."""

    def __init__(self, scenarios: Iterable[Scenario]):
        self.by_name = {scenario.name: scenario for scenario in scenarios}

    @classmethod
    def load(cls, folder: Path | None, operations: list[Operation], schemas: dict[str, dict], build: Callable[[], State]) -> Scenarios:
        """`build` makes a fresh fixture state, to check every change against (raises FixtureError)."""
        if folder is None:
            return cls([])
        if not folder.is_dir():
            raise FixtureError(f"{folder}: the scenarios folder does not exist")
        files = sorted(folder.glob("*.yaml"))
        if not files:
            return cls([])
        fresh = build()  # one state built for all files: each checks its changes on its own copy
        found = [_load(path, operations, schemas, lambda: _copy_to_change(fresh)) for path in files]
        names = [scenario.name for scenario in found]
        for scenario in found:
            if names.count(scenario.name) > 1:
                raise FixtureError(f"{scenario.source}: name: '{scenario.name}' is used by another scenario file too")
        return cls(found)

    def listed(self) -> list[dict[str, str]]:
        return [{"name": s.name, "description": " ".join(s.description.split())} for s in self.by_name.values()]


def _load(path: Path, operations: list[Operation], schemas: dict[str, dict], build: Callable[[], State]) -> Scenario:
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_LOADER)  # noqa: S506 - a safe loader
    except OSError as exc:
        raise FixtureError(f"{path}: cannot read the scenario file: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise FixtureError(f"{path}: not valid YAML: {exc}") from exc
    error = next(iter(jsonschema_rs.Draft202012Validator(FILE_SCHEMA).iter_errors(data)), None) if isinstance(data, dict) else None
    if not isinstance(data, dict) or error is not None:
        at = where(error.instance_path) if error else ""
        raise FixtureError(f"{path}: {at or 'top level'}: {error.message if error else 'the file must be a mapping'}")
    state = data.get("state", {})
    scenario = Scenario(
        data["name"], data["description"], state.get("relay", {}), state.get("egain", []), data.get("faults", []), str(path)
    )
    for i, spec in enumerate(scenario.faults):
        _check_rule(f"{path}: faults[{i}]", spec, operations, schemas)
    _check_changes(scenario, path, schemas, build())
    return scenario


def _copy_to_change(state: State) -> State:
    """A copy of `state` that `Scenario.change` may be made on, leaving `state` as it was.

    `change` puts new records in and never edits one in place, so the records are shared and only the
    mappings (and the phone index's sets, which it edits) are copied: milliseconds for a million
    customers, where building a state for each scenario file took about a second.
    """
    books = {}
    for client_id, book in state.relay.books.items():
        phone_ccids = {phone: set(owners) for phone, owners in book.phone_ccids.items()}
        books[client_id] = replace(book, customers=dict(book.customers), phone_ccids=phone_ccids)
    return replace(state, relay=replace(state.relay, books=books), egain=replace(state.egain, customers=dict(state.egain.customers)))


def _check_rule(at: str, spec: dict, operations: list[Operation], schemas: dict[str, dict]) -> None:
    problem = SchemaCheck(schemas["FaultRuleInput"]).error(spec)
    if problem:
        raise FixtureError(f"{at}: {problem}")
    try:
        parse_rule("f0", spec, operations, FAULT_KINDS)
    except RuleInvalid as exc:
        raise FixtureError(f"{at}: {exc}") from exc


def _check_changes(scenario: Scenario, path: Path, schemas: dict[str, dict], state: State) -> None:
    """Apply the changes to a fresh state and check every changed record as the fixtures are checked."""
    for client_id, records in scenario.relay.items():
        if client_id not in state.relay.books:
            raise FixtureError(f"{path}: state.relay.{client_id}: no such client in the fixtures")
        for j, patch in enumerate(records):
            if not isinstance(patch.get("ccid"), str):
                raise FixtureError(f"{path}: state.relay.{client_id}[{j}]: ccid: is required (it names the record to change)")
    for j, patch in enumerate(scenario.egain):
        if not isinstance(patch.get("id"), str):
            raise FixtureError(f"{path}: state.egain[{j}]: id: is required (it names the customer to change)")
    scenario.change(state)
    relay_check, egain_check = SchemaCheck(schemas["RelayCustomerRecord"]), SchemaCheck(schemas["Customer"])
    for client_id, records in scenario.relay.items():
        book = state.relay.books[client_id]
        for j, patch in enumerate(records):
            record = book.customers[patch["ccid"]]
            problem = relay_check.error(record) or _group_problem(record, book.client.product_groups)
            if problem:
                raise FixtureError(f"{path}: state.relay.{client_id}[{j}] ({patch['ccid']}): {problem}")
    for j, patch in enumerate(scenario.egain):
        customer: Any = state.egain.customers[patch["id"]]
        problem = egain_check.error(customer) or (
            "" if "lastModified" in customer and "type" in customer else "type and lastModified are required"
        )
        if problem:
            raise FixtureError(f"{path}: state.egain[{j}] ({patch['id']}): {problem}")


def _group_problem(record: dict, groups: frozenset[str]) -> str:
    group = record.get("product_group_id")
    return "" if group in groups else f"product_group_id: '{group}' is not one of the client's product_groups"

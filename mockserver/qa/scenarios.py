"""Scenarios: named, reviewable test situations (`fixtures/scenarios/*.yaml`) applied to a session.

A scenario is state changes on top of the fixtures plus fault rules. Every
file is checked at start against the spec (changed records against the
record schemas, rules against the operations they name), so a bad scenario
stops the start with a message naming the file and the field, like a bad
fixture file; applying one then cannot fail half way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, MutableMapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import jsonschema_rs
import yaml

from mockserver.contract.compiled import Operation, SchemaCheck
from mockserver.qa.faults import FAULT_KINDS, FaultRule, RuleInvalid, parse_rule
from mockserver.qa.sessions import Session
from mockserver.state.changes import Key, Write
from mockserver.state.fixtures import FixtureError, where
from mockserver.state.model import State
from mockserver.state.section import Section
from mockserver.state.store import Store

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def file_schema(sections: Sequence[Section]) -> dict:
    """A scenario file's structure: its `state` has one part a family, as the family declares it."""
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "description"],
        "properties": {
            "name": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,63}$"},
            "description": {"type": "string", "minLength": 1},
            "state": {
                "type": "object",
                "additionalProperties": False,
                "properties": {section.name: section.scenario_schema for section in sections},
            },
            "faults": {"type": "array", "items": {"type": "object"}, "maxItems": 100},
        },
    }


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    patches: list[tuple[Key, dict]] = field(default_factory=list)  # each record to change, and the fields it sets
    faults: list[dict] = field(default_factory=list)  # rule specs, as the admin API takes them
    source: str = ""

    def apply(
        self, session: Session, operations: list[Operation], faults_supported: Iterable[str], store: Store | None = None
    ) -> list[FaultRule]:
        """Reset the session to the fixtures, make the changes, add the rules; raise RuleInvalid before any of it.
        `store`: the session's store as the request sees it (its changes settled by its exchange)."""
        rules = [parse_rule("f0", spec, operations, faults_supported) for spec in self.faults]
        store = store or session.store
        store.reset()
        store.run(Write(self.change, self.touches))
        return [session.faults.add(lambda rule_id, rule=rule: replace(rule, id=rule_id)) for rule in rules]

    def touches(self) -> list[Key]:
        """The records `change` sets (for the command log)."""
        return [key for key, _ in self.patches]

    def change(self, state: State) -> None:
        """Make the scenario's state changes (a store command: run under the session's lock)."""
        for (family, collection, record_id), patch in self.patches:
            section = state.sections[family]
            old = section.mapping(state[family], collection).get(record_id)
            section.put(state[family], collection, record_id, {**(old or {}), **patch})


class Scenarios:
    """Every scenario of a folder, checked, by name."""

    def __init__(self, scenarios: Iterable[Scenario]):
        self.by_name = {scenario.name: scenario for scenario in scenarios}

    @classmethod
    def load(cls, folder: Path | None, operations: list[Operation], schemas: dict[str, dict], build: Callable[[], State]) -> Scenarios:
        """`build` makes a fresh fixture state, to check every change against (raises FixtureError); its
        families say what a scenario's `state` may change."""
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
    state = build()
    schema = file_schema(list(state.sections.values()))
    error = next(iter(jsonschema_rs.Draft202012Validator(schema).iter_errors(data)), None) if isinstance(data, dict) else None
    if not isinstance(data, dict) or error is not None:
        at = where(error.instance_path) if error else ""
        raise FixtureError(f"{path}: {at or 'top level'}: {error.message if error else 'the file must be a mapping'}")
    for i, spec in enumerate(data.get("faults", [])):
        _check_rule(f"{path}: faults[{i}]", spec, operations, schemas)
    patches, places = [], []
    for family, changes in data.get("state", {}).items():
        for collection, record_id, patch, at in state.sections[family].patches(changes, state[family], f"{path}: state.{family}"):
            patches.append(((family, collection, record_id), patch))
            places.append(at)
    scenario = Scenario(data["name"], data["description"], patches, data.get("faults", []), str(path))
    _check_changes(scenario, places, schemas, state)
    return scenario


def _copy_to_change(state: State) -> State:
    """A copy of `state` that `Scenario.change` may be made on, leaving `state` as it was.

    `change` puts new records in and never edits one in place, so the records are shared and only the
    mappings (and an index's sets, which a put edits) are copied: milliseconds for a million customers,
    where building a state for each scenario file took about a second.
    """
    families = {}
    for name, section in state.sections.items():
        kinds = {collection.name: collection.id_field for collection in section.collections(state[name])}
        mappings: dict[str, MutableMapping] = {
            collection: dict(mapping) if kinds.get(collection) else {key: set(ids) for key, ids in mapping.items()}
            for collection, mapping in section.mappings(state[name]).items()
        }
        families[name] = section.over(state[name], mappings, state.sources)
    return replace(state, families=families)


def _check_rule(at: str, spec: dict, operations: list[Operation], schemas: dict[str, dict]) -> None:
    problem = SchemaCheck(schemas["FaultRuleInput"]).error(spec)
    if problem:
        raise FixtureError(f"{at}: {problem}")
    try:
        parse_rule("f0", spec, operations, FAULT_KINDS)
    except RuleInvalid as exc:
        raise FixtureError(f"{at}: {exc}") from exc


def _check_changes(scenario: Scenario, places: list[str], schemas: dict[str, dict], state: State) -> None:
    """Apply the changes to a fresh state and check every changed record as the fixtures are checked."""
    scenario.change(state)
    for ((family, collection, record_id), _), at in zip(scenario.patches, places, strict=True):
        problem = state.sections[family].patched_problem(state[family], collection, record_id, schemas)
        if problem:
            raise FixtureError(f"{at}: {problem}")

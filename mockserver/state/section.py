"""What a family declares of its state: its section of the fixture file, its record collections, how they build.

The generic layers (fixtures and their cache, the command log, snapshots, the
Redis store, background disposal, scenarios, the admin state view) know a
family's records only through its `Section`: they iterate the collections it
names and never read a family's own types. A record is addressed by a `Key`:
its family, its collection and its id, so a change logged, a Redis key or a
scenario's patch names its family like any other.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any

from mockserver.state.sources import Sources

Key = tuple[str, str, str]  # (family, collection, record id)
Chunks = Iterator[dict]  # a collection's fixture records, thawed a chunk at a time, by id


class FixtureError(ValueError):
    """A fixture, scenario or state file that cannot be served; the message names file, record and field."""


class ChangeInvalid(ValueError):
    """A logged change that does not fit the state it is replayed on."""


@dataclass(frozen=True)
class Collection:
    """One mapping of a family's state: record id -> record.

    `id_field` is the record's field that holds its id; an index (id -> a set of ids, derived from the
    records, kept beside them so commands read it in one step) has none: it is never logged or saved, only
    rebuilt by `Section.put` and copied on write in a shared store.
    """

    name: str  # unique within its family, e.g. "demo/customers"
    id_field: str | None


class Section(ABC):
    """A family's part of the state. Subclasses set `name` and `schema` and implement the abstract methods: a
    family that leaves one out cannot be made, so it fails where it is declared, not on the request that needs it."""

    name: str = ""  # the family's name: its section of the fixture file, its place in Config and State
    schema: dict = {}  # the section's structure in the fixture file (JSON Schema): checked before `check`
    required: bool = True  # whether the fixture file must have the section
    record_schemas: tuple[str, ...] = ()  # the spec's component schemas `check` reads (they key the fixture cache)

    # ---------------------------------------------------------------- the fixture file

    @abstractmethod
    def check(self, data: dict, source: str, schemas: dict[str, dict]) -> None:
        """Raise FixtureError for the first record or field that breaks a rule (the structure already holds)."""

    @abstractmethod
    def head(self, data: dict) -> dict:
        """The section without its records: what `config` reads, kept in the fixture cache."""

    @abstractmethod
    def config(self, head: dict) -> Any:
        """The family's fixed configuration (shared by every session, never changed)."""

    @abstractmethod
    def records(self, data: dict) -> list[tuple[Collection, list[dict]]]:
        """The fixture records of each record collection (indexes are built by `build`)."""

    def highest_id(self, data: dict) -> int:
        """The highest numeric id the section's records use, so that new ids are drawn above it."""
        return 0

    # ---------------------------------------------------------------- the state

    @abstractmethod
    def collections(self, state: Any) -> list[Collection]:
        """Every collection of the family's state, indexes included."""

    @abstractmethod
    def build(self, config: Any, records: dict[str, Chunks], sources: Sources) -> Any:
        """A fresh state from the fixture records (`records[name]` yields a collection's records a chunk at a
        time: a background build lets requests run between two chunks)."""

    @abstractmethod
    def mappings(self, state: Any) -> dict[str, MutableMapping]:
        """Every collection of `state` by name, indexes included: the very mappings commands change."""

    def mapping(self, state: Any, collection: str) -> MutableMapping:
        """One collection of `state` (ChangeInvalid when it has none: a change of another configuration)."""
        found = self.mappings(state).get(collection)
        if found is None:
            raise ChangeInvalid(f"{self.name} has no collection {collection!r} in the fixtures' configuration")
        return found

    @abstractmethod
    def over(self, state: Any, mappings: dict[str, MutableMapping], sources: Sources) -> Any:
        """A state like `state` whose collections are `mappings` (a shared store's view, a scratch copy)."""

    def put(self, state: Any, collection: str, record_id: str, record: dict | None) -> None:
        """Set one record (None: remove it), keeping the indexes built from it: how a logged change replays
        and a scenario's patch is made."""
        put_record(self.mapping(state, collection), self.collection(state, collection), record_id, record)

    def collection(self, state: Any, name: str) -> Collection:
        """The record collection `name` of `state` (ChangeInvalid when it has none: a change of another configuration)."""
        found = next((c for c in self.collections(state) if c.name == name), None)
        if found is None or found.id_field is None:
            raise ChangeInvalid(f"{self.name} has no record collection {name!r} in the fixtures' configuration")
        return found

    # ---------------------------------------------------------------- what the generic layers show and save

    @abstractmethod
    def snapshot(self, state: Any) -> dict:
        """The section as fixture data: what `records`, `head` and `config` read back to the same state."""

    @abstractmethod
    def view(self, state: Any, limit: int) -> tuple[Any, bool]:
        """The admin state view of the family (at most `limit` records a collection), and whether it was cut."""

    # ---------------------------------------------------------------- scenarios

    scenario_schema: dict = {"type": "object"}  # the family's part of a scenario file's `state`

    @abstractmethod
    def patches(self, data: Any, state: Any, at: str) -> list[tuple[str, str, dict, str]]:
        """A scenario's changes as (collection, record id, fields to set, where in the file); FixtureError when
        one names no record."""

    def patched_problem(self, state: Any, collection: str, record_id: str, schemas: dict[str, dict]) -> str:
        """What is wrong with a record once a scenario patched it ('' when nothing)."""
        return ""


def put_record(records: MutableMapping, collection: Collection, record_id: Any, record: Any) -> None:
    """Set or remove one record of a collection, checking that it is a record with that id."""
    if record is None:
        records.pop(record_id, None)
    elif isinstance(record, dict) and collection.id_field and record.get(collection.id_field) == record_id:
        records[record_id] = record
    else:
        raise ChangeInvalid(f"record {record_id!r} is not a record with {collection.id_field} {record_id!r}")

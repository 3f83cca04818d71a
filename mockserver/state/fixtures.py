"""Loading and checking fixture files, and building fresh state from them.

A fixture file has one section a family (mockserver/state/section.py): each
section is checked by its family against the spec's own schemas, so the mock
can never serve a fixture the contract rejects. A bad file stops the start
with a message naming the file, the record and the field.

Large files (a million customers) load in seconds: a file that is JSON is
parsed as JSON (JSON is YAML, and the json module is about 50 times faster
than PyYAML); a family checks every rule at C speed over all records at once
first, and walks record by record only a file that breaks one, to name the
first bad record; a file already checked is read back from the fixture cache
(fixture_cache.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import jsonschema_rs
import yaml

from mockserver.state import fixture_cache, frozen
from mockserver.state.background import Spare, collector_paused, pause
from mockserver.state.model import Config, State
from mockserver.state.section import FixtureError, Section
from mockserver.state.sources import Sources

__all__ = ["FixtureError", "Fixtures", "where"]

# libyaml's C parser when PyYAML was built with it: about ten times faster on large files.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_STARTS_AS_JSON_OBJECT = re.compile(r"\s*\{")
# From this many records a fresh state is kept ready in the background (a reset then only swaps);
# below it, building one takes a few milliseconds and a spare would only cost memory.
SPARE_MIN_RECORDS = 10_000
FIRST_ID = 10_000  # new numeric ids start here at least
_DEFAULT_CACHE = object()


def file_schema(sections: Sequence[Section]) -> dict:
    """The fixture file's structure: one section a family, each as its family declares it."""
    return {
        "type": "object",
        "additionalProperties": False,
        "required": [section.name for section in sections if section.required],
        "properties": {section.name: section.schema for section in sections},
    }


class Fixtures:
    """A checked fixture file: its fixed `config`, and `build()` for a fresh, independent state.

    The records are kept frozen (frozen.py): one compact copy for every reset, so a large fixture costs
    its live state plus a few bytes a record. With many records, one fresh state is also kept ready,
    made in the background (background.Spare): `build()` hands it over at once.
    """

    def __init__(self, data: Any, source: str, schemas: dict[str, dict], sections: Sequence[Section]):
        _check(data, source, schemas, sections)
        data = {section.name: data.get(section.name, {}) for section in sections}  # an optional section left out: empty
        heads = {section.name: section.head(data[section.name]) for section in sections}
        records = {section.name: section.records(data[section.name]) for section in sections}
        frozen_records = {
            family: {collection.name: frozen.freeze(found, collection.id_field or "") for collection, found in listed if found}
            for family, listed in records.items()
        }
        count = sum(len(found) for listed in records.values() for _, found in listed)
        first_id = max([FIRST_ID - 1, *(section.highest_id(data[section.name]) for section in sections)]) + 1
        self._assemble(source, sections, heads, first_id, frozen_records, count)

    def _assemble(
        self,
        source: str,
        sections: Sequence[Section],
        heads: dict[str, dict],
        first_id: int,
        records: dict[str, dict[str, frozen.Chunks]],
        count: int,
    ) -> None:
        """Set every field from checked parts (a checked file's, or a cache entry's)."""
        self.source = source
        self.sections = list(sections)
        self._heads = heads
        self.config = Config({section.name: section.config(heads[section.name]) for section in sections})
        self._first_id = first_id
        self._records = records  # family -> collection -> its frozen records
        self._count = count
        self._spare: Spare[State] | None = Spare(self._fresh) if count >= SPARE_MIN_RECORDS else None

    @classmethod
    def load(cls, path: Path, schemas: dict[str, dict], sections: Sequence[Section], cache: Any = _DEFAULT_CACHE) -> Fixtures:
        """`schemas` are the spec's resolved component schemas; `cache` a folder, None for none, else the default."""
        raw = _read(path)
        folder = fixture_cache.folder() if cache is _DEFAULT_CACHE else cache
        if len(raw) < fixture_cache.MIN_BYTES:
            folder = None
        key = fixture_cache.key(raw, schemas, sections) if folder is not None else b""
        entry = fixture_cache.read(folder, path, key)
        if entry is not None:
            return cls._cached(entry, str(path), sections)
        fixtures = cls(_parse(raw, path), str(path), schemas, sections)
        if folder is not None and fixtures._cacheable():
            fixture_cache.write(folder, path, key, fixtures._entry())
        return fixtures

    @classmethod
    def _cached(cls, entry: dict[str, Any], source: str, sections: Sequence[Section]) -> Fixtures:
        fixtures = cls.__new__(cls)
        fixtures._assemble(source, sections, entry["heads"], entry["first_id"], entry["records"], entry["count"])
        return fixtures

    def _entry(self) -> dict[str, Any]:
        return {"heads": self._heads, "first_id": self._first_id, "records": self._records, "count": self._count}

    def _cacheable(self) -> bool:
        return all(frozen.only_marshal(chunks) for collections in self._records.values() for chunks in collections.values())

    def without_spare(self) -> Fixtures:
        """Keep no state ready in advance (a shared store resets in Redis, and would never take it)."""
        self._spare = None
        return self

    def build(self, config: Config | None = None, seed: int | str | None = None) -> State:
        """A fresh state of these records under `config` (this file's own unless given; it must be equal)."""
        if self._spare is not None and (config is None or config is self.config) and seed is None:
            return self._spare.take()
        return self._fresh(config, seed)

    def _fresh(self, config: Config | None = None, seed: int | str | None = None) -> State:
        """Made a chunk of records at a time, so a background build lets requests run in between."""
        config = config or self.config
        sources = Sources(self._first_id, seed)
        families = {}
        for section in self.sections:
            chunks = {name: _thawed(found) for name, found in self._records[section.name].items()}
            families[section.name] = section.build(config[section.name], chunks, sources)
        return State(families, sources, {section.name: section for section in self.sections})


def _thawed(chunks: frozen.Chunks) -> Iterator[dict]:
    """Fresh records a chunk at a time, pausing between two for the requests of a background build."""
    for chunk in frozen.thaw(chunks):
        yield chunk
        pause()


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise FixtureError(f"{path}: cannot read the fixture file: {exc.strerror}") from exc


def _parse(raw: bytes, path: Path) -> Any:
    """The file's data. JSON is YAML: a `.json` file, or one that opens with `{`, is read by the json module.

    A file opening with `{` that is not JSON may still be YAML flow style: YAML decides then. The json
    module reads a few corners of JSON as JSON defines them where PyYAML's YAML 1.1 differs (`1e5` is a
    number, not a string); NaN and Infinity, which are not JSON, are refused.
    """
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FixtureError(f"{path}: cannot read the fixture file: not UTF-8 ({exc})") from exc
    is_json = path.suffix.lower() == ".json"
    if is_json or _STARTS_AS_JSON_OBJECT.match(text):
        try:
            with collector_paused():
                return json.loads(text, parse_constant=_not_json)
        except ValueError as exc:
            if is_json:
                raise FixtureError(f"{path}: not valid JSON: {exc}") from exc
    try:
        with collector_paused():
            return yaml.load(text, Loader=_YAML_LOADER)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        raise FixtureError(f"{path}: not valid YAML: {exc}") from exc


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


# ---------------------------------------------------------------- checking


def _check(data: Any, source: str, schemas: dict[str, dict], sections: Sequence[Section]) -> None:
    if not isinstance(data, dict):
        names = " and ".join(f"'{section.name}'" for section in sections if section.required)
        raise FixtureError(f"{source}: the file must be a mapping with {names} sections")
    error = next(iter(jsonschema_rs.Draft202012Validator(file_schema(sections)).iter_errors(data)), None)
    if error is not None:
        raise FixtureError(f"{source}: {where(error.instance_path) or 'top level'}: {error.message}")
    for section in sections:
        if section.name in data:
            section.check(data[section.name], source, schemas)


def where(path: Any) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text

"""Checked fixture files remembered between starts, as Python remembers compiled modules in .pyc files.

Parsing a large YAML file is most of a start (PyYAML builds Python objects
at about 40k records a second). Once a file has been parsed and passed every
check, its records are stored here, in the compact chunks `Fixtures` keeps
anyway; the next start with the same file reads them back and skips both.

An entry is only used when its key matches: a hash of the file's exact
bytes, of the spec's schemas and the code that checked it (the source of
every module of the package: no list of the checkers to keep up to date),
and of this Python's version (the chunks are in marshal format). A changed
file, spec or checker therefore never gets a stale answer; the entry is
rewritten instead. Entries are written atomically (a temporary file, then a
rename) and carry a digest of their content, so a torn or damaged one is
ignored, never trusted. The folder is safe to delete at any time. Entries
are marshal data, which cannot run code when read; a fixture whose records
need pickle is not cached.

Small files (under `MIN_BYTES`) are not cached: they load in milliseconds.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import logging
import marshal
import os
import sys
import tempfile
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mockserver.state.section import Section

log = logging.getLogger("mockserver")
FORMAT = b"mockserver-fixture-cache-1\n"
MIN_BYTES = 1_000_000
KEEP = 4  # entries kept (one a fixture path); the oldest go first
SUFFIX = ".fixture"
PACKAGE = Path(__file__).resolve().parent.parent  # mockserver: the code that checks a fixture file is in it


def folder(choice: str = "auto") -> Path | None:
    """Where entries go (`serve --fixture-cache`): "auto" the user's cache folder, "off" nowhere, else that folder."""
    if choice.strip().lower() in ("", "off", "0", "no", "false"):
        return None
    if choice != "auto":
        return Path(choice)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mockserver" / "fixtures"


def key(raw: bytes, schemas: dict[str, dict], sections: Sequence[Section]) -> bytes:
    """What the entry must have been made from: these bytes, checked by this code against these schemas."""
    digest = hashlib.sha256(FORMAT)
    digest.update(sys.version.encode())
    for package in ("jsonschema-rs", "jsonschema"):
        digest.update(_version(package).encode())
    digest.update(_source_digest(PACKAGE))
    digest.update(json.dumps(schemas, sort_keys=True, default=str).encode())  # all of them: under a millisecond
    for section in sections:  # each family's checks, wherever its package is (a plug-in's own, outside this one)
        digest.update(Path(inspect.getfile(type(section))).read_bytes())
        digest.update(json.dumps(section.schema, sort_keys=True).encode())
    digest.update(raw)
    return digest.digest()


@functools.cache
def _source_digest(package: Path) -> bytes:
    """A hash of the source of every module of `package`, their paths with it: whichever module a check runs (the
    fixture walk, the families' domain rules, the compiled schema checks), a change to it is a new key. Read once
    a process (about 2 ms), as the code that runs is the one imported at start, whatever is edited after."""
    digest = hashlib.sha256()
    for name, path in sorted((path.relative_to(package).as_posix(), path) for path in package.rglob("*.py")):
        source = path.read_bytes()
        digest.update(f"{name}\0{len(source)}\0".encode())
        digest.update(source)
    return digest.digest()


def read(where: Path | None, source: Path, wanted: bytes) -> dict[str, Any] | None:
    """The entry stored for `source` if it was made under the key `wanted`; None otherwise (and on any doubt)."""
    if where is None:
        return None
    path = _entry(where, source)
    try:
        with open(path, "rb") as handle:
            if handle.read(len(FORMAT) + len(wanted)) != FORMAT + wanted:
                return None
            digest = handle.read(32)
            payload = handle.read()
        if hashlib.sha256(payload).digest() != digest:
            log.warning("ignored the damaged fixture cache entry %s", path)
            return None
        entry = marshal.loads(payload)
        os.utime(path)  # used now: kept by the next prune
    except FileNotFoundError:
        return None
    except (OSError, ValueError, EOFError, TypeError) as exc:
        log.warning("ignored the unreadable fixture cache entry %s: %s", path, exc)
        return None
    return entry if isinstance(entry, dict) else None


def write(where: Path | None, source: Path, made_from: bytes, entry: dict[str, Any]) -> None:
    """Store `entry` for `source` under the key `made_from`; a cache that cannot be written is only logged."""
    if where is None:
        return
    try:
        payload = marshal.dumps(entry)
        where.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=where)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(FORMAT + made_from + hashlib.sha256(payload).digest())
                handle.write(payload)
            os.replace(temporary, _entry(where, source))
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        _prune(where)
    except (OSError, ValueError) as exc:
        log.warning("could not write the fixture cache in %s (%s); the next start parses %s again", where, exc, source)


def _entry(where: Path, source: Path) -> Path:
    """One entry a fixture path: a changed file replaces its own entry rather than adding one."""
    return where / (hashlib.sha256(str(source.resolve()).encode()).hexdigest()[:24] + SUFFIX)


def _prune(where: Path) -> None:
    """Keep the `KEEP` entries used last (a hit touches its entry); a benchmark's temporary files come and go."""
    entries = sorted(where.glob("*" + SUFFIX), key=_used, reverse=True)
    for stale in entries[KEEP:]:
        stale.unlink(missing_ok=True)


def _used(entry: Path) -> float:
    try:
        return entry.stat().st_mtime
    except OSError:  # removed meanwhile by another server pruning the same folder
        return 0.0


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "?"

"""The state file's snapshot (mockserver/state/persistence.py keeps it): its format, read back checked, written whole.

The snapshot is the fixture format wrapped in a marker, so restoring one goes
through the same checks as loading fixtures. It names the first command log
it does not contain (`log_generation`) and the next free id. A file that
cannot be read, is not JSON, or is not a mockserver file is an error, never
ignored. It is written to a temporary file that is then renamed over it, so
a crash leaves the old snapshot or the new one, and at worst a temporary
file, removed at the next start.
"""

from __future__ import annotations

import glob
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mockserver.state import codec
from mockserver.state.fixtures import FixtureError, Fixtures
from mockserver.state.model import State
from mockserver.state.section import Section

log = logging.getLogger("mockserver")
MARKER = "mockserver_state"
VERSION = 1


class StateFileError(FixtureError):
    """The state file or its log exists but cannot be restored."""


@dataclass(frozen=True)
class Saved:
    """A snapshot read back: its records as checked fixtures, the first log after it, the next free id."""

    fixtures: Fixtures
    log_generation: int
    next_id: int


def snapshot(state: State) -> dict[str, Any]:
    """The state as fixture-format data (what `Fixtures` loads back): each family's section."""
    return {name: section.snapshot(state[name]) for name, section in state.sections.items()}


def document(state: State, log_generation: int) -> bytes:
    """The snapshot file's content: marker, the first log it does not contain, next free id, then the state."""
    header = {MARKER: VERSION, "saved_at": datetime.now(UTC).isoformat(), "log_generation": log_generation}
    header["next_id"] = state.sources.ids.peek()
    return codec.text(header)[:-1] + b',"state":' + codec.text(snapshot(state)) + b"}"


def read(path: Path, schemas: dict[str, dict], sections: Sequence[Section]) -> Saved | None:
    """The saved snapshot, checked, or None if there is no file yet."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateFileError(f"{path}: cannot read the state file: {exc}") from exc
    try:
        saved = codec.loads(data)
    except ValueError as exc:
        raise StateFileError(f"{path}: the state file is corrupt (not JSON: {exc}); move it away to start from the fixtures") from exc
    if not isinstance(saved, dict) or saved.get(MARKER) != VERSION or not isinstance(saved.get("state"), dict):
        raise StateFileError(f"{path}: not a mockserver state file (version {VERSION}); refusing to overwrite or use it")
    generation, next_id = saved.get("log_generation", 0), saved.get("next_id", 0)
    if not isinstance(generation, int) or not isinstance(next_id, int):
        raise StateFileError(f"{path}: log_generation and next_id must be integers")
    try:
        return Saved(Fixtures(saved["state"], f"{path} (state file)", schemas, sections), generation, next_id)
    except FixtureError as exc:
        raise StateFileError(str(exc)) from exc


def remove_leftovers(path: Path) -> list[Path]:
    """Remove the temporary files a save interrupted by a crash (kill -9) left next to `path`; the file itself
    is whole (saves are atomic renames), so they hold nothing worth keeping. Run at start, before any save."""
    folder = path.parent if str(path.parent) else Path(".")
    removed = []
    for leftover in folder.glob(f".{glob.escape(path.name)}.*.tmp"):
        leftover.unlink(missing_ok=True)
        log.warning("removed %s, left by a save that did not finish", leftover)
        removed.append(leftover)
    return removed


def atomic_write(path: Path, content: bytes) -> None:
    folder = path.parent if str(path.parent) else Path(".")
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        sync_folder(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def sync_folder(path: Path) -> None:
    """Make a file's creation or rename in its folder durable (POSIX needs the folder itself synced)."""
    if sys.platform == "win32":
        return
    descriptor = os.open(path.parent if str(path.parent) else ".", os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)

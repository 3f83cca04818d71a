"""Keeping state across restarts (`serve --state-file PATH`).

A state file is the fixture format wrapped in a marker: restoring one goes
through the same checks as loading fixtures, so a hand-edited or damaged file
is refused with the same precise messages. Writes are atomic (a temporary
file in the same folder, fsync, rename), so a crash mid-write leaves the
previous file intact. A missing file means a first start (fixtures are used);
a file that cannot be read, is not JSON, or is not a mockserver state file
stops the start with a clear error: it is never silently ignored.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mockserver.state.fixtures import FixtureError, Fixtures
from mockserver.state.model import State
from mockserver.state.store import MemoryStore

log = logging.getLogger("mockserver")
MARKER = "mockserver_state"
VERSION = 1


class StateFileError(FixtureError):
    """The state file exists but cannot be restored."""


def snapshot(state: State) -> dict[str, Any]:
    """The state as fixture-format data (what `Fixtures` loads back)."""
    egain = state.egain
    return {
        "relay": {
            "clients": [
                {
                    "client_id": book.client.client_id,
                    "api_keys": sorted(book.client.api_keys),
                    "product_groups": sorted(book.client.product_groups),
                    "customers": list(book.customers.values()),
                }
                for book in state.relay.books.values()
            ]
        },
        "egain": {
            "departmentalization": egain.config.departmentalization,
            "actors": [
                {"token": token, "name": actor.name, "kind": actor.kind, "permissions": sorted(actor.permissions)}
                for token, actor in egain.config.actors.items()
            ],
            "customers": list(egain.customers.values()),
        },
    }


def _serialized(state: State) -> str:
    return json.dumps(snapshot(state), ensure_ascii=False, sort_keys=True)


def read(path: Path, schemas: dict[str, dict]) -> Fixtures | None:
    """The saved state as checked fixtures, or None if there is no file yet."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise StateFileError(f"{path}: cannot read the state file: {exc}") from exc
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise StateFileError(f"{path}: the state file is corrupt (not JSON: {exc}); move it away to start from the fixtures") from exc
    if not isinstance(document, dict) or document.get(MARKER) != VERSION or not isinstance(document.get("state"), dict):
        raise StateFileError(f"{path}: not a mockserver state file (version {VERSION}); refusing to overwrite or use it")
    try:
        return Fixtures(document["state"], f"{path} (state file)", schemas)
    except FixtureError as exc:
        raise StateFileError(str(exc)) from exc


class StateFile:
    """Saves a store's state to one file: on demand, periodically when it changed, and at exit."""

    def __init__(self, path: Path, store: MemoryStore):
        self.path = path
        self.store = store
        self._last_digest: str | None = None
        self._lock = threading.Lock()

    def save(self) -> bool:
        """Write the state if it changed since the last save; True when written.

        The state is serialized once, inside the store's lock (commands change records in place), and the
        change check hashes that same text: what is written is exactly what was compared.
        """
        with self._lock:
            state_json = self.store.run(_serialized)
            digest = hashlib.sha256(state_json.encode()).hexdigest()
            if digest == self._last_digest:
                return False
            header = json.dumps({MARKER: VERSION, "saved_at": datetime.now(UTC).isoformat()})
            _atomic_write(self.path, header[:-1] + ', "state": ' + state_json + "}")
            self._last_digest = digest
            return True

    def start_autosave(self, interval: float) -> threading.Event:
        """Save every `interval` seconds in a daemon thread; set the returned event to stop it."""
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(interval):
                try:
                    self.save()
                except OSError as exc:
                    log.error("could not save the state file %s: %s", self.path, exc)

        threading.Thread(target=loop, name="mockserver-autosave", daemon=True).start()
        return stop


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


def _atomic_write(path: Path, text: str) -> None:
    folder = path.parent if str(path.parent) else Path(".")
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise

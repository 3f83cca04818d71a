"""`serve --reload`: the fixtures file and the scenarios folder are watched, and a change applied.

A changed fixture file is checked as at start; when good, it becomes the
fixtures: the configuration (keys, groups, actors) is swapped, the default
session starts again from it, and test sessions are dropped (they are built
again, from it, on their next request). A changed scenario is checked
against the fixtures and replaces the old. A broken file changes nothing:
the last good state is kept and the log says why.

The watching runs in a thread (watchfiles); the swap itself is handed to
`apply_via`, the event loop's `call_soon_threadsafe` under granian, so it
happens between two requests and none sees half of it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mockserver.qa.scenarios import Scenarios
from mockserver.state import fixture_cache
from mockserver.state.fixtures import FixtureError, Fixtures

if TYPE_CHECKING:
    from mockserver.mock import Mock

log = logging.getLogger("mockserver")
DEBOUNCE_MS = 300  # editors write a file in several steps


class Reloader:
    def __init__(self, mock: Mock, apply_via: Callable[[Callable[[], None]], Any] | None = None):
        self.mock = mock
        self.settings = mock.settings
        self.apply_via = apply_via or (lambda change: change())
        self.fixtures_path = Path(self.settings.fixtures).resolve()
        self.scenarios_path = Path(self.settings.scenarios).resolve() if self.settings.scenarios else None

    def watched(self) -> list[Path]:
        """The fixture file's folder (editors replace files, which a watch on the file itself would lose) and the scenarios."""
        paths = [self.fixtures_path.parent]
        if self.scenarios_path is not None and self.scenarios_path != self.fixtures_path.parent:
            paths.append(self.scenarios_path)
        return paths

    def start(self) -> threading.Event:
        """Watch in a daemon thread; set the returned event to stop it."""
        stop = threading.Event()
        threading.Thread(target=self._watch, args=(stop,), name="mockserver-reload", daemon=True).start()
        log.info("reloading on changes to %s", ", ".join(str(p) for p in self.watched()))
        return stop

    def _watch(self, stop: threading.Event) -> None:
        import watchfiles

        for changes in watchfiles.watch(*self.watched(), stop_event=stop, debounce=DEBOUNCE_MS, raise_interrupt=False):
            self.changed({Path(path).resolve() for _, path in changes})

    def changed(self, paths: set[Path]) -> None:
        """Check what changed and, when good, apply it; a broken file leaves everything as it was."""
        fixtures_changed = self.fixtures_path in paths
        scenarios_changed = self.scenarios_path is not None and any(p.suffix == ".yaml" and p.parent == self.scenarios_path for p in paths)
        if not (fixtures_changed or scenarios_changed):
            return
        mock = self.mock
        schemas = mock.contract.schemas
        try:
            cache = fixture_cache.folder(self.settings.fixture_cache)
            current = mock.fixtures
            fixtures = Fixtures.load(self.fixtures_path, schemas, current.sections, cache=cache) if fixtures_changed else current
            scenarios = Scenarios.load(self.scenarios_path, mock.toolkit.vendor_operations, schemas, fixtures.build)
        except FixtureError as exc:
            log.error("not reloaded, the last good state is kept: %s", exc)
            return
        self.apply_via(lambda: self._swap(fixtures if fixtures_changed else None, scenarios))

    def _swap(self, fixtures: Fixtures | None, scenarios: Scenarios) -> None:
        self.mock.reload(fixtures, scenarios)
        if fixtures is None:
            log.info("scenarios reloaded from %s", self.scenarios_path)
            return
        log.info("fixtures reloaded from %s: the default session starts again from them, test sessions were dropped", self.fixtures_path)

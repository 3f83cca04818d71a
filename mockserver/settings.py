"""Everything `create_app` needs to know, in one value (no globals, no environment reads).

A field that `mockserver serve` sets says so in its metadata (`Option`: its help, its section of the help text,
its bounds); mockserver/cli.py makes the option from that, `--field-name` with its MOCKSERVER_FIELD_NAME twin,
so each option is declared once, here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mockserver.families import BUILT_IN
from mockserver.resources import admin_spec_path, default_fixtures_path, default_scenarios_path, spec_path

OPTION = "option"  # the metadata key of a field `mockserver serve` has an option for
# The sections of `mockserver serve --help`, in order.
SERVING = "Serving"
DATA = "Fixtures, scenarios and checks"
QA = "QA toolkit"
STATE = "State"
BROWSERS = "Browsers"
LOGGING = "Logging"
GROUPS = (SERVING, DATA, QA, STATE, BROWSERS, LOGGING)


@dataclass(frozen=True)
class Option:
    """How a field of Settings is an option of `mockserver serve`."""

    help: str | None
    group: str  # its section of the help text (GROUPS)
    # A switch that clears a field on by default (--no-cors clears `cors`); else the option is --field-name.
    off_switch: str | None = None
    bounds: tuple[float | None, float | None] | None = None  # a number's least and greatest value (None: unbounded)
    choices: Callable[[], Sequence[str]] | None = None  # the values it takes, asked for when the option is made
    folder: bool = False  # a path to a folder, not to a file
    # Shown in the help text as the option's default; else not given, the field keeps a default the help names.
    default_shown: bool = True


def _option(default: Any, help: str | None, group: str, **how: Any) -> Any:
    """A field with its `mockserver serve` option."""
    return field(default=default, metadata={OPTION: Option(help, group, **how)})


def _servers() -> Sequence[str]:
    from mockserver.http.serving import SERVERS  # asked for by the command line only, which imports both anyway

    return SERVERS


def _fsync_modes() -> Sequence[str]:
    from mockserver.state.persistence import FSYNC_MODES

    return FSYNC_MODES


@dataclass(frozen=True)
class Settings:
    # The API families served (mockserver/families.py): the built-in ones unless given, as `module:ATTRIBUTE`.
    families: tuple[str, ...] = BUILT_IN
    fixtures: Path = _option(default_fixtures_path(), "Fixture file to load (default: the bundled demo data).", DATA, default_shown=False)
    spec: Path = spec_path()
    admin_spec: Path = admin_spec_path()
    # Scenario files (`*.yaml`), and the one to apply to the default session at start.
    scenarios: Path | None = _option(
        default_scenarios_path(), "Folder of scenario files (*.yaml) (default: the bundled ones).", DATA, folder=True, default_shown=False
    )
    scenario: str | None = _option(
        None, "Start the default session in this scenario (see GET /__admin/scenarios): relay-outage, slow-network, ...", DATA
    )
    reload: bool = _option(
        False, "Watch the fixtures file and the scenarios folder; apply changes (a broken file keeps the last good state).", DATA
    )
    journal_size: int = _option(1000, "Journal entries kept per session, oldest dropped first (0: no journal).", QA, bounds=(0, 1_000_000))
    session_idle: float = _option(
        600.0, "Seconds a test session (X-Mock-Session) may stay idle before it expires.", QA, bounds=(1, 86400 * 7)
    )
    max_sessions: int = _option(256, "Live test sessions at most; past it a new session id is refused (400).", QA, bounds=(1, 100_000))
    # Check every answer against the spec before it leaves (a mismatch is a logged 500).
    check_responses: bool = _option(
        True, "Skip checking each answer against the spec (faster, less safe).", DATA, off_switch="--no-check-responses"
    )
    # Raise on a mismatch instead of answering 500: tests use it so a mismatch fails the test.
    strict_responses: bool = False
    # Bodies larger than this are refused unread with the API's documented 400.
    max_body_bytes: int = 1024 * 1024
    fixture_cache: str = _option(
        "auto",
        "Where checked fixture files of 1 MB or more are cached for a fast next start: auto (the user's cache folder), off, or a folder.",
        DATA,
    )
    store: str = _option(
        "memory",
        "Where the state lives: memory (this process), or redis://HOST:PORT/DB, shared by every mockserver pointing at it.",
        STATE,
    )
    namespace: str = _option("mockserver", "Prefix of the Redis keys, so deployments can share one Redis.", STATE)
    # Restore state from this file at start (if it exists); `serve` saves to it.
    state_file: Path | None = _option(
        None,
        "Keep the default session's state in this file (a snapshot) and PATH.log.N (every answered change); restore both at start.",
        STATE,
    )
    # When set, /__admin requires `Authorization: Bearer <admin_token>`.
    admin_token: str | None = _option(None, "Require 'Authorization: Bearer TOKEN' on /__admin (required off loopback).", QA)
    # Credentials masked (mockserver/http/access.py).
    access_log: bool = _option(False, "Log one line per request: method, path, status, duration, operationId, session.", LOGGING)
    # CORS on every answer (mockserver/http/cors.py): any origin, or those listed (comma-separated).
    cors: bool = _option(True, "Send no CORS headers; preflights get the API's 405.", BROWSERS, off_switch="--no-cors")
    cors_origins: str | None = _option(None, "Origins allowed to call from a browser, comma-separated (default: any).", BROWSERS)

    # Serving (`mockserver serve`); see mockserver/http/serving.py.
    # One of the processes of `serve --workers N` (mockserver/http/workers.py): its port is shared, not claimed.
    worker: bool = False
    host: str = _option("127.0.0.1", "Address to bind; loopback unless you mean to share it.", SERVING)
    port: int = _option(8080, None, SERVING, bounds=(0, 65535))
    # Not given to `serve`: granian if it is installed (mockserver/http/serving.py: available_server).
    server: str = _option(
        "granian",
        "granian (an event loop: waiting holds no thread) if installed, else waitress (WSGI, a thread per request).",
        SERVING,
        choices=_servers,
        default_shown=False,
    )
    threads: int = _option(8, "waitress's request threads (granian needs none: it waits on an event loop).", SERVING, bounds=(1, 1024))
    save_interval: float = _option(
        30.0,
        "Seconds between checks whether the state file's command log is due to be compacted into its snapshot.",
        STATE,
        bounds=(0.1, None),
    )
    fsync: str = _option(
        "everysec",
        "When the state file's command log is flushed to disk: before each answer, once a second, or when the OS likes."
        " A killed server loses no answered change at any setting; this bounds what a machine crash loses.",
        STATE,
        choices=_fsync_modes,
    )
    head_timeout: float = _option(
        30.0,
        "Seconds for a request head to arrive, and for an idle keep-alive connection to stay open (granian).",
        SERVING,
        bounds=(0.1, 3600),
    )
    body_timeout: float = _option(
        30.0, "Seconds for a request body to arrive; then 408 and the connection is closed (granian).", SERVING, bounds=(0.1, 3600)
    )
    max_connections: int = _option(
        8192, "Connections served at once; more wait in the listen backlog until one closes (granian).", SERVING, bounds=(16, 1_000_000)
    )
    max_waits: int = _option(
        2000, "Requests waiting at once (delays, long polls); past it, the API's 500 saying so (granian).", SERVING, bounds=(1, 1_000_000)
    )

"""Everything `create_app` needs to know, in one value (no globals, no environment reads)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mockserver.families import BUILT_IN
from mockserver.resources import admin_spec_path, default_fixtures_path, default_scenarios_path, spec_path


@dataclass(frozen=True)
class Settings:
    # The API families served (mockserver/families.py): the built-in ones unless given, as `module:ATTRIBUTE`.
    families: tuple[str, ...] = BUILT_IN
    fixtures: Path = default_fixtures_path()
    spec: Path = spec_path()
    admin_spec: Path = admin_spec_path()
    # Scenario files (`*.yaml`), and the one to apply to the default session at start.
    scenarios: Path | None = default_scenarios_path()
    scenario: str | None = None
    # Watch the fixtures file and the scenarios folder, and apply changes (`serve --reload`).
    reload: bool = False
    # QA toolkit: journal entries kept per session, idle seconds before a session expires, live sessions at most.
    journal_size: int = 1000
    session_idle: float = 600.0
    max_sessions: int = 256
    # Check every answer against the spec before it leaves (a mismatch is a logged 500).
    check_responses: bool = True
    # Raise on a mismatch instead of answering 500: tests use it so a mismatch fails the test.
    strict_responses: bool = False
    # Bodies larger than this are refused unread with the API's documented 400.
    max_body_bytes: int = 1024 * 1024
    # Checked fixture files of 1 MB or more are cached here: "auto" (the user's cache folder), "off", or a folder.
    fixture_cache: str = "auto"
    # Where sessions' state lives: "memory" (this process), or "redis://HOST:PORT/DB", shared by every process using it.
    store: str = "memory"
    # Redis key prefix, so deployments can share one Redis.
    namespace: str = "mockserver"
    # Restore state from this file at start (if it exists); `serve` saves to it.
    state_file: Path | None = None
    # When set, /__admin requires `Authorization: Bearer <admin_token>`.
    admin_token: str | None = None
    # Log one line per request (credentials masked).
    access_log: bool = False
    # CORS on every answer (mockserver/http/cors.py): any origin, or those listed (comma-separated).
    cors: bool = True
    cors_origins: str | None = None

    # Serving (`mockserver serve`); see mockserver/http/serving.py.
    # One of the processes of `serve --workers N` (mockserver/http/workers.py): its port is shared, not claimed.
    worker: bool = False
    host: str = "127.0.0.1"
    port: int = 8080
    server: str = "granian"  # or "waitress"
    # waitress's request threads (granian needs none).
    threads: int = 8
    # Seconds between checks whether the state file's command log is due for compaction into its snapshot.
    save_interval: float = 30.0
    # When the command log is flushed to disk: "always" (before each answer), "everysec", or "no" (the OS decides).
    fsync: str = "everysec"
    # A request head (or the next one on an idle keep-alive connection) must arrive within this many seconds.
    head_timeout: float = 30.0
    # A request body must arrive within this many seconds, else 408 and the connection is closed.
    body_timeout: float = 30.0
    # Open connections served at once; more wait in the listen backlog until one closes.
    max_connections: int = 8192
    # Requests waiting at once on the event loop (delays, long polls); past it, the API's documented 500.
    max_waits: int = 2000

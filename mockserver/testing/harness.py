"""What the pytest plugin drives: a `mockserver serve` process, its output, and one test's session.

Standard library only (urllib, subprocess, socket), so the plugin adds no
dependency to the projects that install us; imported by the plugin's
fixtures when first used, never at plugin load.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mockserver.testing.process import ServerError, ServerProcess, free_port

SESSION_HEADER = "X-Mock-Session"
MAX_WAIT_S = 30.0  # the server's own cap on one long poll (timeout_ms <= 30000)
# The mock is on loopback: never ask an HTTP_PROXY from the environment to reach it.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
# A log record as `mockserver serve` writes it: "2026-12-01 10:00:00,123 ERROR mockserver: ...".
_RECORD = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (?P<level>[A-Z]+) ")
_BUG_LEVELS = ("ERROR", "CRITICAL")
# Output that is a bug whatever the logger: an uncaught Python exception, a Rust panic in granian.
_BARE_BUG = re.compile(r"Traceback \(most recent call last\)|panicked at ")


@functools.cache
def demo_headers() -> dict[str, str]:
    """The request headers that carry the bundled fixtures' demo credentials, every built-in family's
    (imported when first asked: the plugin itself loads with pytest, before any test needs them)."""
    from mockserver import families

    return {name: value for family in families.load() for name, value in family.demo_headers.items()}


class MockServerError(RuntimeError):
    """The server did not start, or an admin call did not answer as documented; the message says how."""


class WaitTimeout(AssertionError):
    """`wait_for` gave up: fewer matching requests arrived than asked for (a test failure, not an error)."""


def call(
    url: str, method: str, path: str, body: Any = None, session: str | None = None, timeout: float = 10.0, token: str | None = None
) -> tuple[int, Any]:
    """One admin call: its status and decoded JSON body (None when empty); HTTP errors are answers too.

    The admin token is `token`, else MOCKSERVER_ADMIN_TOKEN (the server reads the same variable)."""
    headers = {"Accept": "application/json"}
    if session:
        headers[SESSION_HEADER] = session
    if token := token or os.environ.get("MOCKSERVER_ADMIN_TOKEN"):
        headers["Authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
    request = urllib.request.Request(url + path, data=data, headers=headers, method=method)
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return response.status, _json(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, _json(error.read())


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode("utf-8", "replace")


class MockServer(ServerProcess):
    """One `mockserver serve` process on a free loopback port; its output goes to `log_path`, read for bugs."""

    def __init__(self, process: subprocess.Popen, port: int, log_path: Path, read_from: int = 0, admin_token: str | None = None):
        super().__init__(process, port, log_path, read_from, name="mockserver serve")
        self.admin_token = admin_token

    @classmethod
    def start(
        cls,
        args: Sequence[str],
        log_path: Path,
        cwd: Path | None = None,
        timeout: float = 30.0,
        attempts: int = 3,
        admin_token: str | None = None,
        poll: float = 0.05,
    ) -> MockServer:
        """Start in `cwd` (relative paths in `args` are read from there) and wait until healthy, polling every `poll` s;
        a port taken between choosing and binding it is retried. With `admin_token`, the server is given it
        (`--admin-token`) and every admin call of this object sends it."""
        for attempt in range(1, attempts + 1):
            port = free_port()
            command = [sys.executable, "-m", "mockserver", "serve", "--host", "127.0.0.1", "--port", str(port), *args]
            command += ["--admin-token", admin_token] if admin_token else []
            server = cls.spawn(command, port, log_path, cwd, admin_token=admin_token)
            try:
                server.wait_ready(server._healthy, timeout, poll)
                return server
            except BaseException as exc:  # Ctrl-C while waiting too: never leave the process behind
                server.stop()
                if isinstance(exc, ServerError):
                    if "cannot serve on" in str(exc) and attempt < attempts:
                        continue
                    raise MockServerError(str(exc)) from None
                raise
        raise AssertionError("unreachable")

    def _healthy(self) -> bool:
        """One health check; a refused or timed-out connection means not yet."""
        return call(self.url, "GET", "/__admin/health", timeout=1, token=self.admin_token) == (200, {"status": "ok"})

    def new_errors(self) -> list[str]:
        """The server's own bugs written since the last call: each ERROR record (with its traceback) or bare traceback."""
        with open(self.log_path, "rb") as log:
            log.seek(self._read_up_to)
            chunk = log.read()
        complete = chunk.rfind(b"\n") + 1  # a line still being written is read next time
        self._read_up_to += complete
        return bug_reports(chunk[:complete].decode("utf-8", "replace").splitlines())

    def session(self, session_id: str) -> MockSession:
        """A session of this server, created now so that even a first request refused before authentication lands in it
        (ended by the `mock_session` fixture; `close()` one made here yourself)."""
        if self.process.poll() is not None:
            raise MockServerError(f"mockserver serve exited with {self.process.returncode} during the run; its output: {self.log_path}")
        session = MockSession(self, session_id)
        session.clear_journal()
        return session


class ServerUrl(str):
    """The base URL of a running server (a plain `str`) that also knows its server: `.server`, `.process`, `.pid`.

    `pid` is the process `mockserver serve` runs in (with `--workers`, the supervisor of its workers).
    """

    server: MockServer

    @property
    def process(self) -> subprocess.Popen:
        return self.server.process

    @property
    def pid(self) -> int:
        return self.server.pid


@contextmanager
def running_server(*args: str, timeout: float = 20.0, log_to: Path | None = None, admin_token: str | None = None) -> Iterator[ServerUrl]:
    """A fresh `mockserver serve` with `args` for the with-block, its output in `log_to` (by default a temporary file);
    yields its base URL, stops it on exit."""
    with tempfile.TemporaryDirectory(prefix="mockserver-") as scratch:
        server = MockServer.start(args, log_to or Path(scratch) / "server.log", timeout=timeout, admin_token=admin_token)
        base = ServerUrl(server.url)
        base.server = server
        try:
            yield base
        finally:
            server.stop()


def bug_reports(lines: Sequence[str]) -> list[str]:
    """Group log lines into reports: an ERROR/CRITICAL record or a bare traceback, with the lines that continue it."""
    reports: list[list[str]] = []
    current: list[str] | None = None
    for line in lines:
        record = _RECORD.match(line)
        if record:
            current = [line] if record["level"] in _BUG_LEVELS else None
            if current is not None:
                reports.append(current)
        elif current is not None:
            current.append(line)
        elif _BARE_BUG.search(line):
            current = [line]
            reports.append(current)
    return ["\n".join(report) for report in reports]


class MockSession:
    """One test's `X-Mock-Session` on a server: its own state, fault rules and journal (the admin API, one method a call)."""

    def __init__(self, server: MockServer, session_id: str):
        self.server = server
        self.id = session_id
        self.url = server.url

    def __repr__(self) -> str:
        return f"<MockSession {self.id} on {self.url}>"

    @property
    def headers(self) -> dict[str, str]:
        """The demo credentials of the built-in families and the session header; a fresh dict each time, so adding
        to it is safe."""
        return {**demo_headers(), SESSION_HEADER: self.id}

    def admin(self, method: str, path: str, body: Any = None, expect: Sequence[int] = (200,), timeout: float = 10.0) -> Any:
        """An admin call in this session; an answer outside `expect` raises `MockServerError` with the server's message."""
        status, answer = call(self.url, method, path, body, self.id, timeout, self.server.admin_token)
        if status not in expect:
            message = answer.get("message", answer) if isinstance(answer, dict) else answer
            raise MockServerError(f"{method} {path} in session {self.id}: {status} {message}")
        return answer

    def reset(self) -> None:
        """The session's state back to the fixtures (its rules and journal stay)."""
        self.admin("POST", "/__admin/reset")

    def requests(self, **filters: Any) -> list[dict]:
        """The journal, newest first (admin calls included, `admin: true`); filters as `GET /__admin/requests`, plus `limit`."""
        query = urllib.parse.urlencode({name: _query_value(value) for name, value in _filters(filters).items()})
        return self.admin("GET", "/__admin/requests" + (f"?{query}" if query else ""))["requests"]

    def count(self, **filters: Any) -> int:
        """How many journaled requests match, e.g. `count(operationId="moveCustomer", status=500)` or `count(invalid=True)`."""
        return self.admin("POST", "/__admin/requests/count", _filters(filters))["count"]

    def wait_for(self, count: int = 1, timeout: float = 10.0, **filters: Any) -> list[dict]:
        """Block until `count` matching requests are journaled (the newest `count`); `WaitTimeout` after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            chunk = max(0.0, min(deadline - time.monotonic(), MAX_WAIT_S))  # the server waits 30 s at most per call
            body = {**_filters(filters), "count": count, "timeout_ms": int(chunk * 1000)}
            answer = self.admin("POST", "/__admin/requests/wait", body, expect=(200, 408), timeout=chunk + 10)
            if "requests" in answer:
                return answer["requests"]
            if time.monotonic() >= deadline:
                raise WaitTimeout(f"{answer['count']} of {count} requests matching {filters or 'anything'} arrived within {timeout} s")

    def fault(self, **rule: Any) -> Fault:
        """Add a fault rule now (`POST /__admin/faults`); as a context manager it is removed on exit, else with the session."""
        return Fault(self, self.admin("POST", "/__admin/faults", _filters(rule), expect=(201,)))

    def faults(self) -> list[dict]:
        """The session's rules, with `remaining` and `matched`."""
        return self.admin("GET", "/__admin/faults")["faults"]

    def scenario(self, name: str) -> dict:
        """Apply a scenario (`fixtures/scenarios/`): the state is reset, then changed, then its rules added; the rules added."""
        return self.admin("POST", f"/__admin/scenarios/{urllib.parse.quote(name, safe='')}")

    def unmatched(self) -> list[dict]:
        """Requests that matched no operation, with the nearest operations and why each did not match."""
        return self.admin("GET", "/__admin/requests/unmatched")["requests"]

    def clear_journal(self) -> None:
        self.admin("DELETE", "/__admin/requests", expect=(204,))

    def close(self) -> None:
        """End the session on the server (404: it already expired)."""
        self.admin("DELETE", f"/__admin/sessions/{self.id}", expect=(204, 404))

    def describe(self) -> str:
        """The session as a failure report shows it: its journal (oldest first), violations and unmatched requests."""
        try:
            journal = list(reversed(self.requests(limit=10000)))
            unmatched = list(reversed(self.unmatched()))
        except (OSError, MockServerError) as exc:
            return f"could not read session {self.id} from {self.url}: {exc}"
        return "\n".join([*_journal_lines(journal), *_violation_lines(journal), *_unmatched_lines(unmatched)])


class Fault:
    """A fault rule in a session: `with session.fault(...) as rule:` removes it on exit; `remove()` does so at any time."""

    def __init__(self, session: MockSession, rule: dict):
        self.session = session
        self.rule = rule
        self.id: str = rule["id"]

    def __enter__(self) -> Fault:
        return self

    def __exit__(self, *_: object) -> None:
        self.remove()

    def remove(self) -> None:
        """Remove the rule (already gone is fine: removed twice, or the session ended)."""
        self.session.admin("DELETE", f"/__admin/faults/{self.id}", expect=(204, 404))

    def state(self) -> dict | None:
        """The rule as the server has it now (`remaining`, `matched`), or None once removed."""
        return next((rule for rule in self.session.faults() if rule["id"] == self.id), None)

    @property
    def matched(self) -> int:
        """How many requests the rule acted on so far (0 once removed)."""
        return (self.state() or {}).get("matched", 0)


def _filters(filters: Mapping[str, Any]) -> dict[str, Any]:
    """The admin API's names (`operation_id` may be written Python's way) and JSON values (a datetime as ISO 8601)."""
    named = {("operationId" if name == "operation_id" else name): value for name, value in filters.items()}
    return {name: value.isoformat() if hasattr(value, "isoformat") else value for name, value in named.items()}


def _query_value(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _journal_lines(journal: list[dict]) -> list[str]:
    vendor = [entry for entry in journal if not entry["admin"]]
    lines = [f"journal, oldest first ({len(vendor)} requests; {len(journal) - len(vendor)} admin calls not shown):"]
    for entry in vendor:
        fault = f" [fault {entry['fault']}]" if entry["fault"] else ""
        flagged = " [violates the contract]" if entry["violations"] else ""
        lines.append(f"  #{entry['id']} {_target(entry)} -> {entry['status']} {entry['operationId'] or '-'}{fault}{flagged}")
    return lines


def _target(entry: dict) -> str:
    return f"{entry['method']} {entry['path']}" + (f"?{entry['query']}" if entry["query"] else "")


def _violation_lines(journal: list[dict]) -> list[str]:
    broken = [entry for entry in journal if entry["violations"]]
    lines = [f"violations: requests the contract rejects ({len(broken)}):"]
    for entry in broken:
        lines += [f"  #{entry['id']} {_target(entry)}: {violation}" for violation in entry["violations"]]
    return lines


def _unmatched_lines(unmatched: list[dict]) -> list[str]:
    lines = [f"unmatched: requests no operation matches ({len(unmatched)}):"]
    for entry in unmatched:
        lines.append(f"  #{entry['id']} {entry['method']} {entry['path']} -> {entry['status']}; nearest:")
        lines += [f"      {near['method']} {near['path']}: {near['why']}" for near in entry["nearest"]]
    return lines

"""pytest plugin (entry point `pytest11: mockserver`): the real mock for a test session, a session of it per test.

Fixtures:

* `mockserver` (session scope): a `mockserver serve` process on a free
  127.0.0.1 port, healthy before the first test uses it, stopped after the last.
* `mock_session` (per test): its own `X-Mock-Session`, so tests never see each
  other's state, rules or journal; deleted on the server after the test.

Ini options: `mockserver_fixtures` (a fixture file: `serve --fixtures`) and
`mockserver_args` (more `serve` options); relative paths in either are read
from the ini file's folder, where the server runs.

Design:

* **A subprocess, not a thread.** The server is `python -m mockserver serve`,
  exactly what users run: granian on its own event loop (which installs
  signal handlers, so it cannot run in a thread of the test process), its
  state and its crashes kept out of the tests' process, and its output in a
  file the plugin reads (below) rather than log records that pytest's
  capturing or a thread would swallow. It costs about 1.4 s once per session.
  `--port 0` does not report the port it bound, so the plugin takes a free
  port (bind port 0, read it, close it), passes it, waits for
  `/__admin/health`, and retries on another port if one was taken meanwhile.
* **One server per pytest-xdist worker.** Sessions would make one shared
  server safe, but sharing needs the workers to agree on who starts and stops
  it, and the server's log does not name sessions: only a server whose one
  worker runs one test at a time lets an error line be pinned to the test that
  was running. A worker's server starts in parallel with the others' and is
  cleaned up by the worker that started it. Session ids still carry the
  worker id (`gw1-7-test_move`), unique even against a shared server.
* **Server bugs fail the test that was running.** The server writes its own
  bugs as ERROR records ("unexpected error on ...", "contract violation by the
  mock itself: ...", a failed state-file save in its saver thread) or bare
  tracebacks. After each phase (setup, call, teardown) of every test that runs
  while the server is up, the plugin reads the output written since the last
  phase and, if it holds any, marks that phase failed with them (a call phase
  that passed becomes a failure; a setup or teardown phase becomes an error).
  The server logs before it answers, so a test's requests land in its own
  window. Output written after the last test (at shutdown) errors that test's
  teardown.
* **Failure reports show the session.** When a test using `mock_session` fails
  (setup or call), the report gets a "mockserver session <id>" section: its
  journal (method, path, status, operationId, fault, violations), the
  requests the contract rejected and why, and the unmatched requests with the
  nearest operations.
* **Cheap to import.** pytest imports this module in every run of every
  project that installs us: it imports only what pytest already has loaded.
  The server harness (`mockserver.testing`, standard library only: urllib,
  subprocess) is imported when a fixture is first used; Flask and
  `mockserver.http` never enter the test process.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from mockserver.testing.harness import MockServer, MockSession

SERVER = pytest.StashKey["MockServer"]()
SESSION = pytest.StashKey["MockSession"]()
_SESSION_NUMBERS = itertools.count(1)
_NOT_IN_ID = re.compile(r"[^A-Za-z0-9._-]+")
MAX_SESSION_ID = 64  # the admin API's SessionId pattern


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("mockserver_fixtures", "Fixture file for the mockserver fixture's server (serve --fixtures), relative to the ini file.")
    parser.addini("mockserver_args", "More options for the mockserver fixture's `mockserver serve`, e.g. --scenarios DIR.", type="args")


@pytest.fixture(scope="session")
def mockserver(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MockServer]:
    """The real server for this test session (one per xdist worker): `.url`, `.port`, `.log_path`, `.session(id)`."""
    from mockserver.testing.harness import MockServer, MockServerError

    config = request.config
    try:
        server = MockServer.start(_serve_args(config), tmp_path_factory.mktemp("mockserver") / "server.log", cwd=_ini_folder(config))
    except MockServerError as exc:  # the server's own words (a bad fixture file, a taken port), not our traceback
        raise pytest.fail.Exception(str(exc), pytrace=False) from None
    config.stash[SERVER] = server
    try:
        yield server
    finally:
        del config.stash[SERVER]
        server.stop()
    if errors := server.new_errors():
        pytest.fail(_errors_text(errors, server), pytrace=False)


@pytest.fixture
def mock_session(request: pytest.FixtureRequest, mockserver: MockServer) -> Iterator[MockSession]:
    """This test's own session: `.url`, `.headers`, `.reset()`, `.requests()`, `.count()`, `.wait_for()`, `.fault()`, `.scenario()`."""
    session = mockserver.session(_session_id(request.node))
    request.node.stash[SESSION] = session
    yield session
    session.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Fail the phase in which the server logged a bug of its own; show the session of a failed test."""
    report: pytest.TestReport = yield
    server = item.config.stash.get(SERVER, None)
    if server is not None and (errors := server.new_errors()):
        _fail(report, _errors_text(errors, server))
    session = item.stash.get(SESSION, None)
    if session is not None and report.failed and call.when in ("setup", "call"):
        report.sections.append((f"mockserver session {session.id}", session.describe()))
    return report


def _ini_folder(config: pytest.Config) -> Path:
    """Where the ini options' relative paths start (the server runs there), whatever folder pytest was started in."""
    return config.inipath.parent if config.inipath else config.rootpath


def _serve_args(config: pytest.Config) -> list[str]:
    args = list(config.getini("mockserver_args"))
    if fixtures := config.getini("mockserver_fixtures"):
        args += ["--fixtures", str(_ini_folder(config) / fixtures)]
    return args


def _session_id(item: pytest.Item) -> str:
    """`<xdist worker or main>-<n>-<test name>`, cut to the 64 characters a session id may have."""
    prefix = f"{os.environ.get('PYTEST_XDIST_WORKER', 'main')}-{next(_SESSION_NUMBERS)}-"
    return prefix + _NOT_IN_ID.sub("_", item.name)[: MAX_SESSION_ID - len(prefix)]


def _errors_text(errors: list[str], server: MockServer) -> str:
    found = "\n".join(errors)
    return f"mockserver logged errors of its own while this test ran:\n{found}\n(its whole output: {server.log_path})"


def _fail(report: pytest.TestReport, text: str) -> None:
    """A passed or skipped phase becomes a failure explained by `text`; a failed one shows `text` as a section."""
    if report.failed:
        report.sections.append(("mockserver errors", text))
        return
    report.outcome = "failed"
    report.longrepr = text
    if hasattr(report, "wasxfail"):
        del report.wasxfail

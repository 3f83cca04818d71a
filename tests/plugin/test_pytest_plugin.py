"""The pytest plugin as a project that installs us gets it: inner test files run by pytester in a fresh pytest process.

The plugin comes in through the `pytest11` entry point (nothing here loads it
by hand). Every inner run starts its own server(s) and must stop them: each
inner test that gets the `mockserver` fixture writes its server's pid to a
file, and the outer test checks those processes are gone.
"""

from __future__ import annotations

import importlib.metadata
import re
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from mockserver.resources import default_fixtures_path
from mockserver.testing import harness
from mockserver.testing.harness import free_port

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.e2e  # every inner run starts `mockserver serve` through the plugin
REPO = Path(__file__).resolve().parents[2]
# Plugins of our test extra that an inner run does not need: schemathesis's alone costs ~2.5 s a pytest process.
QUIET = ("-p", "no:cacheprovider", "-p", "no:schemathesis", "-p", "no:hypothesispytest", "-p", "no:anyio")

# Prepended to every inner test file: a client standing for the app under test, and the pid note.
INNER = """
import json
import os
import urllib.error
import urllib.request

import pytest

MOVE = "/cdm/client/demo/customer/BAK-11984-007/move/vip"


def send(base, method, path, headers, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method, headers={**headers, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def call(session, method, path, body=None):
    return send(session.url, method, path, session.headers, body)


@pytest.fixture(autouse=True)
def note_server_pid(request):
    if "mockserver" in request.fixturenames:
        server = request.getfixturevalue("mockserver")
        with open(f"server-{server.process.pid}.pid", "w"):
            pass
"""


def run(pytester: pytest.Pytester, body: str, *args: str) -> pytest.RunResult:
    """Write `body` (after INNER) as the inner test file and run it in its own pytest process."""
    pytester.makepyfile(test_inner=INNER + textwrap.dedent(body))
    result = pytester.runpytest_subprocess(*QUIET, "-p", "no:randomly", *args, timeout=120)
    assert_servers_stopped(pytester.path)
    return result


def assert_servers_stopped(folder: Path) -> None:
    pids = [int(note.stem.split("-")[1]) for note in folder.glob("server-*.pid")]
    running = [pid for pid in pids if Path(f"/proc/{pid}").exists()]
    assert not running, f"servers still running after the inner run: {running}"


def test_the_plugin_is_installed_by_its_entry_point(pytester):
    entry = [ep for ep in importlib.metadata.entry_points(group="pytest11") if ep.name == "mockserver"]
    assert [ep.value for ep in entry] == ["mockserver.pytest_plugin"]
    result = pytester.runpytest_subprocess("--fixtures", *QUIET)
    for fixture in ("mockserver [[]session scope[]]", "mock_session"):  # in either order
        result.stdout.fnmatch_lines([f"{fixture} -- *mockserver/pytest_plugin.py:*"])


def test_importing_the_plugin_loads_nothing_but_itself():
    """pytest imports the plugin in every run of every project that installs us: no Flask, no mockserver.http."""
    probe = "import sys, pytest; before = set(sys.modules); import mockserver.pytest_plugin; print(sorted(set(sys.modules) - before))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "['mockserver', 'mockserver.pytest_plugin']"


def test_fixtures_give_each_test_its_own_session_on_one_server(pytester):
    result = run(
        pytester,
        """
        SEEN = []


        @pytest.mark.parametrize("n", [1, 2])
        def test_moving_the_same_customer(mock_session, mockserver, n):
            assert mock_session.url == mockserver.url
            assert call(mock_session, "PUT", MOVE) == 200  # never a 409: the other test's move is not seen here
            assert call(mock_session, "PUT", MOVE) == 409
            SEEN.append(mock_session.id)


        def test_the_session_and_its_controls(mock_session):
            assert mock_session.headers == {
                "xx-relay-api-key": "demo-key",
                "Authorization": "Bearer demo-user-token",
                "X-Mock-Session": mock_session.id,
            }
            assert call(mock_session, "GET", "/core/customermgr/v3/customer/1005") == 200  # the eGain credential works too
            assert call(mock_session, "PUT", MOVE) == 200
            mock_session.reset()
            assert call(mock_session, "PUT", MOVE) == 200
            assert mock_session.count(operation_id="moveCustomer") == 2
            assert [entry["status"] for entry in mock_session.requests(operationId="moveCustomer")] == [200, 200]
            assert mock_session.scenario("relay-outage")["faults"][0]["status"] == 500
            assert call(mock_session, "PUT", MOVE) == 500


        def test_sessions_are_unique_and_deleted_after_their_test(mockserver):
            assert len(set(SEEN)) == 2 and all(id.startswith("main-") for id in SEEN)
            live = json.load(urllib.request.urlopen(mockserver.url + "/__admin/sessions"))["sessions"]
            assert [session["id"] for session in live] == ["default"]
        """,
    )
    result.assert_outcomes(passed=4)


def test_a_fault_context_manager_removes_its_rule(pytester):
    result = run(
        pytester,
        """
        from mockserver.testing import MockServerError


        def test_the_rule_acts_inside_the_block_only(mock_session):
            with mock_session.fault(operationId="moveCustomer", status=500, times=5) as rule:
                assert call(mock_session, "PUT", MOVE) == 500
                assert rule.matched == 1
                assert [found["id"] for found in mock_session.faults()] == [rule.id]
            assert mock_session.faults() == []
            assert call(mock_session, "PUT", MOVE) == 200


        def test_the_rule_is_removed_when_the_block_raises(mock_session):
            with pytest.raises(RuntimeError), mock_session.fault(operationId="moveCustomer", delay_ms=10):
                raise RuntimeError("the test's own error")
            assert mock_session.faults() == []


        def test_without_with_the_rule_stays_until_removed(mock_session):
            rule = mock_session.fault(operation_id="moveCustomer", status=500)
            assert call(mock_session, "PUT", MOVE) == 500
            assert call(mock_session, "PUT", MOVE) == 500
            rule.remove()
            assert rule.state() is None and call(mock_session, "PUT", MOVE) == 200


        def test_a_rule_the_server_refuses_says_why(mock_session):
            with pytest.raises(MockServerError, match="status 418 is not documented"):
                mock_session.fault(operationId="moveCustomer", status=418)
        """,
    )
    result.assert_outcomes(passed=4)


def test_wait_for_returns_when_the_request_arrives_and_fails_after_its_timeout(pytester):
    result = run(
        pytester,
        """
        import threading
        import time

        from mockserver.testing import WaitTimeout


        def test_a_request_sent_later_is_waited_for(mock_session):
            later = threading.Timer(0.3, call, (mock_session, "PUT", MOVE))
            later.start()
            started = time.monotonic()
            found = mock_session.wait_for(operationId="moveCustomer", timeout=10)
            later.join()
            assert [entry["status"] for entry in found] == [200]
            assert 0.2 < time.monotonic() - started < 5


        def test_too_few_requests_is_a_test_failure_naming_the_count(mock_session):
            assert call(mock_session, "PUT", MOVE) == 200
            with pytest.raises(WaitTimeout, match="1 of 2 requests"):
                mock_session.wait_for(count=2, timeout=0.3, operationId="moveCustomer")
            assert isinstance(WaitTimeout("x"), AssertionError)
        """,
    )
    result.assert_outcomes(passed=2)


def test_a_failing_test_reports_its_session_journal_violations_and_unmatched_requests(pytester):
    result = run(
        pytester,
        """
        def test_that_fails(mock_session):
            assert call(mock_session, "PUT", MOVE) == 200
            assert call(mock_session, "GET", "/core/customermgr/v3/customer/1005?foo=bar") == 400
            assert call(mock_session, "GET", "/cdm/client/demo/customers") == 404
            assert mock_session.count() > 0
            assert False, "the app did something wrong"


        def test_that_passes(mock_session):
            assert call(mock_session, "PUT", MOVE) == 200
        """,
    )
    result.assert_outcomes(passed=1, failed=1)
    output = result.stdout.str()
    section = output[output.index("mockserver session main-1-test_that_fails") :]
    assert re.search(r"journal, oldest first \(3 requests; \d+ admin calls not shown\)", section)
    assert "PUT /cdm/client/demo/customer/BAK-11984-007/move/vip -> 200 moveCustomer\n" in section
    assert "GET /core/customermgr/v3/customer/1005?foo=bar -> 400 getCustomersByIds [violates the contract]" in section
    assert "violations: requests the contract rejects (2):" in section
    assert "?foo=bar: Unsupported query parameter(s) supplied: 'foo'." in section
    assert "unmatched: requests no operation matches (1):" in section
    assert "GET /cdm/client/demo/customers -> 404; nearest:" in section
    assert "mockserver session main-2" not in output  # a passing test gets no section


def test_the_ini_options_pick_the_fixtures_file_and_serve_options_relative_to_the_ini_file(pytester):
    conf = pytester.path / "conf"
    (conf / "scenarios").mkdir(parents=True)
    data = yaml.safe_load(default_fixtures_path().read_text())
    data["relay"]["clients"][0]["customers"].append({"ccid": "INI-0001", "product_group_id": "vip", "first_name": "Ini"})
    (conf / "mine.yaml").write_text(yaml.safe_dump(data))
    (conf / "scenarios" / "my-outage.yaml").write_text(
        "name: my-outage\ndescription: Our own.\nfaults:\n  - operationId: retrieveCustomer\n    status: 500\n"
    )
    (conf / "pytest.ini").write_text("[pytest]\nmockserver_fixtures = mine.yaml\nmockserver_args = --scenarios scenarios\n")
    result = run(
        pytester,
        """
        def test_my_customer_and_my_scenario_are_there(mock_session):
            assert call(mock_session, "GET", "/cdm/client/demo/customer/INI-0001") == 200
            mock_session.scenario("my-outage")
            assert call(mock_session, "GET", "/cdm/client/demo/customer/INI-0001") == 500
        """,
        "-c",
        "conf/pytest.ini",
        "test_inner.py",
    )
    result.assert_outcomes(passed=1)


def test_a_bad_fixtures_file_errors_the_first_test_naming_the_file(pytester):
    pytester.makeini("[pytest]\nmockserver_fixtures = missing.yaml\n")
    result = run(pytester, "def test_x(mock_session):\n    pass\n")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*mockserver serve exited with 2*", "*missing.yaml*"])


def test_under_xdist_each_worker_has_its_own_server_and_sessions_name_the_worker(pytester):
    result = run(
        pytester,
        """
        @pytest.mark.parametrize("n", range(8))
        def test_moving_the_same_customer(mock_session, mockserver, n):
            assert mock_session.id.startswith(os.environ["PYTEST_XDIST_WORKER"] + "-")
            assert call(mock_session, "PUT", MOVE) == 200
            assert call(mock_session, "PUT", MOVE) == 409
            assert mock_session.count(operationId="moveCustomer", status=409) == 1
        """,
        "-n",
        "2",
    )
    result.assert_outcomes(passed=8)
    assert len(list(pytester.path.glob("server-*.pid"))) == 2


def test_errors_the_server_logs_during_a_test_fail_that_test(pytester):
    """A real one (the server's saver thread cannot write the state file) and one written as the server writes them."""
    pytester.makeini("[pytest]\nmockserver_args = --state-file saved/state.json --save-interval 0.1\n")
    (pytester.path / "saved").mkdir()
    result = run(
        pytester,
        """
        import shutil
        import time
        from pathlib import Path


        def wait_until(done):
            deadline = time.monotonic() + 10
            while not done():
                assert time.monotonic() < deadline
                time.sleep(0.05)


        def test_the_state_file_cannot_be_saved(mockserver):
            wait_until(Path("saved/state.json").exists)
            shutil.rmtree("saved")
            assert send(mockserver.url, "POST", "/__admin/reset", {}) == 200  # a reset: the log is due for compaction
            wait_until(lambda: "could not save" in mockserver.log_path.read_text())
            Path("saved").mkdir()  # the next save works: the teardown sees no error


        def test_an_unexpected_error_with_its_traceback(mockserver):
            with open(mockserver.log_path, "a") as log:
                log.write("2026-12-01 10:00:00,000 INFO mockserver: fine\\n")
                log.write("2026-12-01 10:00:00,001 ERROR mockserver: unexpected error on PUT /x\\n")
                log.write("Traceback (most recent call last):\\n  File \\"api.py\\", line 1\\nKeyError: 'ccid'\\n")


        def test_a_test_after_them_is_not_blamed(mock_session):
            assert call(mock_session, "PUT", MOVE) == 200


        @pytest.fixture(scope="session")
        def logs_an_error_at_the_end(mockserver):
            yield
            with open(mockserver.log_path, "a") as log:
                log.write("2026-12-01 10:00:01,000 ERROR mockserver: a bug after the last test\\n")


        def test_the_last_one(logs_an_error_at_the_end):
            pass
        """,
    )
    result.assert_outcomes(passed=2, failed=2, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_the_last_one*", "*ERROR mockserver: a bug after the last test"])
    result.stdout.fnmatch_lines(
        [
            "*_ test_the_state_file_cannot_be_saved _*",
            "mockserver logged errors of its own while this test ran:",
            "* ERROR mockserver: could not save the state file saved/state.json: *",
            "*_ test_an_unexpected_error_with_its_traceback _*",
            "mockserver logged errors of its own while this test ran:",
            "* ERROR mockserver: unexpected error on PUT /x",
            "Traceback (most recent call last):",
            "KeyError: 'ccid'",
        ]
    )
    assert "INFO mockserver: fine" not in result.stdout.str()


def test_a_port_taken_between_choosing_and_binding_it_is_retried_on_another(tmp_path, monkeypatch):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ports = iter([taken.getsockname()[1]])
        monkeypatch.setattr(harness, "free_port", lambda: next(ports, None) or free_port())
        server = harness.MockServer.start([], tmp_path / "server.log")
        try:
            assert server.port != taken.getsockname()[1]
            assert harness.call(server.url, "GET", "/__admin/health") == (200, {"status": "ok"})
        finally:
            server.stop()
    assert "cannot serve on" in (tmp_path / "server.log").read_text()  # the first attempt, kept in the log
    assert server.new_errors() == []


def test_the_readme_shows_the_example_this_folder_runs():
    readme = (REPO / "README.md").read_text()
    if "For CI: the pytest plugin" not in readme:
        pytest.skip("the README's 'For CI: the pytest plugin' section is not written yet")
    example = (Path(__file__).with_name("test_readme_example.py")).read_text()
    assert f"```python\n{example}```" in readme


@pytest.fixture(autouse=True)
def _no_outer_xdist_worker(monkeypatch):
    """An inner run is a project of its own: not a worker of the outer run's xdist."""
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    monkeypatch.delenv("PYTEST_XDIST_TESTRUNUID", raising=False)

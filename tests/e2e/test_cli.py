"""The command line as a user meets it: the banner, --port 0 and --port-file, a busy port, stopping, -h, -V, spec."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from mockserver.resources import admin_spec_path, spec_path
from tests.e2e import REPO

pytestmark = pytest.mark.e2e
COMMAND = [sys.executable, "-m", "mockserver"]


def start(tmp_path: Path, *args: str) -> tuple[subprocess.Popen, int, Path]:
    """`serve --port 0 --port-file F`, waited for through the port file; returns the process, the port and its output file."""
    port_file, output = tmp_path / "port", tmp_path / "out.log"
    with open(output, "wb") as sink:
        process = subprocess.Popen(
            [*COMMAND, "serve", "--port", "0", "--port-file", str(port_file), *args], stdout=sink, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 20
    while not port_file.is_file() or not port_file.read_text().strip():
        assert process.poll() is None and time.monotonic() < deadline, output.read_text()
        time.sleep(0.05)
    return process, int(port_file.read_text()), output


def healthy(port: int) -> bool:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/__admin/health", timeout=5) as answer:
        return json.load(answer) == {"status": "ok"}


@pytest.mark.parametrize("server", ["granian", "waitress"])
def test_port_0_reports_the_port_bound_and_sigterm_says_stopped(tmp_path, server):
    process, port, output = start(tmp_path, "--server", server)
    try:
        assert port > 0 and healthy(port)
        banner = output.read_text()
        assert f"listening on http://127.0.0.1:{port} ({server}" in banner
        for line in (
            f"http://127.0.0.1:{port}/docs",
            "/platform/v3/api",
            "/core/customermgr/v3",
            "/__admin/",
            "demo-key",
            "demo-user-token",
        ):
            assert line in banner, line
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
    assert process.returncode == 0 and "mockserver stopped" in output.read_text()


def test_a_busy_port_is_one_error_line_and_no_listening_line(tmp_path):
    process, port, _ = start(tmp_path)
    try:
        done = subprocess.run([*COMMAND, "serve", "--port", str(port)], capture_output=True, text=True, timeout=30)
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert done.returncode == 2 and "listening" not in done.stdout + done.stderr
    assert done.stderr.strip().splitlines() == [f"error: cannot serve on 127.0.0.1:{port}: Address already in use"]


def test_the_banner_lists_demo_credentials_with_the_bundled_fixtures_only(tmp_path):
    own = tmp_path / "own.yaml"
    own.write_text((REPO / "fixtures" / "default.yaml").read_text())
    process, _, output = start(tmp_path, "--fixtures", str(own))
    process.terminate()
    process.wait(timeout=10)
    assert "listening" in output.read_text() and "demo-key" not in output.read_text()


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help(flag):
    done = subprocess.run([*COMMAND, flag], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and "serve" in done.stdout and "spec" in done.stdout


def test_version():
    done = subprocess.run([*COMMAND, "-V"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and "0.1.0" in done.stdout


@pytest.mark.parametrize("args, path", [([], spec_path()), (["--admin"], admin_spec_path())])
def test_spec_prints_the_bundled_contract(args, path):
    as_yaml = subprocess.run([*COMMAND, "spec", *args], capture_output=True, text=True, timeout=30, env={**os.environ})
    as_json = subprocess.run([*COMMAND, "spec", "--format", "json", *args], capture_output=True, text=True, timeout=30)
    assert as_yaml.stdout == path.read_text() and json.loads(as_json.stdout) == yaml.safe_load(path.read_text())


def test_every_serve_option_has_an_environment_twin_and_json_logs_name_the_request(tmp_path):
    env = {**os.environ, "MOCKSERVER_ACCESS_LOG": "1", "MOCKSERVER_LOG_FORMAT": "json", "MOCKSERVER_MAX_WAITS": "7"}
    port_file, output = tmp_path / "port", tmp_path / "out.log"
    with open(output, "wb") as sink:
        process = subprocess.Popen(
            [*COMMAND, "serve", "--port", "0", "--port-file", str(port_file)], stdout=sink, stderr=subprocess.STDOUT, env=env
        )
    try:
        deadline = time.monotonic() + 20
        while not port_file.is_file() or not port_file.read_text().strip():
            assert process.poll() is None and time.monotonic() < deadline, output.read_text()
            time.sleep(0.05)
        port = int(port_file.read_text())
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/cdm/client/demo/customer/BAK-11984-008",
            headers={"xx-relay-api-key": "demo-key", "X-Mock-Session": "cli-1"},
        )
        urllib.request.urlopen(request, timeout=5).read()
    finally:
        process.terminate()
        process.wait(timeout=10)
    lines = [json.loads(line) for line in output.read_text().splitlines() if line.startswith("{")]
    access = next(line for line in lines if line["logger"] == "mockserver.access")
    assert {k: access[k] for k in ("method", "status", "operationId", "session", "credential")} == {
        "method": "GET",
        "status": 200,
        "operationId": "retrieveCustomer",
        "session": "cli-1",
        "credential": "de…(8)",
    }
    assert access["duration_ms"] >= 0 and "demo-key" not in json.dumps(lines)
    help_text = subprocess.run([*COMMAND, "serve", "-h"], capture_output=True, text=True, timeout=30).stdout
    options = [word for word in help_text.split() if word.startswith("--") and word not in ("--help",)]
    for option in options:
        twin = "MOCKSERVER_" + option[2:].split("=")[0].replace("-", "_").upper()
        assert twin in " ".join(help_text.split()), option


def test_a_state_file_in_a_missing_folder_stops_the_start_with_one_line(tmp_path):
    state = tmp_path / "no-such-folder" / "state.json"
    done = subprocess.run([*COMMAND, "serve", "--port", "0", "--state-file", str(state)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert f"error: {state}.log.1: cannot create the command log: No such file or directory" in done.stderr


def test_an_unexpected_error_while_serving_exits_1_with_one_clear_line(monkeypatch, caplog):
    """A defect (not a bad file, not a busy port) ends the process with code 1: its traceback logged, then one line."""
    from click.testing import CliRunner

    from mockserver import cli

    def broken(settings, on_listening):
        raise RuntimeError("the event loop is gone")

    monkeypatch.setattr(cli, "serve", broken)
    monkeypatch.setattr(cli.logs, "configure", lambda *args: None)  # keep pytest's log capture
    result = CliRunner().invoke(cli.main, ["serve", "--port", "0"])
    assert result.exit_code == 1
    assert "error: mockserver stopped on an unexpected error: RuntimeError: the event loop is gone" in result.output
    assert "Traceback" in caplog.text and "the server stopped on an unexpected error" in caplog.text


def test_each_serve_option_is_the_settings_field_that_declares_it(monkeypatch):
    """`serve` with no option runs on Settings' defaults (and the server installed); an option sets its field, an off
    switch clears its own; the options are the fields that declare one, and four of the command's own."""
    import dataclasses

    from click.testing import CliRunner

    from mockserver import cli
    from mockserver.http.serving import available_server
    from mockserver.settings import OPTION, Settings

    served = []
    monkeypatch.setattr(cli, "serve", lambda settings, on_listening: served.append(settings))
    monkeypatch.setattr(cli.logs, "configure", lambda *args: None)
    for twin in [name for name in os.environ if name.startswith("MOCKSERVER_")]:  # tests/conftest.py sets some
        monkeypatch.delenv(twin)
    assert CliRunner().invoke(cli.main, ["serve"]).exit_code == 0
    assert served.pop() == Settings(server=available_server())
    given = ["--no-cors", "--no-check-responses", "--reload", "--port", "9", "--server", "waitress", "--session-idle", "5", "--fsync", "no"]
    assert CliRunner().invoke(cli.main, ["serve", *given, "--state-file", "s.json", "--scenarios", "fixtures"]).exit_code == 0
    assert served.pop() == Settings(
        cors=False,
        check_responses=False,
        reload=True,
        port=9,
        server="waitress",
        session_idle=5.0,
        fsync="no",
        state_file=Path("s.json"),
        scenarios=Path("fixtures"),
    )
    declared = {spec.name for spec in dataclasses.fields(Settings) if OPTION in spec.metadata}
    options = {option.field for option in cli.SETTINGS_OPTIONS}
    assert options == declared and len(declared) == 26
    own = {param.name for param in cli.serve_command.params} - {option.name for option in cli.SETTINGS_OPTIONS}
    assert own == {"port_file", "workers", "log_level", "log_format"}

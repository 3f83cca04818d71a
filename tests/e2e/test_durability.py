"""`serve --state-file`: state survives restarts; a damaged or foreign file stops the start."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.e2e.server import running_server

pytestmark = pytest.mark.e2e
MOVE = "/cdm/client/demo/customer/BAK-11984-007/move/vip"
RETRIEVE = "/cdm/client/demo/customer/BAK-11984-007"
KEY = {"xx-relay-api-key": "demo-key"}


def call(base: str, path: str, method: str = "GET") -> tuple[int, dict]:
    request = urllib.request.Request(base + path, method=method, headers=KEY)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


@pytest.mark.parametrize("server", ["granian", "waitress"])
def test_state_survives_a_clean_restart(tmp_path, server):
    state = tmp_path / "state.json"
    with running_server("--server", server, "--state-file", str(state)) as base:
        assert call(base, MOVE, "PUT")[0] == 200
    assert json.loads(state.read_text())["mockserver_state"] == 1
    with running_server("--server", server, "--state-file", str(state)) as base:
        assert call(base, RETRIEVE)[1]["product_group_id"] == "vip"
        assert call(base, MOVE, "PUT")[0] == 409
        # Reset still means "back to the fixtures", not "back to the state file".
        urllib.request.urlopen(urllib.request.Request(base + "/__admin/reset", method="POST"), timeout=5)
        assert call(base, RETRIEVE)[1]["product_group_id"] == "default"


def test_periodic_saves_survive_a_crash(tmp_path):
    state = tmp_path / "state.json"
    with running_server("--state-file", str(state), "--save-interval", "0.2") as base:
        assert call(base, MOVE, "PUT")[0] == 200
        deadline = time.monotonic() + 5
        while not (state.exists() and '"vip"' in state.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        # Kill the whole process group without a chance to save: only the periodic save remains.
        for pid in _process_tree(base):
            os.kill(pid, signal.SIGKILL)
    with running_server("--state-file", str(state)) as base:
        assert call(base, RETRIEVE)[1]["product_group_id"] == "vip"


def _process_tree(base: str) -> list[int]:
    port = base.rsplit(":", 1)[1]
    found = subprocess.run(["pgrep", "-f", f"--port {port}"], capture_output=True, text=True).stdout.split()
    return [int(pid) for pid in found]


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "corrupt"),
        ('{"something": "else"}', "not a mockserver state file"),
        ('{"mockserver_state": 1, "state": {"relay": {"clients": []}, "egain": {"actors": [], "customers": [{"id": "x1"}]}}}', "egain.customers[0]"),
    ],
)
def test_a_damaged_or_foreign_state_file_stops_the_start(tmp_path, content, message):
    state = tmp_path / "state.json"
    state.write_text(content)
    done = subprocess.run(
        [sys.executable, "-m", "mockserver", "serve", "--port", "0", "--state-file", str(state)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2
    assert message in done.stderr and str(state) in done.stderr
    assert state.read_text() == content  # never overwritten


def test_a_failed_write_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    from mockserver.state import persistence

    target = tmp_path / "state.json"
    target.write_text("previous")

    def broken_replace(source, destination):
        raise OSError("disk full")

    monkeypatch.setattr(persistence.os, "replace", broken_replace)
    with pytest.raises(OSError):
        persistence._atomic_write(target, "new content")
    assert target.read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temporary file left behind

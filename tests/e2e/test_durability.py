"""`serve --state-file`: state survives restarts; a damaged or foreign file stops the start."""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from mockserver.testing.harness import running_server
from mockserver.testing.process import process_tree
from tests.e2e.wire import eventually

pytestmark = pytest.mark.e2e
MOVE = "/cdm/client/demo/customer/BAK-11984-007/move/vip"
RETRIEVE = "/cdm/client/demo/customer/BAK-11984-007"
KEY = {"xx-relay-api-key": "demo-key"}


def call(base: str, path: str, method: str = "GET", body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method, headers={**KEY, "Content-Type": "application/json"})
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


def test_an_answered_move_survives_kill_9_at_once(tmp_path):
    """No waiting for a periodic save: the change was in the command log before it was answered."""
    state = tmp_path / "state.json"
    with running_server("--state-file", str(state)) as base:
        assert call(base, MOVE, "PUT")[0] == 200
        os.kill(base.pid, signal.SIGKILL)
        base.process.wait()
    with running_server("--state-file", str(state)) as base:
        assert call(base, RETRIEVE)[1]["product_group_id"] == "vip"


# The crash test of issue #11: kill -9 at random moments of a writer loop (compactions included: they run every
# 0.1 s), then count the answered changes missing after the restart. More kills: MOCKSERVER_CRASH_KILLS=100.
KILLS = int(os.environ.get("MOCKSERVER_CRASH_KILLS", "20"))


@pytest.mark.parametrize("fsync, kills", [("always", KILLS), ("everysec", max(3, KILLS // 4))])
def test_kill_9_during_writes_loses_no_answered_change(tmp_path, fsync, kills):
    state = tmp_path / "state.json"
    book = Ledger()
    rng = random.Random(1104)
    for round_number in range(kills):
        with running_server("--state-file", str(state), "--fsync", fsync, "--save-interval", "0.1") as base:
            assert book.missing(base) == [], f"before kill {round_number + 1}"
            writers = [threading.Thread(target=book.write, args=(base, f"K{round_number}-{w}")) for w in range(2)]
            for writer in writers:
                writer.start()
            time.sleep(rng.uniform(0.15, 0.6))
            os.kill(base.pid, signal.SIGKILL)
            for writer in writers:
                writer.join(timeout=30)
            base.process.wait()
            assert book.errors == []
    with running_server("--state-file", str(state)) as base:
        assert book.missing(base) == []
    assert book.answered > kills * 20, f"only {book.answered} answered writes: the test did not exercise much"
    print(f"{kills} kills at --fsync {fsync}: {book.answered} answered changes, 0 lost")


class Ledger:
    """What the server answered: each customer's last answered group, and the group of a write still unanswered."""

    def __init__(self):
        self.answered_group: dict[str, str] = {}
        self.unanswered: dict[str, str] = {}
        self.answered = 0
        self.errors: list[str] = []  # seen by the writer threads, asserted by the test
        self._lock = threading.Lock()

    def write(self, base: str, prefix: str) -> None:
        """Load a new customer, then move it, again and again, until the server dies under it."""
        for n in itertools.count():
            ccid = f"{prefix}-{n}"
            body = {"product_group_id": "default", "customer": {"ccid": ccid, "first_name": "Crash", "last_name": "Test"}}
            for group, path, method, payload in (
                ("default", "/cdm/client/demo/load-customer-record", "POST", body),
                ("vip", f"/cdm/client/demo/customer/{ccid}/move/vip", "PUT", None),
            ):
                with self._lock:
                    self.unanswered[ccid] = group
                try:
                    status = call(base, path, method, payload)[0]
                except TimeoutError:
                    self.errors.append(f"{method} {path}: no answer within 5 s (the server hung, it was not killed)")
                    return
                except OSError:
                    return  # killed: this write's fate is unknown, either outcome is correct
                with self._lock:
                    if status != 200:
                        self.errors.append(f"{method} {path}: {status}")
                        return
                    self.answered_group[ccid] = group
                    del self.unanswered[ccid]
                    self.answered += 1

    def missing(self, base: str) -> list[str]:
        """Answered changes the server does not hold (a customer absent, or in a group it was never answered in)."""
        groups = {}
        with urllib.request.urlopen(base + "/__admin/state?limit=10000", timeout=10) as response:
            for client in json.load(response)["relay"]:
                if client["client_id"] == "demo":
                    groups = {c["ccid"]: g["product_group_id"] for g in client["product_groups"] for c in g["customers"]}
        return [
            f"{ccid}: answered {group}, found {groups.get(ccid)}"
            for ccid, group in self.answered_group.items()
            if groups.get(ccid) not in (group, self.unanswered.get(ccid))
        ]


def test_the_snapshot_writer_is_logged_when_it_dies_and_never_outlives_the_server(tmp_path):
    """The server is one process; a compaction forks a snapshot writer. Killed (as by the OOM killer), the writer
    is logged with its cause and the server serves on and compacts again; the server killed, the writer dies too
    (PR_SET_PDEATHSIG). 40,000 customers make the writer live long enough to be caught."""
    from mockserver.testing.fixturegen import write_fixture

    fixture = write_fixture(tmp_path / "big.yaml", relay_customers=40_000)
    state, log = tmp_path / "state.json", tmp_path / "server.log"
    with running_server("--fixtures", str(fixture), "--state-file", str(state), "--save-interval", "0.1", timeout=60, log_to=log) as base:
        os.kill(_snapshot_writer(base), signal.SIGKILL)
        assert eventually(lambda: "was killed by SIGKILL (out of memory?)" in log.read_text())
        assert call(base, RETRIEVE)[0] == 200
        writer = _snapshot_writer(base)  # compaction goes on
        os.kill(base.pid, signal.SIGKILL)
        base.process.wait()
        assert eventually(lambda: not Path(f"/proc/{writer}").exists(), seconds=5), "the snapshot writer outlived the killed server"


def _snapshot_writer(base) -> int:
    """The pid of a snapshot writer: a reset makes a compaction due at the keeper's next tick (0.1 s here)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        urllib.request.urlopen(urllib.request.Request(base + "/__admin/reset", method="POST"), timeout=5)
        polled_until = time.monotonic() + 0.5
        while time.monotonic() < polled_until:
            children = process_tree(base.pid)[1:]
            if children:
                return children[0]
    raise AssertionError("no snapshot writer was seen within 20 s")


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "corrupt"),
        ('{"something": "else"}', "not a mockserver state file"),
        (
            '{"mockserver_state": 1, "state": {"relay": {"clients": []}, "egain": {"actors": [], "customers": [{"id": "x1"}]}}}',
            "egain.customers[0]",
        ),
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
    from mockserver.state import snapshot_file

    target = tmp_path / "state.json"
    target.write_text("previous")

    def broken_replace(source, destination):
        raise OSError("disk full")

    monkeypatch.setattr(snapshot_file.os, "replace", broken_replace)
    with pytest.raises(OSError):
        snapshot_file.atomic_write(target, b"new content")
    assert target.read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temporary file left behind

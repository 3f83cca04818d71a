"""`serve --store redis://`: several server processes, one Redis, behaving as one mock (issue #14).

The race test: 4 processes, 8 client threads sending moves, merges and (#12) phone number adds, removes and
consent updates on overlapping customers to random processes. Then the invariants a lost update or a
half-applied command would break.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import pytest

from mockserver.testing.fixturegen import MERGE_LAST_MODIFIED, SOURCE_BASE, TARGET_BASE, move_ccid, relay_ccid, write_fixture
from mockserver.testing.harness import running_server
from mockserver.testing.process import free_port, process_tree
from mockserver.testing.redis_server import redis_server
from tests.e2e.wire import eventually

pytestmark = pytest.mark.e2e
KEY = {"xx-relay-api-key": "demo-key"}
TOKEN = {"Authorization": "Bearer demo-user-token"}
MOVERS, PAIRS, THREADS, SECONDS = 6, 12, 8, 4.0
RULE_TIMES = 20
GROUPS = ("default", "vip")
CCID = "BAK-11984-007"
PHONE_HOLDERS = 60  # more ccids than the 50 one number may have
PHONE = "6105550000"


def call(base: str, method: str, path: str, headers: dict, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method, headers={**headers, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else {}
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def test_four_processes_on_one_redis_keep_every_invariant(tmp_path):
    fixture = write_fixture(tmp_path / "race.json", relay_customers=PHONE_HOLDERS, move_customers=MOVERS, merge_pairs=PAIRS)
    with redis_server() as url, ExitStack() as servers:
        flags = ("--fixtures", str(fixture), "--store", url, "--namespace", "race", "--journal-size", "100000")
        bases = [servers.enter_context(running_server(*flags)) for _ in range(4)]
        rule = {"operationId": "getCustomersByIds", "status": 500, "times": RULE_TIMES}
        assert call(bases[0], "POST", "/__admin/faults", {}, rule)[0] == 201  # added in one process, counted in all
        ledger = Ledger()
        deadline = time.monotonic() + SECONDS
        threads = [threading.Thread(target=ledger.work, args=(bases, deadline, seed)) for seed in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert ledger.errors == []
        assert ledger.merged and ledger.moved, f"the race did too little: {ledger.statuses}"
        assert ledger.statuses["get 500"] == RULE_TIMES  # a `times` rule fired exactly N times across the 4 processes
        assert all(call(base, "GET", "/__admin/faults", {})[1]["faults"][0]["remaining"] == 0 for base in bases)
        moves = ledger.statuses["move 200"] + ledger.statuses["move 409"]
        for base in bases:  # one journal: every process counts every move, whichever process served it
            assert call(base, "POST", "/__admin/requests/count", {}, {"operationId": "moveCustomer"}) == (200, {"count": moves})

        # Each customer in exactly one group, and the one its answered moves lead to: each 200 flips it.
        for n in range(MOVERS):
            status, record = call(random.choice(bases), "GET", f"/cdm/client/demo/customer/{move_ccid(n)}", KEY)
            assert status == 200
            expected = GROUPS[ledger.moved[move_ccid(n)] % 2]
            assert record["product_group_id"] == expected, f"{move_ccid(n)}: {ledger.moved[move_ccid(n)]} moves answered 200"

        # Each source merged at most once; its contact points in exactly one customer, the one it was merged into.
        holders: dict[str, list[str]] = {}
        for i in range(PAIRS):
            for customer_id in (str(SOURCE_BASE + i), str(TARGET_BASE + i)):
                status, found = call(random.choice(bases), "GET", f"/core/customermgr/v3/customer/{customer_id}", TOKEN)
                for customer in found.get("customer", []) if status == 200 else []:
                    for contact in customer["contacts"]["contact"]:
                        for email in contact.get("email", []):
                            holders.setdefault(email["emailAddress"], []).append(customer["id"])
        for i in range(PAIRS):
            source = str(SOURCE_BASE + i)
            targets = ledger.merges_of.get(source, [])
            assert len(targets) <= 1, f"source {source} merged {len(targets)} times: into {targets}"
            expected_holder = targets[0] if targets else source
            assert holders.get(f"s{i}@example.com") == [expected_holder]

        # The number: an add answered 200 needs it absent, a remove present, so each flips it; at most 50 carry it.
        carriers = 0
        for n in range(PHONE_HOLDERS):
            status, record = call(random.choice(bases), "GET", f"/cdm/client/demo/customer/{relay_ccid(n)}", KEY)
            numbers = [channel["channel_addr"] for channel in record.get("notification_channels", [])]
            assert numbers in ([], [PHONE]), (relay_ccid(n), numbers)
            assert ledger.phone_flips[relay_ccid(n)] == len(numbers), (
                f"{relay_ccid(n)}: {numbers} after {ledger.phone_flips[relay_ccid(n)]}"
            )
            carriers += len(numbers)
        assert 0 < carriers <= 50 and ledger.statuses["add_phone 409"], (carriers, ledger.statuses)
        print(f"race: {dict(ledger.statuses)}")


class Ledger:
    """What the servers answered, from every client thread."""

    def __init__(self):
        self.moved: Counter = Counter()  # ccid -> moves answered 200
        self.merges_of: dict[str, list[str]] = {}  # source -> targets of the merges answered 204
        self.statuses: Counter = Counter()
        self.errors: list[str] = []
        self.merged = 0
        self.phone_flips: Counter = Counter()  # ccid -> adds answered 200 minus removes answered 200
        self._lock = threading.Lock()

    def work(self, bases: list[str], deadline: float, seed: int) -> None:
        rng = random.Random(seed)
        while time.monotonic() < deadline:
            base = rng.choice(bases)
            draw = rng.random()
            if draw < 0.35:
                self._move(base, move_ccid(rng.randrange(MOVERS)), rng.choice(GROUPS))
            elif draw < 0.7:
                self._merge(bases, rng, rng.randrange(PAIRS), rng.randrange(PAIRS))
            else:  # three adds to a remove: the 50-ccid limit is met
                self._phone(base, relay_ccid(rng.randrange(PHONE_HOLDERS)), rng.choices(("add", "remove", "consent"), (3, 1, 1))[0])

    def _move(self, base: str, ccid: str, group: str) -> None:
        status, _ = call(base, "PUT", f"/cdm/client/demo/customer/{ccid}/move/{group}", KEY)
        self._count(f"move {status}", status in (200, 409))
        if status == 200:
            with self._lock:
                self.moved[ccid] += 1

    def _phone(self, base: str, ccid: str, kind: str) -> None:
        if kind == "consent":
            status, _ = call(
                base, "PUT", f"/messaging/client/demo/consent/channel_addr/{PHONE}/channel_type/sms", KEY, {"consent_type": "stop"}
            )
            self._count(f"consent {status}", status in (200, 404))
            return
        status, _ = call(base, "PUT", f"/cdm/client/demo/customer/{ccid}/{kind}_phone/{PHONE}", KEY)
        self._count(f"{kind}_phone {status}", status in (200, 409) if kind == "add" else status in (200, 404))
        if status == 200:
            with self._lock:
                self.phone_flips[ccid] += 1 if kind == "add" else -1

    def _merge(self, bases: list[str], rng: random.Random, i: int, j: int) -> None:
        source, target = str(SOURCE_BASE + i), str(TARGET_BASE + j)
        status, found = call(rng.choice(bases), "GET", f"/core/customermgr/v3/customer/{target}", TOKEN)
        self._count(f"get {status}", status in (200, 500))
        stamp = found["customer"][0]["lastModified"] if status == 200 else MERGE_LAST_MODIFIED
        body = {
            "sourceCustomer": {"id": source},
            "targetCustomer": {"id": target, "lastModified": stamp, "contacts": {"contact": [{"firstName": "Merged"}]}},
        }
        status, answer = call(rng.choice(bases), "PUT", "/core/customermgr/v3/customer/merge", TOKEN, body)
        code = answer.get("code", "")
        self._count(f"merge {status} {code}".strip(), status == 204 or code in ("400-107", "400-111"))
        if status == 204:
            with self._lock:
                self.merges_of.setdefault(source, []).append(target)
                self.merged += 1

    def _count(self, what: str, expected: bool) -> None:
        with self._lock:
            self.statuses[what] += 1
            if not expected:
                self.errors.append(what)


def test_redis_going_away_is_a_clear_503_and_service_resumes_by_itself(tmp_path):
    """Redis stopped under load: every answer a documented 503 in the API's own format (never a 500, never a
    hang past the client's timeout), and once Redis is back, the same server processes serve again unaided."""
    port = free_port()
    with ExitStack() as stack:
        redis_up = ExitStack()
        url = redis_up.enter_context(redis_server(port))
        base = stack.enter_context(running_server("--store", url, "--namespace", "outage"))
        assert call(base, "PUT", f"/cdm/client/demo/customer/{CCID}/move/vip", KEY)[0] == 200
        redis_up.close()  # Redis stops
        relay = call(base, "PUT", f"/cdm/client/demo/customer/{CCID}/move/default", KEY)
        egain = call(base, "GET", "/core/customermgr/v3/customer/1005", TOKEN)
        assert relay[0] == 503 and "unavailable" in relay[1]["message"]
        assert egain[0] == 503 and egain[1]["code"] == "503-101"
        assert call(base, "GET", "/__admin/health", {})[0] == 503  # a load balancer's health check sees it too
        assert call(base, "GET", "/__admin/sessions", {})[0] == 503  # the session registry is in Redis too
        with redis_server(port):  # back, empty (no persistence configured): the fixtures' state
            deadline = time.monotonic() + 10
            while call(base, "GET", f"/cdm/client/demo/customer/{CCID}", KEY)[0] != 200 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert call(base, "PUT", f"/cdm/client/demo/customer/{CCID}/move/vip", KEY)[0] == 200


def test_workers_share_one_port_a_dead_one_is_replaced_and_none_outlives_the_supervisor(tmp_path):
    """`serve --workers 2`: both serve one port (SO_REUSEPORT), one killed is logged with its cause and started
    again while the others serve on, and SIGTERM to the supervisor ends them all."""
    log = tmp_path / "server.log"
    with redis_server() as url, running_server("--store", url, "--namespace", "workers", "--workers", "2", log_to=log) as base:
        assert eventually(lambda: "2 workers serve port" in log.read_text())  # announced once both listen
        workers = process_tree(base.pid)[1:]
        assert len(workers) == 2
        assert call(base, "PUT", f"/cdm/client/demo/customer/{CCID}/move/vip", KEY)[0] == 200
        assert {call(base, "PUT", f"/cdm/client/demo/customer/{CCID}/move/vip", KEY)[0] for _ in range(20)} == {409}  # one state
        os.kill(workers[0], signal.SIGKILL)
        assert eventually(lambda: "was killed by SIGKILL; starting another" in log.read_text()), log.read_text()[-2000:]
        assert eventually(lambda: len(process_tree(base.pid)[1:]) == 2 and workers[0] not in process_tree(base.pid))
        assert call(base, "GET", f"/cdm/client/demo/customer/{CCID}", KEY)[1]["product_group_id"] == "vip"
        everyone = process_tree(base.pid)
    assert eventually(lambda: not any(Path(f"/proc/{pid}").exists() for pid in everyone), seconds=10)


def test_workers_need_a_shared_store(tmp_path):
    command = [sys.executable, "-m", "mockserver", "serve", "--port", "0", "--workers", "2"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--workers above 1 needs --store redis://" in done.stderr

"""Concurrency stress through a real server process: 16 client threads, then the state's invariants (#5).

The threads send a bounded mix (request count and wall time) of Relay moves,
loads and retrieves and eGain merges and gets, racing on the same
customers on purpose. Afterwards the state is read back through the API and
checked against what the clients were told:

* Relay: every customer (fixture or successfully loaded) is retrievable, in
  one of the client's product groups, and that group (and the record's
  fields) is the one written by a successful move/load that can have been
  the last one (no successful write started after it ended). Every loaded
  ccid was announced `created` exactly once: none lost, none duplicated.
* Relay phones (#12): threads add and remove one number on 70 ccids (more
  than the 50 a number may have) and update its consent. No customer lists
  it twice, at most 50 carry it, each carries it or not as a possible last
  successful add or remove left it, and its consent record holds a possible
  last update's consent_type.
* eGain: every 204 merge removed its source (now gone) and nothing else;
  no source was merged twice; `before - merges == after`; every source's
  contact points live in exactly one customer, the target of its merge.
* No answer is a 5xx and none is outside the statuses the race can cause.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from xml.etree import ElementTree

import pytest
import yaml

from mockserver.testing.harness import running_server
from tests.e2e import REPO
from tests.e2e.wire import EGAIN, RELAY_KEY, USER, KeepAlive, call

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

THREADS = 16
MAX_REQUESTS = 10000
MAX_SECONDS = 10.0
GROUPS = ("default", "product-group-test-2", "vip")
FIXTURE_CCIDS = ("BAK-11984-007", "BAK-11984-008", "BAK-20000-001", "PAT-00042")
STRESS_CCIDS = tuple(f"STRESS-{i:03d}" for i in range(40))
NEW_CCIDS = tuple(f"NEW-{i:03d}" for i in range(30))  # not in the fixtures: loads race to create them
SOURCES = tuple(str(5000 + i) for i in range(600))
TARGETS = tuple(str(6000 + i) for i in range(10))  # few targets: merges race on lastModified
STAMP = "2022-01-01T00:00:00.000Z"
RELAY = "/cdm/client/demo"
SHARED_PHONE = "6105550000"  # wanted by more ccids than the 50 a number may have
PHONE_CCIDS = STRESS_CCIDS + NEW_CCIDS
CONSENT = f"/messaging/client/demo/consent/channel_addr/{SHARED_PHONE}/channel_type/sms"


def email_of(customer_id: str) -> str:
    return f"c{customer_id}@example.com"


def stress_fixtures(path) -> dict:
    """The default fixtures plus 40 Relay customers and 610 individual eGain customers."""
    data = yaml.safe_load((REPO / "fixtures" / "default.yaml").read_text())
    rng = random.Random(5)
    demo = next(c for c in data["relay"]["clients"] if c["client_id"] == "demo")
    for ccid in STRESS_CCIDS:
        demo["customers"].append({"ccid": ccid, "product_group_id": rng.choice(GROUPS), "first_name": "Fixture", "last_name": ccid})
    for customer_id in SOURCES + TARGETS:
        data["egain"]["customers"].append(
            {
                "id": customer_id,
                "customerName": f"Stress {customer_id}",
                "type": {"value": "individual", "displayValue": "Individual"},
                "lastModified": STAMP,
                "department": {"name": "Service"},
                "contacts": {
                    "contact": [
                        {
                            "id": str(int(customer_id) + 10000),
                            "systemCreated": False,
                            "firstName": "Stress",
                            "lastName": customer_id,
                            "lastModified": STAMP,
                            "email": [{"id": str(int(customer_id) + 20000), "emailAddress": email_of(customer_id), "lastModified": STAMP}],
                        }
                    ]
                },
            }
        )
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return data


@dataclass
class Write:
    """A successful move or load, with the client-side interval it happened in."""

    started: float
    ended: float
    group: str
    first_name: str | None  # set by loads only


@dataclass
class PhoneWrite:
    """A successful add_phone, remove_phone ("add", "remove") or consent update (its consent_type)."""

    started: float
    ended: float
    kind: str


@dataclass
class Journal:
    """What every thread saw, merged under one lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    statuses: Counter = field(default_factory=Counter)  # (operation, status) -> count
    unexpected: list = field(default_factory=list)  # (operation, status, body head)
    failures: list = field(default_factory=list)  # transport errors
    writes: dict = field(default_factory=lambda: defaultdict(list))  # ccid -> [Write]
    created: Counter = field(default_factory=Counter)  # ccid -> loads answered created=true
    merges: list = field(default_factory=list)  # (source, target) answered 204
    phones: dict = field(default_factory=lambda: defaultdict(list))  # ccid -> [PhoneWrite] answered 200
    consents: list = field(default_factory=list)  # [PhoneWrite] of consent updates answered 200
    requests: int = 0

    def take(self) -> bool:
        """Claim one more request of the budget."""
        with self.lock:
            if self.requests >= MAX_REQUESTS:
                return False
            self.requests += 1
            return True


class Client:
    """One thread's view: a keep-alive connection and the journal it reports to."""

    def __init__(self, base: str, journal: Journal, seed: int, deadline: float):
        self.http = KeepAlive(base)
        self.journal = journal
        self.rng = random.Random(seed)
        self.seed = seed
        self.deadline = deadline
        self.sequence = 0

    def run(self) -> None:
        operations = (self.move, self.load, self.retrieve, self.merge, self.get, self.phone)
        weights = (25, 20, 20, 20, 15, 20)
        try:
            while time.monotonic() < self.deadline and self.journal.take():
                self.rng.choices(operations, weights)[0]()
        finally:
            self.http.close()

    def send(
        self, operation: str, expected: set[int], method: str, path: str, headers: dict, body=None, count: bool = True
    ) -> tuple[int | None, bytes]:
        try:
            status, data = self.http.call(method, path, headers, body)
        except Exception as exc:  # noqa: BLE001 - every transport failure is a finding
            with self.journal.lock:
                self.journal.failures.append((operation, path, repr(exc)))
            return None, b""
        with self.journal.lock:
            if count or status not in expected:
                self.journal.statuses[(operation, status)] += 1
            if status not in expected:
                self.journal.unexpected.append((operation, path, status, data[:200]))
        return status, data

    # ------------------------------------------------------------ Relay

    def any_ccid(self) -> str:
        return self.rng.choice(FIXTURE_CCIDS + STRESS_CCIDS + NEW_CCIDS)

    def move(self) -> None:
        ccid, group = self.any_ccid(), self.rng.choice(GROUPS)
        started = time.monotonic()
        status, data = self.send("move", {200, 404, 409}, "PUT", f"{RELAY}/customer/{ccid}/move/{group}", RELAY_KEY)
        ended = time.monotonic()
        if status == 200:
            with self.journal.lock:
                self.journal.writes[ccid].append(Write(started, ended, group, None))
        elif status == 404 and ccid not in NEW_CCIDS:
            self.flag("move", ccid, status, data)

    def load(self) -> None:
        ccid, group = self.any_ccid(), self.rng.choice(GROUPS)
        self.sequence += 1
        first_name = f"T{self.seed}-{self.sequence}"
        body = {"product_group_id": group, "customer": {"ccid": ccid, "first_name": first_name, "last_name": "Load"}}
        started = time.monotonic()
        status, data = self.send("load", {200, 409}, "POST", f"{RELAY}/load-customer-record", RELAY_KEY, body)
        ended = time.monotonic()
        if status == 200:
            answer = json.loads(data)
            with self.journal.lock:
                self.journal.writes[ccid].append(Write(started, ended, group, first_name))
                if answer["created"]:
                    self.journal.created[ccid] += 1
            if answer["ccid"] != ccid or answer["product_group_id"] != group:
                self.flag("load", ccid, status, data)

    def phone(self) -> None:
        # three adds to a remove: about 52 of the 70 would carry it, so the 50-ccid limit is met under the race
        ccid, kind = self.rng.choice(PHONE_CCIDS), self.rng.choices(("add", "remove", "consent"), (3, 1, 1))[0]
        started = time.monotonic()
        if kind == "consent":
            consent = self.rng.choice(("written", "express", "stop"))
            status, data = self.send("consent", {200, 404}, "PUT", CONSENT, RELAY_KEY, {"consent_type": consent})
            if status == 200:
                with self.journal.lock:
                    self.journal.consents.append(PhoneWrite(started, time.monotonic(), consent))
            return
        # 404: a new ccid not loaded yet, or (remove) a number it lacks; 409: (add) it has it, or 50 ccids have it
        status, data = self.send(f"{kind}_phone", {200, 404, 409}, "PUT", f"{RELAY}/customer/{ccid}/{kind}_phone/{SHARED_PHONE}", RELAY_KEY)
        if status == 409 and b"already belongs to 50" in data:
            with self.journal.lock:
                self.journal.statuses[("add_phone", "409 of which 50 ccids")] += 1
        if status == 200:
            with self.journal.lock:
                self.journal.phones[ccid].append(PhoneWrite(started, time.monotonic(), kind))

    def retrieve(self) -> None:
        ccid = self.any_ccid()
        status, data = self.send("retrieve", {200, 404}, "GET", f"{RELAY}/customer/{ccid}", RELAY_KEY)
        if status == 200:
            record = json.loads(data)
            if record["ccid"] != ccid or record["product_group_id"] not in GROUPS:
                self.flag("retrieve", ccid, status, data)
        elif status == 404 and ccid not in NEW_CCIDS:
            self.flag("retrieve", ccid, status, data)  # a fixture customer must never disappear

    # ------------------------------------------------------------ eGain

    def merge(self) -> None:
        source, target = self.rng.choice(SOURCES), self.rng.choice(TARGETS)
        status, data = self.send("merge: get target", {200}, "GET", f"{EGAIN}/{target}", USER)
        if status != 200 or not self.journal.take():
            return
        stamp = json.loads(data)["customer"][0]["lastModified"]
        body = {
            "sourceCustomer": {"id": source},
            "targetCustomer": {"id": target, "lastModified": stamp, "contacts": {"contact": [{"firstName": f"Merged{self.seed}"}]}},
        }
        status, data = self.send("merge", {204, 400}, "PUT", f"{EGAIN}/merge", USER, body, count=False)
        if status == 204:
            with self.journal.lock:
                self.journal.statuses[("merge", 204)] += 1
                self.journal.merges.append((source, target))
        elif status == 400:
            code = json.loads(data)["code"]
            with self.journal.lock:
                self.journal.statuses[("merge", f"400 {code}")] += 1
            if code not in ("400-107", "400-111"):  # source already merged, target changed meanwhile
                self.flag("merge", source, status, data)

    def get(self) -> None:
        ids = self.rng.sample(SOURCES + TARGETS, 3)
        xml = self.rng.random() < 0.3
        headers = {**USER, "Accept": "application/xml"} if xml else USER
        status, data = self.send("get (xml)" if xml else "get", {200, 404}, "GET", f"{EGAIN}/{','.join(ids)}", headers)
        if status == 200:
            if xml:
                found = [c.get("id") for c in ElementTree.fromstring(data).findall("customer")]
            else:
                found = [c["id"] for c in json.loads(data)["customer"]]
            if len(found) != len(set(found)) or not set(found) <= set(ids):
                self.flag("get", ",".join(ids), status, data)
        elif status == 404 and set(ids) & set(TARGETS):
            self.flag("get", ",".join(ids), status, data)  # targets are never merged away

    def flag(self, operation: str, subject: str, status: int | None, data: bytes) -> None:
        with self.journal.lock:
            self.journal.unexpected.append((operation, subject, status, data[:200]))


# ---------------------------------------------------------------- reading state back


def egain_customers(base: str, ids: tuple[str, ...]) -> dict[str, dict]:
    """Every customer among `ids` that exists, read in batches of 75 (the spec's maximum)."""
    found: dict[str, dict] = {}
    for start in range(0, len(ids), 75):
        batch = ids[start : start + 75]
        answer = call(base, "GET", f"{EGAIN}/{','.join(batch)}", USER)
        assert answer.status in (200, 404), answer.describe()
        if answer.status == 200:
            for customer in answer.json()["customer"]:
                assert customer["id"] not in found, f"customer {customer['id']} answered twice"
                found[customer["id"]] = customer
    return found


def relay_customer(base: str, ccid: str) -> dict | None:
    answer = call(base, "GET", f"{RELAY}/customer/{ccid}", RELAY_KEY)
    assert answer.status in (200, 404), answer.describe()
    return answer.json() if answer.status == 200 else None


def emails(customer: dict) -> list[str]:
    return [e["emailAddress"] for c in customer.get("contacts", {}).get("contact", []) for e in c.get("email", [])]


def possible_last(writes: list[Write]) -> list[Write]:
    """The writes that can have been applied last: none other started after they ended."""
    latest_start = max(w.started for w in writes)
    return [w for w in writes if w.ended >= latest_start]


# ---------------------------------------------------------------- the test


@pytest.mark.parametrize(
    "server, saving", [("granian", False), ("waitress", False), ("granian", True)], ids=["granian", "waitress", "granian-autosave"]
)
def test_sixteen_threads_leave_consistent_state(tmp_path, server, saving):
    """`saving`: the state file is written every 0.1 s meanwhile, snapshotting state under the same races."""
    fixture_file = tmp_path / "stress.yaml"
    data = stress_fixtures(fixture_file)
    initial_groups = {c["ccid"]: c for c in next(c for c in data["relay"]["clients"] if c["client_id"] == "demo")["customers"]}
    all_egain_ids = tuple(c["id"] for c in data["egain"]["customers"])

    state_file = tmp_path / "state.json"
    extra = ["--state-file", str(state_file), "--save-interval", "0.1"] if saving else []
    with running_server("--fixtures", str(fixture_file), "--server", server, *extra) as base:
        before = egain_customers(base, all_egain_ids)
        assert len(before) == len(all_egain_ids)

        journal = Journal()
        started = time.monotonic()
        deadline = started + MAX_SECONDS
        with ThreadPoolExecutor(THREADS) as pool:
            for future in [pool.submit(Client(base, journal, seed, deadline).run) for seed in range(THREADS)]:
                future.result()
        duration = time.monotonic() - started

        after = egain_customers(base, all_egain_ids)
        relay_after = {ccid: relay_customer(base, ccid) for ccid in FIXTURE_CCIDS + STRESS_CCIDS + NEW_CCIDS}
        gone = {source: call(base, "GET", f"{EGAIN}/{source}", USER) for source, _ in journal.merges}
        consents_after = next(c for c in call(base, "GET", "/__admin/state").json()["relay"] if c["client_id"] == "demo")["consents"]
        assert call(base, "GET", "/__admin/health").status == 200

    mix = Counter()
    for (operation, status), count in journal.statuses.items():
        mix[f"{operation} {status}"] += count
    label = f"{server} + autosave" if saving else server
    print(f"\n[{label}] {journal.requests} requests, {THREADS} threads, {duration:.1f} s ({journal.requests / duration:.0f}/s)")
    for key in sorted(mix):
        print(f"  {key:28s} {mix[key]:5d}")
    print(f"  successful merges: {len(journal.merges)}; Relay customers written: {len(journal.writes)}")

    # No transport failure, no 5xx, nothing outside what the race can cause.
    assert not journal.failures, journal.failures[:5]
    assert not [s for (_, s) in journal.statuses if isinstance(s, int) and s >= 500], mix
    assert not journal.unexpected, journal.unexpected[:5]
    assert journal.requests >= 500, "too few requests to stress anything"
    assert journal.merges and journal.writes, "the race never happened"

    # Relay: every customer exactly once, in a group a possible last write put it in.
    for ccid in FIXTURE_CCIDS + STRESS_CCIDS:
        assert relay_after[ccid] is not None, f"fixture customer {ccid} was lost"
    for ccid, record in relay_after.items():
        writes = journal.writes.get(ccid, [])
        if ccid in NEW_CCIDS:
            loads = [w for w in writes if w.first_name is not None]
            assert (record is not None) == bool(loads), f"{ccid}: exists={record is not None} after {len(loads)} successful loads"
            if record is None:
                assert not writes, f"{ccid} was moved but does not exist"
                continue
            assert journal.created[ccid] == 1, f"{ccid} was announced created {journal.created[ccid]} times"
        else:
            assert journal.created[ccid] == 0, f"existing customer {ccid} was announced created"
        assert record["ccid"] == ccid
        assert record["product_group_id"] in GROUPS
        if writes:
            candidates = possible_last(writes)
            assert record["product_group_id"] in {w.group for w in candidates}, (ccid, record, candidates)
        else:
            assert record["product_group_id"] == initial_groups[ccid]["product_group_id"], (ccid, record)
        loads = [w for w in writes if w.first_name is not None]
        if loads:
            assert record["first_name"] in {w.first_name for w in possible_last(loads)}, (ccid, record, possible_last(loads))
        else:
            assert record["first_name"] == initial_groups[ccid]["first_name"], (ccid, record)

    # Relay phones: carried once or not at all, as a possible last add or remove left it; at most 50 carriers.
    carriers = []
    for ccid in PHONE_CCIDS:
        numbers = [c["channel_addr"] for c in (relay_after[ccid] or {}).get("notification_channels", [])]
        assert len(numbers) == len(set(numbers)), (ccid, numbers)
        has = SHARED_PHONE in numbers
        carriers += [ccid] if has else []
        changes = journal.phones.get(ccid, [])
        assert (("add" if has else "remove") in {w.kind for w in possible_last(changes)}) if changes else not has, (ccid, has, changes)
    assert journal.phones and 0 < len(carriers) <= 50, carriers
    if journal.consents:
        [record] = [c for c in consents_after if c["channel_addr"] == SHARED_PHONE]
        assert record["consent_type"] in {w.kind for w in possible_last(journal.consents)}, (record, possible_last(journal.consents))
        assert record["created_at"] <= record["updated_at"]

    # eGain: each 204 removed exactly its source, no source twice, nothing else removed.
    merged_sources = Counter(source for source, _ in journal.merges)
    assert max(merged_sources.values()) == 1, [s for s, n in merged_sources.items() if n > 1]
    for source in merged_sources:
        assert source not in after, f"source {source} was merged (204) but still exists"
        assert gone[source].status == 404 and gone[source].json()["code"] == "404-101", (source, gone[source].describe())
    for customer_id in before:
        if customer_id not in merged_sources:
            assert customer_id in after, f"customer {customer_id} was never a merge source but is gone"
    assert len(before) - len(journal.merges) == len(after)

    # Each source's contact points live in exactly one customer: the target it was merged into.
    holders = defaultdict(list)
    for customer in after.values():
        for address in emails(customer):
            holders[address].append(customer["id"])
    target_of = dict(journal.merges)
    for source in SOURCES:
        expected = target_of.get(source, source)
        assert holders[email_of(source)] == [expected], f"{email_of(source)} held by {holders[email_of(source)]}, expected [{expected}]"
    for target in TARGETS:
        assert holders[email_of(target)] == [target]

    if saving:  # the last save (on shutdown) holds the final state: the same customers
        saved = json.loads(state_file.read_text())["state"]
        assert sorted(c["id"] for c in saved["egain"]["customers"]) == sorted(after)
        demo = next(c for c in saved["relay"]["clients"] if c["client_id"] == "demo")
        assert {c["ccid"]: c["product_group_id"] for c in demo["customers"]} == {
            ccid: record["product_group_id"] for ccid, record in relay_after.items() if record is not None
        }


# ---------------------------------------------------------------- two servers, one port (a defect this found, #5)


def test_a_second_server_cannot_share_a_busy_port():
    """A second `serve` on a port already served must stop with an error, never split the traffic (and the state) with the first."""
    with running_server() as base:
        port = base.rsplit(":", 1)[1]
        second = subprocess.Popen(
            [sys.executable, "-m", "mockserver", "serve", "--port", port], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        seen = None
        try:
            output, _ = second.communicate(timeout=8)
        except subprocess.TimeoutExpired:
            # It is serving too: show what clients now see after one move.
            assert call(base, "PUT", f"{RELAY}/customer/BAK-11984-007/move/vip", RELAY_KEY).status == 200
            # One new connection each: the kernel spreads them over both servers.
            seen = Counter((relay_customer(base, "BAK-11984-007") or {}).get("product_group_id") for _ in range(40))
            second.terminate()
            output, _ = second.communicate(timeout=15)
        if seen is not None:
            pytest.fail(
                f"a second server started on busy port {port} and shares it with the first; "
                f"after one move to vip, 40 retrieves saw {dict(seen)}\n{output[-500:]}"
            )
        assert second.returncode == 2, output
        assert "in use" in output.lower(), output
        assert relay_customer(base, "BAK-11984-007")["product_group_id"] == "default"

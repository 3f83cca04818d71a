"""The QA toolkit under concurrency: 16 threads of mixed API and admin calls on one real server (#9).

Each thread works in a session of its own (with a `times` rule in it) and
also hits one shared rule in the default session; meanwhile it reads the
journal, counts, and now and then moves to a fresh session, leaving the old
one to expire (`--session-idle 1`). Afterwards:

* every `times` rule fired exactly `times` times: its own rule per session,
  and the shared one across all 16 threads at once;
* each session's journal holds exactly the requests sent in it;
* no answer was a 5xx; every answer was one the mix can cause.

Bounded: at most MAX_SECONDS of load and MAX_REQUESTS per thread.
"""

from __future__ import annotations

import http.client
import json
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest

from mockserver.testing.harness import running_server
from tests.e2e.wire import RELAY_KEY, USER, address, call

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
THREADS = 16
MAX_SECONDS = 6.0
MAX_REQUESTS = 2000
OWN_TIMES = 15  # each session's retrieve rule
SHARED_TIMES = 100  # the default session's rule on getCustomersByIds, raced by every thread
RETRIEVE = "/cdm/client/demo/customer/BAK-11984-008"
GET = "/core/customermgr/v3/customer/1005,1010"


@dataclass
class Tally:
    statuses: Counter = field(default_factory=Counter)
    sessions: dict[str, int] = field(default_factory=dict)  # session -> requests sent in it
    own_404s: dict[str, int] = field(default_factory=dict)  # session -> 404s its rule caused
    shared_404s: int = 0
    five_xx: list[str] = field(default_factory=list)


class Client:
    """One keep-alive connection; every request counted against the session it names."""

    def __init__(self, base: str, tally: Tally):
        self.connection = http.client.HTTPConnection(*address(base), timeout=10)
        self.tally = tally

    def send(self, session: str | None, method: str, path: str, headers: dict | None = None, body: dict | None = None) -> int:
        headers = {**(headers or {}), **({"X-Mock-Session": session} if session else {})}
        data = json.dumps(body).encode() if body is not None else None
        if data is not None:
            headers["Content-Type"] = "application/json"
        self.connection.request(method, path, body=data, headers=headers)
        response = self.connection.getresponse()
        response.read()
        key = session or "default"
        self.tally.sessions[key] = self.tally.sessions.get(key, 0) + 1
        self.tally.statuses[(path.split("?")[0].rsplit("/", 1)[-1] if path.startswith("/__admin") else method, response.status)] += 1
        if response.status >= 500:
            self.tally.five_xx.append(f"{method} {path} -> {response.status}")
        return response.status


def work(base: str, index: int, stop_at: float) -> Tally:
    tally = Tally()
    client = Client(base, tally)
    generation, session = 0, None
    sent = 0
    while sent < MAX_REQUESTS and time.monotonic() < stop_at:
        if session is None or sent % 300 == 0:
            generation += 1
            session = f"t{index}-g{generation}"
            own_rule = {"operationId": "retrieveCustomer", "status": 404, "times": OWN_TIMES}
            assert client.send(session, "POST", "/__admin/faults", body=own_rule) == 201
            tally.own_404s[session] = 0
        step = sent % 6
        if step in (0, 1):
            if client.send(session, "GET", RETRIEVE, RELAY_KEY) == 404:
                tally.own_404s[session] += 1
        elif step == 2:
            group = ("vip", "default")[sent // 6 % 2]
            client.send(session, "PUT", f"/cdm/client/demo/customer/BAK-11984-007/move/{group}", RELAY_KEY)
        elif step == 3:
            if client.send(None, "GET", GET, USER) == 404:
                tally.shared_404s += 1
        elif step == 4:
            client.send(session, "GET", "/__admin/requests?limit=5")
        else:
            client.send(session, "POST", "/__admin/requests/count", body={"operationId": "retrieveCustomer"})
        sent += 1
    # The last session is still live: its journal must hold exactly what was sent in it.
    count = call(base, "POST", "/__admin/requests/count", {"X-Mock-Session": session}, {}).json()["count"]
    assert count == tally.sessions[session], (session, count, tally.sessions[session])
    faults = call(base, "GET", "/__admin/faults", {"X-Mock-Session": session}).json()["faults"]
    assert [(f["matched"], f["remaining"]) for f in faults] == [(tally.own_404s[session], OWN_TIMES - tally.own_404s[session])]
    return tally


def test_rules_journal_and_sessions_hold_their_invariants_under_16_threads():
    shared_rule = {"operationId": "getCustomersByIds", "status": 404, "times": SHARED_TIMES}
    with running_server("--session-idle", "1", "--max-sessions", "1000", "--journal-size", "100000") as base:
        assert call(base, "POST", "/__admin/faults", body=shared_rule).status == 201
        assert call(base, "DELETE", "/__admin/requests").status == 204  # the journal now holds this call only
        stop_at = time.monotonic() + MAX_SECONDS
        with ThreadPoolExecutor(THREADS) as pool:
            tallies = list(pool.map(lambda i: work(base, i, stop_at), range(THREADS)))
        five_xx = [line for t in tallies for line in t.five_xx]
        assert not five_xx, five_xx[:5]
        default_sent = sum(t.sessions.get("default", 0) for t in tallies) + 1  # and the clearing call
        assert call(base, "POST", "/__admin/requests/count", body={}).json()["count"] == default_sent
        shared = call(base, "GET", "/__admin/faults").json()["faults"][0]
        assert shared["matched"] == SHARED_TIMES and shared["remaining"] == 0
        assert sum(t.shared_404s for t in tallies) == SHARED_TIMES  # exactly N, raced by 16 threads
        for tally in tallies:
            # Every full session fired its rule exactly OWN_TIMES times (the last may have ended early).
            for session, fired in list(tally.own_404s.items())[:-1]:
                assert fired == OWN_TIMES, (session, fired)
        allowed = {200, 201, 404, 409}
        unexpected = {key: n for t in tallies for key, n in t.statuses.items() if key[1] not in allowed}
        assert not unexpected, unexpected
        assert len(call(base, "GET", "/__admin/sessions").json()["sessions"]) > THREADS  # the last ones are still live
        time.sleep(1.6)  # then every test session is idle past --session-idle 1
        assert [s["id"] for s in call(base, "GET", "/__admin/sessions").json()["sessions"]] == ["default"]

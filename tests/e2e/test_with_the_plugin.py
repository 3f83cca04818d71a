"""End-to-end checks written as a user of the pytest plugin writes them: `mock_session` per test (#13 §4).

The plugin's server (one per xdist worker) is shared by these tests; each test's own session keeps them apart.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import pytest

pytestmark = pytest.mark.e2e
MERGE = "/core/customermgr/v3/customer/merge"
SEED_MERGE = {
    "sourceCustomer": {"id": "1002"},
    "targetCustomer": {"id": "1005", "lastModified": "2021-10-25T11:29:58.000Z", "contacts": {"contact": [{"firstName": "John"}]}},
}


def send(mock_session, method: str, path: str, body: dict | None = None) -> int:
    data = json.dumps(body).encode() if body is not None else None
    headers = {**mock_session.headers, **({"Content-Type": "application/json"} if data else {})}
    request = urllib.request.Request(mock_session.url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code


def test_a_merge_against_a_stale_target_is_refused_until_the_client_reads_again(mock_session):
    mock_session.scenario("merge-stale")
    assert send(mock_session, "PUT", MERGE, SEED_MERGE) == 400
    [refused] = mock_session.requests(operationId="mergeCustomer")
    assert refused["status"] == 400 and refused["violations"] == []  # a state refusal, not a contract violation
    mock_session.reset()
    assert send(mock_session, "PUT", MERGE, SEED_MERGE) == 204


def test_waiting_for_a_request_the_app_sends_later(mock_session):
    sender = threading.Timer(0.3, send, args=(mock_session, "PUT", MERGE, SEED_MERGE))
    sender.start()
    started = time.monotonic()
    arrived = mock_session.wait_for(operationId="mergeCustomer", timeout=5)
    sender.join()
    assert arrived[0]["status"] == 204 and time.monotonic() - started >= 0.25


def test_a_delay_rule_lasts_only_inside_its_block(mock_session):
    with mock_session.fault(operationId="mergeCustomer", delay_ms=300):
        started = time.monotonic()
        assert send(mock_session, "PUT", MERGE, SEED_MERGE) == 204
        assert time.monotonic() - started >= 0.3
    assert mock_session.faults() == []
    assert mock_session.count(invalid=True) == 0

"""The QA toolkit through real server processes, on granian and on waitress, as a user's client sees it.

Each fault kind is checked at the socket: a reset is an RST with no bytes,
an empty response is a close with no bytes, a malformed body is a status and
headers then a body that does not parse. Delays are elapsed time; a reset is
seen as a reset; every admin call is made at least once.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time

import pytest

from mockserver.testing.harness import running_server
from tests.e2e.wire import RELAY_KEY, SEED_MERGE, USER, address, call, eventually

pytestmark = pytest.mark.e2e
SERVERS = ["granian", "waitress"]
MOVE = "/cdm/client/demo/customer/BAK-11984-007/move/vip"
RETRIEVE = "/cdm/client/demo/customer/BAK-11984-007"
MERGE = "/core/customermgr/v3/customer/merge"


@pytest.fixture(scope="module", params=SERVERS)
def server(request):
    with running_server("--server", request.param) as base:
        yield base


@pytest.fixture
def base(server):
    """The module's server, back to a fresh start for each test."""
    for listed in call(server, "GET", "/__admin/sessions").json()["sessions"]:
        if listed["id"] != "default":
            call(server, "DELETE", f"/__admin/sessions/{listed['id']}")
    for path in ("/__admin/faults", "/__admin/requests"):
        assert call(server, "DELETE", path).status == 204
    assert call(server, "POST", "/__admin/reset").status == 200
    return server


def raw_exchange(base: str, request: bytes, timeout: float = 5.0) -> tuple[bytes, str]:
    """Send a request on a raw socket; return every byte received and how the connection ended."""
    received = b""
    with socket.create_connection(address(base), timeout=timeout) as sock:
        sock.sendall(request)
        try:
            while chunk := sock.recv(65536):
                received += chunk
            return received, "closed"
        except ConnectionResetError:
            return received, "reset"


def move_request(headers: str = "") -> bytes:
    return f"PUT {MOVE} HTTP/1.1\r\nHost: x\r\nxx-relay-api-key: demo-key\r\nContent-Length: 0\r\n{headers}\r\n".encode()


def group(base: str, session: str | None = None) -> str:
    headers = {**RELAY_KEY, **({"X-Mock-Session": session} if session else {})}
    return call(base, "GET", RETRIEVE, headers).json()["product_group_id"]


def test_connection_reset_is_an_rst_with_no_bytes_and_changes_nothing(base):
    assert (
        call(base, "POST", "/__admin/faults", body={"operationId": "moveCustomer", "fault": "connection_reset", "times": 1}).status == 201
    )
    received, ended = raw_exchange(base, move_request())
    assert (received, ended) == (b"", "reset")
    assert group(base) == "default"
    entry = call(base, "GET", "/__admin/requests?operationId=moveCustomer").json()["requests"][0]
    assert entry["fault"] == "f1" and entry["status"] is None
    assert call(base, "PUT", MOVE, RELAY_KEY).status == 200  # times: 1, then requests go through


def test_empty_response_is_a_close_with_no_bytes(base):
    call(base, "POST", "/__admin/faults", body={"operationId": "moveCustomer", "fault": "empty_response"})
    assert raw_exchange(base, move_request()) == (b"", "closed")
    connection = http.client.HTTPConnection(*address(base), timeout=5)
    connection.request("PUT", MOVE, headers=RELAY_KEY)
    with pytest.raises(http.client.RemoteDisconnected):
        connection.getresponse()
    connection.close()


def test_malformed_body_is_a_documented_status_and_headers_then_a_body_that_does_not_parse(base):
    call(base, "POST", "/__admin/faults", body={"operationId": "retrieveCustomer", "fault": "malformed_body"})
    answer = call(base, "GET", RETRIEVE, RELAY_KEY)
    assert answer.status == 200 and answer.headers["content-type"] == "application/json" and answer.body
    with pytest.raises(ValueError):
        json.loads(answer.body)


def test_500_twice_then_200(base):
    call(base, "POST", "/__admin/faults", body={"operationId": "moveCustomer", "status": 500, "times": 2})
    statuses = [call(base, "PUT", MOVE, RELAY_KEY).status for _ in range(3)]
    assert statuses == [500, 500, 200]
    assert call(base, "POST", "/__admin/requests/count", body={"operationId": "moveCustomer", "status": 500}).json() == {"count": 2}


def test_a_delay_is_elapsed_time_and_a_reset_is_a_reset(base):
    call(base, "POST", "/__admin/faults", body={"operationId": "moveCustomer", "delay_ms": 400})
    delayed = call(base, "PUT", MOVE, RELAY_KEY)
    assert delayed.status == 200 and delayed.seconds >= 0.4
    assert group(base) == "vip"
    assert call(base, "POST", "/__admin/reset").status == 200
    assert group(base) == "default"


def test_prefer_delay_is_elapsed_time(base):
    answer = call(base, "GET", RETRIEVE, {**RELAY_KEY, "Prefer": "delay=300"})
    assert answer.status == 200 and answer.seconds >= 0.3


def test_wait_answers_when_the_request_arrives(base):
    result: dict = {}

    def wait() -> None:
        result["answer"] = call(base, "POST", "/__admin/requests/wait", body={"operationId": "mergeCustomer", "timeout_ms": 5000})

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.3)
    assert call(base, "PUT", MERGE, USER, SEED_MERGE).status == 204
    waiter.join(10)
    answer = result["answer"]
    assert answer.status == 200 and answer.json()["count"] == 1 and answer.json()["requests"][0]["status"] == 204
    assert 0.3 <= answer.seconds < 5
    timed_out = call(base, "POST", "/__admin/requests/wait", body={"operationId": "mergeCustomer", "count": 2, "timeout_ms": 200})
    assert timed_out.status == 408 and timed_out.json()["count"] == 1


def test_sessions_isolate_state_rules_and_journal(base):
    session = {"X-Mock-Session": "e2e-1"}
    call(base, "POST", "/__admin/faults", {**session}, {"operationId": "retrieveCustomer", "status": 404})
    assert call(base, "PUT", MOVE, {**RELAY_KEY, **session}).status == 200
    assert call(base, "GET", RETRIEVE, {**RELAY_KEY, **session}).status == 404
    assert group(base) == "default"
    mine = call(base, "GET", "/__admin/requests?admin=false", session)
    assert mine.status == 400  # not a filter of the admin API: refused, naming it
    listed = call(base, "GET", "/__admin/requests", session).json()
    assert [e["operationId"] for e in listed["requests"]] == ["adminFindRequests", "retrieveCustomer", "moveCustomer", "adminAddFault"]
    assert {s["id"] for s in call(base, "GET", "/__admin/sessions").json()["sessions"]} == {"default", "e2e-1"}
    assert call(base, "DELETE", "/__admin/sessions/e2e-1").status == 204


def test_every_remaining_admin_call(base):
    assert call(base, "GET", "/__admin/health").json() == {"status": "ok"}
    rule = call(base, "POST", "/__admin/faults", body={"status": 500, "operationId": "mergeCustomer"}).json()
    assert call(base, "GET", "/__admin/faults").json()["faults"] == [rule]
    assert call(base, "DELETE", f"/__admin/faults/{rule['id']}").status == 204
    call(base, "GET", "/cdm/nowhere")
    unmatched = call(base, "GET", "/__admin/requests/unmatched").json()["requests"]
    assert unmatched[0]["path"] == "/cdm/nowhere" and unmatched[0]["nearest"]
    assert {s["name"] for s in call(base, "GET", "/__admin/scenarios").json()["scenarios"]} >= {"relay-outage", "merge-stale"}
    applied = call(base, "POST", "/__admin/scenarios/relay-outage", {"X-Mock-Session": "outage"})
    assert applied.status == 200 and applied.json()["session"] == "outage"
    assert call(base, "PUT", MOVE, {**RELAY_KEY, "X-Mock-Session": "outage"}).status == 500


def test_scenario_at_start():
    with running_server("--scenario", "relay-outage") as base:
        assert call(base, "PUT", MOVE, RELAY_KEY).status == 500
        assert call(base, "GET", "/__admin/faults").json()["faults"][0]["status"] == 500


def test_a_long_poll_whose_client_left_gives_its_slot_back():
    def served(base: str) -> int:
        """Requests the default session has taken in (each counts when it enters, this one too)."""
        return next(s["requests"] for s in call(base, "GET", "/__admin/sessions").json()["sessions"] if s["id"] == "default")

    def delayed(base: str) -> int | None:
        return call(base, "GET", RETRIEVE, {**RELAY_KEY, "Prefer": "delay=10"}).status

    with running_server("--max-waits", "1") as base:
        body = b'{"operationId": "mergeCustomer", "timeout_ms": 30000}'
        request = (
            f"POST /__admin/requests/wait HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        before = served(base)
        with socket.create_connection(address(base), timeout=5) as sock:
            sock.sendall(request)
            calls = [0]

            def entered() -> bool:
                calls[0] += 1
                return served(base) >= before + calls[0] + 1  # the poll, besides these checks

            assert eventually(entered, 5)
            time.sleep(0.2)  # from entering to waiting takes no await but the body's: well within this
            assert delayed(base) == 500  # the poll holds the only wait slot
        assert eventually(lambda: delayed(base) == 200, 5)  # its client left: the poll ended and freed the slot


def test_a_request_cut_short_changes_nothing():
    with running_server() as base:
        with socket.create_connection(address(base), timeout=5) as sock:
            sock.sendall(f'PUT {MOVE} HTTP/1.1\r\nHost: x\r\nxx-relay-api-key: demo-key\r\nContent-Length: 100\r\n\r\n{{"a"'.encode())
        time.sleep(0.3)
        assert group(base) == "default"
        entry = call(base, "GET", "/__admin/requests?method=PUT").json()["requests"][0]
        assert entry["status"] is None


def test_stopping_does_not_wait_for_a_pending_delay(tmp_path):
    state = tmp_path / "state.json"
    with running_server("--state-file", str(state)) as base:
        call(base, "PUT", MOVE, RELAY_KEY)
        waiting = threading.Thread(target=call, args=(base, "GET", RETRIEVE, {**RELAY_KEY, "Prefer": "delay=60000"}, None, 70))
        waiting.start()
        time.sleep(0.3)
        started = time.monotonic()
        base.process.terminate()
        base.process.wait(timeout=10)
        assert time.monotonic() - started < 5 and base.process.returncode == 0
        waiting.join(10)
    saved = json.loads(state.read_text())["state"]["relay"]["clients"][0]["customers"]
    assert next(c for c in saved if c["ccid"] == "BAK-11984-007")["product_group_id"] == "vip"

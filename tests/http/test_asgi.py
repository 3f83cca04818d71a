"""The ASGI front (what granian serves) in process, no socket: same answers as the WSGI side, its own deadlines and waits."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from mockserver.http.asgi import AsgiApp
from mockserver.mock import create_app
from mockserver.qa.journal import RequestFilter
from mockserver.settings import Settings
from tests.conftest import RELAY_KEY, SEED_MERGE, USER

MOVE = "/cdm/client/demo/customer/BAK-11984-007/move/vip"
RETRIEVE = "/cdm/client/demo/customer/BAK-11984-008"
LOAD = "/cdm/client/demo/load-customer-record"
MERGE = "/core/customermgr/v3/customer/merge"


def build(**overrides) -> tuple[AsgiApp, object]:
    settings = Settings(strict_responses=True, **overrides)
    flask_app = create_app(settings)
    return flask_app.mock.asgi(), flask_app


def scope(method: str, target: str, headers: dict[str, str] | None = None) -> dict:
    path, _, query = target.partition("?")
    return {
        "type": "http",
        "http_version": "1.1",
        "scheme": "http",
        "server": ("127.0.0.1", 8080),
        "client": ("127.0.0.1", 50000),
        "root_path": "",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
    }


async def call(app, method: str, target: str, headers=None, chunks: list[bytes] | None = None, gap: float = 0.0) -> dict:
    """Send one request; the body in `chunks`, `gap` seconds apart. Returns status, headers and body."""
    pending = list(chunks or [b""])
    sent: list[dict] = []

    async def receive() -> dict:
        if not pending:  # the body was read whole: as a server does, answer only when the client leaves
            await asyncio.Event().wait()
        if gap:
            await asyncio.sleep(gap)
        chunk = pending.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(pending)}

    async def send(message: dict) -> None:
        sent.append(message)

    await app(scope(method, target, headers), receive, send)
    start = sent[0]
    return {
        "status": start["status"],
        "headers": {k.decode(): v.decode() for k, v in start["headers"]},
        "body": b"".join(m.get("body", b"") for m in sent[1:]),
    }


def run(coroutine):
    return asyncio.run(coroutine)


REQUESTS = [
    ("PUT", MOVE, RELAY_KEY, b""),
    ("PUT", MOVE, RELAY_KEY, b""),  # the 409 of moving twice
    ("GET", RETRIEVE, {"xx-relay-api-key": "other-key"}, b""),
    ("GET", RETRIEVE + "?x=%ZZ&y=%C3%A9", RELAY_KEY, b""),
    ("GET", "/cdm/client/demo/customer/%E2%82%AC%FF", RELAY_KEY, b""),
    ("POST", LOAD, {**RELAY_KEY, "Content-Type": "application/json"}, b'{"product_group_id": "default", "customer": {"ccid": "N-1"}}'),
    ("PUT", MERGE, {**USER, "Content-Type": "application/json"}, json.dumps(SEED_MERGE).encode()),
    ("GET", "/core/customermgr/v3/customer/1005?foo=bar", USER, b""),
    ("GET", "/core/customermgr/v3/customer/1010", {**USER, "Accept": "application/xml"}, b""),
    ("DELETE", MOVE, RELAY_KEY, b""),
    ("GET", "/nowhere", {}, b""),
    ("PUT", MOVE, {**RELAY_KEY, "Prefer": "code=500"}, b""),
]


def test_the_asgi_front_answers_exactly_as_the_wsgi_side():
    app, flask_app = build()
    wsgi = create_app(Settings(strict_responses=True)).test_client()
    for method, target, headers, body in REQUESTS:
        got = run(call(app, method, target, headers, [body]))
        expected = wsgi.open(target, method=method, headers=headers, data=body)
        assert (got["status"], got["body"]) == (expected.status_code, expected.get_data()), (method, target)
        assert got["headers"].get("content-type") == expected.headers.get("Content-Type"), (method, target)


def test_admin_calls_are_served_on_the_loop_too():
    app, flask_app = build()
    run(call(app, "PUT", MOVE, RELAY_KEY))
    answer = run(call(app, "POST", "/__admin/reset"))
    assert answer["status"] == 200 and json.loads(answer["body"])["status"] == "reset"
    assert flask_app.mock.store.state["relay"].books["demo"].customers["BAK-11984-007"]["product_group_id"] == "default"


def test_a_body_that_does_not_arrive_in_time_is_a_documented_408_and_changes_nothing():
    app, flask_app = build(body_timeout=0.2)
    body = [b'{"product_group_id": "default", ', b'"customer": {"ccid": "SLOW-1"}}']
    answer = run(call(app, "POST", LOAD, {**RELAY_KEY, "Content-Type": "application/json"}, body, gap=0.15))
    assert answer["status"] == 408 and answer["headers"]["connection"] == "close"
    assert json.loads(answer["body"]) == {"message": "The request body did not arrive within 0.2 s; the connection is closed."}
    assert "SLOW-1" not in flask_app.mock.store.state["relay"].books["demo"].customers
    egain = run(call(app, "PUT", MERGE, {**USER, "Accept": "application/xml"}, [b"{", b"}"], gap=0.15))
    assert egain["status"] == 408 and json.loads(egain["body"])["code"] == "408-101"


def test_an_announced_body_over_the_limit_is_refused_unread():
    app, _ = build(max_body_bytes=10)
    answer = run(call(app, "POST", LOAD, {**RELAY_KEY, "Content-Type": "application/json", "Content-Length": "11"}, [b"x" * 11]))
    assert answer["status"] == 400 and "too large" in json.loads(answer["body"])["message"]


def test_a_chunked_body_over_the_limit_is_refused():
    app, _ = build(max_body_bytes=10)
    answer = run(call(app, "POST", LOAD, {**RELAY_KEY, "Content-Type": "application/json"}, [b"x" * 6, b"x" * 6]))
    assert answer["status"] == 400 and "too large" in json.loads(answer["body"])["message"]


def test_delays_wait_on_the_loop_together_and_run_the_request_when_they_end():
    app, flask_app = build()
    customers = flask_app.mock.store.state["relay"].books["demo"].customers

    async def scenario():
        delayed = asyncio.gather(*(call(app, "GET", RETRIEVE, {**RELAY_KEY, "Prefer": "delay=300"}) for _ in range(50)))
        move = asyncio.ensure_future(call(app, "PUT", MOVE, {**RELAY_KEY, "Prefer": "delay=200"}))
        await asyncio.sleep(0.1)
        unchanged_while_waiting = customers["BAK-11984-007"]["product_group_id"]
        plain = await call(app, "GET", RETRIEVE, RELAY_KEY)
        return unchanged_while_waiting, plain, await move, await delayed

    started = time.monotonic()
    unchanged, plain, move, delayed = run(scenario())
    elapsed = time.monotonic() - started
    assert unchanged == "default" and plain["status"] == 200
    assert move["status"] == 200 and customers["BAK-11984-007"]["product_group_id"] == "vip"
    assert [a["status"] for a in delayed] == [200] * 50
    assert 0.3 <= elapsed < 1.5  # 50 delays of 0.3 s waited at once, not one after another


def test_past_the_cap_on_waits_a_request_is_refused_with_the_documented_500_and_not_run():
    app, flask_app = build(max_waits=2)
    customers = flask_app.mock.store.state["relay"].books["demo"].customers

    async def scenario():
        held = [asyncio.ensure_future(call(app, "GET", RETRIEVE, {**RELAY_KEY, "Prefer": "delay=200"})) for _ in range(2)]
        await asyncio.sleep(0.05)
        refused = await call(app, "PUT", MOVE, {**RELAY_KEY, "Prefer": "delay=10"})
        return refused, [await h for h in held]

    refused, held = run(scenario())
    assert refused["status"] == 500 and "--max-waits 2" in json.loads(refused["body"])["message"]
    assert customers["BAK-11984-007"]["product_group_id"] == "default"
    assert [h["status"] for h in held] == [200, 200]
    assert app.waits.active == 0


def test_a_request_a_malformed_body_rule_delays_is_refused_past_the_cap_with_its_whole_body():
    """Only the rule's own answer is cut in half: the --max-waits refusal of a request it matched is whole (review of #20)."""
    app, flask_app = build(max_waits=1)
    rule = flask_app.test_client().post(
        "/__admin/faults", json={"operationId": "retrieveCustomer", "fault": "malformed_body", "delay_ms": 300}
    )
    assert rule.status_code == 201

    async def scenario():
        held = asyncio.ensure_future(call(app, "GET", RETRIEVE, RELAY_KEY))
        await asyncio.sleep(0.05)
        return await call(app, "GET", RETRIEVE, RELAY_KEY), await held

    refused, cut = run(scenario())
    assert refused["status"] == 500 and "--max-waits 1" in json.loads(refused["body"])["message"]
    with pytest.raises(ValueError):
        json.loads(cut["body"])  # the rule's answer: a body cut in half


@pytest.mark.parametrize("prefer", ["delay=-1", "delay=1.5", "delay=600001", "delay=", "delay=abc"])
def test_a_malformed_delay_is_a_400_in_the_apis_format(prefer):
    app, _ = build()
    relay = run(call(app, "PUT", MOVE, {**RELAY_KEY, "Prefer": prefer}))
    assert relay["status"] == 400 and "Prefer: delay" in json.loads(relay["body"])["message"]
    egain = run(call(app, "PUT", MERGE, {**USER, "Prefer": prefer}))
    assert egain["status"] == 400 and json.loads(egain["body"])["code"] == "400-119"


def test_a_body_timeout_on_an_admin_call_is_its_documented_408():
    app, _ = build(body_timeout=0.2)
    answer = run(call(app, "POST", "/__admin/faults", {"Content-Type": "application/json"}, [b"{", b"}"], gap=0.15))
    assert answer["status"] == 408 and answer["headers"]["connection"] == "close"


def test_a_request_cut_short_by_its_client_does_not_run():
    app, flask_app = build()
    sent: list[dict] = []
    pieces = [{"type": "http.request", "body": b'{"product_group_id"', "more_body": True}, {"type": "http.disconnect"}]

    async def receive() -> dict:
        return pieces.pop(0)

    async def send(message: dict) -> None:
        sent.append(message)

    headers = {**RELAY_KEY, "Content-Type": "application/json", "Content-Length": "200"}
    run(app(scope("POST", "/cdm/client/demo/load-customer-record", headers), receive, send))
    assert sent == []  # nobody is left to answer
    entry = flask_app.mock.sessions.default.journal.find(RequestFilter())[0]
    assert entry.status is None and entry.operation_id is None


def test_stopping_ends_delays_and_long_polls_at_once():
    app, _ = build()

    async def scenario():
        delayed = asyncio.ensure_future(call(app, "GET", RETRIEVE, {**RELAY_KEY, "Prefer": "delay=60000"}))
        poll = asyncio.ensure_future(
            call(
                app,
                "POST",
                "/__admin/requests/wait",
                {"Content-Type": "application/json"},
                [b'{"operationId": "mergeCustomer", "timeout_ms": 30000}'],
            )
        )
        await asyncio.sleep(0.1)
        app.stopping.set()
        return await asyncio.wait_for(asyncio.gather(delayed, poll), 5)

    started = time.monotonic()
    delayed, poll = run(scenario())
    assert (delayed["status"], poll["status"]) == (200, 408) and time.monotonic() - started < 5


def test_at_fsync_always_the_answer_waits_until_its_change_is_on_disk_and_the_loop_serves_on(tmp_path, monkeypatch):
    import os
    import threading

    from mockserver.state import oplog

    app, _ = build(state_file=tmp_path / "state.json", fsync="always")
    released, real_fsync = threading.Event(), os.fsync
    monkeypatch.setattr(oplog.os, "fsync", lambda fd: released.wait(10) and real_fsync(fd))

    async def scenario() -> None:
        sent: list[dict] = []

        async def receive() -> dict:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict) -> None:
            sent.append(message)

        move = asyncio.ensure_future(app(scope("PUT", MOVE, RELAY_KEY), receive, send))
        await asyncio.sleep(0.3)
        assert sent == []  # its change is written but not flushed: no answer yet
        assert (await call(app, "GET", RETRIEVE, RELAY_KEY))["status"] == 200  # the fsync waits in a thread, not on the loop
        released.set()
        await asyncio.wait_for(move, 10)
        assert sent[0]["status"] == 200

    run(scenario())

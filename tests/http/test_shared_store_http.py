"""Two apps on one Redis namespace, in process: what one process does, the other sees (issue #14)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid

import pytest
import redis

from mockserver.mock import create_app
from mockserver.settings import Settings
from mockserver.state.fixtures import FixtureError
from tests.conftest import RELAY_KEY

RETRIEVE = "/cdm/client/demo/customer/BAK-11984-007"
MOVE = RETRIEVE + "/move/vip"


@pytest.fixture
def two(redis_url):
    namespace = f"two-{uuid.uuid4().hex}"
    return [create_app(Settings(strict_responses=True, store=redis_url, namespace=namespace)).test_client() for _ in range(2)]


def test_a_session_deleted_through_a_process_it_never_reached_ends_in_every_process(two):
    one, other = two
    session = {**RELAY_KEY, "X-Mock-Session": "shared-1"}
    assert one.put(MOVE, headers=session).status_code == 200
    assert one.post("/__admin/faults", json={"operationId": "mergeCustomer", "status": 500}, headers=session).status_code == 201
    assert other.get(RETRIEVE, headers=session).json["product_group_id"] == "vip"  # one state, seen from both
    third = another(one)
    assert third.delete("/__admin/sessions/shared-1").status_code == 204  # live in Redis, whichever process it used
    assert third.delete("/__admin/sessions/shared-1").status_code == 404
    assert one.get(RETRIEVE, headers=session).json["product_group_id"] == "default"
    assert other.get("/__admin/faults", headers=session).json["faults"] == []  # its rules went with it
    journal = one.get("/__admin/requests", headers=session).json["requests"]
    assert [entry["path"] for entry in journal] == ["/__admin/faults", RETRIEVE]  # the new session's requests only


def another(app_client):
    """One more process on the namespace `app_client`'s app serves."""
    settings = app_client.application.mock.settings
    shared = {"store": settings.store, "namespace": settings.namespace, "max_sessions": settings.max_sessions}
    return create_app(Settings(strict_responses=True, **shared)).test_client()


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"scenario": "merge-stale"}, "apply it once with POST /__admin/scenarios/merge-stale"),
        ({"namespace": "a:b"}, "letters, digits"),
        ({"namespace": "*"}, "letters, digits"),
    ],
)
def test_what_a_shared_store_cannot_do_stops_the_start_with_a_clear_message(redis_url, overrides, message):
    with pytest.raises(FixtureError, match=message):
        create_app(Settings(**{"store": redis_url, "namespace": "refused", **overrides}))


def test_an_unknown_store_stops_the_start():
    with pytest.raises(FixtureError, match="use memory, or redis://HOST:PORT/DB"):
        create_app(Settings(store="postgres://localhost/db"))


def test_a_test_session_left_idle_ends_with_its_rules_and_journal_in_every_process(redis_url):
    """The session's life is kept in Redis (`--session-idle`), not in one process's memory; once it lapses,
    nothing of it is applied any more: not its state, not its rules, not its journal."""
    namespace = f"idle-{uuid.uuid4().hex}"
    one, other = (create_app(Settings(store=redis_url, namespace=namespace, session_idle=1.0)).test_client() for _ in range(2))
    session = {**RELAY_KEY, "X-Mock-Session": "idle-1"}
    assert one.put(MOVE, headers=session).status_code == 200
    once = {"operationId": "retrieveCustomer", "status": 500, "times": 1}
    assert one.post("/__admin/faults", json=once, headers=session).status_code == 201
    assert other.get(RETRIEVE, headers=session).status_code == 500  # used: still alive, its rule applies everywhere
    assert other.get(RETRIEVE, headers=session).json["product_group_id"] == "vip"
    one.post("/__admin/faults", json={"operationId": "retrieveCustomer", "status": 500}, headers=session)
    time.sleep(1.5)
    assert other.get(RETRIEVE, headers=session).json["product_group_id"] == "default"  # no rule left to answer 500
    assert one.get("/__admin/faults", headers=session).json["faults"] == []
    assert [entry["path"] for entry in one.get("/__admin/requests", headers=session).json["requests"]] == ["/__admin/faults", RETRIEVE]


def test_the_session_list_and_its_cap_are_every_processs(redis_url):
    """`GET /__admin/sessions` lists the sessions of every process, each request counted once, and
    `--max-sessions` counts them all: a session created through one process takes a place in all."""
    namespace = f"cap-{uuid.uuid4().hex}"
    one, other = (create_app(Settings(store=redis_url, namespace=namespace, max_sessions=2)).test_client() for _ in range(2))
    for app_client, session_id in ((one, "cap-1"), (other, "cap-2"), (one, "cap-2")):
        assert app_client.get(RETRIEVE, headers={**RELAY_KEY, "X-Mock-Session": session_id}).status_code == 200
    refused = other.get(RETRIEVE, headers={**RELAY_KEY, "X-Mock-Session": "cap-3"})
    assert refused.status_code == 400 and "2 sessions are live (--max-sessions)" in refused.json["message"]
    listed = {session["id"]: session["requests"] for session in one.get("/__admin/sessions").json["sessions"]}
    assert list(listed) == ["default", "cap-1", "cap-2"] and listed["cap-1"] == 1 and listed["cap-2"] == 2
    assert other.get("/__admin/sessions").json["sessions"][1:] == one.get("/__admin/sessions").json["sessions"][1:]
    assert one.delete("/__admin/sessions/cap-1").status_code == 204
    assert other.get(RETRIEVE, headers={**RELAY_KEY, "X-Mock-Session": "cap-3"}).status_code == 200  # a place is free
    assert [session["id"] for session in other.get("/__admin/sessions").json["sessions"]] == ["default", "cap-2", "cap-3"]


def test_sessions_nobody_uses_again_are_swept_with_every_key_they_had(redis_url):
    """No request comes back to end them: a sweep does, in the background, and leaves no key of theirs."""
    from mockserver.qa import sessions

    namespace = f"sweep-{uuid.uuid4().hex}"
    one = create_app(Settings(store=redis_url, namespace=namespace, session_idle=0.3)).test_client()
    for n in range(3):
        session = {**RELAY_KEY, "X-Mock-Session": f"gone-{n}"}
        assert one.put(MOVE, headers=session).status_code == 200
        assert one.post("/__admin/faults", json={"operationId": "mergeCustomer", "status": 500}, headers=session).status_code == 201
    client = redis.Redis.from_url(redis_url)
    assert client.keys(f"{namespace}:*:gone-1:*")
    time.sleep(0.5 + sessions.SWEEP_EVERY_S)
    assert one.get(RETRIEVE, headers=RELAY_KEY).status_code == 200  # a request, in any session, lets the sweep start

    def kept() -> list[bytes]:  # keys that stay for ever (a transaction's fence expires by itself within a minute)
        return [key for key in client.keys(f"{namespace}:*:gone-*") if client.pttl(key) == -1]

    deadline = time.monotonic() + 5
    while kept() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert kept() == []
    assert [session["id"] for session in one.get("/__admin/sessions").json["sessions"]] == ["default"]


def test_a_rule_added_in_one_process_fires_in_all_and_its_times_are_counted_once_for_all(two):
    one, other = two
    added = one.post("/__admin/faults", json={"operationId": "retrieveCustomer", "status": 500, "times": 3})
    assert added.status_code == 201
    statuses = [(one if n % 2 else other).get(RETRIEVE, headers=RELAY_KEY).status_code for n in range(8)]
    assert sorted(statuses) == [200] * 5 + [500] * 3
    assert other.get("/__admin/faults").json["faults"] == [{**added.json, "remaining": 0, "matched": 3}]
    assert other.delete(f"/__admin/faults/{added.json['id']}").status_code == 204
    assert one.get("/__admin/faults").json["faults"] == []


def test_one_journal_for_all_processes_and_a_wait_woken_by_another_process(two):
    one, other = two
    assert one.get(RETRIEVE, headers=RELAY_KEY).status_code == 200
    counted = other.post("/__admin/requests/count", json={"operationId": "retrieveCustomer"})
    assert counted.json == {"count": 1}  # recorded by one, read by the other
    waited: list = []
    waiter = threading.Thread(
        target=lambda: waited.append(
            other.post("/__admin/requests/wait", json={"operationId": "moveCustomer", "count": 1, "timeout_ms": 5000})
        )
    )
    waiter.start()
    time.sleep(0.2)
    assert one.put(MOVE, headers=RELAY_KEY).status_code == 200
    waiter.join(10)
    assert waited and waited[0].status_code == 200 and waited[0].json["count"] == 1
    assert other.get("/__admin/requests?operationId=moveCustomer").json["requests"][0]["path"] == MOVE


def test_a_long_poll_on_the_event_loop_is_woken_by_a_request_another_process_recorded(redis_url):
    """The ASGI front waits on a future: another process's entry wakes it through the journal's poller."""
    from tests.http.test_asgi import call, run

    namespace = f"poll-{uuid.uuid4().hex}"
    waiting, recording = (create_app(Settings(strict_responses=True, store=redis_url, namespace=namespace)).mock.asgi() for _ in range(2))
    wait = json.dumps({"operationId": "moveCustomer", "count": 1, "timeout_ms": 5000}).encode()

    async def scenario() -> None:
        poll = asyncio.ensure_future(call(waiting, "POST", "/__admin/requests/wait", {"Content-Type": "application/json"}, [wait]))
        await asyncio.sleep(0.3)
        assert not poll.done()
        assert (await call(recording, "PUT", MOVE, RELAY_KEY))["status"] == 200
        answer = await asyncio.wait_for(poll, 5)
        assert answer["status"] == 200 and json.loads(answer["body"])["count"] == 1

    run(scenario())


def test_rules_added_before_a_new_sessions_first_command_stay_and_apply_in_every_process(two):
    one, other = two
    session = {"X-Mock-Session": "fresh-1"}
    assert one.post("/__admin/faults", json={"operationId": "moveCustomer", "status": 500}, headers=session).status_code == 201
    assert one.get(RETRIEVE, headers={**RELAY_KEY, **session}).status_code == 200  # the session's first store command
    assert other.put(MOVE, headers={**RELAY_KEY, **session}).status_code == 500  # other's first request in it: the rule holds
    assert one.post("/__admin/requests/count", json={"path": "^/__admin/faults$"}, headers=session).json == {"count": 1}


def test_ids_are_as_in_memory_a_refused_rule_takes_none_and_an_ended_session_starts_again_from_one(two):
    one, _ = two
    session = {"X-Mock-Session": "ids-1"}
    assert one.post("/__admin/faults", json={"operationId": "noSuchOperation", "status": 500}, headers=session).status_code == 400
    assert one.post("/__admin/faults", json={"status": 500}, headers=session).json["id"] == "f1"
    assert one.delete("/__admin/sessions/ids-1").status_code == 204
    assert one.post("/__admin/faults", json={"status": 500}, headers=session).json["id"] == "f1"
    assert one.get("/__admin/requests", headers=session).json["requests"][0]["id"] == 1


def test_a_seeded_rule_draws_the_same_sequence_as_in_memory_whatever_other_rules_come_and_go(two):
    one, _ = two
    rule = {"operationId": "retrieveCustomer", "status": 500, "probability": 0.5, "seed": 7}

    def sequence(app_client, interfere: bool) -> list[int]:
        app_client.post("/__admin/faults", json=rule)
        statuses = []
        for n in range(12):
            if interfere and n in (4, 8):
                app_client.post("/__admin/faults", json={"operationId": "mergeCustomer", "status": 500})
            statuses.append(app_client.get(RETRIEVE, headers=RELAY_KEY).status_code)
        return statuses

    assert sequence(one, interfere=True) == sequence(create_app(Settings(strict_responses=True)).test_client(), interfere=False)


def test_a_session_ended_and_created_again_elsewhere_has_only_its_new_rules_in_every_process(two):
    """A process must not keep applying rules it compiled in the session's earlier life (review of #14: rule
    ids start again at f1 in a new life, and the old f1 was reused)."""
    one, other = two
    session = {**RELAY_KEY, "X-Mock-Session": "again-1"}
    assert one.post("/__admin/faults", json={"operationId": "retrieveCustomer", "status": 500}, headers=session).json["id"] == "f1"
    assert one.get(RETRIEVE, headers=session).status_code == 500
    assert other.delete("/__admin/sessions/again-1").status_code == 204
    assert other.post("/__admin/faults", json={"operationId": "retrieveCustomer", "status": 404}, headers=session).json["id"] == "f1"
    assert one.get(RETRIEVE, headers=session).status_code == 404
    assert other.delete("/__admin/sessions/again-1").status_code == 204
    assert other.post("/__admin/faults", json={"operationId": "moveCustomer", "status": 500}, headers=session).status_code == 201
    assert one.get(RETRIEVE, headers=session).status_code == 200


def test_a_request_in_flight_when_its_session_ends_leaves_nothing_in_its_next_life(two):
    """As in memory: a delayed move whose session is deleted and created again meanwhile is answered, but
    neither its change nor its journal entry reaches the new life."""
    one, other = two
    session = {**RELAY_KEY, "X-Mock-Session": "flight-1"}
    assert one.get(RETRIEVE, headers=session).status_code == 200
    answered: list = []
    mover = threading.Thread(target=lambda: answered.append(one.put(MOVE, headers={**session, "Prefer": "delay=1500"})))
    mover.start()
    until_visited(other, "flight-1", requests=2)  # the move has entered the session and waits out its delay
    assert other.delete("/__admin/sessions/flight-1").status_code == 204
    assert other.get(RETRIEVE, headers=session).json["product_group_id"] == "default"  # the next life begins
    mover.join(10)
    assert answered[0].status_code == 200
    assert other.get(RETRIEVE, headers=session).json["product_group_id"] == "default"
    journal = other.get("/__admin/requests", headers=session).json["requests"]
    assert [entry["method"] for entry in journal] == ["GET", "GET"]


@pytest.mark.parametrize("store", ["memory", "redis"])
def test_a_request_in_flight_keeps_its_session_alive_on_every_store(store, request):
    """A request delayed past --session-idle keeps its session live, as in memory (#20: on Redis it used to
    lapse meanwhile): its place is not given away past --max-sessions, and its state stays; once it has
    ended and the session idles past --session-idle, the session ends."""
    shared = {"store": request.getfixturevalue("redis_url"), "namespace": f"held-{uuid.uuid4().hex}"} if store == "redis" else {}
    one = create_app(Settings(session_idle=1.0, max_sessions=1, **shared)).test_client()
    mover, answered = delayed_in_session(one, "slow-1")
    time.sleep(1.3)  # past --session-idle, while the request waits
    refused = one.get(RETRIEVE, headers={**RELAY_KEY, "X-Mock-Session": "next-1"})
    assert refused.status_code == 400 and "--max-sessions" in refused.json["message"]
    mover.join(10)
    assert answered[0].status_code == 200 and answered[0].json["product_group_id"] == "vip"  # its state stayed
    assert [session["id"] for session in one.get("/__admin/sessions").json["sessions"]] == ["default", "slow-1"]
    time.sleep(1.3)
    assert [session["id"] for session in one.get("/__admin/sessions").json["sessions"]] == ["default"]


@pytest.mark.parametrize("store", ["memory", "redis"])
def test_a_request_of_a_deleted_session_does_not_touch_the_next_life(store, request):
    """The request still in flight when its session is deleted ends on the life it began in: the session made
    again meanwhile expires when idle, and its place under --max-sessions is given back (review of #20)."""
    shared = {"store": request.getfixturevalue("redis_url"), "namespace": f"next-{uuid.uuid4().hex}"} if store == "redis" else {}
    one = create_app(Settings(session_idle=1.0, max_sessions=1, **shared)).test_client()
    mover, answered = delayed_in_session(one, "x-1")
    assert one.delete("/__admin/sessions/x-1").status_code == 204
    assert one.get(RETRIEVE, headers={**RELAY_KEY, "X-Mock-Session": "x-1"}).status_code == 200  # its next life
    mover.join(10)
    assert answered[0].status_code == 200
    time.sleep(1.3)  # the next life idles past --session-idle
    assert one.get(RETRIEVE, headers={**RELAY_KEY, "X-Mock-Session": "y-1"}).status_code == 200


def test_a_session_that_lapses_while_its_request_runs_is_not_brought_back_by_it(redis_url, monkeypatch):
    """The request's journal entry must not make a lapsed session live again, past --max-sessions (review of
    #14): it goes with the session, as its state does. No sweep runs meanwhile (one would end it first). The
    request outlives its hold here (as one slower than the wait it announced would)."""
    from mockserver.qa import sessions, shared_sessions

    monkeypatch.setattr(sessions, "SWEEP_EVERY_S", 3600.0)
    monkeypatch.setattr(shared_sessions.SessionRegistry, "hold", lambda registry, session_id, seconds: False)
    namespace = f"lapse-{uuid.uuid4().hex}"
    one = create_app(Settings(store=redis_url, namespace=namespace, session_idle=1.0, max_sessions=1)).test_client()
    mover, answered = delayed_in_session(one, "slow-1")
    time.sleep(1.2)  # slow-1 lapsed: its place is free
    assert one.get(RETRIEVE, headers={**RELAY_KEY, "X-Mock-Session": "next-1"}).status_code == 200
    mover.join(10)
    assert answered[0].status_code == 200
    assert [session["id"] for session in one.get("/__admin/sessions").json["sessions"]] == ["default", "next-1"]


def test_with_redis_gone_what_needs_no_state_is_answered_as_ever(tmp_path):
    """Routing and authentication need no Redis: an unknown path is still a 404 and a wrong key a 401;
    whatever needs the session is the documented 503."""
    from mockserver.testing.redis_server import redis_server

    with redis_server() as url:
        client = create_app(Settings(store=url, namespace="gone")).test_client()
        assert client.get(RETRIEVE, headers=RELAY_KEY).status_code == 200
    assert client.get("/no/such/path").status_code == 404
    assert client.get(RETRIEVE, headers={"xx-relay-api-key": "wrong"}).status_code == 401
    refused = client.get(RETRIEVE, headers=RELAY_KEY)
    assert refused.status_code == 503 and "unavailable" in refused.json["message"]
    assert client.get("/__admin/sessions").status_code == 503


def test_a_redis_that_lost_its_scripts_is_given_them_again(two, redis_url):
    """As after a restart: the scripts every request runs are loaded again on the next call, unnoticed."""
    one, _ = two
    session = {**RELAY_KEY, "X-Mock-Session": "flushed-1"}
    assert one.put(MOVE, headers=session).status_code == 200
    redis.Redis.from_url(redis_url).script_flush()
    assert one.get(RETRIEVE, headers=session).json["product_group_id"] == "vip"
    assert one.post("/__admin/requests/count", json={"path": "^/cdm/"}, headers=session).json == {"count": 2}


def test_what_a_request_of_an_ended_life_deletes_or_clears_stays_in_that_life(two):
    """An admin call that visited the session's first life and lands after it was deleted and created again
    must not touch the new life's rules or journal (review of #14). Its handle is held as such a call holds it."""
    one, other = two
    session = {**RELAY_KEY, "X-Mock-Session": "late-1"}
    assert one.get(RETRIEVE, headers=session).status_code == 200
    late = one.application.mock.sessions._handles["late-1"][1]
    assert other.delete("/__admin/sessions/late-1").status_code == 204
    assert other.post("/__admin/faults", json={"operationId": "retrieveCustomer", "status": 500}, headers=session).json["id"] == "f1"
    late.faults.clear()
    assert late.faults.delete("f1") is False
    late.journal.clear()
    assert one.get(RETRIEVE, headers=session).status_code == 500  # the new life's rule stands, in every process
    assert [rule["id"] for rule in one.get("/__admin/faults", headers=session).json["faults"]] == ["f1"]
    assert len(other.get("/__admin/requests", headers=session).json["requests"]) == 3  # add, retrieve, list


def test_an_id_drawn_after_its_session_ended_or_was_reset_leaves_no_key(two, redis_url, monkeypatch):
    """A merge allocates a contact id after reading its records; when its session ends or is reset in between,
    the id counter of the generation that is over must not be made again, for nobody would remove it (review
    of #14: the counter was drawn with a plain INCR)."""
    from mockserver.state import redis_view
    from tests.conftest import APP

    one, other = two
    client = redis.Redis.from_url(redis_url)
    draw = redis_view.Ids.next
    ends = {
        "deleted": lambda sid: other.delete(f"/__admin/sessions/{sid}"),
        "reset": lambda sid: other.post("/__admin/reset", headers={"X-Mock-Session": sid}),
    }
    for how, end in ends.items():
        session_id = f"draw-{how}"
        session = {**APP, "X-Mock-Session": session_id}
        target = one.get("/core/customermgr/v3/customer/1010", headers=session).json["customer"][0]
        ended: list = []

        def next_id(ids, session_id=session_id, end=end, ended=ended):
            if not ended:
                ended.append(end(session_id).status_code)
            return draw(ids)

        monkeypatch.setattr(redis_view.Ids, "next", next_id)
        target_body = {"id": "1010", "lastModified": target["lastModified"], "contacts": {"contact": [{"firstName": "J"}]}}
        merge = {"sourceCustomer": {"id": "1002"}, "targetCustomer": target_body}
        assert one.put("/core/customermgr/v3/customer/merge", headers=session, json=merge).status_code == 204
        monkeypatch.setattr(redis_view.Ids, "next", draw)
        assert ended in ([204], [200])
        generation = client.get(next(iter(client.keys(f"*:{session_id}:gen")), b"none"))
        time.sleep(0.3)  # the background unlink of the generation that is over
        counters = [key for key in client.keys(f"*:{session_id}:*next_id") if client.pttl(key) == -1]
        assert all(key.endswith(b":%s:next_id" % generation) for key in counters), (how, counters, generation)


def test_a_spent_times_rule_does_not_fire_again_for_a_request_whose_session_ended(two, monkeypatch):
    """Its count went with the session's life; memory keeps it with the session the request still holds."""
    one, other = two
    session = {**RELAY_KEY, "X-Mock-Session": "spent-1"}
    once = {"operationId": "retrieveCustomer", "status": 500, "times": 1}
    assert one.post("/__admin/faults", json=once, headers=session).status_code == 201
    assert one.get(RETRIEVE, headers=session).status_code == 500
    registry = one.application.mock.sessions.registry
    visit = registry.visit

    def visit_then_end(session_id):
        found = visit(session_id)
        other.delete(f"/__admin/sessions/{session_id}")
        return found

    monkeypatch.setattr(registry, "visit", visit_then_end)
    assert one.get(RETRIEVE, headers=session).status_code == 200


def delayed_in_session(app_client, session_id: str) -> tuple[threading.Thread, list]:
    """A move in `session_id`, then a retrieve delayed 2 s in a thread (its answer lands in the list), once the
    session has seen it arrive."""
    session = {**RELAY_KEY, "X-Mock-Session": session_id}
    assert app_client.put(MOVE, headers=session).status_code == 200
    answered: list = []
    mover = threading.Thread(target=lambda: answered.append(app_client.get(RETRIEVE, headers={**session, "Prefer": "delay=2000"})))
    mover.start()
    until_visited(app_client, session_id, requests=2)
    return mover, answered


def until_visited(app_client, session_id: str, requests: int, timeout: float = 10.0) -> None:
    """Wait until the session has had `requests` requests (a request in another thread has entered it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listed = {s["id"]: s["requests"] for s in app_client.get("/__admin/sessions").json["sessions"]}
        if listed.get(session_id, 0) >= requests:
            return
        time.sleep(0.02)
    raise AssertionError(f"session {session_id} did not reach {requests} requests")

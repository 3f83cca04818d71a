"""The shared session registry without HTTP (issue #14): the cap across processes, ends, and clean new lives."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from mockserver.contract.compiled import Contract
from mockserver.contract.spec import load_document
from mockserver.families import built_in_sections
from mockserver.qa.shared_sessions import SessionRegistry
from mockserver.relay.api import _move, _retrieve
from mockserver.settings import Settings
from mockserver.state import redis_client, redis_store
from mockserver.state.fixtures import Fixtures

SECTIONS = built_in_sections()

CCID = "BAK-11984-007"


@pytest.fixture(scope="module")
def fixtures() -> Fixtures:
    return Fixtures.load(Settings().fixtures, Contract(load_document()).schemas, SECTIONS)


@pytest.fixture
def namespace(request) -> str:
    return f"registry-{request.node.name}"


def registry(url: str, namespace: str, idle_s: float = 600, max_sessions: int = 256) -> SessionRegistry:
    """One process's registry: a client of its own."""
    return SessionRegistry(redis_client.connect(url), namespace, idle_s, max_sessions)


def test_the_cap_holds_across_processes_entering_at_once(redis_url, namespace):
    """Twelve processes each create a session at the same moment; with room for five, exactly five get one."""
    registries = [registry(redis_url, namespace, max_sessions=5) for _ in range(12)]
    start = threading.Barrier(len(registries))
    entered: list[bool] = [False] * len(registries)

    def enter(n: int) -> None:
        start.wait()
        entered[n] = registries[n].enter(f"s-{n}") is not None

    threads = [threading.Thread(target=enter, args=(n,)) for n in range(len(registries))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sum(entered) == 5
    assert sorted(s["id"] for s in registries[0].listed()[1:]) == sorted(f"s-{n}" for n in range(12) if entered[n])


def test_a_session_ends_once_and_a_lapsed_one_is_ended_by_its_next_visit(redis_url, namespace):
    one, other = registry(redis_url, namespace, idle_s=0.2), registry(redis_url, namespace, idle_s=0.2)
    first = one.enter("s")
    assert other.visit("s")[::2] == (True, first)
    assert other.end("s") == "live" and one.end("s") == "none"  # ended once, whichever process asks second
    assert not one.visit("s")[0]
    second = one.enter("s")
    assert second not in (None, first)  # a new life
    time.sleep(0.3)
    assert not other.visit("s")[0]  # lapsed: ended by this visit
    assert [s["id"] for s in one.listed()] == ["default"]


def test_a_command_of_an_ended_life_is_answered_and_changes_nothing(redis_url, namespace, fixtures):
    """A request in flight when its session ends (deleted, or ended and created again meanwhile) runs on
    what it finds, as in memory, where the session's state went with it: it is answered, and what it
    changes reaches neither the session's next life nor Redis."""
    sessions = registry(redis_url, namespace)
    stores = redis_store.RedisStores(redis_client.connect(redis_url), namespace, fixtures.build())
    store = stores.new("s", sessions.enter("s"))
    store.run(_move, "demo", CCID, "vip")
    assert sessions.end("s") == "live"
    client = redis.Redis.from_url(redis_url)
    before = set(client.keys(f"{namespace}:*"))  # the ended generation's keys may still be being unlinked
    assert store.run(_move, "demo", CCID, "vip")  # on the fixtures' state: answered as a move would be
    store.reset()
    assert set(client.keys(f"{namespace}:*")) <= before  # nothing written, not even a generation
    later = stores.new("s", sessions.enter("s"))
    assert store.run(_move, "demo", CCID, "vip")  # the next life began meanwhile: still nothing written to it
    assert later.run(_retrieve, "demo", CCID)["product_group_id"] == "default"


def test_a_sweep_ends_only_sessions_past_their_idle_time(redis_url, namespace):
    sessions = registry(redis_url, namespace, idle_s=1.0)
    sessions.enter("old")
    time.sleep(1.2)
    sessions.enter("new")
    assert sessions.sweep() == 1  # "old" only
    assert [s["id"] for s in sessions.listed()] == ["default", "new"]
    assert sessions.sweep() == 0  # one sweep a second, whichever process asks


def test_a_live_session_without_a_life_gets_one(redis_url, namespace):
    """A namespace live before lives were kept (an upgrade in place): its sessions are given one, not taken
    for sessions past the cap."""
    sessions = registry(redis_url, namespace, max_sessions=1)
    sessions.enter("s")
    redis.Redis.from_url(redis_url).delete(sessions.prefix("s") + "life")
    live, _, life = sessions.visit("s")
    assert live and life is not None
    assert sessions.enter("s") == life


def test_a_sweep_redis_cannot_answer_is_logged_and_tried_again_later(caplog):
    """The sweep runs in the background: with Redis gone it says so in the log, and the next one may run."""
    from mockserver.qa.faults import FaultRules
    from mockserver.qa.sessions import Sessions

    unreachable = SessionRegistry(redis_client.connect("redis://127.0.0.1:1/0"), "gone", 600, 256)
    sessions = Sessions(unreachable, lambda *_: None, lambda *_: FaultRules(), lambda *_: None, None, 600)
    sessions._sweeping = True
    with caplog.at_level("WARNING", logger="mockserver"):
        sessions._sweep()
    assert "could not end the sessions left idle" in caplog.text and not sessions._sweeping

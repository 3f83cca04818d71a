"""The Redis store without HTTP (issue #14): atomic commands across stores, retries, resets, and Redis failing."""

from __future__ import annotations

import threading

import pytest
import redis

from mockserver.admin.api import _state_command
from mockserver.contract.compiled import Contract
from mockserver.contract.spec import load_document
from mockserver.egain.api import _merge_command
from mockserver.errors import ApiError, StoreUnavailable
from mockserver.families import built_in_sections
from mockserver.relay.api import _add_phone, _move, _retrieve, _update_consent
from mockserver.settings import Settings
from mockserver.state import redis_client, redis_store, redis_transaction, redis_view
from mockserver.state.fixtures import FixtureError, Fixtures

SECTIONS = built_in_sections()

CCID = "BAK-11984-007"


@pytest.fixture(scope="module")
def fixtures() -> Fixtures:
    return Fixtures.load(Settings().fixtures, Contract(load_document()).schemas, SECTIONS)


def store_of(url: str, namespace: str, fixtures: Fixtures) -> redis_store.RedisStore:
    """The default session's store, as `serve --store URL --namespace NAMESPACE` makes it."""
    return redis_store.RedisStores(redis_client.connect(url), namespace, fixtures.build()).new("default")


@pytest.fixture
def stores(redis_url, fixtures, request):
    """Two processes' worth of stores of one session: separate clients, one namespace."""
    namespace = f"unit-{request.node.name}"
    made = [store_of(redis_url, namespace, fixtures) for _ in range(2)]
    yield made
    made[0]._client.flushdb()


def test_a_change_made_through_one_store_is_seen_through_the_other(stores):
    one, other = stores
    one.run(_move, "demo", CCID, "vip")
    assert other.run(_retrieve, "demo", CCID)["product_group_id"] == "vip"
    with pytest.raises(ApiError) as refused:
        other.run(_move, "demo", CCID, "vip")
    assert refused.value.status == 409


def test_a_consent_update_through_one_store_reaches_every_carrier_and_its_record_is_seen_through_the_other(stores):
    one, other = stores
    other.run(_add_phone, "demo", "BAK-11984-008", "6105551212", None)
    first = one.run(_update_consent, "demo", "6105551212", "sms", "stop")
    for ccid in (CCID, "BAK-11984-008"):
        assert other.run(_retrieve, "demo", ccid)["notification_channels"][-1]["consent_type"] == "stop"
    second = other.run(_update_consent, "demo", "6105551212", "sms", "written")
    assert second["created_at"] == first["created_at"] and second["updated_at"] > first["updated_at"]
    assert one.run(lambda state: dict(state["relay"].books["demo"].consents["6105551212"])) == second


def test_the_state_view_after_a_reset_lists_the_fixtures_records_not_the_old_generations(stores, monkeypatch):
    """The view reads keys by scanning: it must not list the old generation's, still there until unlinked."""
    monkeypatch.setattr(redis_store, "unlink_generation", lambda client, prefix, generation: None)  # as when the unlinking lags
    one, other = stores

    def group_of_ccid(store) -> str:
        [demo, _] = store.run(_state_command, 500)[0]["relay"]
        return next(g["product_group_id"] for g in demo["product_groups"] for c in g["customers"] if c["ccid"] == CCID)

    one.run(_move, "demo", CCID, "vip")
    assert group_of_ccid(one) == "vip"
    other.reset()  # elsewhere
    assert group_of_ccid(one) == "default"
    one.run(_move, "demo", CCID, "vip")
    one.reset()  # its own
    assert group_of_ccid(one) == "default"


def test_a_reset_landing_while_the_state_view_reads_makes_it_read_again(stores, monkeypatch):
    """A reset between the view's generation check and its reads: the chunk it read is of the old generation,
    which the view must not list (review of #12: the check ran once, before the scan)."""
    monkeypatch.setattr(redis_store, "unlink_generation", lambda client, prefix, generation: None)  # the old keys stay meanwhile
    one, other = stores
    one.run(_move, "demo", CCID, "vip")
    real_scan = redis.Redis.sscan_iter
    scans: list[str] = []
    reset_at: list[int] = []  # the scan after which the reset lands

    def scan_then_reset(client, *args, **kwargs):
        found = list(real_scan(client, *args, **kwargs))
        scans.append(kwargs.get("match", ""))
        if reset_at and len(scans) == reset_at[0]:
            other.reset()  # lands after this scan, before its chunk's MGET
        return iter(found)

    monkeypatch.setattr(redis.Redis, "sscan_iter", scan_then_reset)
    one.run(_state_command, 500)
    every = len(scans)  # the view scans once per collection; the last one is checked by nothing after it
    assert every >= 2
    for at in range(1, every + 1):
        one.reset()
        one.run(_move, "demo", CCID, "vip")
        scans.clear()
        reset_at[:] = [at]
        [demo, _] = one.run(_state_command, 500)[0]["relay"]
        group = next(g["product_group_id"] for g in demo["product_groups"] for c in g["customers"] if c["ccid"] == CCID)
        assert group == "default", f"a reset after scan {at} of {every}: the view listed the old generation"


def test_concurrent_moves_from_two_stores_succeed_exactly_once(stores):
    """16 threads move the same customer to the same group at once: one 200, fifteen 409s."""
    outcomes: list[int] = []
    start = threading.Barrier(16)

    def move(store):
        start.wait()
        try:
            store.run(_move, "demo", CCID, "vip")
            outcomes.append(200)
        except ApiError as exc:
            outcomes.append(exc.status)

    threads = [threading.Thread(target=move, args=(stores[n % 2],)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == [200] + [409] * 15


def test_a_command_whose_record_changes_under_it_runs_again_on_the_new_value(stores, monkeypatch):
    """Another process moves the customer between this command's read and its EXEC: the EXEC fails (WATCH),
    and the re-run sees the move, so the answer is the 409 the new state calls for, not a lost update."""
    one, other = stores
    real = redis_view.View.writes
    interfered = []

    def writes_after_a_rival(view):
        if not interfered:
            interfered.append(True)
            other.run(_move, "demo", CCID, "vip")  # lands between one's read and its EXEC
        return real(view)

    monkeypatch.setattr(redis_view.View, "writes", writes_after_a_rival)
    with pytest.raises(ApiError) as refused:
        one.run(_move, "demo", CCID, "vip")
    assert refused.value.status == 409 and interfered


def test_a_merge_moves_its_source_once_and_ids_come_from_one_counter(stores):
    one, other = stores
    target = one.run(lambda state: dict(state["egain"].customers["1010"]))
    body = {
        "sourceCustomer": {"id": "1002"},
        "targetCustomer": {"id": "1010", "lastModified": target["lastModified"], "contacts": {"contact": [{"firstName": "New"}]}},
    }
    one.run(_merge_command, body)
    with pytest.raises(ApiError) as refused:
        other.run(_merge_command, body)
    assert refused.value.code == "400-107"  # the source is gone for every process
    merged = other.run(lambda state: state["egain"].customers["1010"])
    new_ids = {c["id"] for c in merged["contacts"]["contact"]} - {c["id"] for c in target["contacts"]["contact"]}
    assert new_ids == {str(other.run(lambda state: state.sources.ids.peek()) - 1)}


def test_a_reset_is_one_increment_and_the_old_generation_is_cleared(stores, redis_url):
    one, other = stores
    one.run(_move, "demo", CCID, "vip")
    client = redis.Redis.from_url(redis_url)
    assert client.keys(f"{one._prefix}0:*")
    other.reset()
    assert one.run(_retrieve, "demo", CCID)["product_group_id"] == "default"
    for _ in range(100):
        if not client.keys(f"{one._prefix}0:*"):
            break
        threading.Event().wait(0.02)
    assert not client.keys(f"{one._prefix}0:*")


def test_redis_unreachable_is_the_store_unavailable_and_changes_nothing(fixtures):
    """The store raises StoreUnavailable (the exchange answers it with the documented 503: tests/http)."""
    store = store_of("redis://127.0.0.1:1/0", "gone", fixtures)
    with pytest.raises(StoreUnavailable) as refused:
        store.run(_move, "demo", CCID, "vip")
    assert "unavailable" in refused.value.message and "nothing was changed" in refused.value.message


def test_every_process_of_a_namespace_must_serve_the_same_fixtures(redis_url, tmp_path):
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text(Settings().fixtures.read_text())
    second.write_text(Settings().fixtures.read_text() + "\n# edited\n")
    client = redis_client.connect(redis_url)
    redis_store.claim_namespace(client, "claimed", first)
    redis_store.claim_namespace(client, "claimed", first)  # the same file: fine
    with pytest.raises(FixtureError, match="namespace 'claimed' is in use with other fixtures"):
        redis_store.claim_namespace(client, "claimed", second)


def _losing_the_exec_answer(monkeypatch, sent: bool) -> None:
    """The connection breaks on the transaction's batch: after Redis ran it (`sent`), or before it got there."""
    real = redis_transaction.Link._send

    def send(link, *commands):
        if commands and commands[-1] == ("EXEC",) and not getattr(send, "done", False):
            send.done = True
            if sent:
                real(link, *commands)
            raise redis.ConnectionError("the connection broke")
        return real(link, *commands)

    monkeypatch.setattr(redis_transaction.Link, "_send", send)


def test_a_change_whose_answer_was_lost_but_committed_is_answered_as_made_not_run_again(stores, monkeypatch):
    one, other = stores
    _losing_the_exec_answer(monkeypatch, sent=True)
    assert one.run(_move, "demo", CCID, "vip").startswith("Customer BAK-11984-007 moved to vip")  # not a 409 of its own re-run
    assert other.run(_retrieve, "demo", CCID)["product_group_id"] == "vip"


def test_a_change_whose_batch_never_arrived_is_fenced_then_run_again_once(stores, monkeypatch):
    one, other = stores
    _losing_the_exec_answer(monkeypatch, sent=False)
    assert one.run(_move, "demo", CCID, "vip").startswith("Customer BAK-11984-007 moved to vip")
    assert other.run(_retrieve, "demo", CCID)["product_group_id"] == "vip"

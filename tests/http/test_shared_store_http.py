"""Two apps on one Redis namespace, in process: what one process does, the other sees (issue #14)."""

from __future__ import annotations

import time
import uuid

import pytest

from mockserver.http.app import create_app
from mockserver.settings import Settings
from mockserver.state.fixtures import FixtureError
from tests.conftest import RELAY_KEY

RETRIEVE = "/cdm/client/demo/customer/BAK-11984-007"
MOVE = RETRIEVE + "/move/vip"


@pytest.fixture
def two(redis_url):
    namespace = f"two-{uuid.uuid4().hex}"
    return [create_app(Settings(strict_responses=True, store=redis_url, namespace=namespace)).test_client() for _ in range(2)]


def test_a_session_deleted_through_another_process_starts_again_from_the_fixtures(two):
    one, other = two
    session = {**RELAY_KEY, "X-Mock-Session": "shared-1"}
    assert one.put(MOVE, headers=session).status_code == 200
    assert other.get(RETRIEVE, headers=session).json["product_group_id"] == "vip"  # one state, seen from both
    settings = one.application.extensions["mockserver"]["settings"]
    third = create_app(Settings(strict_responses=True, store=settings.store, namespace=settings.namespace)).test_client()
    assert third.delete("/__admin/sessions/shared-1").status_code == 404  # not live in that process: its state dropped all the same
    assert one.get(RETRIEVE, headers=session).json["product_group_id"] == "default"


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


def test_a_test_session_left_idle_starts_again_from_the_fixtures_in_every_process(redis_url):
    """The session's life is kept in Redis (`--session-idle`), not in one process's memory."""
    namespace = f"idle-{uuid.uuid4().hex}"
    one, other = (create_app(Settings(store=redis_url, namespace=namespace, session_idle=0.3)).test_client() for _ in range(2))
    session = {**RELAY_KEY, "X-Mock-Session": "idle-1"}
    assert one.put(MOVE, headers=session).status_code == 200
    assert other.get(RETRIEVE, headers=session).json["product_group_id"] == "vip"  # used: still alive
    time.sleep(0.6)
    assert other.get(RETRIEVE, headers=session).json["product_group_id"] == "default"


def test_a_rule_added_in_one_process_fires_in_all_and_its_times_are_counted_once_for_all(two):
    one, other = two
    added = one.post("/__admin/faults", json={"operationId": "retrieveCustomer", "status": 500, "times": 3})
    assert added.status_code == 201
    statuses = [(one if n % 2 else other).get(RETRIEVE, headers=RELAY_KEY).status_code for n in range(8)]
    assert sorted(statuses) == [200] * 5 + [500] * 3
    assert other.get("/__admin/faults").json["faults"] == [{**added.json, "remaining": 0, "matched": 3}]
    assert other.delete(f"/__admin/faults/{added.json['id']}").status_code == 204
    assert one.get("/__admin/faults").json["faults"] == []

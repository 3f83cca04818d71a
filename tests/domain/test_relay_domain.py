"""Relay domain rules, without Flask or HTTP."""

import pytest

from mockserver.errors import ApiError
from mockserver.relay import domain
from mockserver.relay.domain import RelayClient, RelayConfig, RelayState

CONFIG = RelayConfig.build(
    [
        RelayClient("demo", frozenset({"demo-key"}), frozenset({"default", "test-2"})),
        RelayClient("other", frozenset({"other-key"}), frozenset({"default"})),
    ]
)


def make_state() -> RelayState:
    state = RelayState.empty(CONFIG)
    state.books["demo"].customers["C1"] = {"ccid": "C1", "product_group_id": "default"}
    state.books["other"].customers["O1"] = {"ccid": "O1", "product_group_id": "default"}
    return state


@pytest.mark.parametrize("key", [None, "", "unknown", "other-key"])
def test_only_the_clients_own_key_authenticates(key):
    with pytest.raises(ApiError) as caught:
        domain.authenticate(CONFIG, "demo", key)
    assert caught.value.status == 401


def test_own_key_authenticates():
    assert domain.authenticate(CONFIG, "demo", "demo-key").client_id == "demo"


def test_move_changes_group_then_conflicts():
    client = make_state().books["demo"]
    assert domain.move_customer(client, "C1", "test-2") == "Customer C1 moved to test-2 for client demo."
    assert client.customers["C1"]["product_group_id"] == "test-2"
    with pytest.raises(ApiError) as caught:
        domain.move_customer(client, "C1", "test-2")
    assert caught.value.status == 409
    assert client.customers["C1"]["product_group_id"] == "test-2"


@pytest.mark.parametrize("ccid, group", [("NOPE", "test-2"), ("C1", "no-such-group")])
def test_move_unknown_customer_or_group_is_404_and_changes_nothing(ccid, group):
    client = make_state().books["demo"]
    with pytest.raises(ApiError) as caught:
        domain.move_customer(client, ccid, group)
    assert caught.value.status == 404
    assert client.customers["C1"]["product_group_id"] == "default"


def test_move_message_never_exceeds_the_documented_cap():
    long_ccid, long_group = "c" * 100, "g" * 100
    message = domain.move_message(long_ccid, long_group, "client-" + "x" * 60)
    assert len(message) <= 100
    assert message.startswith("Customer c") and " moved to g" in message and message.endswith(".")


@pytest.mark.parametrize("group", ["default", "test-2"])
def test_load_creates_only_a_ccid_the_client_has_in_any_group_is_409_and_changes_nothing(group):
    client = make_state().books["demo"]
    assert domain.load_customer(client, "default", {"ccid": "N1", "first_name": "A"}) is None
    assert client.customers["N1"] == {"ccid": "N1", "first_name": "A", "product_group_id": "default"}
    with pytest.raises(ApiError) as caught:
        domain.load_customer(client, group, {"ccid": "N1", "first_name": "B"})
    assert caught.value.status == 409 and "N1 already exists in product group default" in caught.value.message
    assert client.customers["N1"] == {"ccid": "N1", "first_name": "A", "product_group_id": "default"}


def test_the_same_ccid_in_another_client_is_another_customer():
    state = make_state()
    domain.load_customer(state.books["other"], "default", {"ccid": "C1", "first_name": "Twin"})
    assert state.books["demo"].customers["C1"] == {"ccid": "C1", "product_group_id": "default"}


def test_load_unknown_group_is_404():
    with pytest.raises(ApiError) as caught:
        domain.load_customer(make_state().books["demo"], "nope", {"ccid": "N1"})
    assert caught.value.status == 404


def test_a_phone_number_belongs_to_at_most_50_customers():
    client = make_state().books["demo"]
    sms = [{"channel_type": "sms", "channel_addr": "6105551212"}]
    for i in range(50):
        domain.load_customer(client, "default", {"ccid": f"P{i}", "notification_channels": sms})
    with pytest.raises(ApiError) as caught:
        domain.load_customer(client, "default", {"ccid": "P50", "notification_channels": sms})
    assert caught.value.status == 409 and "P50" not in client.customers and len(client.phone_ccids["6105551212"]) == 50


def test_retrieve_returns_a_copy_with_the_group():
    client = make_state().books["demo"]
    record = domain.retrieve_customer(client, "C1")
    record["product_group_id"] = "tampered"
    assert domain.retrieve_customer(client, "C1")["product_group_id"] == "default"


def test_a_number_listed_twice_is_kept_once_in_its_place_with_the_later_fields():
    client = make_state().books["demo"]
    once = {"channel_type": "sms", "channel_addr": "6105551212", "consent_type": "express"}
    other = {"channel_type": "sms", "channel_addr": "2155550100"}
    domain.load_customer(client, "default", {"ccid": "N1", "notification_channels": [once, other, {**once, "consent_type": "stop"}]})
    assert client.customers["N1"]["notification_channels"] == [{**once, "consent_type": "stop"}, other]
    assert client.phone_ccids["6105551212"] == {"N1"}

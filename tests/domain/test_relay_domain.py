"""Relay domain rules, without Flask or HTTP."""

import copy

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


def sms(number: str, consent: str | None = None) -> dict:
    return {"channel_type": "sms", "channel_addr": number, **({"consent_type": consent} if consent else {})}


def test_onboard_creates_then_updates_the_fields_sent_only():
    client = make_state().books["demo"]
    assert domain.onboard_customer(client, "default", {"ccid": "N1", "first_name": "Ada", "last_name": "Byron"}, False) is True
    assert domain.onboard_customer(client, "default", {"ccid": "N1", "last_name": "Lovelace"}, False) is False
    assert client.customers["N1"] == {"ccid": "N1", "first_name": "Ada", "last_name": "Lovelace", "product_group_id": "default"}


def test_onboard_adds_numbers_and_a_known_number_takes_the_consent_sent():
    client = make_state().books["demo"]
    domain.onboard_customer(
        client, "default", {"ccid": "N1", "notification_channels": [sms("6105550001", "express"), sms("6105550002")]}, False
    )
    domain.onboard_customer(
        client, "default", {"ccid": "N1", "notification_channels": [sms("6105550002", "stop"), sms("6105550003")]}, False
    )
    assert client.customers["N1"]["notification_channels"] == [sms("6105550001", "express"), sms("6105550002", "stop"), sms("6105550003")]
    assert client.phone_ccids["6105550003"] == {"N1"}


def test_onboard_deactivating_previous_connections_replaces_the_numbers():
    client = make_state().books["demo"]
    domain.onboard_customer(client, "default", {"ccid": "N1", "notification_channels": [sms("6105550001"), sms("6105550002")]}, False)
    domain.onboard_customer(client, "default", {"ccid": "N1", "notification_channels": [sms("6105550003", "written")]}, True)
    assert client.customers["N1"]["notification_channels"] == [sms("6105550003", "written")]
    assert not client.phone_ccids["6105550001"] and client.phone_ccids["6105550003"] == {"N1"}
    domain.onboard_customer(client, "default", {"ccid": "N1", "first_name": "Ada"}, True)  # none sent: none left
    assert client.customers["N1"] == {"ccid": "N1", "first_name": "Ada", "product_group_id": "default"}
    assert not client.phone_ccids["6105550003"]


def test_onboard_into_another_group_is_409_and_changes_nothing():
    client = make_state().books["demo"]
    with pytest.raises(ApiError) as caught:
        domain.onboard_customer(client, "test-2", {"ccid": "C1", "first_name": "Changed"}, False)
    assert caught.value.status == 409 and "use move" in caught.value.message
    assert client.customers["C1"] == {"ccid": "C1", "product_group_id": "default"}


def test_onboard_past_50_numbers_on_a_ccid_is_409_and_changes_nothing():
    client = make_state().books["demo"]
    first = [sms(f"61055500{i:02d}") for i in range(30)]
    domain.onboard_customer(client, "default", {"ccid": "N1", "notification_channels": first}, False)
    more = [sms(f"61055501{i:02d}") for i in range(21)]
    with pytest.raises(ApiError) as caught:
        domain.onboard_customer(client, "default", {"ccid": "N1", "first_name": "X", "notification_channels": more}, False)
    assert caught.value.status == 409 and "51 phone numbers" in caught.value.message
    assert client.customers["N1"] == {"ccid": "N1", "notification_channels": first, "product_group_id": "default"}
    assert "6105550100" not in client.phone_ccids
    domain.onboard_customer(client, "default", {"ccid": "N1", "notification_channels": more}, True)  # replacing: 21
    assert len(client.customers["N1"]["notification_channels"]) == 21


def test_onboard_frees_a_number_and_the_51st_customer_can_then_take_it():
    client = make_state().books["demo"]
    shared = [sms("6105551212")]
    for i in range(50):
        domain.onboard_customer(client, "default", {"ccid": f"P{i}", "notification_channels": shared}, False)
    with pytest.raises(ApiError) as caught:
        domain.onboard_customer(client, "default", {"ccid": "C1", "notification_channels": shared}, False)
    assert caught.value.status == 409 and "6105551212 already belongs to 50 customers" in caught.value.message
    assert client.customers["C1"] == {"ccid": "C1", "product_group_id": "default"}
    domain.onboard_customer(client, "default", {"ccid": "P0", "notification_channels": shared}, False)  # one of the 50: fine
    domain.onboard_customer(client, "default", {"ccid": "P1"}, True)  # frees one place
    assert domain.onboard_customer(client, "default", {"ccid": "C1", "notification_channels": shared}, False) is False
    assert len(client.phone_ccids["6105551212"]) == 50


def test_add_phone_puts_an_sms_channel_on_the_customer_and_remove_takes_it_off():
    client = make_state().books["demo"]
    added = domain.add_phone(client, "C1", "6105551212", "express")
    assert added == "Phone number 6105551212 has been added to customer with ccid C1 for client demo."
    assert domain.add_phone(client, "C1", "61055512130", None).endswith("for client demo.")
    assert client.customers["C1"]["notification_channels"] == [sms("6105551212", "express"), sms("61055512130")]
    assert client.phone_ccids["6105551212"] == {"C1"}
    removed = domain.remove_phone(client, "C1", "6105551212")
    assert removed == "Phone number 6105551212 has been removed from customer with ccid C1 for client demo"  # the vendor's: no period
    domain.remove_phone(client, "C1", "61055512130")
    assert client.customers["C1"] == {"ccid": "C1", "product_group_id": "default"}
    assert not client.phone_ccids["6105551212"]


@pytest.mark.parametrize(
    "act, status, fragment",
    [
        (lambda c: domain.add_phone(c, "NOPE", "6105551212", None), 404, "NOPE"),
        (lambda c: domain.remove_phone(c, "NOPE", "6105551212"), 404, "NOPE"),
        (lambda c: domain.remove_phone(c, "C1", "6105559999"), 404, "6105559999 not found on customer C1"),
        (lambda c: domain.add_phone(c, "C1", "6105551212", "stop"), 409, "already has phone number 6105551212"),
    ],
)
def test_phone_refusals_change_nothing(act, status, fragment):
    client = make_state().books["demo"]
    domain.add_phone(client, "C1", "6105551212", "express")
    before = copy.deepcopy(client.customers), copy.deepcopy(client.phone_ccids)
    with pytest.raises(ApiError) as caught:
        act(client)
    assert caught.value.status == status and fragment in caught.value.message
    assert (client.customers, client.phone_ccids) == before


def test_add_phone_keeps_both_limits():
    client = make_state().books["demo"]
    for i in range(50):
        domain.add_phone(client, "C1", f"61055500{i:02d}", None)
    with pytest.raises(ApiError) as caught:
        domain.add_phone(client, "C1", "6105559999", None)
    assert caught.value.status == 409 and "51 phone numbers" in caught.value.message
    for i in range(50):
        domain.load_customer(client, "default", {"ccid": f"P{i}"})
        domain.add_phone(client, f"P{i}", "2155550100", None)
    with pytest.raises(ApiError) as caught:
        domain.add_phone(client, "P0", "2155550100", None)
    assert caught.value.status == 409 and "already has" in caught.value.message
    domain.load_customer(client, "default", {"ccid": "P50"})
    with pytest.raises(ApiError) as caught:
        domain.add_phone(client, "P50", "2155550100", None)
    assert caught.value.status == 409 and "2155550100 already belongs to 50 customers" in caught.value.message
    assert "notification_channels" not in client.customers["P50"]


def test_phone_messages_keep_the_100_character_cap():
    long_ccid, long_client = "c" * 100, "k" * 100
    for template in (domain.PHONE_ADDED, domain.PHONE_REMOVED):
        message = domain.capped(template, "61055512130", long_ccid, long_client)
        assert len(message) == 100 and "61055512130" in message and "…" in message


class Stamps:
    """Timestamps one millisecond apart, and the `previous` each call was given."""

    def __init__(self):
        self.given: list[str | None] = []

    def __call__(self, previous: str | None) -> str:
        self.given.append(previous)
        return f"2024-07-05T22:16:12.{930 + len(self.given):03d}Z"


def test_a_consent_update_sets_the_number_on_every_carrier_and_keeps_its_record():
    client = make_state().books["demo"]
    for ccid in ("N1", "N2"):
        domain.load_customer(client, "default", {"ccid": ccid, "notification_channels": [sms("2155550100"), sms("6105551212", "express")]})
    stamps = Stamps()
    first = domain.update_consent(client, "6105551212", "sms", "stop", stamps)
    assert first == {
        "client_id": "demo",
        "created_at": "2024-07-05T22:16:12.931Z",
        "updated_at": "2024-07-05T22:16:12.931Z",
        "channel_type": "sms",
        "channel_addr": "6105551212",
        "consent_type": "stop",
    }
    for ccid in ("N1", "N2"):
        assert client.customers[ccid]["notification_channels"] == [sms("2155550100"), sms("6105551212", "stop")]
    second = domain.update_consent(client, "6105551212", "sms", "written", stamps)
    assert (second["created_at"], second["updated_at"], second["consent_type"]) == (
        first["created_at"],
        "2024-07-05T22:16:12.932Z",
        "written",
    )
    assert stamps.given == [None, first["updated_at"]]  # each stamp after the record's last
    assert client.consents["6105551212"] == second
    second["consent_type"] = "tampered"
    assert client.consents["6105551212"]["consent_type"] == "written"


def test_a_consent_update_of_a_number_no_customer_carries_is_404_and_the_record_stays():
    client = make_state().books["demo"]
    with pytest.raises(ApiError) as caught:
        domain.update_consent(client, "6105551212", "sms", "stop", Stamps())
    assert caught.value.status == 404 and "6105551212" in caught.value.message and not client.consents
    domain.add_phone(client, "C1", "6105551212", None)
    domain.update_consent(client, "6105551212", "sms", "stop", Stamps())
    domain.remove_phone(client, "C1", "6105551212")
    with pytest.raises(ApiError) as caught:
        domain.update_consent(client, "6105551212", "sms", "written", Stamps())
    assert caught.value.status == 404 and client.consents["6105551212"]["consent_type"] == "stop"


def test_phone_commands_check_the_index_against_the_records_rather_than_trust_it():
    """On a shared store the index and the records are read one by one: a record may have changed in between
    (that attempt is run again). A command must not fail on such a view (it used to answer 500)."""
    client = make_state().books["demo"]
    domain.add_phone(client, "C1", "6105551212", None)
    client.phone_ccids["6105551212"].add("GONE")  # the index read before another process removed a carrier
    assert domain.update_consent(client, "6105551212", "sms", "stop", Stamps())["consent_type"] == "stop"
    assert client.customers["C1"]["notification_channels"] == [sms("6105551212", "stop")]
    del client.phone_ccids["6105551212"]  # the index read after another process took the number off
    assert domain.remove_phone(client, "C1", "6105551212").startswith("Phone number 6105551212 has been removed")

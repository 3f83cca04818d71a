"""Relay over HTTP, through the Flask test client; every answer is also judged by openapi-core."""

import pytest
import yaml

from mockserver.mock import create_app
from mockserver.resources import default_fixtures_path
from mockserver.settings import Settings
from tests.conftest import RELAY_KEY, CheckedClient

MOVE = "/cdm/client/demo/customer/BAK-11984-007/move/product-group-test-2"
RETRIEVE = "/cdm/client/demo/customer/BAK-11984-007"
LOAD = "/cdm/client/demo/load-customer-record"


def test_move_then_move_again_is_409(client):
    first = client.put(MOVE, headers=RELAY_KEY)
    assert first.status_code == 200
    assert first.json == {"message": "Customer BAK-11984-007 moved to product-group-test-2 for client demo."}
    again = client.put(MOVE, headers=RELAY_KEY)
    assert again.status_code == 409
    assert "already in product group product-group-test-2" in again.json["message"]
    assert client.get(RETRIEVE, headers=RELAY_KEY).json["product_group_id"] == "product-group-test-2"


def test_production_prefix_serves_the_same_state(client):
    assert client.put("/platform/v3/api" + MOVE, headers=RELAY_KEY).status_code == 200
    assert client.put(MOVE, headers=RELAY_KEY).status_code == 409
    assert client.get("/platform/v3/api" + RETRIEVE, headers=RELAY_KEY).json["product_group_id"] == "product-group-test-2"


@pytest.mark.parametrize("headers", [{}, {"xx-relay-api-key": "wrong"}, {"xx-relay-api-key": "other-key"}])
def test_bad_key_is_401_before_any_other_check(client, state, headers):
    too_long = "/cdm/client/demo/customer/" + "x" * 101 + "/move/nope"
    for method, url in [("put", MOVE), ("put", too_long), ("get", RETRIEVE), ("post", LOAD)]:
        response = getattr(client, method)(url, headers=headers, data="{not json", content_type="application/json")
        assert response.status_code == 401, (method, url)
        assert response.json == {"message": "The API token does not have authorization to the requested resource."}
    assert state["relay"].books["demo"].customers["BAK-11984-007"]["product_group_id"] == "default"


def test_other_clients_key_works_on_its_own_client_only(client):
    assert client.get("/cdm/client/other/customer/OTH-0001", headers={"xx-relay-api-key": "other-key"}).status_code == 200
    assert client.get("/cdm/client/other/customer/BAK-11984-007", headers={"xx-relay-api-key": "other-key"}).status_code == 404
    assert client.get("/cdm/client/other/customer/OTH-0001", headers=RELAY_KEY).status_code == 401


@pytest.mark.parametrize(
    "url, status, field",
    [
        ("/cdm/client/demo/customer/" + "x" * 101 + "/move/default", 400, "ccid"),
        ("/cdm/client/demo/customer/BAK-11984-007/move/" + "g" * 101, 400, "product_group_id"),
        ("/cdm/client/demo/customer/NOPE/move/default", 404, "NOPE"),
        ("/cdm/client/demo/customer/BAK-11984-007/move/unknown-group", 404, "unknown-group"),
        ("/cdm/client/demo/customer/BAK-11984-007/move/default", 409, "default"),
    ],
)
def test_move_errors_name_the_field(client, url, status, field):
    response = client.put(url, headers=RELAY_KEY)
    assert response.status_code == status
    assert field in response.json["message"]


def test_retrieve_returns_the_record_with_its_group(client):
    response = client.get(RETRIEVE, headers=RELAY_KEY)
    assert response.status_code == 200
    assert response.json["ccid"] == "BAK-11984-007" and response.json["product_group_id"] == "default"


def result(ccid: str, created: bool) -> dict:
    """A load's or onboard's 200 body for `ccid` in group default of client demo."""
    verb = "created" if created else "updated"
    return {
        "message": f"Customer {ccid} {verb} in default for client demo.",
        "ccid": ccid,
        "product_group_id": "default",
        "created": created,
    }


def test_load_creates_then_refuses_the_same_ccid_in_any_group(client):
    body = {"product_group_id": "default", "customer": {"ccid": "NEW-1", "first_name": "Ada"}}
    created = client.post(LOAD, headers=RELAY_KEY, json=body)
    assert created.status_code == 200
    assert created.json == result("NEW-1", created=True)
    for group in ("default", "vip"):
        again = client.post(LOAD, headers=RELAY_KEY, json={"product_group_id": group, "customer": {"ccid": "NEW-1", "first_name": "Grace"}})
        assert again.status_code == 409 and "NEW-1 already exists in product group default" in again.json["message"]
    assert client.get("/cdm/client/demo/customer/NEW-1", headers=RELAY_KEY).json == {
        "ccid": "NEW-1",
        "product_group_id": "default",
        "first_name": "Ada",
    }


def test_load_takes_relays_documented_example_body(client):
    """The create page's per-field examples as one body (its `country` example, USA, breaks its own 2-character cap: US here)."""
    customer = {
        "ccid": "BAK-11984-900",
        "secondary_account_id": "ABC123",
        "first_name": "Roger",
        "middle_name": "Harold",
        "last_name": "Moore",
        "date_of_birth": "1954-12-01",
        "ssn_last4": "1234",
        "gender": "M",
        "addresses": [
            {
                "address1": "201 King of Prussia Road",
                "address2": "Suite 161",
                "city": "Radnor",
                "state_province": "PA",
                "postal_code": "19087",
                "country": "US",
            }
        ],
        "notification_channels": [{"channel_type": "sms", "channel_addr": "6105551212", "consent_type": "written"}],
    }
    assert client.post(LOAD, headers=RELAY_KEY, json={"product_group_id": "default", "customer": customer}).status_code == 200
    assert client.get(f"/cdm/client/demo/customer/{customer['ccid']}", headers=RELAY_KEY).json == {
        **customer,
        "product_group_id": "default",
    }


@pytest.mark.parametrize(
    "body, content_type, fragment",
    [
        (None, None, "required"),
        ("{not json", "application/json", "not valid JSON"),
        ('{"product_group_id": "default"}', "application/json", "customer"),
        ('{"product_group_id": "default", "customer": {"ccid": "X", "date_of_birth": "1980-13-01"}}', "application/json", "date_of_birth"),
        ('{"product_group_id": "default", "customer": {"ccid": "X", "country": "US"}}', "application/json", "country"),
        ('{"product_group_id": "default", "customer": {"ccid": "X"}}', "text/plain", "Content-Type"),
        ("[" * 100000 + "]" * 100000, "application/json", "JSON"),
    ],
)
def test_bad_load_bodies_are_400_naming_the_problem_and_change_nothing(client, state, body, content_type, fragment):
    before = dict(state["relay"].books["demo"].customers)
    response = client.post(LOAD, headers=RELAY_KEY, data=body, content_type=content_type)
    assert response.status_code == 400
    assert fragment in response.json["message"]
    assert state["relay"].books["demo"].customers == before


def test_oversized_body_is_refused_with_the_documented_400(client):
    response = client.post(LOAD, headers=RELAY_KEY, data=b"x" * (2 * 1024 * 1024), content_type="application/json")
    assert response.status_code == 400
    assert "too large" in response.json["message"]


def test_long_ids_keep_the_move_message_within_100_characters(tmp_path, reference, admin_reference):
    ccid, group = "c" * 100, "g" * 100
    fixtures = yaml.safe_load(default_fixtures_path().read_text())
    fixtures["relay"]["clients"][0]["product_groups"].append(group)
    (tmp_path / "long.yaml").write_text(yaml.safe_dump(fixtures))
    app = create_app(Settings(fixtures=tmp_path / "long.yaml", strict_responses=True))
    app.test_client_class = CheckedClient
    CheckedClient.reference, CheckedClient.admin_reference = reference, admin_reference
    client = app.test_client()
    body = {"product_group_id": "default", "customer": {"ccid": ccid}}
    assert client.post(LOAD, headers=RELAY_KEY, json=body).status_code == 200
    response = client.put(f"/cdm/client/demo/customer/{ccid}/move/{group}", headers=RELAY_KEY)
    assert response.status_code == 200 and len(response.json["message"]) <= 100


ONBOARD = "/cdm/client/demo/onboard"


def channel(number: str, consent: str | None = None) -> dict:
    return {"channel_type": "sms", "channel_addr": number, **({"consent_type": consent} if consent else {})}


def retrieve(client, ccid: str) -> dict:
    return client.get(f"/cdm/client/demo/customer/{ccid}", headers=RELAY_KEY).json


def test_onboard_takes_relays_documented_example_body_creates_then_updates(client):
    """The onboard page's per-field examples (trigger_id, launched_by, deactivate_previous_connections) in one body."""
    body = {
        "trigger_id": "7028cb2e-d62d-4d5f-a285-91d25781ea86",
        "launched_by": {"lb_name": "user@company.com", "lb_source": "company-system"},
        "product_group_id": "default",
        "deactivate_previous_connections": True,
        "input_parameters": {"appointment": {"date": "2024-07-05", "slots": [1, 2]}},
        "customer": {"ccid": "NEW-2", "first_name": "Roger", "notification_channels": [channel("6105551212", "written")]},
    }
    created = client.post(ONBOARD, headers=RELAY_KEY, json=body)
    assert created.status_code == 200
    assert created.json == result("NEW-2", created=True)
    body["customer"] = {"ccid": "NEW-2", "last_name": "Moore", "notification_channels": [channel("6105551213")]}
    updated = client.post("/platform/v3/api" + ONBOARD, headers=RELAY_KEY, json=body)
    assert updated.status_code == 200 and updated.json == result("NEW-2", created=False)
    assert retrieve(client, "NEW-2") == {
        "ccid": "NEW-2",
        "product_group_id": "default",
        "first_name": "Roger",
        "last_name": "Moore",
        "notification_channels": [channel("6105551213")],
    }


def test_onboard_without_deactivating_adds_numbers_and_updates_a_known_ones_consent(client):
    body = {
        "product_group_id": "default",
        "customer": {"ccid": "BAK-11984-007", "notification_channels": [channel("6105551212", "stop"), channel("2155550100")]},
    }
    assert client.post(ONBOARD, headers=RELAY_KEY, json=body).json["created"] is False
    record = retrieve(client, "BAK-11984-007")
    assert record["notification_channels"] == [channel("6105551212", "stop"), channel("2155550100")]
    assert record["first_name"] == "Jane" and record["addresses"][0]["city"] == "Springfield"


@pytest.mark.parametrize(
    "body, status, fragment",
    [
        ({"product_group_id": "vip", "customer": {"ccid": "BAK-11984-007"}}, 409, "use move"),
        ({"product_group_id": "nope", "customer": {"ccid": "BAK-11984-007"}}, 404, "nope"),
        ({"product_group_id": "default", "customer": {"ccid": "BAK-11984-007"}, "trigger_id": "t" * 101}, 400, "trigger_id"),
        ({"product_group_id": "default", "customer": {"ccid": "X"}, "launched_by": {"lb_name": "n" * 256}}, 400, "lb_name"),
        ({"product_group_id": "default", "customer": {"ccid": "X"}, "launched_by": {"lb_user": "n"}}, 400, "lb_user"),
        (
            {"product_group_id": "default", "customer": {"ccid": "X"}, "deactivate_previous_connections": "yes"},
            400,
            "deactivate_previous_connections",
        ),
        ({"product_group_id": "default", "customer": {"ccid": "X"}, "input_parameters": []}, 400, "input_parameters"),
        ({"product_group_id": "default"}, 400, "customer"),
        (
            {
                "product_group_id": "default",
                "customer": {"ccid": "X", "notification_channels": [{"channel_type": "sms", "channel_addr": "+16105551212"}]},
            },
            400,
            "channel_addr",
        ),
        (
            {"product_group_id": "default", "customer": {"ccid": "X", "notification_channels": [channel("6105551212", "implied")]}},
            400,
            "consent_type",
        ),
    ],
)
def test_onboard_refusals_name_the_cause_and_change_nothing(client, state, body, status, fragment):
    before = dict(state["relay"].books["demo"].customers)
    response = client.post(ONBOARD, headers=RELAY_KEY, json=body)
    assert response.status_code == status and fragment in response.json["message"], response.json
    assert state["relay"].books["demo"].customers == before


def test_onboard_past_50_numbers_on_a_ccid_is_409(client, state):
    first = [channel(f"61055500{i:02d}") for i in range(49)]
    body = {"product_group_id": "default", "customer": {"ccid": "BAK-11984-007", "notification_channels": first}}
    assert client.post(ONBOARD, headers=RELAY_KEY, json=body).status_code == 200  # 49 + Jane's own: 50
    body["customer"]["notification_channels"] = [channel("6105559999")]
    refused = client.post(ONBOARD, headers=RELAY_KEY, json=body)
    assert refused.status_code == 409 and "51 phone numbers" in refused.json["message"]
    assert len(retrieve(client, "BAK-11984-007")["notification_channels"]) == 50


JANE = "/cdm/client/demo/customer/BAK-11984-007"


def test_add_then_remove_a_phone_number_shows_on_retrieve(client):
    added = client.put(
        f"{JANE}/add_phone/6105551213", headers=RELAY_KEY, json={"consent_type": "written", "phone_type": "mobile", "country_code": "1"}
    )
    assert added.status_code == 200
    assert added.json == {"message": "Phone number 6105551213 has been added to customer with ccid BAK-11984-007 for client demo."}
    assert retrieve(client, "BAK-11984-007")["notification_channels"] == [
        channel("6105551212", "express"),
        channel("6105551213", "written"),
    ]
    again = client.put(f"/platform/v3/api{JANE}/add_phone/6105551213", headers=RELAY_KEY)  # no body: the body is optional
    assert again.status_code == 409 and "already has phone number 6105551213" in again.json["message"]
    removed = client.put(f"{JANE}/remove_phone/6105551212", headers=RELAY_KEY, json={"client_source": "custom client source"})
    assert removed.status_code == 200
    assert removed.json == {"message": "Phone number 6105551212 has been removed from customer with ccid BAK-11984-007 for client demo"}
    assert retrieve(client, "BAK-11984-007")["notification_channels"] == [channel("6105551213", "written")]
    gone = client.put(f"{JANE}/remove_phone/6105551212", headers=RELAY_KEY)
    assert gone.status_code == 404 and "6105551212 not found on customer BAK-11984-007" in gone.json["message"]


@pytest.mark.parametrize(
    "url, body, status, fragment",
    [
        (f"{JANE}/add_phone/610555121", None, 400, "phone_number"),
        (f"{JANE}/add_phone/+6105551213", None, 400, "phone_number"),
        (f"{JANE}/add_phone/610555121300", None, 400, "phone_number"),
        (f"{JANE}/add_phone/6105551213", {"consent_type": "implied"}, 400, "consent_type"),
        (f"{JANE}/add_phone/6105551213", {"phone_type": "satellite"}, 400, "phone_type"),
        (f"{JANE}/add_phone/6105551213", {"country_code": "1" * 11}, 400, "country_code"),
        (f"{JANE}/add_phone/6105551213", {"client_source": "s" * 101}, 400, "client_source"),
        (f"{JANE}/remove_phone/6105551212", {"consent_type": "stop"}, 400, "consent_type"),
        ("/cdm/client/demo/customer/NOPE/add_phone/6105551213", None, 404, "NOPE"),
        ("/cdm/client/demo/customer/NOPE/remove_phone/6105551212", None, 404, "NOPE"),
        (f"{JANE}/remove_phone/6105559999", None, 404, "6105559999"),
        (f"{JANE}/add_phone/6105551212", {"consent_type": "stop"}, 409, "already has phone number 6105551212"),
    ],
)
def test_phone_refusals_name_the_cause_and_change_nothing(client, state, url, body, status, fragment):
    before = dict(state["relay"].books["demo"].customers)
    response = client.put(url, headers=RELAY_KEY, json=body) if body is not None else client.put(url, headers=RELAY_KEY)
    assert response.status_code == status and fragment in response.json["message"], response.json
    assert state["relay"].books["demo"].customers == before


def test_the_51st_phone_number_of_a_ccid_and_the_51st_ccid_of_a_number_are_409(client):
    for i in range(49):
        assert client.put(f"{JANE}/add_phone/61055500{i:02d}", headers=RELAY_KEY).status_code == 200
    full = client.put(f"{JANE}/add_phone/6105559999", headers=RELAY_KEY)
    assert full.status_code == 409 and "51 phone numbers" in full.json["message"]
    for i in range(49):
        body = {"product_group_id": "default", "customer": {"ccid": f"P{i}", "notification_channels": [channel("6105551212")]}}
        assert client.post(LOAD, headers=RELAY_KEY, json=body).status_code == 200  # with Jane: 50 on 6105551212
    client.post(LOAD, headers=RELAY_KEY, json={"product_group_id": "default", "customer": {"ccid": "P49"}})
    shared = client.put("/cdm/client/demo/customer/P49/add_phone/6105551212", headers=RELAY_KEY)
    assert shared.status_code == 409 and "6105551212 already belongs to 50 customers" in shared.json["message"]
    assert "notification_channels" not in retrieve(client, "P49")


def consent_url(number: str, channel_type: str = "sms", client_id: str = "demo") -> str:
    return f"/messaging/client/{client_id}/consent/channel_addr/{number}/channel_type/{channel_type}"


def test_a_consent_update_shows_on_every_customer_carrying_the_number_and_keeps_its_record(client):
    assert client.put("/cdm/client/demo/customer/BAK-11984-008/add_phone/6105551212", headers=RELAY_KEY).status_code == 200
    first = client.put(consent_url("6105551212"), headers=RELAY_KEY, json={"consent_type": "stop"})
    assert first.status_code == 200
    consent = first.json["consent"]
    assert {k: consent[k] for k in ("client_id", "channel_type", "channel_addr", "consent_type")} == {
        "client_id": "demo",
        "channel_type": "sms",
        "channel_addr": "6105551212",
        "consent_type": "stop",
    }
    assert consent["created_at"] == consent["updated_at"]
    for ccid in ("BAK-11984-007", "BAK-11984-008"):
        assert retrieve(client, ccid)["notification_channels"] == [channel("6105551212", "stop")]
    second = client.put("/platform/v3/api" + consent_url("6105551212"), headers=RELAY_KEY, json={"consent_type": "express"})
    assert second.status_code == 200
    assert second.json["consent"]["created_at"] == consent["created_at"] and second.json["consent"]["updated_at"] > consent["updated_at"]
    [kept] = client.get("/__admin/state").json["relay"][0]["consents"]
    assert kept == second.json["consent"]
    assert client.post("/__admin/reset").status_code == 200  # consent records are state: back to the fixtures' (none)
    assert client.get("/__admin/state").json["relay"][0]["consents"] == []
    assert retrieve(client, "BAK-11984-007")["notification_channels"] == [channel("6105551212", "express")]


@pytest.mark.parametrize(
    "url, headers, body, status, fragment",
    [
        (consent_url("6105559999"), RELAY_KEY, {"consent_type": "stop"}, 404, "6105559999"),
        (consent_url("6105551212", "email"), RELAY_KEY, {"consent_type": "stop"}, 400, "channel_type"),
        (consent_url("+6105551212"), RELAY_KEY, {"consent_type": "stop"}, 400, "channel_addr"),
        (consent_url("6105551212"), RELAY_KEY, {"consent_type": "implied"}, 400, "consent_type"),
        (consent_url("6105551212"), RELAY_KEY, {}, 400, "consent_type"),
        (consent_url("6105551212"), RELAY_KEY, None, 400, "required"),
        (consent_url("6105551212"), {"xx-relay-api-key": "other-key"}, {"consent_type": "stop"}, 401, "authorization"),
        (consent_url("6105551212", client_id="other"), {"xx-relay-api-key": "other-key"}, {"consent_type": "stop"}, 404, "client other"),
        ("/messaging/client/demo/consent/bulk", RELAY_KEY, {"consent_type": "stop"}, 404, "No route"),
    ],
)
def test_consent_refusals_are_relay_errors_naming_the_cause_and_change_nothing(client, state, url, headers, body, status, fragment):
    before = dict(state["relay"].books["demo"].customers)
    response = client.put(url, headers=headers, json=body) if body is not None else client.put(url, headers=headers)
    assert response.status_code == status and fragment in response.json["message"], response.json
    assert state["relay"].books["demo"].customers == before and not state["relay"].books["demo"].consents

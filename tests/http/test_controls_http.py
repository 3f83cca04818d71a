"""Prefer, unknown routes and methods, admin reset: the parts outside the vendor APIs."""

import pytest

from tests.conftest import RELAY_KEY, SEED_MERGE, USER

MOVE = "/cdm/client/demo/customer/BAK-11984-007/move/product-group-test-2"
MERGE = "/core/customermgr/v3/customer/merge"


@pytest.mark.parametrize("status", [200, 400, 401, 404, 409, 500])
def test_prefer_answers_the_documented_example_and_changes_nothing(client, state, status):
    response = client.put(MOVE, headers={**RELAY_KEY, "Prefer": f"code={status}"})
    assert response.status_code == status and "message" in response.json
    assert state["relay"].books["demo"].customers["BAK-11984-007"]["product_group_id"] == "default"


def test_prefer_on_egain_in_xml_and_204(client, state):
    forced = client.put(MERGE, headers={**USER, "Prefer": "code=403", "Accept": "application/xml"}, json=SEED_MERGE)
    assert forced.status_code == 403 and forced.mimetype == "application/xml" and b"<code>403-178</code>" in forced.data
    assert client.put(MERGE, headers={**USER, "Prefer": "code=204"}).status_code == 204
    assert "1002" in state["egain"].customers


@pytest.mark.parametrize("prefer, fragment", [("code=418", "not documented"), ("code=abc", "3-digit"), ("code=", "3-digit")])
def test_prefer_refuses_undocumented_or_malformed_codes(client, prefer, fragment):
    relay = client.put(MOVE, headers={**RELAY_KEY, "Prefer": prefer})
    assert relay.status_code == 400 and fragment in relay.json["message"]
    egain = client.put(MERGE, headers={**USER, "Prefer": prefer})
    assert (egain.status_code, egain.json["code"]) == (400, "400-119")


def test_prefer_still_requires_credentials(client):
    assert client.put(MOVE, headers={"Prefer": "code=200"}).status_code == 401


@pytest.mark.parametrize(
    "prefer, fragment",
    [
        ("return=minimal", "'return' is not a preference"),
        ("cod=500", "'cod' is not a preference"),
        ("code=500, code=404", "given twice"),
        ("example=no such", "example must be"),
        ("example=nope", "example=nope is not documented"),
        ("code=401, example=stale", "example=stale is not documented for mergeCustomer 401"),
    ],
)
def test_unknown_or_malformed_preferences_are_refused_and_change_nothing(client, state, prefer, fragment):
    egain = client.put(MERGE, headers={**USER, "Prefer": prefer}, json=SEED_MERGE)
    assert (egain.status_code, egain.json["code"]) == (400, "400-119") and fragment in egain.json["developerMessage"]
    assert "1002" in state["egain"].customers


def test_a_named_example_is_answered_with_its_status_and_changes_nothing(client, state):
    stale = client.put(MERGE, headers={**USER, "Prefer": "example=stale"}, json=SEED_MERGE)
    assert stale.status_code == 400 and stale.json["code"] == "400-111"
    xml = client.put(MERGE, headers={**USER, "Prefer": "code=400, example=source-missing", "Accept": "application/xml"}, json=SEED_MERGE)
    assert xml.status_code == 400 and b"<code>400-107</code>" in xml.data
    assert "1002" in state["egain"].customers
    default = client.put(MOVE, headers={**RELAY_KEY, "Prefer": "code=409, example=default"})
    assert default.status_code == 409 and "already in product group" in default.json["message"]


@pytest.mark.parametrize(
    "method, url, status",
    [
        ("get", "/nowhere", 404),
        ("get", "/cdm/nowhere", 404),
        ("delete", MOVE, 405),
        ("get", MERGE, 405),
        ("options", MOVE, 405),
        ("patch", "/", 404),
    ],
)
def test_unknown_routes_and_methods_answer_json(client, method, url, status):
    response = getattr(client, method)(url, headers={**RELAY_KEY, **USER})
    assert response.status_code == status
    assert response.mimetype == "application/json"
    if status == 405:
        assert response.headers["Allow"] == "PUT"  # concrete /customer/merge wins over /customer/{ids}


def test_egain_paths_answer_unknown_routes_in_egain_format(client):
    response = client.get("/core/customermgr/v3/nothing")
    assert response.status_code == 404 and response.json["code"] == "404-102"  # not eGain's 404-101 (ids not found)


def test_reset_restores_the_fixtures(client):
    assert client.put(MOVE, headers=RELAY_KEY).status_code == 200
    assert client.put(MERGE, headers=USER, json=SEED_MERGE).status_code == 204
    reset = client.post("/__admin/reset")
    assert reset.status_code == 200
    assert client.put(MOVE, headers=RELAY_KEY).status_code == 200
    assert client.put(MERGE, headers=USER, json=SEED_MERGE).status_code == 204
    assert client.get("/__admin/health").json == {"status": "ok"}


def test_a_response_the_spec_does_not_document_is_a_logged_500(app, caplog, monkeypatch):
    from dataclasses import replace

    from mockserver.family import Reply

    exchange = app.mock.exchange
    monkeypatch.setattr(exchange, "settings", replace(exchange.settings, strict_responses=False))
    monkeypatch.setitem(exchange.families["relay"].handlers, "retrieveCustomer", lambda call: Reply(200, {"ccid": "x"}))
    response = app.test_client().get("/cdm/client/demo/customer/BAK-11984-007", headers=RELAY_KEY)
    assert response.status_code == 500
    assert "does not document" in response.json["message"] and "product_group_id" in response.json["message"]
    assert "contract violation" in caplog.text


def test_prefer_a_json_only_status_while_asking_for_xml_answers_json(client, state):
    """The mock documents its 408 in JSON only: forcing it with Accept: application/xml must not become a 500."""
    response = client.get("/core/customermgr/v3/customer/1005", headers={**USER, "Prefer": "code=408", "Accept": "application/xml"})
    assert response.status_code == 408 and response.mimetype == "application/json" and response.json["code"] == "408-101"


def test_a_bug_outside_the_exchange_is_answered_in_the_apis_own_format(monkeypatch, caplog):
    """What escapes the exchange (here, reading the request) goes to Flask's error handler: the documented 500,
    in the error format of the family the path belongs to, and logged."""
    from mockserver.http import wsgi
    from mockserver.mock import create_app

    client = create_app().test_client()
    monkeypatch.setattr(wsgi, "raw_request", lambda *_: (_ for _ in ()).throw(RuntimeError("boom")))
    egain = client.put("/core/customermgr/v3/customer/merge", headers={"Authorization": "Bearer demo-user-token"})
    assert egain.status_code == 500 and egain.json["code"] == "500-100" and "developerMessage" in egain.json
    relay = client.put("/cdm/client/demo/customer/BAK-11984-007/move/vip", headers=RELAY_KEY)
    assert relay.status_code == 500 and set(relay.json) == {"message"}
    assert "unexpected error" in caplog.text

"""The admin API through the test client, with and without an admin token."""

from mockserver.mock import create_app
from mockserver.settings import Settings


def test_admin_is_open_without_a_token(client):
    assert client.get("/__admin/health").json == {"status": "ok"}
    assert client.post("/__admin/reset").status_code == 200


def test_admin_token_is_required_when_configured():
    client = create_app(Settings(admin_token="t0ken")).test_client()
    assert client.post("/__admin/reset").status_code == 401
    assert client.post("/__admin/reset", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.post("/__admin/reset", headers={"Authorization": "Bearer t0ken"}).status_code == 200
    # The vendor APIs are not affected by the admin token.
    assert client.get("/cdm/client/demo/customer/BAK-11984-007", headers={"xx-relay-api-key": "demo-key"}).status_code == 200


def test_admin_unknown_routes_and_methods_answer_json(client):
    missing = client.get("/__admin/nothing")
    assert missing.status_code == 404 and missing.mimetype == "application/json"
    wrong = client.get("/__admin/reset")
    assert wrong.status_code == 405 and wrong.mimetype == "application/json" and "POST" in wrong.headers["Allow"]

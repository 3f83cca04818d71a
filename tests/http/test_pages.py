"""The pages beside the APIs: specs served, Swagger UI offline with both specs, an index, HEAD on every GET."""

from __future__ import annotations

import re

import pytest
import yaml

from mockserver.mock import create_app
from mockserver.resources import admin_spec_path, spec_path
from mockserver.settings import Settings
from tests.conftest import RELAY_KEY, USER


def test_the_specs_are_served_as_they_ship(client):
    assert client.get("/openapi.yaml").data == spec_path().read_bytes()
    assert client.get("/openapi.json").json == yaml.safe_load(spec_path().read_text())
    assert client.get("/__admin/openapi.yaml").data == admin_spec_path().read_bytes()
    assert client.get("/openapi.yaml").headers["Content-Type"] == "application/yaml"


def test_the_docs_page_offers_both_specs_and_references_nothing_outside(client):
    page = client.get("/docs").get_data(as_text=True)
    assert '"/openapi.yaml"' in page and '"/__admin/openapi.yaml"' in page
    assert not re.search(r"(?i)(https?:)?//[a-z0-9.-]+\.[a-z]", page), "the docs page must work offline"
    assert "validatorUrl: null" in page  # Swagger UI would otherwise call validator.swagger.io
    for asset in re.findall(r'(?:src|href)="([^"]+)"', page):
        answer = client.get(asset)
        assert answer.status_code == 200 and len(answer.data) > 500, asset


def test_the_demo_credentials_are_filled_in_with_the_bundled_fixtures_only(client, tmp_path):
    assert '"relayApiKey": "demo-key"' in client.get("/docs").get_data(as_text=True)
    own = tmp_path / "own.yaml"
    own.write_text(Settings().fixtures.read_text())
    other = create_app(Settings(fixtures=own)).test_client()
    assert "demo-key" not in other.get("/docs").get_data(as_text=True)


def test_the_index_points_to_docs_and_specs(client):
    page = client.get("/").get_data(as_text=True)
    for link in ("/docs", "/openapi.yaml", "/openapi.json", "/__admin/openapi.yaml"):
        assert f'href="{link}"' in page


@pytest.mark.parametrize(
    "path, headers",
    [
        ("/cdm/client/demo/customer/BAK-11984-008", RELAY_KEY),
        ("/core/customermgr/v3/customer/1005", USER),
        ("/cdm/client/demo/customer/NOPE", RELAY_KEY),
        ("/__admin/health", {}),
        ("/openapi.yaml", {}),
        ("/docs", {}),
    ],
)
def test_head_answers_like_get_without_the_body(path, headers):
    client = create_app(Settings(strict_responses=True)).test_client()
    got, head = client.get(path, headers=headers), client.head(path, headers=headers)
    assert head.status_code == got.status_code and head.data == b""
    assert head.headers["Content-Length"] == str(len(got.data)) and head.headers["Content-Type"] == got.headers["Content-Type"]


def test_pages_are_get_and_head_only(client):
    assert client.post("/openapi.yaml").status_code == 404


def test_the_dashboard_is_served_from_the_package_and_references_nothing_outside(client):
    page = client.get("/__admin/ui").get_data(as_text=True)
    assert "mockserver dashboard" in page and not re.search(r"(?i)(https?:)?//[a-z0-9.-]+\.[a-z]", page)
    assert "X-Mock-Journal" in page  # its polling leaves no journal entry


def test_the_state_shows_relay_by_client_and_group_and_egain_with_contacts(client):
    client.put("/cdm/client/demo/customer/BAK-11984-007/move/vip", headers=RELAY_KEY)
    state = client.get("/__admin/state").json
    demo = next(c for c in state["relay"] if c["client_id"] == "demo")
    vip = next(g for g in demo["product_groups"] if g["product_group_id"] == "vip")
    assert "BAK-11984-007" in [c["ccid"] for c in vip["customers"]]
    target = next(c for c in state["egain"]["customers"] if c["id"] == "1005")
    assert target["contacts"]["contact"] and state["truncated"] is False
    assert "demo-key" not in str(state) and "demo-user-token" not in str(state)
    assert client.get("/__admin/state?limit=1").json["truncated"] is True


def test_an_admin_read_can_leave_no_journal_entry(client):
    client.get("/__admin/faults", headers={"X-Mock-Journal": "skip"})
    client.post("/__admin/reset", headers={"X-Mock-Journal": "skip"})  # only reads are skipped
    assert [e["operationId"] for e in client.get("/__admin/requests").json["requests"]] == ["adminReset"]


def test_the_browsers_favicon_request_is_answered_not_journaled_as_unmatched(client):
    assert client.get("/favicon.ico").headers["Content-Type"] == "image/png"
    assert client.get("/__admin/requests/unmatched").json == {"requests": []}

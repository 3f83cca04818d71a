"""The pages beside the APIs: specs served, Swagger UI offline with both specs, an index, HEAD on every GET."""

from __future__ import annotations

import re

import pytest
import yaml

from mockserver.http.app import create_app
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

"""Fixed configuration shared, mutable state owned: what every session will rely on (no HTTP)."""

import json
import re

import pytest
import yaml

from mockserver.contract.compiled import Contract
from mockserver.contract.spec import load_document
from mockserver.families import built_in_sections
from mockserver.mock import create_app
from mockserver.settings import Settings
from mockserver.state.fixtures import FixtureError, Fixtures
from mockserver.state.snapshot_file import MARKER, VERSION, StateFileError, snapshot
from mockserver.state.sources import Sources

SECTIONS = built_in_sections()


@pytest.fixture(scope="module")
def fixtures() -> Fixtures:
    schemas = Contract(load_document()).schemas
    return Fixtures.load(Settings().fixtures, schemas, SECTIONS)


def test_states_share_the_config_and_nothing_they_change(fixtures):
    first, second = fixtures.build(), fixtures.build()
    assert first["relay"].books["demo"].client is second["relay"].books["demo"].client is fixtures.config["relay"].clients["demo"]
    assert first["egain"].config is second["egain"].config is fixtures.config["egain"]
    first["relay"].books["demo"].customers["BAK-11984-007"]["product_group_id"] = "vip"
    first["egain"].customers.pop("1002")
    assert second["relay"].books["demo"].customers["BAK-11984-007"]["product_group_id"] == "default"
    assert "1002" in second["egain"].customers
    assert first.sources is not second.sources and first["egain"].sources is first.sources


def test_a_seed_makes_ids_and_random_choices_reproducible(fixtures):
    one, two = fixtures.build(seed=7), fixtures.build(seed=7)
    assert [one.sources.ids.next() for _ in range(3)] == [two.sources.ids.next() for _ in range(3)]
    assert [one.sources.random.random() for _ in range(3)] == [two.sources.random.random() for _ in range(3)]
    assert fixtures.build(seed=8).sources.random.random() != fixtures.build(seed=7).sources.random.random()


def test_ids_start_above_every_id_the_fixtures_use(fixtures):
    assert int(fixtures.build().sources.ids.next()) >= 10000
    assert int(Sources(12345).ids.next()) == 12345


def test_a_state_file_saved_under_other_keys_is_refused(fixtures, tmp_path):
    data = snapshot(fixtures.build())
    data["relay"]["clients"][0]["api_keys"] = ["rotated-key"]
    path = tmp_path / "state.json"
    path.write_text(json.dumps({MARKER: VERSION, "state": data}))
    with pytest.raises(StateFileError, match="another configuration"):
        create_app(Settings(state_file=path))


def test_temporary_files_left_by_an_interrupted_save_are_removed_at_start(tmp_path):
    state = tmp_path / "state.json"
    leftovers = [tmp_path / ".state.json.k2j4x9.tmp", tmp_path / ".state.json.zz1.tmp"]
    for leftover in leftovers:
        leftover.write_text('{"mockserver_state": 1, "state": {"rel')  # torn: the kill came mid-write
    unrelated = tmp_path / ".other.json.abc.tmp"
    unrelated.write_text("{}")
    create_app(Settings(state_file=state))
    assert not any(leftover.exists() for leftover in leftovers) and unrelated.exists()


@pytest.mark.parametrize(
    "scopes, refused",
    [
        (["core.customermgr.read", "https://api.egain.cloud/auth/app.core.customermgr.maange"], None),
        (["core.casemgr.read"], None),  # another product's scope: a real token may carry it
        (["customermgr.read"], "customermgr.read"),
        (["https://example.com/auth/core.customermgr.read"], "https://example.com/auth/core.customermgr.read"),
    ],
)
def test_fixture_scopes_must_be_egain_scopes(tmp_path, scopes, refused):
    data = yaml.safe_load(Settings().fixtures.read_text())
    data["egain"]["actors"][0]["scopes"] = scopes
    path = tmp_path / "fixtures.yaml"
    path.write_text(yaml.safe_dump(data))
    schemas = Contract(load_document()).schemas
    if refused is None:
        Fixtures.load(path, schemas, SECTIONS)
        return
    with pytest.raises(FixtureError, match=f"egain.actors\\[0\\] \\(demo.user\\): scopes: '{re.escape(refused)}' is not an eGain scope"):
        Fixtures.load(path, schemas, SECTIONS)

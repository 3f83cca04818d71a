"""A family is a plug-in (#20): a family of the tests' own (tests/family/acme), registered through
`Settings.families` and nothing else, is served beside Relay and eGain on every store: its operation, its
error format, its records in the fixtures, the admin state view, `Prefer`, fault rules and scenarios, a
state file that survives a restart, and Redis shared by two processes' apps."""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from mockserver.families import BUILT_IN
from mockserver.mock import create_app
from mockserver.resources import default_fixtures_path
from mockserver.settings import Settings
from mockserver.state.fixtures import FixtureError
from tests.family.acme.api import FAMILY

ACME = "tests.family.acme.api:FAMILY"
TOKEN = {"x-acme-token": "acme-demo"}
PAINT = "/acme/v1/widgets/{}/colour/{}"
WIDGETS = [{"widget_id": "W-1", "colour": "red", "coats": 1}, {"widget_id": "W-2", "colour": "blue", "coats": 3}]


@pytest.fixture
def fixture_file(tmp_path: Path) -> Path:
    """The bundled fixtures plus an `acme` section: two widgets and a token."""
    data = yaml.safe_load(default_fixtures_path().read_text(encoding="utf-8"))
    data["acme"] = {"tokens": ["acme-demo"], "widgets": WIDGETS}
    path = tmp_path / "fixtures.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def scenarios(tmp_path: Path) -> Path:
    folder = tmp_path / "scenarios"
    folder.mkdir()
    (folder / "fresh-paint.yaml").write_text(
        "name: fresh-paint\ndescription: W-1 is green, and painting anything answers 503 once.\n"
        "state:\n  acme:\n    - {widget_id: W-1, colour: green}\n"
        "faults:\n  - {operationId: paintWidget, status: 503, times: 1}\n",
        encoding="utf-8",
    )
    return folder


def acme_app(fixtures: Path, **settings):
    return create_app(Settings(families=(*BUILT_IN, ACME), fixtures=fixtures, strict_responses=True, **settings))


def store_of(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> dict:
    if kind == "memory":
        return {}
    if kind == "state-file":
        return {"state_file": tmp_path / "state.json", "fsync": "always"}
    return {"store": request.getfixturevalue("redis_url"), "namespace": f"acme-{uuid.uuid4().hex}", "scenarios": None}


def widgets_of(client) -> dict[str, dict]:
    state = client.get("/__admin/state").json
    return {widget["widget_id"]: widget for widget in state["acme"]["widgets"]}


@pytest.mark.parametrize("kind", ["memory", "state-file", "redis"])
def test_a_family_of_its_own_is_served_beside_the_built_in_ones(kind, request, tmp_path, fixture_file):
    client = acme_app(fixture_file, **store_of(kind, request, tmp_path)).test_client()

    painted = client.put(PAINT.format("W-1", "green"), headers=TOKEN)
    assert (painted.status_code, painted.json) == (200, {"widget_id": "W-1", "colour": "green", "coats": 2})
    again = client.put(PAINT.format("W-1", "green"), headers=TOKEN)
    assert (again.status_code, again.json) == (409, {"error": "Widget W-1 is green already.", "status": 409})
    assert client.put(PAINT.format("W-9", "red"), headers=TOKEN).json == {"error": "No widget W-9.", "status": 404}
    assert client.put(PAINT.format("W-1", "red")).json == {"error": "Unknown Acme token.", "status": 401}
    refused = client.put(PAINT.format("W-1", "purple"), headers=TOKEN)
    assert refused.status_code == 400 and refused.json["error"].startswith("Bad request: ") and refused.json["status"] == 400
    assert client.get("/acme/v1/nothing").json["error"].startswith("No route matches GET")  # its format for its own paths

    assert widgets_of(client) == {"W-1": {"widget_id": "W-1", "colour": "green", "coats": 2}, "W-2": WIDGETS[1]}
    moved = client.put("/cdm/client/demo/customer/BAK-11984-007/move/vip", headers={"xx-relay-api-key": "demo-key"})
    assert moved.status_code == 200  # the built-in families are served as before
    assert client.post("/__admin/reset").status_code == 200
    assert widgets_of(client)["W-1"] == WIDGETS[0]


def test_its_records_survive_a_restart_from_the_state_file(tmp_path, fixture_file):
    settings = {"state_file": tmp_path / "state.json", "fsync": "always"}
    client = acme_app(fixture_file, **settings).test_client()
    assert client.put(PAINT.format("W-2", "red"), headers=TOKEN).status_code == 200  # logged
    restarted = acme_app(fixture_file, **settings).test_client()
    assert widgets_of(restarted)["W-2"] == {"widget_id": "W-2", "colour": "red", "coats": 4}
    restarted.application.mock.state_file.checkpoint(fork=False)  # now in the snapshot
    assert widgets_of(acme_app(fixture_file, **settings).test_client())["W-2"]["colour"] == "red"


def test_two_apps_on_one_redis_share_its_records(request, fixture_file):
    shared = {"store": request.getfixturevalue("redis_url"), "namespace": f"acme-{uuid.uuid4().hex}", "scenarios": None}
    one, other = acme_app(fixture_file, **shared).test_client(), acme_app(fixture_file, **shared).test_client()
    assert one.put(PAINT.format("W-1", "blue"), headers=TOKEN).status_code == 200
    assert other.put(PAINT.format("W-1", "blue"), headers=TOKEN).status_code == 409
    assert widgets_of(other)["W-1"]["coats"] == 2


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_prefer_fault_rules_and_the_journal_act_on_it(kind, request, tmp_path, fixture_file):
    client = acme_app(fixture_file, **store_of(kind, request, tmp_path)).test_client()
    forced = client.put(PAINT.format("W-1", "green"), headers={**TOKEN, "Prefer": "code=409"})
    assert forced.status_code == 409 and widgets_of(client)["W-1"] == WIDGETS[0]  # answered, not run
    rule = client.post("/__admin/faults", json={"operationId": "paintWidget", "status": 500, "times": 1})
    assert rule.status_code == 201
    assert client.put(PAINT.format("W-1", "green"), headers=TOKEN).json == {"error": "Something went wrong.", "status": 400}
    entries = client.get("/__admin/requests", query_string={"operationId": "paintWidget"}).json["requests"]
    assert entries[0]["request"]["headers"]["x-acme-token"] == "ac…(9)"  # its credential masked in the journal


def test_a_scenario_changes_its_records(tmp_path, fixture_file, scenarios):
    client = acme_app(fixture_file, scenarios=scenarios).test_client()
    applied = client.post("/__admin/scenarios/fresh-paint")
    assert applied.status_code == 200, applied.json
    assert widgets_of(client)["W-1"] == {"widget_id": "W-1", "colour": "green", "coats": 1}
    assert client.put(PAINT.format("W-1", "red"), headers=TOKEN).status_code == 503
    assert client.put(PAINT.format("W-1", "red"), headers=TOKEN).json["coats"] == 2


def test_a_bad_record_in_its_section_stops_the_start_naming_it(tmp_path, fixture_file):
    data = yaml.safe_load(fixture_file.read_text(encoding="utf-8"))
    data["acme"]["widgets"][1]["colour"] = "purple"
    fixture_file.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(FixtureError, match=r"acme\.widgets\[1\]: .*colour"):
        acme_app(fixture_file)
    del data["acme"]
    fixture_file.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(FixtureError, match='top level: "acme" is a required property'):
        acme_app(fixture_file)


HANDLERLESS = replace(FAMILY, handlers={})  # its spec has an operation it cannot answer


def test_an_operation_its_family_cannot_answer_stops_the_start(fixture_file):
    with pytest.raises(LookupError, match=r"no handler for operationId paintWidget \(family acme\)"):
        create_app(Settings(families=(*BUILT_IN, "tests.family.test_plugin_family:HANDLERLESS"), fixtures=fixture_file))
    with pytest.raises(FixtureError, match="family tests.family.acme.api:NOTHING: cannot be imported"):
        create_app(Settings(families=(*BUILT_IN, "tests.family.acme.api:NOTHING"), fixtures=fixture_file))


def test_a_section_that_leaves_a_method_out_cannot_be_made():
    """Section is abstract: a family missing part of its state fails where it is declared, not on a request."""
    from mockserver.state.section import Section

    class Half(Section):
        name = "half"

        def check(self, data: dict, source: str, schemas: dict[str, dict]) -> None:
            """Checks, and nothing else."""

    with pytest.raises(TypeError, match="abstract"):
        Half()  # type: ignore[abstract]

"""`serve --reload` as a user meets it: edit the fixtures or a scenario, the running mock follows; break one, it does not."""

from __future__ import annotations

import pytest
import yaml

from mockserver.testing.harness import running_server
from tests.e2e import REPO
from tests.e2e.wire import RELAY_KEY, call, eventually

pytestmark = pytest.mark.e2e
RETRIEVE = "/cdm/client/demo/customer/BAK-11984-008"


@pytest.mark.parametrize("server", ["granian", "waitress"])
def test_edits_to_fixtures_and_scenarios_apply_and_a_broken_file_keeps_the_last_good_state(tmp_path, server):
    fixtures, scenarios, log = tmp_path / "data" / "fixtures.yaml", tmp_path / "scenarios", tmp_path / "server.log"
    fixtures.parent.mkdir()
    scenarios.mkdir()
    data = yaml.safe_load((REPO / "fixtures" / "default.yaml").read_text())
    fixtures.write_text(yaml.safe_dump(data))
    args = ("--server", server, "--reload", "--fixtures", str(fixtures), "--scenarios", str(scenarios))
    with running_server(*args, log_to=log) as base:
        assert call(base, "PUT", "/cdm/client/demo/customer/BAK-11984-008/move/vip", RELAY_KEY).status == 200
        call(base, "GET", RETRIEVE, {**RELAY_KEY, "X-Mock-Session": "before"})
        data["relay"]["clients"][0]["customers"][1]["first_name"] = "Johnny"
        fixtures.write_text(yaml.safe_dump(data))
        assert eventually(lambda: call(base, "GET", RETRIEVE, RELAY_KEY).json().get("first_name") == "Johnny"), log.read_text()
        assert call(base, "GET", RETRIEVE, RELAY_KEY).json()["product_group_id"] == "default"  # started again from the file
        assert [s["id"] for s in call(base, "GET", "/__admin/sessions").json()["sessions"]] == ["default"]

        fixtures.write_text("relay: [")
        assert eventually(lambda: "not reloaded, the last good state is kept" in log.read_text()), log.read_text()
        assert call(base, "GET", RETRIEVE, RELAY_KEY).json()["first_name"] == "Johnny"

        (scenarios / "quiet.yaml").write_text("name: quiet\ndescription: Nothing happens.\n")
        assert eventually(lambda: [s["name"] for s in call(base, "GET", "/__admin/scenarios").json()["scenarios"]] == ["quiet"])
        (scenarios / "bad.yaml").write_text("name: bad\ndescription: x\nfaults:\n  - status: 418\n")
        assert eventually(lambda: "bad.yaml: faults[0]" in log.read_text()), log.read_text()
        assert [s["name"] for s in call(base, "GET", "/__admin/scenarios").json()["scenarios"]] == ["quiet"]

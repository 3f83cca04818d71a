"""Starting the server as a user would: bad fixtures, exposure rules, logs, the installed wheel."""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request
import zipfile

import pytest
import yaml

from mockserver.testing.harness import running_server
from tests.e2e import REPO

pytestmark = pytest.mark.e2e


def serve(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mockserver", "serve", "--port", "0", *args], capture_output=True, text=True, timeout=timeout
    )


def test_a_bad_fixture_stops_the_start_naming_file_record_and_field(tmp_path):
    data = yaml.safe_load((REPO / "fixtures" / "default.yaml").read_text())
    data["relay"]["clients"][0]["customers"][1]["date_of_birth"] = "1975-13-45"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    done = serve("--fixtures", str(bad))
    assert done.returncode == 2
    assert str(bad) in done.stderr
    assert "relay.clients[0] (demo).customers[1] (BAK-11984-008)" in done.stderr
    assert "date_of_birth" in done.stderr


@pytest.mark.parametrize(
    "content, fragment", [("relay: [", "not valid YAML"), ("[]", "must be a mapping"), ("relay: {}\negain: {}", "clients")]
)
def test_malformed_fixture_files_are_refused(tmp_path, content, fragment):
    bad = tmp_path / "bad.yaml"
    bad.write_text(content)
    done = serve("--fixtures", str(bad))
    assert done.returncode == 2 and fragment in done.stderr and str(bad) in done.stderr


@pytest.mark.parametrize(
    "content, fragment",
    [
        ("name: bad\ndescription: x\nfaults:\n  - operationId: moveCustomer\n    status: 418\n", "faults[0]: status 418 is not documented"),
        ("name: bad\ndescription: x\nfaults:\n  - {}\n", "faults[0]:"),
        (
            "name: bad\ndescription: x\nstate:\n  relay:\n    demo:\n      - {ccid: BAK-11984-007, product_group_id: nope}\n",
            "product_group_id",
        ),
        ("name: bad\ndescription: x\nstate:\n  egain:\n    - {id: '1005', lastModified: yesterday}\n", "state.egain[0] (1005)"),
        ("name: Bad Name\ndescription: x\n", "name:"),
        ("description: x\n", "name"),
    ],
)
def test_a_bad_scenario_file_stops_the_start_naming_file_and_field(tmp_path, content, fragment):
    (tmp_path / "bad.yaml").write_text(content)
    done = serve("--scenarios", str(tmp_path))
    assert done.returncode == 2 and str(tmp_path / "bad.yaml") in done.stderr and fragment in done.stderr, done.stderr


def test_an_unknown_scenario_at_start_is_refused_naming_the_known_ones():
    done = serve("--scenario", "nope")
    assert done.returncode == 2 and "relay-outage" in done.stderr


def test_missing_fixture_file_is_refused(tmp_path):
    done = serve("--fixtures", str(tmp_path / "absent.yaml"))
    assert done.returncode == 2 and "absent.yaml" in done.stderr


def test_binding_beyond_loopback_requires_an_admin_token():
    done = serve("--host", "0.0.0.0")
    assert done.returncode == 2 and "--admin-token" in done.stderr


def test_admin_token_protects_the_admin_api():
    with running_server(admin_token="s3cret-admin") as base:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret-admin"}):
            request = urllib.request.Request(base + "/__admin/reset", method="POST", headers=headers)
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=5)
            assert refused.value.code == 401 and b"admin token" in refused.value.read()
        good = urllib.request.Request(base + "/__admin/reset", method="POST", headers={"Authorization": "Bearer s3cret-admin"})
        assert urllib.request.urlopen(good, timeout=5).status == 200


def test_access_log_masks_credentials(tmp_path):
    log = tmp_path / "server.log"
    with running_server("--access-log", log_to=log) as base:
        request = urllib.request.Request(base + "/cdm/client/demo/customer/BAK-11984-007", headers={"xx-relay-api-key": "demo-key"})
        urllib.request.urlopen(request, timeout=5).read()
        bearer = urllib.request.Request(base + "/core/customermgr/v3/customer/1005", headers={"Authorization": "Bearer demo-user-token"})
        urllib.request.urlopen(bearer, timeout=5).read()
    text = log.read_text()
    assert "GET /cdm/client/demo/customer/BAK-11984-007 200" in text
    assert "credential=de…(8)" in text and "credential=de…(15)" in text
    # The start banner lists the bundled demo credentials on purpose; no log line shows them.
    logged = "\n".join(line for line in text.splitlines() if " INFO " in line or " WARNING " in line or " ERROR " in line)
    assert "demo-key" not in logged and "demo-user-token" not in logged


def test_the_wheel_carries_the_spec_and_fixtures_and_serves(tmp_path):
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path), str(REPO)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("mockserver-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "mockserver/bundled/spec/openapi.yaml" in names and "mockserver/bundled/fixtures/default.yaml" in names
    assert "mockserver/bundled/schemathesis.toml" in names  # `mockserver contract`'s tuning
    lua = {path.name for path in (REPO / "mockserver" / "state" / "lua").glob("*.lua")}
    assert lua and lua <= {name.rsplit("/", 1)[-1] for name in names if name.startswith("mockserver/state/lua/")}  # the Redis scripts
    unpacked = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(unpacked)
    # Run from the unpacked wheel (dependencies from this environment), far from the checkout.
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "from mockserver.resources import spec_path, default_fixtures_path, schemathesis_config_path;"
            " print(spec_path()); print(default_fixtures_path()); print(schemathesis_config_path())",
        ],
        capture_output=True,
        text=True,
        cwd=unpacked,
        env={"PYTHONPATH": str(unpacked), "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert probe.returncode == 0, probe.stderr
    assert all(line.startswith(str(unpacked / "mockserver" / "bundled")) for line in probe.stdout.split())


def test_a_scenario_at_start_never_throws_a_state_file_away(tmp_path):
    state = tmp_path / "state.json"
    with running_server("--state-file", str(state)):
        pass  # saves the state on its way out
    done = serve("--state-file", str(state), "--scenario", "relay-outage")
    assert done.returncode == 2 and "would throw away the state" in done.stderr


def test_granian_serves_in_the_one_mockserver_process():
    """No forked worker: nothing to orphan when the parent is killed, and no second copy of the state."""
    from mockserver.testing.process import process_tree

    with running_server("--server", "granian") as base:
        assert process_tree(base.pid) == [base.pid]

"""Spectral's OpenAPI ruleset (`spectral:oas`) on both contracts: no error, no warning.

Spectral is the linter API teams run on their specs; a finding there is what a
user of our spec would see first. The one finding we accept is Spectral's own
bug stoplightio/spectral#2523: it checks an XML media type's string example as
if it were JSON (`oas3-valid-media-example`, "must be object").

Spectral is a Node tool: the test installs the pinned version with npm into a
cache folder once (about 30 s), and is skipped, saying so, where npm is missing.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
VERSION = "6.16.3"
CACHE = pathlib.Path(os.environ.get("MOCKSERVER_SPECTRAL_DIR", pathlib.Path.home() / ".cache" / "mockserver-tests" / f"spectral-{VERSION}"))


@pytest.fixture(scope="module")
def spectral() -> pathlib.Path:
    binary = CACHE / "node_modules" / ".bin" / "spectral"
    if binary.exists():
        return binary
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed: Spectral (a Node tool) cannot run here")
    CACHE.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--silent", "--prefix", str(CACHE), f"@stoplight/spectral-cli@{VERSION}"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0 and binary.exists(), f"npm could not install Spectral:\n{done.stdout}\n{done.stderr}"
    return binary


def is_spectral_2523(finding: dict) -> bool:
    """Spectral judging an XML example (a string, as OpenAPI has it) as JSON."""
    return finding["code"] == "oas3-valid-media-example" and "application/xml" in finding["path"]


@pytest.mark.parametrize("spec", ["openapi.yaml", "admin.yaml"])
def test_spectral_finds_nothing_but_its_own_xml_example_bug(spectral, tmp_path, spec):
    ruleset = tmp_path / ".spectral.yaml"
    ruleset.write_text('extends: ["spectral:oas"]\n')
    done = subprocess.run(
        [str(spectral), "lint", str(REPO / "spec" / spec), "--ruleset", str(ruleset), "--format", "json", "--fail-severity", "hint"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    # Spectral prints its JSON, then (with no error found) a line of text after it.
    findings, _ = json.JSONDecoder().raw_decode(done.stdout.lstrip() or "[]")
    assert isinstance(findings, list), done.stderr
    left = [f"{f['code']} at {'.'.join(map(str, f['path']))}: {f['message']}" for f in findings if not is_spectral_2523(f)]
    assert not left, "\n".join(left)

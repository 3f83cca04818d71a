"""The README's curl examples, replayed as written against a real server process."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from mockserver.testing.harness import running_server
from tests.e2e import REPO

pytestmark = pytest.mark.e2e


def readme_examples() -> list[tuple[str, int, str]]:
    """(curl command, expected status, expected body) for every example in the README, in order."""
    text = (REPO / "README.md").read_text()
    examples = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        lines = block.replace("\\\n", " ").splitlines()
        for i, line in enumerate(lines):
            if not line.startswith("curl "):
                continue
            expected = []
            for follow in lines[i + 1 :]:
                if not follow.startswith("# "):
                    break
                expected.append(follow[2:])
            status, _, first = expected[0].partition(" ")
            examples.append((line, int(status), "\n".join([first, *expected[1:]]).strip()))
    return examples


def test_readme_has_the_examples_the_issue_asks_for():
    commands = " ".join(command for command, _, _ in readme_examples())
    needles = ("move/product-group-test-2", "customer/merge", "?foo=bar", "Accept: application/xml", "Prefer: code=")
    needles += ('"times": 2', '"delay_ms": 3000', "/__admin/requests/count", "/__admin/requests/wait")  # issue 9
    for needle in needles:
        assert needle in commands


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_readme_curl_examples_answer_as_documented():
    with running_server() as base:
        for command, status, body in readme_examples():
            command = command.replace("http://127.0.0.1:8080", base) + " -w '\\n%{http_code}'"
            done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=15)
            output, _, code = done.stdout.rpartition("\n")
            assert int(code) == status, (command, output)
            if body.endswith("…"):  # an answer shown by its start only (it holds times and durations)
                assert output.startswith(body[:-1]), (command, output)
            elif body.startswith("{"):
                assert json.loads(output) == json.loads(body), command
            else:
                assert output.strip() == body, command

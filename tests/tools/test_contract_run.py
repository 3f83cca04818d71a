"""`mockserver contract` over HTTP: a running mock passes, the broken app fails naming each planted violation."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from mockserver.cli import main
from mockserver.testing.harness import running_server
from mockserver.testing.process import free_port
from mockserver.tools.contract_report import Options
from mockserver.tools.contract_run import MAX_PLAIN_URI, filter_failure, tuning
from tests.tools.broken_app import CONTRACT, PLANTED, create_broken_app
from tests.tools.servers import thread_server

REPO = Path(__file__).resolve().parents[2]
BUDGET = ["--max-examples", "10", "--seed", "1", "--timeout", "5"]  # under 10 s a run


def contract(*args: str):
    return CliRunner().invoke(main, ["contract", *args], catch_exceptions=False)


def sections(report: str) -> dict[str, str]:
    """The report's text per operationId (a section starts with an unindented 'operationId  METHOD /path' line)."""
    found: dict[str, str] = {}
    current = None
    for line in report.splitlines():
        head = re.match(r"^(\w+)  (GET|PUT|POST|DELETE|PATCH) /", line)
        if head:
            current = head.group(1)
            found[current] = ""
        elif not line.strip() or line.startswith("Summary:"):
            current = None
        if current:
            found[current] += line + "\n"
    return found


@pytest.fixture(scope="module")
def mock_url():
    with running_server() as base:
        yield base


@pytest.fixture(scope="module")
def broken_url():
    with thread_server(create_broken_app()) as base:
        yield base


@pytest.mark.e2e
def test_a_running_mock_keeps_the_contract(mock_url):
    result = contract("--base-url", mock_url, *BUDGET)
    assert result.exit_code == 0, result.stdout
    report = sections(result.stdout)
    assert set(report) == set(CONTRACT.operations)  # every operation of the spec was run
    for operation_id, text in report.items():
        assert re.search(r"ok: \d+ requests", text), (operation_id, text)
    assert "0 distinct violations" in result.stdout and result.stdout.rstrip().endswith("PASSED")


def test_the_broken_app_fails_and_each_planted_violation_is_named(broken_url):
    result = contract("--base-url", broken_url, *BUDGET)
    assert result.exit_code == 1, result.stdout
    report = sections(result.stdout)
    for operation_id, check in PLANTED.items():
        assert "FAILED:" in report[operation_id], report[operation_id]
        assert re.search(rf"\[\d+\] {check}: ", report[operation_id]), (operation_id, check, report[operation_id])
    assert "Received: 201" in report["moveCustomer"]
    assert "product_group_id" in report["retrieveCustomer"] and "19800402" in report["retrieveCustomer"]
    assert "Received: text/plain" in report["mergeCustomer"]
    # each failure comes with a request that reproduces it
    assert "curl -X PUT" in report["moveCustomer"] and "/move/" in report["moveCustomer"]
    assert "curl -X GET" in report["getCustomersByIds"]
    assert result.stdout.rstrip().endswith("FAILED")


def test_checks_and_phases_narrow_the_run(broken_url):
    result = contract("--base-url", broken_url, "--checks", "status_code_conformance", "--phases", "examples", *BUDGET)
    assert result.exit_code == 1, result.stdout
    assert "status_code_conformance" in sections(result.stdout)["moveCustomer"]
    for other in ("ignored_auth", "response_schema_conformance", "content_type_conformance", "negative_data_rejection"):
        assert f"] {other}:" not in result.stdout


def test_one_api_family_only(broken_url):
    result = contract("--base-url", broken_url, "--api", "egain", "--phases", "examples", *BUDGET)
    assert result.exit_code == 1, result.stdout
    assert set(sections(result.stdout)) == {"mergeCustomer", "getCustomersByIds"}


@pytest.mark.parametrize(
    "args, message",
    [
        (["--base-url", "http://127.0.0.1:{port}"], "cannot reach http://127.0.0.1:"),
        (["--base-url", "localhost:8080"], "--base-url must be an http(s) URL"),
        (["--base-url", "http://127.0.0.1:{port}", "--checks", "no_such_check"], "unknown check(s) no_such_check"),
        (["--base-url", "http://127.0.0.1:{port}", "--phases", "warmup"], "unknown or no phase(s) warmup"),
    ],
)
def test_usage_and_connection_errors_exit_2(args, message):
    port = str(free_port())  # nothing listens there
    result = contract(*[arg.replace("{port}", port) for arg in args])
    assert result.exit_code == 2
    assert message in result.stderr


def test_the_tuning_is_the_repository_schemathesis_toml():
    """With the default options (the demo credentials) a run's tuning is the repository's file, plus the examples."""
    repo_file = REPO / "schemathesis.toml"
    if not repo_file.is_file():
        pytest.skip("not a checkout")
    repo = tomllib.loads(repo_file.read_text())
    ours = tuning(Options(base_url="http://x", max_examples=7))
    assert ours["generation"].pop("max-examples") == 7
    assert ours == repo


def test_the_runs_credentials_replace_the_demo_ones_in_the_tuning():
    options = Options(base_url="http://x", relay_key='k"ey\\', relay_client="acme", egain_token="t ok")
    schemes = tuning(options)["auth"]["openapi"]
    assert schemes["relayApiKey"]["api_key"] == 'k"ey\\'
    assert schemes["egainBearer"]["bearer"] == schemes["egainOAuth"]["bearer"] == "t ok"
    assert tuning(options)["parameters"]["path.client_id"] == "acme"


def _case(mode: str, media_type: str | None = None, phase: str = "fuzzing", description: str = "Negative", mutations: tuple = ("m",)):
    data = SimpleNamespace(description=description, mutations=mutations, parameter=None)
    meta = SimpleNamespace(
        generation=SimpleNamespace(mode=SimpleNamespace(value=mode)), phase=SimpleNamespace(name=SimpleNamespace(value=phase), data=data)
    )
    return SimpleNamespace(meta=meta, media_type=media_type)


def _answer(status: int, url_length: int = 10):
    return SimpleNamespace(status_code=status, request=SimpleNamespace(url="x" * url_length))


@pytest.mark.parametrize(
    "case, answer, checks, kept",
    [
        (_case("negative", "application/xml"), _answer(200), ("negative_data_rejection",), False),
        (_case("negative", "application/xml"), _answer(500), ("not_a_server_error",), True),
        (_case("negative", "application/json"), _answer(200), ("negative_data_rejection",), True),
        (_case("negative"), _answer(414, MAX_PLAIN_URI + 1), ("status_code_conformance",), False),
        (_case("negative"), _answer(414, MAX_PLAIN_URI + 1), ("negative_data_rejection",), False),
        (_case("negative"), _answer(431, MAX_PLAIN_URI + 1), ("status_code_conformance",), False),  # head over 32 KiB
        (_case("negative"), _answer(414, 100), ("status_code_conformance",), True),  # a short URL has no excuse
        (_case("positive"), _answer(414, MAX_PLAIN_URI + 1), ("status_code_conformance",), True),  # the spec promises it works
        (
            _case("negative", phase="stateful", description="Positive test case", mutations=()),
            _answer(200),
            ("negative_data_rejection",),
            False,
        ),
        (_case("negative", phase="stateful"), _answer(200), ("negative_data_rejection",), True),  # still negated
        (_case("negative", description="Positive test case", mutations=()), _answer(200), ("negative_data_rejection",), True),
    ],
)
def test_only_known_artefacts_are_dropped(case, answer, checks, kept):
    assert filter_failure(None, SimpleNamespace(checks=checks), case, answer) is kept

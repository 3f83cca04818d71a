"""`mockserver contract`: the contract of tests/contract, run over HTTP against any server.

schemathesis 4 drives the run through its engine (the same one its own CLI
uses): every operation of the spec, positive and negative data, the examples,
coverage, fuzzing and stateful phases (the stateful one follows the spec's
`links`), and every default check or the subset asked for. The tuning is the
repository's `schemathesis.toml`, which the wheel ships too (pyproject.toml),
with the run's examples, Relay client and credentials in place of the demo
ones: its justifications are written once, there.

The report (mockserver/tools/contract_report.py) groups the distinct
failures by operation, each with the check that found it, its message and
the failing request as a curl command. Exit codes: 0 when the server keeps
the contract, 1 on any violation, 2 when the run could not start or complete
(bad usage, server unreachable, errors).

schemathesis is a test dependency of the package (`pip install
'mockserver[contract]'`); it is imported only when the command runs.
"""

from __future__ import annotations

import sys
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from mockserver.resources import schemathesis_config_path
from mockserver.tools.contract_report import APIS, CHECKS, PHASES, OperationResult, Options, Report, Violation, render, short_message

MAX_PLAIN_URI = 8192  # see filter_failure


class ContractRunError(Exception):
    """The run could not start or complete: a usage or connection problem (exit code 2)."""


# ---------------------------------------------------------------- running


def tuning(options: Options) -> dict[str, Any]:
    """The schemathesis configuration of a run: the repository's schemathesis.toml with the run's examples per
    operation, Relay client and credentials in place of the demo ones."""
    config = tomllib.loads(schemathesis_config_path().read_text())
    config["generation"]["max-examples"] = int(options.max_examples)
    config["parameters"]["path.client_id"] = options.relay_client
    schemes = config["auth"]["openapi"]
    schemes["relayApiKey"]["api_key"] = options.relay_key
    for name in ("egainBearer", "egainOAuth"):  # eGain's operations name both schemes of the one header
        schemes[name]["bearer"] = options.egain_token
    return config


def validate_options(options: Options) -> None:
    """Raise ContractRunError for options that cannot make a run."""
    parsed = urllib.parse.urlsplit(options.base_url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ContractRunError(f"--base-url must be an http(s) URL such as http://127.0.0.1:8080, not {options.base_url!r}")
    unknown = [name for name in options.checks or () if name not in CHECKS]
    if unknown:
        raise ContractRunError(f"unknown check(s) {', '.join(unknown)}; known: {', '.join(CHECKS)}")
    if options.checks is not None and not options.checks:
        raise ContractRunError("--checks names no check")
    unknown = [name for name in options.phases if name not in PHASES]
    if unknown or not options.phases:
        raise ContractRunError(f"unknown or no phase(s) {', '.join(unknown)}; known: {', '.join(PHASES)}")
    if options.api not in APIS:
        raise ContractRunError(f"--api must be one of {', '.join(APIS)}")
    if options.max_examples < 1:
        raise ContractRunError("--max-examples must be at least 1")


def check_reachable(base_url: str, timeout: float) -> None:
    """Any HTTP answer will do; no answer at all is a ContractRunError."""
    try:
        urllib.request.urlopen(urllib.request.Request(base_url, method="GET"), timeout=timeout).close()
    except urllib.error.HTTPError:
        return  # an error status is an answer: the server is there
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ContractRunError(f"cannot reach {base_url}: {reason}") from exc


def run(options: Options, progress: Callable[[str], None] | None = None) -> Report:
    """Run the contract against `options.base_url` and return what was found."""
    validate_options(options)
    try:
        import schemathesis
        from schemathesis.config import HealthCheck
        from schemathesis.core.result import Ok
        from schemathesis.engine import events, from_schema
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ContractRunError("`mockserver contract` needs schemathesis: pip install 'mockserver[contract]'") from exc
    from mockserver.contract.spec import load_document
    from mockserver.resources import spec_path

    spec = Path(options.spec) if options.spec else spec_path()
    try:
        document = load_document(spec)
    except (OSError, ValueError) as exc:
        raise ContractRunError(f"cannot read the spec {spec}: {exc}") from exc
    check_reachable(options.base_url, options.timeout)

    config = schemathesis.Config.from_dict(tuning(options))
    if options.seed is not None:
        config.update(seed=options.seed, max_failures=None)
    try:
        schema: schemathesis.BaseSchema = schemathesis.openapi.from_dict(document, config=config)
    except Exception as exc:  # schemathesis' loader errors have no common public base class
        raise ContractRunError(f"cannot load the spec {spec}: {exc}") from exc
    # Hypothesis' health checks judge the data generator, not the server (tests/contract
    # suppresses them too); the spec's strict patterns make it filter many draws.
    schema.config.update(base_url=options.base_url.rstrip("/"), request_timeout=options.timeout, suppress_health_check=[HealthCheck.all])
    schema.config.phases.update(phases=list(options.phases))
    if options.checks is not None:
        schema.config.checks.update(included_check_names=list(options.checks))
    if options.show_credentials:
        schema.config.output.sanitization.update(enabled=False)
    tag = APIS[options.api]
    if tag is not None:
        # An exclusion: the repository tuning's [[operations]] entry already makes an inclusion
        # filter that matches every operation, and inclusions add up.
        schema = schema.exclude(func=lambda ctx: tag not in (ctx.operation.definition.raw.get("tags") or []))
    _register_xml_deserializer(document)
    schema.hook(filter_failure)

    report = Report(options=options, seed=schema.config.seed, spec=str(spec))
    for result in schema.get_all_operations():
        if not isinstance(result, Ok):
            continue  # an operation schemathesis cannot load: the run reports it, as an error (NonFatalError)
        operation = result.ok()
        if tag is None or tag in (operation.definition.raw.get("tags") or []):
            _operation_result(report, operation)

    started = time.monotonic()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            _absorb(report, event.recorder, event.phase.value)
        elif isinstance(event, events.NonFatalError):
            _absorb_error(report, event)
        elif isinstance(event, events.FatalError):
            raise ContractRunError(f"the run stopped: {event.exception}")
        elif isinstance(event, events.PhaseFinished) and progress is not None:
            progress(f"phase {event.phase.name.value}: {event.status.value}")
        elif isinstance(event, events.EngineFinished):
            if event.stop_reason.value == "server_unavailable":
                report.errors.append(f"{options.base_url} stopped answering; the run is incomplete")
            elif event.stop_reason.value == "interrupted":
                report.errors.append("the run was interrupted")
            for failure in event.failures:
                report.errors.append(f"{failure.title}: {failure.message}")
    report.elapsed = time.monotonic() - started
    return report


def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
    """Keep every failure but three kinds that are artefacts, not contract drift.

    1. negative_data_rejection on negative XML bodies. XML carries text only: a negative case
       that differs from valid data by a JSON type (null, a number for a string) becomes valid
       text once serialized, so schemathesis would wrongly expect a rejection. tests/contract
       does the same (and covers negative XML bodies in tests/http); every other check still
       runs on these cases.
    2. A 414 (URI Too Long, RFC 9110 section 15.5.15) or 431 (Request Header Fields Too
       Large, RFC 6585) to a negative case whose URL is over MAX_PLAIN_URI characters. The HTTP
       server in front of any application caps the request line and head (mockserver at 32 KiB
       of head, nginx and Apache at 8 KiB of request line by default) and answers before the
       application sees the request, so no spec can list it. The generated value is invalid
       anyway (eGain ids are at most 20000 ASCII characters); such an answer to a *positive*
       case is still reported, since the spec promises that URL works.
    3. negative_data_rejection on a stateful case that schemathesis' own metadata records as
       positive (no mutation left, "Positive test case"). A link can replace the value that was
       negated with one from an earlier answer (say, the ccid a load has just created), so the
       request sent is valid and a 2xx is right; the case only kept its negative mode
       (schemathesis 4.32.5).
    """
    negative = case.meta is not None and case.meta.generation.mode.value == "negative"
    if not negative:
        return True
    checks = set(getattr(failure, "checks", ()))
    phase = case.meta.phase
    if (
        "negative_data_rejection" in checks
        and phase.name.value == "stateful"
        and not getattr(phase.data, "mutations", ())
        and not getattr(phase.data, "parameter", None)
        and (getattr(phase.data, "description", "") or "").startswith("Positive")
    ):
        return False
    xml = (case.media_type or "").split(";")[0].strip().lower() == "application/xml"
    if xml and "negative_data_rejection" in checks:
        return False
    request = getattr(response, "request", None)
    long_uri = len(getattr(request, "url", "") or "") > MAX_PLAIN_URI
    if response.status_code in (414, 431) and long_uri and checks & {"negative_data_rejection", "status_code_conformance"}:
        return False
    return True


def _register_xml_deserializer(document: dict) -> None:
    """XML answers are read with the spec's own `xml` mapping, so their schema is checked too."""
    import schemathesis

    from mockserver.contract import xmlcodec
    from mockserver.contract.spec import dereference

    read_xml = xmlcodec.DocumentReader(dereference(document).get("components", {}).get("schemas", {}))

    def spec_xml(ctx: Any, response: Any) -> Any:
        return read_xml(response.content)

    schemathesis.deserializer("application/xml")(spec_xml)


def _operation_result(report: Report, operation: Any) -> OperationResult:
    found = report.operations.get(operation.label)
    if found is None:
        operation_id = operation.definition.raw.get("operationId") or operation.label
        found = OperationResult(operation_id, operation.method.upper(), operation.path)
        report.operations[operation.label] = found
    return found


def _absorb(report: Report, recorder: Any, phase: str) -> None:
    report.dropped += sum(recorder.filtered_failures.values())
    for case_id, interaction in recorder.interactions.items():
        node = recorder.cases.get(case_id)
        if node is not None:
            status = interaction.response.status_code if interaction.response is not None else "no answer"
            _operation_result(report, node.value.operation).statuses[status] += 1
    for case_id, checks in recorder.checks.items():
        node = recorder.cases.get(case_id)
        for check in checks:
            info = check.failure_info
            if info is None or node is None:
                continue
            result = _operation_result(report, node.value.operation)
            failure = info.failure
            # The full message embeds the failing instance; two answers with the same short
            # message (say, the same missing property) are one violation.
            key = (check.name, failure.title, "\n".join(short_message(failure.message)))
            if key in result.violations:
                result.violations[key].count += 1
                continue
            steps = [step.curl for step in info.steps]
            curl = "\n".join(steps) if len(steps) > 1 else info.code_sample
            answer = recorder.find_response(case_id=case_id)
            status = answer.status_code if answer is not None else None
            result.violations[key] = Violation(check.name, failure.title, failure.message, curl, phase, status)


def _absorb_error(report: Report, event: Any) -> None:
    text = f"{event.info.title}: {event.info.message}".strip()
    target = report.operations.get(event.label) if event.related_to_operation else None
    (target.errors if target is not None else report.errors).append(text)


# ---------------------------------------------------------------- command line


def _names(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    return tuple(name.strip() for name in value.split(",") if name.strip())


@click.command("contract")
@click.option("--base-url", required=True, help="The server to check, e.g. http://127.0.0.1:8080 (paths of the spec are appended).")
@click.option("--relay-key", default="demo-key", show_default=True, help="Relay API key (header xx-relay-api-key).")
@click.option("--relay-client", default="demo", show_default=True, help="The Relay client_id the key opens; every Relay path uses it.")
@click.option("--egain-token", default="demo-user-token", show_default=True, help="eGain bearer token (Authorization: Bearer ...).")
@click.option(
    "--max-examples", default=20, show_default=True, type=click.IntRange(1, 100000), help="Generated examples per operation and phase."
)
@click.option("--checks", default=None, help=f"Comma-separated checks to run (default: all). Known: {', '.join(CHECKS)}.")
@click.option("--phases", default=",".join(PHASES), show_default=True, help="Comma-separated phases to run.")
@click.option("--api", type=click.Choice(list(APIS)), default="all", show_default=True, help="Only the operations of one API family.")
@click.option("--spec", type=click.Path(dir_okay=False, path_type=Path), default=None, help="OpenAPI file (default: the bundled spec).")
@click.option("--seed", type=int, default=None, help="Seed of the data generation, to repeat a run (the report prints the seed used).")
@click.option("--timeout", default=10.0, show_default=True, type=click.FloatRange(0.1, 600), help="Seconds to wait for each answer.")
@click.option("--show-credentials", is_flag=True, help="Print the credentials in the curl commands instead of [Filtered].")
def contract_command(
    base_url: str,
    relay_key: str,
    relay_client: str,
    egain_token: str,
    max_examples: int,
    checks: str | None,
    phases: str,
    api: str,
    spec: Path | None,
    seed: int | None,
    timeout: float,
    show_credentials: bool,
) -> None:
    """Run the spec's contract (schemathesis) against a running server and report each violation.

    Exit code 0 when the server keeps the contract, 1 on any violation, 2 when the run
    could not start or complete. The run sends real requests, including state-changing
    ones (moves, loads, merges): point it at a test environment.
    """
    options = Options(
        base_url=base_url,
        relay_key=relay_key,
        relay_client=relay_client,
        egain_token=egain_token,
        max_examples=max_examples,
        checks=_names(checks),
        phases=_names(phases) or (),
        api=api,
        spec=spec,
        seed=seed,
        timeout=timeout,
        show_credentials=show_credentials,
    )
    try:
        report = run(options, progress=lambda line: click.echo(line, err=True))
    except ContractRunError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    click.echo(render(report))
    sys.exit(report.exit_code)

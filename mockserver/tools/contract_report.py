"""What a `mockserver contract` run (mockserver/tools/contract_run.py) asks for and what it found, as a report.

The options name the checks and phases of the run; the report groups the
distinct failures by operation, each with the check that found it, its
message and the failing request as a curl command, and sums them up with the
run's verdict (its exit code: 0 kept, 1 a violation, 2 incomplete).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

PHASES = ("examples", "coverage", "fuzzing", "stateful")
APIS = {"all": None, "relay": "relay", "egain": "egain"}  # --api: the spec's tags
# Every check schemathesis runs by default (max_response_time needs a limit, so it is not offered).
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "positive_data_acceptance",
    "negative_data_rejection",
    "use_after_free",
    "ensure_resource_availability",
    "missing_required_header",
    "ignored_auth",
    "object_level_authorization",
    "unsupported_method",
    "allow_header_conformance",
)
MAX_MESSAGE_LINES = 8
MAX_CURL_CHARS = 2000  # a longer command is cut in the report (fuzzed URLs reach 100 KB)
MAX_SHOWN_PER_CHECK = 3  # distinct failures shown per operation and check; the rest are counted


@dataclass(frozen=True)
class Options:
    base_url: str
    relay_key: str = "demo-key"
    relay_client: str = "demo"
    egain_token: str = "demo-user-token"
    max_examples: int = 20
    checks: tuple[str, ...] | None = None  # None: every default check
    phases: tuple[str, ...] = PHASES
    api: str = "all"
    spec: Path | None = None
    seed: int | None = None
    timeout: float = 10.0
    show_credentials: bool = False


@dataclass
class Violation:
    check: str
    title: str
    message: str
    curl: str
    phase: str
    status: int | None  # the status of the failing answer
    count: int = 1


@dataclass
class OperationResult:
    operation_id: str
    method: str
    path: str
    statuses: Counter = field(default_factory=Counter)
    violations: dict[tuple[str, str, str], Violation] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())


@dataclass
class Report:
    options: Options
    seed: int | None = None
    spec: str = ""
    operations: dict[str, OperationResult] = field(default_factory=dict)  # by schemathesis label "METHOD /path"
    errors: list[str] = field(default_factory=list)  # run-level errors
    dropped: int = 0  # failures filter_failure dropped as artefacts (see there)
    elapsed: float = 0.0

    @property
    def violations(self) -> list[Violation]:
        return [v for op in self.operations.values() for v in op.violations.values()]

    @property
    def error_count(self) -> int:
        return len(self.errors) + sum(len(op.errors) for op in self.operations.values())

    @property
    def exit_code(self) -> int:
        if self.violations:
            return 1
        return 2 if self.error_count else 0


def render(report: Report) -> str:
    options = report.options
    checks = ", ".join(options.checks) if options.checks is not None else f"all {len(CHECKS)} default checks"
    lines = [
        f"Contract run against {options.base_url}",
        f"  spec {report.spec}; api {options.api}; phases {', '.join(options.phases)}; "
        f"{options.max_examples} examples per operation; seed {report.seed}",
        f"  checks: {checks}",
        "",
    ]
    for result in report.operations.values():
        lines.extend(_render_operation(result))
        lines.append("")
    if report.errors:
        lines.append("Run errors:")
        lines.extend(f"  - {_indent(error, '    ').lstrip()}" for error in report.errors)
        lines.append("")
    lines.append(_summary(report))
    return "\n".join(lines)


def _render_operation(result: OperationResult) -> list[str]:
    statuses = ", ".join(f"{status}: {count}" for status, count in sorted(result.statuses.items(), key=lambda kv: str(kv[0])))
    lines = [f"{result.operation_id}  {result.method} {result.path}"]
    if not result.requests:
        lines.append("  not tested: no request was sent")
    else:
        verdict = "FAILED" if result.violations else ("ERRORS" if result.errors else "ok")
        lines.append(f"  {verdict}: {result.requests} requests ({statuses})")
    shown: Counter = Counter()
    hidden: Counter = Counter()
    number = 0
    for violation in result.violations.values():
        if shown[violation.check] >= MAX_SHOWN_PER_CHECK:
            hidden[violation.check] += 1
            continue
        shown[violation.check] += 1
        number += 1
        times = f"{violation.count} times" if violation.count > 1 else "once"
        answered = f", answered {violation.status}" if violation.status is not None else ""
        lines.append(f"  [{number}] {violation.check}: {violation.title} ({times}, first in the {violation.phase} phase{answered})")
        lines.extend(f"      {line}" for line in short_message(violation.message))
        lines.append("      Reproduce:")
        lines.extend(f"        {line}" for line in _short_curl(violation.curl).splitlines())
    for check, count in hidden.items():
        lines.append(f"  ... and {count} more distinct {check} failure(s)")
    for error in result.errors:
        lines.append(f"  error: {_indent(error, '    ').lstrip()}")
    return lines


def short_message(message: str) -> list[str]:
    """The message up to the schema dump schemathesis appends, at most MAX_MESSAGE_LINES lines."""
    kept = []
    for line in message.splitlines():
        if line.startswith("Schema at ") or line.startswith("Validated against"):
            break
        if line.strip():
            kept.append(line.rstrip())
    if len(kept) > MAX_MESSAGE_LINES:
        kept = kept[:MAX_MESSAGE_LINES] + ["..."]
    return kept


def _short_curl(curl: str) -> str:
    if len(curl) <= MAX_CURL_CHARS:
        return curl
    return curl[:MAX_CURL_CHARS] + f"... [cut: the command has {len(curl)} characters]"


def _summary(report: Report) -> str:
    violations = report.violations
    failed_ops = sum(1 for op in report.operations.values() if op.violations)
    requests = sum(op.requests for op in report.operations.values())
    by_check = Counter(v.check for v in violations)
    checks = f" ({', '.join(f'{name}: {count}' for name, count in sorted(by_check.items()))})" if by_check else ""
    verdict = {0: "PASSED", 1: "FAILED", 2: "INCOMPLETE"}[report.exit_code]
    return (
        f"Summary: {len(report.operations)} operations, {requests} requests, "
        f"{len(violations)} distinct violations in {failed_ops} operations{checks}, "
        f"{report.error_count} errors, {report.dropped} known artefacts dropped, {report.elapsed:.1f} s. {verdict}"
    )


def _indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line for line in text.splitlines())

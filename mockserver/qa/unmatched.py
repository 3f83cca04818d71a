"""For a request that matched no operation: the nearest operations, and why each did not match.

WireMock's "near misses", for an OpenAPI router: each operation's path
template is compared segment by segment with the request's path (under each
of its server prefixes), and the closest few are named with the first
difference.
"""

from __future__ import annotations

from collections.abc import Iterable

from mockserver.contract.compiled import Operation

NEAREST = 3


def nearest(method: str, path: str, routes: Iterable[tuple[str, Operation]]) -> list[dict[str, str]]:
    """The operations closest to `method path`, each with the first reason it does not match."""
    scored = []
    for template, operation in routes:
        score, why = _compare(method, path, template, operation.method)
        scored.append((score, template, operation, why))
    scored.sort(key=lambda item: -item[0])
    seen: set[str] = set()
    found = []
    for _, template, operation, why in scored:
        if operation.operation_id in seen:
            continue
        seen.add(operation.operation_id)
        found.append({"method": operation.method, "path": template, "why": why})
        if len(found) == NEAREST:
            break
    return found


def _compare(method: str, path: str, template: str, wanted_method: str) -> tuple[float, str]:
    got, expected = path.strip("/").split("/"), template.strip("/").split("/")
    same = 0
    difference = ""
    for position, (part, pattern) in enumerate(zip(got, expected, strict=False), start=1):
        if pattern.startswith("{") or part == pattern:
            same += 1
            continue
        difference = f"segment {position} is '{_shown(part)}', the template has '{pattern}'"
        break
    if not difference and len(got) != len(expected):
        difference = f"the path has {len(got)} segments, the template {len(expected)}"
    if not difference:
        difference = f"the path matches; the method is {wanted_method}, not {_shown(method)}"
    score = same / max(len(got), len(expected)) + (0.5 if method == wanted_method else 0)
    return score, difference


def _shown(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "…"

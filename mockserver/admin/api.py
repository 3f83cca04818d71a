"""The admin API's handlers, one per operationId of spec/admin.yaml (WireMock's vocabulary).

Requests reach them validated against the admin spec, like the vendor APIs'
requests; each acts on the caller's session (`X-Mock-Session`) unless it
names the registry itself (`/__admin/sessions`).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mockserver.admin import errors
from mockserver.contract.compiled import JSON, Operation, RawRequest
from mockserver.credentials import bearer_token
from mockserver.errors import ApiError
from mockserver.family import Call, Credential, Family, Reply, Wait
from mockserver.qa.faults import RuleInvalid, parse_rule
from mockserver.qa.journal import RequestFilter
from mockserver.qa.patterns import PatternInvalid, compile_pattern
from mockserver.qa.scenarios import Scenarios
from mockserver.qa.sessions import DEFAULT, Sessions
from mockserver.qa.unmatched import nearest
from mockserver.state.model import State

UNAUTHORIZED = "The admin API needs 'Authorization: Bearer <admin token>'."


@dataclass(frozen=True)
class Toolkit:
    """What the admin handlers reach beyond the caller's session."""

    sessions: Sessions
    scenarios: Scenarios
    vendor_operations: list[Operation]
    routes: list[tuple[str, Operation]]  # every path template (with its server prefix) and its operation
    faults_supported: tuple[str, ...]  # the wire faults the running server can produce
    admin_token: str | None


def admin_family(toolkit: Toolkit) -> Family:
    def authenticate(config: Any, operation: Operation, raw: RawRequest, path_values: dict[str, str]) -> None:
        if not toolkit.admin_token:  # none, or an empty one: the admin API is open (only allowed on loopback)
            return
        given = bearer_token(raw.headers.get("authorization"))
        if given is None or not hmac.compare_digest(given.encode(), toolkit.admin_token.encode()):
            raise ApiError(401, UNAUTHORIZED, headers={"WWW-Authenticate": 'Bearer realm="mockserver-admin"'})

    handlers: dict[str, Callable[[Call], Reply]] = {
        "adminHealth": _health,
        "adminReset": _reset,
        "adminState": _state,
        "adminListSessions": lambda call: Reply(200, {"sessions": toolkit.sessions.listed()}),
        "adminDeleteSession": lambda call: _delete_session(toolkit, call),
        "adminAddFault": lambda call: _add_fault(toolkit, call),
        "adminListFaults": lambda call: Reply(200, {"faults": call.session.faults.listed()}),
        "adminClearFaults": lambda call: _done(call.session.faults.clear),
        "adminDeleteFault": _delete_fault,
        "adminFindRequests": _find_requests,
        "adminClearRequests": lambda call: _done(call.session.journal.clear),
        "adminCountRequests": lambda call: Reply(200, {"count": len(call.session.journal.find(_filter(call.request.body)))}),
        "adminWaitForRequests": _wait_for_requests,
        "adminUnmatchedRequests": lambda call: _unmatched(toolkit, call),
        "adminListScenarios": lambda call: Reply(200, {"scenarios": toolkit.scenarios.listed()}),
        "adminApplyScenario": lambda call: _apply_scenario(toolkit, call),
    }
    return Family(
        name="admin",
        authenticate=authenticate,
        negotiate=lambda raw: JSON,
        handlers=handlers,
        error_body=errors.error_body,
        contract_error=errors.contract_error,
        credentials=(Credential("authorization", bearer=True),),  # the admin token: masked whatever families are served
        controlled=False,
    )


def _done(clear: Callable[[], None]) -> Reply:
    clear()
    return Reply(204)


def _health(call: Call) -> Reply:
    """Up, and its store reachable (a load balancer's health check then also notices a Redis gone)."""
    call.store.ping()
    return Reply(200, {"status": "ok"})


def _reset(call: Call) -> Reply:
    call.store.reset()
    return Reply(200, {"status": "reset", "message": "State restored from the fixtures."})


def _state(call: Call) -> Reply:
    limit = call.request.query["limit"]
    shown, truncated = call.store.run(_state_command, limit)
    return Reply(200, {"session": call.session.id, "truncated": truncated, **shown})


def _state_command(state: State, limit: int) -> tuple[dict[str, Any], bool]:
    """Each family's view, copies taken in the store's lock (commands change records in place)."""
    shown, truncated = {}, False
    for name, section in state.sections.items():
        shown[name], cut = section.view(state[name], limit)
        truncated |= cut
    return shown, truncated


def _delete_session(toolkit: Toolkit, call: Call) -> Reply:
    session_id = call.request.path["session_id"]
    if session_id == DEFAULT:
        raise ApiError(400, "The default session cannot be deleted; reset it with POST /__admin/reset.")
    if not toolkit.sessions.delete(session_id):
        raise ApiError(404, f"No live session {session_id}.")
    return Reply(204)


def _add_fault(toolkit: Toolkit, call: Call) -> Reply:
    try:
        rule = call.session.faults.add(
            lambda rule_id: parse_rule(rule_id, call.request.body, toolkit.vendor_operations, toolkit.faults_supported)
        )
    except RuleInvalid as exc:
        raise ApiError(400, f"request body: {exc}") from exc
    return Reply(201, rule.as_json())


def _delete_fault(call: Call) -> Reply:
    fault_id = call.request.path["fault_id"]
    if not call.session.faults.delete(fault_id):
        raise ApiError(404, f"No fault rule {fault_id} in session {call.session.id}.")
    return Reply(204)


def _find_requests(call: Call) -> Reply:
    found = call.session.journal.find(_filter(call.request.query))
    limit = call.request.query["limit"]
    return Reply(200, {"requests": [entry.as_json() for entry in found[:limit]], "total": len(found)})


def _wait_for_requests(call: Call) -> Reply:
    body = call.request.body
    wanted, count, timeout_ms = _filter(body), body.get("count", 1), body.get("timeout_ms", 10_000)
    journal = call.session.journal
    matched, last = journal.find_marked(wanted)
    seen = [last]

    def poll() -> Reply | None:
        fresh = journal.find_after(seen[0], wanted)
        if fresh:
            seen[0] = fresh[0].id
            matched[:0] = fresh
        if len(matched) < count:
            return None
        return Reply(200, {"count": len(matched), "requests": [entry.as_json() for entry in matched[:count]]})

    def expired() -> Reply:
        return poll() or Reply(
            408, {"message": f"{len(matched)} of {count} matching requests arrived within {timeout_ms} ms.", "count": len(matched)}
        )

    return Reply(200, wait=Wait(journal, wanted, timeout_ms / 1000, poll, expired))


def _unmatched(toolkit: Toolkit, call: Call) -> Reply:
    entries = [entry for entry in call.session.journal.find(RequestFilter()) if entry.operation_id is None]
    found = [
        {
            "id": entry.id,
            "time": entry.as_json()["time"],
            "method": entry.method,
            "path": entry.path,
            "status": entry.status,
            "nearest": nearest(entry.method, entry.path, toolkit.routes),
        }
        for entry in entries
    ]
    return Reply(200, {"requests": found})


def _apply_scenario(toolkit: Toolkit, call: Call) -> Reply:
    name = call.request.path["name"]
    scenario = toolkit.scenarios.by_name.get(name)
    if scenario is None:
        raise ApiError(404, f"No scenario {name}; known: {', '.join(toolkit.scenarios.by_name) or 'none'}.")
    try:
        added = scenario.apply(call.session, toolkit.vendor_operations, toolkit.faults_supported, call.store)
    except RuleInvalid as exc:
        raise ApiError(400, f"scenario {name}: {exc}") from exc
    return Reply(200, {"name": name, "session": call.session.id, "faults": [rule.as_json() for rule in added]})


def _filter(values: dict[str, Any]) -> RequestFilter:
    """A journal filter from validated query parameters or a validated body (same names)."""
    path = values.get("path")
    try:
        pattern = compile_pattern(path) if path is not None else None
    except PatternInvalid as exc:
        raise ApiError(400, f"path: {exc}.") from exc
    return RequestFilter(
        operation_id=values.get("operationId"),
        method=values["method"].upper() if values.get("method") else None,
        path=pattern,
        status=values.get("status"),
        since=_moment(values.get("since")),
        invalid=values.get("invalid"),
    )


def _moment(text: str | None) -> float | None:
    """An RFC 3339 date-time as seconds since the epoch (the schema checked its shape; `t` and `z` may be lower case)."""
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text.upper()).timestamp()
    except ValueError as exc:
        raise ApiError(400, f"since: '{text[:40]}' is not a date-time this mock can read: {exc}.") from exc

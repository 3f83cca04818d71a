"""The eGain family's HTTP side: bearer tokens, JSON/XML negotiation, one handler per operationId."""

from __future__ import annotations

from functools import lru_cache

from werkzeug.datastructures import MIMEAccept
from werkzeug.http import parse_accept_header

from mockserver.contract.compiled import JSON, XML, Operation, RawRequest
from mockserver.credentials import bearer_token
from mockserver.egain import domain, errors
from mockserver.egain.section import SECTION, customer_key
from mockserver.family import Call, Credential, Family, Reply
from mockserver.state.changes import Write
from mockserver.state.model import State


def authenticate(config: domain.EgainConfig, operation: Operation, raw: RawRequest, path_values: dict[str, str]) -> None:
    domain.authorize(config, bearer_token(raw.headers.get("authorization")), operation.operation_id)


@lru_cache(maxsize=256)
def _negotiate(accept: str) -> str | None:
    return parse_accept_header(accept, MIMEAccept).best_match([JSON, XML])


def negotiate(raw: RawRequest) -> str | None:
    """JSON or XML as `Accept` asks; no `Accept` (or `*/*`) means JSON; anything else None (406)."""
    accept = raw.headers.get("accept", "").strip()
    return _negotiate(accept) if accept else JSON


def _merge(state: State, merge: dict) -> None:
    domain.merge_customers(state[SECTION.name], merge)


_merge_command = Write(_merge, lambda merge: [customer_key(merge["targetCustomer"]["id"]), customer_key(merge["sourceCustomer"]["id"])])


def _get_command(state: State, ids: list[str], attributes: str | None, sort: str, order: str) -> list[dict]:
    return domain.get_customers(state[SECTION.name], ids, attributes, sort, order)


def mergeCustomer(call: Call) -> Reply:  # noqa: N802 - named after its operationId
    call.store.run(_merge_command, call.request.body)
    return Reply(204)


def getCustomersByIds(call: Call) -> Reply:  # noqa: N802
    query = call.request.query
    ids = call.request.path["ids"].split(",")
    customers = call.store.run(_get_command, ids, query.get("$attribute"), query.get("$sort", "id"), query.get("$order", "asc"))
    return Reply(200, {"customer": customers})


FAMILY = Family(
    name="egain",
    authenticate=authenticate,
    negotiate=negotiate,
    handlers={"mergeCustomer": mergeCustomer, "getCustomersByIds": getCustomersByIds},
    error_body=errors.error_body,
    contract_error=errors.contract_error,
    section=SECTION,
    credentials=(Credential("authorization", bearer=True),),
    demo_schemes={"egainBearer": "demo-user-token"},
    demo_headers={"Authorization": "Bearer demo-user-token"},
    banner=("  eGain       {base}/core/customermgr/v3/customer/...",),
    banner_demo=("    eGain  Authorization: Bearer demo-user-token | demo-app-token | demo-readonly-token",),
)

"""eGain state and the commands on it. No HTTP here: plain arguments in, values out.

Customers are kept in the JSON shape the spec documents (`Customer`), so the
renderer can answer them as stored. Every precondition of a merge is checked
before anything changes, so a refused merge leaves no trace.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from mockserver.errors import ApiError
from mockserver.state.sources import Sources, instant

CONTACT_POINTS = ("email", "phone", "postal", "social", "website")
CONTACT_ATTRIBUTES = ("salutation", "firstName", "middleName", "lastName")
CUSTOMER_ATTRIBUTES = ("level", "role", "pin", "howReferred", "industry", "marketSegment", "entitlements", "customAttributes")
# What a get answers without `$attribute` (eGain: "summary attributes"); `$attribute` asks for more.
SUMMARY_ATTRIBUTES = frozenset({"id", "customerName", "type", "lastModified", "department", "contacts"})
REQUIRED_PERMISSION = {"mergeCustomer": "Change Customer", "getCustomersByIds": "View Agent Console"}
# The OAuth scope levels that open each operation (eGain: `read` views customers, `manage` changes them).
REQUIRED_SCOPE = {"mergeCustomer": ("manage",), "getCustomersByIds": ("read", "manage")}
SCOPE_URL = "https://api.egain.cloud/auth/"
KIND_PREFIX = {"user": "", "application": "app."}  # users hold delegated scopes, applications `app.` ones
# (actor kind, operationId) -> the scopes any one of which opens it: built once, checked on every request.
OPENING_SCOPES = {
    (kind, operation_id): frozenset(f"{prefix}core.customermgr.{level}" for level in levels)
    for kind, prefix in KIND_PREFIX.items()
    for operation_id, levels in REQUIRED_SCOPE.items()
}
SORT_KEYS = {
    "id": lambda c: int(c["id"]),
    "type": lambda c: c.get("type", {}).get("value", ""),
    "customerName": lambda c: c.get("customerName", ""),
}


@dataclass(frozen=True)
class Actor:
    """Who a bearer token stands for: a user with permissions, or a client application."""

    name: str
    kind: str  # "user" or "application"
    permissions: frozenset[str] = frozenset()
    scopes: frozenset[str] | None = None  # short names (`core.customermgr.read`); None: every Customer Manager scope of its kind

    def may(self, permission: str) -> bool:
        return self.kind == "application" or permission in self.permissions

    def has_scope_for(self, operation_id: str) -> bool:
        return self.scopes is None or not self.scopes.isdisjoint(OPENING_SCOPES[self.kind, operation_id])


def scope_name(scope: str) -> str:
    """A scope as eGain writes it (`https://api.egain.cloud/auth/core.customermgr.read`) or short: the short name.

    eGain's scope page spells one scope `app.core.customermgr.maange`: read as the slip it is.
    """
    short = scope.removeprefix(SCOPE_URL)
    return "app.core.customermgr.manage" if short == "app.core.customermgr.maange" else short


@dataclass(frozen=True)
class EgainConfig:
    """Bearer tokens and the rules of the tenant; shared by all sessions, never changed."""

    actors: dict[str, Actor]  # bearer token -> actor
    departmentalization: bool = False


@dataclass
class EgainState:
    """The customers of one session, the config they live under, and where new ids and times come from."""

    config: EgainConfig
    customers: dict[str, dict]  # id -> Customer (spec shape)
    sources: Sources


def authorize(config: EgainConfig, token: str | None, operation_id: str) -> Actor:
    """401 for a missing or unknown token; 403 for a token without the operation's scope, or a user without its permission."""
    if token is None:
        raise ApiError(401, "Invalid or missing 'authorization' header value.", "401-104")
    actor = config.actors.get(token)
    if actor is None:
        raise ApiError(401, "Invalid or expired 'Authorization' header provided. New login is required.", "401-101")
    if not actor.has_scope_for(operation_id):
        wanted = [f"{SCOPE_URL}{KIND_PREFIX[actor.kind]}core.customermgr.{level}" for level in REQUIRED_SCOPE[operation_id]]
        raise ApiError(403, "Not authorized to perform this action.", "403-197", details=[("scope", scope) for scope in wanted])
    permission = REQUIRED_PERMISSION[operation_id]
    if not actor.may(permission):
        raise ApiError(
            403, f"User is not allowed to perform the following action: {permission}.", "403-178", details=[("action", permission)]
        )
    return actor


def get_customers(state: EgainState, ids: list[str], attributes: str | None = None, sort: str = "id", order: str = "asc") -> list[dict]:
    """The customers with these ids that exist (deduplicated), sorted and projected; 404 if none.

    `attributes` is `$attribute`: None answers the summary attributes, `all` everything, else the
    summary plus the attributes named (`custom.<name>` one custom attribute).
    """
    wanted = list(dict.fromkeys(ids))
    found = [state.customers[i] for i in wanted if i in state.customers]
    if not found:
        listed = ",".join(wanted)
        raise ApiError(404, f"The following IDs provided in the URI path were not found: {listed}", "404-101", details=[("ids", listed)])
    if sort != "custom":
        found.sort(key=SORT_KEYS[sort])
    if order == "desc":
        found.reverse()
    names = set((attributes or "").split(",")) - {""}
    return [copy.deepcopy(c if "all" in names else _project(c, names)) for c in found]


def _project(customer: dict, names: set[str]) -> dict:
    """The summary attributes of `customer` and those `names` asks for."""
    shown = {k: v for k, v in customer.items() if k in SUMMARY_ATTRIBUTES or k in names}
    custom = {name.removeprefix("custom.") for name in names if name.startswith("custom.")}
    kept = [a for a in customer.get("customAttributes", {}).get("customAttribute", []) if a["name"] in custom]
    if kept:
        shown["customAttributes"] = {"customAttribute": kept}
    return shown


def merge_customers(state: EgainState, merge: dict) -> None:
    """Merge `merge["sourceCustomer"]` into `merge["targetCustomer"]` (the spec's MergeRequest)."""
    wanted = merge["targetCustomer"]
    source = state.customers.get(merge["sourceCustomer"]["id"])
    target = state.customers.get(wanted["id"])
    sent_contacts = wanted["contacts"]["contact"]
    _check_merge(state, merge["sourceCustomer"]["id"], source, wanted, target, sent_contacts)
    assert source is not None and target is not None  # _check_merge refused a missing one

    now = state.sources.clock.stamp_after(target["lastModified"])
    moved_points = {kind: [{**p, "lastModified": now} for c in _contacts(source) for p in c.get(kind, [])] for kind in CONTACT_POINTS}
    merged = {k: v for k, v in target.items() if k not in CUSTOMER_ATTRIBUTES}
    merged.update({k: copy.deepcopy(wanted[k]) for k in CUSTOMER_ATTRIBUTES if k in wanted})
    merged["lastModified"] = now
    contacts = {c["id"]: c for c in copy.deepcopy(_contacts(target))}
    for position, sent in enumerate(sent_contacts):
        if _is_individual(target):
            contact_id = _contacts(target)[0]["id"] if _contacts(target) else state.sources.ids.next()
        else:
            contact_id = sent.get("id") or state.sources.ids.next()
        old = contacts.get(contact_id, {"id": contact_id, "systemCreated": False})
        contact = {k: v for k, v in old.items() if k not in CONTACT_ATTRIBUTES}
        contact.update({k: sent[k] for k in CONTACT_ATTRIBUTES if k in sent})
        contact["lastModified"] = now
        if position == 0:
            for kind, points in moved_points.items():
                if points:
                    contact[kind] = contact.get(kind, []) + points
        contacts[contact_id] = contact
    merged["contacts"] = {"contact": list(contacts.values())}
    state.customers[target["id"]] = merged
    del state.customers[source["id"]]


def _check_merge(state: EgainState, source_id: str, source: dict | None, wanted: dict, target: dict | None, sent: list[dict]) -> None:
    if source_id == wanted["id"]:
        raise ApiError(400, "sourceCustomer.id and targetCustomer.id must differ.", "400-110")
    if source is None:
        raise ApiError(400, f"Source customer {source_id} does not exist.", "400-107")
    if target is None:
        raise ApiError(400, f"Target customer {wanted['id']} does not exist.", "400-125")
    if not _is_individual(source):
        raise ApiError(400, f"Source customer {source_id} is not an individual customer.", "400-109")
    if _sent_instant(wanted["lastModified"]) != instant(target["lastModified"]):
        raise ApiError(
            400,
            f"targetCustomer.lastModified {wanted['lastModified']} is not the current value {target['lastModified']};"
            " get the customer again.",
            "400-111",
        )
    if state.config.departmentalization and source.get("department") != target.get("department"):
        raise ApiError(400, "Source and target customers belong to different departments.", "400-115")
    if _is_individual(target):
        if any("id" in contact for contact in sent):
            raise ApiError(400, "targetCustomer.contacts.contact.id must not be sent for an individual target customer.", "400-126")
        if len(sent) != 1:
            raise ApiError(400, "An individual target customer takes exactly one contact.", "400-120")
        return
    existing = {c["id"]: c for c in _contacts(target)}
    for contact in sent:
        if "id" not in contact:
            continue
        if contact["id"] not in existing:
            raise ApiError(400, f"Contact {contact['id']} is not a contact of customer {target['id']}.", "400-127")
        if existing[contact["id"]].get("systemCreated"):
            raise ApiError(400, f"Contact {contact['id']} is system-created and cannot be a merge target.", "400-114")


def _sent_instant(text: str) -> tuple[int, str]:
    """The instant a client sent. `format: date-time` (rfc3339-validator) lets a trailing newline through; RFC 3339 does not."""
    try:
        return instant(text)
    except ValueError:
        raise ApiError(400, f"request body: targetCustomer.lastModified: {text!r} is not an RFC 3339 date-time.", "400-104") from None


def _is_individual(customer: dict) -> bool:
    return customer.get("type", {}).get("value") == "individual"


def _contacts(customer: dict) -> list[dict]:
    return customer.get("contacts", {}).get("contact", [])

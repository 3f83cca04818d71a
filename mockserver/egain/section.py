"""eGain's part of the state: its fixture section (the tenant's rules, the actors behind bearer tokens, the
customers), checked. The customers are its one collection, by id; new ids are drawn above every numeric id
they use."""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import MutableMapping
from typing import Any

from mockserver.contract.compiled import SchemaCheck
from mockserver.egain.domain import Actor, EgainConfig, EgainState, scope_name
from mockserver.state.section import Chunks, Collection, FixtureError, Key, Section
from mockserver.state.sources import Sources

_STRINGS = {"type": "array", "items": {"type": "string", "minLength": 1}, "uniqueItems": True}
# An eGain scope's short name: `[app.]<area>.<product>.<level>`, as eGain's scope page lists them (core.customermgr.read).
_SCOPE = re.compile(r"(app\.)?[a-z]+\.[a-z]+\.[a-z]+")
CUSTOMERS = "customers"


class EgainSection(Section):
    name = "egain"
    record_schemas = ("Customer",)
    schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["actors"],
        "properties": {
            "departmentalization": {"type": "boolean"},
            "actors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["token", "name", "kind"],
                    "properties": {
                        "token": {"type": "string", "minLength": 1},
                        "name": {"type": "string", "minLength": 1},
                        "kind": {"enum": ["user", "application"]},
                        "permissions": _STRINGS,
                        "scopes": _STRINGS,
                    },
                },
            },
            CUSTOMERS: {"type": "array", "items": {"type": "object"}},
        },
    }
    scenario_schema = {"type": "array", "items": {"type": "object"}, "maxItems": 10000}  # customers (a patch of one, by id)

    def check(self, data: dict, source: str, schemas: dict[str, dict]) -> None:
        tokens = [a["token"] for a in data["actors"]]
        if len(tokens) != len(set(tokens)):
            raise FixtureError(f"{source}: egain.actors: a token is used twice")
        for i, actor in enumerate(data["actors"]):
            for scope in actor.get("scopes", []):
                if not _SCOPE.fullmatch(scope_name(scope)):
                    raise FixtureError(
                        f"{source}: egain.actors[{i}] ({actor['name']}): scopes: '{scope}' is not an eGain scope"
                        " (such as core.customermgr.read, app.core.customermgr.manage, or https://api.egain.cloud/auth/ before one)"
                    )
        customer_check = SchemaCheck(schemas["Customer"])
        customers = data.get(CUSTOMERS, [])
        if not _customers_pass(customers, SchemaCheck({"type": "array", "items": customer_check.schema})):
            _explain_customers(customers, source, customer_check)

    def head(self, data: dict) -> dict:
        return {k: v for k, v in data.items() if k != CUSTOMERS}

    def config(self, head: dict) -> EgainConfig:
        return EgainConfig({a["token"]: _actor(a) for a in head["actors"]}, head.get("departmentalization", False))

    def records(self, data: dict) -> list[tuple[Collection, list[dict]]]:
        return [(Collection(CUSTOMERS, "id"), data.get(CUSTOMERS, []))]

    def highest_id(self, data: dict) -> int:
        """Customers, contacts and contact points share one sequence of numeric ids."""
        highest = 0
        stack: list[Any] = list(data.get(CUSTOMERS, []))
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                if isinstance(node.get("id"), str) and node["id"].isdigit():
                    highest = max(highest, int(node["id"]))
                stack.extend(node.values())
            elif isinstance(node, list):
                stack.extend(node)
        return highest

    def collections(self, state: EgainState) -> list[Collection]:
        return [Collection(CUSTOMERS, "id")]

    def build(self, config: EgainConfig, records: dict[str, Chunks], sources: Sources) -> EgainState:
        customers: dict[str, dict] = {}
        for chunk in records.get(CUSTOMERS, ()):
            customers.update(chunk)
        return EgainState(config, customers, sources)

    def mappings(self, state: EgainState) -> dict[str, MutableMapping]:
        return {CUSTOMERS: state.customers}

    def over(self, state: EgainState, mappings: dict[str, MutableMapping], sources: Sources) -> EgainState:
        return EgainState(state.config, mappings[CUSTOMERS], sources)  # type: ignore[arg-type]

    def snapshot(self, state: EgainState) -> dict:
        return {
            "departmentalization": state.config.departmentalization,
            "actors": [_saved_actor(token, actor) for token, actor in state.config.actors.items()],
            CUSTOMERS: list(state.customers.values()),
        }

    def view(self, state: EgainState, limit: int) -> tuple[dict, bool]:
        customers = list(itertools.islice(state.customers.values(), limit + 1))
        return {CUSTOMERS: [copy.deepcopy(c) for c in customers[:limit]]}, len(customers) > limit

    def patches(self, data: list[dict], state: EgainState, at: str) -> list[tuple[str, str, dict, str]]:
        found = []
        for j, patch in enumerate(data):
            if not isinstance(patch.get("id"), str):
                raise FixtureError(f"{at}[{j}]: id: is required (it names the customer to change)")
            found.append((CUSTOMERS, patch["id"], patch, f"{at}[{j}] ({patch['id']})"))
        return found

    def patched_problem(self, state: EgainState, collection: str, record_id: str, schemas: dict[str, dict]) -> str:
        customer: Any = state.customers[record_id]
        problem = SchemaCheck(schemas["Customer"]).error(customer)
        return problem or ("" if "lastModified" in customer and "type" in customer else "type and lastModified are required")


SECTION = EgainSection()


def customer_key(customer_id: str) -> Key:
    return (SECTION.name, CUSTOMERS, customer_id)


def _actor(entry: dict) -> Actor:
    """An eGain actor; `scopes` (short or full-URL names) left out means every Customer Manager scope of its kind."""
    scopes = entry.get("scopes")
    granted = None if scopes is None else frozenset(scope_name(scope) for scope in scopes)
    return Actor(entry["name"], entry["kind"], frozenset(entry.get("permissions", [])), granted)


def _saved_actor(token: str, actor: Actor) -> dict[str, Any]:
    """An actor as a fixture file writes it, so that reading the snapshot gives the same actor back."""
    saved: dict[str, Any] = {"token": token, "name": actor.name, "kind": actor.kind, "permissions": sorted(actor.permissions)}
    if actor.scopes is not None:
        saved["scopes"] = sorted(actor.scopes)
    return saved


def _customers_pass(customers: list, customers_check: SchemaCheck) -> bool:
    """Whether every customer keeps every rule of `_explain_customers`, with no message built."""
    if not customers_check.valid(customers):
        return False
    if not all("type" in customer and "lastModified" in customer for customer in customers):
        return False
    return len({customer["id"] for customer in customers}) == len(customers)


def _explain_customers(customers: list, source: str, customer_check: SchemaCheck) -> None:
    """Raise for the first customer that breaks a rule, naming it, its id and the field."""
    ids: set[str] = set()
    for i, customer in enumerate(customers):
        at = f"{source}: egain.customers[{i}] ({customer.get('id', '?')})"
        problem = customer_check.error(customer)
        if problem:
            raise FixtureError(f"{at}: {problem}")
        for field in ("type", "lastModified"):
            if field not in customer:
                raise FixtureError(f"{at}: {field}: is required in fixtures (merges depend on it)")
        if customer["id"] in ids:
            raise FixtureError(f"{at}: id: '{customer['id']}' is used twice")
        ids.add(customer["id"])
    raise FixtureError(f"{source}: egain.customers: a customer breaks a rule")  # unreachable while both passes keep the same rules

"""Loading and checking fixture files, and building fresh state from them.

Records are checked against the spec's own schemas (`RelayCustomerRecord`,
`Customer`), so the mock can never serve a fixture the contract rejects. A bad
file stops the start with a message naming the file, the record and the field.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import jsonschema_rs
import yaml

from mockserver.contract.compiled import SchemaCheck
from mockserver.egain.domain import Actor, EgainConfig, EgainState
from mockserver.relay.domain import MAX_CCIDS_PER_PHONE, RelayClient, RelayConfig, RelayState, phones_of
from mockserver.state.model import Config, State
from mockserver.state.sources import Sources

# libyaml's C parser when PyYAML was built with it: about ten times faster on large files.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_STRINGS = {"type": "array", "items": {"type": "string", "minLength": 1}, "uniqueItems": True}
FILE_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["relay", "egain"],
    "properties": {
        "relay": {
            "type": "object",
            "additionalProperties": False,
            "required": ["clients"],
            "properties": {
                "clients": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["client_id", "api_keys", "product_groups"],
                        "properties": {
                            "client_id": {"type": "string", "minLength": 1},
                            "api_keys": {**_STRINGS, "minItems": 1},
                            "product_groups": {**_STRINGS, "minItems": 1},
                            "customers": {"type": "array", "items": {"type": "object"}},
                        },
                    },
                }
            },
        },
        "egain": {
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
                        },
                    },
                },
                "customers": {"type": "array", "items": {"type": "object"}},
            },
        },
    },
}


class FixtureError(ValueError):
    """A fixture file that cannot be served; the message names file, record and field."""


class Fixtures:
    """A checked fixture file: its fixed `config`, and `build()` for a fresh, independent state.

    The records are kept pickled: one compact copy for every reset, so a
    large fixture costs its live state plus a few bytes a record, and
    unpickling builds a fresh state several times faster than a deep copy.
    """

    def __init__(self, data: dict, source: str, schemas: dict[str, dict]):
        self.source = source
        _check(data, source, schemas)
        self.config = _config(data)
        records = {
            "relay": {entry["client_id"]: entry.get("customers", []) for entry in data["relay"]["clients"]},
            "egain": data["egain"].get("customers", []),
        }
        self._first_id = _next_id(records["egain"])
        self._pickled = pickle.dumps(records, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def load(cls, path: Path, schemas: dict[str, dict]) -> Fixtures:
        """`schemas` are the spec's resolved component schemas."""
        try:
            with open(path, encoding="utf-8") as handle:
                data = yaml.load(handle, Loader=_YAML_LOADER)  # noqa: S506 - a safe loader
        except OSError as exc:
            raise FixtureError(f"{path}: cannot read the fixture file: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise FixtureError(f"{path}: not valid YAML: {exc}") from exc
        return cls(data, str(path), schemas)

    def build(self, config: Config | None = None, seed: int | str | None = None) -> State:
        """A fresh state of these records under `config` (this file's own unless given; it must be equal)."""
        config = config or self.config
        records = pickle.loads(self._pickled)
        relay = RelayState.empty(config.relay)
        for client_id, customers in records["relay"].items():
            book = relay.books[client_id]
            for record in customers:
                book.customers[record["ccid"]] = record
                book.index_phones(record["ccid"], None, record)
        sources = Sources(self._first_id, seed)
        egain = EgainState(config.egain, {c["id"]: c for c in records["egain"]}, sources)
        return State(relay=relay, egain=egain, sources=sources)


def _config(data: dict) -> Config:
    clients = [RelayClient(e["client_id"], frozenset(e["api_keys"]), frozenset(e["product_groups"])) for e in data["relay"]["clients"]]
    egain = data["egain"]
    actors = {a["token"]: Actor(a["name"], a["kind"], frozenset(a.get("permissions", []))) for a in egain["actors"]}
    return Config(RelayConfig.build(clients), EgainConfig(actors, egain.get("departmentalization", False)))


def _next_id(customers: list[dict]) -> int:
    """One above every numeric id in use (customers, contacts, contact points), at least 10000."""
    highest = 9999
    stack: list[Any] = list(customers)
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("id"), str) and node["id"].isdigit():
                highest = max(highest, int(node["id"]))
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return highest + 1


# ---------------------------------------------------------------- checking


def _check(data: Any, source: str, schemas: dict[str, dict]) -> None:
    if not isinstance(data, dict):
        raise FixtureError(f"{source}: the file must be a mapping with 'relay' and 'egain' sections")
    error = next(iter(jsonschema_rs.Draft202012Validator(FILE_SCHEMA).iter_errors(data)), None)
    if error is not None:
        raise FixtureError(f"{source}: {where(error.instance_path) or 'top level'}: {error.message}")
    _check_relay(data["relay"], source, SchemaCheck(schemas["RelayCustomerRecord"]))
    _check_egain(data["egain"], source, SchemaCheck(schemas["Customer"]))


def _check_relay(relay: dict, source: str, record_check: SchemaCheck) -> None:
    owners: dict[str, str] = {}
    seen_clients: set[str] = set()
    for i, client in enumerate(relay["clients"]):
        where = f"{source}: relay.clients[{i}] ({client['client_id']})"
        if client["client_id"] in seen_clients:
            raise FixtureError(f"{where}: client_id is used twice")
        seen_clients.add(client["client_id"])
        for key in client["api_keys"]:
            if owners.setdefault(key, client["client_id"]) != client["client_id"]:
                raise FixtureError(f"{where}: api_keys: '{key}' already belongs to client {owners[key]}")
        ccids: set[str] = set()
        phone_use: dict[str, int] = {}
        for j, record in enumerate(client.get("customers", [])):
            at = f"{where}.customers[{j}] ({record.get('ccid', '?')})"
            problem = record_check.error(record)
            if problem:
                raise FixtureError(f"{at}: {problem}")
            if record["product_group_id"] not in client["product_groups"]:
                raise FixtureError(f"{at}: product_group_id: '{record['product_group_id']}' is not one of the client's product_groups")
            if record["ccid"] in ccids:
                raise FixtureError(f"{at}: ccid: '{record['ccid']}' is used twice")
            ccids.add(record["ccid"])
            for phone in phones_of(record):
                phone_use[phone] = phone_use.get(phone, 0) + 1
                if phone_use[phone] > MAX_CCIDS_PER_PHONE:
                    raise FixtureError(f"{at}: notification_channels: phone number {phone} belongs to more than {MAX_CCIDS_PER_PHONE} customers")


def _check_egain(egain: dict, source: str, customer_check: SchemaCheck) -> None:
    tokens = [a["token"] for a in egain["actors"]]
    if len(tokens) != len(set(tokens)):
        raise FixtureError(f"{source}: egain.actors: a token is used twice")
    ids: set[str] = set()
    for i, customer in enumerate(egain.get("customers", [])):
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


def where(path: Any) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text

"""Loading and checking fixture files, and building fresh state from them.

Records are checked against the spec's own schemas (`RelayCustomerRecord`,
`RelayConsent`, `Customer`), so the mock can never serve a fixture the contract rejects. A bad
file stops the start with a message naming the file, the record and the field.

Large files (a million customers) load in seconds: a file that is JSON is
parsed as JSON (JSON is YAML, and the json module is about 50 times faster
than PyYAML); every rule is first checked at C speed over all records at
once, and only a file that breaks one is walked record by record, to name
the first bad record exactly as before; a file already checked is read back
from the fixture cache (fixture_cache.py).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import jsonschema_rs
import yaml

from mockserver.contract.compiled import SchemaCheck
from mockserver.egain.domain import Actor, EgainConfig, EgainState, scope_name
from mockserver.relay.domain import MAX_CCIDS_PER_PHONE, CustomerBook, RelayClient, RelayConfig, RelayState, phones_of, repeated_phone
from mockserver.state import fixture_cache, frozen
from mockserver.state.background import Spare, collector_paused, pause
from mockserver.state.model import Config, State
from mockserver.state.sources import Sources

# libyaml's C parser when PyYAML was built with it: about ten times faster on large files.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_STARTS_AS_JSON_OBJECT = re.compile(r"\s*\{")
# From this many records a fresh state is kept ready in the background (a reset then only swaps);
# below it, building one takes a few milliseconds and a spare would only cost memory.
SPARE_MIN_RECORDS = 10_000
_DEFAULT_CACHE = object()
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
                            "consents": {"type": "array", "items": {"type": "object"}},
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
                            "scopes": _STRINGS,
                        },
                    },
                },
                "customers": {"type": "array", "items": {"type": "object"}},
            },
        },
    },
}


# An eGain scope's short name: `[app.]<area>.<product>.<level>`, as eGain's scope page lists them (core.customermgr.read).
_SCOPE = re.compile(r"(app\.)?[a-z]+\.[a-z]+\.[a-z]+")


def _actor(entry: dict) -> Actor:
    """An eGain actor; `scopes` (short or full-URL names) left out means every Customer Manager scope of its kind."""
    scopes = entry.get("scopes")
    granted = None if scopes is None else frozenset(scope_name(scope) for scope in scopes)
    return Actor(entry["name"], entry["kind"], frozenset(entry.get("permissions", [])), granted)


class FixtureError(ValueError):
    """A fixture file that cannot be served; the message names file, record and field."""


class Fixtures:
    """A checked fixture file: its fixed `config`, and `build()` for a fresh, independent state.

    The records are kept frozen (frozen.py): one compact copy for every reset, so a large fixture costs
    its live state plus a few bytes a record. With many records, one fresh state is also kept ready,
    made in the background (background.Spare): `build()` hands it over at once.
    """

    def __init__(self, data: dict, source: str, schemas: dict[str, dict]):
        _check(data, source, schemas)
        clients = data["relay"]["clients"]
        egain = data["egain"].get("customers", [])
        relay = {entry["client_id"]: frozen.freeze(entry.get("customers", []), "ccid") for entry in clients}
        consents = {entry["client_id"]: frozen.freeze(entry["consents"], "channel_addr") for entry in clients if entry.get("consents")}
        count = sum(len(entry.get("customers", [])) for entry in clients) + len(egain)
        self._assemble(source, _head(data), _next_id(egain), relay, frozen.freeze(egain, "id"), count, consents)

    def _assemble(
        self,
        source: str,
        head: dict,
        first_id: int,
        relay: dict[str, frozen.Chunks],
        egain: frozen.Chunks,
        count: int,
        consents: dict[str, frozen.Chunks],
    ) -> None:
        """Set every field from checked parts (a checked file's, or a cache entry's)."""
        self.source = source
        self.config = _config(head)
        self._head = head
        self._first_id = first_id
        self._relay = relay
        self._consents = consents  # client_id -> its consent records (those updated before a snapshot)
        self._egain = egain
        self._count = count
        self._spare: Spare[State] | None = Spare(self._fresh) if count >= SPARE_MIN_RECORDS else None

    @classmethod
    def load(cls, path: Path, schemas: dict[str, dict], cache: Any = _DEFAULT_CACHE) -> Fixtures:
        """`schemas` are the spec's resolved component schemas; `cache` a folder, None for none, else the default."""
        raw = _read(path)
        folder = fixture_cache.folder() if cache is _DEFAULT_CACHE else cache
        if len(raw) < fixture_cache.MIN_BYTES:
            folder = None
        key = fixture_cache.key(raw, schemas) if folder is not None else b""
        entry = fixture_cache.read(folder, path, key)
        if entry is not None:
            return cls._cached(entry, str(path))
        fixtures = cls(_parse(raw, path), str(path), schemas)
        if folder is not None and fixtures._cacheable():
            fixture_cache.write(folder, path, key, fixtures._entry())
        return fixtures

    @classmethod
    def _cached(cls, entry: dict[str, Any], source: str) -> Fixtures:
        fixtures = cls.__new__(cls)
        parts = entry["head"], entry["first_id"], entry["relay"], entry["egain"], entry["count"], entry["consents"]
        fixtures._assemble(source, *parts)
        return fixtures

    def _entry(self) -> dict[str, Any]:
        return {
            "head": self._head,
            "first_id": self._first_id,
            "relay": self._relay,
            "egain": self._egain,
            "count": self._count,
            "consents": self._consents,
        }

    def _cacheable(self) -> bool:
        return all(frozen.only_marshal(chunks) for chunks in [*self._relay.values(), *self._consents.values(), self._egain])

    def without_spare(self) -> Fixtures:
        """Keep no state ready in advance (a shared store resets in Redis, and would never take it)."""
        self._spare = None
        return self

    def build(self, config: Config | None = None, seed: int | str | None = None) -> State:
        """A fresh state of these records under `config` (this file's own unless given; it must be equal)."""
        if self._spare is not None and (config is None or config is self.config) and seed is None:
            return self._spare.take()
        return self._fresh(config, seed)

    def _fresh(self, config: Config | None = None, seed: int | str | None = None) -> State:
        """Made a chunk of records at a time, so a background build lets requests run in between."""
        config = config or self.config
        relay = RelayState.empty(config.relay)
        for client_id, chunks in self._relay.items():
            _fill(relay.books[client_id], chunks)
        for client_id, chunks in self._consents.items():
            for chunk in frozen.thaw(chunks):
                relay.books[client_id].consents.update(chunk)
        customers: dict[str, dict] = {}
        for chunk in frozen.thaw(self._egain):
            customers.update(chunk)
            pause()
        sources = Sources(self._first_id, seed)
        egain = EgainState(config.egain, customers, sources)
        return State(relay=relay, egain=egain, sources=sources)


def _fill(book: CustomerBook, chunks: frozen.Chunks) -> None:
    for chunk in frozen.thaw(chunks):
        book.customers.update(chunk)
        for ccid, record in chunk.items():
            if "notification_channels" in record:
                book.index_phones(ccid, None, record)
        pause()


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise FixtureError(f"{path}: cannot read the fixture file: {exc.strerror}") from exc


def _parse(raw: bytes, path: Path) -> Any:
    """The file's data. JSON is YAML: a `.json` file, or one that opens with `{`, is read by the json module.

    A file opening with `{` that is not JSON may still be YAML flow style: YAML decides then. The json
    module reads a few corners of JSON as JSON defines them where PyYAML's YAML 1.1 differs (`1e5` is a
    number, not a string); NaN and Infinity, which are not JSON, are refused.
    """
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FixtureError(f"{path}: cannot read the fixture file: not UTF-8 ({exc})") from exc
    is_json = path.suffix.lower() == ".json"
    if is_json or _STARTS_AS_JSON_OBJECT.match(text):
        try:
            with collector_paused():
                return json.loads(text, parse_constant=_not_json)
        except ValueError as exc:
            if is_json:
                raise FixtureError(f"{path}: not valid JSON: {exc}") from exc
    try:
        with collector_paused():
            return yaml.load(text, Loader=_YAML_LOADER)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        raise FixtureError(f"{path}: not valid YAML: {exc}") from exc


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def _head(data: dict) -> dict:
    """The file without its records: what `_config` reads (kept for the cache)."""
    clients = [{k: v for k, v in entry.items() if k not in ("customers", "consents")} for entry in data["relay"]["clients"]]
    return {"relay": {"clients": clients}, "egain": {k: v for k, v in data["egain"].items() if k != "customers"}}


def _config(data: dict) -> Config:
    clients = [RelayClient(e["client_id"], frozenset(e["api_keys"]), frozenset(e["product_groups"])) for e in data["relay"]["clients"]]
    egain = data["egain"]
    actors = {a["token"]: _actor(a) for a in egain["actors"]}
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
    _check_relay(data["relay"], source, SchemaCheck(schemas["RelayCustomerRecord"]), SchemaCheck(schemas["RelayConsent"]))
    _check_egain(data["egain"], source, SchemaCheck(schemas["Customer"]))


def _check_relay(relay: dict, source: str, record_check: SchemaCheck, consent_check: SchemaCheck) -> None:
    owners: dict[str, str] = {}
    seen_clients: set[str] = set()
    records_check = SchemaCheck({"type": "array", "items": record_check.schema})
    for i, client in enumerate(relay["clients"]):
        where = f"{source}: relay.clients[{i}] ({client['client_id']})"
        if client["client_id"] in seen_clients:
            raise FixtureError(f"{where}: client_id is used twice")
        seen_clients.add(client["client_id"])
        for key in client["api_keys"]:
            if owners.setdefault(key, client["client_id"]) != client["client_id"]:
                raise FixtureError(f"{where}: api_keys: '{key}' already belongs to client {owners[key]}")
        if not _relay_customers_pass(client, records_check):
            _explain_relay_customers(client, where, record_check)
        _check_consents(client, where, consent_check)


def _check_consents(client: dict, where: str, consent_check: SchemaCheck) -> None:
    """Consent records (a snapshot's, or a fixture file's): the spec's schema, of this client, one per number."""
    numbers: set[str] = set()
    for j, consent in enumerate(client.get("consents", [])):
        at = f"{where}.consents[{j}] ({consent.get('channel_addr', '?')})"
        problem = consent_check.error(consent)
        if problem:
            raise FixtureError(f"{at}: {problem}")
        if consent["client_id"] != client["client_id"]:
            raise FixtureError(f"{at}: client_id: '{consent['client_id']}' is not this client")
        if consent["channel_addr"] in numbers:
            raise FixtureError(f"{at}: channel_addr: '{consent['channel_addr']}' is used twice")
        numbers.add(consent["channel_addr"])


def _relay_customers_pass(client: dict, records_check: SchemaCheck) -> bool:
    """Whether every customer of `client` keeps every rule of `_explain_relay_customers`, with no message built.

    The schema is checked over all records in one call, the cross-record rules with sets and a counter:
    about three times faster than the walk that explains, which only a failing file needs.
    """
    customers = client.get("customers", [])
    if not records_check.valid(customers):
        return False
    ccids = {record["ccid"] for record in customers}
    if len(ccids) != len(customers) or not set(client["product_groups"]).issuperset(r["product_group_id"] for r in customers):
        return False
    phone_use: Counter = Counter()
    for record in customers:
        if "notification_channels" in record:
            phones = phones_of(record)
            if len(phones) != len(record["notification_channels"]):  # a number listed twice
                return False
            phone_use.update(phones)
    return not phone_use or max(phone_use.values()) <= MAX_CCIDS_PER_PHONE


def _explain_relay_customers(client: dict, where: str, record_check: SchemaCheck) -> None:
    """Raise for the first customer that breaks a rule, naming it, its ccid and the field."""
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
        if (twice := repeated_phone(record)) is not None:
            raise FixtureError(f"{at}: notification_channels: phone number {twice} is listed twice")
        for phone in phones_of(record):
            phone_use[phone] = phone_use.get(phone, 0) + 1
            if phone_use[phone] > MAX_CCIDS_PER_PHONE:
                limit = f"belongs to more than {MAX_CCIDS_PER_PHONE} customers"
                raise FixtureError(f"{at}: notification_channels: phone number {phone} {limit}")
    raise FixtureError(f"{where}: customers: a record breaks a rule")  # unreachable while both passes keep the same rules


def _check_egain(egain: dict, source: str, customer_check: SchemaCheck) -> None:
    tokens = [a["token"] for a in egain["actors"]]
    if len(tokens) != len(set(tokens)):
        raise FixtureError(f"{source}: egain.actors: a token is used twice")
    for i, actor in enumerate(egain["actors"]):
        for scope in actor.get("scopes", []):
            if not _SCOPE.fullmatch(scope_name(scope)):
                raise FixtureError(
                    f"{source}: egain.actors[{i}] ({actor['name']}): scopes: '{scope}' is not an eGain scope"
                    " (such as core.customermgr.read, app.core.customermgr.manage, or https://api.egain.cloud/auth/ before one)"
                )
    if not _egain_customers_pass(egain.get("customers", []), SchemaCheck({"type": "array", "items": customer_check.schema})):
        _explain_egain_customers(egain.get("customers", []), source, customer_check)


def _egain_customers_pass(customers: list, customers_check: SchemaCheck) -> bool:
    """Whether every customer keeps every rule of `_explain_egain_customers`, with no message built."""
    if not customers_check.valid(customers):
        return False
    if not all("type" in customer and "lastModified" in customer for customer in customers):
        return False
    return len({customer["id"] for customer in customers}) == len(customers)


def _explain_egain_customers(customers: list, source: str, customer_check: SchemaCheck) -> None:
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


def where(path: Any) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text

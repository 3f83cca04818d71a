"""Relay's part of the state: its fixture section (clients, their keys, groups, customers and consents), checked.

Each client's customers, phone index and consent records are collections of
their own (`CLIENT/customers`, `CLIENT/phones`, `CLIENT/consents`): the phone
index is derived from the customers, rebuilt whenever one is put.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import MutableMapping

from mockserver.contract.compiled import SchemaCheck
from mockserver.relay.domain import MAX_CCIDS_PER_PHONE, CustomerBook, RelayClient, RelayConfig, RelayState, phones_of, repeated_phone
from mockserver.state.section import ChangeInvalid, Chunks, Collection, FixtureError, Key, Section, put_record
from mockserver.state.sources import Sources

_STRINGS = {"type": "array", "items": {"type": "string", "minLength": 1}, "uniqueItems": True}
_RECORDS = {"type": "array", "items": {"type": "object"}, "maxItems": 10000}
CUSTOMERS, PHONES, CONSENTS = "customers", "phones", "consents"
_HELD_IN = {CUSTOMERS: "customers", PHONES: "phone_ccids", CONSENTS: "consents"}  # a collection's kind -> its CustomerBook field


class RelaySection(Section):
    name = "relay"
    record_schemas = ("RelayCustomerRecord", "RelayConsent")
    schema = {
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
    }
    scenario_schema = {"type": "object", "additionalProperties": _RECORDS}  # client_id -> records (a patch of one, by ccid)

    def check(self, data: dict, source: str, schemas: dict[str, dict]) -> None:
        record_check, consent_check = SchemaCheck(schemas["RelayCustomerRecord"]), SchemaCheck(schemas["RelayConsent"])
        owners: dict[str, str] = {}
        seen_clients: set[str] = set()
        records_check = SchemaCheck({"type": "array", "items": record_check.schema})
        for i, client in enumerate(data["clients"]):
            where = f"{source}: relay.clients[{i}] ({client['client_id']})"
            if client["client_id"] in seen_clients:
                raise FixtureError(f"{where}: client_id is used twice")
            seen_clients.add(client["client_id"])
            for key in client["api_keys"]:
                if owners.setdefault(key, client["client_id"]) != client["client_id"]:
                    raise FixtureError(f"{where}: api_keys: '{key}' already belongs to client {owners[key]}")
            if not _customers_pass(client, records_check):
                _explain_customers(client, where, record_check)
            _check_consents(client, where, consent_check)

    def head(self, data: dict) -> dict:
        return {"clients": [{k: v for k, v in entry.items() if k not in (CUSTOMERS, CONSENTS)} for entry in data["clients"]]}

    def config(self, head: dict) -> RelayConfig:
        clients = [RelayClient(e["client_id"], frozenset(e["api_keys"]), frozenset(e["product_groups"])) for e in head["clients"]]
        return RelayConfig.build(clients)

    def records(self, data: dict) -> list[tuple[Collection, list[dict]]]:
        found = []
        for entry in data["clients"]:
            found.append((Collection(f"{entry['client_id']}/{CUSTOMERS}", "ccid"), entry.get(CUSTOMERS, [])))
            found.append((Collection(f"{entry['client_id']}/{CONSENTS}", "channel_addr"), entry.get(CONSENTS, [])))
        return found

    def collections(self, state: RelayState) -> list[Collection]:
        return [
            collection
            for client_id in state.books
            for collection in (
                Collection(f"{client_id}/{CUSTOMERS}", "ccid"),
                Collection(f"{client_id}/{PHONES}", None),
                Collection(f"{client_id}/{CONSENTS}", "channel_addr"),
            )
        ]

    def build(self, config: RelayConfig, records: dict[str, Chunks], sources: Sources) -> RelayState:
        state = RelayState.empty(config)
        for client_id, book in state.books.items():
            for chunk in records.get(f"{client_id}/{CUSTOMERS}", ()):
                book.customers.update(chunk)
                for ccid, record in chunk.items():
                    if "notification_channels" in record:
                        book.index_phones(ccid, None, record)
            for chunk in records.get(f"{client_id}/{CONSENTS}", ()):
                book.consents.update(chunk)
        return state

    def mappings(self, state: RelayState) -> dict[str, MutableMapping]:
        found: dict[str, MutableMapping] = {}
        for client_id, book in state.books.items():
            found[f"{client_id}/{CUSTOMERS}"] = book.customers
            found[f"{client_id}/{PHONES}"] = book.phone_ccids
            found[f"{client_id}/{CONSENTS}"] = book.consents
        return found

    def mapping(self, state: RelayState, collection: str) -> MutableMapping:
        client_id, _, kind = collection.rpartition("/")
        book = state.books.get(client_id)
        if book is None:
            raise ChangeInvalid(f"Relay client {client_id!r} is not in the fixtures' configuration")
        if kind not in _HELD_IN:
            raise ChangeInvalid(f"Relay has no collection {collection!r}")
        return getattr(book, _HELD_IN[kind])

    def over(self, state: RelayState, mappings: dict[str, MutableMapping], sources: Sources) -> RelayState:
        books = {}
        for client_id, book in state.books.items():
            customers, phones, consents = (mappings[f"{client_id}/{kind}"] for kind in (CUSTOMERS, PHONES, CONSENTS))
            books[client_id] = CustomerBook(book.client, customers, phones, consents)  # type: ignore[arg-type]
        return RelayState(books)

    def put(self, state: RelayState, collection: str, record_id: str, record: dict | None) -> None:
        client_id, _, kind = collection.rpartition("/")
        records = self.mapping(state, collection)
        if kind == PHONES:
            raise ChangeInvalid(f"{collection!r} is an index, never written but through its customers")
        old = records.get(record_id)
        put_record(records, Collection(collection, "ccid" if kind == CUSTOMERS else "channel_addr"), record_id, record)
        if kind == CUSTOMERS:
            state.books[client_id].index_phones(record_id, old, record or {})

    def snapshot(self, state: RelayState) -> dict:
        return {
            "clients": [
                {
                    "client_id": book.client.client_id,
                    "api_keys": sorted(book.client.api_keys),
                    "product_groups": sorted(book.client.product_groups),
                    CUSTOMERS: list(book.customers.values()),
                    **({CONSENTS: list(book.consents.values())} if book.consents else {}),
                }
                for book in state.books.values()
            ]
        }

    def view(self, state: RelayState, limit: int) -> tuple[list[dict], bool]:
        """By client and group, with the client's consent records (copies: commands change records in place)."""
        shown, truncated = [], False
        for client_id, book in state.books.items():
            records = list(itertools.islice(book.customers.values(), limit + 1))  # no more read than shown (Redis)
            truncated |= len(records) > limit
            groups: dict[str, list[dict]] = {group: [] for group in sorted(book.client.product_groups)}
            for record in records[:limit]:
                groups[record["product_group_id"]].append(dict(record))
            consents = list(itertools.islice(book.consents.values(), limit + 1))
            truncated |= len(consents) > limit
            by_group = [{"product_group_id": g, "customers": c} for g, c in groups.items()]
            shown.append({"client_id": client_id, "product_groups": by_group, "consents": [dict(c) for c in consents[:limit]]})
        return shown, truncated

    def patches(self, data: dict[str, list[dict]], state: RelayState, at: str) -> list[tuple[str, str, dict, str]]:
        found = []
        for client_id, records in data.items():
            if client_id not in state.books:
                raise FixtureError(f"{at}.{client_id}: no such client in the fixtures")
            for j, patch in enumerate(records):
                if not isinstance(patch.get("ccid"), str):
                    raise FixtureError(f"{at}.{client_id}[{j}]: ccid: is required (it names the record to change)")
                found.append((f"{client_id}/{CUSTOMERS}", patch["ccid"], patch, f"{at}.{client_id}[{j}] ({patch['ccid']})"))
        return found

    def patched_problem(self, state: RelayState, collection: str, record_id: str, schemas: dict[str, dict]) -> str:
        book = state.books[collection.rpartition("/")[0]]
        record = book.customers[record_id]
        problem = SchemaCheck(schemas["RelayCustomerRecord"]).error(record)
        if problem:
            return problem
        if record["product_group_id"] not in book.client.product_groups:
            return f"product_group_id: '{record['product_group_id']}' is not one of the client's product_groups"
        return ""


SECTION = RelaySection()


def customer_key(client_id: str, ccid: str) -> Key:
    return (SECTION.name, f"{client_id}/{CUSTOMERS}", ccid)


def consent_key(client_id: str, channel_addr: str) -> Key:
    return (SECTION.name, f"{client_id}/{CONSENTS}", channel_addr)


def _check_consents(client: dict, where: str, consent_check: SchemaCheck) -> None:
    """Consent records (a snapshot's, or a fixture file's): the spec's schema, of this client, one per number."""
    numbers: set[str] = set()
    for j, consent in enumerate(client.get(CONSENTS, [])):
        at = f"{where}.consents[{j}] ({consent.get('channel_addr', '?')})"
        problem = consent_check.error(consent)
        if problem:
            raise FixtureError(f"{at}: {problem}")
        if consent["client_id"] != client["client_id"]:
            raise FixtureError(f"{at}: client_id: '{consent['client_id']}' is not this client")
        if consent["channel_addr"] in numbers:
            raise FixtureError(f"{at}: channel_addr: '{consent['channel_addr']}' is used twice")
        numbers.add(consent["channel_addr"])


def _customers_pass(client: dict, records_check: SchemaCheck) -> bool:
    """Whether every customer of `client` keeps every rule of `_explain_customers`, with no message built.

    The schema is checked over all records in one call, the cross-record rules with sets and a counter:
    about three times faster than the walk that explains, which only a failing file needs.
    """
    customers = client.get(CUSTOMERS, [])
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


def _explain_customers(client: dict, where: str, record_check: SchemaCheck) -> None:
    """Raise for the first customer that breaks a rule, naming it, its ccid and the field."""
    ccids: set[str] = set()
    phone_use: dict[str, int] = {}
    for j, record in enumerate(client.get(CUSTOMERS, [])):
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

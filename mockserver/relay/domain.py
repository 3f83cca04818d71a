"""Relay state and the commands on it. No HTTP here: plain arguments in, values out.

Fixed configuration (clients, their keys and product groups) is kept apart
from the customers commands change, so every session shares the first and
owns its copy of the second. Every command takes the customer book of the
client it acts for, already authenticated, and raises ApiError with the
status the spec documents for that cause.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from mockserver.errors import ApiError

MESSAGE_LIMIT = 100  # the vendor's documented cap on the move, add_phone and remove_phone messages
MOVED = "Customer {} moved to {} for client {}."
PHONE_ADDED = "Phone number {} has been added to customer with ccid {} for client {}."
PHONE_REMOVED = "Phone number {} has been removed from customer with ccid {} for client {}"  # sic: the vendor's, no period
MAX_CCIDS_PER_PHONE = 50
MAX_PHONES_PER_CCID = 50
CHANNELS = "notification_channels"
UNAUTHORIZED = "The API token does not have authorization to the requested resource."


@dataclass(frozen=True)
class RelayClient:
    """A client's fixed configuration: who may call for it and which groups it has."""

    client_id: str
    api_keys: frozenset[str]
    product_groups: frozenset[str]


@dataclass(frozen=True)
class RelayConfig:
    """Every client and which client each API key opens; shared by all sessions, never changed."""

    clients: dict[str, RelayClient]
    key_owners: dict[str, str]  # API key -> client_id

    @classmethod
    def build(cls, clients: list[RelayClient]) -> RelayConfig:
        owners = {key: client.client_id for client in clients for key in client.api_keys}
        return cls({client.client_id: client for client in clients}, owners)


@dataclass
class CustomerBook:
    """One client's customers: the mutable part, one per session."""

    client: RelayClient
    customers: dict[str, dict] = field(default_factory=dict)  # ccid -> record with product_group_id
    phone_ccids: dict[str, set[str]] = field(default_factory=dict)  # phone number -> ccids using it
    consents: dict[str, dict] = field(default_factory=dict)  # channel_addr -> consent record (update_consent's)

    def index_phones(self, ccid: str, old: dict | None, new: dict) -> None:
        """Move `ccid` in the phone index from the numbers of `old` to those of `new`."""
        for phone in phones_of(old or {}):
            self.phone_ccids.get(phone, set()).discard(ccid)
        for phone in phones_of(new):
            self.phone_ccids.setdefault(phone, set()).add(ccid)


@dataclass
class RelayState:
    books: dict[str, CustomerBook]  # client_id -> its customers

    @classmethod
    def empty(cls, config: RelayConfig) -> RelayState:
        return cls({client_id: CustomerBook(client) for client_id, client in config.clients.items()})


def phones_of(record: dict) -> set[str]:
    """The phone numbers of a record: every notification channel is one (`sms` is Relay's only channel type)."""
    return {channel["channel_addr"] for channel in record.get("notification_channels", [])}


def with_distinct_phones(customer: dict) -> dict:
    """`customer` with each number once: a number sent twice keeps its first place, later entries' fields win.

    Relay keeps one consent per number, so a second entry can only restate or correct the first; taking it
    (rather than a 400) keeps every body the schema allows acceptable, as the contract tests demand.
    """
    if CHANNELS not in customer or len(phones_of(customer)) == len(customer[CHANNELS]):
        return customer
    return {**customer, CHANNELS: _joined([], customer[CHANNELS])}


def repeated_phone(record: dict) -> str | None:
    """A number the record lists twice, if any (one consent per number: a second entry could only contradict it)."""
    seen: set[str] = set()
    for channel in record.get("notification_channels", []):
        if channel["channel_addr"] in seen:
            return channel["channel_addr"]
        seen.add(channel["channel_addr"])
    return None


def authenticate(config: RelayConfig, client_id: str, api_key: str | None) -> RelayClient:
    """The client the key opens; a missing, unknown or other client's key is a 401."""
    if not api_key or config.key_owners.get(api_key) != client_id:
        raise ApiError(401, UNAUTHORIZED)
    return config.clients[client_id]


def move_customer(book: CustomerBook, ccid: str, product_group_id: str) -> str:
    record = _customer(book, ccid)
    _require_group(book.client, product_group_id)
    if record["product_group_id"] == product_group_id:
        raise ApiError(409, f"Customer {ccid} is already in product group {product_group_id}.")
    record["product_group_id"] = product_group_id
    return move_message(ccid, product_group_id, book.client.client_id)


def load_customer(book: CustomerBook, product_group_id: str, customer: dict) -> None:
    """Create the record. Create only, as Relay documents it: a ccid the client has, in any group, is a 409."""
    _require_group(book.client, product_group_id)
    customer = with_distinct_phones(customer)
    ccid = customer["ccid"]
    existing = book.customers.get(ccid)
    if existing is not None:
        raise ApiError(
            409,
            f"Customer {ccid} already exists in product group {existing['product_group_id']} for client {book.client.client_id};"
            " load creates only: use onboard to update it, move to change its group.",
        )
    _create(book, product_group_id, customer)


def onboard_customer(book: CustomerBook, product_group_id: str, customer: dict, replace_phones: bool) -> bool:
    """Create the customer, or update it with the fields sent (the others keep their values); True when created.

    `replace_phones` is the vendor's `deactivate_previous_connections`: the numbers sent replace the
    customer's (none sent: none left); otherwise they join them, and a number the customer has takes the
    fields sent with it (its consent). A customer changes group only through a move: another group is a 409.
    """
    _require_group(book.client, product_group_id)
    customer = with_distinct_phones(customer)
    ccid = customer["ccid"]
    existing = book.customers.get(ccid)
    if existing is None:
        _create(book, product_group_id, customer)
        return True
    if existing["product_group_id"] != product_group_id:
        raise ApiError(
            409,
            f"Customer {ccid} is in product group {existing['product_group_id']} for client {book.client.client_id};"
            " onboard does not change a customer's group: use move.",
        )
    sent = customer.get(CHANNELS, [])
    channels = sent if replace_phones else _joined(existing.get(CHANNELS, []), sent)
    updated = {key: value for key, value in {**existing, **customer}.items() if key != CHANNELS}
    if channels:
        updated[CHANNELS] = channels
    _require_room_on_customer(ccid, len(channels))
    _require_room_for_phones(book, ccid, phones_of(updated))
    book.customers[ccid] = updated
    book.index_phones(ccid, existing, updated)
    return False


def add_phone(book: CustomerBook, ccid: str, phone: str, consent_type: str | None) -> str:
    """Put an sms channel for `phone` on the customer (with `consent_type` if sent); the vendor's message.

    A number the customer has already is a 409: nothing would be added, and its consent changes through the
    consent update (or onboard), so a 200 saying "has been added" would mislead.
    """
    record = _customer(book, ccid)
    if phone in phones_of(record):
        raise ApiError(409, f"Customer {ccid} already has phone number {phone}; update its consent with the consent update.")
    channels = record.get(CHANNELS, [])
    _require_room_on_customer(ccid, len(channels) + 1)
    _require_room_for_phones(book, ccid, {phone})
    added = {"channel_type": "sms", "channel_addr": phone, **({"consent_type": consent_type} if consent_type else {})}
    record[CHANNELS] = [*channels, added]
    book.index_phones(ccid, None, {CHANNELS: [added]})
    return capped(PHONE_ADDED, phone, ccid, book.client.client_id)


def remove_phone(book: CustomerBook, ccid: str, phone: str) -> str:
    """Take `phone` off the customer; a number it does not have is a 404. The vendor's message."""
    record = _customer(book, ccid)
    if phone not in phones_of(record):
        raise ApiError(404, f"Phone number {phone} not found on customer {ccid} for client {book.client.client_id}.")
    channels = [channel for channel in record[CHANNELS] if channel["channel_addr"] != phone]
    if channels:
        record[CHANNELS] = channels
    else:
        del record[CHANNELS]
    book.index_phones(ccid, {CHANNELS: [{"channel_addr": phone}]}, {})
    return capped(PHONE_REMOVED, phone, ccid, book.client.client_id)


def update_consent(book: CustomerBook, channel_addr: str, channel_type: str, consent_type: str, stamp: Callable[[str | None], str]) -> dict:
    """Set the consent of `channel_addr` on every customer of the client carrying it; the consent record.

    The record (the vendor's 200 body) is made by the first update of the number and kept from then on, even
    once no customer carries it: a consent, `stop` above all, is the client's word about a number. An update
    needs a customer carrying the number (else 404). `stamp(previous)` gives a timestamp after `previous`.

    Each carrier the index names is checked, not trusted: on a shared store the index and the records are
    read one by one, and another process may change a record in between (that attempt is then run again).
    """
    ccids = book.phone_ccids.get(channel_addr)
    if not ccids:
        raise ApiError(404, f"No customer of client {book.client.client_id} has channel_addr {channel_addr} (channel_type {channel_type}).")
    for ccid in sorted(ccids):
        record = book.customers.get(ccid)
        if record is None or channel_addr not in phones_of(record):
            continue
        record[CHANNELS] = [
            {**channel, "consent_type": consent_type} if channel["channel_addr"] == channel_addr else channel
            for channel in record[CHANNELS]
        ]
    previous = book.consents.get(channel_addr)
    now = stamp(previous["updated_at"] if previous else None)
    consent = {
        "client_id": book.client.client_id,
        "created_at": previous["created_at"] if previous else now,
        "updated_at": now,
        "channel_type": channel_type,
        "channel_addr": channel_addr,
        "consent_type": consent_type,
    }
    book.consents[channel_addr] = consent
    return dict(consent)


def retrieve_customer(book: CustomerBook, ccid: str) -> dict:
    return dict(_customer(book, ccid))


def move_message(ccid: str, product_group_id: str, client_id: str) -> str:
    return capped(MOVED, ccid, product_group_id, client_id)


def capped(template: str, *ids: str) -> str:
    """`template` with `ids`, the longest shortened with an ellipsis until it fits the vendor's 100-character cap.

    The vendor allows ids of 100 characters each yet caps these messages at 100: the cap is kept.
    """
    parts = list(ids)
    while len(template.format(*parts)) > MESSAGE_LIMIT:
        longest = max(range(len(parts)), key=lambda i: len(parts[i]))
        excess = len(template.format(*parts)) - MESSAGE_LIMIT
        keep = max(1, len(parts[longest]) - excess - 1)
        parts[longest] = parts[longest][:keep] + "…"
    return template.format(*parts)


def _create(book: CustomerBook, product_group_id: str, customer: dict) -> None:
    """Store a new customer in its group and index its numbers (room for them checked first)."""
    ccid = customer["ccid"]
    _require_room_for_phones(book, ccid, phones_of(customer))
    book.customers[ccid] = {**customer, "product_group_id": product_group_id}
    book.index_phones(ccid, None, customer)


def _customer(book: CustomerBook, ccid: str) -> dict:
    record = book.customers.get(ccid)
    if record is None:
        raise ApiError(404, f"Customer {ccid} not found for client {book.client.client_id}.")
    return record


def _joined(existing: list[dict], sent: list[dict]) -> list[dict]:
    """The customer's channels with those sent: new numbers after the others, a known one with the fields sent."""
    channels = {channel["channel_addr"]: channel for channel in existing}
    for channel in sent:
        channels[channel["channel_addr"]] = {**channels.get(channel["channel_addr"], {}), **channel}
    return list(channels.values())


def _require_room_on_customer(ccid: str, phones: int) -> None:
    if phones > MAX_PHONES_PER_CCID:
        raise ApiError(
            409, f"notification_channels: customer {ccid} would have {phones} phone numbers; a ccid has at most {MAX_PHONES_PER_CCID}."
        )


def _require_room_for_phones(book: CustomerBook, ccid: str, phones: set[str]) -> None:
    """Each number may join `ccid` only while fewer than 50 other ccids of the client have it (the vendor's limit)."""
    for phone in sorted(phones):
        if len(book.phone_ccids.get(phone, set()) - {ccid}) >= MAX_CCIDS_PER_PHONE:
            raise ApiError(409, f"notification_channels: phone number {phone} already belongs to {MAX_CCIDS_PER_PHONE} customers.")


def _require_group(client: RelayClient, product_group_id: str) -> None:
    if product_group_id not in client.product_groups:
        raise ApiError(404, f"Product group {product_group_id} not found for client {client.client_id}.")

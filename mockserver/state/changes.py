"""What a state-changing command changed, as data: the unit of the command log.

A command that changes state is wrapped in `Write`, which names the records
it may touch from its arguments (a move touches one Relay record, a merge
two eGain customers), or, for a command whose records depend on the state
(a consent update touches every customer carrying the number), from the
state and its arguments. After the command ran, `capture` reads the current
value of each of those records (None: the record is gone) and the next free
id. That is a redo record of values, not of calls: replaying it with `apply`
needs neither the domain code nor the clock that ran it, so a restart
rebuilds exactly what was answered, timestamps and generated ids included.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from mockserver.relay.domain import CustomerBook
from mockserver.state.model import State

T = TypeVar("T")
Key = tuple[str, ...]  # ("relay", client_id, ccid), ("relay-consent", client_id, channel_addr) or ("egain", customer_id)
RESET = {"reset": True}


class ChangeInvalid(ValueError):
    """A logged change that does not fit the state it is replayed on."""


@dataclass(frozen=True)
class Write(Generic[T]):
    """A command that changes state, with the keys of the records it may change, named from its arguments."""

    command: Callable[..., T]
    touches: Callable[..., list[Key]]
    touches_read_state: bool = False  # `touches(state, *args)`, read in the store's lock right before the command

    def __call__(self, state: State, *args: Any) -> T:
        return self.command(state, *args)

    def keys(self, state: State, *args: Any) -> list[Key]:
        return self.touches(state, *args) if self.touches_read_state else self.touches(*args)


def relay_key(client_id: str, ccid: str) -> Key:
    return ("relay", client_id, ccid)


def relay_consent_key(client_id: str, channel_addr: str) -> Key:
    return ("relay-consent", client_id, channel_addr)


def egain_key(customer_id: str) -> Key:
    return ("egain", customer_id)


def capture(state: State, keys: list[Key], copies: bool = False) -> dict[str, Any]:
    """The records under `keys` and the next id, as a log entry; read inside the store's lock.

    `copies`: shallow copies, to undo with `apply` a command that changed them (commands change a record's
    own fields in place, or put a new record in its place: they never change what a field holds in place).
    """
    records = []
    for key in dict.fromkeys(keys):
        if key[0] in ("relay", "relay-consent"):
            book = state.relay.books[key[1]]
            record = (book.customers if key[0] == "relay" else book.consents).get(key[2])
            records.append([key[0], key[1], key[2], dict(record) if copies and record is not None else record])
        else:
            record = state.egain.customers.get(key[1])
            records.append(["egain", key[1], dict(record) if copies and record is not None else record])
    return {"records": records, "next_id": state.sources.ids.peek()}


def apply(state: State, entry: Any, fresh: Callable[[], State]) -> State:
    """Replay one log entry on `state`; a reset entry starts again from `fresh()`. Returns the state to go on with."""
    if entry == RESET:
        return fresh()
    if not isinstance(entry, dict) or not isinstance(entry.get("records"), list) or not isinstance(entry.get("next_id"), int):
        raise ChangeInvalid("not a change entry (records and next_id expected)")
    for item in entry["records"]:
        if isinstance(item, list) and len(item) == 4 and item[0] == "relay":
            _put_relay(state, item[1], item[2], item[3])
        elif isinstance(item, list) and len(item) == 4 and item[0] == "relay-consent":
            _put(_relay_book(state, item[1]).consents, item[2], item[3], "channel_addr")
        elif isinstance(item, list) and len(item) == 3 and item[0] == "egain" and isinstance(item[1], str):
            _put(state.egain.customers, item[1], item[2], "id")
        else:
            raise ChangeInvalid(f"unknown record {str(item)[:80]!r}")
    state.sources.ids.restart_at(entry["next_id"])
    return state


def _put_relay(state: State, client_id: Any, ccid: Any, record: Any) -> None:
    book = _relay_book(state, client_id)
    old = book.customers.get(ccid)
    _put(book.customers, ccid, record, "ccid")
    book.index_phones(ccid, old, record or {})


def _relay_book(state: State, client_id: Any) -> CustomerBook:
    book = state.relay.books.get(client_id) if isinstance(client_id, str) else None
    if book is None:
        raise ChangeInvalid(f"Relay client {client_id!r} is not in the fixtures' configuration")
    return book


def _put(records: dict[str, dict], key: Any, record: Any, id_field: str) -> None:
    if record is None:
        records.pop(key, None)
    elif isinstance(record, dict) and record.get(id_field) == key:
        records[key] = record
    else:
        raise ChangeInvalid(f"record {key!r} is not a record with {id_field} {key!r}")

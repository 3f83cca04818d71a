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
A record is named by its `Key` (family, collection, id); each family puts
its own records back (mockserver/state/section.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from mockserver.state.model import State
from mockserver.state.section import ChangeInvalid, Key, Section

__all__ = ["RESET", "ChangeInvalid", "Key", "Write", "apply", "capture"]
T = TypeVar("T")
RESET = {"reset": True}


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


def capture(state: State, keys: list[Key], copies: bool = False) -> dict[str, Any]:
    """The records under `keys` and the next id, as a log entry; read inside the store's lock.

    `copies`: shallow copies, to undo with `apply` a command that changed them (commands change a record's
    own fields in place, or put a new record in its place: they never change what a field holds in place).
    """
    records = []
    for family, collection, record_id in dict.fromkeys(keys):
        record = state.sections[family].mapping(state[family], collection).get(record_id)
        records.append([family, collection, record_id, dict(record) if copies and record is not None else record])
    return {"records": records, "next_id": state.sources.ids.peek()}


def apply(state: State, entry: Any, fresh: Callable[[], State]) -> State:
    """Replay one log entry on `state`; a reset entry starts again from `fresh()`. Returns the state to go on with."""
    if entry == RESET:
        return fresh()
    if not isinstance(entry, dict) or not isinstance(entry.get("records"), list) or not isinstance(entry.get("next_id"), int):
        raise ChangeInvalid("not a change entry (records and next_id expected)")
    for item in entry["records"]:
        if not (isinstance(item, list) and len(item) == 4 and all(isinstance(part, str) for part in item[:3])):
            raise ChangeInvalid(f"unknown record {str(item)[:80]!r}")
        section: Section | None = state.sections.get(item[0])
        if section is None:
            raise ChangeInvalid(f"no family {item[0]!r} in the fixtures' configuration")
        section.put(state[item[0]], item[1], item[2], item[3])
    state.sources.ids.restart_at(entry["next_id"])
    return state

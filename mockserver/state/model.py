"""What never changes while serving (`Config`) and what commands change (`State`), each by family.

Sessions share one `Config`: each family's fixed part (Relay's API keys and
product groups, eGain's bearer tokens and their actors) is read without any
lock or store round trip, so authentication costs nothing. Each session owns
a `State`, built from the fixtures, with each family's records and its own
sources of ids, time and randomness. Both hold families by name: the generic
layers never know which families there are (mockserver/state/section.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mockserver.state.sources import Sources

if TYPE_CHECKING:
    from mockserver.state.section import Section


@dataclass(frozen=True)
class Config:
    families: dict[str, Any]  # family name -> its fixed configuration

    def __getitem__(self, family: str) -> Any:
        return self.families[family]


@dataclass
class State:
    families: dict[str, Any]  # family name -> its records (a family's own state type)
    sources: Sources
    sections: dict[str, Section]  # family name -> what knows its records (the same for every state of a server)

    def __getitem__(self, family: str) -> Any:
        return self.families[family]

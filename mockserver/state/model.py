"""What never changes while serving (`Config`) and what commands change (`State`).

Sessions share one `Config`: API keys, product groups, bearer tokens and
their actors are read without any lock or store round trip, so
authentication costs nothing. Each session owns a `State`, built from the
fixtures, that references the shared config and has its own sources of ids,
time and randomness.
"""

from __future__ import annotations

from dataclasses import dataclass

from mockserver.egain.domain import EgainConfig, EgainState
from mockserver.relay.domain import RelayConfig, RelayState
from mockserver.state.sources import Sources


@dataclass(frozen=True)
class Config:
    relay: RelayConfig
    egain: EgainConfig


@dataclass
class State:
    relay: RelayState
    egain: EgainState
    sources: Sources

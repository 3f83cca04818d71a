"""The state one attempt of a command sees in Redis (mockserver/state/redis_store.py runs the attempts).

It has the fixture state's shape: every collection a family declares is a
mapping over one Redis key a record, falling back to the fixtures, which
every process has loaded (a missing key means "as in the fixtures", a
tombstone that the record was removed). Each record is read once an
attempt, through the attempt's link (mockserver/state/redis_transaction.py);
what the command changed is found by comparing its copies with what was
read. New ids come from a counter per session and generation.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import redis

from mockserver.state import codec
from mockserver.state.model import State
from mockserver.state.redis_transaction import Detached, Ended, Link, Stale
from mockserver.state.sources import Clock

GONE = b"-"  # a record removed (a merged source): not the fixture's value


class View:
    """The state a command sees in one attempt: the fixture state's shape, every collection backed by Redis."""

    def __init__(self, client: redis.Redis, link: Link | Detached, prefix: str, generation: int, base: State, sources: Any):
        self._client = client
        self._link = link
        self._generation = generation
        self._keys = prefix + "keys"  # what keys_of() names for this generation
        self._tracked: list[_Tracked] = []
        families = {}
        for name, section in base.sections.items():
            mappings = section.mappings(base[name])
            tracked = {
                collection.name: self._track(
                    f"{prefix}{name}:{collection.name}:", mappings[collection.name], _record_codec if collection.id_field else _set_codec
                )
                for collection in section.collections(base[name])
            }
            families[name] = section.over(base[name], tracked, sources)  # type: ignore[arg-type]
        self.state = State(families, sources, base.sections)

    def _track(self, prefix: str, base: Mapping, codec: _Codec) -> _Tracked:
        tracked = _Tracked(self._client, self._read, prefix, base, codec, self._keys)
        self._tracked.append(tracked)
        return tracked

    def _read(self, name: str) -> bytes | None:
        return self._link.read(name, self._generation)

    def writes(self) -> dict[str, bytes]:
        return {key: raw for tracked in self._tracked for key, raw in tracked.changed()}

    @property
    def reads(self) -> int:
        return sum(tracked.reads for tracked in self._tracked)


class _Codec:
    def __init__(self, dump: Callable[[Any], bytes], load: Callable[[bytes], Any]):
        self.dump, self.load = dump, load


_record_codec = _Codec(codec.text, codec.loads)
_set_codec = _Codec(lambda members: codec.text(sorted(members)), lambda raw: set(codec.loads(raw)))


class _Tracked:
    """A mapping over Redis keys `prefix + key`, falling back to `base` (the fixtures).

    A key is read once per attempt (watched first, for a write); the values handed out are the command's
    own copies, compared with what was read to find what changed.
    """

    def __init__(self, client: redis.Redis, read: Callable[[str], bytes | None], prefix: str, base: Mapping, codec: _Codec, keys: str):
        """`keys`: the set of the keys the generation wrote (`keys_of`)."""
        self._client = client
        self._keys = keys
        self._get = read
        self._prefix = prefix
        self._base = base
        self._codec = codec
        self._read: dict[str, tuple[bytes, Any]] = {}  # key -> (as read, the command's value; None: absent)

    def _value(self, key: str) -> Any:
        seen = self._read.get(key)
        if seen is None:
            raw = self._get(self._prefix + key)
            if raw is None:
                raw = GONE if key not in self._base else self._codec.dump(self._base[key])
            seen = self._read[key] = (raw, None if raw == GONE else self._codec.load(raw))
        return seen[1]

    def get(self, key: str, default: Any = None) -> Any:
        value = self._value(key)
        return default if value is None else value

    def __getitem__(self, key: str) -> Any:
        value = self._value(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._value(key) is not None

    def __setitem__(self, key: str, value: Any) -> None:
        self._read[key] = (self._raw_read(key), value)

    def __delitem__(self, key: str) -> None:
        if self._value(key) is None:
            raise KeyError(key)
        self._read[key] = (self._raw_read(key), None)

    def setdefault(self, key: str, default: Any) -> Any:
        value = self._value(key)
        if value is None:
            self[key] = value = default
        return value

    def _raw_read(self, key: str) -> bytes:
        self._value(key)  # watched and read even when only written: a concurrent write must fail this attempt
        return self._read[key][0]

    def changed(self) -> Iterator[tuple[str, bytes]]:
        for key, (raw, value) in self._read.items():
            now = GONE if value is None or (isinstance(value, set) and not value) else self._codec.dump(value)
            if now != raw and not (now == GONE and raw == GONE):
                yield self._prefix + key, now

    def values(self) -> Iterator[Any]:
        """Every current value, the fixtures' then those only Redis holds, read a chunk at a time as iterated
        (the admin state view takes the first few: it reads no more). Read, not watched.

        The keys are read outside the attempt's link, so each chunk is followed by one read through it: it
        raises Stale when the session was reset meanwhile (a reset elsewhere, or this store's own), and the
        command runs again on the new generation, rather than listing records of the old one, which the
        background unlink may have half removed."""
        self._get(self._prefix)  # a key no record has: read for its generation check only
        written = self._client.sscan_iter(self._keys, match=self._prefix + "*", count=1000)
        only_stored = sorted({name for name in (key.decode()[len(self._prefix) :] for key in written) if name not in self._base})
        keys = iter([*self._base, *only_stored])
        while chunk := list(itertools.islice(keys, 500)):
            values = self._client.mget([self._prefix + key for key in chunk])
            self._get(self._prefix)  # still the generation the chunk was read in
            for key, raw in zip(chunk, values, strict=True):
                if raw is None:
                    yield self._base[key]
                elif raw != GONE:
                    yield self._codec.load(raw)

    @property
    def reads(self) -> int:
        return len(self._read)


class Ids:
    """New ids from one counter per session and generation, shared by every process."""

    def __init__(self, draw: Callable[[], list], client: redis.Redis, key: str, first_id: int):
        """`draw()`: the counter's next value, if still to be drawn (lua/id_next.lua); `key`: the counter's, for `peek`."""
        self._draw, self._client, self._key, self._first_id = draw, client, key, first_id

    def next(self) -> str:
        kind, *value = self._draw()
        if kind == b"ended":
            raise Ended
        if kind == b"stale":  # the session was reset meanwhile: the command runs again on the new generation
            raise Stale(int(value[0]))
        return str(self._first_id + int(value[0]) - 1)

    def peek(self) -> int:
        return self._first_id + int(self._client.get(self._key) or 0)


class LocalIds:
    """Ids of a command whose changes go nowhere (`RedisStore._detached`): it must not draw from the shared counter."""

    def __init__(self, first_id: int):
        self._next = first_id

    def next(self) -> str:
        self._next += 1
        return str(self._next - 1)

    def peek(self) -> int:
        return self._next


class Sources:
    def __init__(self, clock: Clock, ids: Ids | LocalIds, rng: random.Random):
        self.clock, self.ids, self.random = clock, ids, rng

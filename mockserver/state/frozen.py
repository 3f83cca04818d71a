"""Records kept compact between resets: serialized in chunks, each thawed into fresh objects in about a millisecond.

A reset needs a fresh, independent copy of every fixture record. Keeping them
serialized costs a few bytes a record, and thawing is several times faster
than a deep copy. They are cut in chunks so that no single call holds the GIL
for long (one `pickle.loads` of 200k records held it for 0.2 s): between two
chunks the request thread can run.

`marshal` is the format: about twice as fast as pickle both ways on these
records, and it cannot run code when read (the fixture cache stores these
chunks). A chunk with a value marshal does not know (a YAML timestamp in a
free-form eGain field, say) is pickled instead; such fixtures are not cached.
"""

from __future__ import annotations

import marshal
import pickle
from collections.abc import Iterator

CHUNK = 2000  # records a chunk: thawed in about a millisecond


class Pickled(bytes):
    """A chunk marshal could not hold, pickled."""


Chunks = list[bytes]


def freeze(records: list[dict], key: str) -> Chunks:
    """`records` (checked: each has a unique `key`) as chunks of {key: record}, which thaw straight into a mapping."""
    return [_freeze_chunk({r[key]: r for r in records[start : start + CHUNK]}) for start in range(0, len(records), CHUNK)]


def _freeze_chunk(chunk: dict) -> bytes:
    try:
        return marshal.dumps(chunk)
    except ValueError:  # a value marshal cannot hold
        return Pickled(pickle.dumps(chunk, protocol=pickle.HIGHEST_PROTOCOL))


def thaw(chunks: Chunks) -> Iterator[dict]:
    """Fresh copies of the records, a chunk at a time, by key (`update` a mapping with each: no rehashing)."""
    for chunk in chunks:
        yield pickle.loads(chunk) if isinstance(chunk, Pickled) else marshal.loads(chunk)


def only_marshal(chunks: Chunks) -> bool:
    """Whether these chunks can be stored where a pickle would be unsafe to read back."""
    return not any(isinstance(chunk, Pickled) for chunk in chunks)

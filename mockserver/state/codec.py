"""JSON for the state file, its command log and the Redis store: orjson writes, the json module reads.

orjson writes several times faster than the json module, on every logged or
shared change. It refuses what JSON allows but it cannot hold (integers past
64 bits: an eGain customer may carry fields the spec leaves open), and then
the json module writes instead; reading is the json module's, which keeps
such integers exact (orjson would turn them into floats). Keys keep their
order, so answers after a restart list fields as before it.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def text(value: Any) -> bytes:
    """Compact JSON, UTF-8."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def line(value: Any) -> bytes:
    """One compact JSON line, UTF-8, ending in a newline."""
    return text(value) + b"\n"


def loads(data: bytes | str) -> Any:
    """Raises ValueError on anything that is not JSON."""
    return json.loads(data)

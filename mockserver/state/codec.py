"""JSON for the state file and its command log: orjson, ten times the json module on every logged change.

orjson refuses integers beyond 64 bits, which a request body can hold where
the spec sets no bound; those fall back to the json module, so a valid
record is never unwritable.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

DecodeError = orjson.JSONDecodeError  # a ValueError


def line(value: Any) -> bytes:
    """One compact JSON line, UTF-8, ending in a newline."""
    try:
        return orjson.dumps(value, option=orjson.OPT_APPEND_NEWLINE)
    except TypeError:
        return (json.dumps(value, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


def sorted_text(value: Any) -> bytes:
    """JSON with sorted keys (a snapshot that diffs well), UTF-8."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return json.dumps(value, ensure_ascii=False, sort_keys=True).encode()


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)

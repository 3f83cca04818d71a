"""JSON for the state file and its command log: orjson, several times the json module on every logged change.

What is written is records (strings, lists and objects only: the spec's record
schemas are closed and hold no numbers) and small integers (generations, ids),
so orjson's limits (integers of 64 bits at most) never bind; a value beyond
them raises, and the change is refused, rather than written wrong. Keys keep
their order, so answers after a restart list fields as before it.
"""

from __future__ import annotations

from typing import Any

import orjson


def line(value: Any) -> bytes:
    """One compact JSON line, UTF-8, ending in a newline."""
    return orjson.dumps(value, option=orjson.OPT_APPEND_NEWLINE)


def text(value: Any) -> bytes:
    """Compact JSON, UTF-8."""
    return orjson.dumps(value)


def loads(data: bytes | str) -> Any:
    """Raises ValueError (orjson.JSONDecodeError) on anything that is not JSON."""
    return orjson.loads(data)

"""The `Prefer` controls of one request, parsed strictly: `code=NNN, example=NAME, delay=MS`.

Prism's vocabulary (`code`, `example`) plus our `delay`. Preferences are
comma-separated `token[=value]` items (RFC 7240). RFC 7240 lets a server
ignore what it does not know, but a mock that silently ignores a typo
(`Prefer: cod=500`) makes a test pass for the wrong reason: an unknown or
malformed preference is refused, saying which.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_DELAY_MS = 600_000  # ten minutes: longer than any client timeout worth testing
KNOWN = ("code", "example", "delay")
_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")


class PreferInvalid(ValueError):
    """A `Prefer` control that cannot be honoured as written."""


@dataclass(frozen=True)
class Preferences:
    code: int | None = None  # answer with this documented status and its example, changing nothing
    example: str | None = None  # ... with this named example of it
    delay_ms: int = 0  # answer this much later; the request is handled when the delay ends


NONE = Preferences()


def parse_prefer(header: str | None) -> Preferences:
    if not header or not header.strip():
        return NONE
    values: dict[str, str] = {}
    for preference in header.split(","):
        token, _, value = preference.split(";", 1)[0].partition("=")
        token, value = token.strip().lower(), value.strip().strip('"')
        if token not in KNOWN:
            raise PreferInvalid(f"Prefer: '{_shown(token)}' is not a preference this mock knows; use {', '.join(KNOWN)}.")
        if token in values:
            raise PreferInvalid(f"Prefer: {token} is given twice.")
        values[token] = value
    return Preferences(_code(values.get("code")), _example(values.get("example")), _delay(values.get("delay")))


def _code(value: str | None) -> int | None:
    if value is None:
        return None
    if not _whole(value, 3) or len(value) != 3 or not 100 <= int(value) <= 599:
        raise PreferInvalid(f"Prefer: code must be a 3-digit HTTP status, not '{_shown(value)}'.")
    return int(value)


def _example(value: str | None) -> str | None:
    if value is not None and not _NAME.fullmatch(value):
        raise PreferInvalid(f"Prefer: example must be an example's name (letters, digits, '.', '_', '-'), not '{_shown(value)}'.")
    return value


def _delay(value: str | None) -> int:
    if value is None:
        return 0
    if not _whole(value, 6) or int(value) > MAX_DELAY_MS:
        raise PreferInvalid(f"Prefer: delay must be whole milliseconds from 0 to {MAX_DELAY_MS}, not '{_shown(value)}'.")
    return int(value)


def _whole(value: str, digits: int) -> bool:
    """ASCII digits only (str.isdigit also takes '³'), and few enough to read."""
    return value.isascii() and value.isdigit() and len(value) <= digits


def _shown(value: str) -> str:
    return value if len(value) <= 20 else value[:20] + "…"

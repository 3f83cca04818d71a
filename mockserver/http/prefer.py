"""The `Prefer` controls of one request (Prism's `code=NNN`, and our `delay=MS`), parsed strictly.

Preferences are comma-separated `token[=value]` items (RFC 7240). Ours are
checked strictly: a malformed value is an error rather than a silent
fallback.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_DELAY_MS = 600_000  # ten minutes: longer than any client timeout worth testing


class PreferInvalid(ValueError):
    """A `Prefer` control whose value cannot be honoured as written."""


@dataclass(frozen=True)
class Preferences:
    code: int | None = None  # answer with this documented status and its example, changing nothing
    delay_ms: int = 0  # answer this much later; the request is handled when the delay ends


NONE = Preferences()


def parse_prefer(header: str | None) -> Preferences:
    if not header:
        return NONE
    code, delay = None, 0
    for preference in header.split(","):
        token, _, value = preference.split(";", 1)[0].partition("=")
        token, value = token.strip().lower(), value.strip().strip('"')
        if token == "code":
            if not _whole(value, 3) or len(value) != 3 or not 100 <= int(value) <= 599:
                raise PreferInvalid(f"Prefer: code must be a 3-digit HTTP status, not '{_shown(value)}'.")
            code = int(value)
        elif token == "delay":
            if not _whole(value, 6) or int(value) > MAX_DELAY_MS:
                raise PreferInvalid(f"Prefer: delay must be whole milliseconds from 0 to {MAX_DELAY_MS}, not '{_shown(value)}'.")
            delay = int(value)
    return Preferences(code, delay)


def _whole(value: str, digits: int) -> bool:
    """ASCII digits only (str.isdigit also takes '³'), and few enough to read."""
    return value.isascii() and value.isdigit() and len(value) <= digits


def _shown(value: str) -> str:
    return value if len(value) <= 20 else value[:20] + "…"

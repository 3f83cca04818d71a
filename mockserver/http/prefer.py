"""The `Prefer: code=NNN` control (Prism's convention), parsed strictly.

Preferences are comma-separated `token[=value]` items (RFC 7240); preferences
other than `code` are ignored as the RFC asks, but a malformed `code` is an
error rather than a silent fallback.
"""

from __future__ import annotations


class PreferInvalid(ValueError):
    """A `Prefer: code=` whose value is not a 3-digit HTTP status."""


def requested_status(header: str | None) -> int | None:
    """The status asked for by `Prefer: code=NNN`, or None when none is asked for."""
    if not header:
        return None
    for preference in header.split(","):
        token, _, value = preference.split(";", 1)[0].partition("=")
        if token.strip().lower() != "code":
            continue
        value = value.strip().strip('"')
        if len(value) != 3 or not value.isdigit() or not 100 <= int(value) <= 599:
            shown = value if len(value) <= 20 else value[:20] + "…"
            raise PreferInvalid(f"Prefer: code must be a 3-digit HTTP status, not '{shown}'.")
        return int(value)
    return None

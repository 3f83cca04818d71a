"""Regular expressions a client supplies (rule paths and headers, journal filters), run in linear time.

Python's `re` backtracks: a pattern such as `(a|aa)+b$` takes seconds to
minutes on a path of a few dozen characters, and rules are matched on every
request, on the event loop. RE2 (Google's engine, through google-re2) never
backtracks, so a client's pattern cannot freeze the server; it refuses what
it cannot run in linear time (backreferences, lookarounds) with a clear error.
"""

from __future__ import annotations

from typing import Any

import re2

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a refused pattern is answered to the client, not logged to stderr
MAX_PATTERN = 1000


class PatternInvalid(ValueError):
    """A pattern RE2 cannot compile; the message says why."""


def compile_pattern(pattern: str) -> Any:
    """A compiled pattern with `.search(text)`, or PatternInvalid."""
    if len(pattern) > MAX_PATTERN:
        raise PatternInvalid(f"a pattern may have at most {MAX_PATTERN} characters")
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise PatternInvalid(f"'{pattern[:60]}' is not a regular expression RE2 can run ({reason})") from exc

"""Reading credentials from headers, and keeping them out of logs (shown masked).

The families declare which request headers carry secrets (mockserver/family.py);
`Secrets` masks those wherever a request is shown on purpose (the journal, the
access log names which key called); `SecretFilter` is a second guard on the
log handler that masks anything shaped like a credential in any log line.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from itertools import islice

# What one journal entry keeps of a request's headers at most (with --journal-size x --max-sessions bounding
# the memory): 32 headers, each value cut after 256 characters.
HEADER_LIMIT = 256
HEADERS_KEPT = 32


def mask(secret: str | None) -> str:
    """Enough to tell credentials apart in a log, never enough to use one: 'de…(8)'."""
    if not secret:
        return "-"
    return f"{secret[:2]}…({len(secret)})"


def _pattern(headers: Iterable[str]) -> re.Pattern:
    """A bearer token anywhere, and the value after any of `headers` written as `name: value` or `'name': 'value'`."""
    names = "|".join(re.escape(header) for header in sorted(set(headers)))
    named = rf"|(?:{names})['\"]?\s*[:=]\s*['\"]?" if names else ""
    return re.compile(rf"(?i)(bearer\s+{named})([^\s'\",;]+)")


def mask_text(text: str, headers: Iterable[str] = ()) -> str:
    return _pattern(headers).sub(lambda m: m.group(1) + mask(m.group(2)), text)


class SecretFilter(logging.Filter):
    """Rewrites each record's message with credentials masked (bearer tokens, and the values of `headers`)."""

    def __init__(self, headers: Iterable[str] = ()):
        super().__init__()
        self._pattern = _pattern(headers)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = self._pattern.sub(lambda m: m.group(1) + mask(m.group(2)), message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (scheme case-insensitive), else None."""
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class Secrets:
    """The credential headers of the served families (lower-case name -> whether it holds `<scheme> <token>`)."""

    def __init__(self, headers: Mapping[str, bool]):
        self.headers = dict(headers)

    def credential(self, headers: Mapping[str, str]) -> str:
        """The first credential the request carries, masked (what the access log names)."""
        for name, bearer in self.headers.items():
            value = headers.get(name)
            if value:
                return mask(bearer_token(value) if bearer else value)
        return mask(None)

    def shown(self, headers: Mapping[str, str]) -> dict[str, str]:
        """Headers as the journal keeps them: credentials masked exactly as in the access log, at most
        HEADERS_KEPT of them, each value cut after HEADER_LIMIT characters. (Run on every request:
        copies and checks stay in C where they can.)"""
        shown = dict(headers) if len(headers) <= HEADERS_KEPT else dict(islice(headers.items(), HEADERS_KEPT))
        for name, bearer in self.headers.items():
            value = shown.get(name)
            if value is None:
                continue
            if not bearer:
                shown[name] = mask(value)
            else:
                token = bearer_token(value)
                shown[name] = f"{value.split(' ', 1)[0]} {mask(token)}" if token else mask(value)
        if shown and max(map(len, shown.values())) > HEADER_LIMIT:
            shown = {name: value[:HEADER_LIMIT] for name, value in shown.items()}
        return shown

"""Reading credentials from headers, and keeping them out of logs (shown masked).

`mask` is applied where a credential is logged on purpose (the access log
names which key called); `SecretFilter` is a second guard on the log handler
that masks anything shaped like a credential in any log line.
"""

from __future__ import annotations

import logging
import re

_CREDENTIAL = re.compile(r"(?i)(bearer\s+|xx-relay-api-key['\"]?\s*[:=]\s*['\"]?)([^\s'\",;]+)")


def mask(secret: str | None) -> str:
    """Enough to tell credentials apart in a log, never enough to use one: 'de…(8)'."""
    if not secret:
        return "-"
    return f"{secret[:2]}…({len(secret)})"


def mask_text(text: str) -> str:
    return _CREDENTIAL.sub(lambda m: m.group(1) + mask(m.group(2)), text)


class SecretFilter(logging.Filter):
    """Rewrites each record's message with credentials masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_text(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (scheme case-insensitive), else None."""
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None

"""The access log: one line per request, the credential that called masked."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from mockserver.credentials import bearer_token, mask

access_log = logging.getLogger("mockserver.access")


def log_access(method: str, path: str, headers: Mapping[str, str], status: int, seconds: float) -> None:
    credential = headers.get("xx-relay-api-key") or bearer_token(headers.get("authorization"))
    access_log.info("%s %s %d %.1fms credential=%s", method, path, status, seconds * 1000, mask(credential))

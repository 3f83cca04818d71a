"""The access log: one line per request (method, path, status, duration, operationId, session), the credential masked."""

from __future__ import annotations

import logging

access_log = logging.getLogger("mockserver.access")


def log_access(method: str, path: str, credential: str, status: int | None, seconds: float, operation_id: str | None, session: str) -> None:
    """A text line, and the same facts as fields (`record.request`) for `--log-format json`; `credential` masked."""
    fields = {
        "method": method,
        "path": path,
        "status": status,
        "duration_ms": round(seconds * 1000, 3),
        "operationId": operation_id,
        "session": session,
        "credential": credential,
    }
    shown = "-" if status is None else status
    access_log.info(
        "%s %s %s %.1fms %s session=%s credential=%s",
        method,
        path,
        shown,
        seconds * 1000,
        operation_id or "-",
        session,
        credential,
        extra={"request": fields},
    )

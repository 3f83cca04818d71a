"""How the server's log lines look: text for people, or one JSON object a line for log pipelines.

Either way credentials are masked: `SecretFilter` rewrites every message,
and the access log's fields carry the masked credential only.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import UTC, datetime

from mockserver.credentials import SecretFilter

TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """`{"time", "level", "logger", "message"}`, plus the request's fields on access-log lines."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(getattr(record, "request", {}))
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure(level: str, form: str = "text", secret_headers: Iterable[str] = ()) -> None:
    """`secret_headers`: the families' credential headers, whose values no log line shows."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if form == "json" else logging.Formatter(TEXT))
    handler.addFilter(SecretFilter(secret_headers))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)

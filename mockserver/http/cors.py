"""CORS: a frontend on another origin (say http://localhost:5173) may call the mock from a browser.

The rules are a pure function of the request's headers, applied by the
exchange (exchange.py) to every answer (vendor APIs, admin API, pages) and
answering preflights before the contract sees them. No CORS library fits
the layer the APIs run in (one exchange under a native ASGI app and a WSGI
face, neither a Flask view nor a Starlette app), so the rules are written
out here and tested one by one (tests/http/test_cors.py).

The allowed origin is echoed (with `Vary: Origin`) rather than `*`: a
browser accepts `*` only for requests without credentials, and the APIs'
credentials are headers a frontend sends on every call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

ALLOWED_METHODS = "GET, HEAD, PUT, POST, DELETE, OPTIONS"
# Besides the families' credential headers (CorsPolicy.credentials).
ALLOWED_HEADERS = ("authorization", "content-type", "accept", "accept-language", "prefer", "x-mock-session")
EXPOSED_HEADERS = "Allow, Content-Type, Content-Length, WWW-Authenticate, Connection"
MAX_AGE = "600"  # seconds a browser may cache a preflight


@dataclass(frozen=True)
class CorsPolicy:
    """Which origins may call: every one (`origins` None), or those listed; `enabled` False sends no CORS header."""

    enabled: bool = True
    origins: frozenset[str] | None = None
    credentials: tuple[str, ...] = ()  # the families' credential headers, allowed first

    @classmethod
    def from_option(cls, enabled: bool, origins: str | None, credentials: tuple[str, ...] = ()) -> CorsPolicy:
        """`--cors-origins 'http://a:1, http://b:2'` (or `*`), `--no-cors`."""
        listed = {o.strip().rstrip("/") for o in (origins or "").split(",") if o.strip()}
        return cls(enabled, None if not listed or "*" in listed else frozenset(listed), credentials)

    def allows(self, origin: str) -> bool:
        return self.enabled and bool(origin) and (self.origins is None or origin.rstrip("/") in self.origins)

    def is_preflight(self, method: str, headers: Mapping[str, str]) -> bool:
        return self.enabled and method == "OPTIONS" and "access-control-request-method" in headers and "origin" in headers

    def preflight(self, headers: Mapping[str, str]) -> tuple[int, list[tuple[str, str]]]:
        """204 with what may be sent, for an allowed origin; 403 with no CORS header for another (the browser then refuses)."""
        origin = headers.get("origin", "")
        if not self.allows(origin):
            return 403, [("Vary", "Origin")]
        requested = [h.strip().lower() for h in headers.get("access-control-request-headers", "").split(",") if h.strip()]
        allowed = ", ".join(dict.fromkeys([*self.credentials, *ALLOWED_HEADERS, *requested]))
        return 204, [
            ("Access-Control-Allow-Origin", origin),
            ("Access-Control-Allow-Methods", ALLOWED_METHODS),
            ("Access-Control-Allow-Headers", allowed),
            ("Access-Control-Max-Age", MAX_AGE),
            ("Vary", "Origin"),
        ]

    def answer_headers(self, headers: Mapping[str, str]) -> list[tuple[str, str]]:
        """What every answer to an allowed origin carries."""
        origin = headers.get("origin", "")
        if not self.allows(origin):
            return [("Vary", "Origin")] if self.enabled and self.origins is not None else []
        return [("Access-Control-Allow-Origin", origin), ("Access-Control-Expose-Headers", EXPOSED_HEADERS), ("Vary", "Origin")]

"""The errors the domain, the exchange and the stores raise: a documented error answer, a store unavailable."""

from __future__ import annotations


class ApiError(Exception):
    """A documented error: an HTTP status, a message, and the API's own code if it has one.

    How it looks on the wire (Relay `{"message"}`, eGain `{"code",
    "developerMessage"}`, JSON or XML) is decided by the renderer alone.
    """

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        details: list[tuple[str, str]] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}
        # (key, value) pairs an API may add to its error body (eGain's `details`).
        self.details = details or []
        # Set when the request broke the contract: the journal's `violations`.
        self.violation: str | None = None


UNEXPECTED = "An unexpected server error occurred. Please retry your request."


class StoreUnavailable(Exception):
    """A shared store that could not answer; the message says what was (not) done. Every backend raises it, and
    the exchange alone answers it: the operation's documented 503, in the API's own format."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

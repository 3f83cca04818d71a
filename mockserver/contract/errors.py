"""What the contract stage can say about a request or a response.

Request errors are the client's fault and become documented 4xx answers;
response errors are the mock's own bug and become a logged 500.
"""

from __future__ import annotations


class RouteNotFound(Exception):
    """No path of the spec matches."""


class MethodNotAllowed(Exception):
    """The path exists but not with this method."""

    def __init__(self, allowed: list[str]):
        super().__init__(f"allowed: {', '.join(allowed)}")
        self.allowed = allowed


class RequestInvalid(Exception):
    """A request that breaks the contract.

    `kind` says which rule broke, so each API family can map it to its own
    documented error code: unknown_query, parameter, content_type,
    body_missing, body_malformed, body_forbidden, body_too_large, body_schema,
    prefer (the `Prefer: code=` control).
    """

    def __init__(self, kind: str, message: str, location: str = "", name: str = "", problem: str = ""):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.location = location
        self.name = name
        self.problem = problem or message  # what is wrong, without naming where (`message` names it)


class ResponseInvalid(Exception):
    """A response the spec does not document for its operation (the mock's bug).

    `check` names the rule as schemathesis does (status_code_conformance,
    content_type_conformance, response_schema_conformance, ...).
    """

    def __init__(self, message: str, check: str = "response_conformance"):
        super().__init__(message)
        self.check = check

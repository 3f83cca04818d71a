"""What the pipeline knows of an API family, and what flows between its stages."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mockserver.contract.compiled import Operation, RawRequest, ValidatedRequest
from mockserver.contract.errors import RequestInvalid
from mockserver.errors import ApiError
from mockserver.state.model import Config
from mockserver.state.store import Store

if TYPE_CHECKING:
    from mockserver.qa.journal import Journal, RequestFilter
    from mockserver.qa.sessions import Session


@dataclass(frozen=True)
class Call:
    """A handler's whole input: the validated request and the session it acts in."""

    request: ValidatedRequest
    session: Session

    @property
    def store(self) -> Store:
        return self.session.store


@dataclass(frozen=True)
class Wait:
    """A reply that is not ready yet (a long poll): the server re-asks `poll()` after each entry of
    `journal` that `wanted` accepts until it gives a Reply, or calls `expired()` after `timeout_s`.
    Nothing is held meanwhile."""

    journal: Journal
    wanted: RequestFilter
    timeout_s: float
    poll: Callable[[], Reply | None]
    expired: Callable[[], Reply]


@dataclass
class Reply:
    """A handler's answer before rendering: a status, a JSON-shaped payload (or None), extra headers,
    or a `wait` to resolve first."""

    status: int
    payload: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    wait: Wait | None = None


@dataclass(frozen=True)
class Family:
    """One vendor API: how it authenticates, which formats it answers in, its handlers, its errors.

    `authenticate(config, operation, raw, path_values)` raises ApiError (401/403);
    it reads the fixed configuration only, never the store;
    `negotiate(raw)` gives the response media type, or None for a 406;
    `handlers` maps every operationId of the family to its function;
    `error_body(error, request_headers)` is the API's own error format (the headers may ask for more, as
    eGain's `X-egain-error-message: yes` does), and
    `contract_error(invalid)` the documented 400 for a broken contract rule.
    """

    name: str
    authenticate: Callable[[Config, Operation, RawRequest, dict[str, str]], None]
    negotiate: Callable[[RawRequest], str | None]
    handlers: dict[str, Callable[[Call], Reply]]
    error_body: Callable[[ApiError, Mapping[str, str] | None], dict]
    contract_error: Callable[[RequestInvalid], ApiError]
    # Whether fault rules and `Prefer` act on its requests (the vendor APIs' yes, the admin API's no).
    controlled: bool = True

"""What an API family declares (its HTTP side, its state, its credentials), and what flows between the stages.

A family is a plug-in: one package holds its api, domain, errors and its
`Family` value, and the registry (mockserver/families.py) names it. Nothing
generic imports a family: the exchange, the state machinery, the journal,
the access log, CORS, the pages, the banner and the test helpers read what
its `Family` declares.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from mockserver.contract.compiled import Operation, RawRequest, ValidatedRequest
from mockserver.contract.errors import RequestInvalid
from mockserver.errors import ApiError
from mockserver.state.model import State
from mockserver.state.section import Section
from mockserver.state.store import Store

if TYPE_CHECKING:
    from mockserver.qa.journal import Journal, RequestFilter
    from mockserver.qa.sessions import Session

T = TypeVar("T")


@dataclass(frozen=True)
class Call:
    """A handler's whole input: the validated request and the session it acts in.

    `syncs` collects the changes the request made that are to be made durable before it is answered (the
    exchange settles them, off the event loop where there is one); None: each is settled as it is made."""

    request: ValidatedRequest
    session: Session
    syncs: list | None = None

    @property
    def store(self) -> Store:
        store = self.session.store
        return store if self.syncs is None else Deferring(store, self.syncs)


class Deferring:
    """A session's store as a request sees it: its changes are settled by the request's exchange, not in the
    command's thread."""

    def __init__(self, store: Store, syncs: list):
        self._store, self._syncs = store, syncs

    def run(self, command: Callable[..., T], *args: Any, syncs: list | None = None) -> T:
        return self._store.run(command, *args, syncs=self._syncs if syncs is None else syncs)

    def reset(self, syncs: list | None = None) -> None:
        self._store.reset(syncs=self._syncs if syncs is None else syncs)

    def rebuild(self, build: Callable[[], State]) -> None:
        self._store.rebuild(build)

    def ping(self) -> None:
        self._store.ping()


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
class Credential:
    """A request header that carries a secret: masked in the journal and the access log, allowed by CORS.

    `bearer`: the value is `<scheme> <token>` (`Authorization: Bearer ...`), and only the token is masked."""

    header: str  # lower case
    bearer: bool = False


@dataclass(frozen=True)
class Family:
    """One vendor API: how it authenticates, which formats it answers in, its handlers, its errors, its state.

    `authenticate(config, operation, raw, path_values)` raises ApiError (401/403); `config` is the
    family's own fixed configuration (its section's), never the store;
    `negotiate(raw)` gives the response media type, or None for a 406;
    `handlers` maps every operationId of the family (the spec's operations tagged with its name) to its function;
    `error_body(error, request_headers)` is the API's own error format (the headers may ask for more, as
    eGain's `X-egain-error-message: yes` does), and
    `contract_error(invalid)` the documented 400 for a broken contract rule.
    """

    name: str
    authenticate: Callable[[Any, Operation, RawRequest, dict[str, str]], None]
    negotiate: Callable[[RawRequest], str | None]
    handlers: dict[str, Callable[[Call], Reply]]
    error_body: Callable[[ApiError, Mapping[str, str] | None], dict]
    contract_error: Callable[[RequestInvalid], ApiError]
    # Its section of the fixture file and of the state (None: it keeps no records, as the admin API).
    section: Section | None = None
    # Its own operations, when the vendor spec does not hold them: an OpenAPI document merged into the contract.
    spec: Path | None = None
    credentials: tuple[Credential, ...] = ()
    # The fixtures' demo credentials: by the spec's security scheme (Swagger UI's "Try it out"), and as the
    # request headers the test helpers send.
    demo_schemes: dict[str, str] = field(default_factory=dict)
    demo_headers: dict[str, str] = field(default_factory=dict)
    banner: tuple[str, ...] = ()  # its lines of the start banner (`{base}` is the server's address)
    banner_demo: tuple[str, ...] = ()  # its demo credentials, in the banner when the bundled fixtures are served
    # Whether fault rules and `Prefer` act on its requests (the vendor APIs' yes, the admin API's no).
    controlled: bool = True

"""The composition root: `create_mock(settings)` builds one mock server, every part it owns, in one object.

Nothing reaches a part through a locator: the servers (http/serving.py), the reload watcher, the test
helpers and the benchmarks are handed the `Mock` and read its typed fields. Its two faces serve the same
exchange: `flask` (WSGI: waitress and the in-process test client) and `asgi()` (granian's event loop).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mockserver import families
from mockserver.admin.api import Toolkit, admin_family
from mockserver.contract.compiled import Contract
from mockserver.contract.spec import load_document
from mockserver.family import Family
from mockserver.http import wirefaults
from mockserver.http.app import MockApp, flask_face
from mockserver.http.exchange import Exchange
from mockserver.qa.faults import FaultRule, FaultRules, parse_rule
from mockserver.qa.journal import Journal, LocalEntries
from mockserver.qa.scenarios import Scenarios
from mockserver.qa.sessions import DEFAULT, LocalRegistry, Sessions
from mockserver.settings import Settings
from mockserver.state import fixture_cache, persistence
from mockserver.state.fixtures import FixtureError, Fixtures
from mockserver.state.model import Config, State
from mockserver.state.store import MemoryStore, Store

if TYPE_CHECKING:
    from mockserver.http.asgi import AsgiApp

NAMESPACE = re.compile(r"[A-Za-z0-9._-]{1,64}")


@dataclass
class Mock:
    """One mock server's parts. `fixtures`, `scenarios` and `config` change only by `reload`."""

    settings: Settings
    contract: Contract
    families: dict[str, Family]  # by name, the admin API's included
    fixtures: Fixtures
    sessions: Sessions  # over this process's registry, or Redis's with `--store redis://`
    store: Store  # the default session's
    state_file: persistence.StateFile | None
    toolkit: Toolkit
    exchange: Exchange
    stores_for: Callable[[Callable[[], State]], Callable[..., Store]]  # how sessions' stores are made from a fixture build
    flask: MockApp = field(init=False)

    @property
    def config(self) -> Config:
        return self.fixtures.config

    def asgi(self) -> AsgiApp:
        """A new ASGI face on the same exchange (granian serves one)."""
        from mockserver.http.asgi import AsgiApp

        return AsgiApp(self.exchange)

    def reload(self, fixtures: Fixtures | None, scenarios: Scenarios) -> None:
        """`serve --reload`: new scenarios, and new fixtures when given (the default session starts again from them,
        test sessions are dropped)."""
        self.toolkit.scenarios.by_name = scenarios.by_name
        if fixtures is None:
            return
        self.fixtures = fixtures
        self.exchange.config = fixtures.config
        self.sessions.start_over(fixtures.build, self.stores_for(fixtures.build))


def create_app(settings: Settings | None = None) -> MockApp:
    """The Flask face of a new mock: what waitress serves and Flask's test client calls."""
    return create_mock(settings).flask


def create_mock(settings: Settings | None = None) -> Mock:
    """Every part from `settings`; a bad spec, fixture, scenario or option raises here (FixtureError, LookupError)."""
    settings = settings or Settings()
    served = families.load(settings.families)
    fragments = [load_document(family.spec) for family in served if family.spec is not None]
    contract = Contract(load_document(settings.spec), load_document(settings.admin_spec), *fragments)
    schemas = contract.schemas
    cache = fixture_cache.folder(settings.fixture_cache)
    fixtures = Fixtures.load(settings.fixtures, schemas, families.sections(served), cache=cache)
    vendor_operations = [op for op in contract.operations.values() if op.family != "admin"]
    backing = _backing(settings, fixtures, lambda rule_id, spec: parse_rule(rule_id, spec, vendor_operations, wirefaults.SUPPORTED))
    new_store = backing.stores_for(fixtures.build)
    state_file = persistence.StateFile(settings.state_file, settings.fsync) if settings.state_file else None
    restored = state_file.restore(fixtures, schemas) if state_file else None
    store = MemoryStore(fixtures.build, initial=restored) if state_file else new_store(DEFAULT)
    sessions = backing.sessions(new_store, store)
    scenarios = Scenarios.load(settings.scenarios, vendor_operations, schemas, fixtures.build)
    toolkit = Toolkit(sessions, scenarios, vendor_operations, contract.templates, wirefaults.SUPPORTED, settings.admin_token)
    by_name = {family.name: family for family in served} | {"admin": admin_family(toolkit)}
    exchange = Exchange(contract, fixtures.config, by_name, sessions, settings)
    if settings.scenario:
        if restored is not None:
            raise FixtureError(
                f"--scenario {settings.scenario} resets the default session, which would throw away the state restored from"
                f" {settings.state_file}; apply it with POST /__admin/scenarios/{settings.scenario} instead, or move the file away"
            )
        _apply_at_start(settings.scenario, toolkit)
    if state_file:
        assert isinstance(store, MemoryStore)  # with a state file, the store made above is in memory
        state_file.attach(store)  # after the scenario at start: it is part of the first state, not a change to log
    mock = Mock(settings, contract, by_name, fixtures, sessions, store, state_file, toolkit, exchange, backing.stores_for)
    mock.flask = flask_face(mock)
    return mock


@dataclass(frozen=True)
class Backing:
    """What `--store` decides: how a session's store is made (given how to build the fixture state), and the
    sessions (given how to make a session's store, and the default session's): this process's, or shared."""

    stores_for: Callable[[Callable[[], State]], Callable[..., Store]]  # (session id[, life]) -> its store
    sessions: Callable[[Callable[..., Store], Store], Any]


def _backing(settings: Settings, fixtures: Fixtures, compile_rule: Callable[[str, dict], FaultRule]) -> Backing:
    if settings.store == "memory":

        def local_sessions(new_store: Callable[..., Store], default_store: Store) -> Sessions:
            registry = LocalRegistry(settings.session_idle, settings.max_sessions)
            journal = lambda *_: Journal(LocalEntries(settings.journal_size))  # noqa: E731 - one line, as its twin below
            return Sessions(registry, new_store, lambda *_: FaultRules(), journal, default_store, settings.session_idle)

        return Backing(lambda build: lambda *_: MemoryStore(build), local_sessions)
    if settings.state_file:
        raise FixtureError(f"--state-file keeps the in-memory store; with --store {settings.store} the state lives in Redis")
    if not settings.store.startswith(("redis://", "rediss://", "unix://")):
        raise FixtureError(f"--store {settings.store}: use memory, or redis://HOST:PORT/DB (rediss:// for TLS, unix:// for a socket)")
    if settings.reload:
        raise FixtureError("--reload swaps the fixtures of one process; with a shared store every process must serve the same ones")
    if settings.scenario:
        raise FixtureError(
            f"--scenario resets the default session of every process sharing --store {settings.store}, at each start of any of"
            f" them; apply it once with POST /__admin/scenarios/{settings.scenario} instead"
        )
    if not NAMESPACE.fullmatch(settings.namespace):
        raise FixtureError(f"--namespace {settings.namespace!r}: letters, digits, '.', '_' and '-' only, 1 to 64 of them")
    try:
        from mockserver.state import redis_client, redis_store
    except ImportError as exc:
        raise FixtureError(f"--store {settings.store} needs the Redis client: pip install 'mockserver[redis]' ({exc})") from exc

    from mockserver.qa.shared_faults import SharedRules
    from mockserver.qa.shared_journal import RedisEntries
    from mockserver.qa.shared_sessions import SessionRegistry

    fixtures.without_spare()
    client = redis_client.connect(settings.store)
    digest = redis_store.claim_namespace(client, settings.namespace, settings.fixtures)
    namespace = f"{settings.namespace}:{digest[:12]}"
    registry = SessionRegistry(client, namespace, settings.session_idle, settings.max_sessions)

    def faults(session_id: str, life: bytes | None) -> FaultRules:
        return FaultRules(SharedRules(client, registry.prefix(session_id), registry.versions_key, compile_rule, life))

    def journal(session_id: str, life: bytes | None) -> Journal:
        prefix = registry.prefix(session_id)
        return Journal(RedisEntries(client, prefix, settings.journal_size, registry.live_key, session_id, life, registry.idle_ms))

    def stores_for(build: Callable[[], State]) -> Callable[..., Store]:
        return redis_store.RedisStores(client, namespace, build()).new

    def sessions(new_store: Callable[..., Store], default_store: Store) -> Sessions:
        return Sessions(registry, new_store, faults, journal, default_store, settings.session_idle)

    return Backing(stores_for, sessions)


def _apply_at_start(name: str, toolkit: Toolkit) -> None:
    """`serve --scenario NAME`: the default session starts in that scenario."""
    scenario = toolkit.scenarios.by_name.get(name)
    if scenario is None:
        raise FixtureError(f"--scenario {name}: no such scenario; known: {', '.join(toolkit.scenarios.by_name) or 'none'}")
    scenario.apply(toolkit.sessions.default, toolkit.vendor_operations, toolkit.faults_supported)

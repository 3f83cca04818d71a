"""The app factory: wires contracts, fixtures, sessions, families and the admin API into one app.

Every request is answered by the pipeline through `ApiMiddleware`
(mockserver/http/wsgi.py) in front of Flask, or through the ASGI front
(mockserver/http/asgi.py) under granian: routing is the contracts', so an
unknown path or method is answered in the API's JSON error format.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response
from werkzeug.exceptions import HTTPException

from mockserver.admin.api import Toolkit, admin_family
from mockserver.contract.compiled import JSON, Contract
from mockserver.contract.spec import load_document
from mockserver.egain.api import FAMILY as EGAIN
from mockserver.errors import UNEXPECTED
from mockserver.http import render, wirefaults
from mockserver.http.front import Front
from mockserver.http.pipeline import Pipeline
from mockserver.http.wsgi import ApiMiddleware, raw_request  # noqa: F401 - raw_request is used by tools and tests
from mockserver.qa.faults import FaultRule, parse_rule
from mockserver.qa.scenarios import Scenarios
from mockserver.qa.sessions import DEFAULT, Sessions
from mockserver.relay.api import FAMILY as RELAY
from mockserver.settings import Settings
from mockserver.state import fixture_cache, persistence
from mockserver.state.fixtures import FixtureError, Fixtures
from mockserver.state.model import State
from mockserver.state.store import MemoryStore, Store

log = logging.getLogger("mockserver")
NAMESPACE = re.compile(r"[A-Za-z0-9._-]{1,64}")


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings()
    contract = Contract(load_document(settings.spec), load_document(settings.admin_spec))
    schemas = contract.schemas
    fixtures = Fixtures.load(settings.fixtures, schemas, cache=fixture_cache.folder(settings.fixture_cache))
    config = fixtures.config
    vendor_operations = [op for op in contract.operations.values() if op.family != "admin"]
    backing = _backing(settings, fixtures, lambda rule_id, spec: parse_rule(rule_id, spec, vendor_operations, wirefaults.SUPPORTED))
    stores_for = backing.stores_for
    new_store = stores_for(fixtures.build)
    state_file = persistence.StateFile(settings.state_file, settings.fsync) if settings.state_file else None
    restored = state_file.restore(fixtures, schemas) if state_file else None
    store = MemoryStore(fixtures.build, initial=restored) if state_file else new_store(DEFAULT)
    sessions = backing.sessions(new_store, store)
    scenarios = Scenarios.load(settings.scenarios, vendor_operations, schemas, fixtures.build)
    toolkit = Toolkit(sessions, scenarios, vendor_operations, contract.templates, wirefaults.SUPPORTED, settings.admin_token)
    families = {"relay": RELAY, "egain": EGAIN, "admin": admin_family(toolkit)}
    pipeline = Pipeline(contract, config, families, check_responses=settings.check_responses, strict=settings.strict_responses)
    front = Front(pipeline, sessions, settings)
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
    app = Flask(__name__)
    app.extensions["mockserver"] = {
        "front": front,
        "fixtures": fixtures,
        "toolkit": toolkit,
        "pipeline": pipeline,
        "sessions": sessions,
        "store": store,
        "config": config,
        "contract": contract,
        "settings": settings,
        "state_file": state_file,
        "stores_for": stores_for,
    }

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        """Flask's own errors in JSON, keeping headers such as Allow."""
        response = _json_error(error.code or 500, error.description or error.name)
        response.headers.extend((k, v) for k, v in error.get_headers() if k.lower() != "content-type")
        return response

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        if settings.strict_responses:
            raise error
        log.exception("unexpected error")
        return _json_error(500, UNEXPECTED)

    app.wsgi_app = ApiMiddleware(app.wsgi_app, front)  # type: ignore[method-assign]
    return app


@dataclass(frozen=True)
class Backing:
    """What `--store` decides: how a session's store is made (given how to build the fixture state), and the
    sessions (given how to make a session's store, and the default session's): this process's, or shared."""

    stores_for: Callable[[Callable[[], State]], Callable[..., Store]]  # (session id[, life]) -> its store
    sessions: Callable[[Callable[..., Store], Store], Any]


def _backing(settings: Settings, fixtures: Fixtures, compile_rule: Callable[[str, dict], FaultRule]) -> Backing:
    if settings.store == "memory":

        def local_sessions(new_store: Callable[[str], Store], default_store: Store) -> Sessions:
            return Sessions(new_store, settings.journal_size, settings.session_idle, settings.max_sessions, default_store)

        return Backing(lambda build: lambda _: MemoryStore(build), local_sessions)
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
        from mockserver.state import redis_store
    except ImportError as exc:
        raise FixtureError(f"--store {settings.store} needs the Redis client: pip install 'mockserver[redis]' ({exc})") from exc

    from mockserver.qa.shared_faults import SharedFaultRules
    from mockserver.qa.shared_journal import SharedJournal
    from mockserver.qa.shared_sessions import SessionRegistry, SharedSessions

    fixtures.without_spare()
    client = redis_store.connect(settings.store)
    digest = redis_store.claim_namespace(client, settings.namespace, settings.fixtures)
    namespace = f"{settings.namespace}:{digest[:12]}"
    registry = SessionRegistry(client, namespace, settings.session_idle, settings.max_sessions)

    def faults(session_id: str, life: bytes | None) -> SharedFaultRules:
        return SharedFaultRules(client, registry.prefix(session_id), registry.versions_key, compile_rule, life)

    def journal(session_id: str, life: bytes | None) -> SharedJournal:
        prefix = registry.prefix(session_id)
        return SharedJournal(client, prefix, settings.journal_size, registry.live_key, session_id, life, registry.idle_ms)

    def stores_for(build: Callable[[], State]) -> Callable[..., Store]:
        return redis_store.RedisStores(client, namespace, build()).new

    def sessions(new_store: Callable[..., Store], default_store: Store) -> SharedSessions:
        return SharedSessions(registry, new_store, faults, journal, default_store, settings.session_idle)

    return Backing(stores_for, sessions)


def _apply_at_start(name: str, toolkit: Toolkit) -> None:
    """`serve --scenario NAME`: the default session starts in that scenario."""
    scenario = toolkit.scenarios.by_name.get(name)
    if scenario is None:
        raise FixtureError(f"--scenario {name}: no such scenario; known: {', '.join(toolkit.scenarios.by_name) or 'none'}")
    scenario.apply(toolkit.sessions.default, toolkit.vendor_operations, toolkit.faults_supported)


def _json_error(status: int, message: str) -> Response:
    answer = render.wire(None, status, {"message": message}, JSON)
    return Response(answer.body, answer.status, answer.headers)

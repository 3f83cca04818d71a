"""Shared fixtures: an app per module put back as it started before each test, and a client whose every answer
is judged by openapi-core."""

from __future__ import annotations

import copy
import os
import uuid
from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient

from mockserver.contract.compiled import RawRequest
from mockserver.contract.errors import ResponseInvalid
from mockserver.contract.reference import Reference
from mockserver.contract.spec import load_document
from mockserver.mock import create_app
from mockserver.resources import admin_spec_path
from mockserver.settings import Settings
from mockserver.state.model import State
from mockserver.testing.redis_server import redis_server

# Servers the tests start leave no fixture cache in the user's home (tests/domain/test_large_fixtures.py tests the cache).
os.environ.setdefault("MOCKSERVER_FIXTURE_CACHE", "off")

RELAY_KEY = {"xx-relay-api-key": "demo-key"}
USER = {"Authorization": "Bearer demo-user-token"}
APP = {"Authorization": "Bearer demo-app-token"}
READONLY = {"Authorization": "Bearer demo-readonly-token"}
SEED_MERGE = {
    "sourceCustomer": {"id": "1002"},
    "targetCustomer": {"id": "1005", "lastModified": "2021-10-25T11:29:58.000Z", "contacts": {"contact": [{"firstName": "John"}]}},
}


@pytest.fixture(scope="session")
def reference() -> Reference:
    return Reference(load_document())


@pytest.fixture(scope="session")
def admin_reference() -> Reference:
    return Reference(load_document(admin_spec_path()))


class CheckedClient(FlaskClient):
    """A test client that fails the test when an answer is not documented by the spec.

    openapi-core judges each response independently of the mock's own
    compiled self-check; answers to unknown routes and methods (no operation
    to judge them by) must still be JSON error bodies.
    """

    reference: Reference
    admin_reference: Reference

    def open(self, *args, **kwargs):
        response = super().open(*args, **kwargs)
        request = response.request
        raw = RawRequest(
            request.method, request.path, list(request.args.items(multi=True)), {k.lower(): v for k, v in request.headers.items()}
        )
        contract = self.application.mock.contract
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            return response  # a CORS preflight: the HTTP layer's answer, not an operation's (tests/http/test_cors.py)
        if self.application.mock.exchange.pages.answer("GET", request.path) is not None:
            return response  # a page beside the APIs (tests/http/test_pages.py)
        judge = self.admin_reference if request.path.startswith("/__admin/") else self.reference
        try:
            contract.match(raw.method, raw.path)
        except Exception:
            assert response.status_code in (404, 405) and response.mimetype == "application/json", response.data
            return response
        try:
            judge.check_response(raw, response.status_code, response.headers.items(), response.get_data())
        except ResponseInvalid as exc:
            pytest.fail(f"{raw.method} {raw.path} -> {response.status_code} is not documented by the spec: {exc}\n{response.data[:500]!r}")
        return response


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """One real redis-server for the test session (each xdist worker its own); tests keep apart by namespace."""
    with redis_server() as url:
        yield url


def store_settings(request: pytest.FixtureRequest, kind: str) -> dict:
    """Settings of a fresh store of `kind`: memory, or Redis under a namespace of its own."""
    if kind == "memory":
        return {}
    return {"store": request.getfixturevalue("redis_url"), "namespace": f"test-{uuid.uuid4().hex}"}


def checked_app(request: pytest.FixtureRequest, kind: str, reference: Reference, admin_reference: Reference):
    """A new app on a fresh store of `kind`, whose test clients judge every answer by the specs."""
    application = create_app(Settings(strict_responses=True, **store_settings(request, kind)))
    application.test_client_class = CheckedClient
    CheckedClient.reference, CheckedClient.admin_reference = reference, admin_reference
    return application


@pytest.fixture(scope="module", params=["memory", "redis"])
def module_app(request, reference, admin_reference):
    """The app the tests of one module share, on each store (the in-memory one, and Redis): built once
    (create_app costs about 0.15 s), put back as it started before each test by `app`."""
    return checked_app(request, request.param, reference, admin_reference)


@pytest.fixture
def app(module_app):
    """The app under test, on each store, as it started: the module's app after `reset_everything`."""
    reset_everything(module_app)
    return module_app


@pytest.fixture(params=["memory", "redis"])
def fresh_app(request, reference, admin_reference):
    """An app built for this test alone, on each store: for a test that sees what a reset does not put back,
    the numbering of the default session's fault rules (f1, f2, ...) and journal entries."""
    return checked_app(request, request.param, reference, admin_reference)


def reset_everything(app) -> None:
    """Back to a fresh start through the package's own calls (what the admin API's reset, session, rule and
    journal calls do): no test session, and the default session with no rule, an empty journal and the
    state built from the fixtures."""
    sessions = app.mock.sessions
    for listed in sessions.listed():
        if listed["id"] != "default":
            sessions.delete(listed["id"])
    sessions.default.faults.clear()
    sessions.default.journal.clear()
    sessions.default.store.reset()


@pytest.fixture
def client(app) -> CheckedClient:
    return app.test_client()


@pytest.fixture
def state(app):
    """The state of the app under test (default session) as it is when read, for asserting what changed (or not)."""
    return Current(app.mock.store)


class Current:
    """The store's state now: each attribute read goes through the store (Redis has no live object to look at)."""

    def __init__(self, store):
        self._store = store

    def __getattr__(self, name: str):
        return getattr(self._store.run(materialized), name)

    def __getitem__(self, family: str):
        return self._store.run(materialized)[family]


def materialized(state: State) -> State:
    """A plain copy of `state` (a command: run it in the store), whatever its collections are backed by
    (indexes left empty: a copy is for reading records)."""
    families = {}
    for name, section in state.sections.items():
        mappings = section.mappings(state[name])
        copies = {
            c.name: {r[c.id_field]: copy.deepcopy(r) for r in mappings[c.name].values()} if c.id_field else {}
            for c in section.collections(state[name])
        }
        families[name] = section.over(state[name], copies, state.sources)
    return State(families, state.sources, state.sections)

"""The schemathesis contract run again with the state on Redis (`--store redis://`, issue #14).

A smaller budget than the in-memory run (MOCKSERVER_REDIS_FUZZ_EXAMPLES, 10 by default): the code the
examples reach beyond the store is the same, and every example costs Redis round trips.
"""

from __future__ import annotations

import os
import uuid

import pytest
from hypothesis import HealthCheck, settings

from mockserver.http.app import create_app
from mockserver.settings import Settings
from tests.contract.support import load_schema
from tests.contract.test_schemathesis import untyped_xml_exclusions

EXAMPLES = int(os.environ.get("MOCKSERVER_REDIS_FUZZ_EXAMPLES", "10"))


class _OnRedis:
    """The WSGI app schemathesis calls (it must be known at import); the app on Redis is made by a fixture."""

    app = None

    def __call__(self, environ, start_response):
        return self.app(environ, start_response)


on_redis = _OnRedis()
schema = load_schema()
schema.app = on_redis


@pytest.fixture(scope="module")
def redis_app(redis_url):
    app = create_app(Settings(strict_responses=True, store=redis_url, namespace=f"contract-{uuid.uuid4().hex}"))
    app.testing = True  # a mock bug (undocumented answer) raises instead of hiding in a 500
    on_redis.app = app
    yield app
    on_redis.app = None


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck), max_examples=EXAMPLES)
def test_every_operation_keeps_the_contract_on_redis(case, redis_app):
    redis_app.extensions["mockserver"]["store"].reset()  # each generated example starts from the fixtures
    case.call_and_validate(excluded_checks=untyped_xml_exclusions(case))

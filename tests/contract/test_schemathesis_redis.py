"""The schemathesis contract run again with the state on Redis (`--store redis://`, issue #14).

A smaller budget than the in-memory run (MOCKSERVER_REDIS_FUZZ_EXAMPLES, 10 by default, and
MOCKSERVER_REDIS_STATEFUL_EXAMPLES, 30): the code the examples reach beyond the store is the same,
and every example costs Redis round trips.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from mockserver.settings import Settings
from tests.contract.support import AppSlot, load_schema, mock_in, untyped_xml_exclusions

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("MOCKSERVER_REDIS_FUZZ_EXAMPLES", "10"))
STATEFUL_EXAMPLES = int(os.environ.get("MOCKSERVER_REDIS_STATEFUL_EXAMPLES", "30"))

SLOT = AppSlot()
schema = load_schema()
schema.app = SLOT


@pytest.fixture(scope="module")
def redis_app(redis_url):
    """The mock every example calls, on Redis (a namespace of its own): one for the module, its state reset per example."""
    yield from mock_in(SLOT, Settings(strict_responses=True, store=redis_url, namespace=f"contract-{uuid.uuid4().hex}"))


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck), max_examples=EXAMPLES)
def test_every_operation_keeps_the_contract_on_redis(case, redis_app):
    redis_app.mock.store.reset()  # each generated example starts from the fixtures
    case.call_and_validate(excluded_checks=untyped_xml_exclusions(case))


def test_the_stateful_workflow_keeps_the_contract_on_redis(redis_app):
    """The spec's links followed on the Redis store (load -> retrieve/move, move -> move again, onboard,
    add and remove a phone, consent, get -> merge -> get): every answer of every step checked by
    schemathesis, each scenario from the fixtures."""
    seen: Counter = Counter()

    class OnRedis(schema.as_state_machine()):
        def setup(self):
            redis_app.mock.store.reset()

        def before_call(self, case):
            if "client_id" in (case.path_parameters or {}):
                case.path_parameters["client_id"] = "demo"  # as [parameters] in schemathesis.toml

        def after_call(self, response, case):
            seen[(case.operation.definition.raw.get("operationId"), response.status_code)] += 1

    budget = settings(
        max_examples=STATEFUL_EXAMPLES, stateful_step_count=6, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    run_state_machine_as_test(OnRedis, settings=budget)
    changes = {("moveCustomer", 200), ("loadCustomerRecord", 200), ("onboardCustomer", 200), ("mergeCustomer", 204)}
    assert any(seen[pair] for pair in changes), f"no state-changing call succeeded on Redis; seen {dict(seen)}"

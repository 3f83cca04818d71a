"""schemathesis against the app in process: every operation, every default check, state reset per example.

Budget: MOCKSERVER_FUZZ_EXAMPLES examples per operation (25 by default; the deep
mode in the README uses 2000), MOCKSERVER_STATEFUL_EXAMPLES stateful scenarios.
"""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from mockserver.settings import Settings
from tests.contract.support import STATEFUL_EXAMPLES, AppSlot, load_schema, mock_in, untyped_xml_exclusions

pytestmark = pytest.mark.slow

SLOT = AppSlot()
schema = load_schema()
schema.app = SLOT


@pytest.fixture(scope="module", autouse=True)
def mock():
    """The mock every example calls, on the in-memory store: one for the module, its state reset per example."""
    yield from mock_in(SLOT, Settings(strict_responses=True))


def reset() -> None:
    SLOT.mock.mock.store.reset()


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_keeps_the_contract(case):
    reset()  # each generated example starts from the fixtures
    case.call_and_validate(excluded_checks=untyped_xml_exclusions(case))


SEEN: Counter = Counter()  # (operationId, status) answered during the stateful runs


class Workflow(schema.as_state_machine()):
    """Follows the spec's links: load -> retrieve/move, move -> move again (409), onboard -> move into its group (409),
    add_phone -> remove_phone, get -> merge -> get."""

    def setup(self):
        reset()

    def before_call(self, case):
        if "client_id" in (case.path_parameters or {}):
            case.path_parameters["client_id"] = "demo"  # as [parameters] in schemathesis.toml

    def after_call(self, response, case):
        SEEN[(case.operation.definition.raw.get("operationId"), response.status_code)] += 1


TestStatefulWorkflow = Workflow.TestCase
TestStatefulWorkflow.settings = settings(
    max_examples=STATEFUL_EXAMPLES, stateful_step_count=6, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
)


MORE_ROUNDS = 6  # fresh runs of the state machine allowed to reach what the first left out


def test_the_stateful_runs_reached_the_interesting_paths():
    """Runs after the state machine above (pytest keeps file order), or on its own under xdist.

    Which links one run follows is chance (schemathesis draws a rule among some 30 at each step, and the
    seed varies with what ran before in the process), so a path the runs so far left out gets more runs,
    fresh draws of the same budget: what never comes within them is a link the spec lost, not bad luck.
    """
    wanted = [("loadCustomerRecord", 200), ("retrieveCustomer", 200), ("moveCustomer", 200), ("moveCustomer", 409), ("mergeCustomer", 204)]
    wanted += [("onboardCustomer", 200), ("addPhoneNumber", 200), ("removePhoneNumber", 200), ("updateConsentType", 200)]
    wanted += [("mergeCustomer", 400)]  # a repeated or stale merge
    rounds = 0
    while (missing := [pair for pair in wanted if not SEEN[pair]]) and rounds < MORE_ROUNDS:
        rounds += 1
        more = settings(TestStatefulWorkflow.settings, derandomize=False, database=None)
        run_state_machine_as_test(Workflow, settings=more)
    assert not missing, f"never reached {missing} in {rounds + 1} runs; seen {dict(SEEN)}"

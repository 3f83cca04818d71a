"""schemathesis against the admin API (spec/admin.yaml) in process: every operation, every default check.

Each example starts from a fresh start (no session, rule or journal entry);
a long poll's timeout is cut to 20 ms so a generated 30 s wait costs nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from mockserver.resources import admin_spec_path
from mockserver.settings import Settings
from tests.conftest import reset_everything
from tests.contract.support import AppSlot, load_schema, mock_in

pytestmark = pytest.mark.slow

SLOT = AppSlot()
schema = load_schema(admin_spec_path(), Path(__file__).with_name("schemathesis-admin.toml"))
schema.app = SLOT


@pytest.fixture(scope="module")
def mock():
    """The mock every example calls: one for the module, put back as it started before each example."""
    yield from mock_in(SLOT, Settings(strict_responses=True))


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_every_admin_operation_keeps_its_contract(case, mock):
    reset_everything(mock)
    positive = case.meta is None or case.meta.generation.mode.value == "positive"
    if positive and case.operation.definition.raw.get("operationId") == "adminWaitForRequests" and isinstance(case.body, dict):
        case.body["timeout_ms"] = min(case.body.get("timeout_ms", 20), 20)
    case.call_and_validate()

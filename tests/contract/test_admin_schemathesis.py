"""schemathesis against the admin API (spec/admin.yaml) in process: every operation, every default check.

Each example starts from a fresh start (no session, rule or journal entry);
a long poll's timeout is cut to 20 ms so a generated 30 s wait costs nothing.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, settings

from mockserver.mock import create_app
from mockserver.resources import admin_spec_path
from mockserver.settings import Settings
from tests.contract.support import load_schema, reset_everything

app = create_app(Settings(strict_responses=True))
app.testing = True
schema = load_schema(admin_spec_path(), Path(__file__).with_name("schemathesis-admin.toml"))
schema.app = app


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_every_admin_operation_keeps_its_contract(case):
    reset_everything(app)
    positive = case.meta is None or case.meta.generation.mode.value == "positive"
    if positive and case.operation.definition.raw.get("operationId") == "adminWaitForRequests" and isinstance(case.body, dict):
        case.body["timeout_ms"] = min(case.body.get("timeout_ms", 20), 20)
    case.call_and_validate()

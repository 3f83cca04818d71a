"""A client generated from spec/openapi.yaml calls every operation of the mock (#12).

openapi-python-client generates a Python client from the contract once per test session (into a temporary
folder, no post hooks), and each step below calls one operation through the generated functions, against
the app in process (httpx's WSGI transport: no socket), and reads every answer as the generated model.
What this proves that the schema checks do not: a client built from the spec by a common generator can
express every operation, what it sends is accepted (the mock's journal shows no contract violation), and
what the mock answers parses into the generated models with the values the fixtures hold (dates and
timestamps parsed, enums as enums), including the error bodies.

Covering a new operation: write a `step_...(api)` that calls it (and what shows its effect) through
`api.call`, and add it to STEPS under its operationId; `test_every_operation_of_the_spec_has_a_step`
fails until then.
"""

from __future__ import annotations

import datetime as dt
import importlib
import importlib.util
import json
import pkgutil
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import httpx
import pytest
import yaml

from mockserver.mock import create_app
from mockserver.resources import spec_path
from mockserver.settings import Settings
from tests.conftest import reset_everything

PACKAGE = "mockserver_generated_client"
BASE_URL = "http://mock.test"
UTC = dt.UTC


# ---------------------------------------------------------------- the generated client


@dataclass(frozen=True)
class Generated:
    package: ModuleType
    output: str  # what the generator printed (its warnings are on stderr)

    @property
    def models(self) -> ModuleType:
        return importlib.import_module(f"{PACKAGE}.models")

    @property
    def types(self) -> ModuleType:
        return importlib.import_module(f"{PACKAGE}.types")

    def operation(self, operation_id: str) -> ModuleType:
        """The generated module of `operation_id`: api/<tag>/<operationId in snake case>.py."""
        name = re.sub(r"(?<!^)(?=[A-Z])", "_", operation_id).lower()
        tags = [tag.name for tag in pkgutil.iter_modules(importlib.import_module(f"{PACKAGE}.api").__path__)]
        for tag in tags:
            if importlib.util.find_spec(f"{PACKAGE}.api.{tag}.{name}") is not None:
                return importlib.import_module(f"{PACKAGE}.api.{tag}.{name}")
        pytest.fail(f"the generated client has no module for {operation_id} ({name}.py) under api/{{{','.join(tags)}}}")


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Generated]:
    """The client generated from the spec the app serves, imported as PACKAGE; generation failing fails with its output."""
    folder = tmp_path_factory.mktemp("generated-client")
    config = folder / "config.json"
    config.write_text(json.dumps({"post_hooks": [], "package_name_override": PACKAGE, "project_name_override": PACKAGE}))
    command = [sys.executable, "-m", "openapi_python_client", "generate", "--path", str(spec_path()), "--config", str(config)]
    command += ["--meta", "none", "--output-path", str(folder / PACKAGE)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    output = f"$ {' '.join(command)}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    if done.returncode != 0 or not (folder / PACKAGE / "__init__.py").exists():
        pytest.fail(f"openapi-python-client could not generate a client from the spec (exit {done.returncode}):\n{output}", pytrace=False)
    sys.path.insert(0, str(folder))
    try:
        yield Generated(importlib.import_module(PACKAGE), output)
    finally:
        sys.path.remove(str(folder))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
            del sys.modules[name]


# ---------------------------------------------------------------- calling the app through it


class Api:
    """The generated client's functions and models, and clients with the default fixtures' credentials, on one app."""

    def __init__(self, generated: Generated, transport: httpx.BaseTransport):
        self.generated, self.transport, self.clients = generated, transport, []
        self.models = generated.models
        self.Unset = generated.types.Unset
        self.relay = self._client("demo-key", prefix="", header="xx-relay-api-key")
        self.relay_production = self._client("demo-key", prefix="", header="xx-relay-api-key", base="/platform/v3/api")
        self.relay_other_client = self._client("other-key", prefix="", header="xx-relay-api-key")
        self.egain = self._client("demo-user-token")  # a user with "Change Customer"
        self.egain_readonly = self._client("demo-readonly-token")  # a user who may only view
        self.egain_unknown = self._client("no-such-token")
        self.admin = httpx.Client(transport=self.transport, base_url=BASE_URL)  # the journal, to see what arrived

    def _client(self, token: str, prefix: str = "Bearer", header: str = "Authorization", base: str = ""):
        client = self.generated.package.AuthenticatedClient(
            base_url=BASE_URL + base,
            token=token,
            prefix=prefix,
            auth_header_name=header,
            raise_on_unexpected_status=True,  # an undocumented status raises
            httpx_args={"transport": self.transport},
        )
        self.clients.append(client)
        return client

    def call(self, operation_id: str, *args, client, expect: tuple[int, type | None], **kwargs) -> Any:
        """`operation_id`'s generated sync_detailed; asserts the status and that the answer parsed as the model `expect` names."""
        status, model = expect
        response = self.generated.operation(operation_id).sync_detailed(*args, client=client, **kwargs)
        shown = f"{operation_id} answered {int(response.status_code)} {response.content[:500]!r}"
        assert response.status_code == status, shown
        if model is None:
            assert response.parsed is None, shown
        else:
            assert isinstance(response.parsed, model), f"{shown}: parsed as {type(response.parsed).__name__}, not {model.__name__}"
        return response.parsed

    def close(self) -> None:
        for client in self.clients:
            client.get_httpx_client().close()
        self.admin.close()


@pytest.fixture(scope="module")
def mock():
    """The default fixtures, in memory; an answer the spec rejects raises. One for the module, reset by `api`."""
    return create_app(Settings(strict_responses=True))


@pytest.fixture
def api(generated: Generated, mock) -> Iterator[Api]:
    reset_everything(mock)  # each step starts from the fixtures, with an empty journal
    api = Api(generated, httpx.WSGITransport(app=mock))
    yield api
    api.close()


# ---------------------------------------------------------------- one step per operation


def step_move_customer(api: Api) -> None:
    m = api.models
    moved = api.call("moveCustomer", "demo", "BAK-11984-007", "product-group-test-2", client=api.relay, expect=(200, m.RelayMoveResult))
    assert moved.message == "Customer BAK-11984-007 moved to product-group-test-2 for client demo."
    record = api.call("retrieveCustomer", "demo", "BAK-11984-007", client=api.relay, expect=(200, m.RelayCustomerRecord))
    assert record.product_group_id == "product-group-test-2"
    again = api.call("moveCustomer", "demo", "BAK-11984-007", "product-group-test-2", client=api.relay, expect=(409, m.RelayError))
    assert again.message == "Customer BAK-11984-007 is already in product group product-group-test-2."
    # The production prefix (the path's second server) takes the same generated call.
    api.call("moveCustomer", "demo", "BAK-11984-007", "vip", client=api.relay_production, expect=(200, m.RelayMoveResult))
    record = api.call("retrieveCustomer", "demo", "BAK-11984-007", client=api.relay, expect=(200, m.RelayCustomerRecord))
    assert record.product_group_id == "vip"
    unknown = api.call("moveCustomer", "demo", "BAK-11984-007", "no-such-group", client=api.relay, expect=(404, m.RelayError))
    assert "no-such-group" in unknown.message


def step_retrieve_customer(api: Api) -> None:
    m = api.models
    jane = api.call("retrieveCustomer", "demo", "BAK-11984-007", client=api.relay, expect=(200, m.RelayCustomerRecord))
    assert (jane.ccid, jane.product_group_id, jane.first_name, jane.last_name) == ("BAK-11984-007", "default", "Jane", "Doe")
    assert jane.date_of_birth == dt.date(1980, 4, 2)
    assert (jane.ssn_last4, jane.gender) == ("1234", "F")
    [address] = jane.addresses
    assert isinstance(address, m.RelayAddress)
    assert (address.address1, address.city, address.state_province, address.postal_code, address.country) == (
        "100 Main St",
        "Springfield",
        "IL",
        "62701",
        "US",
    )
    [channel] = jane.notification_channels
    assert isinstance(channel, m.RelayNotificationChannel)
    assert channel.channel_type is m.RelayChannelType.SMS
    assert channel.consent_type is m.RelayConsentType.EXPRESS
    assert channel.channel_addr == "6105551212"

    john = api.call("retrieveCustomer", "demo", "BAK-11984-008", client=api.relay_production, expect=(200, m.RelayCustomerRecord))
    assert (john.first_name, john.last_name, john.date_of_birth) == ("John", "Roe", dt.date(1975, 9, 30))
    assert isinstance(john.addresses, api.Unset) and isinstance(john.notification_channels, api.Unset)

    refused = api.call("retrieveCustomer", "demo", "BAK-11984-008", client=api.relay_other_client, expect=(401, m.RelayError))
    assert refused.message == "The API token does not have authorization to the requested resource."
    missing = api.call("retrieveCustomer", "demo", "BAK-00000-000", client=api.relay, expect=(404, m.RelayError))
    assert "BAK-00000-000" in missing.message


def step_load_customer_record(api: Api) -> None:
    m = api.models
    customer = m.RelayCustomer(
        ccid="BAK-22000-001",
        first_name="Ada",
        last_name="Lovelace",
        date_of_birth=dt.date(1985, 12, 10),
        addresses=[m.RelayAddress(address1="12 St James's Square", city="London", country="GB")],
        notification_channels=[
            m.RelayNotificationChannel(
                channel_type=m.RelayChannelType.SMS,
                channel_addr="6105550142",
                consent_type=m.RelayConsentType.WRITTEN,
            )
        ],
    )
    body = m.RelayLoadRequest(product_group_id="default", customer=customer)
    created = api.call("loadCustomerRecord", "demo", client=api.relay, body=body, expect=(200, m.RelayLoadResult))
    assert (created.ccid, created.product_group_id, created.created) == ("BAK-22000-001", "default", True)
    assert created.message == "Customer BAK-22000-001 created in default for client demo."
    record = api.call("retrieveCustomer", "demo", "BAK-22000-001", client=api.relay, expect=(200, m.RelayCustomerRecord))
    assert record.to_dict() == {"product_group_id": "default", **customer.to_dict()}  # what was sent, field for field
    assert record.date_of_birth == dt.date(1985, 12, 10)

    customer.first_name = "Augusta Ada"  # load creates only: the same ccid again, in any group, is a 409
    again = api.call("loadCustomerRecord", "demo", client=api.relay, body=body, expect=(409, m.RelayError))
    assert "BAK-22000-001 already exists in product group default" in again.message and "onboard" in again.message
    record = api.call("retrieveCustomer", "demo", "BAK-22000-001", client=api.relay, expect=(200, m.RelayCustomerRecord))
    assert record.first_name == "Ada"

    elsewhere = m.RelayLoadRequest(product_group_id="vip", customer=m.RelayCustomer(ccid="BAK-11984-007"))
    conflict = api.call("loadCustomerRecord", "demo", client=api.relay, body=elsewhere, expect=(409, m.RelayError))
    assert "BAK-11984-007" in conflict.message and "move" in conflict.message


def step_onboard_customer(api: Api) -> None:
    m = api.models
    customer = m.RelayCustomer(
        ccid="BAK-22000-003",
        first_name="Roger",
        notification_channels=[m.RelayNotificationChannel(channel_type=m.RelayChannelType.SMS, channel_addr="6105551212")],
    )
    inputs = m.RelayOnboardRequestInputParameters.from_dict({"appointment_date": "2024-07-05"})
    body = m.RelayOnboardRequest(
        product_group_id="default",
        customer=customer,
        trigger_id="7028cb2e-d62d-4d5f-a285-91d25781ea86",
        launched_by=m.RelayOnboardRequestLaunchedBy(lb_name="user@company.com", lb_source="company-system"),
        input_parameters=inputs,
    )
    created = api.call("onboardCustomer", "demo", client=api.relay, body=body, expect=(200, m.RelayOnboardResult))
    assert (created.ccid, created.product_group_id, created.created) == ("BAK-22000-003", "default", True)

    # Again, without deactivating: the number sent joins the customer's, the fields not sent stay.
    body.customer = m.RelayCustomer(
        ccid="BAK-22000-003",
        last_name="Moore",
        notification_channels=[
            m.RelayNotificationChannel(
                channel_type=m.RelayChannelType.SMS, channel_addr="6105551213", consent_type=m.RelayConsentType.EXPRESS
            )
        ],
    )
    updated = api.call("onboardCustomer", "demo", client=api.relay_production, body=body, expect=(200, m.RelayOnboardResult))
    assert (updated.created, updated.message) == (False, "Customer BAK-22000-003 updated in default for client demo.")
    record = api.call("retrieveCustomer", "demo", "BAK-22000-003", client=api.relay, expect=(200, m.RelayCustomerRecord))
    assert (record.first_name, record.last_name) == ("Roger", "Moore")
    assert [c.channel_addr for c in record.notification_channels] == ["6105551212", "6105551213"]

    body.deactivate_previous_connections = True  # the numbers sent replace the customer's
    api.call("onboardCustomer", "demo", client=api.relay, body=body, expect=(200, m.RelayOnboardResult))
    record = api.call("retrieveCustomer", "demo", "BAK-22000-003", client=api.relay, expect=(200, m.RelayCustomerRecord))
    assert [(c.channel_addr, c.consent_type) for c in record.notification_channels] == [("6105551213", m.RelayConsentType.EXPRESS)]

    body.product_group_id = "vip"
    conflict = api.call("onboardCustomer", "demo", client=api.relay, body=body, expect=(409, m.RelayError))
    assert "use move" in conflict.message


def step_add_phone_number(api: Api) -> None:
    m = api.models
    body = m.RelayAddPhoneRequest(
        consent_type=m.RelayConsentType.WRITTEN,
        phone_type=m.RelayAddPhoneRequestPhoneType.MOBILE,
        country_code="1",
        client_source="custom client source",
    )
    added = api.call("addPhoneNumber", "demo", "BAK-11984-007", "6105551213", client=api.relay, body=body, expect=(200, m.RelayPhoneResult))
    assert added.message == "Phone number 6105551213 has been added to customer with ccid BAK-11984-007 for client demo."
    record = api.call("retrieveCustomer", "demo", "BAK-11984-007", client=api.relay, expect=(200, m.RelayCustomerRecord))
    assert [(c.channel_addr, c.consent_type) for c in record.notification_channels] == [
        ("6105551212", m.RelayConsentType.EXPRESS),
        ("6105551213", m.RelayConsentType.WRITTEN),
    ]
    again = api.call("addPhoneNumber", "demo", "BAK-11984-007", "6105551213", client=api.relay_production, expect=(409, m.RelayError))
    assert "already has phone number 6105551213" in again.message
    missing = api.call("addPhoneNumber", "demo", "BAK-00000-000", "6105551213", client=api.relay, expect=(404, m.RelayError))
    assert "BAK-00000-000" in missing.message


def step_remove_phone_number(api: Api) -> None:
    m = api.models
    body = m.RelayRemovePhoneRequest(client_source="custom client source")
    removed = api.call(
        "removePhoneNumber", "demo", "BAK-11984-007", "6105551212", client=api.relay, body=body, expect=(200, m.RelayPhoneResult)
    )
    assert removed.message == "Phone number 6105551212 has been removed from customer with ccid BAK-11984-007 for client demo"
    record = api.call("retrieveCustomer", "demo", "BAK-11984-007", client=api.relay, expect=(200, m.RelayCustomerRecord))
    assert isinstance(record.notification_channels, api.Unset)
    gone = api.call("removePhoneNumber", "demo", "BAK-11984-007", "6105551212", client=api.relay_production, expect=(404, m.RelayError))
    assert "6105551212 not found on customer BAK-11984-007" in gone.message


def step_update_consent_type(api: Api) -> None:
    m = api.models
    api.call("addPhoneNumber", "demo", "BAK-11984-008", "6105551212", client=api.relay, expect=(200, m.RelayPhoneResult))
    body = m.RelayConsentUpdateRequest(consent_type=m.RelayConsentType.STOP)
    first = api.call(
        "updateConsentType", "demo", "6105551212", m.RelayChannelType.SMS, client=api.relay, body=body, expect=(200, m.RelayConsentResult)
    )
    consent = first.consent
    assert isinstance(consent, m.RelayConsent) and isinstance(consent.created_at, dt.datetime) and consent.created_at == consent.updated_at
    assert (consent.client_id, consent.channel_type, consent.channel_addr, consent.consent_type) == (
        "demo",
        m.RelayChannelType.SMS,
        "6105551212",
        m.RelayConsentType.STOP,
    )
    for ccid in ("BAK-11984-007", "BAK-11984-008"):  # every customer carrying the number
        record = api.call("retrieveCustomer", "demo", ccid, client=api.relay, expect=(200, m.RelayCustomerRecord))
        assert [(c.channel_addr, c.consent_type) for c in record.notification_channels] == [("6105551212", m.RelayConsentType.STOP)]

    body.consent_type = m.RelayConsentType.WRITTEN
    again = api.call(
        "updateConsentType",
        "demo",
        "6105551212",
        m.RelayChannelType.SMS,
        client=api.relay_production,
        body=body,
        expect=(200, m.RelayConsentResult),
    )
    assert again.consent.created_at == consent.created_at and again.consent.updated_at > consent.updated_at
    unknown = api.call(
        "updateConsentType", "demo", "6105559999", m.RelayChannelType.SMS, client=api.relay, body=body, expect=(404, m.RelayError)
    )
    assert "6105559999" in unknown.message


def step_merge_customer(api: Api) -> None:
    """As a real client merges: get the target, send back its lastModified (a datetime the client serializes)."""
    m = api.models
    target = api.call("getCustomersByIds", "1005", client=api.egain, attribute="all", expect=(200, m.CustomerList)).customer[0]
    assert target.last_modified == dt.datetime(2021, 10, 25, 11, 29, 58, tzinfo=UTC)
    [contact] = target.contacts.contact
    body = m.MergeRequest(
        source_customer=m.MergeRequestSourceCustomer(id="1002"),
        target_customer=m.MergeRequestTargetCustomer(
            id=target.id,
            last_modified=target.last_modified,
            level=target.level,  # attributes not sent are reset to blank: keep the ones the target has
            contacts=m.MergeRequestTargetCustomerContacts(
                contact=[m.MergeContact(salutation=contact.salutation, first_name=contact.first_name, last_name=contact.last_name)]
            ),
        ),
    )

    forbidden = api.call("mergeCustomer", client=api.egain_readonly, body=body, expect=(403, m.EgainError))
    assert forbidden.code == "403-178" and forbidden.developer_message.endswith("action: Change Customer.")
    assert api.call("mergeCustomer", client=api.egain, body=body, expect=(204, None)) is None

    merged = api.call("getCustomersByIds", "1005", client=api.egain, attribute="level", expect=(200, m.CustomerList)).customer[0]
    assert isinstance(merged.last_modified, dt.datetime) and merged.last_modified > target.last_modified
    assert (merged.customer_name, merged.level) == ("John Smith", "Gold")
    [after] = merged.contacts.contact
    assert (after.salutation, after.first_name, after.last_name) == ("Mr.", "John", "Smith")
    assert {e.email_address for e in after.email} == {"john.smith@example.com", "jack.source@example.com"}
    assert [(p.phone_no, p.type_.value) for p in after.phone] == [("5550102", "mobile")]
    gone = api.call("getCustomersByIds", "1002", client=api.egain, expect=(404, m.EgainError))
    assert gone.code == "404-101"

    again = api.call("mergeCustomer", client=api.egain, body=body, expect=(400, m.EgainError))
    assert again.code == "400-107" and again.developer_message == "Source customer 1002 does not exist."
    body.source_customer = m.MergeRequestSourceCustomer(id="1003")  # the target's old lastModified: stale now
    stale = api.call("mergeCustomer", client=api.egain, body=body, expect=(400, m.EgainError))
    assert stale.code == "400-111"


def step_get_customers_by_ids(api: Api) -> None:
    m = api.models
    found = api.call(
        "getCustomersByIds",
        "1010,1005,9999",
        client=api.egain_readonly,
        attribute="level,industry",
        sort=m.GetCustomersByIdsSort.CUSTOMERNAME,
        order=m.GetCustomersByIdsOrder.DESC,
        expect=(200, m.CustomerList),
    )
    assert [c.id for c in found.customer] == ["1005", "1010"]  # 9999 left out; by name, descending
    john, acme = found.customer
    assert isinstance(john, m.Customer) and isinstance(john.type_, m.CustomerType)
    assert (john.customer_name, john.type_.value, john.type_.display_value) == ("John Smith", m.CustomerTypeValue.INDIVIDUAL, "Individual")
    assert john.last_modified == dt.datetime(2021, 10, 25, 11, 29, 58, tzinfo=UTC)
    assert (john.department.name, john.level) == ("Service", "Gold")
    [contact] = john.contacts.contact
    assert isinstance(contact, m.Contact) and (contact.id, contact.system_created, contact.first_name) == ("2005", False, "John")
    [email] = contact.email
    assert isinstance(email, m.Email) and (email.id, email.email_address) == ("3005", "john.smith@example.com")
    assert email.last_modified == dt.datetime(2021, 10, 25, 11, 29, 58, tzinfo=UTC)
    assert (acme.customer_name, acme.type_.value, acme.industry) == ("Acme Corporation", m.CustomerTypeValue.CORPORATE, "Manufacturing")
    assert [(c.id, c.system_created) for c in acme.contacts.contact] == [("2010", True), ("2011", False)]
    assert acme.contacts.contact[1].phone[0].phone_no == "5550111"

    summary = api.call("getCustomersByIds", "1005", client=api.egain, expect=(200, m.CustomerList))
    [only] = summary.customer
    assert (only.id, only.customer_name) == ("1005", "John Smith")
    assert isinstance(only.level, api.Unset) and isinstance(only.custom_attributes, api.Unset)  # not summary attributes

    more = api.call(
        "getCustomersByIds",
        "1005",
        client=api.egain,
        attribute="preferredAgent,created,createdBy,custom.loyaltyId",
        expect=(200, m.CustomerList),
    )
    [john] = more.customer
    assert isinstance(john.preferred_agent, m.AgentRef) and (john.preferred_agent.id, john.preferred_agent.user_name) == (
        "1101",
        "jane.agent",
    )
    assert john.created == dt.datetime(2020, 3, 14, 15, 9, 26, tzinfo=UTC) and john.created_by.user_name == "sa"
    assert [(a.name, a.value) for a in john.custom_attributes.custom_attribute] == [("loyaltyId", "LY-1005")]

    none = api.call("getCustomersByIds", "9999", client=api.egain, expect=(404, m.EgainError))
    assert (none.code, none.developer_message) == ("404-101", "The following IDs provided in the URI path were not found: 9999")
    unknown = api.call("getCustomersByIds", "1005", client=api.egain_unknown, expect=(401, m.EgainError))
    assert unknown.code == "401-101"


# operationId -> the step that calls it through the generated client (the table the spec's operations are checked against)
STEPS: dict[str, Callable[[Api], None]] = {
    "moveCustomer": step_move_customer,
    "retrieveCustomer": step_retrieve_customer,
    "loadCustomerRecord": step_load_customer_record,
    "onboardCustomer": step_onboard_customer,
    "addPhoneNumber": step_add_phone_number,
    "removePhoneNumber": step_remove_phone_number,
    "updateConsentType": step_update_consent_type,
    "mergeCustomer": step_merge_customer,
    "getCustomersByIds": step_get_customers_by_ids,
}


def spec_operation_ids() -> set[str]:
    document = yaml.safe_load(spec_path().read_text(encoding="utf-8"))
    return {
        operation["operationId"]
        for item in document["paths"].values()
        for method, operation in item.items()
        if method in {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
    }


# ---------------------------------------------------------------- the tests


def test_every_operation_of_the_spec_has_a_step():
    in_spec = spec_operation_ids()
    assert set(STEPS) == in_spec, (
        f"operations without a generated-client step: {sorted(in_spec - set(STEPS))}; "
        f"steps for operations not in the spec: {sorted(set(STEPS) - in_spec)} (see STEPS in {__name__})"
    )


@pytest.mark.parametrize("operation_id", list(STEPS))
def test_the_generated_client_calls(operation_id: str, api: Api):
    STEPS[operation_id](api)
    journal = api.admin.get("/__admin/requests", params={"limit": 10000}).json()["requests"]
    sent = [entry for entry in journal if not entry["admin"]]
    assert operation_id in {entry["operationId"] for entry in sent}, f"the step for {operation_id} never called it: {sent}"
    invalid = [(e["method"], e["path"], e["status"], e["violations"]) for e in sent if e["violations"]]
    assert not invalid, f"the generated client sent requests the spec rejects: {invalid}"


# The generator cannot model XML bodies (it skips them and says so); any other warning means part of the
# spec is missing or degraded in every client generated from it.
KNOWN_WARNING = "Unsupported content type application/xml"


def test_the_generator_models_everything_but_xml_bodies(generated: Generated):
    unexplained = unexplained_warnings(generated.output)
    assert not unexplained, f"openapi-python-client warned about the spec: {unexplained}\n{generated.output}"


def unexplained_warnings(output: str) -> list[str]:
    """The generator's warning lines (stderr: per warning a header, its detail, the JSON concerned) but the known ones."""
    lines, in_data = [], False
    for line in output.partition("--- stderr\n")[2].splitlines():
        in_data = in_data or line == "{"
        if not in_data and line.strip() and not line.startswith(("Warning(s) encountered", "If you believe this was a mistake")):
            lines.append(line.strip())
        in_data = in_data and line != "}"
    unexplained, at = [], 0
    while at < len(lines):
        if lines[at].startswith("WARNING parsing ") and lines[at + 1 : at + 2] == [KNOWN_WARNING]:
            at += 2
        else:
            unexplained.append(lines[at])
            at += 1
    return unexplained

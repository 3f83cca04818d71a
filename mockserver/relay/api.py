"""The Relay family's HTTP side: API-key authentication and one handler per operationId."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mockserver.contract.compiled import JSON, Operation, RawRequest
from mockserver.family import Call, Credential, Family, Reply
from mockserver.relay import domain, errors
from mockserver.relay.section import SECTION, consent_key, customer_key
from mockserver.state.changes import Key, Write
from mockserver.state.model import State

API_KEY_HEADER = "xx-relay-api-key"


def _for_client(command: Callable[..., Any]) -> Callable[..., Any]:
    """Run a domain command on the customers of the client named by id, resolved inside the store's lock."""

    def run(state: State, client_id: str, *args: Any) -> Any:
        return command(state[SECTION.name].books[client_id], *args)

    return run


def authenticate(config: domain.RelayConfig, operation: Operation, raw: RawRequest, path_values: dict[str, str]) -> None:
    domain.authenticate(config, path_values.get("client_id", ""), raw.headers.get(API_KEY_HEADER))


def negotiate(raw: RawRequest) -> str:
    return JSON  # Relay answers JSON only


_move = Write(_for_client(domain.move_customer), lambda client_id, ccid, group: [customer_key(client_id, ccid)])
_load = Write(_for_client(domain.load_customer), lambda client_id, group, customer: [customer_key(client_id, customer["ccid"])])
_onboard = Write(
    _for_client(domain.onboard_customer), lambda client_id, group, customer, replace: [customer_key(client_id, customer["ccid"])]
)
_add_phone = Write(_for_client(domain.add_phone), lambda client_id, ccid, phone, consent: [customer_key(client_id, ccid)])
_remove_phone = Write(_for_client(domain.remove_phone), lambda client_id, ccid, phone: [customer_key(client_id, ccid)])
_retrieve = _for_client(domain.retrieve_customer)


def _consent(state: State, client_id: str, channel_addr: str, channel_type: str, consent_type: str) -> dict:
    """The consent update, stamped by the session's clock (its timestamps are state, kept and logged)."""
    return domain.update_consent(
        state[SECTION.name].books[client_id], channel_addr, channel_type, consent_type, state.sources.clock.stamp_after
    )


def _consent_touches(state: State, client_id: str, channel_addr: str, *_: Any) -> list[Key]:
    """The consent record and every customer carrying the number: known from the phone index only."""
    carriers = sorted(state[SECTION.name].books[client_id].phone_ccids.get(channel_addr, ()))
    return [consent_key(client_id, channel_addr), *(customer_key(client_id, ccid) for ccid in carriers)]


_update_consent = Write(_consent, _consent_touches, touches_read_state=True)


def moveCustomer(call: Call) -> Reply:  # noqa: N802 - named after its operationId
    path = call.request.path
    message = call.store.run(_move, path["client_id"], path["ccid"], path["product_group_id"])
    return Reply(200, {"message": message})


def loadCustomerRecord(call: Call) -> Reply:  # noqa: N802
    client_id, body = call.request.path["client_id"], call.request.body
    ccid, group = body["customer"]["ccid"], body["product_group_id"]
    call.store.run(_load, client_id, group, body["customer"])
    message = f"Customer {ccid} created in {group} for client {client_id}."
    return Reply(200, {"message": message, "ccid": ccid, "product_group_id": group, "created": True})


def onboardCustomer(call: Call) -> Reply:  # noqa: N802
    """Create or update; trigger_id, launched_by and input_parameters are checked by the contract and go no further (no journeys)."""
    client_id, body = call.request.path["client_id"], call.request.body
    ccid, group = body["customer"]["ccid"], body["product_group_id"]
    replace = body.get("deactivate_previous_connections", False)
    created = call.store.run(_onboard, client_id, group, body["customer"], replace)
    message = f"Customer {ccid} {'created' if created else 'updated'} in {group} for client {client_id}."
    return Reply(200, {"message": message, "ccid": ccid, "product_group_id": group, "created": created})


def addPhoneNumber(call: Call) -> Reply:  # noqa: N802
    """phone_type, country_code and client_source are checked by the contract; the record has no place for them."""
    path, body = call.request.path, call.request.body or {}
    message = call.store.run(_add_phone, path["client_id"], path["ccid"], path["phone_number"], body.get("consent_type"))
    return Reply(200, {"message": message})


def removePhoneNumber(call: Call) -> Reply:  # noqa: N802
    path = call.request.path
    message = call.store.run(_remove_phone, path["client_id"], path["ccid"], path["phone_number"])
    return Reply(200, {"message": message})


def updateConsentType(call: Call) -> Reply:  # noqa: N802
    path = call.request.path
    args = path["client_id"], path["channel_addr"], path["channel_type"], call.request.body["consent_type"]
    return Reply(200, {"consent": call.store.run(_update_consent, *args)})


def retrieveCustomer(call: Call) -> Reply:  # noqa: N802
    path = call.request.path
    return Reply(200, call.store.run(_retrieve, path["client_id"], path["ccid"]))


FAMILY = Family(
    name="relay",
    authenticate=authenticate,
    negotiate=negotiate,
    handlers={
        "moveCustomer": moveCustomer,
        "loadCustomerRecord": loadCustomerRecord,
        "onboardCustomer": onboardCustomer,
        "addPhoneNumber": addPhoneNumber,
        "removePhoneNumber": removePhoneNumber,
        "updateConsentType": updateConsentType,
        "retrieveCustomer": retrieveCustomer,
    },
    error_body=errors.error_body,
    contract_error=errors.contract_error,
    section=SECTION,
    credentials=(Credential(API_KEY_HEADER),),
    demo_schemes={"relayApiKey": "demo-key"},
    demo_headers={API_KEY_HEADER: "demo-key"},
    banner=("  Relay CDM   {base}/cdm/client/{{client_id}}/...  (also {base}/platform/v3/api/cdm/...)",),
    banner_demo=("    Relay  xx-relay-api-key: demo-key (client demo) or other-key (client other)",),
)

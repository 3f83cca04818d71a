"""A deliberately broken imitation of the two APIs, for testing `mockserver contract` and `mockserver proxy`.

Routing and request validation are the mock's own compiled contract, so
everything a client can get wrong is rejected as documented; the planted bugs
are only in the answers (and in one skipped check). Each one breaks the spec in
its own way and is named in PLANTED, with the schemathesis check that catches it:

* moveCustomer answers 201, a status the spec does not document;
* retrieveCustomer answers a record without `product_group_id` and with a
  numeric `date_of_birth`;
* getCustomersByIds never looks at the Authorization header;
* mergeCustomer answers its 400 in text/plain, a content type the spec does
  not document;
* loadCustomerRecord never validates the record it is sent.

The other operations answer as documented.
"""

from __future__ import annotations

import json

from flask import Flask, Response, request

from mockserver.contract.compiled import Contract
from mockserver.contract.errors import MethodNotAllowed, RequestInvalid, RouteNotFound
from mockserver.contract.spec import load_document
from mockserver.http.wsgi import raw_request

PLANTED = {
    "moveCustomer": "status_code_conformance",
    "retrieveCustomer": "response_schema_conformance",
    "getCustomersByIds": "ignored_auth",
    "mergeCustomer": "content_type_conformance",
    "loadCustomerRecord": "negative_data_rejection",
}

CONTRACT = Contract(load_document())
RELAY_KEYS = {"demo-key": "demo"}
EGAIN_TOKENS = {"Bearer demo-user-token", "Bearer demo-app-token", "Bearer demo-readonly-token"}


def create_broken_app() -> Flask:
    app = Flask(__name__)

    @app.before_request
    def everything() -> Response:
        raw = raw_request(request, 1 << 20)
        try:
            operation, path = CONTRACT.match(raw.method, raw.path)
        except RouteNotFound:
            return _json(404, {"message": "No such route."})
        except MethodNotAllowed as exc:
            return _json(405, {"message": "Method not allowed."}, {"Allow": ", ".join(exc.allowed)})
        relay = operation.family == "relay"
        if relay and RELAY_KEYS.get(raw.headers.get("xx-relay-api-key", "")) != path.get("client_id"):
            return _json(401, {"message": "The API token does not have authorization to the requested resource."})
        if operation.operation_id != "getCustomersByIds" and not relay and raw.headers.get("authorization") not in EGAIN_TOKENS:
            # BUG (getCustomersByIds): only the other eGain operation checks the token.
            return _json(401, {"code": "401-101", "developerMessage": "Authentication is required."})
        accept = raw.headers.get("accept", "*/*")
        if not relay and not any(kind in accept for kind in ("*/*", "application/json", "application/*", "application/xml")):
            return _json(406, {"code": "406-101", "developerMessage": "Use application/json or application/xml."})
        if operation.operation_id != "loadCustomerRecord":  # BUG (loadCustomerRecord): the record is never validated.
            try:
                operation.validate(raw, path)
            except RequestInvalid as exc:
                body = {"message": exc.message} if relay else {"code": "400-102", "developerMessage": exc.message}
                return _json(400, body)
        return HANDLERS[operation.operation_id](path, accept)

    return app


def move_customer(path: dict, accept: str) -> Response:
    # BUG: 201 is not documented for moveCustomer (200 is).
    return _json(201, {"message": f"Customer moved to {path['product_group_id']}."[:100]})


def load_customer_record(path: dict, accept: str) -> Response:
    return _json(200, {"message": "Customer loaded.", "ccid": "BAK-00000-001", "product_group_id": "default", "created": True})


def onboard_customer(path: dict, accept: str) -> Response:
    return _json(200, {"message": "Customer onboarded.", "ccid": "BAK-00000-001", "product_group_id": "default", "created": False})


def change_phone(path: dict, accept: str) -> Response:
    return _json(200, {"message": f"Phone number {path['phone_number']} has been changed."})


def update_consent_type(path: dict, accept: str) -> Response:
    stamp = "2024-07-05T22:16:12.934Z"
    consent = {"client_id": path["client_id"], "created_at": stamp, "updated_at": stamp, "channel_type": "sms"}
    return _json(200, {"consent": {**consent, "channel_addr": path["channel_addr"], "consent_type": "written"}})


def retrieve_customer(path: dict, accept: str) -> Response:
    # BUG: product_group_id is required, and date_of_birth is a date string.
    return _json(200, {"ccid": path["ccid"], "first_name": "Jane", "date_of_birth": 19800402})


def get_customers_by_ids(path: dict, accept: str) -> Response:
    first = path["ids"].split(",")[0]
    if "application/xml" in accept and "json" not in accept:
        body = f'<customers><customer id="{first}"><customerName>Jane Doe</customerName></customer></customers>'
        return Response(body, 200, {"Content-Type": "application/xml"})
    return _json(200, {"customer": [{"id": first, "customerName": "Jane Doe"}]})


def merge_customer(path: dict, accept: str) -> Response:
    # BUG: the spec documents the 400 in application/json or application/xml only.
    return Response("400-107 Source customer does not exist.", 400, {"Content-Type": "text/plain"})


HANDLERS = {
    "moveCustomer": move_customer,
    "loadCustomerRecord": load_customer_record,
    "onboardCustomer": onboard_customer,
    "addPhoneNumber": change_phone,
    "removePhoneNumber": change_phone,
    "updateConsentType": update_consent_type,
    "retrieveCustomer": retrieve_customer,
    "getCustomersByIds": get_customers_by_ids,
    "mergeCustomer": merge_customer,
}


def _json(status: int, payload: dict, headers: dict | None = None) -> Response:
    return Response(json.dumps(payload), status, {"Content-Type": "application/json", **(headers or {})})

"""Credential boundaries through a real server process (#5).

Every operation (moveCustomer, loadCustomerRecord, onboardCustomer,
addPhoneNumber, removePhoneNumber, updateConsentType, retrieveCustomer,
mergeCustomer, getCustomersByIds) is sent with no credentials, wrong
credentials, the other Relay client's key and an under-privileged eGain
token. Each is refused with the documented 401/403 body, byte for byte the
same whatever the parameters (no oracle for which ccid or id exists), and
none of them changes state or carries the other client's data: state is read
back with good credentials after every attempt.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from mockserver.testing.harness import running_server
from tests.e2e import REPO
from tests.e2e.wire import EGAIN, SEED_MERGE, call, exchange, request_bytes

pytestmark = pytest.mark.e2e

RELAY_401 = {"message": "The API token does not have authorization to the requested resource."}
EGAIN_401_UNKNOWN = {"code": "401-101", "developerMessage": "Invalid or expired 'Authorization' header provided. New login is required."}
EGAIN_401_MISSING = {"code": "401-104", "developerMessage": "Invalid or missing 'authorization' header value."}
PREFIXES = ("", "/platform/v3/api")
NOVIEW_TOKEN = "demo-noview-token"  # a user with "Change Customer" only: under-privileged for gets
FIXTURES = yaml.safe_load((REPO / "fixtures" / "default.yaml").read_text())
CLIENTS = {c["client_id"]: c for c in FIXTURES["relay"]["clients"]}
EGAIN_IDS = [c["id"] for c in FIXTURES["egain"]["customers"]]
PROBE_CCID = "MALLORY-001"  # a ccid the attempts try to create in either client


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Iterator[str]:
    """One server on the default fixtures plus one more eGain user lacking "View Agent Console"."""
    data = yaml.safe_load((REPO / "fixtures" / "default.yaml").read_text())
    data["egain"]["actors"].append({"token": NOVIEW_TOKEN, "name": "noview.user", "kind": "user", "permissions": ["Change Customer"]})
    path = tmp_path_factory.mktemp("credentials") / "fixtures.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with running_server("--fixtures", str(path)) as url:
        yield url


@pytest.fixture(scope="module")
def baseline(base) -> dict:
    return snapshot(base)


def snapshot(base: str) -> dict:
    """The whole observable state, read with good credentials."""
    state: dict[str, Any] = {}
    for client_id, client in CLIENTS.items():
        key = {"xx-relay-api-key": client["api_keys"][0]}
        for ccid in [c["ccid"] for c in client["customers"]] + [PROBE_CCID]:
            answer = call(base, "GET", f"/cdm/client/{client_id}/customer/{ccid}", key)
            state[f"relay {client_id} {ccid}"] = (answer.status, answer.json())
    answer = call(base, "GET", f"{EGAIN}/{','.join(EGAIN_IDS)}", {"Authorization": "Bearer demo-app-token"})
    state["egain"] = (answer.status, answer.json())
    return state


def strings_of(value: Any) -> set[str]:
    """Every string (and number written as a string) in a fixture record, for leak detection."""
    if isinstance(value, dict):
        return set().union(*(strings_of(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(strings_of(v) for v in value)) if value else set()
    return {str(value)} if isinstance(value, str) else set()


def secrets_of(client_id: str) -> set[str]:
    """What only `client_id` may read: its customers' values and its group names, minus what all clients share."""
    others = set().union(*(strings_of(c.get("customers", [])) | set(c["product_groups"]) for k, c in CLIENTS.items() if k != client_id))
    mine = strings_of(CLIENTS[client_id].get("customers", [])) | set(CLIENTS[client_id]["product_groups"])
    return {s for s in mine - others if len(s) >= 3}


EGAIN_SECRETS = {s for s in strings_of(FIXTURES["egain"]["customers"]) if len(s) >= 4 and not s.isdigit()}


# ---------------------------------------------------------------- the attempts


def relay_operations(client_id: str) -> list[tuple[str, str, str, Any]]:
    """(name, method, path tail, body) for every Relay operation on `client_id`, valid and invalid."""
    client = CLIENTS[client_id]
    ccid = client["customers"][0]["ccid"]
    current = client["customers"][0]["product_group_id"]
    elsewhere = next(g for g in client["product_groups"] if g != current)
    return [
        ("moveCustomer", "PUT", f"/cdm/client/{client_id}/customer/{ccid}/move/{elsewhere}", None),
        ("moveCustomer unknown ccid", "PUT", f"/cdm/client/{client_id}/customer/NO-SUCH-CCID/move/{elsewhere}", None),
        ("moveCustomer bad ccid", "PUT", f"/cdm/client/{client_id}/customer/{'x' * 101}/move/{elsewhere}", None),
        (
            "loadCustomerRecord new",
            "POST",
            f"/cdm/client/{client_id}/load-customer-record",
            {"product_group_id": "default", "customer": {"ccid": PROBE_CCID, "first_name": "Mallory"}},
        ),
        (
            "loadCustomerRecord existing ccid",
            "POST",
            f"/cdm/client/{client_id}/load-customer-record",
            {"product_group_id": current, "customer": {"ccid": ccid, "first_name": "Mallory"}},
        ),
        ("loadCustomerRecord invalid", "POST", f"/cdm/client/{client_id}/load-customer-record", {"customer": {"ccid": ""}}),
        (
            "onboardCustomer existing ccid",
            "POST",
            f"/cdm/client/{client_id}/onboard",
            {"product_group_id": current, "customer": {"ccid": ccid, "first_name": "Mallory"}, "deactivate_previous_connections": True},
        ),
        ("onboardCustomer invalid", "POST", f"/cdm/client/{client_id}/onboard", {"customer": {"ccid": ""}}),
        ("addPhoneNumber", "PUT", f"/cdm/client/{client_id}/customer/{ccid}/add_phone/6105550199", {"consent_type": "written"}),
        ("addPhoneNumber invalid", "PUT", f"/cdm/client/{client_id}/customer/{ccid}/add_phone/not-a-phone", None),
        ("removePhoneNumber unknown number", "PUT", f"/cdm/client/{client_id}/customer/{ccid}/remove_phone/6105550199", None),
        (
            "updateConsentType",
            "PUT",
            f"/messaging/client/{client_id}/consent/channel_addr/6105551212/channel_type/sms",
            {"consent_type": "stop"},
        ),
        ("updateConsentType invalid", "PUT", f"/messaging/client/{client_id}/consent/channel_addr/x/channel_type/email", {}),
        ("retrieveCustomer", "GET", f"/cdm/client/{client_id}/customer/{ccid}", None),
        ("retrieveCustomer unknown ccid", "GET", f"/cdm/client/{client_id}/customer/NO-SUCH-CCID", None),
    ]


RELAY_CREDENTIALS = {
    # name -> (headers, query) for a request on client `demo`; "other" swaps in as the victim below
    "no key": ({}, ""),
    "empty key": ({"xx-relay-api-key": ""}, ""),
    "wrong key": ({"xx-relay-api-key": "wrong-key"}, ""),
    "key in other case": ({"xx-relay-api-key": "DEMO-KEY"}, ""),
    "key as bearer token": ({"Authorization": "Bearer demo-key"}, ""),
    "key in query": ({}, "?xx-relay-api-key=demo-key"),
    "eGain token": ({"Authorization": "Bearer demo-app-token"}, ""),
}
RELAY_CASES = [
    (victim, attacker_name, headers, query)
    for victim in ("demo", "other")
    for attacker_name, (headers, query) in {
        **{name: (h, q.replace("demo-key", CLIENTS[victim]["api_keys"][0])) for name, (h, q) in RELAY_CREDENTIALS.items()},
        "the other client's key": ({"xx-relay-api-key": CLIENTS["other" if victim == "demo" else "demo"]["api_keys"][0]}, ""),
        "the other client's key and Prefer: code=200": (
            {"xx-relay-api-key": CLIENTS["other" if victim == "demo" else "demo"]["api_keys"][0], "Prefer": "code=200"},
            "",
        ),
    }.items()
]


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("victim, credential, headers, query", RELAY_CASES, ids=[f"{v}-{c}" for v, c, _, _ in RELAY_CASES])
def test_relay_operations_without_the_clients_key_are_refused_alike(base, baseline, prefix, victim, credential, headers, query):
    answers = []
    for name, method, tail, body in relay_operations(victim):
        answer = call(base, method, prefix + tail + query, headers, body)
        answers.append((name, answer))
        assert answer.status == 401, f"{name} with {credential}: {answer.describe()}"
        assert answer.json() == RELAY_401, f"{name} with {credential}: {answer.describe()}"
        leaked = {s for s in secrets_of(victim) if s in answer.body.decode()}
        assert not leaked, f"{name} with {credential} leaked {leaked}"
    # No oracle: whether the ccid exists or the body is valid, the answer is the same bytes.
    assert len({(a.status, a.body) for _, a in answers}) == 1, [(n, a.describe()) for n, a in answers]
    assert snapshot(base) == baseline


def test_a_client_sees_only_its_own_namespace(base, baseline):
    """With its own valid key, `other` cannot reach demo's customers by ccid, and writing the same ccid stays in its namespace."""
    other = {"xx-relay-api-key": "other-key"}
    demo_ccids = [c["ccid"] for c in CLIENTS["demo"]["customers"]]
    try:
        for ccid in demo_ccids:
            for answer in (
                call(base, "GET", f"/cdm/client/other/customer/{ccid}", other),
                call(base, "PUT", f"/cdm/client/other/customer/{ccid}/move/gold", other),
            ):
                assert answer.status == 404 and answer.json() == {"message": f"Customer {ccid} not found for client other."}, (
                    answer.describe()
                )
        # `other` may load a record with the same ccid: it is its own, demo's record is untouched.
        twin = demo_ccids[0]
        loaded = call(
            base,
            "POST",
            "/cdm/client/other/load-customer-record",
            other,
            {"product_group_id": "gold", "customer": {"ccid": twin, "first_name": "Mallory"}},
        )
        assert loaded.status == 200 and loaded.json()["created"] is True, loaded.describe()
        mine = call(base, "GET", f"/cdm/client/other/customer/{twin}", other)
        assert mine.json() == {"ccid": twin, "product_group_id": "gold", "first_name": "Mallory"}
        leaked = {s for s in secrets_of("demo") if s in mine.body.decode() and s != twin}
        assert not leaked, leaked
        assert (
            call(base, "GET", f"/cdm/client/demo/customer/{twin}", {"xx-relay-api-key": "demo-key"}).json()
            == baseline[f"relay demo {twin}"][1]
        )
    finally:
        assert call(base, "POST", "/__admin/reset").status == 200
    assert snapshot(base) == baseline


@pytest.mark.parametrize(
    "path",
    [
        "/cdm/client/DEMO/customer/BAK-11984-007",
        "/cdm/client/demo%20/customer/BAK-11984-007",
        "/cdm/client/demo%00/customer/BAK-11984-007",
        "/cdm/client/other/../demo/customer/BAK-11984-007",
        "/cdm/client/other%2F..%2Fdemo/customer/BAK-11984-007",
        "/cdm/client/other/customer/..%2F..%2Fdemo%2Fcustomer%2FBAK-11984-007",
        "/cdm/client/other/customer/../../demo/customer/BAK-11984-007",
        "/cdm/client/demo/customer/BAK-11984-007/../../../other/customer/OTH-0001",
        "/platform/v3/api/../../../cdm/client/demo/customer/BAK-11984-007",
    ],
)
@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_path_tricks_do_not_open_another_client(base, baseline, path, method):
    """The other client's key on paths that spell or reach `demo` indirectly: a 401 or a 404, never demo's data."""
    target = path + ("/move/vip" if method == "PUT" and not path.endswith("OTH-0001") else "")
    answer = exchange(base, request_bytes(method, target, ["xx-relay-api-key: other-key", "Content-Length: 0"]))
    assert answer.status in (400, 401, 404), answer.describe()
    assert answer.status != 401 or answer.json() == RELAY_401
    leaked = {s for s in secrets_of("demo") if s in answer.body.decode() and s not in target}
    assert not leaked, leaked
    assert snapshot(base) == baseline


# ---------------------------------------------------------------- eGain


def egain_operations(operation: str) -> list[tuple[str, str, str, Any, dict]]:
    """(name, method, path, body, extra headers) for an eGain operation, valid and invalid."""
    if operation == "mergeCustomer":
        xml = (
            '<merge><sourceCustomer id="1003"/><targetCustomer id="1005"><lastModified>2021-10-25T11:29:58.000Z</lastModified>'
            "<contacts><contact><firstName>John</firstName></contact></contacts></targetCustomer></merge>"
        )
        return [
            ("merge seed example", "PUT", f"{EGAIN}/merge", SEED_MERGE, {}),
            ("merge in XML", "PUT", f"{EGAIN}/merge", xml, {"Content-Type": "application/xml"}),
            ("merge unknown source", "PUT", f"{EGAIN}/merge", {**SEED_MERGE, "sourceCustomer": {"id": "999999"}}, {}),
            ("merge invalid body", "PUT", f"{EGAIN}/merge", {"sourceCustomer": {}}, {}),
            ("merge no body", "PUT", f"{EGAIN}/merge", None, {}),
        ]
    return [
        ("get all", "GET", f"{EGAIN}/{','.join(EGAIN_IDS)}", None, {}),
        ("get one in XML", "GET", f"{EGAIN}/1010", None, {"Accept": "application/xml"}),
        ("get unknown id", "GET", f"{EGAIN}/999999", None, {}),
        ("get invalid id", "GET", f"{EGAIN}/abc", None, {}),
        ("get unknown query parameter", "GET", f"{EGAIN}/1005?foo=bar", None, {}),
    ]


EGAIN_CREDENTIALS = {
    "no token": {},
    "empty bearer": {"Authorization": "Bearer "},
    "wrong token": {"Authorization": "Bearer wrong-token"},
    "token without scheme": {"Authorization": "demo-user-token"},
    "basic auth": {"Authorization": "Basic ZGVtby11c2VyLXRva2VuOg=="},
    "token in other case": {"Authorization": "Bearer DEMO-USER-TOKEN"},
    "token with a suffix": {"Authorization": "Bearer demo-user-token-x"},
    "Relay key as bearer": {"Authorization": "Bearer demo-key"},
    "Relay key header": {"xx-relay-api-key": "demo-key"},
    "admin-style query token": {},  # token in the query string instead (below)
    "wrong token and Prefer": {"Authorization": "Bearer wrong-token", "Prefer": "code=200"},
}


@pytest.mark.parametrize("operation", ["mergeCustomer", "getCustomersByIds"])
@pytest.mark.parametrize("credential", list(EGAIN_CREDENTIALS))
def test_egain_operations_without_a_valid_token_are_refused_alike(base, baseline, operation, credential):
    query = "access_token=demo-user-token" if credential == "admin-style query token" else None
    headers = EGAIN_CREDENTIALS[credential]
    bearer = headers.get("Authorization", "").startswith("Bearer ") and headers["Authorization"].strip() != "Bearer"
    assert_egain_refused_alike(base, operation, headers, 401, EGAIN_401_UNKNOWN if bearer else EGAIN_401_MISSING, query)
    assert snapshot(base) == baseline


@pytest.mark.parametrize(
    "operation, token, user, permission",
    [
        ("mergeCustomer", "demo-readonly-token", "readonly.user", "Change Customer"),
        ("getCustomersByIds", NOVIEW_TOKEN, "noview.user", "View Agent Console"),
    ],
)
@pytest.mark.parametrize("prefer", [None, "code=204", "code=200"])
def test_under_privileged_users_are_forbidden_alike(base, baseline, operation, token, user, permission, prefer):
    headers = {"Authorization": f"Bearer {token}", **({"Prefer": prefer} if prefer else {})}
    expected = {
        "code": "403-178",
        "developerMessage": f"User is not allowed to perform the following action: {permission}.",
        "details": [{"key": "action", "value": permission}],
    }
    assert_egain_refused_alike(base, operation, headers, 403, expected)
    assert snapshot(base) == baseline


def assert_egain_refused_alike(base, operation, headers, status, expected, query=None):
    """Every variant of the operation gets the same documented refusal (XML ones in XML) and leaks no secret."""
    answers = []
    for name, method, path, body, extra in egain_operations(operation):
        if query:
            path += ("&" if "?" in path else "?") + query
        answer = call(base, method, path, {**extra, **headers}, body)
        answers.append((name, answer))
        assert answer.status == status, f"{name} with {headers}: {answer.describe()}"
        if answer.headers.get("content-type", "").startswith("application/xml"):
            assert f"<code>{expected['code']}</code>".encode() in answer.body, answer.describe()
        else:
            assert answer.json() == expected, f"{name} with {headers}: {answer.describe()}"
        leaked = {s for s in EGAIN_SECRETS if s in answer.body.decode()}
        assert not leaked, f"{name} with {headers} leaked {leaked}"
    json_answers = {(a.status, a.body) for _, a in answers if not a.headers.get("content-type", "").startswith("application/xml")}
    assert len(json_answers) == 1, [(n, a.describe()) for n, a in answers]


def test_the_good_credentials_do_work(base, baseline):
    """The refusals above are about credentials: the same requests with the right ones succeed."""
    try:
        demo = {"xx-relay-api-key": "demo-key"}
        assert call(base, "PUT", "/cdm/client/demo/customer/BAK-11984-007/move/vip", demo).status == 200
        assert call(base, "GET", "/platform/v3/api/cdm/client/other/customer/OTH-0001", {"xx-relay-api-key": "other-key"}).status == 200
        assert call(base, "PUT", f"{EGAIN}/merge", {"Authorization": "Bearer demo-user-token"}, SEED_MERGE).status == 204
        assert call(base, "GET", f"{EGAIN}/1005", {"Authorization": "Bearer demo-readonly-token"}).status == 200
        assert snapshot(base) != baseline
    finally:
        assert call(base, "POST", "/__admin/reset").status == 200
    assert snapshot(base) == baseline


def test_credential_values_are_never_echoed(base):
    """A refused credential does not come back in the answer (nor in its headers)."""
    for headers, path in (
        ({"xx-relay-api-key": "leaky-secret-value"}, "/cdm/client/demo/customer/BAK-11984-007"),
        ({"Authorization": "Bearer leaky-secret-value"}, f"{EGAIN}/1005"),
    ):
        answer = call(base, "GET", path, headers)
        assert answer.status == 401
        assert b"leaky-secret-value" not in answer.body
        assert "leaky-secret-value" not in json.dumps(answer.headers)


# ---------------------------------------------------------------- look-alike header names (#5)


@pytest.mark.parametrize("kind", ["granian", "waitress"])
def test_a_look_alike_header_name_is_not_the_api_key(kind):
    """`xx_relay_api_key` is another header than `xx-relay-api-key`: the vendor ignores it, so must the mock (whatever the server)."""
    retrieve = "/cdm/client/demo/customer/BAK-11984-008"
    with running_server("--server", kind) as url:
        for headers in (
            ["xx_relay_api_key: demo-key"],
            ["xx-relay-api-key: other-key", "xx_relay_api_key: demo-key"],
            ["xx-relay-api-key: wrong-key", "XX_RELAY_API_KEY: demo-key"],
        ):
            answer = exchange(url, request_bytes("GET", retrieve, headers))
            assert answer.status == 401 and answer.json() == RELAY_401, f"{kind}, {headers}: {answer.describe()}"

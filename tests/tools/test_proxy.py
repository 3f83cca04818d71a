"""`mockserver proxy`: valid traffic to the mock passes unchanged; the broken app's violations are reported."""

from __future__ import annotations

import json
import logging

import pytest

from mockserver.testing.harness import running_server
from mockserver.testing.process import free_port
from mockserver.tools.proxy import HEADER, ContractProxy, Finding, header_value
from tests.conftest import RELAY_KEY, SEED_MERGE, USER
from tests.tools.broken_app import PLANTED, create_broken_app
from tests.tools.servers import call, proxy_process, thread_server

JSON_BODY = {"Content-Type": "application/json"}
LOAD = {"product_group_id": "default", "customer": {"ccid": "BAK-22000-001", "first_name": "Ada"}}

# The README's examples, in order (state carries from one to the next), plus a few more valid calls.
VALID_TRAFFIC = [
    ("PUT", "/cdm/client/demo/customer/BAK-11984-007/move/product-group-test-2", RELAY_KEY, None),
    ("PUT", "/cdm/client/demo/customer/BAK-11984-007/move/product-group-test-2", RELAY_KEY, None),  # 409
    ("GET", "/platform/v3/api/cdm/client/demo/customer/BAK-11984-008", RELAY_KEY, None),
    ("GET", "/cdm/client/demo/customer/BAK-11984-008", {"xx-relay-api-key": "other-key"}, None),  # 401
    ("POST", "/cdm/client/demo/load-customer-record", {**RELAY_KEY, **JSON_BODY}, json.dumps(LOAD).encode()),
    ("GET", "/cdm/client/demo/customer/BAK-22000-001", RELAY_KEY, None),
    ("PUT", "/core/customermgr/v3/customer/merge", {**USER, **JSON_BODY}, json.dumps(SEED_MERGE).encode()),  # 204
    ("PUT", "/core/customermgr/v3/customer/merge", {**USER, **JSON_BODY}, json.dumps(SEED_MERGE).encode()),  # 400
    ("GET", "/core/customermgr/v3/customer/1005?foo=bar", USER, None),  # 400-101
    ("GET", "/core/customermgr/v3/customer/1005", {**USER, "Accept": "text/html"}, None),  # 406
    (
        "GET",
        "/core/customermgr/v3/customer/1010?$attribute=industry",
        {"Authorization": "Bearer demo-readonly-token", "Accept": "application/xml"},
        None,
    ),
    ("GET", "/core/customermgr/v3/customer/1010,1020?$sort=id&$order=desc", USER, None),
    ("GET", "/core/customermgr/v3/customer/9999", USER, None),  # 404
]
NOT_COMPARED = {"date", "server", "via"}  # set by the HTTP servers on each hop


def replay(mock: str, base: str) -> list[tuple[int, dict, bytes]]:
    """Reset the mock, then send VALID_TRAFFIC to `base` (the mock itself or the proxy in front of it)."""
    call("POST", mock + "/__admin/reset")
    answers = []
    for method, path, headers, body in VALID_TRAFFIC:
        status, got, content = call(method, base + path, headers, body)
        answers.append((status, {k.lower(): v for k, v in got.items() if k.lower() not in NOT_COMPARED}, content))
    return answers


@pytest.mark.e2e
def test_valid_traffic_passes_the_proxy_unchanged_and_unflagged():
    with running_server() as mock, proxy_process(mock) as (proxy, process):
        direct = replay(mock, mock)
        proxied = replay(mock, proxy)
        statuses = [answer[0] for answer in direct]
        assert statuses == [200, 409, 200, 401, 200, 200, 204, 400, 400, 406, 200, 200, 404]
        for (method, path, *_), want, got in zip(VALID_TRAFFIC, direct, proxied, strict=True):
            assert HEADER.lower() not in got[1], (method, path, got[1][HEADER.lower()])
            assert got == want, (method, path)

        # Paths the spec does not know are forwarded, and flagged.
        status, headers, body = call("GET", proxy + "/__admin/health")
        assert (status, json.loads(body)) == (200, {"status": "ok"})
        assert headers[HEADER].startswith("1 violation(s): unknown_path: GET /__admin/health")
        process.stop()  # its output complete
        log = process.output()
    assert "WARNING mockserver.proxy: contract violation(s) in GET /__admin/health -> 200" in log


# One request per planted violation, each valid but for what the broken app gets wrong.
PLANTED_TRAFFIC = {
    "moveCustomer": ("PUT", "/cdm/client/demo/customer/BAK-11984-007/move/vip", RELAY_KEY, None),
    "retrieveCustomer": ("GET", "/cdm/client/demo/customer/BAK-11984-008", RELAY_KEY, None),
    "getCustomersByIds": ("GET", "/core/customermgr/v3/customer/1005", {}, None),  # no credentials, answered 200
    "mergeCustomer": ("PUT", "/core/customermgr/v3/customer/merge", {**USER, **JSON_BODY}, json.dumps(SEED_MERGE).encode()),
    "loadCustomerRecord": ("POST", "/cdm/client/demo/load-customer-record", {**RELAY_KEY, **JSON_BODY}, b'{"product_group_id": 5}'),
}
DETAILS = {
    "moveCustomer": "moveCustomer does not document status 201",
    "retrieveCustomer": (
        "retrieveCustomer 200 body: 'product_group_id' is a required property; date_of_birth: 19800402 is not of type 'string'"
    ),
    "getCustomersByIds": "getCustomersByIds answered 200 to a request without the credentials the spec requires",
    "mergeCustomer": "mergeCustomer 400 does not document Content-Type text/plain",
    "loadCustomerRecord": "loadCustomerRecord answered 200 to a request that breaks the spec (body_schema)",
}


@pytest.fixture(scope="module")
def broken_behind_proxy():
    with thread_server(create_broken_app()) as broken, thread_server(ContractProxy(broken)) as proxy:
        yield broken, proxy


@pytest.mark.parametrize("operation_id", sorted(PLANTED))
def test_the_proxy_reports_each_planted_violation(broken_behind_proxy, operation_id, caplog):
    broken, proxy = broken_behind_proxy
    method, path, headers, body = PLANTED_TRAFFIC[operation_id]
    with caplog.at_level(logging.WARNING, logger="mockserver.proxy"):
        status, got, content = call(method, proxy + path, headers, body)
    direct = call(method, broken + path, headers, body)
    assert (status, content, got["Content-Type"]) == (direct[0], direct[2], direct[1]["Content-Type"])  # unchanged
    summary = got[HEADER]
    assert f"{PLANTED[operation_id]}: {DETAILS[operation_id]}" in summary
    assert "\n" not in summary and summary.isascii()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name == "mockserver.proxy"]
    assert len(warnings) == 1 and f"{method} {path.split('?')[0]} -> {status}" in warnings[0]
    assert f"- {PLANTED[operation_id]}: {DETAILS[operation_id]}" in warnings[0]


def echo(environ, start_response):
    """An upstream that answers with what it received."""
    from werkzeug.wrappers import Request

    request = Request(environ)
    seen = {
        "method": request.method,
        "uri": environ.get("REQUEST_URI") or environ.get("RAW_URI"),
        "headers": [[k, v] for k, v in request.headers.items() if k.lower() not in ("host", "connection")],
        "body": request.get_data().hex(),
    }
    body = json.dumps(seen).encode()
    start_response(
        "299 Custom", [("Content-Type", "application/x-echo"), ("X-Upstream", "a"), ("X-Upstream", "b"), ("Content-Length", str(len(body)))]
    )
    return [body]


def test_requests_and_answers_are_forwarded_byte_for_byte():
    with thread_server(echo) as upstream, thread_server(ContractProxy(upstream + "/base")) as proxy:
        uri = "/some/%7Bodd%7D%20path?b=2&a=1&a=%2F&empty="
        headers = {"X-Custom": "value", "Content-Type": "application/octet-stream", "Authorization": "Bearer t"}
        status, got, content = call("PATCH", proxy + uri, headers, b"\x00\xffbinary")
    seen = json.loads(content)
    assert status == 299 and got["Content-Type"] == "application/x-echo"
    assert got.get_all("X-Upstream") == ["a", "b"]
    assert seen["method"] == "PATCH" and seen["uri"] == "/base" + uri
    assert bytes.fromhex(seen["body"]) == b"\x00\xffbinary"
    sent = {k.lower(): v for k, v in seen["headers"]}
    assert sent["x-custom"] == "value" and sent["authorization"] == "Bearer t" and sent["content-length"] == "8"
    assert got[HEADER].startswith("1 violation(s): unknown_path: PATCH /some/{odd} path")


def test_an_upstream_that_does_not_answer_is_a_502():
    with thread_server(ContractProxy(f"http://127.0.0.1:{free_port()}", timeout=2)) as proxy:
        status, headers, body = call("GET", proxy + "/cdm/client/demo/customer/X", RELAY_KEY)
    assert status == 502 and "the upstream did not answer" in json.loads(body)["message"]


def test_the_header_is_one_short_printable_line():
    findings = [Finding("response_schema_conformance", "caf\u00e9\nnew line\t" + "x" * 2000)]
    value = header_value(findings)
    assert value.isascii() and "\n" not in value and "\t" not in value and len(value) <= 1000
    assert value.startswith("1 violation(s): response_schema_conformance: caf new line")

"""In a real browser (headless Chromium): CORS from another origin, Swagger UI offline, the dashboard (#13 §6)."""

from __future__ import annotations

import functools
import http.server
import json
import threading
from collections.abc import Iterator

import pytest

from mockserver.testing.harness import running_server
from mockserver.testing.process import free_port
from tests.e2e.wire import RELAY_KEY, call

pytestmark = pytest.mark.e2e
MOVE = "/cdm/client/demo/customer/BAK-11984-007/move/vip"

CROSS_ORIGIN_PAGE = """<!doctype html><meta charset="utf-8"><title>a frontend on another origin</title>
<pre id="result">waiting</pre>
<script>
(async () => {{
  const mock = "{base}";
  const moved = await fetch(mock + "/cdm/client/demo/customer/BAK-11984-007/move/vip",
    {{method: "PUT", headers: {{"xx-relay-api-key": "demo-key", "X-Mock-Session": "browser-1"}}}});
  const customers = await fetch(mock + "/core/customermgr/v3/customer/1005",
    {{headers: {{"Authorization": "Bearer demo-user-token", "Accept": "application/json", "Accept-Language": "en-US",
                "X-Mock-Session": "browser-1"}}}});  // eGain takes one locale; a browser's own header is a list
  document.getElementById("result").textContent = JSON.stringify({{
    move: [moved.status, await moved.json()], get: [customers.status, await customers.json()],
  }});
}})().catch((error) => {{ document.getElementById("result").textContent = "failed: " + error; }});
</script>"""


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    with running_server() as url:
        yield url


@pytest.fixture
def other_origin(tmp_path, base) -> Iterator[str]:
    """A page served from another local port, as a frontend dev server would."""
    (tmp_path / "index.html").write_text(CROSS_ORIGIN_PAGE.format(base=base))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/index.html"
    finally:
        server.shutdown()
        server.server_close()


def test_a_page_on_another_origin_calls_both_apis_with_fetch(page, other_origin):
    page.goto(other_origin)
    page.wait_for_function("document.getElementById('result').textContent !== 'waiting'")
    result = page.inner_text("#result")
    assert not result.startswith("failed"), result
    answers = json.loads(result)
    assert answers["move"] == [200, {"message": "Customer BAK-11984-007 moved to vip for client demo."}], answers
    assert answers["get"][0] == 200 and answers["get"][1]["customer"][0]["id"] == "1005", answers


@pytest.mark.parametrize("server, group", [("/", "vip"), ("/platform/v3/api", "product-group-test-2")])
def test_swagger_ui_loads_offline_and_try_it_out_moves_a_customer(page, base, server, group):
    outside: list[str] = []
    page.on("request", lambda request: outside.append(request.url) if not request.url.startswith(base) else None)
    page.goto(base + "/docs")
    operation = page.locator("#operations-relay-moveCustomer")
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    servers = operation.locator(".servers select")
    if servers.count():
        servers.select_option(server)
    for name, value in (("client_id", "demo"), ("ccid", "BAK-11984-008"), ("product_group_id", group)):
        operation.locator(f"tr[data-param-name='{name}'] input").fill(value)
    operation.get_by_role("button", name="Execute").click()
    status = operation.locator(".live-responses-table tbody .response-col_status").first
    status.wait_for()
    assert status.inner_text().strip() == "200"
    moves = call(base, "GET", "/__admin/requests?operationId=moveCustomer&limit=1").json()["requests"]
    assert moves[0]["path"] == f"{server.rstrip('/')}/cdm/client/demo/customer/BAK-11984-008/move/{group}"
    assert call(base, "GET", "/cdm/client/demo/customer/BAK-11984-008", RELAY_KEY).json()["product_group_id"] == group
    assert outside == [], outside
    call(base, "POST", "/__admin/reset")


def test_swagger_ui_sends_the_demo_oauth_token_on_egain_operations(page, base):
    """eGain's scheme is OAuth 2 (with scopes): the page authorizes the demo token as if its flow had run."""
    page.goto(base + "/docs")
    operation = page.locator("#operations-egain-getCustomersByIds")
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    operation.locator("tr[data-param-name='ids'] input").fill("1005")
    operation.get_by_role("button", name="Execute").click()
    status = operation.locator(".live-responses-table tbody .response-col_status").first
    status.wait_for()
    assert status.inner_text().strip() == "200"
    [sent] = call(base, "GET", "/__admin/requests?operationId=getCustomersByIds&limit=1").json()["requests"]
    assert sent["status"] == 200


def test_the_dashboard_shows_a_moved_customer_under_its_new_group(page, base):
    assert call(base, "PUT", MOVE, RELAY_KEY).status == 200
    page.goto(base + "/__admin/ui")
    page.locator("div[data-client='demo'][data-group='vip'] li[data-ccid='BAK-11984-007']").wait_for()
    page.locator("#journal tbody tr", has_text="moveCustomer").first.wait_for()
    call(base, "POST", "/__admin/reset")


def test_the_dashboard_lists_a_clients_consent_records(page, base):
    consent = "/messaging/client/demo/consent/channel_addr/6105551212/channel_type/sms"
    assert call(base, "PUT", consent, {**RELAY_KEY, "Content-Type": "application/json"}, b'{"consent_type": "stop"}').status == 200
    page.goto(base + "/__admin/ui")
    record = page.locator("div[data-consents='demo'] li[data-consent='6105551212']")
    record.wait_for()
    assert record.inner_text().startswith("6105551212 sms: stop (updated ")
    call(base, "POST", "/__admin/reset")


def test_a_scenario_loads_with_the_button(page, base):
    page.goto(base + "/__admin/ui")
    page.locator("#scenario option[value='relay-outage']").wait_for(state="attached")
    page.select_option("#scenario", "relay-outage")
    page.click("#apply-scenario")
    page.locator("#faults tbody tr", has_text="moveCustomer").wait_for()
    assert call(base, "PUT", MOVE, RELAY_KEY).status == 500
    page.locator("#faults button[data-rule]").first.click()
    page.locator("#faults tbody tr").wait_for(state="detached")
    assert call(base, "PUT", MOVE, RELAY_KEY).status == 200
    call(base, "POST", "/__admin/reset")

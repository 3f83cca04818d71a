"""A suite run by test_isolation_xdist.py under pytest-xdist (4 workers), against one server at MOCKSERVER_URL.

Every test moves the same customer, at the same time as the others, and
expects exactly what a fresh mock would answer: its own `X-Mock-Session`
makes it so. Not collected by the normal run (the file name does not start
with test_).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request

import pytest

BASE = os.environ.get("MOCKSERVER_URL", "")
MOVE = "/cdm/client/demo/customer/BAK-11984-007/move/vip"


def call(session: str, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    headers = {"xx-relay-api-key": "demo-key", "X-Mock-Session": session, "Content-Type": "application/json"}
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(BASE + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read()
            return response.status, json.loads(text) if text else {}
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


@pytest.mark.parametrize("n", range(40))
def test_moving_the_shared_customer_in_my_own_session(n, worker_id):
    session = f"iso-{worker_id}-{n}"
    assert call(session, "PUT", MOVE)[0] == 200  # never a 409: nobody else's move is visible here
    assert call(session, "PUT", MOVE)[0] == 409
    assert call(session, "GET", "/cdm/client/demo/customer/BAK-11984-007")[1]["product_group_id"] == "vip"
    if n % 2:
        assert call(session, "POST", "/__admin/faults", {"operationId": "moveCustomer", "status": 500, "times": 1})[0] == 201
        assert call(session, "PUT", "/cdm/client/demo/customer/BAK-11984-007/move/default")[0] == 500
    assert call(session, "PUT", "/cdm/client/demo/customer/BAK-11984-007/move/default")[0] == 200
    assert call(session, "POST", "/__admin/requests/count", {"operationId": "moveCustomer"}) == (200, {"count": 3 + n % 2})
    assert call(session, "DELETE", f"/__admin/sessions/{session}")[0] == 204

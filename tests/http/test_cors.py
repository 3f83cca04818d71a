"""CORS rules, one by one: the policy alone, then through the test client (WSGI) and the ASGI front."""

from __future__ import annotations

import asyncio

import pytest

from mockserver.http.cors import CorsPolicy
from mockserver.mock import create_app
from mockserver.qa.journal import RequestFilter
from mockserver.settings import Settings
from tests.conftest import RELAY_KEY
from tests.http.test_asgi import call

ORIGIN = "http://localhost:5173"
MOVE = "/cdm/client/demo/customer/BAK-11984-007/move/vip"
PREFLIGHT = {"Origin": ORIGIN, "Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "xx-relay-api-key, x-mock-session"}


def test_any_origin_is_echoed_by_default_with_vary():
    headers = dict(CorsPolicy().answer_headers({"origin": ORIGIN}))
    assert headers["Access-Control-Allow-Origin"] == ORIGIN and headers["Vary"] == "Origin"
    assert "WWW-Authenticate" in headers["Access-Control-Expose-Headers"]


def test_no_origin_no_cors_headers():
    assert CorsPolicy().answer_headers({}) == []


def test_listed_origins_only():
    policy = CorsPolicy.from_option(True, "http://a.test:1, http://b.test:2/")
    assert policy.allows("http://b.test:2") and not policy.allows(ORIGIN)
    assert dict(policy.answer_headers({"origin": ORIGIN})) == {"Vary": "Origin"}
    assert policy.preflight({"origin": ORIGIN, "access-control-request-method": "PUT"})[0] == 403
    assert CorsPolicy.from_option(True, "*").origins is None


def test_off_sends_nothing_and_answers_no_preflight():
    policy = CorsPolicy.from_option(False, None)
    assert policy.answer_headers({"origin": ORIGIN}) == [] and not policy.is_preflight(
        "OPTIONS", {"origin": ORIGIN, "access-control-request-method": "PUT"}
    )


@pytest.mark.parametrize("path", [MOVE, "/core/customermgr/v3/customer/merge", "/__admin/faults", "/nowhere"])
def test_a_preflight_on_any_path_is_204_with_what_may_be_sent(client, path):
    answer = client.options(path, headers=PREFLIGHT)
    assert answer.status_code == 204 and answer.data == b""
    assert answer.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "PUT" in answer.headers["Access-Control-Allow-Methods"]
    allowed = answer.headers["Access-Control-Allow-Headers"]
    for header in ("xx-relay-api-key", "authorization", "content-type", "accept", "accept-language", "prefer", "x-mock-session"):
        assert header in allowed


def test_every_answer_carries_the_headers_errors_included(client):
    for answer in (
        client.put(MOVE, headers={**RELAY_KEY, "Origin": ORIGIN}),
        client.put(MOVE, headers={"Origin": ORIGIN}),
        client.get("/__admin/health", headers={"Origin": ORIGIN}),
    ):
        assert answer.headers["Access-Control-Allow-Origin"] == ORIGIN, answer.status_code


def test_a_plain_options_request_is_still_the_apis_405(client):
    assert client.options(MOVE, headers={"Origin": ORIGIN}).status_code == 405


def test_the_asgi_front_applies_the_same_rules():
    flask_app = create_app(Settings(strict_responses=True, cors_origins=ORIGIN))
    app = flask_app.mock.asgi()
    preflight = asyncio.run(call(app, "OPTIONS", MOVE, {k.lower(): v for k, v in PREFLIGHT.items()}))
    assert preflight["status"] == 204 and preflight["headers"]["access-control-allow-origin"] == ORIGIN
    moved = asyncio.run(call(app, "PUT", MOVE, {**RELAY_KEY, "origin": ORIGIN}))
    assert moved["status"] == 200 and moved["headers"]["access-control-allow-origin"] == ORIGIN
    other = asyncio.run(call(app, "GET", "/__admin/health", {"origin": "http://evil.test"}))
    assert "access-control-allow-origin" not in other["headers"]
    journal = flask_app.mock.sessions.default.journal
    assert journal.find(RequestFilter(method="OPTIONS")) == []  # the browser's preflights are not the app's requests

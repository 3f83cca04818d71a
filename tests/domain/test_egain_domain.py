"""eGain domain rules, without Flask or HTTP."""

import copy
from datetime import UTC

import pytest

from mockserver.egain import domain
from mockserver.egain.domain import Actor, EgainConfig, EgainState
from mockserver.errors import ApiError
from mockserver.state.sources import Clock, Sources

STAMP = "2021-10-25T11:29:58.000Z"


def individual(cid, contact_id, stamp=STAMP, department="Service", **points):
    contact = {"id": contact_id, "systemCreated": False, "firstName": "F" + cid, "lastModified": stamp, **points}
    return {
        "id": cid,
        "customerName": "Name " + cid,
        "type": {"value": "individual"},
        "lastModified": stamp,
        "department": {"name": department},
        "level": "Gold",
        "contacts": {"contact": [contact]},
    }


def make_state(departmentalization=False) -> EgainState:
    corporate = {
        "id": "10",
        "type": {"value": "corporate"},
        "lastModified": STAMP,
        "department": {"name": "Service"},
        "contacts": {"contact": [{"id": "100", "systemCreated": True}, {"id": "101", "systemCreated": False, "firstName": "Al"}]},
    }
    customers = {
        "1": individual("1", "11", email=[{"id": "111", "emailAddress": "one@example.com"}]),
        "2": individual("2", "21", email=[{"id": "211", "emailAddress": "two@example.com"}]),
        "3": individual("3", "31", department="Sales"),
        "10": corporate,
    }
    both = frozenset({"Change Customer", "View Agent Console"})
    actors = {
        "user": Actor("u", "user", both, frozenset({"core.customermgr.read", "core.customermgr.manage"})),
        "app": Actor("a", "application", scopes=frozenset({"app.core.customermgr.manage"})),
        "viewer": Actor("v", "user", frozenset({"View Agent Console"}), frozenset({"core.customermgr.manage"})),
        "read-scope": Actor("r", "user", both, frozenset({"core.customermgr.read"})),
        "app-read-scope": Actor("ar", "application", scopes=frozenset({"app.core.customermgr.read"})),
        "user-with-app-scopes": Actor("ua", "user", both, frozenset({"app.core.customermgr.read", "app.core.customermgr.manage"})),
        "user-without-scopes-listed": Actor("n", "user", both),
    }
    return EgainState(EgainConfig(actors, departmentalization), customers, Sources(5000))


def merge_body(source="1", target="2", stamp=STAMP, contacts=None):
    return {
        "sourceCustomer": {"id": source},
        "targetCustomer": {"id": target, "lastModified": stamp, "contacts": {"contact": contacts or [{"firstName": "John"}]}},
    }


def test_merge_moves_contact_points_deletes_source_and_resets_unsent_attributes():
    state = make_state()
    domain.merge_customers(state, merge_body())
    assert "1" not in state.customers
    target = state.customers["2"]
    assert target["lastModified"] > STAMP
    assert "level" not in target  # not sent: reset to blank
    (contact,) = target["contacts"]["contact"]
    assert contact["id"] == "21" and contact["firstName"] == "John"
    assert [e["emailAddress"] for e in contact["email"]] == ["two@example.com", "one@example.com"]


def test_merge_sends_customer_attributes_that_were_sent():
    state = make_state()
    body = merge_body()
    body["targetCustomer"]["level"] = "Platinum"
    domain.merge_customers(state, body)
    assert state.customers["2"]["level"] == "Platinum"


def test_resending_the_same_merge_is_refused():
    state = make_state()
    domain.merge_customers(state, merge_body())
    with pytest.raises(ApiError) as caught:
        domain.merge_customers(state, merge_body())
    assert (caught.value.status, caught.value.code) == (400, "400-107")


@pytest.mark.parametrize(
    "body, code",
    [
        (merge_body(source="1", target="1"), "400-110"),
        (merge_body(source="99"), "400-107"),
        (merge_body(target="99"), "400-125"),
        (merge_body(source="10", target="2"), "400-109"),
        (merge_body(stamp="2020-01-01T00:00:00.000Z"), "400-111"),
        (merge_body(contacts=[{"id": "21", "firstName": "X"}]), "400-126"),
        (merge_body(contacts=[{"firstName": "X"}, {"firstName": "Y"}]), "400-120"),
        (merge_body(target="10", contacts=[{"id": "999"}]), "400-127"),
        (merge_body(target="10", contacts=[{"id": "100"}]), "400-114"),
    ],
)
def test_refused_merges_have_their_own_code_and_change_nothing(body, code):
    state = make_state()
    before = copy.deepcopy(state.customers)
    with pytest.raises(ApiError) as caught:
        domain.merge_customers(state, body)
    assert (caught.value.status, caught.value.code) == (400, code)
    assert state.customers == before


def test_departmentalization_requires_the_same_department():
    state = make_state(departmentalization=True)
    with pytest.raises(ApiError) as caught:
        domain.merge_customers(state, merge_body(source="3", target="2"))
    assert caught.value.code == "400-115"
    domain.merge_customers(make_state(departmentalization=False), merge_body(source="3", target="2"))


def test_merge_into_a_corporate_contact_and_a_new_contact():
    state = make_state()
    domain.merge_customers(state, merge_body(target="10", contacts=[{"id": "101", "lastName": "Buyer"}, {"firstName": "New"}]))
    contacts = {c["id"]: c for c in state.customers["10"]["contacts"]["contact"]}
    assert contacts["101"]["lastName"] == "Buyer" and "firstName" not in contacts["101"]
    assert contacts["101"]["email"][0]["emailAddress"] == "one@example.com"
    assert contacts["5000"]["firstName"] == "New" and contacts["5000"]["systemCreated"] is False
    assert contacts["100"]["systemCreated"] is True


def test_every_merge_changes_the_target_timestamp():
    state = make_state()
    domain.merge_customers(state, merge_body(source="1", target="2"))
    first = state.customers["2"]["lastModified"]
    domain.merge_customers(state, merge_body(source="3", target="2", stamp=first))
    assert state.customers["2"]["lastModified"] > first


@pytest.mark.parametrize(
    "token, operation, code",
    [
        (None, "getCustomersByIds", "401-104"),
        ("nope", "mergeCustomer", "401-101"),
        ("viewer", "mergeCustomer", "403-178"),
        ("read-scope", "mergeCustomer", "403-197"),
        ("app-read-scope", "mergeCustomer", "403-197"),
        ("user-with-app-scopes", "getCustomersByIds", "403-197"),
    ],
)
def test_authorize_refuses(token, operation, code):
    with pytest.raises(ApiError) as caught:
        domain.authorize(make_state().config, token, operation)
    assert caught.value.code == code


@pytest.mark.parametrize("token", ["user", "app", "user-without-scopes-listed"])
def test_authorize_allows_users_with_permission_and_applications(token):
    domain.authorize(make_state().config, token, "mergeCustomer")


@pytest.mark.parametrize("token", ["viewer", "read-scope", "app-read-scope"])
def test_a_read_scope_opens_the_get(token):
    domain.authorize(make_state().config, token, "getCustomersByIds")


def test_get_customers_skips_missing_sorts_and_projects():
    state = make_state()
    found = domain.get_customers(state, ["2", "99", "1"], sort="id", order="desc")
    assert [c["id"] for c in found] == ["2", "1"]
    assert "level" not in found[0]  # not a summary attribute
    assert domain.get_customers(state, ["2"], attributes="level")[0]["level"] == "Gold"
    assert [c["id"] for c in domain.get_customers(state, ["2", "1"], sort="custom")] == ["2", "1"]


def test_get_customers_none_found_is_404():
    with pytest.raises(ApiError) as caught:
        domain.get_customers(make_state(), ["98", "99"])
    assert (caught.value.status, caught.value.code) == (404, "404-101")


def test_clock_moves_forward_within_one_millisecond():
    from datetime import datetime

    fixed = datetime(2024, 1, 1, tzinfo=UTC)
    clock = Clock(lambda: fixed)
    stamps = [clock.stamp_after() for _ in range(3)]
    assert stamps == sorted(set(stamps))
    assert clock.stamp_after("2030-01-01T00:00:00.000Z") == "2030-01-01T00:00:00.001Z"


@pytest.mark.parametrize(
    "sent",
    ["2021-10-25T11:29:58+00:00", "2021-10-25T13:29:58.000000+02:00", "2021-10-25t11:29:58z", "2021-10-25T06:29:58.0-05:00"],
)
def test_merge_takes_the_current_instant_in_any_rfc3339_form(sent):
    state = make_state()
    domain.merge_customers(state, merge_body(stamp=sent))
    assert "1" not in state.customers


@pytest.mark.parametrize("sent", ["2021-10-25T11:29:58.001Z", "2021-10-25T11:29:58.0000001Z", "2021-10-25T11:29:58+01:00"])
def test_merge_refuses_another_instant_however_close(sent):
    state = make_state()
    with pytest.raises(ApiError) as refused:
        domain.merge_customers(state, merge_body(stamp=sent))
    assert refused.value.code == "400-111" and "1" in state.customers


def test_a_merge_answered_with_microseconds_is_current():
    """What a generated client sends back after a merge: the new stamp as `.114000+00:00`."""
    state = make_state()
    domain.merge_customers(state, merge_body())
    stamp = state.customers["2"]["lastModified"]  # canonical: 2026-...T...sss.mmmZ
    as_client_sends = stamp[:-1] + "000+00:00"
    domain.merge_customers(state, merge_body(source="3", stamp=as_client_sends))
    assert "3" not in state.customers


@pytest.mark.parametrize(
    "written, short",
    [
        ("https://api.egain.cloud/auth/core.customermgr.read", "core.customermgr.read"),
        ("core.customermgr.manage", "core.customermgr.manage"),
        ("https://api.egain.cloud/auth/app.core.customermgr.maange", "app.core.customermgr.manage"),  # eGain's page's own spelling
    ],
)
def test_scopes_are_read_short_or_full_and_the_vendors_slip_is_forgiven(written, short):
    assert domain.scope_name(written) == short

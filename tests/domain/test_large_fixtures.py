"""Large fixture files (#11): the fast paths refuse exactly what the record-by-record checks refused, the
checked-fixture cache never serves a stale file, and a reset swaps whole states. No timing here: the
speed is measured by the benchmark (`python -m benchmarks --only scale`)."""

import copy
import json
import shutil
import threading

import pytest
import yaml

from mockserver.contract.compiled import Contract
from mockserver.contract.spec import load_document
from mockserver.families import built_in_sections
from mockserver.relay.domain import MAX_CCIDS_PER_PHONE
from mockserver.resources import default_fixtures_path
from mockserver.state import fixture_cache, fixtures
from mockserver.state.fixtures import FixtureError, Fixtures
from mockserver.state.store import MemoryStore

SECTIONS = built_in_sections()

MANY = 5000


@pytest.fixture(scope="module")
def schemas():
    return Contract(load_document()).schemas


@pytest.fixture(scope="module")
def default_data():
    return yaml.safe_load(default_fixtures_path().read_text())


def many(default_data, count=MANY):
    """The default fixtures plus `count` generated customers of client demo, and as many eGain customers."""
    data = copy.deepcopy(default_data)
    demo = data["relay"]["clients"][0]
    demo["customers"] += [{"ccid": f"GEN-{i:06d}", "product_group_id": "default", "first_name": f"F{i}"} for i in range(count)]
    data["egain"]["customers"] += [
        {"id": str(700000 + i), "type": {"value": "individual"}, "lastModified": "2021-10-25T11:29:58.000Z"} for i in range(count)
    ]
    return data


def phone(number):
    return {"channel_type": "sms", "channel_addr": number, "consent_type": "express"}


BAD_AT = 3217  # deep among many, in the second chunk of records


@pytest.mark.parametrize(
    "spoil, message",
    [
        (lambda r, _: r.update(date_of_birth="1975-13-45"), "customers[3217] ({ccid}): date_of_birth: "),
        (lambda r, _: r.update(middle_name="x" * 101), "customers[3217] ({ccid}): middle_name: "),
        (lambda r, _: r.update(nickname="Bo"), "customers[3217] ({ccid}): Additional properties are not allowed ('nickname'"),
        (
            lambda r, _: r.update(product_group_id="nope"),
            "customers[3217] ({ccid}): product_group_id: 'nope' is not one of the client's product_groups",
        ),
        (lambda r, _: r.update(ccid="GEN-000007"), "customers[3217] (GEN-000007): ccid: 'GEN-000007' is used twice"),
        (lambda r, _: r.pop("product_group_id"), 'customers[3217] ({ccid}): "product_group_id" is a required property'),
        (
            lambda r, _: r.update(notification_channels=[phone("2155550100"), phone("2155550100")]),
            "customers[3217] ({ccid}): notification_channels: phone number 2155550100 is listed twice",
        ),
        (
            lambda r, _: r.update(notification_channels=[{"channel_type": "sms", "channel_address": "2155550100"}]),
            'customers[3217] ({ccid}): notification_channels.0: "channel_addr" is a required property',
        ),
    ],
)
def test_a_bad_record_among_many_is_refused_naming_file_record_ccid_and_field(schemas, default_data, spoil, message):
    data = many(default_data)
    customers = data["relay"]["clients"][0]["customers"]
    ccid = customers[BAD_AT]["ccid"]
    spoil(customers[BAD_AT], customers)
    with pytest.raises(FixtureError) as refused:
        Fixtures(data, "big.yaml", schemas, SECTIONS)
    assert str(refused.value).startswith("big.yaml: relay.clients[0] (demo).")
    assert message.format(ccid=ccid) in str(refused.value)


def test_the_phone_limit_is_named_at_the_first_customer_past_it(schemas, default_data):
    data = many(default_data)
    customers = data["relay"]["clients"][0]["customers"]
    for record in customers[1000 : 1000 + MAX_CCIDS_PER_PHONE + 1]:
        record["notification_channels"] = [phone("2155550199")]
    with pytest.raises(FixtureError) as refused:
        Fixtures(data, "big.yaml", schemas, SECTIONS)
    at = 1000 + MAX_CCIDS_PER_PHONE
    assert f"customers[{at}] ({customers[at]['ccid']}): notification_channels: phone number 2155550199 belongs to more than 50" in str(
        refused.value
    )


def test_the_first_bad_record_is_named_whatever_rule_it_breaks(schemas, default_data):
    """The fast pass only says that something is wrong; the walk then names the first record, as before."""
    data = many(default_data)
    customers = data["relay"]["clients"][0]["customers"]
    customers[4000]["date_of_birth"] = "never"
    customers[2500]["ccid"] = customers[2400]["ccid"]
    twice = customers[2400]["ccid"]
    with pytest.raises(FixtureError, match=rf"customers\[2500\] \({twice}\): ccid: '{twice}' is used twice"):
        Fixtures(data, "big.yaml", schemas, SECTIONS)


def test_a_bad_egain_customer_among_many_is_refused(schemas, default_data):
    data = many(default_data)
    egain = data["egain"]["customers"]
    bad = len(egain) - 10
    del egain[bad]["lastModified"]
    with pytest.raises(FixtureError, match=rf"big.yaml: egain.customers\[{bad}\] \({egain[bad]['id']}\): lastModified: is required"):
        Fixtures(data, "big.yaml", schemas, SECTIONS)
    egain[bad]["lastModified"] = "2021-10-25T11:29:58.000Z"
    egain[bad]["id"] = egain[0]["id"]
    with pytest.raises(FixtureError, match=rf"egain.customers\[{bad}\] \({egain[0]['id']}\): id: '{egain[0]['id']}' is used twice"):
        Fixtures(data, "big.yaml", schemas, SECTIONS)


def test_many_records_build_whole_and_independent_states(schemas, default_data, monkeypatch):
    monkeypatch.setattr(fixtures, "SPARE_MIN_RECORDS", 100)  # the spare made in the background, as for a large file
    loaded = Fixtures(many(default_data), "big.yaml", schemas, SECTIONS)
    first, second = loaded.build(), loaded.build()
    for state in (first, second):
        assert len(state["relay"].books["demo"].customers) == len(default_data["relay"]["clients"][0]["customers"]) + MANY
        assert len(state["egain"].customers) == len(default_data["egain"]["customers"]) + MANY
        assert state["relay"].books["demo"].phone_ccids["6105551212"] == {"BAK-11984-007"}
    first["relay"].books["demo"].customers["GEN-004999"]["product_group_id"] = "vip"
    assert second["relay"].books["demo"].customers["GEN-004999"]["product_group_id"] == "default"
    assert loaded.build()["relay"].books["demo"].customers["GEN-004999"]["product_group_id"] == "default"


# ---------------------------------------------------------------- reading files


def test_a_json_file_is_read_as_json_and_refused_as_json(schemas, default_data, tmp_path):
    good = tmp_path / "f.json"
    good.write_text(json.dumps(many(default_data, 10)))
    assert "GEN-000009" in Fixtures.load(good, schemas, SECTIONS, cache=None).build()["relay"].books["demo"].customers
    bad = tmp_path / "bad.json"
    bad.write_text('{"relay": {"clients": []}, "egain": {"actors": [], "x": NaN}}')
    with pytest.raises(FixtureError, match=r"bad.json: not valid JSON: NaN is not JSON"):
        Fixtures.load(bad, schemas, SECTIONS, cache=None)


def test_a_yaml_file_opening_with_a_brace_that_is_not_json_is_still_yaml(schemas, tmp_path):
    flow = tmp_path / "flow.yaml"
    flow.write_text("{relay: {clients: [{client_id: c, api_keys: [k], product_groups: [g]}]}, egain: {actors: []}}\n")
    assert Fixtures.load(flow, schemas, SECTIONS, cache=None).config["relay"].clients["c"].api_keys == frozenset({"k"})


def test_a_file_that_is_not_utf8_is_refused_by_name(schemas, tmp_path):
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("relay: {clients: []}\negain: {actors: []}\n# caf\xe9\n".encode("latin-1"))
    with pytest.raises(FixtureError, match="latin1.yaml: cannot read the fixture file: not UTF-8"):
        Fixtures.load(bad, schemas, SECTIONS, cache=None)


# ---------------------------------------------------------------- the cache


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setattr(fixture_cache, "MIN_BYTES", 0)  # small files are not cached otherwise
    return tmp_path / "cache"


def not_parsed(*_):
    raise AssertionError("parsed: the cache was not used")


def test_a_cached_file_is_not_parsed_again(schemas, default_data, tmp_path, cache, monkeypatch):
    path = tmp_path / "big.yaml"
    path.write_text(yaml.safe_dump(many(default_data, 50)))
    first = Fixtures.load(path, schemas, SECTIONS, cache=cache)
    assert len(list(cache.iterdir())) == 1
    monkeypatch.setattr(fixtures, "_parse", not_parsed)
    again = Fixtures.load(path, schemas, SECTIONS, cache=cache)
    assert again.config == first.config and again.source == str(path)
    assert again.build()["relay"].books["demo"].customers == first.build()["relay"].books["demo"].customers
    assert again.build().sources.ids.next() == first.build().sources.ids.next()


def test_a_changed_file_is_never_served_from_a_stale_cache(schemas, default_data, tmp_path, cache):
    path = tmp_path / "big.yaml"
    data = many(default_data, 50)
    path.write_text(yaml.safe_dump(data))
    Fixtures.load(path, schemas, SECTIONS, cache=cache)
    data["relay"]["clients"][0]["customers"][7]["first_name"] = "Changed"
    path.write_text(yaml.safe_dump(data))
    changed = data["relay"]["clients"][0]["customers"][7]["ccid"]
    assert Fixtures.load(path, schemas, SECTIONS, cache=cache).build()["relay"].books["demo"].customers[changed]["first_name"] == "Changed"
    data["relay"]["clients"][0]["customers"][7]["date_of_birth"] = "1975-13-45"  # now refused: the check runs again
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(FixtureError, match=rf"customers\[7\] \({changed}\): date_of_birth"):
        Fixtures.load(path, schemas, SECTIONS, cache=cache)
    assert len(list(cache.iterdir())) == 1  # one entry a fixture path, replaced


def test_a_cache_made_under_other_schemas_is_not_used(schemas, default_data, tmp_path, cache, monkeypatch):
    path = tmp_path / "big.yaml"
    path.write_text(yaml.safe_dump(many(default_data, 50)))
    Fixtures.load(path, schemas, SECTIONS, cache=cache)
    stricter = {**schemas, "RelayCustomerRecord": {**schemas["RelayCustomerRecord"], "required": ["ccid", "product_group_id", "last_name"]}}
    with pytest.raises(FixtureError, match='"last_name" is a required property'):
        Fixtures.load(path, stricter, SECTIONS, cache=cache)


@pytest.mark.parametrize("module", ["egain/domain.py", "relay/section.py", "state/fixtures.py", "contract/compiled.py"])
def test_a_cache_made_by_other_code_is_not_used(schemas, default_data, tmp_path, cache, monkeypatch, module):
    """Any module of the package may hold a check (eGain's scope rules were once left out of a list of them): a
    change to its source is a new key, and the file is parsed and checked again."""
    package = tmp_path / "mockserver"
    shutil.copytree(fixture_cache.PACKAGE, package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(fixture_cache, "PACKAGE", package)
    path = tmp_path / "big.yaml"
    path.write_text(yaml.safe_dump(many(default_data, 50)))
    Fixtures.load(path, schemas, SECTIONS, cache=cache)
    parsed = []
    parse = fixtures._parse
    monkeypatch.setattr(fixtures, "_parse", lambda *args: parsed.append(args) or parse(*args))
    Fixtures.load(path, schemas, SECTIONS, cache=cache)
    assert parsed == []  # the same code: served from the cache
    with open(package / module, "a", encoding="utf-8") as source:
        source.write("\n# a changed check\n")
    fixture_cache._source_digest.cache_clear()  # as at the next start: the source is read once a process
    assert "GEN-000049" in Fixtures.load(path, schemas, SECTIONS, cache=cache).build()["relay"].books["demo"].customers
    assert len(parsed) == 1
    assert len(list(cache.iterdir())) == 1  # one entry a fixture path, replaced


def test_a_damaged_cache_entry_is_ignored(schemas, default_data, tmp_path, cache):
    path = tmp_path / "big.yaml"
    path.write_text(yaml.safe_dump(many(default_data, 50)))
    Fixtures.load(path, schemas, SECTIONS, cache=cache)
    (entry,) = cache.iterdir()
    content = bytearray(entry.read_bytes())
    content[-100] ^= 0xFF
    entry.write_bytes(bytes(content))
    assert "GEN-000049" in Fixtures.load(path, schemas, SECTIONS, cache=cache).build()["relay"].books["demo"].customers


def test_the_cache_can_be_turned_off_or_put_elsewhere(monkeypatch, tmp_path):
    assert fixture_cache.folder("off") is None
    assert fixture_cache.folder(str(tmp_path)) == tmp_path
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert fixture_cache.folder() == tmp_path / "mockserver" / "fixtures"


# ---------------------------------------------------------------- reset


def test_a_reset_swaps_whole_states_while_requests_run(schemas, default_data, monkeypatch):
    """Every command sees the old state (the moved customer still moved) or the fresh one, each complete;
    never a state half built or half freed. After reset() returns, the fresh state is served."""
    monkeypatch.setattr(fixtures, "SPARE_MIN_RECORDS", 100)  # built in the background, in chunks, as for a large file
    loaded = Fixtures(many(default_data, 3 * fixtures.frozen.CHUNK), "big.yaml", schemas, SECTIONS)
    store = MemoryStore(loaded.build)
    whole = len(default_data["relay"]["clients"][0]["customers"]) + 3 * fixtures.frozen.CHUNK
    seen, stop = set(), threading.Event()

    def look(state):
        customers = state["relay"].books["demo"].customers
        return len(customers), customers["GEN-005999"]["product_group_id"], len(state["egain"].customers)

    def reader():
        while not stop.is_set():
            seen.add(store.run(look))

    def move(state):
        state["relay"].books["demo"].customers["GEN-005999"]["product_group_id"] = "vip"

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for _ in range(20):
            store.run(move)
            store.reset()
            assert store.run(look)[:2] == (whole, "default")
    finally:
        stop.set()
        thread.join()
    egain = len(default_data["egain"]["customers"]) + 3 * fixtures.frozen.CHUNK
    assert seen <= {(whole, "vip", egain), (whole, "default", egain)} and (whole, "default", egain) in seen


def consent(number, **changes):
    stamp = "2024-07-05T22:16:12.934Z"
    return {
        "client_id": "demo",
        "created_at": stamp,
        "updated_at": stamp,
        "channel_type": "sms",
        "channel_addr": number,
        "consent_type": "stop",
        **changes,
    }


def test_consent_records_of_a_file_are_checked_and_built_into_every_state(schemas, default_data, tmp_path, cache, monkeypatch):
    """A snapshot keeps the Relay consent records in the fixture format: each client's `consents` (cached too)."""
    data = copy.deepcopy(default_data)
    data["relay"]["clients"][0]["consents"] = [consent("6105551212"), consent("2155550100", consent_type="written")]
    path = tmp_path / "consents.json"
    path.write_text(json.dumps(data))
    loaded = Fixtures.load(path, schemas, SECTIONS, cache=cache)
    first, second = loaded.build(), loaded.build()
    assert first["relay"].books["demo"].consents == {c["channel_addr"]: c for c in data["relay"]["clients"][0]["consents"]}
    first["relay"].books["demo"].consents["6105551212"]["consent_type"] = "express"
    assert second["relay"].books["demo"].consents["6105551212"]["consent_type"] == "stop"
    assert not first["relay"].books["other"].consents
    monkeypatch.setattr(fixtures, "_parse", not_parsed)
    assert (
        Fixtures.load(path, schemas, SECTIONS, cache=cache).build()["relay"].books["demo"].consents
        == second["relay"].books["demo"].consents
    )


@pytest.mark.parametrize(
    "consents, message",
    [
        ([consent("6105551212", client_id="other")], "consents[0] (6105551212): client_id: 'other' is not this client"),
        ([consent("6105551212"), consent("6105551212")], "consents[1] (6105551212): channel_addr: '6105551212' is used twice"),
        ([consent("6105551212", consent_type="implied")], "consents[0] (6105551212): consent_type: "),
        ([consent("6105551212", updated_at="yesterday")], "consents[0] (6105551212): updated_at: "),
    ],
)
def test_a_bad_consent_record_is_refused_naming_it(schemas, default_data, consents, message):
    data = copy.deepcopy(default_data)
    data["relay"]["clients"][0]["consents"] = consents
    with pytest.raises(FixtureError) as refused:
        Fixtures(data, "consents.yaml", schemas, SECTIONS)
    assert f"consents.yaml: relay.clients[0] (demo).{message}" in str(refused.value)

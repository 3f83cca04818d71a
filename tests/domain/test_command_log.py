"""The state file's command log and snapshot (issue #11): every answered change survives, exactly (no HTTP)."""

import copy
import json
import logging
import os

import pytest

from mockserver.contract.compiled import Contract
from mockserver.contract.spec import load_document
from mockserver.egain.api import _merge_command
from mockserver.errors import ApiError
from mockserver.families import built_in_sections
from mockserver.relay.api import _add_phone, _load, _move, _onboard, _remove_phone, _update_consent
from mockserver.settings import Settings
from mockserver.state import persistence
from mockserver.state.fixtures import Fixtures
from mockserver.state.persistence import StateFile
from mockserver.state.snapshot_file import StateFileError, snapshot
from mockserver.state.store import MemoryStore, settle

SECTIONS = built_in_sections()

CCID = "BAK-11984-007"


@pytest.fixture(scope="module")
def schemas() -> dict:
    return Contract(load_document()).schemas


@pytest.fixture(scope="module")
def fixtures(schemas) -> Fixtures:
    return Fixtures.load(Settings().fixtures, schemas, SECTIONS)


def opened(path, fixtures, schemas, fsync="everysec") -> tuple[StateFile, MemoryStore]:
    """What `create_app` does with `--state-file`: restore, then log every change of the default store."""
    state_file = StateFile(path, fsync)
    store = MemoryStore(fixtures.build, initial=state_file.restore(fixtures, schemas))
    state_file.attach(store)
    return state_file, store


def restored(path, fixtures, schemas) -> dict:
    """The state a new process would start with (the old one is not closed: as after kill -9)."""
    state_file = StateFile(path)
    state = state_file.restore(fixtures, schemas)
    assert state is not None
    return {"state": snapshot(state), "next_id": state.sources.ids.peek()}


def state_file_of(folder) -> object:
    """The one command log in `folder`."""
    [log_file] = folder.glob("state.json.log.*")
    return log_file


def records(saved: dict) -> dict:
    """The records by key, whatever their order (an undone merge puts its source back last)."""
    relay = {(c["client_id"], r["ccid"]): r for c in saved["state"]["relay"]["clients"] for r in c["customers"]}
    return {"relay": relay, "egain": {c["id"]: c for c in saved["state"]["egain"]["customers"]}, "next_id": saved["next_id"]}


def live(store: MemoryStore) -> dict:
    """A copy: the store's records change in place."""
    return copy.deepcopy({"state": snapshot(store.state), "next_id": store.state.sources.ids.peek()})


def merge_into_corporate(store: MemoryStore, source: str) -> None:
    """A merge that stamps a new lastModified and takes a new contact id: replay must give the same ones."""
    target = store.state["egain"].customers["1010"]
    body = {
        "sourceCustomer": {"id": source},
        "targetCustomer": {"id": "1010", "lastModified": target["lastModified"], "contacts": {"contact": [{"firstName": "New"}]}},
    }
    store.run(_merge_command, body)


def test_every_change_survives_a_crash_exactly(tmp_path, fixtures, schemas):
    path = tmp_path / "state.json"
    _, store = opened(path, fixtures, schemas)
    first_snapshot = path.read_bytes()  # written at the first start, before any change
    store.run(_move, "demo", CCID, "vip")
    store.run(_load, "demo", "default", {"ccid": "NEW-1", "first_name": "New"})
    merge_into_corporate(store, "1002")
    merge_into_corporate(store, "1003")
    assert path.read_bytes() == first_snapshot  # nothing compacted: the log alone holds the changes
    assert restored(path, fixtures, schemas) == live(store)


def relay_changes(store: MemoryStore) -> None:
    """Every Relay command that changes state, the consent update's records found from the phone index."""
    store.run(
        _onboard, "demo", "default", {"ccid": CCID, "notification_channels": [{"channel_type": "sms", "channel_addr": "2155550100"}]}, False
    )
    store.run(_add_phone, "demo", "BAK-11984-008", "2155550100", "express")
    store.run(_update_consent, "demo", "2155550100", "sms", "stop")  # two customers carry it
    store.run(_remove_phone, "demo", CCID, "6105551212")
    store.run(_update_consent, "demo", "2155550100", "sms", "written")


def test_every_relay_change_survives_a_crash_and_a_snapshot_exactly(tmp_path, fixtures, schemas):
    path = tmp_path / "state.json"
    state_file, store = opened(path, fixtures, schemas)
    relay_changes(store)
    saved = restored(path, fixtures, schemas)
    assert saved == live(store)
    demo = next(client for client in saved["state"]["relay"]["clients"] if client["client_id"] == "demo")
    [consent] = demo["consents"]
    assert (consent["channel_addr"], consent["consent_type"]) == ("2155550100", "written") and consent["created_at"] < consent["updated_at"]
    assert state_file.checkpoint()  # the consent records go into the snapshot, and come back from it
    assert "consents" in json.loads(path.read_text())["state"]["relay"]["clients"][0]
    assert restored(path, fixtures, schemas) == live(store)


def test_a_consent_update_that_cannot_be_logged_is_undone_on_every_customer(tmp_path, fixtures, schemas, monkeypatch):
    path = tmp_path / "state.json"
    _, store = opened(path, fixtures, schemas)
    store.run(_add_phone, "demo", "BAK-11984-008", "6105551212", None)
    store.run(_update_consent, "demo", "6105551212", "sms", "written")
    before = live(store)

    def full(fd, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(persistence.oplog.os, "write", full)
    with pytest.raises(OSError, match="No space left"):
        store.run(_update_consent, "demo", "6105551212", "sms", "stop")
    assert live(store) == before


def test_a_refused_command_writes_nothing(tmp_path, fixtures, schemas):
    path = tmp_path / "state.json"
    state_file, store = opened(path, fixtures, schemas)
    store.run(_move, "demo", CCID, "vip")
    size = state_file._log.size
    with pytest.raises(ApiError):
        store.run(_move, "demo", CCID, "vip")  # 409: already there
    assert state_file._log.path.stat().st_size == size


def test_a_checkpoint_writes_the_snapshot_in_a_child_and_drops_the_logs_it_covers(tmp_path, fixtures, schemas):
    path = tmp_path / "state.json"
    state_file, store = opened(path, fixtures, schemas)
    store.run(_move, "demo", CCID, "vip")
    assert state_file.checkpoint()  # forked on Linux
    store.run(_load, "demo", "default", {"ccid": "AFTER", "first_name": "After"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json", "state.json.log.3"]  # the first start wrote 2
    saved = json.loads(path.read_text())
    assert saved["log_generation"] == 3
    assert "AFTER" not in path.read_text() and group_of(saved["state"]) == "vip"
    assert restored(path, fixtures, schemas) == live(store)


def test_a_change_made_while_the_snapshot_is_written_is_kept_by_the_next_log(tmp_path, fixtures, schemas, monkeypatch):
    """The snapshot is of the instant the log was switched; a change landing between that instant and the file
    being on disk is in neither the snapshot nor the old log, but in the new one (it used to be lost for good)."""
    path = tmp_path / "state.json"
    state_file, store = opened(path, fixtures, schemas)
    real_write = persistence.atomic_write

    def write_after_a_move(target, text):
        store.run(_move, "demo", CCID, "vip")  # lands after the capture, before the file is written
        real_write(target, text)

    monkeypatch.setattr(persistence, "atomic_write", write_after_a_move)
    assert state_file.checkpoint(fork=False)
    monkeypatch.setattr(persistence, "atomic_write", real_write)
    assert group_of(json.loads(path.read_text())["state"]) == "default"
    assert group_of(restored(path, fixtures, schemas)["state"]) == "vip"
    assert restored(path, fixtures, schemas) == live(store)


def group_of(state: dict) -> str:
    demo = next(client for client in state["relay"]["clients"] if client["client_id"] == "demo")
    return next(c for c in demo["customers"] if c["ccid"] == CCID)["product_group_id"]


def test_a_reset_is_logged_and_replayed(tmp_path, fixtures, schemas):
    path = tmp_path / "state.json"
    _, store = opened(path, fixtures, schemas)
    store.run(_move, "demo", CCID, "vip")
    store.reset()
    store.run(_load, "demo", "default", {"ccid": "AFTER-RESET", "first_name": "A"})
    assert restored(path, fixtures, schemas) == live(store)


def test_a_torn_last_line_is_dropped_with_a_warning(tmp_path, fixtures, schemas, caplog):
    path = tmp_path / "state.json"
    _, store = opened(path, fixtures, schemas)
    store.run(_move, "demo", CCID, "vip")
    expected = live(store)
    store.run(_load, "demo", "default", {"ccid": "TORN", "first_name": "T"})
    log_file = state_file_of(tmp_path)
    whole = log_file.read_bytes()
    log_file.write_bytes(whole[:-10])  # the crash came in the middle of the last write
    with caplog.at_level(logging.WARNING, logger="mockserver"):
        assert restored(path, fixtures, schemas) == expected
    assert "torn last line" in caplog.text


def test_a_damaged_line_before_the_last_stops_the_start(tmp_path, fixtures, schemas):
    path = tmp_path / "state.json"
    _, store = opened(path, fixtures, schemas)
    store.run(_move, "demo", CCID, "vip")
    store.run(_load, "demo", "default", {"ccid": "X", "first_name": "X"})
    log_file = state_file_of(tmp_path)
    lines = log_file.read_bytes().split(b"\n")
    lines[1] = b'{"records": [["relay", "demo/customers"'
    log_file.write_bytes(b"\n".join(lines))
    with pytest.raises(StateFileError, match=r"state.json.log.2: line 2 is not JSON"):
        StateFile(path).restore(fixtures, schemas)


def test_a_log_that_does_not_fit_the_fixtures_stops_the_start(tmp_path, fixtures, schemas):
    path = tmp_path / "state.json"
    (tmp_path / "state.json.log.1").write_text(
        '{"mockserver_log": 2, "generation": 1}\n{"records": [["relay", "nobody/customers", "X", null]], "next_id": 1}\n'
    )
    with pytest.raises(StateFileError, match="change 1: Relay client 'nobody' is not in the fixtures"):
        StateFile(path).restore(fixtures, schemas)


def test_a_missing_log_between_snapshot_and_the_last_stops_the_start(tmp_path, fixtures, schemas):
    path = tmp_path / "state.json"
    state_file, store = opened(path, fixtures, schemas)
    assert state_file.checkpoint()
    for generation in (5, 6):  # 4 is missing
        (tmp_path / f"state.json.log.{generation}").write_text(json.dumps({"mockserver_log": 2, "generation": generation}) + "\n")
    with pytest.raises(StateFileError, match=r"do not follow on from the snapshot \(log 3 first"):
        StateFile(path).restore(fixtures, schemas)


def test_logs_an_earlier_snapshot_covers_are_removed_at_start(tmp_path, fixtures, schemas):
    """A crash between writing a snapshot and deleting the logs it covers leaves them: they must not be replayed."""
    path = tmp_path / "state.json"
    state_file, store = opened(path, fixtures, schemas)
    store.run(_move, "demo", CCID, "vip")
    covered = state_file_of(tmp_path).read_bytes()
    assert state_file.checkpoint()
    store.run(_move, "demo", CCID, "default")
    (tmp_path / "state.json.log.2").write_bytes(covered)  # as if the deletion never happened
    assert restored(path, fixtures, schemas) == live(store)
    assert not (tmp_path / "state.json.log.2").exists()


def test_at_always_a_change_is_synced_before_run_returns(tmp_path, fixtures, schemas, monkeypatch):
    path = tmp_path / "state.json"
    state_file, store = opened(path, fixtures, schemas, fsync="always")
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(persistence.oplog.os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    store.run(_move, "demo", CCID, "vip")
    assert len(synced) == 1
    store.run(_move, "demo", CCID, "default")
    assert len(synced) == 2


def test_at_always_a_request_defers_its_syncs_and_one_fsync_covers_them(tmp_path, fixtures, schemas, monkeypatch):
    """A request's changes are collected (its exchange then settles them, in a worker thread on the event loop,
    before the answer is sent); one fsync covers every change written before it (group commit). A change made
    without collecting is synced inline."""
    path = tmp_path / "state.json"
    state_file, store = opened(path, fixtures, schemas, fsync="always")
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(persistence.oplog.os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    pending: list = []
    store.run(_move, "demo", CCID, "vip", syncs=pending)
    store.run(_move, "demo", CCID, "default", syncs=pending)
    assert synced == [] and [number for _, number in pending] == [1, 2]
    settle(pending)
    assert len(synced) == 1
    store.run(_move, "demo", CCID, "vip")  # not collected
    assert len(synced) == 2


def test_a_change_that_cannot_be_logged_is_undone_and_changes_are_refused_until_a_checkpoint(tmp_path, fixtures, schemas, monkeypatch):
    """A full disk: the write fails half way. The fragment is cut off the log, the change undone (its 500 changes
    nothing), later changes refused; once a checkpoint has written a new log and a snapshot, all is well again."""
    path = tmp_path / "state.json"
    state_file, store = opened(path, fixtures, schemas)
    store.run(_move, "demo", CCID, "vip")
    before, size = live(store), state_file._log.path.stat().st_size
    real_write = os.write

    def half_then_full(fd, data):
        real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(persistence.oplog.os, "write", half_then_full)
    with pytest.raises(OSError, match="No space left"):
        merge_into_corporate(store, "1002")
    monkeypatch.setattr(persistence.oplog.os, "write", real_write)
    assert records(live(store)) == records(before) and state_file._log.path.stat().st_size == size
    with pytest.raises(OSError, match="changes are refused"):
        store.run(_move, "demo", CCID, "default")
    assert records(live(store)) == records(before)
    assert state_file.compaction_due() and state_file.checkpoint()
    store.run(_move, "demo", CCID, "default")
    assert restored(path, fixtures, schemas) == live(store)


def test_a_log_removed_under_the_server_fails_the_state_file(tmp_path, fixtures, schemas):
    """Writes to an unlinked file are durable nowhere anyone looks: noticed, and changes refused, not answered."""
    path = tmp_path / "state.json"
    state_file, store = opened(path, fixtures, schemas, fsync="always")
    state_file._log.path.unlink()
    with pytest.raises(OSError, match="was removed while the server was writing"):
        store.run(_move, "demo", CCID, "vip")  # applied and logged, but its fsync finds the file gone
    with pytest.raises(OSError, match="changes are refused"):
        store.run(_move, "demo", CCID, "default")
    assert state_file.checkpoint()  # a new log and a full snapshot: durable again
    store.run(_move, "demo", CCID, "default")
    assert restored(path, fixtures, schemas) == live(store)


def test_a_scenario_applied_at_the_first_start_is_in_the_first_snapshot(tmp_path, schemas):
    from mockserver.mock import create_app

    path = tmp_path / "state.json"
    app = create_app(Settings(state_file=path, scenario="merge-stale"))
    live_state = live(app.mock.store)
    assert json.loads(path.read_text())["state"] == live_state["state"]  # before any change: a kill now loses nothing
    fixtures = app.mock.fixtures
    assert restored(path, fixtures, schemas) == live_state


def test_a_snapshot_of_another_configuration_is_usable_once_a_logged_reset_follows(tmp_path, fixtures, schemas):
    """`--reload` of fixtures with new keys logs a reset; a kill before the next compaction must not make the
    restart refuse the files."""
    path = tmp_path / "state.json"
    data = snapshot(fixtures.build())
    data["relay"]["clients"][0]["api_keys"] = ["rotated-key"]
    path.write_text(json.dumps({"mockserver_state": 1, "log_generation": 2, "state": data}))
    with pytest.raises(StateFileError, match="another configuration"):
        StateFile(path).restore(fixtures, schemas)
    (tmp_path / "state.json.log.2").write_text(
        '{"mockserver_log":2,"generation":2}\n{"records":[["relay","demo/customers","X",null]],"next_id":10000}\n{"reset":true}\n'
    )
    state = StateFile(path).restore(fixtures, schemas)
    assert snapshot(state) == snapshot(fixtures.build())


def test_a_restart_gives_the_next_id_the_server_would_have_given(tmp_path, fixtures, schemas):
    path = tmp_path / "state.json"
    state_file, store = opened(path, fixtures, schemas)
    merge_into_corporate(store, "1002")  # takes a new contact id
    assert restored(path, fixtures, schemas)["next_id"] == store.state.sources.ids.peek()
    assert state_file.checkpoint()
    assert restored(path, fixtures, schemas)["next_id"] == store.state.sources.ids.peek()


def test_at_everysec_and_no_run_returns_without_a_sync(tmp_path, fixtures, schemas, monkeypatch):
    for fsync in ("everysec", "no"):
        folder = tmp_path / fsync
        folder.mkdir()
        state_file, store = opened(folder / "state.json", fixtures, schemas, fsync=fsync)
        synced = []
        monkeypatch.setattr(persistence.oplog.os, "fsync", synced.append)
        store.run(_move, "demo", CCID, "vip")
        monkeypatch.undo()
        assert synced == []
        assert restored(folder / "state.json", fixtures, schemas) == live(store)  # written all the same


def test_a_clean_close_compacts_into_one_file(tmp_path, fixtures, schemas):
    path = tmp_path / "state.json"
    state_file, store = opened(path, fixtures, schemas)
    store.run(_move, "demo", CCID, "vip")
    state_file.close()
    assert restored(path, fixtures, schemas) == live(store)
    state_file, store = opened(path, fixtures, schemas)
    state_file.close()
    logs = sorted(p.name for p in tmp_path.iterdir() if ".log." in p.name)
    assert len(logs) == 1 and (tmp_path / logs[0]).read_text().count("\n") == 1  # only a header: nothing to replay


def test_integers_past_64_bits_are_written_and_read_back_exactly():
    """eGain customers may carry open fields; orjson cannot write such integers, nor read them exactly."""
    from mockserver.state import codec

    entry = {"records": [["egain", "1010", {"id": "1010", "externalRef": 2**70}]], "next_id": 10000}
    assert codec.loads(codec.line(entry)) == entry

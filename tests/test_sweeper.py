"""uploader.sweeper against a real S3 server over HTTP (moto_server): sweep, reconcile, plan change, worker."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest

from uploader import audit
from uploader.db import Database
from uploader.index import ClipIndex, IndexedObject, insert
from uploader.retention import deadline_tags, epoch, format_utc, from_epoch, parse_utc
from uploader.s3_store import S3Store
from uploader.store import ObjectStore, StoreError
from uploader.sweeper import LOCAL_DELETE_ERROR, RetentionSweeper, SweepReport, retag_plan

from s3_fixtures import MotoServer

DAY = 86_400.0
NOW = epoch(parse_utc("2026-06-01T12:00:00Z"))


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(tmp_path / "uploader.db")
    yield database
    database.close()


def key_of(n: int, owner: str = "alice", ext: str = "mp4") -> str:
    return f"clips/cam-{owner}/2026/05/01/clip-{n:05d}.{ext}"


def indexed(key: str, *, ended_days_ago: float, days: int, owner: str = "alice", plan: str = "basic",
            local_path: Path | None = None) -> IndexedObject:  # fmt: skip
    wall_end = from_epoch(NOW - ended_days_ago * DAY)
    return IndexedObject(key=key, clip_id=key.rsplit("/", 1)[1].split(".")[0], owner=owner,
                         camera_hash=f"cam-{owner}", kind="clip", plan=plan, wall_end=format_utc(wall_end),
                         retain_until=epoch(wall_end) + days * DAY, size=4, sha256=None,
                         local_path=str(local_path) if local_path else None, uploaded=NOW - DAY)  # fmt: skip


def upload(store: ObjectStore, db: Database, objects: list[IndexedObject], *, index: bool = True) -> None:
    """What the outbox does: put with the deadline tags, then index."""
    def put(obj: IndexedObject) -> None:
        tags = deadline_tags({"event": "motion", "camera-hash": obj.camera_hash, "kind": obj.kind},
                             obj.wall_end, obj.plan, round((obj.retain_until - epoch(parse_utc(obj.wall_end))) / DAY))
        store.put_bytes(obj.key, b"clip", tags=tags)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, objects))
    if index:
        with db.tx() as conn:
            insert(conn, objects)


def keys_in(store: ObjectStore) -> set[str]:
    return {o.key for o in store.list_objects("")}


def count_calls(store: ObjectStore, name: str) -> list[int]:
    """Count calls to one method of this store instance (the real method still does the work)."""
    calls: list[int] = []
    real = getattr(store, name)

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    setattr(store, name, counted)
    return calls


# -- sweep --------------------------------------------------------------------------------------------


def test_past_deadlines_are_gone_from_s3_index_and_local_copies_future_ones_stay(
        s3_store: S3Store, db: Database, tmp_path: Path) -> None:  # fmt: skip
    local_old, local_new = tmp_path / "spool" / "old.mp4", tmp_path / "spool" / "new.mp4"
    local_old.parent.mkdir()
    local_old.write_bytes(b"old"), local_new.write_bytes(b"new")
    past = [indexed(key_of(1), ended_days_ago=8, days=7, local_path=local_old),
            indexed(key_of(1, ext="json"), ended_days_ago=8, days=7),
            indexed(key_of(2, owner="bob"), ended_days_ago=1, days=1)]  # due at this very second
    future = [indexed(key_of(3), ended_days_ago=6.99, days=7, local_path=local_new),
              indexed(key_of(4), ended_days_ago=0, days=3650)]  # fmt: skip
    upload(s3_store, db, past + future)
    sweeper = RetentionSweeper(s3_store, db, clock=Clock())

    report = sweeper.sweep()

    assert (report.deleted, report.failed, report.local_deleted) == (3, (), 1)
    assert keys_in(s3_store) == {o.key for o in future}
    assert not local_old.exists() and local_new.read_bytes() == b"new"
    assert {o.key for o in future} == {ClipIndex(db).get(o.key).key for o in future}
    assert ClipIndex(db).count() == 2
    log = audit.entries(db, action="delete")
    assert {(e.key, e.owner, e.deadline, e.at) for e in log} == {(o.key, o.owner, o.retain_until, NOW) for o in past}
    assert sweeper.sweep() == SweepReport(0, (), 0, sweeper.last_sweep.duration_s)  # nothing left to do


def test_deletion_is_batched_one_remove_call_per_thousand(s3_store: S3Store, db: Database) -> None:
    due = [indexed(key_of(n), ended_days_ago=10, days=7) for n in range(2500)]
    keep = [indexed(key_of(9999), ended_days_ago=1, days=7)]
    upload(s3_store, db, due + keep)
    calls = count_calls(s3_store, "remove_objects")

    report = RetentionSweeper(s3_store, db, clock=Clock(), batch=1000).sweep()

    assert len(calls) == 3 and report.deleted == 2500 and report.failed == ()
    assert keys_in(s3_store) == {keep[0].key} and ClipIndex(db).count() == 1
    assert len(audit.entries(db, action="delete")) == 2500


def test_a_failed_delete_stays_indexed_is_logged_once_and_does_not_block_the_rest(
        s3_store: S3Store, db: Database, caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    # A key S3 cannot take (empty segment) fails inside remove_objects; it is the most overdue, so with
    # batch=2 it heads every due() page: the sweep must still get past it.
    bad = indexed("clips//bad.mp4", ended_days_ago=30, days=1)
    good = [indexed(key_of(n), ended_days_ago=10, days=7) for n in range(5)]
    upload(s3_store, db, good)
    with db.tx() as conn:
        insert(conn, [bad])
    sweeper = RetentionSweeper(s3_store, db, clock=Clock(), batch=2)

    with caplog.at_level(logging.WARNING, logger="uploader.sweeper"):
        report = sweeper.sweep()

    assert report.deleted == 5 and report.failed == ((bad.key, "InvalidKey"),)
    assert ClipIndex(db).get(bad.key) == bad and ClipIndex(db).count() == 1
    assert keys_in(s3_store) == set()
    assert sum(bad.key in r.getMessage() for r in caplog.records) == 1
    assert [e.key for e in audit.entries(db, action="delete")] == [o.key for o in good]
    assert sweeper.sweep().failed == ((bad.key, "InvalidKey"),)  # retried next sweep


def test_a_local_copy_that_cannot_be_removed_keeps_the_row(s3_store: S3Store, db: Database, tmp_path: Path) -> None:
    stuck = tmp_path / "not-a-file.mp4"
    stuck.mkdir()  # unlink() of a directory fails: a real OSError, like a read-only spool
    obj = indexed(key_of(1), ended_days_ago=10, days=7, local_path=stuck)
    upload(s3_store, db, [obj])

    report = RetentionSweeper(s3_store, db, clock=Clock()).sweep()

    assert report.deleted == 0 and report.failed == ((obj.key, LOCAL_DELETE_ERROR),)
    assert keys_in(s3_store) == set() and ClipIndex(db).get(obj.key) is not None
    assert audit.entries(db, action="delete") == []


# -- reconcile ------------------------------------------------------------------------------------------


def test_reconcile_deletes_expired_unindexed_objects_only(s3_store: S3Store, db: Database) -> None:
    lost_old = indexed(key_of(1), ended_days_ago=10, days=7)
    lost_new = indexed(key_of(2), ended_days_ago=1, days=7)
    indexed_old = indexed(key_of(3), ended_days_ago=10, days=7)  # the sweep's job, not reconcile's
    upload(s3_store, db, [lost_old, lost_new], index=False)
    upload(s3_store, db, [indexed_old])
    s3_store.put_bytes(key_of(4), b"untagged")
    s3_store.put_bytes(key_of(5), b"bad tag", tags={"retain-until": "next tuesday", "plan": "basic"})
    s3_store.put_bytes("elsewhere/old.mp4", b"x", tags={"retain-until": "2020-01-01T00:00:00Z"})

    report = RetentionSweeper(s3_store, db, clock=Clock()).reconcile()

    assert report.deleted == 1 and report.failed == ()
    assert sorted(report.undated) == [key_of(4), key_of(5)]
    assert keys_in(s3_store) == {lost_new.key, indexed_old.key, key_of(4), key_of(5), "elsewhere/old.mp4"}
    (entry,) = audit.entries(db, action="reconcile-delete")
    assert (entry.key, entry.deadline, entry.at) == (lost_old.key, lost_old.retain_until, NOW)
    assert ClipIndex(db).get(indexed_old.key) is not None


def test_reconcile_forgets_indexed_objects_the_store_lost(s3_store: S3Store, db: Database, tmp_path: Path,
                                                          caplog) -> None:
    """A server that lost its data (found by the S3 fault suite): the index kept offering clips that were gone."""
    kept, lost, lost_with_copy = (indexed(key_of(n), ended_days_ago=1, days=7) for n in (1, 2, 3))
    copy = tmp_path / "copy.mp4"
    copy.write_bytes(b"clip")
    lost_with_copy = indexed(lost_with_copy.key, ended_days_ago=1, days=7, local_path=copy)
    other = indexed("elsewhere/x.mp4", ended_days_ago=1, days=7)  # not under the listed prefix: not judged
    upload(s3_store, db, [kept, lost, lost_with_copy, other])
    s3_store.remove_objects([lost.key, lost_with_copy.key])
    sweeper = RetentionSweeper(s3_store, db, clock=Clock())

    with caplog.at_level(logging.ERROR, logger="uploader.sweeper"):
        report = sweeper.reconcile()

    assert sorted(report.lost) == [lost.key, lost_with_copy.key] and sweeper.lost_total == 2
    index = ClipIndex(db)
    assert index.get(lost.key) is None, "a lost object is no longer offered"
    assert index.get(lost_with_copy.key) is not None, "its local copy still needs its retention"
    assert index.get(kept.key) is not None and index.get(other.key) is not None
    assert sorted(e.key for e in audit.entries(db, action="lost")) == [lost.key, lost_with_copy.key]
    assert len([r for r in caplog.records if "lost 2 indexed objects" in r.getMessage()]) == 1
    assert sweeper.reconcile().lost == (lost_with_copy.key,), "reported again while it is still missing"


# -- plan change ----------------------------------------------------------------------------------------


def outbox_row(db: Database, clip_id: str, *, owner: str, state: str, plan: str = "premium") -> None:
    wall_end = format_utc(from_epoch(NOW - 2 * DAY))
    tags = deadline_tags({"event": "motion", "kind": "clip"}, wall_end, plan, 30)
    with db.tx() as conn:
        conn.execute(
            "INSERT INTO outbox (clip_id, owner, camera_hash, clip_path, sidecar_path, clip_key, sidecar_key, tags,"
            " plan, size, sha256, wall_end, retain_until, state, created, updated)"
            " VALUES (?, ?, 'cam', 'c.mp4', 'c.json', ?, ?, ?, ?, 4, 'x', ?, ?, ?, ?, ?)",
            (clip_id, owner, f"clips/{clip_id}.mp4", f"clips/{clip_id}.json", json.dumps(tags), plan, wall_end,
             epoch(parse_utc(wall_end)) + 30 * DAY, state, NOW, NOW),
        )  # fmt: skip


def test_plan_change_retags_and_the_next_sweep_deletes_what_became_overdue(s3_store: S3Store, db: Database) -> None:
    alice = [indexed(key_of(1), ended_days_ago=10, days=30, plan="premium"),
             indexed(key_of(2), ended_days_ago=3, days=30, plan="premium"),
             indexed(key_of(2, ext="json"), ended_days_ago=3, days=30, plan="premium")]
    bob = indexed(key_of(1, owner="bob"), ended_days_ago=10, days=30, owner="bob", plan="premium")
    upload(s3_store, db, [*alice, bob])
    outbox_row(db, "a-pending", owner="alice", state="pending")
    outbox_row(db, "a-done", owner="alice", state="done")
    outbox_row(db, "b-pending", owner="bob", state="pending")
    clock = Clock()

    assert retag_plan(s3_store, db, owner="alice", plan="basic", days=7, clock=clock) == 3

    for obj in alice:
        new_deadline = parse_utc(obj.wall_end) + timedelta(days=7)
        assert s3_store.get_tags(obj.key) == {"retain-until": format_utc(new_deadline), "plan": "basic",
                                              "event": "motion", "camera-hash": "cam-alice", "kind": "clip"}
        row = ClipIndex(db).get(obj.key)
        assert (row.plan, row.retain_until) == ("basic", epoch(new_deadline))
    assert s3_store.get_tags(bob.key)["plan"] == "premium" and ClipIndex(db).get(bob.key).plan == "premium"
    assert {e.key for e in audit.entries(db, action="retag") if e.key} == {o.key for o in alice}

    rows = {r["clip_id"]: r for r in db.query("SELECT clip_id, plan, retain_until, tags FROM outbox")}
    pending_tags = json.loads(rows["a-pending"]["tags"])
    assert rows["a-pending"]["plan"] == "basic" and pending_tags["plan"] == "basic"
    assert pending_tags["retain-until"] == format_utc(from_epoch(NOW + 5 * DAY)) and pending_tags["event"] == "motion"
    assert rows["a-pending"]["retain_until"] == NOW + 5 * DAY
    assert rows["a-done"]["plan"] == "premium" and rows["b-pending"]["plan"] == "premium"

    report = RetentionSweeper(s3_store, db, clock=clock).sweep()  # 10 days ago + 7 days: 3 days overdue
    assert report.deleted == 1 and keys_in(s3_store) == {alice[1].key, alice[2].key, bob.key}


def test_plan_change_rejects_bad_input_before_touching_anything(s3_store: S3Store, db: Database) -> None:
    obj = indexed(key_of(1), ended_days_ago=1, days=30, plan="premium")
    upload(s3_store, db, [obj])
    for plan, days in (("basic", 0), ("bad&plan", 7)):
        with pytest.raises((ValueError, StoreError)):  # days < 1; a plan that is no valid tag value
            retag_plan(s3_store, db, owner="alice", plan=plan, days=days, clock=Clock())
    assert s3_store.get_tags(obj.key)["plan"] == "premium" and ClipIndex(db).get(obj.key) == obj


# -- worker ----------------------------------------------------------------------------------------------


def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_worker_survives_the_server_going_away_and_deletes_when_it_returns(
        restartable_s3: MotoServer, db: Database, caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    store = restartable_s3.info.store()
    due = indexed(key_of(1), ended_days_ago=10, days=7)
    upload(store, db, [due])
    restartable_s3.stop()
    sweeper = RetentionSweeper(store, db, clock=Clock(), interval_s=0.05, reconcile_every=3)
    with caplog.at_level(logging.WARNING, logger="uploader.sweeper"):
        sweeper.start()
        try:
            wait_for(lambda: sum("retention sweep failed" in r.getMessage() for r in caplog.records) >= 2)
            assert sweeper._thread is not None and sweeper._thread.is_alive()
            assert ClipIndex(db).get(due.key) is not None  # not forgotten while the delete could not happen
            restartable_s3.start()
            wait_for(lambda: ClipIndex(db).count() == 0)
            wait_for(lambda: sweeper.last_reconcile is not None)
        finally:
            sweeper.stop()
    assert sweeper._thread is None
    assert [e.key for e in audit.entries(db, action="delete")] == [due.key]
    # Regression: stop() must only interrupt the worker; a direct sweep() afterwards still runs to the end.
    upload(store, db, [indexed(key_of(2), ended_days_ago=10, days=7)])
    assert sweeper.sweep().deleted == 1 and ClipIndex(db).count() == 0

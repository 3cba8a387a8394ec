"""uploader.Outbox on a real SQLite file: exactly-once enqueue, claim order, one-transaction mark-done, recovery."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from uploader import audit
from uploader.db import Database
from uploader.index import ClipIndex, IndexedObject
from uploader.outbox import Outbox, OutboxItem


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_item(spool: Path, clip_id: str, *, owner: str = "alice", data: bytes = b"clip bytes") -> OutboxItem:
    spool.mkdir(parents=True, exist_ok=True)
    clip, sidecar = spool / f"{clip_id}.mp4", spool / f"{clip_id}.json"
    clip.write_bytes(data)
    sidecar.write_text(json.dumps({"clip_id": clip_id}))
    base = f"clips/cam1/2024/01/02/{clip_id}"
    return OutboxItem(
        clip_id=clip_id, owner=owner, camera_hash="cam1", clip_path=clip, sidecar_path=sidecar,
        clip_key=f"{base}.mp4", sidecar_key=f"{base}.json", tags={"plan": "basic", "kind": "clip"}, plan="basic",
        size=len(data), sha256=hashlib.sha256(data).hexdigest(), wall_end="2024-01-02T03:04:05Z",
        retain_until=1_800_000_000.0,
    )  # fmt: skip


def indexed(item: OutboxItem, key: str, kind: str, *, owner: str | None = None) -> IndexedObject:
    return IndexedObject(
        key=key, clip_id=item.clip_id, owner=owner if owner is not None else item.owner, camera_hash="cam1",
        kind=kind, plan=item.plan, wall_end=item.wall_end, retain_until=item.retain_until, size=item.size,
        sha256=item.sha256, local_path=None, uploaded=1.0,
    )  # fmt: skip


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def outbox(db: Database, clock: Clock) -> Outbox:
    return Outbox(db, clock=clock)


def test_enqueue_is_exactly_once_per_clip_and_round_trips(outbox: Outbox, tmp_path: Path) -> None:
    item = make_item(tmp_path, "c1")
    assert outbox.enqueue(item) is True
    assert outbox.enqueue(item) is False  # a rescan of the spool finds it again
    assert outbox.enqueue(make_item(tmp_path, "c1", data=b"other")) is False
    got = outbox.get("c1")
    assert got is not None and got.id is not None and (got.state, got.attempts, got.last_error) == ("pending", 0, None)
    assert got.clip_path == item.clip_path and got.sidecar_path == item.sidecar_path
    assert dict(got.tags) == item.tags and got.sha256 == item.sha256 and got.size == item.size
    assert got.retain_until == item.retain_until and got.kind == "clip"
    assert outbox.counts() == {"pending": 1, "inflight": 0, "done": 0, "failed": 0, "dropped": 0}
    assert outbox.get("nope") is None


def test_enqueue_stays_once_even_after_done(outbox: Outbox, tmp_path: Path) -> None:
    item = make_item(tmp_path, "c1")
    outbox.enqueue(item)
    outbox.mark_done(outbox.claim(), [])
    assert outbox.enqueue(item) is False and outbox.get("c1").state == "done"


def test_claim_takes_oldest_due_and_respects_next_attempt(outbox: Outbox, clock: Clock, tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        outbox.enqueue(make_item(tmp_path, name))
    first = outbox.claim()
    assert first is not None and (first.clip_id, first.state, first.attempts) == ("a", "inflight", 1)
    assert outbox.get("a").state == "inflight"
    outbox.mark_retry(first, "ConnectionError: down", 10.0)
    got = outbox.get("a")
    assert (got.state, got.attempts, got.last_error) == ("pending", 1, "ConnectionError: down")
    assert outbox.next_due() == pytest.approx(0.0)  # b and c are due now
    assert [outbox.claim().clip_id, outbox.claim().clip_id] == ["b", "c"]
    assert outbox.claim() is None  # a is not due yet
    assert outbox.next_due() == pytest.approx(clock.now + 10.0)
    clock.now += 10.0
    again = outbox.claim()
    assert again is not None and (again.clip_id, again.attempts) == ("a", 2)
    assert outbox.next_due() is None


def test_a_retried_item_goes_behind_items_never_tried(outbox: Outbox, clock: Clock, tmp_path: Path) -> None:
    outbox.enqueue(make_item(tmp_path, "a"))
    outbox.mark_retry(outbox.claim(), "InternalError", 1.0)
    outbox.enqueue(make_item(tmp_path, "b"))
    clock.now += 5.0
    assert outbox.claim().clip_id == "b"


def test_mark_done_indexes_in_the_same_transaction(outbox: Outbox, db: Database, tmp_path: Path) -> None:
    outbox.enqueue(make_item(tmp_path, "c1"))
    item = outbox.claim()
    objects = [indexed(item, item.clip_key, "clip"), indexed(item, item.sidecar_key, "sidecar")]
    assert outbox.mark_done(item, objects) is True
    assert outbox.get("c1").state == "done"
    index = ClipIndex(db)
    assert [o.key for o in index.for_clip("c1")] == sorted([item.clip_key, item.sidecar_key])
    assert index.get(item.clip_key) == objects[0]


def test_a_failing_index_insert_rolls_back_mark_done(outbox: Outbox, db: Database, tmp_path: Path) -> None:
    outbox.enqueue(make_item(tmp_path, "c1"))
    item = outbox.claim()
    good = indexed(item, item.clip_key, "clip")
    bad = IndexedObject(**{**good.__dict__, "key": item.sidecar_key, "owner": None})  # NOT NULL violation
    with pytest.raises(sqlite3.IntegrityError):
        outbox.mark_done(item, [good, bad])
    assert outbox.get("c1").state == "inflight"  # neither the state change ...
    assert ClipIndex(db).count() == 0  # ... nor the first, valid index row survived


def test_mark_done_of_an_erased_row_indexes_nothing(outbox: Outbox, db: Database, tmp_path: Path) -> None:
    outbox.enqueue(make_item(tmp_path, "c1"))
    item = outbox.claim()
    with db.tx() as conn:
        removed = Outbox.delete_for_owner(conn, "alice")
    assert [r.clip_id for r in removed] == ["c1"]
    assert outbox.mark_done(item, [indexed(item, item.clip_key, "clip")]) is False
    assert ClipIndex(db).count() == 0 and outbox.get("c1") is None


def test_failed_and_recover(outbox: Outbox, clock: Clock, tmp_path: Path) -> None:
    for name in ("a", "b", "c", "d"):
        outbox.enqueue(make_item(tmp_path, name))
    outbox.mark_failed(outbox.claim(), "NoSuchBucket: bucket 'x' does not exist")
    outbox.claim()  # b: left inflight, as by a crash
    outbox.mark_retry(outbox.claim(), "ConnectionError", 100.0)  # c: backing off
    done = outbox.claim()
    outbox.mark_done(done, [])
    assert outbox.get("a").state == "failed" and "NoSuchBucket" in outbox.get("a").last_error
    assert outbox.claim() is None  # failed items are parked, not retried
    assert outbox.recover() == 2
    assert {n: outbox.get(n).state for n in "abcd"} == {"a": "pending", "b": "pending", "c": "pending", "d": "done"}
    assert [outbox.claim().clip_id, outbox.claim().clip_id] == ["a", "b"]  # due now, oldest first
    assert outbox.claim() is None  # c keeps its backoff
    assert outbox.recover() == 2  # a and b were inflight again


def test_state_survives_reopening_the_database(tmp_path: Path) -> None:
    path = tmp_path / "uploader.db"
    first = Database(path)
    Outbox(first).enqueue(make_item(tmp_path, "c1"))
    Outbox(first).claim()
    first.close()
    again = Database(path)
    try:
        outbox = Outbox(again)
        assert outbox.get("c1").state == "inflight" and outbox.recover() == 1
        assert outbox.claim().attempts == 2
    finally:
        again.close()


def test_drop_marks_dropped_and_audits(outbox: Outbox, db: Database, tmp_path: Path) -> None:
    outbox.enqueue(make_item(tmp_path, "a"))
    outbox.enqueue(make_item(tmp_path, "b"))
    outbox.claim()  # a is being uploaded: not droppable
    assert outbox.drop("a", "spool quota") is None and outbox.get("a").state == "inflight"
    dropped = outbox.drop("b", "spool quota exceeded (drop-oldest)")
    assert dropped is not None and dropped.clip_id == "b" and dropped.clip_path == tmp_path / "b.mp4"
    assert outbox.get("b").state == "dropped" and outbox.drop("b", "again") is None
    assert outbox.drop("unknown", "x") is None
    entries = audit.entries(db, action="drop")
    assert [(e.key, e.owner, e.detail) for e in entries] == [
        (dropped.clip_key, "alice", "spool quota exceeded (drop-oldest)")
    ]
    assert outbox.counts()["dropped"] == 1 and [i.clip_id for i in outbox.pending()] == ["a"]


def test_pending_lists_open_items_oldest_first(outbox: Outbox, tmp_path: Path) -> None:
    for name in ("a", "b", "c", "d"):
        outbox.enqueue(make_item(tmp_path, name))
    outbox.mark_failed(outbox.claim(), "AccessDenied")
    outbox.mark_done(outbox.claim(), [])
    outbox.claim()
    assert [(i.clip_id, i.state) for i in outbox.pending()] == [("a", "failed"), ("c", "inflight"), ("d", "pending")]
    assert outbox.counts() == {"pending": 1, "inflight": 1, "done": 1, "failed": 1, "dropped": 0}


def test_delete_for_owner_removes_only_that_owner(outbox: Outbox, db: Database, tmp_path: Path) -> None:
    outbox.enqueue(make_item(tmp_path, "a1", owner="alice"))
    outbox.enqueue(make_item(tmp_path, "b1", owner="bob"))
    outbox.enqueue(make_item(tmp_path, "a2", owner="alice"))
    outbox.mark_done(outbox.claim(), [])  # a1 done: erasure removes every state
    with db.tx() as conn:
        removed = Outbox.delete_for_owner(conn, "alice")
    assert [(i.clip_id, i.owner) for i in removed] == [("a1", "alice"), ("a2", "alice")]
    assert outbox.get("a1") is None and outbox.get("a2") is None and outbox.get("b1") is not None


def test_delete_for_owner_rolls_back_with_the_erasure(outbox: Outbox, db: Database, tmp_path: Path) -> None:
    outbox.enqueue(make_item(tmp_path, "a1"))
    with pytest.raises(RuntimeError), db.tx() as conn:
        Outbox.delete_for_owner(conn, "alice")
        raise RuntimeError("erasure of the store failed")
    assert outbox.get("a1") is not None


# -- erasure exclusion, redacted sidecar (issue 9, defects 1 and 8) ---------------------------------


def test_no_claim_of_an_owner_being_erased(outbox: Outbox, tmp_path: Path) -> None:
    outbox.enqueue(make_item(tmp_path, "a1", owner="alice"))
    outbox.enqueue(make_item(tmp_path, "b1", owner="bob"))
    first, second = outbox.begin_erasure("alice"), outbox.begin_erasure("alice")  # two erasures at once
    assert outbox.claim().clip_id == "b1" and outbox.claim() is None, "alice's upload is held back"
    outbox.end_erasure(first)
    assert outbox.claim() is None, "until the last erasure of alice ends"
    outbox.end_erasure(second)
    assert outbox.claim().clip_id == "a1"


def test_an_erasure_marker_left_by_a_dead_process_expires(outbox: Outbox, clock: Clock, tmp_path: Path) -> None:
    from uploader.outbox import ERASURE_LEASE_S

    outbox.enqueue(make_item(tmp_path, "a1"))
    outbox.begin_erasure("alice")  # and the erasing process is killed: end_erasure never runs
    clock.now += ERASURE_LEASE_S - 1
    assert outbox.claim() is None
    clock.now += 2
    assert outbox.claim().clip_id == "a1"


def test_count_inflight_per_owner(outbox: Outbox, tmp_path: Path) -> None:
    for clip_id, owner in (("a1", "alice"), ("b1", "bob"), ("a2", "alice")):
        outbox.enqueue(make_item(tmp_path, clip_id, owner=owner))
    outbox.claim()
    outbox.claim()
    assert (outbox.count_inflight(), outbox.count_inflight(owner="alice"), outbox.count_inflight(owner="bob")) == (
        2, 1, 1)
    outbox.mark_done(outbox.get("a1"), [])
    assert outbox.count_inflight(owner="alice") == 0


def test_marks_say_whether_the_row_was_still_inflight(outbox: Outbox, db: Database, tmp_path: Path) -> None:
    outbox.enqueue(make_item(tmp_path, "a1"))
    outbox.enqueue(make_item(tmp_path, "a2"))
    one, two = outbox.claim(), outbox.claim()
    assert outbox.mark_retry(one, "timeout", 1.0) is True and outbox.mark_failed(two, "AccessDenied") is True
    with db.tx() as conn:
        Outbox.delete_for_owner(conn, "alice")  # erased meanwhile
    assert outbox.mark_retry(one, "timeout", 1.0) is False and outbox.mark_failed(two, "x") is False


def test_sidecar_body_round_trips_and_fills_only_open_rows(outbox: Outbox, tmp_path: Path) -> None:
    from dataclasses import replace

    outbox.enqueue(replace(make_item(tmp_path, "a1"), sidecar_body='{"camera_hash": "cam1"}'))
    outbox.enqueue(make_item(tmp_path, "a2"))
    outbox.enqueue(make_item(tmp_path, "a3"))
    assert outbox.get("a1").sidecar_body == '{"camera_hash": "cam1"}' and outbox.get("a2").sidecar_body is None
    outbox.mark_done(outbox.claim(), [])  # a1
    outbox.claim()
    outbox.mark_done(outbox.claim(), [])  # a3 done, a2 inflight
    assert outbox.set_sidecar_body("a2", "{}") is True and outbox.get("a2").sidecar_body == "{}"
    assert outbox.set_sidecar_body("a3", "{}") is False and outbox.get("a3").sidecar_body is None
    assert outbox.set_sidecar_body("unknown", "{}") is False


def test_a_version_1_database_gains_the_new_column_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE outbox (id INTEGER PRIMARY KEY, clip_id TEXT NOT NULL UNIQUE, owner TEXT NOT NULL,
            camera_hash TEXT NOT NULL, kind TEXT NOT NULL DEFAULT 'clip', clip_path TEXT NOT NULL,
            sidecar_path TEXT NOT NULL, clip_key TEXT NOT NULL, sidecar_key TEXT NOT NULL, tags TEXT NOT NULL,
            plan TEXT NOT NULL, size INTEGER NOT NULL, sha256 TEXT NOT NULL, wall_end TEXT NOT NULL,
            retain_until REAL NOT NULL, state TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt REAL NOT NULL DEFAULT 0, last_error TEXT, created REAL NOT NULL, updated REAL NOT NULL);
        INSERT INTO outbox (clip_id, owner, camera_hash, clip_path, sidecar_path, clip_key, sidecar_key, tags, plan,
            size, sha256, wall_end, retain_until, created, updated) VALUES ('old', 'alice', 'cam1', '/s/old.mp4',
            '/s/old.json', 'k.mp4', 'k.json', '{}', 'basic', 1, 'ab', '2024-01-02T03:04:05Z', 1.0, 1.0, 1.0);
        PRAGMA user_version = 1;
    """)
    conn.close()
    db = Database(path)
    try:
        outbox = Outbox(db)
        old = outbox.get("old")
        assert old is not None and old.sidecar_body is None and old.state == "pending"
        assert outbox.claim().clip_id == "old", "the erasures table exists too"
    finally:
        db.close()

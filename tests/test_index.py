"""uploader.ClipIndex and the audit log's repository methods on a real SQLite file (what edge_media calls
instead of writing SQL against the uploader's tables)."""

from __future__ import annotations

from pathlib import Path

from uploader import audit
from uploader.db import Database
from uploader.index import ClipIndex, IndexedObject, IndexSummary, LocalCopy, OwnerPlan
from uploader.index import insert as index_insert


def obj(key: str, *, owner: str = "alice", plan: str = "basic", wall_end: str = "2024-01-02T00:00:00Z",
        retain_until: float = 100.0, local_path: str | None = None, uploaded: float = 1.0) -> IndexedObject:
    return IndexedObject(key=key, clip_id=key.split("/")[-1].split(".")[0], owner=owner, camera_hash="cam1",
                         kind="clip", plan=plan, wall_end=wall_end, retain_until=retain_until, size=1, sha256=None,
                         local_path=local_path, uploaded=uploaded)  # fmt: skip


def fill(db: Database, *objects: IndexedObject) -> ClipIndex:
    with db.tx() as conn:
        index_insert(conn, objects)
    return ClipIndex(db)


def test_summary_counts_and_finds_the_next_deadline(db: Database) -> None:
    assert ClipIndex(db).get_summary() == IndexSummary(objects=0, next_deadline=None)
    index = fill(db, obj("a/1.mp4", retain_until=300.0), obj("a/2.mp4", retain_until=200.0))
    assert index.get_summary() == IndexSummary(objects=2, next_deadline=200.0)


def test_owner_plans_summarise_each_owner(db: Database) -> None:
    index = fill(db,
                 obj("a/1.mp4", plan="plus", wall_end="2024-01-03T00:00:00Z", retain_until=30.0),
                 obj("a/2.mp4", plan="basic", wall_end="2024-01-02T00:00:00Z", retain_until=20.0),
                 obj("b/1.mp4", owner="bob", retain_until=7.0))  # fmt: skip
    [alice, bob] = index.list_owner_plans()
    assert (alice.owner, alice.plans, alice.earliest_wall_end, alice.earliest_retain_until) == (
        "alice", 2, "2024-01-02T00:00:00Z", 20.0)
    assert bob == OwnerPlan("bob", "basic", 1, "2024-01-02T00:00:00Z", 7.0)


def test_local_copies_oldest_first_filtered_and_forgotten(db: Database, tmp_path: Path) -> None:
    index = fill(db, obj("a/1.mp4", local_path=str(tmp_path / "1.mp4"), uploaded=50.0),
                 obj("a/2.mp4", local_path=str(tmp_path / "2.mp4"), uploaded=10.0), obj("a/3.mp4"))
    assert index.list_local_copies() == [LocalCopy("a/2.mp4", tmp_path / "2.mp4", 10.0),
                                         LocalCopy("a/1.mp4", tmp_path / "1.mp4", 50.0)]
    assert [c.key for c in index.list_local_copies(uploaded_before=20.0)] == ["a/2.mp4"]
    index.forget_local_copy("a/2.mp4")
    assert [c.key for c in index.list_local_copies()] == ["a/1.mp4"]
    assert index.get("a/2.mp4") is not None and index.get("a/2.mp4").local_path is None, "the row stays"


def test_delete_for_owner_forgets_only_that_owner(db: Database) -> None:
    index = fill(db, obj("a/1.mp4"), obj("a/2.mp4"), obj("b/1.mp4", owner="bob"))
    with db.tx() as conn:
        assert ClipIndex.delete_for_owner(conn, "alice") == 2
    assert [o.key for o in index.for_owner("alice")] == [] and index.count() == 1


def test_audit_delete_for_owner_by_owner_and_key_prefix(db: Database) -> None:
    with db.tx() as conn:
        audit.record(conn, "export", owner="alice")
        audit.record(conn, "reconcile-delete", key="clips/a_1/x.mp4")  # no owner known, but alice's camera
        audit.record(conn, "delete", key="clips/aX1/y.mp4", owner="bob")  # "_" must not match as a wildcard
        audit.record(conn, "delete", key="clips/b/z.mp4", owner="bob")
    with db.tx() as conn:
        assert audit.delete_for_owner(conn, "alice", key_prefixes=["clips/a_1/"]) == 2
    assert [(e.action, e.key) for e in audit.entries(db)] == [("delete", "clips/aX1/y.mp4"),
                                                              ("delete", "clips/b/z.mp4")]

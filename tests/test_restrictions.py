"""Camera restrictions: owned by the privacy package, in force until the owner lifts them (issue 9, defect 2)."""

from __future__ import annotations

import inspect
import json
import sqlite3
from pathlib import Path

import pytest

from edge_media.cli import main
from edge_media.config import load_config
from edge_media.privacy import OwnerRights, Restriction, Restrictions
from edge_media.service.context import HubContext
from edge_media.service.hub import Service
from uploader.db import Database
from uploader.outbox import Outbox

from media import MovingBox, VideoSpec, make_video


@pytest.fixture
def hub(tmp_path: Path) -> Path:
    """A local-store hub config: alice's camera "porch" sees one visit per run."""
    video = make_video(tmp_path / "v.mp4", VideoSpec(duration_s=6, boxes=[MovingBox(2.0, 3.0)]))
    cfg = tmp_path / "hub.toml"
    cfg.write_text(f'[service]\ndata_dir = "{tmp_path / "data"}"\n[recording]\npre_roll_s = 1.0\npost_roll_s = 1.0\n'
                   f'[[cameras]]\nname = "porch"\nowner = "alice"\nrecord_url = "{video}"\n')
    return cfg


def run_service(cfg: Path) -> dict[str, int]:
    svc = Service(load_config(cfg))
    svc.run()
    counts = svc.outbox.counts()
    svc.close()
    return counts


def status(cfg: Path, capsys: pytest.CaptureFixture[str]) -> dict:
    capsys.readouterr()
    assert main(["storage", "status", "--config", str(cfg), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_a_restriction_outlives_the_owners_erasure(hub: Path, tmp_path: Path, capsys) -> None:
    """Regression (issue 9, defect 2): `storage restrict --camera porch` then `storage erase --owner alice --yes`
    deleted the restriction with the recordings, and the next run recorded porch again."""
    assert run_service(hub)["done"] == 1
    assert main(["storage", "restrict", "--config", str(hub), "--camera", "porch"]) == 0
    assert main(["storage", "erase", "--config", str(hub), "--owner", "alice", "--yes"]) == 0
    after = status(hub, capsys)
    assert after["restricted_cameras"] == ["porch"], "the erasure left the restriction in force"
    assert after["indexed_objects"] == 0 and sum(after["outbox"].values()) == 0, "and erased the recordings"

    counts = run_service(hub)
    assert sum(counts.values()) == 0, f"a restricted camera records nothing: {counts}"
    assert not list((tmp_path / "data" / "store" / "objects").rglob("*.*"))
    assert not list((tmp_path / "data" / "spool").rglob("*.mp4"))


def test_erase_requires_the_outbox() -> None:
    """`erase(outbox=None)` silently kept the owner's queued uploads: the outbox is now a required keyword."""
    param = inspect.signature(OwnerRights.erase).parameters["outbox"]
    assert param.kind is inspect.Parameter.KEYWORD_ONLY and param.default is inspect.Parameter.empty


def test_restrictions_add_list_remove(db: Database) -> None:
    repo = Restrictions(db)
    with db.tx() as conn:
        Restrictions.add(conn, Restriction("h1", "alice", 10.0))
        Restrictions.add(conn, Restriction("h2", "bob", 11.0))
        Restrictions.add(conn, Restriction("h1", "alice", 12.0))  # again: the newest time wins
    assert repo.list_restrictions() == [Restriction("h1", "alice", 12.0), Restriction("h2", "bob", 11.0)]
    with db.tx() as conn:
        assert Restrictions.remove(conn, "h2") and not Restrictions.remove(conn, "h2")
    assert repo.restricted_hashes() == {"h1"}


def test_a_restriction_rolls_back_with_its_transaction(db: Database) -> None:
    repo = Restrictions(db)
    with pytest.raises(RuntimeError), db.tx() as conn:
        Restrictions.add(conn, Restriction("h1", "alice", 1.0))
        raise RuntimeError("the audit line failed")
    assert repo.list_restrictions() == []


def test_restrictions_of_an_older_database_are_moved_to_the_privacy_table(tmp_path: Path) -> None:
    """Until schema 2 the uploader's schema held a ``restrictions`` table; its rows move, once, on open."""
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript("CREATE TABLE restrictions (camera_hash TEXT PRIMARY KEY, owner TEXT NOT NULL,"
                      " since REAL NOT NULL); INSERT INTO restrictions VALUES ('h1', 'alice', 5.0);")
    old.commit()
    old.close()
    db = Database(path)
    try:
        assert Restrictions(db).list_restrictions() == [Restriction("h1", "alice", 5.0)]
        assert Restrictions(db).list_restrictions() == [Restriction("h1", "alice", 5.0)], "idempotent"
        assert not db.query("SELECT name FROM sqlite_master WHERE name = 'restrictions'")
    finally:
        db.close()


def test_restricted_camera_reported_by_the_rights_api(tmp_path: Path, hub: Path) -> None:
    ctx = HubContext.open(load_config(hub))
    try:
        rights = OwnerRights(ctx.store, ctx.spool, ctx.db)
        rights.restrict(ctx.scope("alice"), "porch")
        rights.erase(ctx.scope("alice"), outbox=Outbox(ctx.db))
        assert rights.restricted() == {ctx.camera_hash("porch")}
        rights.unrestrict(ctx.scope("alice"), "porch")
        assert rights.restricted() == set()
    finally:
        ctx.close()

"""Fault suite: retention under load. Thousands of clips of many owners on mixed plans in a real S3 bucket (moto),
plan changes part-way, a sweep after every simulated step of days: after each sweep no object is past its
deadline, and nothing was deleted before its deadline. The expected deadlines are computed here, independently of
the uploader, from each clip's end and its owner's plan over time.

Short variant (plain run): 2,000 clips. Long (``pytest -m faults``): 10,000.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from uploader.db import Database
from uploader.index import IndexedObject, insert
from uploader.retention import deadline_tags, epoch, format_utc, from_epoch, parse_utc
from uploader.sweeper import RetentionSweeper, retag_plan

DAY = 86_400.0
NOW = epoch(parse_utc("2026-06-01T00:00:00Z"))
PLANS = {"basic": 7, "plus": 30, "pro": 90}
STEP_DAYS = 3.0
SIMULATED_DAYS = 60.0  # clips span 100 days and plans up to 90: some are still due later at the end
# part-way, three owners change plan (up, down, and down to the shortest)
PLAN_CHANGES = {30.0: [("owner-00", "basic"), ("owner-01", "pro"), ("owner-02", "basic")]}


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def make_clips(count: int, owners: int, rng: np.random.Generator) -> tuple[list[IndexedObject], dict[str, str]]:
    plan_of = {f"owner-{i:02d}": list(PLANS)[i % len(PLANS)] for i in range(owners)}
    objects = []
    for n in range(count):
        owner = f"owner-{int(rng.integers(owners)):02d}"
        plan = plan_of[owner]
        wall_end = from_epoch(NOW - float(rng.uniform(0, 100)) * DAY)  # clips of the last 100 days
        objects.append(IndexedObject(
            key=f"clips/cam-{owner}/clip-{n:05d}.mp4", clip_id=f"clip-{n:05d}", owner=owner,
            camera_hash=f"cam-{owner}", kind="clip", plan=plan, wall_end=format_utc(wall_end),
            retain_until=epoch(wall_end) + PLANS[plan] * DAY, size=4, sha256=None, local_path=None,
            uploaded=NOW - DAY))
    return objects, plan_of


def upload(store, db: Database, objects: list[IndexedObject]) -> None:
    def put(obj: IndexedObject) -> None:
        days = PLANS[obj.plan]
        store.put_bytes(obj.key, b"clip", tags=deadline_tags({"event": "motion", "camera-hash": obj.camera_hash,
                                                               "kind": "clip"}, obj.wall_end, obj.plan, days))
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, objects))
    with db.tx() as conn:
        insert(conn, objects)


@pytest.mark.faults
def test_retention_under_load_deletes_everything_due_and_nothing_early(s3_store, tmp_path, figures):
    count, owners = (10_000, 40) if figures.long else (2_000, 12)
    rng = np.random.default_rng(14)
    objects, plan_of = make_clips(count, owners, rng)
    db = Database(tmp_path / "hub.db")
    started = time.monotonic()
    upload(s3_store, db, objects)
    upload_s = time.monotonic() - started
    clock = Clock()
    sweeper = RetentionSweeper(s3_store, db, clock=clock)
    wall_end = {o.key: epoch(parse_utc(o.wall_end)) for o in objects}
    owner_of = {o.key: o.owner for o in objects}
    plans = dict(plan_of)  # the expected plan per owner, as it changes

    def deadline(key: str) -> float:
        return wall_end[key] + PLANS[plans[owner_of[key]]] * DAY

    gone: set[str] = set()
    overdue_after_sweep = early = sweeps = deleted = 0
    sweep_s = 0.0
    for step in np.arange(0.0, SIMULATED_DAYS + STEP_DAYS, STEP_DAYS):
        clock.now = NOW + float(step) * DAY
        for owner, plan in PLAN_CHANGES.get(float(step), []):
            retag_plan(s3_store, db, owner=owner, plan=plan, days=PLANS[plan], clock=clock)
            plans[owner] = plan
        t0 = time.monotonic()
        report = sweeper.sweep()
        sweep_s += time.monotonic() - t0
        sweeps += 1
        deleted += report.deleted
        assert not report.failed
        alive = {o.key for o in s3_store.list_objects("clips/")}
        now_gone = set(wall_end) - alive - gone
        early += sum(deadline(k) > clock.now for k in now_gone)  # deleted before its (current) deadline
        gone |= now_gone
        overdue_after_sweep = max(overdue_after_sweep, sum(deadline(k) <= clock.now for k in alive))
    figures.add("clips / owners / plans", "mixed", f"{count} / {owners} / {len(PLANS)}", True)
    figures.add("sweeps (one per 3 simulated days over 60 days; 3 plan changes at day 30)", "-", sweeps, True)
    figures.add("objects past their deadline after a sweep (max over sweeps)", "0", overdue_after_sweep,
                overdue_after_sweep == 0)
    figures.add("objects deleted before their deadline", "0", early, early == 0)
    figures.add("deleted by the sweeps / gone from the bucket", "equal", f"{deleted} / {len(gone)}",
                deleted == len(gone))
    figures.add("still stored at day 60, none of them due", "> 0", len(wall_end) - len(gone), len(gone) < count)
    figures.add("sweep time per 1,000 deletions (moto on loopback)", "-",
                f"{1000 * sweep_s / max(deleted, 1):.2f} s", True)
    figures.add("upload of the clips (8 threads, for scale)", "-", f"{upload_s:.1f} s", True)
    db.close()
    assert overdue_after_sweep == 0 and early == 0 and deleted == len(gone) and 0 < len(gone) < count

"""Upload-side benchmarks against a moto_server this script starts itself (loopback HTTP, like the tests).

sweeper: the retention sweeper deleting N indexed, overdue objects (put beforehand with a thread pool, not
timed), against the floor of a raw minio ``remove_objects`` of N objects in the same run. Also times a
``reconcile()`` over the same N objects while they are all indexed (the listing cost a hub pays each hour).

    python benchmarks/upload.py [--objects 10000] [--only sweeper] [--json benchmarks/results/upload.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from minio.deleteobjects import DeleteObject  # noqa: E402
from s3_fixtures import MotoServer, S3Server  # noqa: E402

from uploader.db import Database  # noqa: E402
from uploader.index import IndexedObject, insert  # noqa: E402
from uploader.retention import epoch, format_utc, from_epoch, retain_until  # noqa: E402
from uploader.s3_store import S3Store  # noqa: E402
from uploader.sweeper import RetentionSweeper  # noqa: E402

Bench = Callable[[S3Server, argparse.Namespace], dict]


def _objects(n: int, now: float) -> list[IndexedObject]:
    wall_end = from_epoch(now - 40 * 86_400)
    deadline = epoch(retain_until(wall_end, 30))  # ten days overdue
    return [IndexedObject(key=f"clips/cam{i % 8}/2026/05/01/clip-{i:06d}.mp4", clip_id=f"clip-{i:06d}",
                          owner=f"owner{i % 8}", camera_hash=f"cam{i % 8}", kind="clip", plan="basic",
                          wall_end=format_utc(wall_end), retain_until=deadline, size=16, sha256=None,
                          local_path=None, uploaded=now)  # fmt: skip
            for i in range(n)]


def _put_all(store: S3Store, objects: list[IndexedObject], threads: int) -> float:
    tags = {"retain-until": format_utc(from_epoch(objects[0].retain_until)), "plan": "basic", "kind": "clip"}
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda o: store.put_bytes(o.key, b"x" * 16, tags=tags), objects))
    return time.perf_counter() - started


def bench_sweeper(server: S3Server, args: argparse.Namespace) -> dict:
    now = time.time()
    objects = _objects(args.objects, now)
    store = server.store()
    put_s = _put_all(store, objects, args.threads)
    calls: list[int] = []
    real_remove = store.remove_objects
    store.remove_objects = lambda keys: (calls.append(1), real_remove(keys))[1]  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(Path(tmp) / "uploader.db")
        with db.tx() as conn:
            insert(conn, objects)
        sweeper = RetentionSweeper(store, db, clock=lambda: now, batch=args.batch)
        reconcile = sweeper.reconcile()  # every object indexed: the listing cost only, nothing deleted
        report = sweeper.sweep()
        db.close()
    assert report.deleted == args.objects and not report.failed and reconcile.deleted == 0, (report, reconcile)
    floor_s = _raw_remove_floor(server, objects, args.threads) if not args.no_floor else None
    out = {"objects": args.objects, "batch": args.batch, "put_s": round(put_s, 3),
           "sweep_s": round(report.duration_s, 3), "objects_per_s": round(args.objects / report.duration_s),
           "remove_objects_calls": len(calls), "reconcile_indexed_s": round(reconcile.duration_s, 3)}  # fmt: skip
    if floor_s is not None:
        out |= {"raw_remove_s": round(floor_s, 3), "ratio_sweep_vs_raw": round(report.duration_s / floor_s, 3)}
    return out


def _raw_remove_floor(server: S3Server, objects: list[IndexedObject], threads: int) -> float:
    """The same deletes with the bare minio client: no index, no audit, no transactions."""
    store = server.store()
    _put_all(store, objects, threads)
    client, names = server.client(), [DeleteObject(o.key) for o in objects]
    started = time.perf_counter()
    for i in range(0, len(names), 1000):
        errors = list(client.remove_objects(store.bucket, names[i : i + 1000]))
        assert not errors, errors[:3]
    return time.perf_counter() - started


# --- outbox throughput ---
# Outbox upload throughput vs raw minio fput_object lives here as ``bench_outbox(server, args) -> dict``,
# registered in BENCHMARKS below under "outbox".

BENCHMARKS: dict[str, Bench] = {"sweeper": bench_sweeper}


def _print_table(results: dict[str, dict]) -> None:
    for name, result in results.items():
        print(f"== {name}")
        for key, value in result.items():
            print(f"  {key:<24} {value:>12}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--objects", type=int, default=10_000, help="indexed objects for the sweeper")
    ap.add_argument("--batch", type=int, default=1000, help="sweeper batch (keys per remove_objects call)")
    ap.add_argument("--threads", type=int, default=16, help="uploader threads for the (untimed) set-up")
    ap.add_argument("--no-floor", action="store_true", help="skip the raw remove_objects floor")
    ap.add_argument("--only", choices=sorted(BENCHMARKS), action="append", help="run only these (repeatable)")
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "upload.json")
    args = ap.parse_args()
    server = MotoServer().start()
    try:
        results = {name: bench(server.info, args) for name, bench in BENCHMARKS.items()
                   if not args.only or name in args.only}  # fmt: skip
    finally:
        server.close()
    _print_table(results)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"server": "moto_server (loopback HTTP)", **results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

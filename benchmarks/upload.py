"""Upload-side benchmarks against a moto_server this script starts itself (loopback HTTP, like the tests).

outbox: N clip files (+ sidecars) through the durable outbox and the upload worker (stat, put with tags,
SQLite commit, local delete), against the floor of raw minio ``fput_object`` of the same files to the same
server in the same run (target >= 0.9x the floor's throughput).

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
sys.path[:0] = [str(ROOT)]

from minio.deleteobjects import DeleteObject  # noqa: E402

from edge_media.tools.devserver import MotoServer, S3Server  # noqa: E402
from uploader.db import Database  # noqa: E402
from uploader.index import IndexedObject, insert  # noqa: E402
from uploader.outbox import Outbox, OutboxItem  # noqa: E402
from uploader.retention import epoch, format_utc, from_epoch, retain_until  # noqa: E402
from uploader.s3_store import S3Store  # noqa: E402
from uploader.sweeper import RetentionSweeper  # noqa: E402
from uploader.worker import UploadWorker  # noqa: E402

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


def _clip_files(root: Path, n: int, size: int) -> list[tuple[Path, Path]]:
    import os

    root.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        clip, side = root / f"clip{i:04d}.mp4", root / f"clip{i:04d}.json"
        clip.write_bytes(os.urandom(size))  # incompressible, like H.264
        side.write_text(json.dumps({"clip_id": f"c{i}", "pad": "x" * 600}))
        out.append((clip, side))
    return out


def _raw_floor(server: S3Server, files: list[tuple[Path, Path]], bucket: str) -> float:
    client = server.client()
    if not client.bucket_exists(bucket):
        client.make_bucket(bucket)
    t0 = time.perf_counter()
    for clip, side in files:
        client.fput_object(bucket, f"raw/{clip.name}", str(clip), content_type="video/mp4")
        client.fput_object(bucket, f"raw/{side.name}", str(side), content_type="application/json")
    return time.perf_counter() - t0


def _outbox_run(server: S3Server, files: list[tuple[Path, Path]], bucket: str, work: Path, run: int) -> float:
    import hashlib
    import shutil

    work.mkdir(parents=True, exist_ok=True)
    db = Database(work / f"outbox{run}.db")
    outbox = Outbox(db)
    for clip, side in files:  # copies: the worker deletes what it uploaded (not timed)
        c, s = shutil.copy(clip, work / clip.name), shutil.copy(side, work / side.name)
        data = Path(c).read_bytes()
        key = f"clips/bench{run}/2026/01/01/{clip.stem}"
        outbox.enqueue(OutboxItem(
            clip_id=f"{run}-{clip.stem}", owner="bench", camera_hash=f"bench{run}", clip_path=Path(c),
            sidecar_path=Path(s), clip_key=key + ".mp4", sidecar_key=key + ".json",
            tags={"retain-until": "2026-12-31T00:00:00Z", "plan": "basic", "kind": "clip"}, plan="basic",
            size=len(data), sha256=hashlib.sha256(data).hexdigest(), wall_end="2026-01-01T00:00:00Z",
            retain_until=1.8e9))  # fmt: skip
    worker = UploadWorker(server.store(bucket=bucket), outbox)
    t0 = time.perf_counter()
    while worker.run_once():
        pass
    elapsed = time.perf_counter() - t0
    assert outbox.counts()["done"] == len(files), outbox.counts()
    db.close()
    return elapsed


def bench_outbox(server: S3Server, args: argparse.Namespace) -> dict:
    bucket = "bench-outbox"
    with tempfile.TemporaryDirectory() as tmp:
        files = _clip_files(Path(tmp) / "src", args.clips, args.clip_mb << 20)
        floors, outs = [], []
        for run in range(args.repeat):  # interleaved, so both see the same machine load
            floors.append(_raw_floor(server, files, bucket))
            outs.append(_outbox_run(server, files, bucket, Path(tmp) / f"w{run}", run))
    floor, outbox = sorted(floors)[len(floors) // 2], sorted(outs)[len(outs) // 2]
    mb = args.clips * args.clip_mb
    return {"clips": args.clips, "clip_mb": args.clip_mb, "raw_fput_s": round(floor, 3),
            "outbox_s": round(outbox, 3), "raw_mb_per_s": round(mb / floor, 1),
            "outbox_mb_per_s": round(mb / outbox, 1), "throughput_ratio": round(floor / outbox, 3)}


BENCHMARKS: dict[str, Bench] = {"outbox": bench_outbox, "sweeper": bench_sweeper}


def _print_table(results: dict[str, dict]) -> None:
    for name, result in results.items():
        print(f"== {name}")
        for key, value in result.items():
            print(f"  {key:<24} {value:>12}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--objects", type=int, default=10_000, help="indexed objects for the sweeper")
    ap.add_argument("--clips", type=int, default=40, help="clips through the outbox")
    ap.add_argument("--clip-mb", type=int, default=2, help="size of each clip (a 10 s 720p clip is ~2 MB)")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved outbox/floor rounds (median)")
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

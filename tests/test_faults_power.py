"""Power cuts (issue 14, fault suite 1): the real service, a subprocess, on four generated cameras of different
bitrates (a low-bitrate 640x360 one among them) with a real S3 server and a real partner bucket, is SIGKILLed at
random moments: mid-recording, just after a clip is finalized (its upload and its product-improvement sample in
flight), while the retention sweeper deletes expired objects; between runs an erasure and a sweep are killed too.
Then the service restarts. After the last, clean run:

* every clip that had at least one complete fragment (or was finished) on disk at a kill is in S3 exactly once,
  playable, with the events it had journaled (unless its owner was erased since);
* no duplicate objects, no orphan temp files, every SQLite database passes ``PRAGMA integrity_check`` and the
  outbox, clip index and bucket agree; seeded expired objects are gone, seeded unexpired ones are not;
* every object in the partner bucket was disclosed under the consenting owner's grant; none of the owner who
  never consented.

A plain run makes 5 trials; ``pytest -m faults`` makes 100.
"""

from __future__ import annotations

import io
import json
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import pytest
from minio.commonconfig import Tags

from edge_media.tools.devserver import S3Server
from uploader.retention import format_utc

from media import MovingBox, VideoSpec, make_video
from s3_fixtures import empty_bucket
from service_proc import LogWatch, decoded_frames, service_env, spawn

CLI = [sys.executable, "-m", "edge_media"]
SHORT_TRIALS, LONG_TRIALS = 5, 100
LOOP_S = 10.0  # each camera's file; it loops while the service runs
# name -> (owner, spec): bitrates from ~40 kB/s (static 640x360) to ~1 MB/s (noisy 1280x720)
CAMERAS = {
    "hall": ("alice", VideoSpec(width=1280, height=720, fps=10, gop=10, duration_s=LOOP_S, noise_sigma=4.0,
                                audio=True, boxes=[MovingBox(1.0, 2.5), MovingBox(6.0, 7.5)])),
    "yard": ("alice", VideoSpec(width=640, height=360, fps=10, gop=10, duration_s=LOOP_S, audio=True,
                                boxes=[MovingBox(2.0, 3.5), MovingBox(7.0, 8.0)])),
    "gate": ("bob", VideoSpec(width=960, height=540, fps=10, gop=20, duration_s=LOOP_S, noise_sigma=1.5,
                              audio=True, boxes=[MovingBox(1.5, 3.0)])),
    "shed": ("carol", VideoSpec(width=640, height=360, fps=10, gop=10, duration_s=LOOP_S, audio=True,
                                boxes=[MovingBox(3.0, 4.5)])),
}
# What a kill waits for: a moment after the service started, or a log line and a short random delay.
TRIGGERS = (None, "queued clip", "queued clip", "retention sweep deleted", "recording")
CLIP_ID = re.compile(r"/([0-9A-Za-z_-]+)\.(mp4|mkv)$")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass
class Expected:
    """A clip the hub held on disk at a kill: it must reach S3 exactly once with these event labels."""

    camera: str
    labels: set[str]
    trial: int


@dataclass
class Ledger:
    expected: dict[str, Expected] = field(default_factory=dict)
    erased: set[str] = field(default_factory=set)  # clip ids whose owner was erased after they were seen
    seeded_expired: set[str] = field(default_factory=set)
    seeded_kept: set[str] = field(default_factory=set)
    phases: Counter[str] = field(default_factory=Counter)
    partial_fragments: int = 0  # clips open at a kill with at least one complete fragment
    sent_while_withdrawn: set[str] = field(default_factory=set)  # partner samples that appeared meanwhile
    withdrawn_trials: int = 0


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("power")
    return {name: make_video(root / f"{name}.mp4", spec) for name, (_, spec) in CAMERAS.items()}


def _config(root: Path, s3: S3Server, videos: dict[str, Path], bucket: str, partner: str, *, loop: bool) -> Path:
    cams = "".join(f'[[cameras]]\nname = "{n}"\nowner = "{o}"\nrecord_url = "{videos[n]}"\nrealtime = true\n'
                   f"loop = {str(loop).lower()}\naudio_events = false\n" for n, (o, _) in CAMERAS.items())
    s3_table = f'endpoint = "{s3.endpoint}"\nsecure = {str(s3.secure).lower()}\n'
    text = (f'[service]\ndata_dir = "{root / "data"}"\n'
            "[recording]\npre_roll_s = 1.0\npost_roll_s = 1.0\nmax_clip_s = 8.0\n"
            '[storage]\nbackend = "s3"\nsweep_interval_s = 1\nreconcile_every = 1\n'
            f'[storage.s3]\n{s3_table}bucket = "{bucket}"\n'
            "[plans]\nbasic = 7\n[feedback]\nsend_interval_s = 1.0\n"
            f'[feedback.partner]\nbackend = "s3"\n[feedback.partner.s3]\n{s3_table}bucket = "{partner}"\n'
            "[api]\nenabled = false\n" + cams)
    path = root / ("hub.toml" if loop else "hub-once.toml")
    path.write_text(text)
    return path


def _cut(proc: subprocess.Popen, watch: LogWatch, rng: random.Random) -> str:
    """SIGKILL the service at a random moment; returns the trigger used."""
    trigger = rng.choice(TRIGGERS)
    if trigger is None or not watch.wait_for(trigger, timeout=20):
        time.sleep(rng.uniform(1.0, 8.0))
    else:
        time.sleep(rng.uniform(0.0, 0.4))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    return trigger or "time"


def complete_fragments(path: Path) -> int:
    """Complete moof+mdat pairs in a fragmented MP4, by walking its top-level boxes (what a reader would play)."""
    data, pos, moof, count = path.read_bytes(), 0, False, 0
    while pos + 8 <= len(data):
        size, kind = int.from_bytes(data[pos:pos + 4], "big"), data[pos + 4:pos + 8]
        if size == 1 and pos + 16 <= len(data):
            size = int.from_bytes(data[pos + 8:pos + 16], "big")
        if size < 8 or pos + size > len(data):
            break
        if kind == b"moof":
            moof = True
        elif kind == b"mdat" and moof:
            count, moof = count + 1, False
        pos += size
    return count


def _labels(events: list[dict]) -> set[str]:
    return {e["label"] for e in events}


def _snapshot(data: Path, trial: int, ledger: Ledger) -> str:
    """What the hub held on disk at the kill; returns the phase it was cut in."""
    spool, phases = data / "spool", set()
    for clip in sorted((spool / "tmp").glob("*.mp4")):
        if ".salvage." in clip.name:
            continue
        phases.add("recording")
        meta = spool / "tmp" / f"{clip.stem}.meta.json"
        if complete_fragments(clip) and meta.exists():
            info = json.loads(meta.read_text())
            ledger.expected.setdefault(clip.stem, Expected(info["camera"], _labels(info["events"]), trial))
            ledger.partial_fragments += 1
    for side in (spool / "ready").glob("*.json"):
        info = json.loads(side.read_text())
        if (spool / "ready" / info["file"]).exists():
            phases.add("finalized, not uploaded")
            ledger.expected.setdefault(info["clip_id"], Expected(info["camera"], _labels(info["events"]), trial))
    if any((data / "feedback").rglob("*.flac")) or any((data / "feedback").rglob("incoming/*.json")):
        phases.add("feedback queued")
    with _db(data) as conn:  # read as the restart will find it (the WAL included)
        if conn.execute("SELECT count(*) FROM outbox WHERE state = 'inflight'").fetchone()[0]:
            phases.add("uploading")
        if conn.execute("SELECT count(*) FROM feedback_outbox WHERE state = 'inflight'").fetchone()[0]:
            phases.add("feedback sending")
    if not phases:
        phases.add("idle")
    for phase in phases:
        ledger.phases[phase] += 1
    return "+".join(sorted(phases))


def _seed(client, bucket: str, ledger: Ledger, rng: random.Random) -> None:
    """Unindexed objects the sweeper's reconcile finds: six past their deadline, two not."""
    now = datetime.now(UTC)
    for expired in [True] * 6 + [False] * 2:
        key = f"clips/{uuid.uuid4().hex[:16]}/2026/01/01/seed-{uuid.uuid4().hex}.mp4"
        deadline = now + (timedelta(days=-rng.randint(1, 30)) if expired else timedelta(days=30))
        tags = Tags.new_object_tags()
        tags.update({"retain-until": format_utc(deadline), "plan": "basic", "kind": "clip"})
        client.put_object(bucket, key, io.BytesIO(b"x" * 64), 64, tags=tags)
        (ledger.seeded_expired if expired else ledger.seeded_kept).add(key)


def _db(data: Path) -> sqlite3.Connection:
    return sqlite3.connect(str(data / "edge-media.db"), timeout=30)


def _erase_carol(cfg: Path, env: dict[str, str], data: Path, ledger: Ledger, rng: random.Random) -> None:
    """Kill an erasure part-way, then run it again to the end, as an owner would."""
    with spawn([*CLI, "storage", "erase", "--owner", "carol", "--yes", "--config", str(cfg)], env) as (proc, _):
        time.sleep(rng.uniform(0.5, 2.5))
        proc.send_signal(signal.SIGKILL)
    done = subprocess.run([*CLI, "storage", "erase", "--owner", "carol", "--yes", "--config", str(cfg)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    ledger.erased |= {cid for cid, e in ledger.expected.items() if e.camera == "shed"}
    with _db(data) as conn:
        left = conn.execute("SELECT count(*) FROM objects WHERE owner = 'carol'").fetchone()[0]
        open_ = conn.execute("SELECT count(*) FROM outbox WHERE owner = 'carol' AND state != 'done'").fetchone()[0]
    assert left == 0 and open_ == 0, f"erasure left {left} indexed objects, {open_} open uploads"


def _sweep(cfg: Path, env: dict[str, str], rng: random.Random) -> None:
    with spawn([*CLI, "storage", "sweep", "--reconcile", "--config", str(cfg)], env) as (proc, _):
        time.sleep(rng.uniform(0.5, 2.5))
        proc.send_signal(signal.SIGKILL)


def _final_run(cfg: Path, env: dict[str, str], data: Path) -> str:
    """The cameras play once and the service exits after draining; again until the outbox is empty."""
    logs = ""
    for _ in range(3):
        res = subprocess.run([*CLI, "run", "--config", str(cfg)], capture_output=True, text=True, env=env,
                             timeout=300)
        assert res.returncode == 0, res.stderr[-3000:]
        logs += res.stderr
        with _db(data) as conn:
            open_ = conn.execute("SELECT count(*) FROM outbox WHERE state != 'done'").fetchone()[0]
            queued = conn.execute("SELECT count(*) FROM feedback_outbox").fetchone()[0]
        if not open_ and not queued:
            break
    return logs


def _consent(action: str, cfg: Path, env: dict[str, str]) -> None:
    res = subprocess.run([*CLI, "consent", action, "--config", str(cfg), "--owner", "alice",
                          "--purpose", "product-improvement", "--yes"], capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr


def _samples(client, partner: str) -> set[str]:
    return {o.object_name for o in client.list_objects(partner, prefix="samples/", recursive=True)}


def _objects(client, bucket: str) -> list:
    return list(client.list_objects(bucket, recursive=True))


def _overlaps(spans: list[tuple[str, float, float, str]]) -> list[tuple[str, str]]:
    """Pairs of clips of one camera that cover the same time: the same footage uploaded twice under two ids
    (a pre-roll may overlap the previous clip's tail by a second; that is not it)."""
    found = []
    for cam in {s[0] for s in spans}:
        mine = sorted(s for s in spans if s[0] == cam)
        for (_, s1, e1, a), (_, s2, e2, b) in zip(mine, mine[1:], strict=False):
            if min(e1, e2) - s2 > 0.5 * min(e1 - s1, e2 - s2):
                found.append((a, b))
    return found


def _orphans(data: Path) -> list[str]:
    spool = data / "spool"
    leftovers = [*(spool / "tmp").iterdir(), *(spool / "ready").iterdir()]
    leftovers += [p for p in data.rglob("*") if p.is_file() and (p.name.startswith(".") and p.suffix == ".tmp"
                                                                 or ".salvage." in p.name)]
    incoming = data / "feedback" / "incoming"
    if incoming.is_dir():
        leftovers += list(incoming.iterdir())
    return sorted({str(p.relative_to(data)) for p in leftovers})


@pytest.mark.faults
def test_power_cuts_lose_nothing_duplicate_nothing_and_send_nothing_without_consent(
        videos, tmp_path, s3_server: S3Server, figures) -> None:
    trials = LONG_TRIALS if figures.long else SHORT_TRIALS
    rng = random.Random(20261201)
    bucket, partner = f"cuts-{uuid.uuid4().hex[:10]}", f"partner-{uuid.uuid4().hex[:10]}"
    env = service_env(s3_server)
    cfg = _config(tmp_path, s3_server, videos, bucket, partner, loop=True)
    once = _config(tmp_path, s3_server, videos, bucket, partner, loop=False)
    data, client, ledger = tmp_path / "data", s3_server.client(), Ledger()
    client.make_bucket(bucket)
    _consent("grant", cfg, env)
    withdrawn_at: set[str] | None = None
    started, triggers = time.monotonic(), Counter[str]()
    try:
        for trial in range(trials):
            _seed(client, bucket, ledger, rng)
            with spawn([*CLI, "run", "--config", str(cfg)], env) as (proc, watch):
                triggers[_cut(proc, watch, rng)] += 1
            assert "Traceback" not in watch.join(), watch.join()[-3000:]
            _snapshot(data, trial, ledger)
            if withdrawn_at is not None:
                ledger.withdrawn_trials += 1
            if trial == trials // 3:  # the owner withdraws between two power cuts ...
                _consent("withdraw", cfg, env)
                withdrawn_at = _samples(client, partner)
            elif trial == 2 * trials // 3 and withdrawn_at is not None:  # ... and consents again later
                ledger.sent_while_withdrawn = _samples(client, partner) - withdrawn_at
                _consent("grant", cfg, env)
                withdrawn_at = None
            if rng.random() < 0.25:
                _erase_carol(cfg, env, data, ledger, rng)
                ledger.phases["erasing"] += 1
            if rng.random() < 0.25:
                _sweep(cfg, env, rng)
                ledger.phases["sweeping (CLI)"] += 1
        trial_s = (time.monotonic() - started) / trials
        logs = _final_run(once, env, data)
        _verify(client, bucket, partner, data, ledger, logs, trials, trial_s, triggers, figures)
    finally:
        empty_bucket(s3_server, bucket)
        empty_bucket(s3_server, partner)


def _verify(client, bucket, partner, data, ledger, logs, trials, trial_s, triggers, figures) -> None:
    objects = _objects(client, bucket)
    names = {o.object_name for o in objects}
    media = [o for o in objects if CLIP_ID.search(o.object_name) and "/seed-" not in o.object_name]
    per_clip = Counter(CLIP_ID.search(o.object_name).group(1) for o in media)
    sidecars = {o.object_name for o in objects if o.object_name.endswith(".json")}
    wanted = {cid: e for cid, e in ledger.expected.items() if cid not in ledger.erased}
    lost = sorted(cid for cid in wanted if per_clip[cid] == 0)
    duplicates = sorted(cid for cid, n in per_clip.items() if n > 1)
    missing_events, undecodable, spans = [], [], []
    for o in media:
        cid = CLIP_ID.search(o.object_name).group(1)
        side_key = CLIP_ID.sub(f"/{cid}.json", o.object_name)
        if side_key not in sidecars:
            missing_events.append(cid)
            continue
        body = json.loads(client.get_object(bucket, side_key).read())
        spans.append((body["camera_hash"], datetime.fromisoformat(body["wall_start"]).timestamp(),
                       datetime.fromisoformat(body["wall_end"]).timestamp(), cid))
        if cid in wanted and not wanted[cid].labels <= _labels(body["events"]):
            missing_events.append(cid)
    overlapping = _overlaps(spans)
    for o in media[:200]:
        try:
            if decoded_frames(client, bucket, o.object_name) == 0:
                undecodable.append(o.object_name)
        except av.error.FFmpegError as exc:
            undecodable.append(f"{o.object_name}: {exc}")
    with _db(data) as conn:
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
        indexed = {r[0] for r in conn.execute("SELECT key FROM objects")}
        outbox = dict(conn.execute("SELECT state, count(*) FROM outbox GROUP BY state").fetchall())
        disclosed = dict(conn.execute("SELECT sample_id, owner FROM feedback_disclosures").fetchall())
        queued = conn.execute("SELECT count(*) FROM feedback_outbox").fetchone()[0]
    clip_keys = {o.object_name for o in objects if "/seed-" not in o.object_name}
    unindexed, vanished = sorted(clip_keys - indexed), sorted(indexed - names)
    partner_ids = {m for key in _samples(client, partner) for m in UUID.findall(key)}
    without_consent = sorted(sid for sid in partner_ids if disclosed.get(sid) != "alice")
    bob_disclosed = sum(owner != "alice" for owner in disclosed.values())
    expired_left = sorted(ledger.seeded_expired & names)
    kept_deleted = sorted(ledger.seeded_kept - names)
    orphans = _orphans(data)
    tracebacks = logs.count("Traceback")

    rows = [
        ("trials (SIGKILL of the running service)", ">= 100 long, >= 5 short", trials, trials >= 5),
        ("kill triggers", "random moment or a log line + 0-0.4 s", dict(triggers), True),
        ("state at the kills", "recording, finalizing, uploading, feedback, sweeping, erasing",
         dict(ledger.phases), True),
        ("clips on disk at a kill (open with >= 1 complete fragment)", "> 0",
         f"{len(ledger.expected)} ({ledger.partial_fragments} open)", len(ledger.expected) > 0),
        ("of those, lost (not in S3; owner not erased since)", "0", len(lost), not lost),
        ("clips in S3 more than once", "0", len(duplicates), not duplicates),
        ("clips of one camera covering the same time twice (> half the shorter)", "0", len(overlapping),
         not overlapping),
        ("clips without their events", "0", len(missing_events), not missing_events),
        ("clips that do not decode (of those decoded / in S3)", "0",
         f"{len(undecodable)} of {min(len(media), 200)} / {len(media)}", not undecodable),
        ("bucket objects not in the clip index / index rows not in the bucket", "0 / 0",
         f"{len(unindexed)} / {len(vanished)}", not unindexed and not vanished),
        ("outbox after the last run", "all done", outbox, set(outbox) <= {"done"}),
        ("orphan temp files", "0", len(orphans), not orphans),
        ("PRAGMA integrity_check", "ok", integrity, integrity == "ok"),
        ("seeded expired objects left / unexpired ones deleted", "0 / 0",
         f"{len(expired_left)} / {len(kept_deleted)}", not expired_left and not kept_deleted),
        ("partner objects (samples) / sent without a consenting grant", "> 0 / 0",
         f"{len(partner_ids)} / {len(without_consent)}", partner_ids and not without_consent),
        ("samples disclosed for the owner who never consented", "0", bob_disclosed, bob_disclosed == 0),
        (f"samples sent while consent was withdrawn ({ledger.withdrawn_trials} trials)", "0",
         len(ledger.sent_while_withdrawn), ledger.withdrawn_trials > 0 and not ledger.sent_while_withdrawn),
        ("feedback queue after the last run", "empty", queued, queued == 0),
        ("tracebacks in the last run's log", "0", tracebacks, tracebacks == 0),
        ("seconds per trial", "-", f"{trial_s:.1f}", True),
    ]
    for row in rows:
        figures.add(*row)
    failed = [f"{name}: {measured}" for name, _, measured, ok in rows if not ok]
    details = {"lost": lost[:10], "duplicates": duplicates[:10], "overlapping": overlapping[:5],
               "missing_events": missing_events[:10],
               "undecodable": undecodable[:5], "unindexed": unindexed[:5], "vanished": vanished[:5],
               "orphans": orphans[:10], "without_consent": without_consent[:5], "expired_left": expired_left[:5]}
    assert not failed, f"{failed}\n{details}"

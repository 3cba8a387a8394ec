"""Fault suite: S3 faults while the real service records. File cameras replay at real time (clips keep coming)
while a fault-injecting proxy (``s3_proxy.FaultProxy``) between the service and moto_server answers 5xx, slows
down, resets uploads mid-body, hangs, or the server loses its data behind the service's back.

Checked: the spool stays within its quota at every sample, the backlog drains after each fault ends, every clip
recorded is in S3 exactly once and plays (PyAV), one warning line per outage (not one per retry), and the hub's
Prometheus metrics show the failures and the backlog. Short variant (plain run): one round of faults; long
(``pytest -m faults``): more rounds and longer outages.

Timing is shortened where production waits minutes: the store's read timeout (30 s in production) is 2 s and the
upload worker backs off from 0.25 s up to 2 s (production: 2 s up to 600 s), so an outage and its drain fit in
seconds. Everything else is the shipped service on loopback.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import av
import pytest
from minio.deleteobjects import DeleteObject
from minio.error import S3Error
from prometheus_client.parser import text_string_to_metric_families

from edge_media.config import parse_config
from edge_media.service.bus import Notice, StorageNotice
from edge_media.service.hub import Service
from uploader import audit
from uploader.index import ClipIndex
from uploader.sweeper import RetentionSweeper

from media import MovingBox, VideoSpec, make_video
from s3_fixtures import S3Server, empty_bucket
from s3_proxy import FaultProxy

MIB = 1 << 20
DAY = 86_400.0
READ_TIMEOUT_S = 2.0  # production: 30 s; a hang must end in a timeout either way
BACKOFF = {"backoff_initial_s": 0.25, "backoff_cap_s": 2.0}  # production: 2 s .. 600 s
DRAIN_TARGET_S = 10.0  # after heal: the backoff cap, then the held clips' uploads
PHASE_TIMEOUT_S = 30.0
VISITS = [MovingBox(1.0, 2.0), MovingBox(4.5, 5.5), MovingBox(8.0, 9.0)]  # 3 clips per camera per 10 s replay
STORE_DOWN = "store unreachable"  # the upload worker's one line when an outage begins ...
STORE_BACK = "store reachable again"  # ... and when it ends
FAULT_KINDS = {"fail_500", "fail_503", "slow", "reset", "hang"}

CONFIG = """
[service]
data_dir = "{data}"
[recording]
pre_roll_s = 1.0
post_roll_s = 1.0
spool_quota_bytes = {quota}
[audio]
enabled = false
[storage]
plan = "basic"
[plans]
basic = 7
[notify]
storage_down_after_s = 0
{cameras}
"""


@pytest.fixture(scope="module")
def small_source(tmp_path_factory) -> Path:
    """~250 KB clips: many of them, cheap to decode."""
    return make_video(tmp_path_factory.mktemp("s3faults") / "small.mp4", VideoSpec(duration_s=10, boxes=VISITS))


@pytest.fixture(scope="module")
def big_source(tmp_path_factory) -> Path:
    """Sensor noise makes ~2 MB clips: three cameras fill a 16 MiB spool within seconds of an outage."""
    spec = VideoSpec(duration_s=7, boxes=VISITS[:2], noise_sigma=8.0)  # 7 s: less to encode, same clip rate
    return make_video(tmp_path_factory.mktemp("s3faults") / "big.mp4", spec)


# -- the hub and what we watch of it ------------------------------------------------------------------


@dataclass
class Hub:
    """The real service, its store behind ``proxy``, on a bucket of its own."""

    svc: Service
    proxy: FaultProxy
    server: S3Server  # the S3 server itself, for the test's own look at the bucket
    bucket: str
    notices: list[StorageNotice] = field(default_factory=list)  # store_unreachable, as they begin
    stopped: bool = False

    def on_notice(self, notice: Notice) -> None:
        if isinstance(notice, StorageNotice) and notice.problem == "store_unreachable" and notice.active:
            self.notices.append(notice)

    def stop(self) -> None:
        """Idempotent; heals first, so a test failing mid-fault does not leave the service draining into a hang."""
        if not self.stopped:
            self.proxy.heal()
            self.svc.stop()
            self.stopped = True


StartHub = Callable[[Path, int, int], Hub]  # (source, cameras, quota) -> a running hub


@pytest.fixture
def hubs(tmp_path: Path, s3_server: S3Server) -> Iterator[StartHub]:
    """Starts hubs on file cameras that replay at real time; afterwards stops them and empties their buckets."""
    if s3_server.secure:
        pytest.skip("the fault proxy speaks plain HTTP")
    started: list[Hub] = []

    def start(source: Path, cameras: int, quota: int) -> Hub:
        proxy = FaultProxy(s3_server.endpoint).start()
        cams = "".join(f'[[cameras]]\nname = "cam{i}"\nowner = "alice"\nrecord_url = "{source}"\n'
                       "realtime = true\nloop = true\n" for i in range(cameras))  # fmt: skip
        data = tmp_path / f"hub{len(started)}"
        config = parse_config(CONFIG.format(data=data, quota=quota, cameras=cams), source="faults.toml")
        bucket = f"edge-media-faults-{uuid.uuid4().hex[:12]}"
        via_proxy = dataclasses.replace(s3_server, endpoint=proxy.endpoint)
        svc = Service(config, store=via_proxy.store(bucket, read_timeout=READ_TIMEOUT_S,
                                                    connect_timeout=READ_TIMEOUT_S))  # fmt: skip
        for name, value in BACKOFF.items():  # the worker's own knobs; not in the config
            setattr(svc.uploader, name, value)
        hub = Hub(svc, proxy, s3_server, bucket)
        started.append(hub)
        svc.bus.subscribe(hub.on_notice)
        svc.start()
        return hub

    yield start
    for hub in started:
        hub.stop()
        hub.svc.close()
        hub.proxy.close()
        empty_bucket(s3_server, hub.bucket)


def metric(svc: Service, name: str, **labels: str) -> float:
    """One sample of the hub's Prometheus text, as a scrape reads it (summed over unnamed labels)."""
    total = 0.0
    for family in text_string_to_metric_families(svc.metrics.render().decode()):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def backlog(svc: Service) -> int:
    counts = svc.outbox.counts()
    return counts["pending"] + counts["inflight"]


def recorded(svc: Service) -> int:
    return int(metric(svc, "edge_media_clips_recorded_total"))


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


class Sampler:
    """Watches the spool every 50 ms (the quota must hold at every instant, not only at the end) and scrapes the
    backlog from the metrics every 0.5 s."""

    def __init__(self, svc: Service) -> None:
        self.svc = svc
        self.max_spool = 0
        self.max_backlog_metric = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fault-sampler", daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        tick = 0
        while not self._stop.wait(0.05):
            self.max_spool = max(self.max_spool, self.svc.spool.usage_bytes())
            tick += 1
            if tick % 10 == 0:
                depth = sum(metric(self.svc, "edge_media_outbox_depth", state=s) for s in ("pending", "inflight"))
                self.max_backlog_metric = max(self.max_backlog_metric, depth)


# -- one fault at a time ----------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    outage: bool  # expected to fail uploads (an outage) or only to slow them down
    failures: int = 0  # the worker's retryable failures during the fault
    drain_s: float = 0.0  # heal -> backlog 0
    drained: bool = False
    down: list[str] = field(default_factory=list)  # WARNING+ lines about the store during the phase and drain
    back_lines: int = 0
    recorded: int = 0  # clips the cameras finished during the fault


def run_phase(hub: Hub, caplog: pytest.LogCaptureFixture, name: str,
              faults: list[Callable[[], None]], *, outage: bool, hold_s: float, min_faults: int = 1,
              until: Callable[[], bool] = lambda: True) -> Phase:  # fmt: skip
    """Switch ``faults`` on one after the other over at least ``hold_s``: an outage until the worker failed twice
    (the store is down, not blipping), any other fault until ``min_faults`` requests met it and a clip went
    through; both also ``until`` it says so. Then heal and time the drain."""
    svc, proxy, phase = hub.svc, hub.proxy, Phase(name, outage)
    mark, failed0, rec0, done0 = len(caplog.records), svc.uploader.failed_retryable, recorded(svc), uploaded(svc)
    faulted0, notices0, steps, started = proxy.faulted, len(hub.notices), list(faults), time.monotonic()
    step_faulted = [faulted0]  # the proxy's count when the current step began

    def held() -> bool:
        elapsed = time.monotonic() - started
        # The next fault of a sequence comes, without a heal in between, once this one met a request.
        due = hold_s * (len(faults) - len(steps)) / len(faults)
        if steps and elapsed >= due and (len(steps) == len(faults) or proxy.faulted > step_faulted[0]):
            step_faulted[0] = proxy.faulted
            steps.pop(0)()
        if elapsed < hold_s or steps or not until():
            return False
        if outage:  # down, not blipping: two failures, and the health poll (every 2 s) saw it
            return svc.uploader.failed_retryable - failed0 >= 2 and len(hub.notices) > notices0
        return proxy.faulted - faulted0 >= min_faults and uploaded(svc) > done0

    wait_until(held, PHASE_TIMEOUT_S)
    phase.failures, phase.recorded = svc.uploader.failed_retryable - failed0, recorded(svc) - rec0
    proxy.heal()
    healed = time.monotonic()
    phase.drained = wait_until(lambda: backlog(svc) == 0, PHASE_TIMEOUT_S)
    phase.drain_s = time.monotonic() - healed
    lines = caplog.records[mark:]
    phase.down = [r.getMessage() for r in store_lines(lines)]
    phase.back_lines = sum(STORE_BACK in r.getMessage() for r in lines)
    return phase


def uploaded(svc: Service) -> int:
    return svc.outbox.counts()["done"]


def more_uploads(svc: Service, n: int) -> bool:
    done = uploaded(svc)
    return wait_until(lambda: uploaded(svc) >= done + n, PHASE_TIMEOUT_S)


def store_lines(records: list[logging.LogRecord]) -> list[logging.LogRecord]:
    """WARNING+ lines about the store: the upload worker's, the S3 client's and its HTTP library's."""
    about_store = ("uploader", "urllib3", "minio")
    return [r for r in records if r.levelno >= logging.WARNING
            and (r.name.startswith(about_store) or "store" in r.getMessage().lower())]  # fmt: skip


# -- what the bucket holds -----------------------------------------------------------------------------


@dataclass
class Stored:
    rows: int  # clips the outbox says are uploaded
    in_s3_once: int  # of those: clip and sidecar listed, bytes and sidecar matching, each stored by one PUT
    playable: int
    missing: list[str]  # keys the outbox says are uploaded, not in the bucket (and not lost by the server)
    extra: list[str]  # objects no outbox row accounts for
    stored_twice: list[str]  # keys the proxy saw stored more than once


def audit_bucket(hub: Hub, lost: frozenset[str] = frozenset()) -> Stored:
    """Compare the bucket (listed directly, not through the proxy) with the outbox; ``lost``: keys the server lost."""
    rows = hub.svc.ctx.db.query("SELECT clip_id, clip_key, sidecar_key, sha256 FROM outbox WHERE state = 'done'")
    store = hub.server.store(hub.bucket)
    listed = {o.key for o in store.list_objects("")}
    expected = {k for r in rows for k in (r["clip_key"], r["sidecar_key"])}
    twice = {k for path, n in hub.proxy.stored.items() if n > 1 and (k := path.split("/", 2)[-1]) in expected}
    once = playable = 0
    for row in rows:
        keys = {row["clip_key"], row["sidecar_key"]}
        if keys & lost or not keys <= listed:
            continue
        data = store.get_object(row["clip_key"])  # the store checks the bytes against their stored sha256
        sidecar = json.loads(store.get_object(row["sidecar_key"]))
        same = store.stat_object(row["clip_key"]).sha256 == row["sha256"] and sidecar["clip_id"] == row["clip_id"]
        once += same and not keys & twice
        playable += plays(data)
    return Stored(len(rows), once, playable, sorted(expected - lost - listed), sorted(listed - expected),
                  sorted(twice))


def plays(data: bytes) -> bool:
    """Opens with PyAV and decodes video frames."""
    with av.open(io.BytesIO(data)) as clip:
        frames = sum(1 for _ in clip.decode(video=0))
    return frames > 0


def wipe(server: S3Server, bucket: str) -> set[str]:
    """A server that lost its state: every object and the bucket itself gone. Returns the keys lost (an upload may
    land between the listing and the bucket's removal: then again)."""
    client, lost = server.client(), set[str]()
    for _ in range(20):
        names = [o.object_name for o in client.list_objects(bucket, recursive=True) if o.object_name]
        for error in client.remove_objects(bucket, [DeleteObject(n) for n in names]):
            raise AssertionError(f"wipe failed: {error}")
        lost |= set(names)
        try:
            client.remove_bucket(bucket)
            return lost
        except S3Error as exc:
            if exc.code != "BucketNotEmpty":
                raise
    raise AssertionError("could not wipe the bucket")


# -- S3 answers 5xx, slowly, resets, hangs ----------------------------------------------------------------

SMALL_QUOTA = 32 * MIB  # far above what the small clips need: nothing may be dropped in this test


def fault_round(hub: Hub, caplog: pytest.LogCaptureFixture, hold_s: float) -> list[Phase]:
    proxy, slow_s = hub.proxy, READ_TIMEOUT_S * 0.4
    return [
        # Two 503s in a row: the S3 client's own retry absorbs them, the worker never sees a failure.
        run_phase(hub, caplog, "503 x2 (blip)", [lambda: proxy.fail(503, n=2)], outage=False, hold_s=0.0,
                  min_faults=2),
        run_phase(hub, caplog, "500s then 503s", [lambda: proxy.fail(500), lambda: proxy.fail(503)], outage=True,
                  hold_s=hold_s),
        run_phase(hub, caplog, f"slow answers ({slow_s:.1f} s)", [lambda: proxy.slow(slow_s)], outage=False,
                  hold_s=hold_s),
        run_phase(hub, caplog, "reset after 64 KiB of a PUT", [lambda: proxy.reset_after(64 * 1024)], outage=True,
                  hold_s=hold_s),
        run_phase(hub, caplog, "hang (accept, never answer)", [proxy.hang], outage=True, hold_s=hold_s),
    ]  # fmt: skip


@dataclass
class Outcome:
    """The hub's state once stopped, from its outbox, the bucket and its metrics."""

    counts: dict[str, int]
    clips: int  # finished clips, by the metric
    stored: Stored
    failures_metric: float
    uploads_metric: float
    depth_after: float


def outcome(hub: Hub) -> Outcome:
    svc = hub.svc
    return Outcome(svc.outbox.counts(), recorded(svc), audit_bucket(hub),
                   metric(svc, "edge_media_upload_failures_total", kind="retryable"),
                   metric(svc, "edge_media_clips_uploaded_total"),
                   sum(metric(svc, "edge_media_outbox_depth", state=s) for s in ("pending", "inflight")))


def add_fault_figures(figures, hub: Hub, phases: list[Phase], sampler: Sampler, end: Outcome) -> None:
    outages, quiet = [p for p in phases if p.outage], [p for p in phases if not p.outage]
    kinds = {k: n for k, n in sorted(hub.proxy.counts.items()) if k in FAULT_KINDS}
    expected_lines = [int(p.outage) for p in phases]
    worst_drain = max(p.drain_s for p in phases)
    hang_recorded = sum(p.recorded for p in phases if p.name.startswith("hang"))
    stored, retryable = end.stored, hub.svc.uploader.failed_retryable
    figures.add("requests faulted by kind (proxy)", "> 0 each", ", ".join(f"{k} {n}" for k, n in kinds.items()),
                set(kinds) == FAULT_KINDS)
    figures.add("outages / failed upload attempts in them", "-",
                f"{len(outages)} / {sum(p.failures for p in outages)}", True)
    figures.add("failed upload attempts in blips and slow answers", "0", sum(p.failures for p in quiet),
                not any(p.failures for p in quiet))
    figures.add("clips recorded / in S3 exactly once (bytes, sidecar, one PUT)", "equal",
                f"{end.clips} / {stored.in_s3_once}", end.clips == stored.in_s3_once == end.counts["done"])
    figures.add("duplicates (keys stored twice, objects no clip accounts for)", "0",
                len(stored.stored_twice) + len(stored.extra), not stored.stored_twice and not stored.extra)
    figures.add("clips that play (PyAV decode)", "all", f"{stored.playable} / {stored.rows}",
                stored.playable == stored.rows)
    figures.add("max spool bytes (sampled every 50 ms) vs quota", "<= quota",
                f"{sampler.max_spool / MIB:.1f} MiB / {SMALL_QUOTA / MIB:.0f} MiB", sampler.max_spool <= SMALL_QUOTA)
    figures.add("drain time after heal (worst phase)", f"<= {DRAIN_TARGET_S:.0f} s", f"{worst_drain:.1f} s",
                worst_drain <= DRAIN_TARGET_S and all(p.drained for p in phases))
    figures.add("outage warning lines vs outages", "equal", f"{sum(len(p.down) for p in phases)} / {len(outages)}",
                [len(p.down) for p in phases] == expected_lines)
    figures.add("'reachable again' lines vs outages", "equal", f"{sum(p.back_lines for p in phases)} / {len(outages)}",
                [p.back_lines for p in phases] == expected_lines)
    figures.add("store_unreachable notices (down_after 0 s) vs outages", "equal",
                f"{len(hub.notices)} / {len(outages)}", len(hub.notices) == len(outages))
    figures.add("clips recorded while uploads hung", "> 0", hang_recorded, hang_recorded > 0)
    figures.add("metric upload_failures{retryable} vs the worker's count", "equal, > 0",
                f"{end.failures_metric:.0f} / {retryable}", end.failures_metric == retryable > 0)
    figures.add("metric outbox_depth pending+inflight: max during faults / after drain", "> 0 / 0",
                f"{sampler.max_backlog_metric:.0f} / {end.depth_after:.0f}",
                sampler.max_backlog_metric > 0 and end.depth_after == 0)
    figures.add("metric clips_uploaded vs clips recorded", "equal", f"{end.uploads_metric:.0f} / {end.clips}",
                end.uploads_metric == end.clips)


@pytest.mark.faults
def test_s3_faults_while_recording_lose_nothing_and_log_once_per_outage(hubs, small_source, caplog, figures):
    rounds, hold_s = (3, 6.0) if figures.long else (1, 3.0)
    hub = hubs(small_source, 2, SMALL_QUOTA)
    with Sampler(hub.svc) as sampler:
        assert more_uploads(hub.svc, 1), "no clip before the faults"
        phases = [p for _ in range(rounds) for p in fault_round(hub, caplog, hold_s)]
        hub.stop()
    end = outcome(hub)
    add_fault_figures(figures, hub, phases, sampler, end)

    outages, quiet = [p for p in phases if p.outage], [p for p in phases if not p.outage]
    assert all(p.drained and p.drain_s <= DRAIN_TARGET_S for p in phases), [(p.name, p.drain_s) for p in phases]
    counts, stored = end.counts, end.stored
    assert counts["pending"] == counts["inflight"] == counts["failed"] == counts["dropped"] == 0, counts
    assert end.clips == counts["done"] == stored.in_s3_once == stored.rows >= 5, (end.clips, counts, stored)
    assert not stored.missing and not stored.extra and not stored.stored_twice, stored
    assert stored.playable == stored.rows
    assert sampler.max_spool <= SMALL_QUOTA
    assert {k for k, n in hub.proxy.counts.items() if n} >= FAULT_KINDS, hub.proxy.counts
    assert not any(p.failures for p in quiet), [(p.name, p.failures) for p in quiet]
    for p in phases:  # one line when an outage begins, one when it ends; nothing for a blip or slow answers
        assert len(p.down) == p.back_lines == int(p.outage), (p.name, p.down, p.back_lines)
        assert all(STORE_DOWN in line for line in p.down), p.down
    assert sum(p.failures for p in outages) > len(outages), "an outage is several failed attempts, one line"
    assert len(hub.notices) == len(outages)
    assert sum(p.recorded for p in phases if p.name.startswith("hang")) > 0, "recording went on while uploads hung"
    assert end.failures_metric == hub.svc.uploader.failed_retryable > 0
    assert sampler.max_backlog_metric > 0 and end.depth_after == 0 and end.uploads_metric == end.clips


# -- a long outage fills the spool -------------------------------------------------------------------------

BIG_QUOTA = 16 * MIB  # the smallest quota the config allows


@pytest.mark.faults
def test_a_long_outage_keeps_the_spool_within_its_quota(hubs, big_source, caplog, figures):
    """Uploads hang while three cameras record ~2 MB clips: the spool reaches its quota (drop-oldest) and stays
    within it; afterwards every clip not dropped by the policy is in S3 exactly once, and every drop is audited."""
    min_dropped = 6 if figures.long else 1
    hub = hubs(big_source, 3, BIG_QUOTA)
    svc = hub.svc
    with Sampler(svc) as sampler:
        assert more_uploads(svc, 1), "no clip before the fault"
        phase = run_phase(hub, caplog, "hang until the spool is full", [hub.proxy.hang], outage=True, hold_s=0.0,
                          until=lambda: svc.quota.dropped >= min_dropped)
        hub.stop()
    counts, clips, stored = svc.outbox.counts(), recorded(svc), audit_bucket(hub)
    drops = audit.entries(svc.ctx.db, action="drop")
    dropped_rows = svc.ctx.db.query("SELECT clip_path FROM outbox WHERE state = 'dropped'")
    files_left = sum(Path(r["clip_path"]).exists() for r in dropped_rows)

    figures.add("max spool bytes during a hang (sampled every 50 ms) vs quota", "<= quota",
                f"{sampler.max_spool / MIB:.1f} MiB / {BIG_QUOTA / MIB:.0f} MiB", sampler.max_spool <= BIG_QUOTA)
    figures.add("clips dropped by drop-oldest / audited / files left", f">= {min_dropped} / equal / 0",
                f"{counts['dropped']} / {len(drops)} / {files_left}",
                counts["dropped"] == len(drops) >= min_dropped and not files_left)
    figures.add("clips recorded = in S3 exactly once + dropped by the policy", "equal",
                f"{clips} = {stored.in_s3_once} + {counts['dropped']}",
                clips == stored.in_s3_once + counts["dropped"] == counts["done"] + counts["dropped"])
    figures.add("objects in S3 no uploaded clip accounts for (a dropped clip's half-done upload)", "0",
                len(stored.extra), not stored.extra)
    figures.add("drain after the hang (big clips)", f"<= {DRAIN_TARGET_S:.0f} s", f"{phase.drain_s:.1f} s",
                phase.drained and phase.drain_s <= DRAIN_TARGET_S)
    figures.add("outage warning lines (hang with a full spool)", "1", len(phase.down), len(phase.down) == 1)

    assert sampler.max_spool <= BIG_QUOTA, sampler.max_spool
    assert counts["pending"] == counts["inflight"] == counts["failed"] == 0, counts
    assert counts["dropped"] == len(drops) == svc.quota.dropped >= min_dropped and not files_left
    assert clips == counts["done"] + counts["dropped"] and stored.in_s3_once == stored.rows == counts["done"]
    assert not stored.missing and not stored.extra and not stored.stored_twice and stored.playable == stored.rows
    assert phase.drained and phase.drain_s <= DRAIN_TARGET_S and len(phase.down) == phase.back_lines == 1


# -- the server loses its data -------------------------------------------------------------------------------


@pytest.mark.faults
def test_a_server_that_loses_its_data(hubs, small_source, caplog, figures):
    """Every object and the bucket vanish behind the service's back (a server restarted empty): nothing crashes,
    the bucket is made again and new clips arrive exactly once; reconcile's listing finds the indexed objects the
    store lost and forgets them (audited, one error line), so nobody is offered a clip that is gone."""
    wipes = 3 if figures.long else 1
    hub = hubs(small_source, 2, SMALL_QUOTA)
    svc, lost = hub.svc, set[str]()
    for _ in range(wipes):
        assert more_uploads(svc, 2), "no clips before the loss"
        lost |= wipe(hub.server, hub.bucket)
        assert more_uploads(svc, 2), "no clips after the loss"
    reconcile = svc.sweeper.reconcile()  # the bucket path: must cope with a bucket made again
    hub.stop()
    stored = audit_bucket(hub, frozenset(lost))
    index = ClipIndex(svc.ctx.db)
    still_indexed = sum(index.get(k) is not None for k in lost)
    after = [r for r in svc.ctx.db.query("SELECT clip_key, sidecar_key FROM outbox WHERE state = 'done'")
             if not {r["clip_key"], r["sidecar_key"]} & lost]  # fmt: skip
    # Retention past every deadline: the lost objects' rows go too (removing a missing key is no error).
    sweep = RetentionSweeper(hub.server.store(hub.bucket), svc.ctx.db, clock=lambda: time.time() + 8 * DAY).sweep()
    left_indexed = index.count()
    said_lost = [r for r in caplog.records if "the store lost" in r.getMessage()]
    loud = [r for r in caplog.records if r not in said_lost and (r.levelno >= logging.ERROR or r.name.startswith(
        "uploader") and r.levelno >= logging.WARNING)]  # fmt: skip

    figures.add("objects the server lost (wiped with the bucket)", "> 0", f"{len(lost)} in {wipes} wipe(s)",
                len(lost) > 0)
    figures.add("clips uploaded after the (last) loss / in S3 exactly once / playable", "equal, >= 2",
                f"{len(after)} / {stored.in_s3_once} / {stored.playable}",
                len(after) == stored.in_s3_once == stored.playable >= 2)
    figures.add("duplicates, objects missing that were not lost", "0",
                len(stored.extra) + len(stored.missing) + len(stored.stored_twice),
                not stored.extra and not stored.missing and not stored.stored_twice)
    figures.add("error lines, uploader warnings after the loss", "0", len(loud), not loud)
    figures.add("reconcile after the loss: deleted / failed", "0 / 0",
                f"{reconcile.deleted} / {len(reconcile.failed)}", reconcile.deleted == 0 and not reconcile.failed)
    figures.add("lost objects found by reconcile / still indexed after it / error lines", "all / 0 / 1",
                f"{len(reconcile.lost)} / {still_indexed} / {len(said_lost)}",
                set(reconcile.lost) <= lost and reconcile.lost and not still_indexed and len(said_lost) == 1)
    figures.add("sweep past every deadline: objects removed / failed / left indexed", "all / 0 / 0",
                f"{sweep.deleted} / {len(sweep.failed)} / {left_indexed}", not sweep.failed and not left_indexed)

    assert lost and len(after) >= 2  # the clips after the last wipe (earlier ones went in the next wipe)
    assert stored.in_s3_once == stored.playable == len(after)
    assert not stored.extra and not stored.missing and not stored.stored_twice
    assert not loud, [r.getMessage() for r in loud]
    assert reconcile.deleted == 0 and not reconcile.failed
    assert reconcile.lost and set(reconcile.lost) <= lost and still_indexed == 0 and len(said_lost) == 1
    assert not sweep.failed and left_indexed == 0

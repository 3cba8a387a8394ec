"""Fault suite: hostile media (issue 14, item 4). Mutants of a real encoded file (``media_fuzz``: flipped bits,
truncations, duplicated and reordered packets, timestamps that jump, go backwards or wrap, a resolution change,
audio/video desync, zero-length and huge frames) go

(a) through ``edge-media analyze``, one process each (a file read as fast as it decodes, no looping): it exits 0
    with a report, or 1 with one line naming the file; never a traceback, a signal or a hang. CPU seconds and peak
    RSS of each process are measured against the clean file's;
(b) into the real Service as looping file cameras beside a healthy camera playing the clean file, all in real time
    (a looping file read as fast as it decodes would spin a core by design, mutant or not): no reader crash or
    traceback, every mutant camera still running or refused with one line naming its file, each camera's CPU
    against the healthy camera's, RSS growth bounded, and the healthy camera records its clips with their events.

Short variant (plain run): one mutant per mutator, one 16 s service run. Long (``pytest -m faults``): three seeds
(bigger huge frames), a 24 s service run per seed, and one of as many clean cameras for comparison.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import av
import pytest

from edge_media.config import parse_config
from edge_media.service.hub import Service
from recorder import ClipWriter

from fault_report import long_variant
from media import MovingBox, VideoSpec, demux, read_clip
from media_fuzz import MUTATORS, TS_CLOCK, Mutant, Sources, make_mutants, make_sources, retime_ts

CLI = [sys.executable, "-m", "edge_media"]
# The clean file: 6 s with audio, an object crossing at 1.5-3.5 s (the healthy camera's one event per loop).
SPEC = VideoSpec(width=320, height=240, duration_s=6.0, fps=15, gop=30, audio=True, boxes=[MovingBox(1.5, 3.5)])
RESIZED = (480, 272)
ANALYZE_TIMEOUT_S = 60.0  # a clean run takes ~2 s: a mutant near this hangs
MAX_CPU_RATIO = 3.0
MAX_ANALYZE_RSS_GROWTH_MB = 100.0
# 21 clean cameras grow the process by ~185 MB in their first 30 s (decoders, rings, model batches), then level off.
MAX_SERVICE_RSS_GROWTH_MB = 300.0
LOOP_PERIOD_S = 7.0  # the 6 s file plus the 1 s replay backoff
HEALTHY = "healthy"
TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Plan:
    seeds: tuple[int, ...]
    service_s: float
    huge_mb: int


@pytest.fixture(scope="module")
def plan(request: pytest.FixtureRequest) -> Plan:
    return Plan((0, 1, 2), 24.0, 16) if long_variant(request.config) else Plan((0,), 16.0, 4)


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Sources:
    return make_sources(tmp_path_factory.mktemp("clean"), SPEC, RESIZED)


@pytest.fixture(scope="module")
def mutants(sources: Sources, plan: Plan, tmp_path_factory: pytest.TempPathFactory) -> list[Mutant]:
    return make_mutants(sources, tmp_path_factory.mktemp("mutants"), plan.seeds, huge_mb=plan.huge_mb)


def test_an_mpeg_ts_camera_is_recorded_with_its_aac_audio(sources: Sources, tmp_path: Path) -> None:
    """Regression, found by this fuzzer: MPEG-TS carries AAC as ADTS frames without a decoder config and the MP4
    muxer refused them ("Malformed AAC bitstream"), so every clip of a .ts file or HTTP/UDP TS camera with audio
    failed ("muxing ...: Operation not permitted"). The same packets go into two clips, as the pre-roll ring's do."""
    with demux(sources.ts) as (streams, packets):
        clips = []
        for name in ("a.mp4", "b.mp4"):
            writer = ClipWriter(tmp_path / name, streams)
            for mp in packets:
                writer.write(mp)
            clips.append(writer.close())
    for clip in clips:
        info = read_clip(clip.path)
        assert clip.audio_codec == "aac" and info["frames"] == 90 and len(info["audio"]) > 250
        with av.open(str(clip.path)) as c:
            assert c.streams.audio[0].codec_context.extradata, "the AAC config reached the moov"
            assert sum(1 for _ in c.decode(audio=0)) >= len(info["audio"]) - 2


def test_a_clock_leap_inside_a_clip_is_carried_over_not_an_abort(sources: Sources, tmp_path: Path) -> None:
    """Regression, found by this fuzzer: a TS camera whose clock leapt more than 6.6 h (2**31 ticks of 90 kHz) while
    a clip was open made FFmpeg's MP4 muxer abort the whole hub ("Assertion next_dts <= 0x7fffffff failed"). The
    clip writer now re-anchors a track after a leap longer than a clip may last. ``edge-media run`` in a subprocess:
    an abort must not take pytest with it."""
    def plan(video: list[int], audio: list[int]) -> tuple[list[int], list[int]]:
        lo, hi, leap = min(video) + 5 * TS_CLOCK // 2, min(video) + 9 * TS_CLOCK // 2, 13 * 3600 * TS_CLOCK

        def shift(track: list[int]) -> list[int]:  # 2.5-4.5 s into the file (inside the clip), 13 h ahead
            return [t + leap if lo <= t < hi else t for t in track]
        return shift(video), shift(audio)

    config = tmp_path / "hub.toml"
    config.write_text(service_toml(tmp_path / "data", [("leap", retime_ts(sources.ts, tmp_path / "leap.ts", plan))],
                                   loop=False))
    res = subprocess.run([*CLI, "run", "--config", str(config)], capture_output=True, text=True, timeout=120,
                         check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    [clip] = (tmp_path / "data" / "store" / "objects").rglob("*.mp4")
    info = read_clip(clip)
    assert info["frames"] >= 60 and info["frame_times"][-1] < 6.0, "the frames of the clip, on a seconds timeline"


# -- (a) edge-media analyze ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Run:
    rc: int  # negative: killed by that signal
    stdout: str
    stderr: str
    cpu_s: float
    rss_mb: float
    hung: bool

    @property
    def crashed(self) -> bool:
        return self.hung or self.rc not in (0, 1) or "Traceback" in self.stderr


def analyze(path: Path) -> Run:
    """``edge-media analyze --json path`` in its own process; CPU and peak RSS from that process's rusage."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([*CLI, "analyze", "--json", str(path)], stdout=out, stderr=err)
        hung = threading.Event()
        watchdog = threading.Timer(ANALYZE_TIMEOUT_S, lambda: (hung.set(), proc.kill()))
        watchdog.start()
        _, status, usage = os.wait4(proc.pid, 0)  # wait4, not wait: this child's own rusage
        watchdog.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Run(proc.returncode, out.read(), err.read(), usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024,
                   hung.is_set())


def clear_refusal(run: Run, path: Path) -> bool:
    """Exit 1 and a last stderr line that names the file: the operator learns what is wrong with which file."""
    lines = run.stderr.strip().splitlines()
    return run.rc == 1 and bool(lines) and path.name in lines[-1]


def report_ok(run: Run) -> bool:
    try:
        return run.rc == 0 and isinstance(json.loads(run.stdout)["events"], list)
    except (ValueError, KeyError):
        return False


@pytest.mark.faults
def test_analyze_survives_hostile_media(sources, mutants, plan, figures):
    started = time.monotonic()
    with ThreadPoolExecutor(2) as pool:  # two processes at a time: each is measured on its own
        clean = list(pool.map(analyze, [sources.mp4, sources.ts]))
        runs = dict(zip([m.name for m in mutants], pool.map(analyze, [m.path for m in mutants])))
    assert all(report_ok(r) for r in clean), [r.stderr for r in clean]
    cpu0, rss0 = statistics.mean(r.cpu_s for r in clean), max(r.rss_mb for r in clean)
    crashed = sorted(n for n, r in runs.items() if r.crashed)
    refused = {m.name for m in mutants if clear_refusal(runs[m.name], m.path)}
    reported = {n for n, r in runs.items() if report_ok(r)}
    unclear = sorted(set(runs) - refused - reported - set(crashed))  # exit 1 without a clear line, or bad JSON
    worst_cpu = max(runs, key=lambda n: runs[n].cpu_s)
    worst_rss = max(runs, key=lambda n: runs[n].rss_mb)
    cpu_ratio, rss_growth = runs[worst_cpu].cpu_s / cpu0, runs[worst_rss].rss_mb - rss0
    figures.add("mutants analysed (mutators x seeds)", "-", f"{len(runs)} ({len(MUTATORS)} x {len(plan.seeds)})", True)
    figures.add("crashes: tracebacks, signals, hangs, exit codes other than 0/1", "0",
                f"{len(crashed)} {crashed[:3] or ''}", not crashed)
    figures.add("analysed (exit 0, JSON report) / refused (exit 1, one line naming the file)", "-",
                f"{len(reported)} / {len(refused)}", True)
    figures.add("ended without a report or a clear error", "0", f"{len(unclear)} {unclear[:3] or ''}", not unclear)
    figures.add("max CPU seconds of a process vs the clean file's", f"<= {MAX_CPU_RATIO:g}x",
                f"{cpu_ratio:.2f}x ({worst_cpu}: {runs[worst_cpu].cpu_s:.2f} s vs {cpu0:.2f} s)",
                cpu_ratio <= MAX_CPU_RATIO)
    figures.add("max peak RSS growth vs the clean file", f"<= {MAX_ANALYZE_RSS_GROWTH_MB:g} MB",
                f"{rss_growth:.1f} MB ({worst_rss}; clean {rss0:.0f} MB)", rss_growth <= MAX_ANALYZE_RSS_GROWTH_MB)
    figures.add("analyze runs, wall time (a process per file, two at a time)", "-",
                f"{time.monotonic() - started:.1f} s", True)
    assert not crashed, {n: runs[n].stderr[-2000:] for n in crashed[:3]}
    assert not unclear, {n: runs[n].stderr[-500:] for n in unclear[:3]}
    assert cpu_ratio <= MAX_CPU_RATIO and rss_growth <= MAX_ANALYZE_RSS_GROWTH_MB


# -- (b) looping file cameras in the Service --------------------------------------------------------------------

def service_toml(data: Path, cameras: list[tuple[str, Path]], *, loop: bool = True) -> str:
    """A hub config without its API; looping file cameras play in real time, others as fast as they decode."""
    flag = str(loop).lower()
    return (f'[service]\ndata_dir = "{data}"\n[recording]\npre_roll_s = 1.0\npost_roll_s = 1.0\n'
            "[api]\nenabled = false\n"
            + "".join(f'[[cameras]]\nname = "{n}"\nrecord_url = "{p}"\nrealtime = {flag}\nloop = {flag}\n'
                      for n, p in cameras))


def thread_cpu_s(tid: int) -> float | None:
    """User + system CPU seconds of one thread of this process (None once it has ended)."""
    try:
        stat = Path(f"/proc/self/task/{tid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


@dataclass
class Sampler:
    """Every 0.2 s: each camera reader thread's CPU (the last value is kept when a reader ends) and the RSS."""

    svc: Service
    cpu: dict[str, float] = field(default_factory=dict)
    rss: list[float] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.wait(0.2):
            self.sample()

    def sample(self) -> None:
        for w in self.svc.workers:
            for t in w.threads:
                cpu = thread_cpu_s(t.native_id) if t.native_id is not None else None
                if cpu is not None:
                    self.cpu[w.cam.name] = cpu
        self.rss.append(rss_mb())


def stored_clips(svc: Service) -> dict[str, list[tuple[Path, dict]]]:
    """Camera -> (clip file, sidecar) of every clip in the local store."""
    names = {svc.ctx.camera_hash(w.cam.name): w.cam.name for w in svc.workers}
    objects = svc.store.root / "objects"  # the embedded LocalStore
    out: dict[str, list[tuple[Path, dict]]] = {}
    for path in objects.rglob("*.json"):
        sidecar = json.loads(path.read_text())
        out.setdefault(names[sidecar["camera_hash"]], []).append((path.with_suffix(".mp4"), sidecar))
    return out


@dataclass
class ServiceRun:
    cpu: dict[str, float]  # camera -> its reader thread's CPU + its share of the motion model
    rss: list[float]
    rss0: float
    alive: dict[str, bool]
    failed: dict[str, str]  # camera -> the line it was refused with
    crashes: int
    clips: dict[str, list[tuple[Path, dict]]]
    wall_s: float
    process_cpu_s: float

    @property
    def rss_growth(self) -> float:
        return max(self.rss) - self.rss0


def run_service(data: Path, cameras: list[tuple[str, Path]], seconds: float) -> ServiceRun:
    """The Service with ``cameras`` (looping, real time) for ``seconds``, sampled, then stopped and closed."""
    svc = Service(parse_config(service_toml(data, cameras), source="faults-media.toml"))
    sampler = Sampler(svc)
    rss0, cpu0, t0 = rss_mb(), time.process_time(), time.monotonic()
    try:
        svc.start()
        threading.Thread(target=sampler.run, daemon=True).start()
        time.sleep(max(0.0, seconds - (time.monotonic() - t0)))
        sampler.sample()
        alive = {w.cam.name: w.alive for w in svc.workers}
        failed = {w.cam.name: w.record_source.state.problem or "" for w in svc.workers
                  if w.record_source is not None and w.record_source.state.name == "failed"}
        wall, process_cpu = time.monotonic() - t0, time.process_time() - cpu0
        cpu = {w.cam.name: sampler.cpu.get(w.cam.name, 0.0) + w.pipeline.detect_seconds for w in svc.workers}
    finally:
        sampler.stop.set()
        svc.stop()
    try:
        return ServiceRun(cpu, sampler.rss, rss0, alive, failed, sum(w.crashes for w in svc.workers),
                          stored_clips(svc), wall, process_cpu)
    finally:
        svc.close()


def opens(clip: Path) -> bool:
    """The clip is a container PyAV reads to its end (its frames may be as damaged as the camera's)."""
    try:
        with av.open(str(clip)) as c:
            return sum(1 for _ in c.demux()) > 0
    except av.FFmpegError:
        return False


@pytest.mark.faults
def test_hostile_cameras_beside_a_healthy_one(sources, mutants, plan, figures, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    runs = [run_service(tmp_path / f"data-{seed}",
                        [(HEALTHY, sources.mp4)] + [(m.name, m.path) for m in mutants if m.seed == seed],
                        plan.service_s) for seed in plan.seeds]
    paths = {m.name: m.path for m in mutants}
    tracebacks = [r.getMessage() for r in caplog.records if r.exc_info]  # False when a call passed exc_info=False
    clip_errors = [r.getMessage() for r in caplog.records if r.name == "recorder.camera" and r.levelno >= logging.ERROR]
    crashes = sum(r.crashes for r in runs) + len(tracebacks)
    stopped = [n for r in runs for n, up in r.alive.items() if not up and n not in r.failed]
    refused = {n: why for r in runs for n, why in r.failed.items()}
    unclear = sorted(n for n, why in refused.items() if n == HEALTHY or paths[n].name not in why or "\n" in why)
    ratios = {n: r.cpu[n] / r.cpu[HEALTHY] for r in runs for n in r.cpu if n != HEALTHY}
    worst = max(ratios, key=lambda n: ratios[n])
    growth = max(r.rss_growth for r in runs)
    late_growth = max(r.rss[-1] - r.rss[len(r.rss) // 2] for r in runs)  # still growing in the second half?
    expected = int((plan.service_s - 5.0) // LOOP_PERIOD_S) + 1  # box passes completed (1.5-3.5 s of each loop)
    healthy = [r.clips.get(HEALTHY, []) for r in runs]
    with_event = [sum(any(e["label"] == "motion" for e in sc["events"]) for _, sc in clips) for clips in healthy]
    mutant_clips = [p for r in runs for n, c in r.clips.items() if n != HEALTHY for p, _ in c]
    unreadable = [p.name for p in mutant_clips if not opens(p)]
    figures.add("mutant cameras (looping, real time) beside one healthy camera", "-",
                f"{len(mutants)} in {len(runs)} run(s) of {plan.service_s:g} s", True)
    figures.add("reader crashes + tracebacks logged", "0", crashes, crashes == 0)
    figures.add("mutant cameras running at the end / refused with one line naming the file / stopped otherwise",
                "all / - / 0", f"{len(mutants) - len(refused) - len(stopped)} / {len(refused)} / {len(stopped)}",
                not stopped and not unclear)
    figures.add("max camera CPU (reader thread + its motion share) vs the healthy camera", f"<= {MAX_CPU_RATIO:g}x",
                f"{ratios[worst]:.2f}x ({worst})", ratios[worst] <= MAX_CPU_RATIO)
    figures.add("process CPU during the run (all cameras, models, uploads)", "-",
                " / ".join(f"{r.process_cpu_s:.1f} s in {r.wall_s:.1f} s" for r in runs), True)
    figures.add(f"peak RSS growth over each run ({len(runs[0].alive)} cameras)", f"<= {MAX_SERVICE_RSS_GROWTH_MB:g} MB",
                " / ".join(f"{r.rss_growth:.1f} MB" for r in runs), growth <= MAX_SERVICE_RSS_GROWTH_MB)
    figures.add("RSS growth over the second half of the run", "-", f"{late_growth:.1f} MB", True)
    figures.add("healthy camera: clips with a motion event, per run", f">= {expected}",
                " / ".join(map(str, with_event)), min(with_event) >= expected)
    figures.add("clip write errors logged (muxer refused a packet, clip cut short)", "0", len(clip_errors),
                not clip_errors)
    figures.add("clips of the mutant cameras stored / not readable to the end", "- / 0",
                f"{len(mutant_clips)} / {len(unreadable)}", not unreadable)
    if figures.long:  # the same number of clean cameras, for scale
        base = run_service(tmp_path / "data-clean", [(HEALTHY, sources.mp4)]
                           + [(f"clean-{i}", sources.mp4) for i in range(len(MUTATORS))], plan.service_s)
        figures.add(f"for scale, {len(base.alive)} clean cameras (run last): peak RSS growth / process CPU", "-",
                    f"{base.rss_growth:.1f} MB / {base.process_cpu_s:.1f} s in {base.wall_s:.1f} s", True)
    assert crashes == 0, tracebacks[:3]
    assert not stopped and not unclear, (stopped, {n: refused[n] for n in unclear})
    assert all(r.alive[HEALTHY] for r in runs), "the healthy camera kept running"
    assert ratios[worst] <= MAX_CPU_RATIO, ratios
    assert growth <= MAX_SERVICE_RSS_GROWTH_MB
    assert min(with_event) >= expected and all(len(c) == n for c, n in zip(healthy, with_event)), healthy
    assert not clip_errors, clip_errors[:3]
    assert not unreadable, unreadable[:3]

"""Reloading the config of a running hub (SIGHUP): cameras added, removed and changed without touching the
others. In process on real looping cameras (their threads and clips inspected directly), and through the real
`edge-media run` with a signal, judged from its JSON logs and its store."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest
from test_service import stored_clips

from edge_media.config import ConfigError, load_config, parse_config
from edge_media.privacy.identity import camera_hash, load_or_create_secret
from edge_media.service.hub import Service
from edge_media.service.reload import ReloadReport, plan_reload
from uploader.retention import parse_utc

from media import MovingBox, VideoSpec, make_video

SMALL = {"width": 320, "height": 180, "fps": 15, "gop": 15, "noise_sigma": 2.0}


def config_text(data: Path, cameras: dict[str, tuple[Path, str]], *, pre_roll: float = 1.0, fmt: str = "text",
                extra: str = "") -> str:
    cams = "".join(f'[[cameras]]\nname = "{name}"\nrecord_url = "{url}"\nrealtime = true\nloop = true\n{more}\n'
                   for name, (url, more) in cameras.items())
    return (f'[service]\ndata_dir = "{data}"\nlog_format = "{fmt}"\n'
            f"[recording]\npre_roll_s = {pre_roll}\npost_roll_s = 1.0\n{extra}\n{cams}")


def config(tmp_path: Path, cameras: dict[str, tuple[Path, str]], **kw):
    return parse_config(config_text(tmp_path / "data", cameras, **kw), source="hub.toml")


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("reload")
    return {
        # Someone walks about for 19 s: one event, one clip, as long as nothing interrupts the camera.
        "busy": make_video(d / "busy.mp4", VideoSpec(duration_s=20, boxes=[MovingBox(0.5, 19.5, speed=0.1)], **SMALL)),
        # A short visit every loop: a clip every ~5 s.
        "walk": make_video(d / "walk.mp4", VideoSpec(duration_s=4, boxes=[MovingBox(1.0, 2.0)], **SMALL)),
    }


def wait_for(cond, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return False


def worker(svc: Service, name: str):
    return next(w for w in svc.workers if w.cam.name == name)


def queued_for(svc: Service, name: str) -> int:
    """Clips of camera ``name`` the outbox has (queued or uploaded)."""
    rows = svc.ctx.db.query("SELECT COUNT(*) AS n FROM outbox WHERE camera_hash = ?", (svc.ctx.camera_hash(name),))
    return int(rows[0]["n"])


def test_added_camera_records_removed_one_stops_and_the_other_is_untouched(tmp_path, videos):
    svc = Service(config(tmp_path, {"steady": (videos["busy"], ""), "leaving": (videos["busy"], "")}))
    svc.start()
    try:
        assert wait_for(lambda: worker(svc, "leaving").pipeline.events or svc.live.get("leaving").motion, 15)
        steady, leaving = worker(svc, "steady"), worker(svc, "leaving")
        steady_threads, sessions = list(steady.threads), steady.record_source.stats.sessions
        reload_at = time.time()
        report = svc.reload(config(tmp_path, {"steady": (videos["busy"], ""), "joining": (videos["walk"], "")}))
        assert report == ReloadReport(added=("joining",), removed=("leaving",))
        assert not leaving.alive, "the removed camera's reader ended"
        assert queued_for(svc, "leaving") == 1, "its open clip was finished and queued"
        assert worker(svc, "steady") is steady and steady.threads == steady_threads
        assert all(t.is_alive() for t in steady.threads) and steady.record_source.stats.sessions == sessions
        assert {s.name for s in svc.live.snapshot()} == {"steady", "joining"}
        assert svc.ctx.config.camera("joining").record_url == str(videos["walk"])
        assert wait_for(lambda: queued_for(svc, "joining") >= 1, 20), "the added camera records"
    finally:
        svc.stop()
    by_camera: dict[str, list[dict]] = {}
    for _key, _tags, sidecar in stored_clips(svc):
        name = next(n for n in ("steady", "leaving", "joining") if svc.ctx.camera_hash(n) == sidecar["camera_hash"])
        by_camera.setdefault(name, []).append(sidecar)
    svc.close()
    steady_clips = by_camera["steady"]
    assert len(steady_clips) == 1, "one uninterrupted clip through the reload"
    clip = steady_clips[0]
    assert parse_utc(clip["wall_start"]).timestamp() < reload_at < parse_utc(clip["wall_end"]).timestamp()
    left = by_camera["leaving"]
    assert len(left) == 1 and abs(parse_utc(left[0]["wall_end"]).timestamp() - reload_at) < 3.0


def test_changed_camera_restarts_and_start_up_settings_wait_for_a_restart(tmp_path, videos, caplog):
    caplog.set_level(logging.INFO)
    old = config(tmp_path, {"porch": (videos["walk"], "sensitivity = 0.5"), "yard": (videos["walk"], "")})
    svc = Service(old)
    svc.start()
    try:
        assert wait_for(lambda: worker(svc, "porch").record_source.stats.decode_seconds > 0, 10)
        before_porch, yard = worker(svc, "porch"), worker(svc, "yard")
        decode_before = _decode_seconds(svc, "porch")
        new = config(tmp_path, {"porch": (videos["walk"], "sensitivity = 0.9"), "yard": (videos["walk"], "")},
                     pre_roll=2.0, extra="max_clip_s = 60.0")
        report = svc.reload(new)
        assert report == ReloadReport(restarted=("porch",), needs_restart=("recording",))
        after_porch = worker(svc, "porch")
        assert after_porch is not before_porch and not before_porch.alive and after_porch.alive
        assert worker(svc, "yard") is yard and yard.alive
        assert after_porch.cam.sensitivity == 0.9 and svc.config.camera("porch").sensitivity == 0.9
        assert svc.config.recording == old.recording, "the running recording settings stay in force"
        assert after_porch.pipeline.recorder.pre_roll_s == 1.0
        assert _decode_seconds(svc, "porch") >= decode_before, "a restarted camera's counters continue"
    finally:
        svc.stop()
        svc.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == ["config reload: [recording] changed; restart edge-media to apply (the running values "
                        "stay in force)"]
    assert "config reloaded: restarted porch" in caplog.text


def _decode_seconds(svc: Service, camera: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(svc.metrics.render([camera]).decode()):
        if family.name == "edge_media_camera_decode_seconds":
            return next(s.value for s in family.samples if s.labels["camera"] == camera)
    raise AssertionError("no decode seconds")


def test_a_bad_file_changes_nothing_and_names_the_field(tmp_path, videos, caplog):
    caplog.set_level(logging.INFO)
    path = tmp_path / "hub.toml"
    path.write_text(config_text(tmp_path / "data", {"porch": (videos["walk"], ""), "yard": (videos["walk"], "")}))
    svc = Service(load_config(path))
    runner = threading.Thread(target=svc.run)
    runner.start()
    try:
        assert wait_for(lambda: len(svc.workers) == 2 and all(w.alive for w in svc.workers), 10)
        workers = list(svc.workers)
        path.write_text(config_text(tmp_path / "data", {"porch": (videos["walk"], "detect_fps = 99")}))
        svc.request_reload(lambda: load_config(path))  # what the SIGHUP handler does; wait() applies it
        assert wait_for(lambda: "config reload refused" in caplog.text, 10)
        assert svc.workers == workers and all(w.alive for w in workers)
        path.write_text(config_text(tmp_path / "data", {"porch": (videos["walk"], "")}))
        svc.request_reload(lambda: load_config(path))
        assert wait_for(lambda: [w.cam.name for w in svc.workers] == ["porch"], 20)
    finally:
        svc.stop_event.set()
        runner.join(60)
        svc.close()
    refused = [r for r in caplog.records if "config reload refused" in r.getMessage()]
    assert len(refused) == 1 and refused[0].levelno == logging.ERROR
    assert "cameras[0].detect_fps" in refused[0].getMessage() and "\n" not in refused[0].getMessage()
    assert "config reloaded: removed yard" in caplog.text


def test_a_hub_without_cameras_after_a_reload_waits_for_the_next_one(tmp_path, videos):
    path = tmp_path / "hub.toml"
    path.write_text(config_text(tmp_path / "data", {"porch": (videos["walk"], "")}))
    svc = Service(load_config(path))
    runner = threading.Thread(target=svc.run)
    runner.start()
    try:
        assert wait_for(lambda: svc.workers and svc.workers[0].alive, 10)
        path.write_text(config_text(tmp_path / "data", {}))
        svc.request_reload(lambda: load_config(path))
        assert wait_for(lambda: not svc.workers, 20)
        time.sleep(1.5)  # three turns of the main loop: "every camera ended" must not end a hub that has none
        assert runner.is_alive() and not svc.stop_event.is_set()
        path.write_text(config_text(tmp_path / "data", {"yard": (videos["walk"], "")}))
        svc.request_reload(lambda: load_config(path))
        assert wait_for(lambda: [w.cam.name for w in svc.workers] == ["yard"] and svc.workers[0].alive, 20)
    finally:
        svc.stop_event.set()
        runner.join(60)
        svc.close()
    assert not runner.is_alive()


def test_a_paired_microphone_follows_its_restarted_camera_and_can_be_removed(tmp_path, videos):
    """This machine has no audio device: the microphone's worker runs and retries opening it, which is all
    a reload needs to start, re-pair and stop."""
    mic = '[[microphones]]\nname = "hall-mic"\ncamera = "hall"\n'
    svc = Service(parse_config(config_text(tmp_path / "data", {"hall": (videos["walk"], "")}) + mic))
    svc.start()
    try:
        (old_mic,) = svc.mics
        assert wait_for(lambda: old_mic.alive and svc.live.get("hall-mic").state == "retrying", 10)
        assert old_mic.paired is worker(svc, "hall").pipeline
        changed = parse_config(config_text(tmp_path / "data", {"hall": (videos["walk"], "sensitivity = 0.9")}) + mic)
        assert svc.reload(changed) == ReloadReport(restarted=("hall", "hall-mic"))
        (new_mic,) = svc.mics
        assert new_mic is not old_mic and not old_mic.alive and new_mic.alive
        assert new_mic.paired is worker(svc, "hall").pipeline, "paired with the new pipeline, not the stopped one"
        without = parse_config(config_text(tmp_path / "data", {"hall": (videos["walk"], "sensitivity = 0.9")}))
        assert svc.reload(without) == ReloadReport(removed=("hall-mic",))
        assert svc.mics == [] and not new_mic.alive and svc.live.get("hall-mic") is None
        assert worker(svc, "hall").alive
    finally:
        svc.stop()
        svc.close()


def test_plan_pairs_microphones_with_their_camera_and_treats_disabled_as_removed(tmp_path, videos):
    mic = '[[microphones]]\nname = "hall-mic"\ncamera = "hall"\n'
    cams = {"hall": (videos["walk"], ""), "porch": (videos["walk"], "")}
    old = parse_config(config_text(tmp_path, cams) + mic)
    changed = parse_config(config_text(tmp_path, {"hall": (videos["walk"], "sensitivity = 0.8"),
                                                   "porch": (videos["walk"], "enabled = false")}) + mic)
    plan = plan_reload(old, changed)
    assert plan.report == ReloadReport(removed=("porch",), restarted=("hall", "hall-mic"))
    assert plan_reload(old, old).report == ReloadReport() and not plan_reload(old, old).report.changed
    with pytest.raises(ConfigError):  # a microphone's camera must exist: the whole new file is checked first
        parse_config(config_text(tmp_path, {"porch": (videos["walk"], "")}) + mic)


# -- the real command --------------------------------------------------------------------------------------


def test_sighup_to_edge_media_run(tmp_path, videos):
    """`edge-media run` on two looping cameras; the file is edited (one camera out, one in, a start-up setting
    changed) and SIGHUP sent; then a broken edit and SIGHUP again. Judged from the JSON log and the store."""
    data, path = tmp_path / "data", tmp_path / "hub.toml"
    path.write_text(config_text(data, {"steady": (videos["busy"], ""), "leaving": (videos["walk"], "")}, fmt="json"))
    proc = subprocess.Popen([sys.executable, "-m", "edge_media", "run", "--config", str(path)],
                            stderr=subprocess.PIPE, text=True)
    records: list[dict] = []
    reader = threading.Thread(target=lambda: records.extend(json.loads(line) for line in proc.stderr), daemon=True)
    reader.start()

    def logged(text: str) -> list[dict]:
        return [r for r in list(records) if text in r["message"]]

    try:
        assert wait_for(lambda: logged("edge-media running"), 30), records
        assert wait_for(lambda: logged("of leaving for upload"), 20), "the camera to be removed records first"
        path.write_text(config_text(data, {"steady": (videos["busy"], ""), "joining": (videos["walk"], "")},
                                    fmt="json", pre_roll=2.0))
        os.kill(proc.pid, signal.SIGHUP)
        assert wait_for(lambda: logged("config reloaded"), 30)
        reloaded = logged("config reloaded")[0]
        assert reloaded["message"] == "config reloaded: added joining; removed leaving"
        assert wait_for(lambda: logged("of joining for upload"), 20), "the added camera records"
        path.write_text(config_text(data, {"steady": (videos["busy"], "detect_width = 7")}, fmt="json"))
        os.kill(proc.pid, signal.SIGHUP)
        assert wait_for(lambda: logged("config reload refused"), 20)
        assert wait_for(lambda: logged("of steady for upload"), 30), "the untouched camera's visit ends"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(90) == 0
        reader.join(10)
    at = datetime.fromisoformat(reloaded["time"]).timestamp()
    queued_leaving = [datetime.fromisoformat(r["time"]).timestamp() for r in logged("of leaving for upload")]
    assert queued_leaving and max(queued_leaving) <= at, "nothing of the removed camera after the reload"
    warning = logged("restart edge-media to apply")
    assert len(warning) == 1 and warning[0]["level"] == "WARNING" and "[recording]" in warning[0]["message"]
    refused = logged("config reload refused")
    assert len(refused) == 1 and refused[0]["level"] == "ERROR" and "cameras[0].detect_width" in refused[0]["message"]
    assert len(logged("config reloaded")) == 1, "the broken edit changed nothing"
    assert not [r for r in records if r["level"] == "ERROR" and r is not refused[0]], "no other errors"
    # The untouched camera's one visit is one clip from before the reload to after it: its reader never restarted.
    secret = load_or_create_secret(data)
    steady = camera_hash(secret, "steady")
    sidecars = [json.loads(p.read_text()) for p in (data / "store" / "objects" / "clips" / steady).rglob("*.json")]
    spans = [(parse_utc(s["wall_start"]).timestamp(), parse_utc(s["wall_end"]).timestamp()) for s in sidecars]
    assert len(spans) == 1 and spans[0][0] < at < spans[0][1], spans

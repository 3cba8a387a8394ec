"""The console script as an operator uses it (real subprocesses for exit codes and stderr)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge_media.config import dump_example

from media import MovingBox, VideoSpec, make_video

CLI = [sys.executable, "-m", "edge_media"]


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)


def test_check_config_ok_and_bad_field(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text(dump_example())
    res = run("check-config", str(good))
    assert res.returncode == 0 and "OK" in res.stdout

    bad = tmp_path / "bad.toml"
    bad.write_text('[[cameras]]\nname = "porch"\nrecord_url = "a.mp4"\ndetect_fps = 0\n')
    res = run("check-config", str(bad))
    assert res.returncode == 2
    assert "bad.toml" in res.stderr and "cameras[0].detect_fps" in res.stderr
    assert "Traceback" not in res.stderr


def test_check_config_names_an_audio_label_the_model_does_not_have(tmp_path):
    typo = tmp_path / "typo.toml"
    typo.write_text('[audio]\nthresholds = { smoke_alarm = 0.5 }\n')
    res = run("check-config", str(typo))
    assert res.returncode == 2 and "typo.toml" in res.stderr
    assert "audio.thresholds.smoke_alarm" in res.stderr and "smoke_co_alarm" in res.stderr


def test_run_with_bad_config_exits_2_without_traceback(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[recording\npre_roll_s = 1\n")
    res = run("run", "--config", str(bad))
    assert res.returncode == 2 and "line 1" in res.stderr and "Traceback" not in res.stderr


def test_analyze_json_reports_the_event(tmp_path):
    video = make_video(tmp_path / "v.mp4", VideoSpec(duration_s=8, boxes=[MovingBox(3.0, 5.0)]))
    res = run("analyze", str(video), "--json", "--post-roll", "1")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert [round(e["start_s"]) for e in report["events"]] == [3]
    assert report["frames_decoded"] == 120 and report["decode_errors"] == 0
    table = run("analyze", str(video))
    assert table.returncode == 0 and "motion" in table.stdout and "start" in table.stdout


def test_analyze_unreadable_file_is_a_clean_error(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"garbage" * 100)
    res = run("analyze", str(junk))
    assert res.returncode == 1 and "cannot open" in res.stderr and "Traceback" not in res.stderr


def test_demo_records_the_walk_and_not_the_lights(tmp_path):
    res = run("demo", "--dir", str(tmp_path), timeout=300)
    assert res.returncode == 0, res.stderr
    assert "clips stored : 1" in res.stdout
    objects = list((tmp_path / "data" / "store" / "objects").rglob("*.mp4"))
    assert len(objects) == 1
    sidecar = json.loads(objects[0].with_suffix(".json").read_text())
    [event] = sidecar["events"]
    assert 5.7 <= event["start"] <= 6.3, "the demo object enters at 6 s"
    assert event["end"] < 15.0, "the light switching on at 15 s recorded nothing"
    assert Path(sidecar["file"]).suffix == ".mp4"


def test_run_stops_gracefully_on_sigterm_and_finishes_the_open_clip(tmp_path):
    import signal
    import time

    video = make_video(tmp_path / "busy.mp4", VideoSpec(duration_s=4, boxes=[MovingBox(0.5, 4.0, speed=0.1)]))
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(f'[service]\ndata_dir = "{tmp_path / "data"}"\n[recording]\npre_roll_s = 1.0\n'
                   f'[[cameras]]\nname = "door"\nrecord_url = "{video}"\nrealtime = true\nloop = true\n')
    proc = subprocess.Popen([*CLI, "run", "--config", str(cfg)], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        for line in proc.stderr:
            if "motion started" in line or time.monotonic() > deadline:
                break
        time.sleep(1.5)
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=60)[1]
    finally:
        proc.kill()
    assert proc.returncode == 0, rest
    assert "SIGTERM" in rest and "Traceback" not in rest
    clips = list((tmp_path / "data" / "store" / "objects").rglob("*.mp4"))
    assert len(clips) == 1
    sidecar = json.loads(clips[0].with_suffix(".json").read_text())
    assert sidecar["events"][0]["end"] is not None and sidecar["duration_s"] > 1.0


def test_analyze_shows_audio_events_and_writes_a_plot(tmp_path):
    pytest.importorskip("matplotlib")
    from audio_fixtures import alarm_scene, encode_audio

    samples, onset = alarm_scene(16000, alarm_s=6.0)
    flac = encode_audio(tmp_path / "alarm.flac", samples, 16000)
    res = run("analyze", str(flac), "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    [event] = report["events"]
    assert event["label"] == "smoke_co_alarm" and abs(event["start_s"] - onset) <= 1.0
    assert report["audio_windows_inferred"] < report["audio_windows"], "silence skipped inference"
    png = tmp_path / "timeline.png"
    res = run("analyze", str(flac), "--plot", str(png))
    assert res.returncode == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_analyze_hears_a_file_shorter_than_one_audio_window(tmp_path):
    from audio_fixtures import encode_audio, pink_noise

    short = encode_audio(tmp_path / "short.flac", pink_noise(14400, 16000, -30.0, np.random.default_rng(0)), 16000)
    res = run("analyze", str(short), "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["audio_windows"] == 2 and report["audio_windows_inferred"] == 2  # 0.9 s, windowed to its end


def test_version_comes_from_the_package_metadata(capsys):
    """Bug: there was no `edge-media --version`."""
    import importlib.metadata

    from edge_media.cli import main

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"edge-media {importlib.metadata.version('edge-media')}\n"


def test_example_config_prints_the_commented_example_and_it_loads(tmp_path):
    """Bug: the commented example was only reachable from Python (`dump_example()`)."""
    from edge_media.config import load_config

    res = run("example-config")
    assert res.returncode == 0 and res.stdout == dump_example() and "# edge-media configuration" in res.stdout
    path = tmp_path / "example.toml"
    path.write_text(res.stdout)
    config = load_config(path)
    assert [c.name for c in config.cameras] == ["front-door", "test-clip"]


def _actions(parser, path=()):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {c.dest: c.help for c in action._choices_actions}
            for name, sub in action.choices.items():
                yield (*path, name), "(command)", helps.get(name)
                yield from _actions(sub, (*path, name))
        elif not isinstance(action, argparse._HelpAction):
            yield path, action.option_strings[0] if action.option_strings else action.dest, action.help


def test_every_command_and_option_has_help():
    """Bug: `--config`, `--owner`, `--yes`, `--detect-width`, `analyze`'s video and others had no help text."""
    from edge_media.cli.main import build_parser

    found = list(_actions(build_parser()))
    missing = [f"{' '.join(path)} {name}" for path, name, text in found if not (text or "").strip()]
    assert len(found) > 40 and missing == []

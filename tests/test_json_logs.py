"""``[service] log_format = "json"``: `edge-media run` (a real subprocess) writes one JSON object per line."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from edge_media.cli.logs import JsonFormatter

from media import MovingBox, VideoSpec, make_video

CONFIG = """
[service]
data_dir = "{data}"
log_format = "{fmt}"
[recording]
pre_roll_s = 1.0
post_roll_s = 1.0
[[cameras]]
name = "porch"
record_url = "{video}"
"""


def run_cli(tmp_path, fmt: str) -> subprocess.CompletedProcess:
    video = make_video(tmp_path / "walk.mp4", VideoSpec(duration_s=4, boxes=[MovingBox(1.0, 2.5)]))
    config = tmp_path / f"{fmt}.toml"
    config.write_text(CONFIG.format(data=tmp_path / fmt, fmt=fmt, video=video))
    return subprocess.run([sys.executable, "-m", "edge_media", "run", "--config", str(config)],
                          capture_output=True, text=True, timeout=120)


def test_run_writes_one_json_object_per_line(tmp_path):
    before = datetime.now(UTC)
    res = run_cli(tmp_path, "json")
    assert res.returncode == 0, res.stderr
    lines = res.stderr.splitlines()
    records = [json.loads(line) for line in lines]  # every line: a whole object, nothing else
    assert len(records) >= 4
    for rec in records:
        assert {"time", "level", "logger", "message"} <= rec.keys()
        at = datetime.fromisoformat(rec["time"])
        assert at.utcoffset() == timedelta(0) and before - timedelta(seconds=1) <= at <= datetime.now(UTC)
        assert rec["level"] in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
    messages = [r["message"] for r in records]
    assert any(m.startswith("edge-media running: 1 of 1 cameras") for m in messages), messages
    queued = [r for r in records if r["message"].startswith("queued clip")]
    assert [r["message"].endswith("of porch for upload") for r in queued] == [True]
    assert queued[0]["logger"] == "edge_media.service.publish" and queued[0]["level"] == "INFO"
    assert records[-1]["message"] == "edge-media stopped"


def test_text_stays_the_default(tmp_path):
    res = run_cli(tmp_path, "text")
    assert res.returncode == 0, res.stderr
    assert "INFO    edge_media.service.hub: edge-media running: 1 of 1 cameras" in res.stderr
    assert not res.stderr.lstrip().startswith("{")


def test_an_exception_travels_inside_its_record():
    try:
        raise ValueError("bad\npacket")
    except ValueError:
        record = logging.LogRecord("edge_media.x", logging.ERROR, __file__, 1, "failed on %s", ("cam",),
                                   sys.exc_info())
    line = JsonFormatter().format(record)
    assert "\n" not in line, "a traceback must not split the record across lines"
    rec = json.loads(line)
    assert rec["message"] == "failed on cam" and rec["level"] == "ERROR" and rec["logger"] == "edge_media.x"
    assert rec["exception"].startswith("Traceback") and "ValueError: bad\npacket" in rec["exception"]

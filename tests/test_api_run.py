"""``edge-media run`` serves the API beside the running hub: live status and events from the real pipeline,
a clean stop on SIGTERM; a port that cannot be bound leaves the hub recording without its API."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time

import httpx

from edge_media.cli import main

from media import MovingBox, VideoSpec, make_video

CLI = [sys.executable, "-m", "edge_media"]


def _config(tmp_path, video, api: str, *, loop: bool) -> str:
    cfg = tmp_path / "hub.toml"
    cfg.write_text(f'[service]\ndata_dir = "{tmp_path / "data"}"\n[recording]\npre_roll_s = 1.0\npost_roll_s = 1.0\n'
                   f'[[cameras]]\nname = "door"\nowner = "alice"\nrecord_url = "{video}"\n'
                   f'realtime = {str(loop).lower()}\nloop = {str(loop).lower()}\n[api]\n{api}\n')
    return str(cfg)


def test_run_serves_the_api_of_the_running_hub_and_stops_cleanly(tmp_path, capsys):
    video = make_video(tmp_path / "door.mp4", VideoSpec(duration_s=5, boxes=[MovingBox(1.0, 2.0)]))
    cfg = _config(tmp_path, video, 'port = 0\nhost = "127.0.0.1"', loop=True)
    assert main(["users", "add", "alice", "--role", "owner", "--config", cfg]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    proc = subprocess.Popen([*CLI, "run", "--config", cfg], stderr=subprocess.PIPE, text=True)
    url, lines = None, []
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            found = re.search(r"API listening on (http://\S+) ", line)
            if found:
                url = found.group(1)
                break
        assert url, "".join(lines)
        headers = {"Authorization": f"Bearer {token}"}
        deadline, cam, events = time.monotonic() + 60, {}, []
        with httpx.Client(base_url=url, headers=headers, timeout=10) as c:
            assert c.get("/api/v1/health").json()["status"] == "ok"
            while time.monotonic() < deadline and not (events and cam.get("last_motion")):
                cam = c.get("/api/v1/cameras/door").json()
                events = c.get("/api/v1/events").json()["items"]
                time.sleep(0.5)
        assert cam["state"] == "connected" and cam["connected"] is True
        assert cam["last_motion"]["label"] == "motion"  # from the pipeline's notices, live
        assert events and events[-1]["camera"] == "door" and events[-1]["label"] == "motion"
        # the event the hub announced and the one read back from its recorded clip are the same event
        assert cam["last_motion"]["event_id"] in {e["event_id"] for e in events}
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=60)[1]
    finally:
        proc.kill()
    assert proc.returncode == 0, rest
    assert "Traceback" not in rest
    port = int(url.rsplit(":", 1)[1])
    with socket.socket() as s:  # the API's port is released
        assert s.connect_ex(("127.0.0.1", port)) != 0


def test_run_records_without_the_api_when_its_port_is_taken(tmp_path):
    video = make_video(tmp_path / "door.mp4", VideoSpec(duration_s=4, boxes=[MovingBox(1.0, 2.0)]))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        cfg = _config(tmp_path, video, f"port = {port}", loop=False)
        res = subprocess.run([*CLI, "run", "--config", cfg], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert f"cannot serve the API on 127.0.0.1:{port}" in res.stderr and "runs without its API" in res.stderr
    assert list((tmp_path / "data" / "store" / "objects").rglob("*.mp4"))  # it recorded all the same

"""``edge-media demo --serve`` as a new user runs it: a subprocess that prints the review page's URL and an owner
token, serves the page and the API with the demo's clips, and stops cleanly (exit 0) on SIGINT."""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from edge_media.cli import main

START_TIMEOUT_S = 120.0  # the demo generates its sample and records it first


def _lines(stream, out: queue.Queue) -> None:
    for line in iter(stream.readline, ""):
        out.put(line)
    out.put(None)


def _read_until(lines: queue.Queue, pattern: str, seen: list[str], timeout_s: float) -> re.Match:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line is None:
            break
        seen.append(line)
        if m := re.search(pattern, line):
            return m
    raise AssertionError(f"{pattern!r} not printed; stdout so far:\n{''.join(seen)}")


def test_demo_serve_prints_url_and_token_serves_and_stops_on_sigint(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "edge_media", "demo", "--serve", "--port", "0",
                             "--dir", str(tmp_path / "demo")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    lines: queue.Queue = queue.Queue()
    errors: list[str] = []
    threading.Thread(target=_lines, args=(proc.stdout, lines), daemon=True).start()
    threading.Thread(target=lambda: errors.extend(iter(proc.stderr.readline, "")), daemon=True).start()
    seen: list[str] = []
    try:
        url = _read_until(lines, r"review page\s*: (http://\S+/ui/)", seen, START_TIMEOUT_S).group(1)
        token = _read_until(lines, r"owner token\s*: (\S+)", seen, 5).group(1)
        base = url.removesuffix("/ui/")
        page = httpx.get(url, timeout=10)
        assert page.status_code == 200 and "<title>edge-media" in page.text
        auth = {"Authorization": f"Bearer {token}"}
        me = httpx.get(f"{base}/api/v1/me", headers=auth, timeout=10).json()
        assert me["role"] == "owner" and me["cameras"] == ["demo-cam"]
        events = httpx.get(f"{base}/api/v1/events", headers=auth, timeout=10).json()["items"]
        assert [e["label"] for e in events][-1:] == ["motion"]  # the demo's own clip is there already
        assert httpx.get(f"{base}/api/v1/me", timeout=10).status_code == 401
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert token not in "".join(errors)  # the token is printed once, never logged


def test_demo_serve_refuses_s3_and_bad_ports(capsys) -> None:
    assert main(["demo", "--serve", "--s3"]) == 2
    assert "--serve" in capsys.readouterr().err
    assert main(["demo", "--serve", "--port", "70000"]) == 2
    assert "--port" in capsys.readouterr().err


def test_serve_config_loops_the_camera_and_turns_the_api_on(tmp_path: Path) -> None:
    from edge_media.config import load_config
    from edge_media.tools.demo import DEMO_CONFIG
    from edge_media.tools.demo_serve import ServeOptions, serve_config

    demo = tmp_path / "edge-media.toml"
    demo.write_text(DEMO_CONFIG.format(data=tmp_path / "data", video=tmp_path / "sample.mp4", backend="local", s3=""))
    config = load_config(serve_config(demo, ServeOptions(port=0)))
    [cam] = config.cameras
    assert cam.loop and cam.realtime
    assert config.api.enabled and config.api.port == 0 and config.api.host == "127.0.0.1"

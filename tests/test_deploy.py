"""deploy/: what can be checked without a Docker engine or a systemd boot. The commands both files run are valid
`edge-media` invocations (the CLI's own parser), the unit passes `systemd-analyze verify` where that exists,
the HEALTHCHECK really answers healthy/unhealthy against a real HTTP server, and the paths agree with the
service's defaults (state directory, stop timeout longer than the service's own drain)."""

from __future__ import annotations

import http.server
import json
import re
import shlex
import shutil
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

from edge_media.cli.main import build_parser
from edge_media.config.service import ServiceConfig
from edge_media.errors import EXIT_USAGE
from edge_media.service import hub

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
HEALTH_PATH = "/api/v1/health"
API_PORT = 8971


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of every stage, in order: continuation lines joined, comments dropped."""
    lines, out, pending = DEPLOY.joinpath("Dockerfile").read_text().splitlines(), [], ""
    for line in lines:
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        text = (pending + line).strip()
        pending = ""
        word, _, rest = text.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def instruction(name: str) -> list[str]:
    return [args for word, args in dockerfile() if word == name]


def unit() -> dict[str, list[str]]:
    """``Section.Key`` -> values (systemd allows a key more than once)."""
    out: dict[str, list[str]] = {}
    section = ""
    for line in DEPLOY.joinpath("edge-media.service").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return out


def one(u: dict[str, list[str]], key: str) -> str:
    values = u.get(key, [])
    assert len(values) == 1, f"{key}: {values}"
    return values[0]


def parses_as_run(argv: list[str]) -> Path:
    """``argv`` (without the program) is a valid `edge-media run` invocation; returns its config path."""
    args = build_parser().parse_args(argv)
    assert args.command == "run"
    return args.config


def test_dockerfile_runs_edge_media_run_on_the_mounted_config():
    cmd = json.loads(instruction("CMD")[-1])
    assert cmd[0] == "edge-media", "the console script the package installs"
    assert parses_as_run(cmd[1:]) == Path("/etc/edge-media/config.toml")
    scripts = tomllib.loads(ROOT.joinpath("pyproject.toml").read_text())["project"]["scripts"]
    assert "edge-media" in scripts


def test_dockerfile_user_volume_port_and_base():
    froms = instruction("FROM")
    assert froms and all(f.split()[0] == "python:3.11-slim" for f in froms)
    users = instruction("USER")
    assert users and users[-1] not in ("root", "0"), "runs as a non-root user"
    assert json.loads(instruction("VOLUME")[-1]) == [str(ServiceConfig().data_dir)]
    assert instruction("EXPOSE") == [str(API_PORT)]
    assert instruction("STOPSIGNAL") == ["SIGTERM"]


def test_dockerfile_copies_only_paths_that_exist():
    for args in instruction("COPY"):
        if "--from=" in args:
            continue  # from the build stage, not the repository
        for src in args.split()[:-1]:
            assert (ROOT / src).exists(), f"COPY {src}: not in the repository"


def healthcheck_code() -> str:
    (check,) = instruction("HEALTHCHECK")
    options, _, cmd = check.partition("CMD ")
    assert "--interval=" in options and "--timeout=" in options
    argv = json.loads(cmd)
    assert argv[:2] == ["python", "-c"], "python's urllib: the slim image has no curl"
    compile(argv[2], "HEALTHCHECK", "exec")
    return argv[2]


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == HEALTH_PATH else 404)
        self.end_headers()
        self.wfile.write(b'{"status": "ok"}')

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[http.server.HTTPServer]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_healthcheck_url_is_the_api_health_route_on_the_exposed_port():
    url = urlparse(re.search(r"https?://[^'\"]+", healthcheck_code()).group(0))
    assert url.hostname == "127.0.0.1" and url.port == API_PORT and url.path == HEALTH_PATH
    try:
        from edge_media.config.api import ApiConfig
    except ImportError:
        return  # the API's config lives on another branch until the merge; the port above is its documented default
    assert ApiConfig().port == url.port


def test_healthcheck_api_route_exists():
    api = ROOT / "edge_media" / "api"
    if not api.is_dir():
        pytest.skip("the REST API (edge_media/api) is not on this branch yet")
    sources = "\n".join(p.read_text() for p in api.rglob("*.py"))
    assert re.search(r"""["'](/api/v1)?/health["']""", sources), "the API serves the route HEALTHCHECK asks"


def test_healthcheck_is_healthy_on_200_and_unhealthy_otherwise(health_server):
    code = healthcheck_code().replace(f":{API_PORT}/", f":{health_server.server_port}/")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30).returncode == 0
    _Health.status = 503
    try:
        assert subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30).returncode != 0
    finally:
        _Health.status = 200
    port = health_server.server_port
    health_server.shutdown()
    health_server.server_close()  # nobody listens: connection refused
    down = healthcheck_code().replace(f":{API_PORT}/", f":{port}/")
    assert subprocess.run([sys.executable, "-c", down], capture_output=True, timeout=30).returncode != 0


def test_unit_runs_edge_media_run_and_reloads_with_sighup():
    u = unit()
    argv = shlex.split(one(u, "Service.ExecStart"))
    assert Path(argv[0]).name == "edge-media" and Path(argv[0]).is_absolute()
    docker_cmd = json.loads(instruction("CMD")[-1])
    assert parses_as_run(argv[1:]) == parses_as_run(docker_cmd[1:]), "one config path for both install paths"
    assert one(u, "Service.ExecReload") == "/bin/kill -HUP $MAINPID"
    assert one(u, "Service.Type") == "simple"
    assert one(u, "Service.Restart") == "on-failure"
    assert one(u, "Service.RestartPreventExitStatus") == str(EXIT_USAGE), "a bad config is not retried in a loop"
    assert one(u, "Service.KillSignal") == "SIGTERM"
    assert one(u, "Service.User") == "edge-media"
    assert set(one(u, "Service.SupplementaryGroups").split()) >= {"video", "audio"}


def test_unit_state_and_hardening_match_the_service():
    u = unit()
    data_dir = ServiceConfig().data_dir
    assert Path("/var/lib") / one(u, "Service.StateDirectory") == data_dir
    assert one(u, "Service.ReadWritePaths") == str(data_dir)
    assert one(u, "Service.ProtectSystem") == "strict"
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp"):
        assert one(u, f"Service.{key}") == "yes", key
    assert "Service.PrivateDevices" not in u, "V4L2 cameras and ALSA need /dev"


def test_unit_stop_timeout_outlasts_the_service_drain():
    seconds = int(one(unit(), "Service.TimeoutStopSec"))
    # stop(): each camera's reader gets 15 s to finish its clip, microphones 15 s, the model threads 10 s,
    # then uploads STOP_DRAIN_S. systemd must not SIGKILL the hub in the middle of writing a clip.
    assert seconds > 15 + 15 + 10 + hub.STOP_DRAIN_S


def test_unit_passes_systemd_analyze_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    script = shutil.which("edge-media") or str(Path(sys.executable).with_name("edge-media"))
    if not Path(script).exists():
        pytest.skip("the edge-media console script is not installed (pip install -e .)")
    # verify checks that ExecStart exists: point it at this checkout's console script, nothing else changed.
    text = DEPLOY.joinpath("edge-media.service").read_text()
    copy = tmp_path / "edge-media.service"
    copy.write_text(text.replace("/opt/edge-media/bin/edge-media", script))
    res = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "edge-media.service" not in res.stderr, res.stderr

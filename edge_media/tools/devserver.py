"""A throwaway local S3 server (``moto_server`` from the ``moto[server]`` package) for the demo and tests.

Never used by the service itself: ``edge-media demo --s3`` and the test fixtures start one on a free
loopback port, talk to it over real HTTP with the real minio client, and stop it by PID.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from minio import Minio

from uploader.s3_store import S3Store

STARTUP_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0
# moto accepts any credentials unless told otherwise; these only have to look like keys.
MOTO_ACCESS_KEY = "edge-media-test-access"
MOTO_SECRET_KEY = "edge-media-test-secret-do-not-log"


@dataclass(frozen=True)
class S3Server:
    endpoint: str  # host:port
    access_key: str
    secret_key: str = field(repr=False)
    secure: bool = False
    region: str = "us-east-1"
    external: bool = False

    def store(self, bucket: str | None = None, **options: object) -> S3Store:
        """An S3Store on ``bucket`` (default: a fresh unique one)."""
        bucket = bucket or f"edge-media-test-{uuid.uuid4().hex[:16]}"
        return S3Store(
            endpoint=self.endpoint,
            access_key=self.access_key,
            secret_key=self.secret_key,
            bucket=bucket,
            region=self.region,
            secure=self.secure,
            **options,  # type: ignore[arg-type]
        )

    def client(self) -> Minio:
        """A plain minio client, for set-up and clean-up the store API does not offer (buckets)."""
        return Minio(self.endpoint, self.access_key, self.secret_key, secure=self.secure, region=self.region)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _moto_command() -> list[str]:
    script = Path(sys.executable).parent / "moto_server"
    if script.exists():
        return [str(script)]
    found = shutil.which("moto_server")
    return [found] if found else [sys.executable, "-m", "moto.server"]


class MotoServer:
    """One ``moto_server`` process on a fixed loopback port; ``stop()``/``start()`` keep the port."""

    def __init__(self, *, port: int | None = None, env: Mapping[str, str] | None = None) -> None:
        self.port = port or free_port()
        self._env = {**os.environ, **(env or {})}
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_dir = Path(tempfile.mkdtemp(prefix="moto-"))
        self._log = self._log_dir / f"moto-{self.port}.log"

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def info(self) -> S3Server:
        return S3Server(self.endpoint, MOTO_ACCESS_KEY, MOTO_SECRET_KEY)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> MotoServer:
        if self.running:
            return self
        command = [*_moto_command(), "-H", "127.0.0.1", "-p", str(self.port)]
        # Its request log goes to a file: a pipe nobody reads would fill up and stall the server.
        with open(self._log, "ab") as log:
            self._proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=self._env)
        self._wait_until_up()
        return self

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_TIMEOUT_S)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._log_dir, ignore_errors=True)

    def _wait_until_up(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        assert self._proc is not None
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._fail(f"moto_server exited with status {self._proc.returncode}")
            try:
                with urllib.request.urlopen(f"http://{self.endpoint}/moto-api/", timeout=1):
                    return
            except urllib.error.HTTPError:
                return  # it answers HTTP: that is all we wait for
            except OSError:
                time.sleep(0.05)
        self.stop()
        self._fail(f"moto_server did not answer on {self.endpoint} within {STARTUP_TIMEOUT_S:.0f} s")

    def _fail(self, why: str) -> None:
        tail = self._log.read_text(errors="replace")[-3000:] if self._log.exists() else ""
        raise RuntimeError(f"{why}; command {_moto_command()}; its output:\n{tail}")

"""The real service, or one of its commands, as a child process for fault tests: its environment with S3
credentials, a stderr reader the test can wait on, and a decode check of stored clips."""

from __future__ import annotations

import io
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import av

from edge_media.tools.devserver import S3Server


def service_env(s3: S3Server) -> dict[str, str]:
    keys = {"EDGE_MEDIA_S3_ACCESS_KEY": s3.access_key, "EDGE_MEDIA_S3_SECRET_KEY": s3.secret_key,
            "EDGE_MEDIA_PARTNER_ACCESS_KEY": s3.access_key, "EDGE_MEDIA_PARTNER_SECRET_KEY": s3.secret_key}
    return {**os.environ, **keys}


class LogWatch:
    """Reads a child's stderr on a thread (so the pipe never fills) and lets the test wait for a line."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self._cv = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            with self._cv:
                self.lines.append(line)
                self._cv.notify_all()

    def wait_for(self, text: str, timeout: float) -> bool:
        start = len(self.lines)
        deadline = time.monotonic() + timeout
        with self._cv:
            while not any(text in line for line in self.lines[start:]):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(left)
        return True

    def join(self) -> str:
        self._thread.join(timeout=10)
        return "".join(self.lines)


@contextmanager
def spawn(args: list[str], env: dict[str, str]) -> Iterator[tuple[subprocess.Popen, LogWatch]]:
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env=env)
    try:
        yield proc, LogWatch(proc)
    finally:
        proc.kill()
        proc.wait(timeout=30)


def decoded_frames(client, bucket: str, key: str) -> int:
    body = client.get_object(bucket, key)
    try:
        data = body.read()
    finally:
        body.close()
        body.release_conn()
    with av.open(io.BytesIO(data)) as container:
        return sum(1 for _ in container.decode(video=0))

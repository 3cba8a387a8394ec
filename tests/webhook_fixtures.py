"""A local Standard Webhooks receiver for tests: a stdlib HTTP server in a thread that verifies every signature
with its own HMAC code (not the sender's), scripts its answers (503, 429 + Retry-After, 400) and can hang to
play a dead receiver."""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
TOLERANCE_S = 300  # what the spec's reference receivers accept


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """The receiver's side of the spec, written here independently of edge_media.notify.webhooks."""
    key = base64.b64decode(secret.split("_", 1)[1])
    msg_id, ts = headers["webhook-id"], headers["webhook-timestamp"]
    if abs(time.time() - int(ts)) > TOLERANCE_S:
        return False
    expected = base64.b64encode(hmac.new(key, f"{msg_id}.{ts}.{body.decode()}".encode(), hashlib.sha256).digest())
    return any(sig.startswith("v1,") and hmac.compare_digest(sig[3:].encode(), expected)
               for sig in headers["webhook-signature"].split(" "))


@dataclass
class Hit:
    headers: dict[str, str]
    body: bytes
    valid: bool
    at: float


@dataclass
class Receiver:
    server: ThreadingHTTPServer
    answers: list[tuple[int, dict[str, str]]] = field(default_factory=list)  # consumed in order; then 200
    hits: list[Hit] = field(default_factory=list)
    hold: threading.Event | None = None  # set: requests wait on it (a hanging receiver)
    cond: threading.Condition = field(default_factory=threading.Condition)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/edge?token=tok-ABC123"

    def wait_hits(self, n: int, timeout: float = 10.0) -> list[Hit]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.hits) >= n, timeout), f"{len(self.hits)} of {n} requests"
            return list(self.hits)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            rec = state["r"]
            body = self.rfile.read(int(self.headers["content-length"]))
            headers = {k.lower(): v for k, v in self.headers.items()}
            with rec.cond:
                rec.hits.append(Hit(headers, body, verify(SECRET, headers, body), time.time()))
                rec.cond.notify_all()
                status, extra = rec.answers.pop(0) if rec.answers else (200, {})
            if rec.hold is not None:
                rec.hold.wait(30)
            self.send_response(status)
            for k, v in extra.items():
                self.send_header(k, v)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state["r"] = rec = Receiver(server)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield rec
    if rec.hold is not None:
        rec.hold.set()
    server.shutdown()
    server.server_close()

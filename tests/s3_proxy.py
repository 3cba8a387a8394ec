"""A fault-injecting HTTP proxy for the fault suite: on a free loopback port between the service's S3 client and a
real S3 server (moto_server), switched at run time from the test.

Faults: ``fail(status, n)`` answers 5xx with an S3 error body (without asking the server), ``slow(delay_s)`` holds
every answer back, ``reset_after(nbytes)`` forwards that much of a PUT's body and then resets both connections (the
client sees a reset mid-upload, the server a truncated body), ``hang()`` accepts connections and never answers,
``heal()`` ends all of them (and frees the hung connections). ``counts`` says what it did, by kind; ``stored``
counts the 2xx answers to object PUTs per path, so a key stored twice shows.

Every request goes upstream on a connection of its own and its answer says ``Connection: close``: no pooled
connection outlives a switch of fault, and the proxy never has to frame a keep-alive stream. The ``Host`` header
is forwarded as the client signed it, so SigV4 signatures stay valid.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections import Counter
from dataclasses import dataclass

CHUNK = 64 * 1024
HEAD_LIMIT = 64 * 1024
IDLE_TIMEOUT_S = 60.0  # a client that sends nothing for this long is dropped (bounds every thread)
S3_CODES = {500: "InternalError", 502: "BadGateway", 503: "SlowDown", 504: "GatewayTimeout"}


@dataclass(frozen=True)
class _Mode:
    kind: str = "pass"  # pass | fail | slow | reset | hang
    status: int = 0
    left: int | None = None  # requests still to fault; None: until heal()
    delay_s: float = 0.0
    after_bytes: int = 0


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        host, port = upstream.rsplit(":", 1)
        self.upstream = (host, int(port))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._lock = threading.Lock()
        self._mode = _Mode()
        self._released = threading.Event()  # set by heal(): hung connections close
        self._closed = threading.Event()
        self._conns: set[socket.socket] = set()
        self.counts: Counter[str] = Counter()
        self.stored: Counter[str] = Counter()
        self._thread = threading.Thread(target=self._accept_loop, name="s3-fault-proxy", daemon=True)

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- switches -----------------------------------------------------------------------------------

    def fail(self, status: int = 503, n: int | None = None) -> None:
        self._set(_Mode("fail", status=status, left=n))

    def slow(self, delay_s: float) -> None:
        self._set(_Mode("slow", delay_s=delay_s))

    def reset_after(self, nbytes: int, n: int | None = None) -> None:
        """PUTs with a body longer than ``nbytes`` are cut there; other requests pass."""
        self._set(_Mode("reset", after_bytes=nbytes, left=n))

    def hang(self) -> None:
        self._set(_Mode("hang"))

    def heal(self) -> None:
        self._set(_Mode())

    @property
    def faulted(self) -> int:
        return sum(n for kind, n in self.counts.items() if kind != "forwarded")

    def close(self) -> None:
        self._closed.set()
        self._released.set()
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(); close() alone does not
        except OSError:
            pass
        self._listener.close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            _abort(conn)
        self._thread.join(5)

    # -- internals --------------------------------------------------------------------------------------

    def _set(self, mode: _Mode) -> None:
        with self._lock:
            self._mode = mode
            self._released.set()  # whatever hung under the previous mode goes now
            self._released = threading.Event()

    def _take(self, method: str, length: int) -> _Mode:
        """The fault for one request (counted down for a limited burst)."""
        with self._lock:
            mode = self._mode
            if mode.kind == "reset" and not (method == "PUT" and length > mode.after_bytes):
                return _Mode()
            if mode.left is not None:
                if mode.left <= 0:
                    return _Mode()
                self._mode = _Mode(mode.kind, mode.status, mode.left - 1, mode.delay_s, mode.after_bytes)
            return mode

    def _count(self, kind: str) -> None:
        with self._lock:
            self.counts[kind] += 1

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._conns.add(conn)
            threading.Thread(target=self._serve, args=(conn,), name="s3-fault-proxy-conn", daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            with self._lock:
                hung = self._released if self._mode.kind == "hang" else None
            if hung is not None:  # accepted, never read, never answered: the client must time out
                self._count("hang")
                hung.wait()
                return
            client.settimeout(IDLE_TIMEOUT_S)
            head, rest = _read_head(client)
            if not head:
                return
            method, target, length = _request_line(head)
            mode = self._take(method, length)
            if mode.kind == "fail":
                _drain(client, length - len(rest))  # read it all first: closing on unread bytes sends a reset
                client.sendall(_error_answer(mode.status, method))
                self._count(f"fail_{mode.status}")
                return
            self._forward(client, head, rest, method, target, length, mode)
        except OSError:
            pass  # the client gave up (its timeout) or we closed: nothing to answer
        finally:
            with self._lock:
                self._conns.discard(client)
            client.close()

    def _forward(self, client: socket.socket, head: bytes, rest: bytes, method: str, target: str, length: int,
                 mode: _Mode) -> None:
        with socket.create_connection(self.upstream, timeout=IDLE_TIMEOUT_S) as up:
            up.sendall(_closing(head))
            cut = mode.after_bytes if mode.kind == "reset" else None
            if not self._relay_body(client, up, rest, length, cut):
                _abort(up)
                _abort(client)
                self._count("reset")
                return
            answer = _read_all(up)
        if mode.kind == "slow":
            self._closed.wait(mode.delay_s)
            self._count("slow")
        else:
            self._count("forwarded")
        if method == "PUT" and "?" not in target and 200 <= _status(answer) < 300:
            with self._lock:
                self.stored[target] += 1
        client.sendall(_closing(answer))

    @staticmethod
    def _relay_body(client: socket.socket, up: socket.socket, rest: bytes, length: int, cut: int | None) -> bool:
        """Stream the request body upstream; False when ``cut`` ended it early."""
        sent, chunk = 0, rest
        while True:
            if cut is not None and sent + len(chunk) >= cut:
                up.sendall(chunk[: cut - sent])
                return False
            up.sendall(chunk)
            sent += len(chunk)
            if sent >= length:
                return True
            chunk = client.recv(min(CHUNK, length - sent))
            if not chunk:
                raise ConnectionError("client closed mid-body")


def _read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """(request head through the blank line, body bytes already received); (b"", b"") on a closed socket."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(CHUNK)
        if not data:
            return b"", b""
        buf += data
        if len(buf) > HEAD_LIMIT:
            raise ConnectionError("request head too long")
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head + b"\r\n\r\n", rest


def _request_line(head: bytes) -> tuple[str, str, int]:
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
        elif name.strip().lower() == "transfer-encoding":
            raise ConnectionError("chunked request bodies are not supported by the test proxy")
    return method, target, length


def _closing(message: bytes) -> bytes:
    """``message`` (a request or an answer) with its Connection header set to close."""
    head, sep, body = message.partition(b"\r\n\r\n")
    lines = [ln for ln in head.split(b"\r\n") if not ln.lower().startswith(b"connection:")]
    return b"\r\n".join([*lines, b"Connection: close"]) + sep + body


def _status(answer: bytes) -> int:
    try:
        return int(answer.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return 0


def _error_answer(status: int, method: str) -> bytes:
    code = S3_CODES.get(status, "InternalError")
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>injected by the test proxy</Message><RequestId>fault-proxy</RequestId></Error>").encode()
    head = (f"HTTP/1.1 {status} {code}\r\nContent-Type: application/xml\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode()
    return head if method == "HEAD" else head + body


def _drain(sock: socket.socket, nbytes: int) -> None:
    while nbytes > 0:
        data = sock.recv(min(CHUNK, nbytes))
        if not data:
            return
        nbytes -= len(data)


def _read_all(sock: socket.socket) -> bytes:
    parts = []
    while data := sock.recv(CHUNK):
        parts.append(data)
    return b"".join(parts)


def _abort(sock: socket.socket) -> None:
    """Close with a TCP reset (SO_LINGER 0), as a crashing server or a broken link does."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    except OSError:
        pass

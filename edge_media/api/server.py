"""``ApiServer``: uvicorn in a thread of the hub's process, on a socket bound before the thread starts.

Binding first makes a taken port one clear error from :meth:`start` (not a log line from a dying thread) and
lets port 0 report the port it got. uvicorn's access log is off (see ``access_log``); its signal handlers are
not installed outside the main thread, so SIGINT/SIGTERM stay the hub's.
"""

from __future__ import annotations

import logging
import socket
import threading
import time

import uvicorn
from fastapi import FastAPI

from ..errors import EdgeMediaError

log = logging.getLogger(__name__)

START_TIMEOUT_S = 10.0


class ApiBindError(EdgeMediaError):
    """The API's address cannot be bound (in use, or not an address of this machine)."""


class ApiServer:
    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        self.app, self.host, self._port = app, host, port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    @property
    def port(self) -> int:
        """The bound port (the one picked when configured as 0)."""
        return self._sock.getsockname()[1] if self._sock is not None else self._port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        self._sock = _bind(self.host, self._port)
        # proxy_headers off: uvicorn would otherwise take the client's address from X-Forwarded-For on any
        # connection from 127.0.0.1, so a caller behind a same-host tunnel or proxy could name a new address per
        # request and never meet the failure limit (ratelimit: behind a proxy, all share the proxy's address).
        config = uvicorn.Config(self.app, log_config=None, access_log=False, lifespan="off", server_header=False,
                                timeout_graceful_shutdown=3, proxy_headers=False)
        _silence_uvicorn_access_log()
        self._server = uvicorn.Server(config)
        sock = self._sock
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, name="api",
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not self._server.started:
            self.stop()
            raise ApiBindError(f"the API did not start on {self.host}:{self._port}")
        log.info("API listening on %s (review page %s/ui/)", self.url, self.url)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        if self._sock is not None:
            self._sock.close()
        self._thread = None


class _DropAll(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return False


def _silence_uvicorn_access_log() -> None:
    # uvicorn writes its access line whenever "uvicorn.access" has a handler anywhere up the chain (a root
    # handler someone configured is enough), whatever ``access_log=False`` said: the line holds the query string,
    # i.e. link signatures. A filter on the logger itself drops it before any handler sees it.
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, _DropAll) for f in access.filters):
        access.addFilter(_DropAll())


def _bind(host: str, port: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, addr = infos[0]
        # proto must be IPPROTO_TCP (as getaddrinfo says), not 0: asyncio sets TCP_NODELAY on accepted connections
        # only then, and without it every keep-alive response waits ~40 ms for a delayed ACK (Nagle).
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(addr)
            sock.listen(128)
        except OSError:
            sock.close()
            raise
    except OSError as exc:
        raise ApiBindError(f"cannot serve the API on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(False)
    return sock

"""Standard Webhooks (standardwebhooks.com): signed POSTs with retries, on a sender thread per receiver.

Each message has an id (``webhook-id``, the same on every retry so receivers can de-duplicate), a timestamp
(``webhook-timestamp``, the attempt's own: receivers reject stale ones, so a retry is re-signed) and
``webhook-signature: v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`` where the key is the base64
part of the ``whsec_`` secret. Connection errors, timeouts, 5xx, 408 and 429 are retried with exponential
backoff and jitter (a ``Retry-After`` from the receiver wins, capped); other 4xx are the receiver saying no,
and are not retried. One thread per receiver: a receiver that hangs until its timeout delays only itself.
:meth:`WebhookSender.submit` only appends to a bounded queue: the pipeline never waits on a receiver.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import heapq
import hmac
import itertools
import json
import logging
import random
import secrets
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..config.notify import WebhookConfig

log = logging.getLogger(__name__)

BACKOFF_CAP_S = 600.0
RETRY_AFTER_CAP_S = 3600.0  # a receiver asking for more than an hour is not honoured beyond it
RETRY_STATUS = frozenset({408, 429})
USER_AGENT = "edge-media-webhooks/1"


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


@dataclass(order=True)
class _Delivery:
    due: float
    seq: int
    msg_id: str = field(compare=False)
    body: bytes = field(compare=False)
    attempts: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class _Outcome:
    ok: bool
    retry: bool
    detail: str
    retry_after_s: float | None = None


class WebhookSender:
    def __init__(self, cfg: WebhookConfig, *, rng: random.Random | None = None) -> None:
        self.cfg = cfg
        self.target = _redacted(cfg.url)  # URLs may carry tokens in their query: logs name the host and path only
        self.delivered = 0
        self.given_up = 0
        self.dropped = 0
        self._key = cfg.key
        self._rng = rng if rng is not None else random.Random()
        self._heap: list[_Delivery] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stopping = False
        self._overflowing = False
        self._thread: threading.Thread | None = None

    def submit(self, payload: dict[str, Any]) -> str:
        """Queue ``payload`` for delivery; returns its webhook-id. Never blocks: over ``queue_size`` the oldest
        message is dropped (one log line per overflow, not per message)."""
        body = json.dumps(payload, separators=(",", ":")).encode()
        msg_id = "msg_" + secrets.token_hex(12)
        with self._cond:
            if len(self._heap) >= self.cfg.queue_size:
                oldest = min(self._heap, key=lambda d: d.seq)
                self._heap.remove(oldest)
                heapq.heapify(self._heap)
                self.dropped += 1
                if not self._overflowing:
                    log.warning("webhook %s: %d messages queued; dropping the oldest", self.target, len(self._heap))
                    self._overflowing = True
            heapq.heappush(self._heap, _Delivery(time.monotonic(), next(self._seq), msg_id, body))
            self._cond.notify()
        return msg_id

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="webhook-sender", daemon=True)
        self._thread.start()

    def stop(self, drain_s: float = 2.0, timeout_s: float = 5.0) -> None:
        """Give messages due within ``drain_s`` (the last event ends) their chance, then stop after the request
        in hand; what is left is logged, not kept: a notification hours late is worse than none."""
        deadline = time.monotonic() + drain_s
        with self._cond:
            while self._heap and self._heap[0].due <= deadline and time.monotonic() < deadline:
                self._cond.wait(0.05)
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self._heap:
            log.warning("webhook %s: %d messages not delivered before stop", self.target, len(self._heap))

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._heap)

    def _run(self) -> None:
        while True:
            with self._cond:
                item = self._next_due()
                if item is None:
                    return
            self._attempt(item)

    def _next_due(self) -> _Delivery | None:
        """Under the lock: wait for the earliest delivery to fall due; None when stopping."""
        while not self._stopping:
            if self._heap and self._heap[0].due <= time.monotonic():
                item = heapq.heappop(self._heap)
                if len(self._heap) < self.cfg.queue_size // 2:
                    self._overflowing = False
                return item
            self._cond.wait(self._heap[0].due - time.monotonic() if self._heap else None)
        return None

    def _attempt(self, item: _Delivery) -> None:
        item.attempts += 1
        outcome = self._post(item)
        if outcome.ok:
            self.delivered += 1
            return
        if not outcome.retry or item.attempts >= self.cfg.max_attempts:
            self.given_up += 1
            log.warning("webhook %s: gave up on %s after %d attempts (%s)", self.target, item.msg_id,
                        item.attempts, outcome.detail)
            return
        delay = outcome.retry_after_s if outcome.retry_after_s is not None else self._backoff(item.attempts)
        log.debug("webhook %s: attempt %d of %s failed (%s); retry in %.2f s", self.target, item.attempts,
                  item.msg_id, outcome.detail, delay)
        item.due = time.monotonic() + delay
        with self._cond:
            heapq.heappush(self._heap, item)

    def _backoff(self, attempts: int) -> float:
        """Equal jitter: between half and all of backoff_s x 2^(attempts-1), capped."""
        ceiling = min(BACKOFF_CAP_S, self.cfg.backoff_s * 2.0 ** min(attempts - 1, 30))
        return self._rng.uniform(ceiling / 2, ceiling)

    def _post(self, item: _Delivery) -> _Outcome:
        ts = int(time.time())
        req = urllib.request.Request(self.cfg.url, data=item.body, method="POST", headers={
            "content-type": "application/json", "user-agent": USER_AGENT, "webhook-id": item.msg_id,
            "webhook-timestamp": str(ts), "webhook-signature": sign(self._key, item.msg_id, ts, item.body)})
        try:
            with urllib.request.urlopen(req, timeout=self.cfg.timeout_s) as resp:
                resp.read()
                return _Outcome(True, False, f"HTTP {resp.status}")
        except urllib.error.HTTPError as err:
            retry = err.code >= 500 or err.code in RETRY_STATUS
            return _Outcome(False, retry, f"HTTP {err.code}", _retry_after(err.headers.get("Retry-After")))
        except (urllib.error.URLError, OSError) as err:  # refused, unreachable, timed out, TLS
            reason = getattr(err, "reason", err)
            return _Outcome(False, True, f"{type(reason).__name__}: {reason}")


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), RETRY_AFTER_CAP_S)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return min(max(0.0, when.timestamp() - time.time()), RETRY_AFTER_CAP_S)


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}{parts.path}"

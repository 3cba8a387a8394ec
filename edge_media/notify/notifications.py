"""Notifications: listens to the hub's notices, applies the rules, and fans out to MQTT and webhooks.

The bus calls :meth:`Notifications.on_notice` on the pipeline's threads, so it only appends to a bounded queue;
one dispatcher thread does the rest. What is a notification and what is state:

- Event start/end: MQTT states (motion, audio ON/OFF, the HA audio event) always follow; the event JSON and the
  webhook go out only when :class:`NotifyPolicy` says so at the event's start, and its end goes out iff its start
  did (an event that began before quiet hours still gets its end).
- Source connection: the ``connected`` state always; a connectivity message (MQTT and webhook) when it fails
  to connect at start or ``connected`` flips later — "retrying" after "failed" is no news, nor is a camera
  connecting at start-up or a file source reaching its end.
- Storage problems: always, both ways (began / cleared).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime

from ..service.bus import EventNotice, Notice, SourceNotice, StorageNotice
from .messages import connectivity_payload, event_payload, storage_payload
from .mqtt import MqttNotifier
from .policy import NotifyPolicy
from .webhooks import WebhookSender

log = logging.getLogger(__name__)

QUEUE_SIZE = 10_000
MAX_SENT_IDS = 4096  # event ids whose start was notified, kept until their end (bounded: ends can be lost)


def local_minute() -> int:
    """Minute of the hub's local day (quiet hours are local time)."""
    now = datetime.now()
    return now.hour * 60 + now.minute


class Notifications:
    def __init__(self, policy: NotifyPolicy, *, mqtt: MqttNotifier | None = None,
                 webhooks: Sequence[WebhookSender] = (), minute: Callable[[], int] = local_minute) -> None:
        self.policy, self.mqtt, self.webhooks, self.minute = policy, mqtt, list(webhooks), minute
        self.dropped = 0
        self._queue: deque[Notice] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._overflowing = False
        self._sent: deque[str] = deque(maxlen=MAX_SENT_IDS)
        self._connected: dict[str, bool] = {}
        self._thread = threading.Thread(target=self._run, name="notifications", daemon=True)

    def on_notice(self, notice: Notice) -> None:
        """Bus subscriber: hand over and return (a full queue drops its oldest notice, one log line per burst)."""
        with self._cond:
            if len(self._queue) >= QUEUE_SIZE:
                self._queue.popleft()
                self.dropped += 1
                if not self._overflowing:
                    log.warning("notifications are %d notices behind; dropping the oldest", QUEUE_SIZE)
                    self._overflowing = True
            self._queue.append(notice)
            self._cond.notify()

    def start(self) -> None:
        if self.mqtt is not None:
            self.mqtt.start()
        for hook in self.webhooks:
            hook.start()
        self._thread.start()

    def stop(self) -> None:
        """Send what is queued, then say ``offline`` on MQTT and stop the senders."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread.ident is not None:
            self._thread.join(5)
        if self.mqtt is not None:
            self.mqtt.stop()
        for hook in self.webhooks:
            hook.stop()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if not self._queue:
                    return
                notice = self._queue.popleft()
                if not self._queue:
                    self._overflowing = False
            try:
                self.dispatch(notice)
            except Exception:  # one bad notice must not end notifications
                log.exception("notification of %s failed", type(notice).__name__)

    def dispatch(self, notice: Notice) -> None:
        if isinstance(notice, EventNotice):
            self._event(notice)
        elif isinstance(notice, SourceNotice):
            self._source(notice)
        elif isinstance(notice, StorageNotice):
            if self.mqtt is not None:
                self.mqtt.handle_storage(notice)
            self._hooks(storage_payload(notice))

    def _event(self, n: EventNotice) -> None:
        if n.phase == "start":
            notify = self.policy.notifies(n.source, n.label, minute=self.minute())
            if notify:
                self._sent.append(n.event_id)
        else:
            notify = n.event_id in self._sent
            if notify:
                self._sent.remove(n.event_id)
        if self.mqtt is not None:
            self.mqtt.handle_event(n, notify=notify)
        if notify:
            self._hooks(event_payload(n))

    def _source(self, n: SourceNotice) -> None:
        # A camera connecting at start-up is how things should be, not news; failing to, or any later flip
        # (dropped, back again), is.
        before = self._connected.get(n.source)
        changed = (before is None and not n.connected) or (before is not None and before != n.connected)
        changed = changed and n.state != "ended"  # a file played to its end: nothing is wrong
        self._connected[n.source] = n.connected
        if self.mqtt is not None:
            self.mqtt.handle_source(n, changed=changed)
        if changed:
            self._hooks(connectivity_payload(n))

    def _hooks(self, payload: dict) -> None:
        for hook in self.webhooks:
            hook.submit(payload)

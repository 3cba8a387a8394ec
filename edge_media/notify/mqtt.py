"""MQTT: availability with a last will, per-source ON/OFF states, event JSON, and Home Assistant discovery.

paho-mqtt runs its own network thread (``loop_start``) and reconnects by itself; publishing only queues a packet
for that thread, so :meth:`MqttNotifier.handle` never waits on the network. State topics are retained and kept
here too: after every (re)connect they are all published again, so a broker that lost its retained messages (a
restart without persistence) and a Home Assistant that just started both see the truth. Topics:

- ``<prefix>/available``: ``online`` / ``offline`` (retained; ``offline`` is the last will, and sent on stop)
- ``<prefix>/<source>/motion``, ``<prefix>/<source>/audio/<label>``, ``<prefix>/<source>/connected``: ON/OFF
- ``<prefix>/<source>/audio/event``: ``{"event_type": label, ...}`` at each audio event start (HA event entity)
- ``<prefix>/events`` (event JSON), ``<prefix>/connectivity``, ``<prefix>/storage`` (JSON, not retained)
- ``<prefix>/storage/<problem>``: ON/OFF (retained)
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from ..config.notify import MqttConfig
from ..errors import EXIT_USAGE, EdgeMediaError
from ..service.bus import EventNotice, SourceNotice, StorageNotice
from .messages import connectivity_payload, event_payload, storage_payload

log = logging.getLogger(__name__)

STORAGE_PROBLEMS = ("store_unreachable", "quota_reached", "upload_failed")
KEEPALIVE_S = 30
RECONNECT_MIN_S, RECONNECT_MAX_S = 1, 60
STOP_FLUSH_S = 2.0  # how long stop() waits for the broker to take the retained "offline"


class MqttSetupError(EdgeMediaError):
    """The MQTT client cannot be set up from ``[notify.mqtt]`` (e.g. an unreadable TLS CA file)."""

    exit_code = EXIT_USAGE


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """A camera or microphone as notifications announce it. ``uid`` is derived from the hub's install secret,
    so Home Assistant's unique ids survive restarts and never collide between hubs with the same camera names."""

    name: str
    uid: str
    motion: bool  # cameras have motion; microphones do not
    audio: bool  # audio events are detected on it


@dataclass(frozen=True, slots=True)
class HubInfo:
    node_id: str  # Home Assistant node id and device identifier of this hub
    name: str
    version: str


class MqttNotifier:
    def __init__(self, cfg: MqttConfig, hub: HubInfo, sources: Sequence[SourceInfo], audio_labels: Sequence[str],
                 ) -> None:
        self.cfg, self.hub, self.sources, self.audio_labels = cfg, hub, list(sources), list(audio_labels)
        self.prefix = cfg.topic_prefix
        self.available_topic = f"{self.prefix}/available"
        self.connected = threading.Event()
        self.announcements = 0  # discovery rounds sent: lets tests see a re-announce happened
        self._lock = threading.Lock()  # _states/_active: the dispatcher thread and paho's thread both touch them
        self._states: dict[str, str] = self._initial_states()
        self._active: dict[tuple[str, str], set[str]] = {}
        self._down_logged = False
        self.client = self._client()

    # -- lifecycle --------------------------------------------------------------------------------

    def _client(self) -> mqtt.Client:
        cid = self.cfg.client_id or self.hub.node_id.replace("_", "-")
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid)
        if self.cfg.username:
            client.username_pw_set(self.cfg.username, self.cfg.password.get_secret_value() or None)
        if self.cfg.tls:
            try:
                client.tls_set(ca_certs=str(self.cfg.ca_file) if self.cfg.ca_file else None,
                               cert_reqs=ssl.CERT_REQUIRED)
            except (OSError, ssl.SSLError) as exc:
                raise MqttSetupError(f"notify.mqtt.ca_file: cannot use {self.cfg.ca_file}: "
                                     f"{getattr(exc, 'strerror', None) or exc}") from None
        # The broker publishes this for us if we vanish (crash, power cut, network gone) for 1.5 x keepalive.
        client.will_set(self.available_topic, "offline", qos=self.cfg.qos, retain=True)
        client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        client.max_queued_messages_set(self.cfg.queue_size)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        client.on_message = self._on_message
        return client

    def start(self) -> None:
        # connect_async: the first connection is made by the network thread too, so a broker that is down at
        # start-up delays nothing; paho keeps retrying with reconnect_delay_set's backoff.
        self.client.connect_async(self.cfg.host, self.cfg.port, keepalive=KEEPALIVE_S)
        self.client.loop_start()

    def stop(self) -> None:
        """Publish ``offline`` (a clean disconnect does not fire the last will), then disconnect."""
        if self.connected.is_set():
            info = self.client.publish(self.available_topic, "offline", qos=self.cfg.qos, retain=True)
            try:
                info.wait_for_publish(STOP_FLUSH_S)
            except (RuntimeError, ValueError):
                pass  # lost the broker meanwhile: the last will says offline instead
        self.client.disconnect()
        self.client.loop_stop()

    # -- notices (dispatcher thread) ----------------------------------------------------------------

    def handle_event(self, n: EventNotice, *, notify: bool) -> None:
        """States always follow the event; the event JSON only goes out when the rules say ``notify``."""
        key = (n.source, n.label)
        with self._lock:
            active = self._active.setdefault(key, set())
            (active.add if n.phase == "start" else active.discard)(n.event_id)
            state = "ON" if active else "OFF"
        self._set_state(self._state_topic(n.source, n.label), state)
        if not n.is_motion and n.phase == "start":
            self._publish(f"{self.prefix}/{n.source}/audio/event",
                          {"event_type": n.label, "event_id": n.event_id, "score": round(n.score, 4),
                           "start": n.start})
        if notify:
            self._publish(f"{self.prefix}/events", event_payload(n))

    def handle_source(self, n: SourceNotice, *, changed: bool) -> None:
        self._set_state(f"{self.prefix}/{n.source}/connected", "ON" if n.connected else "OFF")
        if changed:
            self._publish(f"{self.prefix}/connectivity", connectivity_payload(n))

    def handle_storage(self, n: StorageNotice) -> None:
        self._set_state(f"{self.prefix}/storage/{n.problem}", "ON" if n.active else "OFF")
        self._publish(f"{self.prefix}/storage", storage_payload(n))

    def _state_topic(self, source: str, label: str) -> str:
        return f"{self.prefix}/{source}/motion" if label == "motion" else f"{self.prefix}/{source}/audio/{label}"

    def _set_state(self, topic: str, value: str) -> None:
        with self._lock:
            self._states[topic] = value
        self.client.publish(topic, value, qos=self.cfg.qos, retain=True)

    def _publish(self, topic: str, payload: dict[str, Any]) -> None:
        self.client.publish(topic, json.dumps(payload, separators=(",", ":")), qos=self.cfg.qos)

    def _initial_states(self) -> dict[str, str]:
        """What is true when the hub starts: nothing is moving, nothing is connected yet, no storage problem.
        Overwrites a stale retained ON left by a hub that crashed mid-event."""
        states = {f"{self.prefix}/storage/{p}": "OFF" for p in STORAGE_PROBLEMS}
        for s in self.sources:
            states[f"{self.prefix}/{s.name}/connected"] = "OFF"
            if s.motion:
                states[f"{self.prefix}/{s.name}/motion"] = "OFF"
            if s.audio:
                states.update({f"{self.prefix}/{s.name}/audio/{label}": "OFF" for label in self.audio_labels})
        return states

    # -- paho's network thread ------------------------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            if not self._down_logged:  # once per outage: paho retries every few seconds
                log.error("MQTT broker %s:%d refused the connection: %s; retrying", self.cfg.host, self.cfg.port,
                          reason)
                self._down_logged = True
            return
        log.info("MQTT connected to %s:%d", self.cfg.host, self.cfg.port)
        self._down_logged = False
        client.publish(self.available_topic, "online", qos=self.cfg.qos, retain=True)
        if self.cfg.discovery:
            client.subscribe(self.cfg.ha_status_topic, qos=self.cfg.qos)
            self.announce()
        self._republish_states()
        self.connected.set()

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        # No route, refused, TLS verification failed: paho retries with backoff; one line per outage.
        if not self._down_logged:
            log.warning("MQTT broker %s:%d unreachable%s; retrying", self.cfg.host, self.cfg.port,
                        " (or its TLS certificate was not accepted)" if self.cfg.tls else "")
            self._down_logged = True

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.connected.clear()
        if reason.is_failure and not self._down_logged:
            log.warning("MQTT connection to %s:%d lost (%s); reconnecting", self.cfg.host, self.cfg.port, reason)
            self._down_logged = True

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        # Home Assistant's birth message: it (re)started and forgot non-retained discovery; announce again.
        if msg.topic == self.cfg.ha_status_topic and msg.payload == b"online":
            self.announce()
            self._republish_states()

    def _republish_states(self) -> None:
        with self._lock:
            states = dict(self._states)
        for topic, value in states.items():
            self.client.publish(topic, value, qos=self.cfg.qos, retain=True)

    # -- Home Assistant discovery -----------------------------------------------------------------------

    def announce(self) -> None:
        """Publish every discovery config (retained)."""
        for topic, config in self.discovery_configs().items():
            self.client.publish(topic, json.dumps(config, separators=(",", ":")), qos=self.cfg.qos, retain=True)
        self.announcements += 1

    def set_sources(self, sources: Sequence[SourceInfo]) -> None:
        """The hub's sources changed (a config reload): announce the new set and remove the entities of sources
        that are gone (an empty retained config is Home Assistant's way to delete a discovered entity)."""
        old = set(self.discovery_configs())
        self.sources = list(sources)
        for topic in sorted(old - set(self.discovery_configs())):
            self.client.publish(topic, b"", qos=self.cfg.qos, retain=True)
        self.announce()

    def discovery_configs(self) -> dict[str, dict[str, Any]]:
        dp, node = self.cfg.discovery_prefix, self.hub.node_id
        configs: dict[str, dict[str, Any]] = {}
        for s in self.sources:
            if s.motion:
                configs[f"{dp}/binary_sensor/{node}/{s.name}_motion/config"] = self._entity(
                    f"{s.name} motion", f"{s.uid}_motion", f"{self.prefix}/{s.name}/motion", device_class="motion")
            configs[f"{dp}/binary_sensor/{node}/{s.name}_connected/config"] = self._entity(
                f"{s.name} connected", f"{s.uid}_connected", f"{self.prefix}/{s.name}/connected",
                device_class="connectivity", entity_category="diagnostic")
            if s.audio and self.audio_labels:
                configs[f"{dp}/event/{node}/{s.name}_audio/config"] = {
                    **self._common(f"{s.name} audio", f"{s.uid}_audio"),
                    "state_topic": f"{self.prefix}/{s.name}/audio/event", "event_types": self.audio_labels}
        for problem in STORAGE_PROBLEMS:
            configs[f"{dp}/binary_sensor/{node}/storage_{problem}/config"] = self._entity(
                f"storage {problem.replace('_', ' ')}", f"storage_{problem}", f"{self.prefix}/storage/{problem}",
                device_class="problem", entity_category="diagnostic")
        return configs

    def _entity(self, name: str, uid: str, state_topic: str, **extra: str) -> dict[str, Any]:
        return {**self._common(name, uid), "state_topic": state_topic, "payload_on": "ON", "payload_off": "OFF",
                **extra}

    def _common(self, name: str, uid: str) -> dict[str, Any]:
        return {"name": name, "unique_id": f"{self.hub.node_id}_{uid}", "qos": self.cfg.qos,
                "availability_topic": self.available_topic, "payload_available": "online",
                "payload_not_available": "offline",
                "device": {"identifiers": [self.hub.node_id], "name": self.hub.name, "manufacturer": "edge-media",
                           "model": "edge-media hub", "sw_version": self.hub.version}}

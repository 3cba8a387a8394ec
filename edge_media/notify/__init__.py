"""edge_media.notify: "something is not OK" — MQTT (with Home Assistant discovery) and Standard Webhooks.

Owns: the notification rules (``policy``), the MQTT client and its topics (``mqtt``), the webhook senders
(``webhooks``) and the dispatcher between the hub's bus and them (``notifications``). Reads only the hub's
notices; never touches the pipeline, the database or the stores, and never blocks a publisher.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version

from ..config import Config
from .mqtt import HubInfo, MqttNotifier, SourceInfo
from .notifications import Notifications
from .policy import NotifyPolicy
from .webhooks import WebhookSender

__all__ = ["HubInfo", "MqttNotifier", "Notifications", "NotifyPolicy", "SourceInfo", "WebhookSender",
           "build_notifications", "hub_node_id", "notify_sources"]


def hub_node_id(secret: bytes) -> str:
    """This hub's id for Home Assistant (node id, device identifier, unique-id prefix): from the install secret,
    so it is stable across restarts and config edits, and says nothing about the household."""
    return "edge_media_" + hashlib.sha256(b"edge-media notify node\0" + secret).hexdigest()[:12]


def build_notifications(config: Config, *, secret: bytes, source_uid: Callable[[str], str],
                        audio_labels: Sequence[str]) -> Notifications | None:
    """The hub's notifications, or None when ``[notify]`` configures no broker and no webhook."""
    cfg = config.notify
    if not cfg.active:
        return None
    mqtt = None
    if cfg.mqtt.enabled:
        node = hub_node_id(secret)
        mqtt = MqttNotifier(cfg.mqtt, HubInfo(node, f"edge-media hub {node[-6:]}", _version()),
                            notify_sources(config, source_uid, audio_labels), audio_labels)
    return Notifications(NotifyPolicy.from_config(cfg), mqtt=mqtt, webhooks=[WebhookSender(w) for w in cfg.webhooks])


def notify_sources(config: Config, source_uid: Callable[[str], str], audio_labels: Sequence[str]) -> list[SourceInfo]:
    """The enabled cameras and microphones as notifications announce them."""
    sources = [SourceInfo(c.name, source_uid(c.name)[:16], motion=True, audio=c.audio_events and bool(audio_labels))
               for c in config.cameras if c.enabled]
    sources += [SourceInfo(m.name, source_uid(m.name)[:16], motion=False, audio=bool(audio_labels))
                for m in config.microphones if m.enabled]
    return sources


def _version() -> str:
    try:
        return version("edge-media")
    except PackageNotFoundError:
        return "0"

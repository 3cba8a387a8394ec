"""The JSON every channel sends: one payload per notice, the same over MQTT and webhooks (a ``type`` field
tells them apart). Names of cameras appear here: these messages go to the owner's own broker and receivers."""

from __future__ import annotations

from typing import Any

from ..service.bus import EventNotice, SourceNotice, StorageNotice


def event_payload(n: EventNotice) -> dict[str, Any]:
    return {"type": "new" if n.phase == "start" else "end", "camera": n.source, "label": n.label,
            "event_id": n.event_id, "score": round(n.score, 4), "start": n.start, "end": n.end, "at": n.at}


def connectivity_payload(n: SourceNotice) -> dict[str, Any]:
    return {"type": "connectivity", "camera": n.source, "connected": n.connected, "state": n.state,
            "problem": n.problem, "at": n.at}


def storage_payload(n: StorageNotice) -> dict[str, Any]:
    return {"type": "storage", "problem": n.problem, "active": n.active, "detail": n.detail, "at": n.at}

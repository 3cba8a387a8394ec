"""The one event value type, from detector to clip sidecar.

It lives here, in the lowest layer, because the sidecar is the contract between the layers:
``edge_media`` (motion tracker, audio-event logic, clip decisions) produces these values and the
recorder writes them into the sidecar unchanged, so there is no conversion anywhere. It carries
no camera, owner or microphone name: the sidecar leaves the hub.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Event:
    label: str  # product label: "motion", "smoke_co_alarm", ...
    score: float  # peak score while active
    start: float  # stream seconds of the onset
    last_seen: float  # stream seconds of the last detection
    end: float | None = None  # set when the event is over
    continued: bool = False  # continues an event that was cut at its maximum length

    @property
    def key(self) -> tuple[str, float]:
        """Identifies one event through its updates (its start never changes)."""
        return (self.label, self.start)

    @property
    def until(self) -> float:
        """Where the event ends, or the latest it is known to have lasted."""
        return self.end if self.end is not None else self.last_seen

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        """Also reads sidecars written before ``last_seen`` was recorded."""
        fields = dict(data)
        fields.setdefault("last_seen", fields.get("end") if fields.get("end") is not None else fields["start"])
        return cls(**fields)

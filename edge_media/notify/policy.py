"""Which event notices become notifications: per source, per label and quiet hours. Pure: no clock, no I/O.

Precedence, most specific first: a source switched off, or a label not in its list, or a label switched off
everywhere, is never notified (the owner said so explicitly: a camera facing a TV). Quiet hours then hold back
everything except the ``always_notify`` labels (a smoke alarm at 3 am is exactly what must get through).
Connectivity and storage problems are not events: they always notify and never reach this module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..config.notify import NotifyConfig

MINUTES_PER_DAY = 24 * 60


@dataclass(frozen=True, slots=True)
class QuietHours:
    """Local-time ranges as (start, end) minutes of the day; a range may wrap past midnight."""

    ranges: tuple[tuple[int, int], ...] = ()

    @classmethod
    def parse(cls, texts: Sequence[str]) -> QuietHours:
        ranges = []
        for text in texts:  # shape already checked by the config ("HH:MM-HH:MM")
            start, end = (int(h) * 60 + int(m) for h, m in (part.split(":") for part in text.split("-")))
            ranges.append((start, end))
        return cls(tuple(ranges))

    def contains(self, minute: int) -> bool:
        """Is ``minute`` (of the local day, 0..1439) inside a range? Start inclusive, end exclusive."""
        for start, end in self.ranges:
            if start < end and start <= minute < end:
                return True
            if start > end and (minute >= start or minute < end):  # wraps midnight: 22:00-07:00
                return True
        return False


@dataclass(frozen=True, slots=True)
class SourceRules:
    enabled: bool = True
    labels: frozenset[str] = frozenset()  # empty: every label


@dataclass(frozen=True, slots=True)
class NotifyPolicy:
    sources: Mapping[str, SourceRules]
    labels: Mapping[str, bool]
    quiet: QuietHours
    always: frozenset[str]

    @classmethod
    def from_config(cls, cfg: NotifyConfig) -> NotifyPolicy:
        sources = {name: SourceRules(rule.enabled, frozenset(rule.labels)) for name, rule in cfg.cameras.items()}
        return cls(sources, dict(cfg.labels), QuietHours.parse(cfg.quiet_hours), frozenset(cfg.always_notify))

    def notifies(self, source: str, label: str, *, minute: int) -> bool:
        """Should an event of ``label`` on ``source`` starting at local ``minute`` of the day be notified?"""
        rule = self.sources.get(source, SourceRules())
        if not rule.enabled or (rule.labels and label not in rule.labels):
            return False
        if not self.labels.get(label, True):
            return False
        return label in self.always or not self.quiet.contains(minute)

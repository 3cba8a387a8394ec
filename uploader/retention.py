"""Retention deadlines from the owner's service plan (pure functions: no clock, no I/O).

Every time here is UTC. A naive ``datetime`` is taken as UTC too (never as the machine's local zone): a
deadline must not move with the hub's TZ setting or a DST change, or a clip could outlive its plan by an hour.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Protocol, TypeVar

RETAIN_UNTIL_TAG = "retain-until"
PLAN_TAG = "plan"


class HasDeadline(Protocol):
    @property
    def retain_until(self) -> float: ...  # epoch seconds


D = TypeVar("D", bound=HasDeadline)


def as_utc(dt: datetime) -> datetime:
    """``dt`` in UTC; naive times are taken as UTC (``datetime.astimezone`` would take them as local)."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def parse_utc(text: str) -> datetime:
    """Parse an ISO-8601 time ('Z' or offset); naive times are taken as UTC."""
    return as_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))


def format_utc(dt: datetime) -> str:
    """Second-resolution UTC time, valid as an S3 tag value: 2026-11-29T17:00:00Z."""
    return as_utc(dt).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def retain_until(clip_end: datetime, plan_days: int) -> datetime:
    """A clip is kept for the plan's days counted from the end of the recording (exact 24 h days)."""
    if isinstance(plan_days, bool) or not isinstance(plan_days, int) or plan_days < 1:
        raise ValueError(f"plan days must be an integer >= 1, got {plan_days!r}")
    return as_utc(clip_end) + timedelta(days=plan_days)


def is_expired(deadline: datetime, now: datetime) -> bool:
    """At the deadline itself the clip is already due: 'kept for N days', not 'N days and a moment'."""
    return as_utc(now) >= as_utc(deadline)


def deadline_tags(tags: Mapping[str, str], wall_end: datetime | str, plan: str, days: int) -> dict[str, str]:
    """The object's tag set re-dated for ``plan``: new ``retain-until`` and ``plan``, every other tag kept
    (the store replaces tag sets whole, so a re-tag that dropped ``event`` or ``kind`` would lose them)."""
    end = parse_utc(wall_end) if isinstance(wall_end, str) else wall_end
    out = dict(tags)
    out[RETAIN_UNTIL_TAG] = format_utc(retain_until(end, days))
    out[PLAN_TAG] = plan
    return out


def tag_deadline(tags: Mapping[str, str] | None) -> datetime | None:
    """The deadline an object's tags carry, or None when the tag is missing or unparsable. None never means
    'expired': an object we cannot date is reported to a person, not deleted by guesswork."""
    text = (tags or {}).get(RETAIN_UNTIL_TAG)
    if not text:
        return None
    try:
        return parse_utc(text)
    except ValueError:
        return None


def expired(objects: Iterable[D], now: float | datetime) -> list[D]:
    """The objects whose deadline (epoch seconds) has passed at ``now``, in input order."""
    cutoff = as_utc(now).timestamp() if isinstance(now, datetime) else float(now)
    return [o for o in objects if o.retain_until <= cutoff]


def epoch(dt: datetime) -> float:
    return as_utc(dt).timestamp()


def from_epoch(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)

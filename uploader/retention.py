"""Retention deadlines from the owner's service plan (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def parse_utc(text: str) -> datetime:
    """Parse an ISO-8601 time ('Z' or offset); naive times are taken as UTC."""
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def format_utc(dt: datetime) -> str:
    """Second-resolution UTC time, valid as an S3 tag value: 2026-11-29T17:00:00Z."""
    return dt.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def retain_until(clip_end: datetime, plan_days: int) -> datetime:
    """A clip is kept for the plan's days counted from the end of the recording."""
    if plan_days < 1:
        raise ValueError(f"plan days must be >= 1, got {plan_days}")
    return clip_end.astimezone(UTC) + timedelta(days=plan_days)


def is_expired(deadline: datetime, now: datetime) -> bool:
    return now.astimezone(UTC) >= deadline.astimezone(UTC)

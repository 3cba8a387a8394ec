"""uploader.retention: pure deadline rules (no clock, no I/O), tested exhaustively."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import pytest

from uploader.retention import (
    PLAN_TAG,
    RETAIN_UNTIL_TAG,
    as_utc,
    deadline_tags,
    epoch,
    expired,
    format_utc,
    from_epoch,
    is_expired,
    parse_utc,
    retain_until,
    tag_deadline,
)

DAY = 86_400.0
END = datetime(2026, 3, 29, 0, 30, 0, tzinfo=UTC)  # Europe switches to summer time at 01:00 UTC this day


@dataclass(frozen=True)
class Obj:
    key: str
    retain_until: float


@pytest.fixture
def local_zone():
    """Run with the machine in a DST zone: deadlines must not notice."""
    saved = os.environ.get("TZ")

    def use(zone: str) -> None:
        os.environ["TZ"] = zone
        time.tzset()

    yield use
    if saved is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = saved
    time.tzset()


# -- retain_until ------------------------------------------------------------------------------------


def test_every_plan_length_adds_exact_days() -> None:
    for days in range(1, 3651):
        deadline = retain_until(END, days)
        assert deadline.tzinfo == UTC
        assert epoch(deadline) - epoch(END) == days * DAY, days


@pytest.mark.parametrize("days", [0, -1, -3650])
def test_plan_days_below_one_are_rejected(days: int) -> None:
    with pytest.raises(ValueError, match="plan days"):
        retain_until(END, days)


@pytest.mark.parametrize("days", [1.5, "30", None, True])
def test_plan_days_must_be_an_integer(days: object) -> None:
    with pytest.raises(ValueError, match="plan days"):
        retain_until(END, days)  # type: ignore[arg-type]


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "UTC"])
def test_dst_change_does_not_move_deadlines(local_zone, zone: str) -> None:
    local_zone(zone)
    # Across the EU (29 Mar, 25 Oct) and US (8 Mar, 1 Nov) switches: still exactly N x 24 h.
    for end in (END, datetime(2026, 10, 25, 0, 30, tzinfo=UTC), datetime(2026, 3, 8, 6, 59, tzinfo=UTC),
                datetime(2026, 11, 1, 5, 30, tzinfo=UTC)):  # fmt: skip
        for days in (1, 7, 30, 365):
            assert epoch(retain_until(end, days)) - epoch(end) == days * DAY


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/Los_Angeles", "Asia/Kolkata"])
def test_naive_times_are_utc_whatever_the_machine_zone(local_zone, zone: str) -> None:
    """Regression: astimezone() on a naive datetime reads it as *local* time, shifting deadlines by the
    machine's UTC offset."""
    local_zone(zone)
    naive = datetime(2026, 3, 29, 0, 30)
    assert retain_until(naive, 30) == retain_until(END, 30)
    assert format_utc(naive) == "2026-03-29T00:30:00Z"
    assert is_expired(datetime(2026, 4, 28, 0, 30), datetime(2026, 4, 28, 0, 30, tzinfo=UTC))
    assert as_utc(naive) == END


def test_offsets_are_converted_to_utc() -> None:
    berlin_summer = timezone(timedelta(hours=2))
    end = datetime(2026, 7, 1, 2, 0, tzinfo=berlin_summer)  # = 00:00 UTC
    assert format_utc(retain_until(end, 1)) == "2026-07-02T00:00:00Z"
    assert retain_until(end, 1).tzinfo == UTC


@pytest.mark.parametrize(("end", "days", "expected"), [
    ("2026-12-31T23:59:59Z", 1, "2027-01-01T23:59:59Z"),  # year boundary
    ("2028-02-28T12:00:00Z", 1, "2028-02-29T12:00:00Z"),  # leap day
    ("2027-02-28T12:00:00Z", 1, "2027-03-01T12:00:00Z"),  # no leap day
    ("2026-01-31T00:00:00Z", 30, "2026-03-02T00:00:00Z"),  # days, not calendar months
    ("2026-06-30T23:59:59.999999Z", 1, "2026-07-01T23:59:59Z"),  # sub-second end truncates in the tag
    ("2026-01-01T00:00:00Z", 3650, "2035-12-30T00:00:00Z"),  # 10 years = 3650 days, leap days included
])  # fmt: skip
def test_day_boundaries(end: str, days: int, expected: str) -> None:
    assert format_utc(retain_until(parse_utc(end), days)) == expected


# -- parse / format ------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["2026-12-06T17:05:17Z", "2026-12-06T17:05:17+00:00", "2026-12-06T18:05:17+01:00",
                                  "2026-12-06T17:05:17", "2026-12-06T12:05:17-05:00"])  # fmt: skip
def test_parse_and_format_round_trip(text: str) -> None:
    dt = parse_utc(text)
    assert dt.tzinfo == UTC and format_utc(dt) == "2026-12-06T17:05:17Z"


def test_epoch_round_trip() -> None:
    assert from_epoch(epoch(END)) == END and from_epoch(0).tzinfo == UTC


# -- is_expired / expired --------------------------------------------------------------------------------


def test_due_at_the_deadline_itself() -> None:
    deadline = retain_until(END, 7)
    assert not is_expired(deadline, deadline - timedelta(microseconds=1))
    assert is_expired(deadline, deadline)
    assert is_expired(deadline, deadline + timedelta(days=1))


def test_expired_filters_by_epoch_deadline_and_keeps_order() -> None:
    now = epoch(END)
    objs = [Obj("late", now + 1), Obj("due", now), Obj("old", now - DAY), Obj("later", now + DAY)]
    assert [o.key for o in expired(objs, now)] == ["due", "old"]
    assert expired(objs, END) == expired(objs, now)  # a datetime or epoch seconds
    assert expired(objs, END.replace(tzinfo=None)) == expired(objs, now)  # naive = UTC
    assert expired([], now) == []
    assert expired(iter(objs), now - 2 * DAY) == []


# -- tags ---------------------------------------------------------------------------------------------


def test_deadline_tags_redate_and_keep_other_tags() -> None:
    tags = {"retain-until": "2026-04-05T00:30:00Z", "plan": "basic", "event": "motion person",
            "camera-hash": "ab12", "kind": "clip"}  # fmt: skip
    new = deadline_tags(tags, "2026-03-29T00:30:00Z", "premium", 30)
    assert new == {**tags, "retain-until": "2026-04-28T00:30:00Z", "plan": "premium"}
    assert tags["plan"] == "basic"  # the input is not modified
    assert deadline_tags(tags, END, "premium", 30) == new  # datetime or ISO text


def test_deadline_tags_add_missing_tags() -> None:
    assert deadline_tags({}, END, "basic", 1) == {RETAIN_UNTIL_TAG: "2026-03-30T00:30:00Z", PLAN_TAG: "basic"}


def test_deadline_tags_reject_bad_days() -> None:
    with pytest.raises(ValueError):
        deadline_tags({}, END, "basic", 0)


@pytest.mark.parametrize(("tags", "expected"), [
    ({"retain-until": "2026-12-06T17:05:17Z"}, datetime(2026, 12, 6, 17, 5, 17, tzinfo=UTC)),
    ({"retain-until": "2026-12-06T17:05:17"}, datetime(2026, 12, 6, 17, 5, 17, tzinfo=UTC)),
    ({"retain-until": "not a date"}, None),
    ({"retain-until": ""}, None),
    ({"plan": "basic"}, None),
    ({}, None),
    (None, None),
])  # fmt: skip
def test_tag_deadline(tags: dict[str, str] | None, expected: datetime | None) -> None:
    assert tag_deadline(tags) == expected

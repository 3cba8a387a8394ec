"""Pure event-tracking logic: start/end/merge/cap/cooldown at known stream times."""

import pytest

from edge_media.events import EventTracker, TrackerSettings


def feed(tracker, fps, pattern):
    """pattern: list of (duration_s, detected). Returns all transitions with frame times."""
    out, t = [], 0.0
    for duration, detected in pattern:
        for _ in range(int(round(duration * fps))):
            out += tracker.update(round(t, 6), detected, 0.1 if detected else 0.0)
            t += 1 / fps
    return out


def tracker(**kw):
    base = dict(min_frames=2, post_roll_s=2.0, max_clip_s=60.0)
    base.update(kw)
    return EventTracker("cam", "motion", TrackerSettings(**base))


def test_starts_at_onset_after_k_frames_and_ends_after_post_roll():
    trs = feed(tracker(), 5, [(3, False), (2, True), (5, False)])
    assert [x.kind for x in trs] == ["start", "end"]
    start, end = trs[0].event, trs[1].event
    assert start.start == pytest.approx(3.0)
    assert end.last_seen == pytest.approx(4.8)
    assert end.end == pytest.approx(6.8)
    assert end.score == pytest.approx(0.1)


def test_single_frame_blips_do_not_start():
    pattern = [(0.2, True), (0.2, False)] * 20
    assert feed(tracker(min_frames=2), 5, pattern) == []


def test_min_frames_one_starts_immediately():
    trs = feed(tracker(min_frames=1), 5, [(1, False), (0.2, True), (3, False)])
    assert trs[0].kind == "start" and trs[0].event.start == pytest.approx(1.0)


def test_gap_shorter_than_post_roll_keeps_one_event():
    trs = feed(tracker(), 5, [(1, True), (1.4, False), (1, True), (5, False)])
    assert [x.kind for x in trs] == ["start", "end"]


def test_merge_gap_joins_activity_that_resumes_soon():
    pattern = [(1, True), (3, False), (1, True), (8, False)]
    assert [x.kind for x in feed(tracker(), 5, pattern)] == ["start", "end", "start", "end"]
    merged = feed(tracker(merge_gap_s=2.0), 5, pattern)
    assert [x.kind for x in merged] == ["start", "end"]
    assert merged[1].event.end == pytest.approx(merged[1].event.last_seen + 2.0)


def test_long_activity_is_cut_at_max_clip_and_continued():
    trs = feed(tracker(max_clip_s=10.0), 5, [(25, True), (5, False)])
    kinds = [x.kind for x in trs]
    assert kinds == ["start", "end", "start", "end", "start", "end"]
    ends = [x.event for x in trs if x.kind == "end"]
    assert ends[0].end - ends[0].start == pytest.approx(10.0)
    assert all(x.event.continued for x in trs[2:] if x.kind == "start")
    # no gap between the cut clips
    assert trs[2].event.start <= ends[0].end + 1e-9


def test_cooldown_suppresses_new_events_for_a_while():
    pattern = [(1, True), (3, False), (1, True), (3, False)]
    trs = feed(tracker(cooldown_s=5.0), 5, pattern)
    assert [x.kind for x in trs] == ["start", "end"]
    trs = feed(tracker(cooldown_s=1.0), 5, pattern)
    assert [x.kind for x in trs] == ["start", "end", "start", "end"]


def test_flush_ends_open_event():
    t = tracker()
    feed(t, 5, [(1, True)])
    trs = t.flush(1.0)
    assert len(trs) == 1 and trs[0].kind == "end" and trs[0].event.end == pytest.approx(1.0)
    assert t.flush(2.0) == []

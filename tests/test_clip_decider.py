"""The one clip-decision path (ClipDecider): pure, table-driven — inputs in, decisions out."""

from __future__ import annotations

import pytest

from edge_media.events import (
    ClipDecider,
    ClipSettings,
    CutClip,
    EndClip,
    Event,
    NoClip,
    StartClip,
    Transition,
    UpdateClip,
)

PRE, MAX = 5.0, 30.0


def ev(label: str, start: float, end: float | None = None, *, continued: bool = False) -> Event:
    return Event(label, 0.5, start=start, last_seen=start if end is None else end - 2.0, end=end,
                 continued=continued)


def S(label: str, start: float, **kw) -> Transition:  # reads like a table
    return Transition("start", ev(label, start, **kw))


def E(label: str, start: float, end: float, **kw) -> Transition:
    return Transition("end", ev(label, start, end, **kw))


def summary(decisions) -> list[tuple]:
    """Decisions as short tuples, so the tables below stay readable."""
    out = []
    for d in decisions:
        if isinstance(d, StartClip):
            out.append(("start", d.at, tuple(e.label for e in d.events)))
        elif isinstance(d, UpdateClip):
            out.append(("update", d.event.label, d.event.end))
        elif isinstance(d, CutClip):
            out.append(("cut", d.at, tuple(e.label for e in d.events)))
        elif isinstance(d, EndClip):
            out.append(("end", d.at, d.now))
        elif isinstance(d, NoClip):
            out.append(("none", d.event.label, d.reason))
    return out


SETTINGS = ClipSettings(pre_roll_s=PRE, max_clip_s=MAX)


def play(steps, settings: ClipSettings = SETTINGS) -> ClipDecider:
    """steps: (input, expected decisions). Inputs: a list of transitions (one batch), ("full",
    [transitions]) for a batch while the spool is full, ("tick", t), ("opened", t), ("close", t),
    ("restrict", bool)."""
    decider = ClipDecider(settings)
    for i, (step, expected) in enumerate(steps):
        if isinstance(step, list):
            got = decider.feed(step)
        elif step[0] == "full":
            got = decider.feed(step[1], can_record=False)
        elif step[0] == "tick":
            got = decider.tick(step[1])
        elif step[0] == "opened":
            decider.opened(step[1])
            got = []
        elif step[0] == "close":
            got = decider.close(step[1])
        elif step[0] == "restrict":
            decider.restricted = step[1]
            got = []
        else:
            raise AssertionError(step)
        assert summary(got) == expected, f"step {i}: {step}"
    return decider


CASES = {
    "one event: pre-roll before its onset, ends at its end": [
        ([S("motion", 10.0)], [("start", 5.0, ("motion",))]),
        ([E("motion", 10.0, 17.0)], [("update", "motion", 17.0), ("end", 17.0, False)]),
    ],
    "overlapping motion and audio share one clip, which ends with the last of them": [
        ([S("motion", 10.0)], [("start", 5.0, ("motion",))]),
        ([S("smoke_co_alarm", 11.0)], [("update", "smoke_co_alarm", None)]),
        ([E("motion", 10.0, 15.0)], [("update", "motion", 15.0)]),
        ([E("smoke_co_alarm", 11.0, 18.0)], [("update", "smoke_co_alarm", 18.0), ("end", 18.0, False)]),
    ],
    "events ending out of order: the clip ends at the latest end, not the last reported": [
        ([S("motion", 10.0), S("dog_bark", 10.5)], [("start", 5.0, ("motion",)), ("update", "dog_bark", None)]),
        ([E("dog_bark", 10.5, 20.0)], [("update", "dog_bark", 20.0)]),
        ([E("motion", 10.0, 16.0)], [("update", "motion", 16.0), ("end", 20.0, False)]),
    ],
    "merge: an event starting in the batch where the last one ends keeps the clip going": [
        ([S("motion", 10.0)], [("start", 5.0, ("motion",))]),
        ([E("motion", 10.0, 15.0), S("glass_break", 14.0)],
         [("update", "motion", 15.0), ("update", "glass_break", None)]),
        ([E("glass_break", 14.0, 19.0)], [("update", "glass_break", 19.0), ("end", 19.0, False)]),
    ],
    "an event split at its maximum length (end + continued start) stays in the clip": [
        ([S("motion", 10.0)], [("start", 5.0, ("motion",))]),
        ([E("motion", 10.0, 40.0), S("motion", 40.2, continued=True)],
         [("update", "motion", 40.0), ("update", "motion", None)]),
        ([E("motion", 40.2, 44.0, continued=True)], [("update", "motion", 44.0), ("end", 44.0, False)]),
    ],
    "after a clip ended (cooldown over), the next event opens a new clip with its own pre-roll": [
        ([S("motion", 10.0)], [("start", 5.0, ("motion",))]),
        ([E("motion", 10.0, 15.0)], [("update", "motion", 15.0), ("end", 15.0, False)]),
        ([S("motion", 30.0)], [("start", 25.0, ("motion",))]),
    ],
    "max_clip_s: cut at the clip's start + max_clip_s, then every max_clip_s, with the open events": [
        ([S("motion", 10.0)], [("start", 5.0, ("motion",))]),
        (("tick", 34.9), []),
        (("tick", 35.0), [("cut", 35.0, ("motion",))]),
        (("tick", 50.0), []),
        ([S("dog_bark", 52.0)], [("update", "dog_bark", None)]),
        (("tick", 65.0), [("cut", 65.0, ("motion", "dog_bark"))]),
        ([E("motion", 10.0, 70.0), E("dog_bark", 52.0, 60.0)],
         [("update", "motion", 70.0), ("update", "dog_bark", 60.0), ("end", 70.0, False)]),
        (("tick", 95.0), []),  # the clip is over: nothing left to cut
    ],
    "max_clip_s is measured from the keyframe the recorder really opened at": [
        ([S("motion", 10.0)], [("start", 5.0, ("motion",))]),
        (("opened", 4.2), []),
        (("tick", 34.2), [("cut", 34.2, ("motion",))]),
        (("tick", 64.2), [("cut", 64.2, ("motion",))]),
    ],
    "spool full at the start: no clip, but the event is tracked and joins the next clip": [
        (("full", [S("motion", 10.0)]), [("none", "motion", "spool_full")]),
        ([S("dog_bark", 12.0)], [("start", 7.0, ("motion", "dog_bark"))]),
        ([E("motion", 10.0, 16.0)], [("update", "motion", 16.0)]),
        ([E("dog_bark", 12.0, 18.0)], [("update", "dog_bark", 18.0), ("end", 18.0, False)]),
    ],
    "spool full while a clip is open: the event joins it (the clip is not cut short)": [
        ([S("motion", 10.0)], [("start", 5.0, ("motion",))]),
        (("full", [S("scream", 12.0)]), [("update", "scream", None)]),
        ([E("motion", 10.0, 15.0)], [("update", "motion", 15.0)]),
    ],
    "refused event ending with no clip open: nothing to do": [
        (("full", [S("motion", 10.0)]), [("none", "motion", "spool_full")]),
        ([E("motion", 10.0, 15.0)], []),
        ([S("motion", 20.0)], [("start", 15.0, ("motion",))]),  # only the new event
    ],
    "restriction mid-clip closes it at once; nothing opens until it is lifted": [
        ([S("motion", 10.0)], [("start", 5.0, ("motion",))]),
        (("close", 12.0), [("end", 12.0, True)]),
        (("restrict", True), []),
        ([S("dog_bark", 13.0)], [("none", "dog_bark", "restricted")]),
        ([E("dog_bark", 13.0, 16.0)], []),
        (("restrict", False), []),
        ([S("motion", 20.0)], [("start", 15.0, ("motion",))]),
    ],
    "shutdown with open events closes the clip now and forgets them": [
        ([S("motion", 10.0), S("siren", 11.0)], [("start", 5.0, ("motion",)), ("update", "siren", None)]),
        (("close", 13.0), [("end", 13.0, True)]),
        (("tick", 100.0), []),
        ([E("motion", 10.0, 15.0)], []),  # a late end of a forgotten event opens nothing
    ],
    "an audio event whose onset is before the clip's start joins it as it is": [
        ([S("motion", 10.0)], [("start", 5.0, ("motion",))]),
        ([S("smoke_co_alarm", 3.0)], [("update", "smoke_co_alarm", None)]),
        ([E("motion", 10.0, 14.0), E("smoke_co_alarm", 3.0, 12.0)],
         [("update", "motion", 14.0), ("update", "smoke_co_alarm", 12.0), ("end", 14.0, False)]),
    ],
    "an audio event confirmed late opens its clip pre-roll before its onset": [
        ([S("baby_cry", 2.0)], [("start", -3.0, ("baby_cry",))]),
    ],
    "end of an event never started (started before a restart) ends an open clip only by its own time": [
        ([S("motion", 10.0)], [("start", 5.0, ("motion",))]),
        ([E("dog_bark", 1.0, 9.0)], [("update", "dog_bark", 9.0)]),
        ([E("motion", 10.0, 14.0)], [("update", "motion", 14.0), ("end", 14.0, False)]),
    ],
    "the clip's end is never before the clip's own events' ends after a cut": [
        ([S("motion", 10.0)], [("start", 5.0, ("motion",))]),
        (("tick", 36.0), [("cut", 35.0, ("motion",))]),
        ([E("motion", 10.0, 38.0)], [("update", "motion", 38.0), ("end", 38.0, False)]),
    ],
}


@pytest.mark.parametrize("steps", CASES.values(), ids=CASES.keys())
def test_clip_decisions(steps):
    play(steps)


def test_close_with_nothing_open_still_tells_the_recorder_to_close():
    """A recorder may still hold a clip waiting for its end time: shutdown must close it."""
    assert summary(ClipDecider().close(3.0)) == [("end", 3.0, True)]


def test_state_is_visible_for_reports():
    d = ClipDecider(ClipSettings(pre_roll_s=PRE, max_clip_s=MAX))
    d.feed([S("motion", 10.0)])
    assert d.recording and [e.label for e in d.open_events] == ["motion"]
    d.feed([E("motion", 10.0, 15.0)])
    assert not d.recording and d.open_events == ()


@pytest.mark.parametrize("kw", [{"pre_roll_s": -1.0}, {"max_clip_s": 0.0}])
def test_impossible_settings_are_rejected(kw):
    with pytest.raises(ValueError, match="pre_roll_s|max_clip_s"):
        ClipSettings(**kw)


def test_the_quota_is_asked_only_when_a_clip_would_open():
    """Bug: the camera pipeline asked the spool quota (which audits a refusal) for every batch with a
    start, also when the event only joined the open clip or a restriction kept it out."""
    asked: list[bool] = []

    def quota() -> bool:
        asked.append(True)
        return True

    decider = ClipDecider(SETTINGS)
    assert summary(decider.feed([S("motion", 10.0), S("dog_bark", 10.5)], can_record=quota)) == [
        ("start", 5.0, ("motion",)), ("update", "dog_bark", None)]
    assert len(asked) == 1, "asked once for the batch that opened the clip"
    decider.feed([S("scream", 11.0)], can_record=quota)
    assert len(asked) == 1, "an event joining the open clip is no new clip"
    decider.close(12.0)
    decider.restricted = True
    assert summary(decider.feed([S("motion", 20.0)], can_record=quota)) == [("none", "motion", "restricted")]
    assert len(asked) == 1, "a restriction keeps the event out before the quota is asked"

"""Misdetection flags: the pure check, the privacy package's table, ``feedback flag|flags`` on real recorded clips,
and the owner's rights over their flags (export carries them, erasure removes them)."""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass

import pytest

from edge_media.cli import main
from edge_media.errors import UsageError, exit_code
from edge_media.privacy.flags import ClipUnreadable, Flag, FlagRequest, Flags, FlagService, decide_flag
from recorder.events import Event

from clip_hub import copy_hub, make_media, record_hub, record_microphone

LABELS = ("smoke_co_alarm", "glass_break", "dog_bark", "baby_cry", "scream", "siren")


@dataclass(frozen=True)
class Clip:
    """A clip as the flag check sees it (what the hub's clip catalog provides)."""

    clip_id: str = "20261130T100000Z-0a1b2c3d"
    camera_hash: str = "ab12cd34ef56ab78"
    owner: str = "alice"
    events: tuple[Event, ...] | None = (Event("smoke_co_alarm", 0.91, 104.0, 109.5, 110.0),
                                        Event("motion", 0.2, 101.0, 103.0, 103.0))
    has_audio: bool | None = True
    has_video: bool | None = True
    stream_start: float = 100.0


def decide(request: FlagRequest, clip: Clip | None = None) -> Flag:
    return decide_flag(clip or Clip(), request, LABELS, flag_id="f1", created=1.0)


# -- the pure check ---------------------------------------------------------------------------------------------

def test_wrong_audio_event_keeps_its_score_and_span_in_clip_seconds():
    flag = decide(FlagRequest("wrong", "smoke_co_alarm", truth="nothing", actor="cli:alice"))
    assert (flag.score, flag.event_start_s, flag.event_end_s) == (0.91, 4.0, 10.0), "span is seconds into the clip"
    assert flag.partner_eligible and flag.truth == "nothing" and flag.actor == "cli:alice"
    assert (flag.clip_id, flag.owner, flag.camera_hash) == ("20261130T100000Z-0a1b2c3d", "alice", "ab12cd34ef56ab78")


def test_two_events_of_the_flagged_label_give_one_span_over_both_and_the_peak_score():
    events = (Event("dog_bark", 0.7, 102.0, 103.0, 103.5), Event("dog_bark", 0.95, 110.0, 111.0, None))
    flag = decide(FlagRequest("wrong", "dog_bark"), Clip(events=events))
    assert (flag.score, flag.event_start_s, flag.event_end_s) == (0.95, 2.0, 11.0), "an open event ends at last_seen"


def test_missed_audio_event_has_no_score_nor_span_and_may_go_to_the_partner():
    flag = decide(FlagRequest("missed", "glass_break"))
    assert flag.kind == "missed" and flag.score is None and flag.event_start_s is None and flag.partner_eligible


def test_motion_flags_are_kept_but_never_partner_eligible():
    assert not decide(FlagRequest("wrong", "motion", truth="nothing")).partner_eligible
    assert not decide(FlagRequest("missed", "motion"), Clip(events=())).partner_eligible


@pytest.mark.parametrize(("request_", "clip", "message"), [
    (FlagRequest("wrong", "cat"), Clip(), "--wrong: 'cat' is not a label of the audio model"),
    (FlagRequest("missed", "speech"), Clip(), "--missed: 'speech' is not a label"),
    (FlagRequest("wrong", "dog_bark"), Clip(), "has no dog_bark event (its events: motion, smoke_co_alarm)"),
    (FlagRequest("missed", "smoke_co_alarm"), Clip(), "already has a smoke_co_alarm event; use --wrong"),
    (FlagRequest("missed", "motion"), Clip(), "already has a motion event"),
    (FlagRequest("missed", "siren"), Clip(has_audio=False), "has no audio: an audio event (siren)"),
    (FlagRequest("wrong", "motion"), Clip(has_video=False), "has no video: motion cannot be flagged"),
    (FlagRequest("missed", "siren", truth="nothing"), Clip(), "--truth goes with --wrong"),
    (FlagRequest("wrong", "smoke_co_alarm", truth="smoke_co_alarm"), Clip(), "is the label being flagged"),
    (FlagRequest("wrong", "smoke_co_alarm", truth="cat"), Clip(), "--truth: 'cat' is not a label"),
    (FlagRequest("wrong", "smoke_co_alarm", truth="motion"), Clip(), "another audio label or 'nothing'"),
    (FlagRequest("wrong", "motion", truth="siren"), Clip(), "another motion label or 'nothing'"),
])
def test_a_flag_that_makes_no_sense_for_the_clip_is_refused_with_the_reason(request_, clip, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        decide(request_, clip)


def test_a_clip_whose_events_cannot_be_read_is_a_run_time_failure_not_bad_input():
    with pytest.raises(ClipUnreadable, match="events cannot be read") as caught:
        decide(FlagRequest("missed", "siren"), Clip(events=None, has_audio=None, has_video=None))
    assert exit_code(caught.value) == 1


def test_a_wrong_label_may_be_corrected_to_another_audio_label():
    assert decide(FlagRequest("wrong", "smoke_co_alarm", truth="siren")).truth == "siren"


# -- the table --------------------------------------------------------------------------------------------------

def test_flags_are_stored_listed_per_owner_refused_twice_and_deleted_per_owner(db):
    ids = iter(["id-1", "id-2", "id-3"])
    service = FlagService(db, LABELS, clock=iter([10.0, 11.0, 12.0]).__next__, new_id=lambda: next(ids))
    first = service.flag(Clip(), FlagRequest("wrong", "smoke_co_alarm", truth="nothing"))
    service.flag(Clip(owner="bob", clip_id="other"), FlagRequest("missed", "dog_bark"))
    with pytest.raises(UsageError, match="already flagged \\(flag id-1\\)"):
        service.flag(Clip(), FlagRequest("wrong", "smoke_co_alarm", truth="siren"))
    flags = Flags(db)
    assert flags.list_flags(owner="alice") == [first], "read back exactly as stored"
    assert [f.flag_id for f in flags.list_flags()] == ["id-1", "id-2"], "the refused one stored nothing"
    with db.tx() as conn:
        assert Flags.delete_for_owner(conn, "alice") == 1
    assert [f.owner for f in flags.list_flags()] == ["bob"]


# -- the commands on real recorded clips ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def media(tmp_path_factory):
    return make_media(tmp_path_factory.mktemp("flag-media"))


@pytest.fixture(scope="module")
def recorded(tmp_path_factory, media):
    return record_hub(tmp_path_factory.mktemp("flag-hub"), media)


@pytest.fixture
def hub(recorded, media, tmp_path):
    return copy_hub(recorded, tmp_path, media)


def stored_flags(hub) -> list[Flag]:
    db = hub.db()
    try:
        return Flags(db).list_flags()
    finally:
        db.close()


def test_flag_a_stored_audio_clip_and_a_motion_clip_then_list_the_flags(hub, capsys):
    kitchen, porch = hub.clip_of("kitchen", capsys), hub.clip_of("porch", capsys)
    cfg = str(hub.config)
    assert main(["feedback", "flag", "--config", cfg, "--clip", kitchen, "--wrong", "smoke_co_alarm",
                 "--truth", "nothing"]) == 0
    assert "nothing queued for the model partner (no misdetection-feedback consent)" in capsys.readouterr().out
    assert main(["feedback", "flag", "--config", cfg, "--clip", kitchen, "--missed", "dog_bark"]) == 0
    assert main(["feedback", "flag", "--config", cfg, "--clip", porch, "--wrong", "motion"]) == 0
    assert "motion flags never leave it" in capsys.readouterr().out
    alarm, bark, motion = stored_flags(hub)
    assert (alarm.owner, alarm.kind, alarm.label, alarm.truth) == ("alice", "wrong", "smoke_co_alarm", "nothing")
    assert alarm.score is not None and alarm.score > 0.5, "the recorded event's score"
    assert alarm.event_start_s is not None and alarm.event_end_s is not None
    assert 2.0 <= alarm.event_start_s <= 5.0 < alarm.event_end_s, "the alarm starts ~3 s into the clip (1 s pre-roll)"
    assert (bark.kind, bark.score, bark.partner_eligible) == ("missed", None, True)
    assert (motion.owner, motion.label, motion.partner_eligible) == ("bob", "motion", False)

    assert main(["feedback", "flags", "--config", cfg, "--owner", "bob", "--json"]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert listed["camera"] == "porch" and listed["flag_id"] == motion.flag_id and listed["created"].endswith("Z")
    assert main(["feedback", "flags", "--config", cfg]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["FLAG", "CLIP", "CAMERA", "OWNER", "KIND", "LABEL", "TRUTH", "SCORE", "CREATED",
                                "PARTNER"]
    assert len(lines) == 4 and "local only" in lines[3] and "eligible" in lines[1]


def test_a_motion_flag_on_a_clip_with_audio_is_accepted(hub, capsys):
    kitchen = hub.clip_of("kitchen", capsys)
    assert main(["feedback", "flag", "--config", str(hub.config), "--clip", kitchen, "--missed", "motion"]) == 0
    [flag] = stored_flags(hub)
    assert flag.label == "motion" and not flag.partner_eligible


def bad_flag(hub, capsys, *args: str) -> str:
    """Run a flag command that must be refused: exit 2, one line on stderr, nothing stored."""
    code = main(["feedback", "flag", "--config", str(hub.config), *args])
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert stored_flags(hub) == []
    return err


def test_bad_flags_are_one_line_exit_2_and_store_nothing(hub, capsys):
    kitchen, porch = hub.clip_of("kitchen", capsys), hub.clip_of("porch", capsys)
    assert "no clip 'nope' on this hub" in bad_flag(hub, capsys, "--clip", "nope", "--missed", "dog_bark")
    assert f"clip {porch} has no audio" in bad_flag(hub, capsys, "--clip", porch, "--missed", "dog_bark")
    assert "'cat' is not a label" in bad_flag(hub, capsys, "--clip", kitchen, "--wrong", "cat")
    assert "has no dog_bark event" in bad_flag(hub, capsys, "--clip", kitchen, "--wrong", "dog_bark")
    assert "already has a smoke_co_alarm" in bad_flag(hub, capsys, "--clip", kitchen, "--missed", "smoke_co_alarm")
    assert "--truth goes with --wrong" in bad_flag(hub, capsys, "--clip", kitchen, "--missed", "siren",
                                                   "--truth", "siren")


def test_a_clip_whose_owner_left_the_config_cannot_be_flagged(recorded, media, tmp_path, capsys):
    hub = copy_hub(recorded, tmp_path, media, owners={"kitchen": "alice", "porch": "carol"})
    porch = hub.clip_of("porch", capsys)
    assert "belongs to owner 'bob', who is not in this config" in bad_flag(hub, capsys, "--clip", porch,
                                                                           "--wrong", "motion")


def test_an_audio_only_microphone_clip_takes_audio_flags_but_not_motion(tmp_path, capsys):
    hub = record_microphone(tmp_path)
    assert main(["clips", "list", "--config", str(hub.config), "--json"]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert (listed["camera"], listed["audio"], listed["video"]) == ("hall", True, False)
    clip = listed["clip_id"]
    assert "has no video: motion cannot be flagged" in bad_flag(hub, capsys, "--clip", clip, "--missed", "motion")
    assert main(["feedback", "flag", "--config", str(hub.config), "--clip", clip, "--wrong", "smoke_co_alarm",
                 "--truth", "siren"]) == 0
    [flag] = stored_flags(hub)
    assert (flag.owner, flag.label, flag.truth, flag.partner_eligible) == ("alice", "smoke_co_alarm", "siren", True)


def test_export_carries_the_owners_flags_and_erasure_removes_them(hub, tmp_path, capsys):
    kitchen, porch = hub.clip_of("kitchen", capsys), hub.clip_of("porch", capsys)
    cfg = str(hub.config)
    assert main(["feedback", "flag", "--config", cfg, "--clip", kitchen, "--wrong", "smoke_co_alarm"]) == 0
    assert main(["feedback", "flag", "--config", cfg, "--clip", porch, "--wrong", "motion"]) == 0
    out = tmp_path / "alice.zip"
    assert main(["storage", "export", "--config", cfg, "--owner", "alice", "--out", str(out)]) == 0
    exported = json.loads(zipfile.ZipFile(out).read("flags.json"))
    assert [(f["clip_id"], f["label"], f["owner"]) for f in exported] == [(kitchen, "smoke_co_alarm", "alice")]
    capsys.readouterr()

    assert main(["storage", "erase", "--config", cfg, "--owner", "alice", "--yes"]) == 0
    assert "1 misdetection flags" in capsys.readouterr().out
    assert [f.owner for f in stored_flags(hub)] == ["bob"], "only the erased owner's flags go"
    assert main(["storage", "export", "--config", cfg, "--owner", "alice", "--out", str(out)]) == 0
    assert json.loads(zipfile.ZipFile(out).read("flags.json")) == []

"""AudioEventLogic (pure): thresholds, minimum duration, hysteresis, end after silence, splitting;
and AudioDetector's silence gate in front of the model."""

from __future__ import annotations

import numpy as np
import pytest

import recorder
from edge_media.audio.events import AudioDetector, AudioEventLogic
from edge_media.audio.windows import AudioWindower
from edge_media.events.tracker import Event, Transition

LABELS = ["background", "smoke_co_alarm", "dog_bark", "speech"]
THRESHOLDS = {"smoke_co_alarm": 0.5, "dog_bark": 0.6}
HOP = 0.5


def logic(**kw) -> AudioEventLogic:
    opts = {"min_duration_s": 1.0, "hysteresis": 0.1, "end_after_s": 2.0, "hop_s": HOP, "model_version": "9.9"}
    opts.update(kw)
    return AudioEventLogic("kitchen", LABELS, THRESHOLDS, **opts)


def alarm(score: float, dog: float = 0.0) -> list[float]:
    return [0.9, score, dog, 0.0]


def run(lg: AudioEventLogic, scores: list, t0: float = 0.0) -> list[tuple[float, Transition]]:
    out = []
    for k, s in enumerate(scores):
        t = t0 + k * HOP
        out += [(t, tr) for tr in lg.update(t, s)]
    return out


def kinds(transitions) -> list[tuple[float, str, str]]:
    return [(t, tr.kind, tr.event.label) for t, tr in transitions]


def test_starts_once_heard_for_min_duration_with_onset_at_first_window():
    tr = run(logic(), [alarm(0.1), alarm(0.7), alarm(0.8), alarm(0.9)])
    assert kinds(tr) == [(1.0, "start", "smoke_co_alarm")]  # two windows x 0.5 s hop = 1.0 s
    ev = tr[0][1].event
    assert (ev.start, ev.last_seen, ev.score, ev.end) == (0.5, 1.0, 0.8, None)


def test_event_type_is_the_one_event_type_and_carries_no_source_name():
    """One event value type from detector to clip sidecar (there were three); it names no camera
    or microphone, since the sidecar leaves the hub."""
    ev = run(logic(min_duration_s=0.0), [alarm(0.7)])[0][1].event
    assert type(ev) is Event and Event is recorder.Event
    assert (ev.label, ev.continued) == ("smoke_co_alarm", False)
    assert "kitchen" not in repr(ev)


def test_blip_shorter_than_min_duration_is_ignored():
    assert run(logic(), [alarm(0.9), alarm(0.1), alarm(0.9), alarm(0.0)]) == []


def test_single_window_suffices_when_min_duration_is_at_most_one_hop():
    assert kinds(run(logic(min_duration_s=0.5), [alarm(0.55)])) == [(0.0, "start", "smoke_co_alarm")]


def test_per_label_min_duration():
    lg = logic(min_duration_s={"smoke_co_alarm": 0.0, "dog_bark": 1.5})
    tr = run(lg, [alarm(0.9, 0.9), alarm(0.0, 0.9), alarm(0.0, 0.9)])
    assert kinds(tr) == [(0.0, "start", "smoke_co_alarm"), (1.0, "start", "dog_bark")]
    assert tr[1][1].event.start == 0.0


def test_run_needs_the_full_threshold_to_begin_but_hysteresis_to_continue():
    # 0.45 is within the hysteresis band: it cannot begin a run, but it continues one.
    assert run(logic(), [alarm(0.45), alarm(0.45), alarm(0.45)]) == []
    tr = run(logic(), [alarm(0.45), alarm(0.55), alarm(0.45)])
    assert kinds(tr) == [(1.0, "start", "smoke_co_alarm")]
    assert tr[0][1].event.start == 0.5
    assert run(logic(), [alarm(0.55), alarm(0.39), alarm(0.55)]) == []  # below the band breaks it


def test_hysteresis_keeps_an_active_event_alive():
    lg = logic(min_duration_s=0.0)
    tr = run(lg, [alarm(0.8)] + [alarm(0.41)] * 10)  # 5 s just inside the band
    assert kinds(tr) == [(0.0, "start", "smoke_co_alarm")]
    assert lg.active["smoke_co_alarm"].last_seen == 5.0
    assert lg.active["smoke_co_alarm"].score == 0.8


def test_ends_after_end_after_s_not_heard():
    tr = run(logic(min_duration_s=0.0), [alarm(0.8), alarm(0.9), alarm(0.3), alarm(0.3), alarm(0.3),
                                         alarm(0.3), alarm(0.3)])
    assert kinds(tr) == [(0.0, "start", "smoke_co_alarm"), (2.5, "end", "smoke_co_alarm")]
    ended = tr[1][1].event
    assert (ended.start, ended.last_seen, ended.end, ended.score) == (0.0, 0.5, 2.5, 0.9)


def test_sound_returning_before_end_after_s_extends_the_same_event():
    seq = [alarm(0.8), alarm(0.0), alarm(0.0), alarm(0.0), alarm(0.8), alarm(0.0)]  # T3-like gaps
    tr = run(logic(min_duration_s=0.0), seq)
    assert kinds(tr) == [(0.0, "start", "smoke_co_alarm")]


def test_silent_windows_count_as_not_heard():
    lg = logic(min_duration_s=0.0)
    tr = run(lg, [alarm(0.9), None, None, None, None, None])
    assert kinds(tr) == [(0.0, "start", "smoke_co_alarm"), (2.0, "end", "smoke_co_alarm")]
    assert run(logic(), [alarm(0.9), None, alarm(0.9)]) == []  # silence breaks a pending run


def test_background_and_speech_are_never_events():
    lg = AudioEventLogic("mic", LABELS, THRESHOLDS, min_duration_s=0.0, hop_s=HOP)
    assert lg.update(0.0, [1.0, 0.0, 0.0, 1.0]) == []
    assert lg.active == {}


def test_missing_threshold_is_an_error_and_bad_scores_are_rejected():
    with pytest.raises(ValueError, match="dog_bark"):
        AudioEventLogic("mic", LABELS, {"smoke_co_alarm": 0.5})
    with pytest.raises(ValueError):
        logic().update(0.0, [0.1, 0.2])
    with pytest.raises(ValueError):
        logic(end_after_s=0.0)


def test_labels_are_independent():
    tr = run(logic(min_duration_s=0.0), [alarm(0.9, 0.0), alarm(0.9, 0.9), alarm(0.0, 0.9)] + [alarm(0, 0)] * 6)
    assert kinds(tr) == [(0.0, "start", "smoke_co_alarm"), (0.5, "start", "dog_bark"),
                         (2.5, "end", "smoke_co_alarm"), (3.0, "end", "dog_bark")]


def test_gap_in_window_times_breaks_a_pending_run():
    lg = logic()
    assert lg.update(0.0, alarm(0.9)) == []
    assert lg.update(30.0, alarm(0.9)) == []  # discontinuity: not 1 s of sound
    tr = lg.update(30.5, alarm(0.9))
    assert tr[0].event.start == 30.0


def test_gap_while_active_ends_at_last_heard_plus_end_after():
    lg = logic(min_duration_s=0.0)
    lg.update(0.0, alarm(0.9))
    tr = lg.update(60.0, alarm(0.1))
    assert [(x.kind, x.event.end) for x in tr] == [("end", 2.0)]


def test_gap_while_active_but_still_sounding_keeps_the_event():
    lg = logic(min_duration_s=0.0)
    lg.update(0.0, alarm(0.9))
    assert lg.update(60.0, alarm(0.9)) == []  # heard now: it goes on (the recorder sees the gap)
    assert lg.active["smoke_co_alarm"].last_seen == 60.0


def test_restarts_after_an_event_ended():
    seq = [alarm(0.9)] + [alarm(0.0)] * 4 + [alarm(0.9)]
    tr = run(logic(min_duration_s=0.0), seq)
    assert kinds(tr) == [(0.0, "start", "smoke_co_alarm"), (2.0, "end", "smoke_co_alarm"),
                         (2.5, "start", "smoke_co_alarm")]


def test_flush_ends_open_events_and_forgets_runs():
    lg = logic(min_duration_s={"smoke_co_alarm": 0.0, "dog_bark": 1.0})
    lg.update(0.0, alarm(0.9, 0.9))
    tr = lg.flush(1.0)
    assert [(x.kind, x.event.label, x.event.end) for x in tr] == [("end", "smoke_co_alarm", 1.0)]
    assert lg.update(0.5, alarm(0.0, 0.9)) == []  # the dog's pending run was forgotten
    assert lg.flush(100.0) == []


def test_flush_end_is_capped_at_last_heard_plus_end_after():
    lg = logic(min_duration_s=0.0)
    lg.update(0.0, alarm(0.9))
    assert lg.flush(50.0)[0].event.end == 2.0


def test_long_events_are_split_into_continued_events():
    lg = logic(min_duration_s=0.0, max_event_s=10.0)
    tr = run(lg, [alarm(0.9)] * 45)
    assert kinds(tr) == [(0.0, "start", "smoke_co_alarm"), (10.0, "end", "smoke_co_alarm"),
                         (10.0, "start", "smoke_co_alarm"), (20.0, "end", "smoke_co_alarm"),
                         (20.0, "start", "smoke_co_alarm")]
    assert tr[1][1].event.end == 10.0 and tr[2][1].event.continued
    assert run(logic(min_duration_s=0.0, max_event_s=None), [alarm(0.9)] * 25)[1:] == []


# -- AudioDetector ---------------------------------------------------------------------------------

class CountingModel:
    """Stands in for AudioEventModel: records every batch the detector sends."""

    labels = tuple(LABELS)

    def __init__(self) -> None:
        self.batches: list[np.ndarray] = []

    def predict(self, windows: np.ndarray) -> np.ndarray:
        self.batches.append(windows.copy())
        scores = np.zeros((len(windows), len(LABELS)), np.float32)
        scores[:, 1] = np.abs(windows).max(axis=1)  # "alarm" score = peak level
        return scores


def test_detector_skips_the_model_on_silent_windows_and_batches_the_rest():
    model = CountingModel()
    det = AudioDetector(model, logic(min_duration_s=0.0, hop_s=7800 / 16000), AudioWindower())
    quiet = np.zeros(16000 * 3, np.float32)
    loud = np.full(16000 * 3, 0.8, np.float32)
    results = det.push(quiet, 0.0) + det.push(loud, 3.0)
    assert model.batches and all(np.abs(b).max(axis=1).min() > 0 for b in model.batches)
    assert len(model.batches) == 1  # the loud block's windows went in one call
    silent = [r for r in results if r.silent]
    assert silent and all(r.scores is None for r in silent)
    starts = [t for r in results for t in r.transitions if t.kind == "start"]
    assert len(starts) == 1 and starts[0].event.start == pytest.approx(2.4375)
    assert det.flush(10.0)[0].kind == "end"


def test_detector_requires_matching_labels():
    with pytest.raises(ValueError):
        AudioDetector(CountingModel(), AudioEventLogic("x", ["dog_bark"], THRESHOLDS), AudioWindower())


def test_detector_end_hears_a_sound_in_a_file_shorter_than_one_window(tmp_path, monkeypatch):
    # 0.9 s of a 3.1 kHz tone: no full window while pushing; end() windows it over silence, two
    # windows hold it, and the two-window minimum duration starts (and the flush ends) the event.
    from edge_media.audio.model import AudioEventModel
    from edge_media.model_files import MODELS_DIR_ENV

    from audio_fixtures import ALARM_HZ, write_models_dir

    monkeypatch.setenv(MODELS_DIR_ENV, str(write_models_dir(tmp_path / "models")))
    model = AudioEventModel.from_manifest()
    logic = AudioEventLogic("mic", model.labels, model.info.thresholds, min_duration_s=0.5, hop_s=7800 / 16000)
    detector = AudioDetector(model, logic, AudioWindower())
    tone = (0.3 * np.sin(2 * np.pi * ALARM_HZ * np.arange(14400) / 16000)).astype(np.float32)
    assert detector.push(tone, 0.0) == []
    tail, ends = detector.end(0.9)
    assert len(tail) == 2 and all(r.scores is not None for r in tail)
    assert tail[0].transitions == ()  # one window is not yet the 0.5 s minimum
    starts = [t.event for t in tail[1].transitions if t.kind == "start"]
    assert [e.label for e in starts] == ["smoke_co_alarm"] and starts[0].start == 0.0
    assert [t.event.label for t in ends] == ["smoke_co_alarm"] and ends[0].event.end <= 0.9

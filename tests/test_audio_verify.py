"""The second-stage verifiers on real generated audio, and how the event logic uses them.

The verifiers were tuned on seeds 1000-1099 with piezo pitches 2.85-3.55 kHz; these fixtures use
other seeds (5000+) and pitches at and beyond the edges of that range (2.8 / 3.6 kHz, 480 / 560 Hz), so a
pass here is not a replay of the tuning set. (Two rejection tests failed on their first seeds, 5200+
and 5400+, and those failures were studied to fix the checks; they now draw fresh seeds, 6200+ and
6400+, never looked at.) Each check runs as the runtime runs it: over the last
``seconds`` of audio, every half second as the sound goes on.
"""

from __future__ import annotations

import numpy as np
import pytest
from audio_patterns import (
    SR,
    alarm,
    birdsong,
    clip,
    microwave_beeps,
    mix,
    music_high_note,
    phone_ring,
    pink,
    reverb,
    siren,
)

from edge_media.audio.events import AudioEventLogic
from edge_media.audio.setup import check_label_keys, verifiers
from edge_media.audio.verify import (
    DEFAULT_VERIFIERS,
    AlarmPatternCheck,
    AudioHistory,
    LabelVerifier,
    SirenSweepCheck,
    spectrum,
)
from edge_media.config import AudioConfig
from edge_media.config.loader import ConfigError

N = 12 * SR
ALARM, SIREN = AlarmPatternCheck(), SirenSweepCheck()


def heard(check, x: np.ndarray) -> str | None:
    """The verdict's kind the first time the check confirms, looking back ``seconds`` every 0.5 s."""
    for end in range(4 * SR, len(x) + 1, SR // 2):
        v = check.check(x[max(0, end - int(check.seconds * SR)):end], SR)
        if v.ok:
            return v.kind
    return None


def home_bed(rng: np.random.Generator) -> np.ndarray:
    return pink(N, rng) + 0.5 * birdsong(N, rng)


@pytest.mark.parametrize("kind", ["t3", "t4"])
@pytest.mark.parametrize("f0,square", [(2800.0, False), (3600.0, False), (3200.0, False), (480.0, True), (560.0, True)])
def test_alarm_patterns_are_confirmed_at_many_pitches_and_snrs(kind, f0, square):
    found = []
    for seed in range(5000, 5010):
        rng = np.random.default_rng(seed)
        x = alarm(N, rng, kind=kind, f0=f0, onset_s=rng.uniform(0.5, 2.0), scale=rng.uniform(0.93, 1.07),
                  square=square)
        found.append(heard(ALARM, mix(x, home_bed(rng), rng.uniform(0, 10))))
    assert found.count(kind.upper()) >= 9, found


@pytest.mark.parametrize("kind", ["t3", "t4"])
def test_alarm_patterns_survive_a_room_and_a_clipping_speaker(kind):
    found = []
    for seed in range(5100, 5120):
        rng = np.random.default_rng(seed)
        x = alarm(N, rng, kind=kind, f0=rng.uniform(2800, 3600), onset_s=rng.uniform(0.5, 2.0))
        x = clip(reverb(x, rng, rng.uniform(0.2, 0.5), rng.uniform(0, 6)), rng.uniform(2, 8))
        found.append(heard(ALARM, mix(x, pink(N, rng), rng.uniform(3, 10))))
    # a regression guard, not a target: measured 19/20 (T3) and 15/20 (T4) when written; the card
    # reports the held-out rates
    assert found.count(kind.upper()) >= 14, found


def steady_pad(n: int, rng: np.random.Generator, pitches: list[float]) -> np.ndarray:
    """Held tones at several pitches (an organ pad, a whine, a TV's tone): tonal all along."""
    tt = np.arange(n) / SR
    return sum(np.sin(2 * np.pi * f * tt * (1 + 0.002 * np.sin(2 * np.pi * rng.uniform(0.2, 1) * tt)))
               for f in pitches).astype(np.float32)


@pytest.mark.parametrize("kind", ["t3", "t4"])
def test_an_alarm_is_found_beside_steadier_tones_in_its_band(kind):
    """Pitches are chosen by how much they swing between loud and quiet, not by how long they are
    tonal: held tones in the band (more tonal frames than a T4 alarm's 0.4 s per 5.8 s) must not
    crowd the alarm's pitch out of the candidates."""
    found = []
    for seed in range(5200, 5210):
        rng = np.random.default_rng(seed)
        x = alarm(N, rng, kind=kind, f0=3150, onset_s=rng.uniform(0.5, 2.0))
        pad = steady_pad(N, rng, [2650.0, 2900.0, 3450.0, 3700.0, 4000.0])
        found.append(heard(ALARM, mix(x, pad + 0.3 * pink(N, rng), rng.uniform(3, 10))))
    assert found.count(kind.upper()) >= 9, found


def confuser(name: str, rng: np.random.Generator, band: tuple[float, float]) -> np.ndarray:
    """A home sound with a tone in ``band`` (Hz): the music's lead note, the beeper, the ringer."""
    if name == "birdsong":
        return birdsong(N, rng)
    if name == "music":
        return music_high_note(N, rng, note_hz=rng.uniform(*band), bpm=rng.uniform(90, 140))
    if name == "microwave":
        return microwave_beeps(N, rng, f0=rng.uniform(*band), onset_s=rng.uniform(1, 4))
    return phone_ring(N, rng, f0=rng.uniform(*band))


@pytest.mark.parametrize("name", ["birdsong", "music", "microwave", "phone"])
def test_home_sounds_with_alarm_like_tones_are_rejected(name):
    confirmed = []
    for seed in range(6200, 6230):
        rng = np.random.default_rng(seed)
        x = confuser(name, rng, (2800, 3600))
        kind = heard(ALARM, mix(x, pink(N, rng), rng.uniform(10, 25)))
        if kind:
            confirmed.append((seed, kind))
    assert confirmed == []


@pytest.mark.parametrize("kind,period", [("wail", (2.5, 5.5)), ("yelp", (0.18, 0.4)), ("hilo", (0.9, 1.5))])
def test_sirens_are_confirmed_with_doppler_and_a_room(kind, period):
    found = []
    for seed in range(5300, 5315):
        rng = np.random.default_rng(seed)
        lo = rng.uniform(550, 850)
        hi = lo * rng.uniform(1.2, 1.4) if kind == "hilo" else rng.uniform(1200, 1900)
        x = siren(N, rng, kind=kind, lo=lo, hi=hi, period=rng.uniform(*period), onset_s=rng.uniform(0.5, 2),
                  doppler=rng.uniform(0, 0.06))
        if seed % 2:
            x = reverb(x, rng, rng.uniform(0.2, 0.5), rng.uniform(0, 6))
        found.append(heard(SIREN, mix(x, pink(N, rng), rng.uniform(0, 10))))
    assert sum(f is not None for f in found) >= 13, found


@pytest.mark.parametrize("name", ["birdsong", "music", "phone"])
def test_home_sounds_are_not_sirens(name):
    confirmed = []
    for seed in range(6400, 6430):
        rng = np.random.default_rng(seed)
        x = confuser(name, rng, (500, 2000))
        kind = heard(SIREN, mix(x, pink(N, rng), rng.uniform(10, 25)))
        if kind:
            confirmed.append((seed, kind))
    assert len(confirmed) <= 1, confirmed  # the card reports the measured rate on the held-out pool


# -- the history the logic keeps ---------------------------------------------------------------------

def test_history_rebuilds_the_signal_from_overlapping_windows_and_restarts_after_a_gap():
    x = np.arange(10 * 7800, dtype=np.float32)
    hist = AudioHistory(3.0, SR)
    for k in range(8):
        hist.push(k * 7800 / SR, x[k * 7800:k * 7800 + 15600])
    audio, t0 = hist.last(3.0)
    end = 7 * 7800 + 15600
    assert np.array_equal(audio, x[end - 3 * SR:end]) and t0 == pytest.approx((end - 3 * SR) / SR)
    hist.push(20.0, x[:15600])  # a gap: what came before is another run
    audio, t0 = hist.last(3.0)
    assert np.array_equal(audio, x[:15600]) and t0 == 20.0


def test_the_history_spectrum_grows_frame_by_frame_and_equals_one_over_the_whole_buffer():
    rng = np.random.default_rng(5600)
    x = pink(20 * SR, rng)
    hist = AudioHistory(8.0, SR)
    for k in range((len(x) - 15600) // 7800 + 1):
        hist.push(k * 7800 / SR, x[k * 7800:k * 7800 + 15600])
        if k % 3 == 0 or k > 30:  # asked now and then, then every hop (as during an alarm)
            spec, t0 = hist.spectrum(8.0)
            end = k * 7800 + 15600
            first = -(-max(0, end - 8 * SR) // 160) * 160  # the run's 10 ms grid
            whole = spectrum(x[first:end], SR).power
            assert t0 == pytest.approx(first / SR) and spec.power.shape == whole.shape
            np.testing.assert_allclose(spec.power, whole, rtol=1e-4, atol=1e-6)


# -- the logic: the CNN proposes, the pattern decides ------------------------------------------------

LABELS = ("smoke_co_alarm", "siren", "dog_bark")
THRESHOLDS = {"smoke_co_alarm": 0.6, "siren": 0.9, "dog_bark": 0.5}


def feed(logic: AudioEventLogic, x: np.ndarray, score_of) -> list:
    """Windows of x every 0.4875 s with scores from score_of(window start s); returns the starts."""
    out = []
    for k in range((len(x) - 15600) // 7800 + 1):
        w = x[k * 7800:k * 7800 + 15600]
        t = k * 7800 / SR
        out += [tr.event for tr in logic.update(t, score_of(t), w) if tr.kind == "start"]
    return out


def test_a_fooled_cnn_raises_no_alarm_on_birdsong_but_would_without_the_verifier():
    rng = np.random.default_rng(5500)
    x = mix(birdsong(N, rng), pink(N, rng), 20)
    fooled = lambda t: [0.95, 0.0, 0.0]  # noqa: E731 - the CNN sure of an alarm all along
    verified = AudioEventLogic("hall", LABELS, THRESHOLDS, verifiers=DEFAULT_VERIFIERS)
    plain = AudioEventLogic("hall", LABELS, THRESHOLDS)
    assert feed(verified, x, fooled) == []
    assert [ev.label for ev in feed(plain, x, fooled)] == ["smoke_co_alarm"]


def test_an_alarm_starts_at_its_first_pulse_and_only_candidate_windows_run_the_verifier():
    rng = np.random.default_rng(5501)
    onset = 2.3
    x = mix(alarm(N, rng, kind="t3", f0=3300, onset_s=onset), pink(N, rng), 6)
    # the CNN is a candidate only from 3 s on, and sure of the alarm only now and then
    score = lambda t: [0.3 if t >= 3.0 else 0.05, 0.0, 0.0]  # noqa: E731
    logic = AudioEventLogic("hall", LABELS, THRESHOLDS, verifiers=DEFAULT_VERIFIERS)
    [ev] = feed(logic, x, score)
    assert ev.label == "smoke_co_alarm" and onset - 0.4875 <= ev.start <= onset
    assert 0 < logic.verifier_calls <= sum(1 for k in range(25) if k * 0.4875 >= 3.0)


def test_labels_without_a_verifier_keep_the_score_logic():
    rng = np.random.default_rng(5502)
    x = mix(birdsong(N, rng), pink(N, rng), 20)
    logic = AudioEventLogic("hall", LABELS, THRESHOLDS, verifiers=DEFAULT_VERIFIERS, min_duration_s=0.0)
    assert [ev.label for ev in feed(logic, x, lambda t: [0.0, 0.0, 0.9])] == ["dog_bark"]


def test_a_verified_label_below_its_candidate_threshold_costs_nothing():
    rng = np.random.default_rng(5503)
    x = mix(alarm(N, rng, kind="t4", f0=3000, onset_s=1.0), pink(N, rng), 6)
    logic = AudioEventLogic("hall", LABELS, THRESHOLDS,
                            verifiers={"smoke_co_alarm": LabelVerifier(AlarmPatternCheck(), 0.5, 7.0)})
    assert feed(logic, x, lambda t: [0.4, 0.0, 0.0]) == [] and logic.verifier_calls == 0


def test_verified_labels_must_have_a_verifier(tmp_path):
    class Model:
        labels = ("smoke_co_alarm", "dog_bark")

    with pytest.raises(ConfigError, match=r"audio\.candidate_thresholds\.dog_bark"):
        check_label_keys(Model(), AudioConfig(candidate_thresholds={"dog_bark": 0.2}))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"audio\.verify\.dog_bark"):
        check_label_keys(Model(), AudioConfig(verify=["dog_bark"]))  # type: ignore[arg-type]
    check_label_keys(Model(), AudioConfig(candidate_thresholds={"smoke_co_alarm": 0.2}))  # type: ignore[arg-type]


def test_by_default_only_the_alarm_is_verified():
    class Model:
        labels = ("smoke_co_alarm", "siren", "dog_bark")

    assert set(verifiers(Model(), AudioConfig())) == {"smoke_co_alarm"}  # type: ignore[arg-type]
    both = verifiers(Model(), AudioConfig(verify=["smoke_co_alarm", "siren"], candidate_thresholds={"siren": 0.3}))  # type: ignore[arg-type]
    assert set(both) == {"smoke_co_alarm", "siren"} and both["siren"].candidate == 0.3

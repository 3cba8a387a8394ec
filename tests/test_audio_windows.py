"""AudioWindower: exact windows and times from blocks of any size, silence gate, discontinuities."""

from __future__ import annotations

import numpy as np
import pytest

from edge_media.audio.windows import AudioWindower

SR = 16000


def noise(n: int, dbfs: float, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal(n)
    return (x / np.sqrt(np.mean(x**2)) * 10 ** (dbfs / 20)).astype(np.float32)


def feed(windower: AudioWindower, signal: np.ndarray, sizes: list[int], t0: float = 0.0) -> list:
    out, pos = [], 0
    for size in sizes:
        out += windower.push(signal[pos : pos + size], t0 + pos / SR)
        pos += size
    return out


@pytest.mark.parametrize("sizes", [[341] * 2000, [1] * 40000, [15600 * 5], [7, 15599, 3, 20000, 1234]])
def test_windows_match_slices_of_the_signal_whatever_the_block_sizes(sizes):
    signal = noise(sum(sizes), -20)
    windows = feed(AudioWindower(), signal, sizes, t0=12.5)
    expected = (len(signal) - 15600) // 7800 + 1
    assert len(windows) == expected
    for k, w in enumerate(windows):
        assert w.samples.dtype == np.float32 and w.samples.shape == (15600,)
        np.testing.assert_array_equal(w.samples, signal[k * 7800 : k * 7800 + 15600])
        assert w.time == 12.5 + k * 7800 / SR  # exact, not approximately


def test_times_come_from_sample_counts_not_accumulated_block_times():
    """Regression guard: 10 ms blocks whose start times are summed floats (as a naive source
    would make them) still give windows at exactly origin + k * hop / rate."""
    windower, t, out = AudioWindower(), 1000.1, []
    signal = noise(160 * 6000, -30)
    for i in range(6000):
        out += windower.push(signal[i * 160 : (i + 1) * 160], t)
        t += 0.01  # accumulates rounding error block by block
    assert len(out) > 100
    assert all(w.time == 1000.1 + k * 7800 / SR for k, w in enumerate(out))
    assert windower.stats.discontinuities == 0


def test_custom_window_and_hop():
    windower = AudioWindower(window_samples=400, hop_samples=400, sample_rate=8000)
    windows = windower.push(noise(2000, -20), 3.0)
    assert [w.time for w in windows] == [3.0 + k * 400 / 8000 for k in range(5)]


def test_silence_gate_and_dbfs():
    windower = AudioWindower()
    sine = np.sin(2 * np.pi * 1000 * np.arange(15600) / SR).astype(np.float32)  # full scale
    blocks = [np.zeros(15600, np.float32), noise(15600, -70), noise(15600, -50), sine]
    results = []
    for i, block in enumerate(blocks):
        windower.reset()
        results += windower.push(block, float(i))
    assert [w.silent for w in results] == [True, True, False, False]
    assert results[0].rms_dbfs == -200.0  # digital silence: finite, far below any gate
    assert results[1].rms_dbfs == pytest.approx(-70, abs=0.01)
    assert results[2].rms_dbfs == pytest.approx(-50, abs=0.01)
    assert results[3].rms_dbfs == pytest.approx(-3.01, abs=0.01)
    assert windower.stats.silent_windows == 2


def test_gate_threshold_is_configurable():
    loud = AudioWindower(silence_dbfs=-40.0).push(noise(15600, -50), 0.0)
    assert loud[0].silent


def test_a_window_straddling_silence_and_sound_is_not_silent():
    signal = np.concatenate([np.zeros(15600, np.float32), noise(15600, -30)])
    windows = AudioWindower().push(signal, 0.0)
    assert [w.silent for w in windows] == [True, False, False]


def test_gap_larger_than_a_block_resets_the_buffer():
    windower = AudioWindower()
    a, b = noise(10000, -20, 1), noise(40000, -20, 2)
    assert windower.push(a, 5.0) == []
    windows = windower.push(b, 5.0 + 10000 / SR + 3.0)  # 3 s of lost audio
    assert windower.stats.discontinuities == 1
    t1 = 5.0 + 10000 / SR + 3.0
    assert [w.time for w in windows] == [t1 + k * 7800 / SR for k in range(len(windows))]
    np.testing.assert_array_equal(windows[0].samples, b[:15600])  # nothing of ``a`` leaks in


def test_step_back_resets_and_jitter_below_one_block_does_not():
    windower = AudioWindower()
    windower.push(noise(3200, -20), 10.0)
    windower.push(noise(3200, -20), 10.2 + 0.15)  # 150 ms late but the block is 200 ms: jitter
    assert windower.stats.discontinuities == 0
    windower.push(noise(3200, -20), 2.0)  # looped file / reconnect: time went back
    assert windower.stats.discontinuities == 1
    assert windower.next_time == 2.0 + 3200 / SR


def test_tiny_blocks_tolerate_timestamp_rounding():
    windower = AudioWindower()
    windower.push(noise(16, -20), 0.0)
    windower.push(noise(16, -20), 0.0011)  # 1 ms timestamp resolution on a 1 ms block
    assert windower.stats.discontinuities == 0


def test_window_samples_are_not_overwritten_by_later_blocks():
    windower = AudioWindower(window_samples=100, hop_samples=50)
    first = windower.push(np.ones(100, np.float32), 0.0)
    windower.push(np.full(500, 2.0, np.float32), 100 / SR)
    assert np.all(first[0].samples == 1.0)


def test_accepts_column_vectors_and_rejects_stereo():
    windower = AudioWindower(window_samples=100, hop_samples=100)
    assert len(windower.push(np.zeros((100, 1), np.float32), 0.0)) == 1
    assert len(windower.push(np.zeros(100, np.float64), 100 / SR)) == 1  # converted
    with pytest.raises(ValueError):
        windower.push(np.zeros((100, 2), np.float32), 200 / SR)
    assert windower.push(np.zeros(0, np.float32), 1.0) == []


@pytest.mark.parametrize("hop", [0, -1, 15601])
def test_rejects_bad_hop(hop):
    with pytest.raises(ValueError):
        AudioWindower(hop_samples=hop)


@pytest.mark.parametrize("n", [1, 9000, 14400, 15600, 20000, 31234])
def test_end_windows_the_last_audio_over_silence(n):
    # A file's last second (or a file shorter than one window) must still be heard: windows go on
    # over silence until the one whose start hop holds the last sample; times stay on the hop grid.
    signal = noise(n, -20.0, seed=n)
    w = AudioWindower()
    windows = w.push(signal, 5.0) + w.end()
    assert windows, "every sample is in a window"
    times = [x.time for x in windows]
    assert times == [5.0 + k * 7800 / 16000 for k in range(len(times))]
    last = windows[-1]
    first_of_last = round((last.time - 5.0) * 16000)
    assert first_of_last <= n - 1 < first_of_last + 7800  # the last sample is in the last start hop
    covered = np.concatenate([signal, np.zeros(first_of_last + 15600 - n, np.float32)])
    for x in windows:
        k = round((x.time - 5.0) * 16000)
        assert np.array_equal(x.samples, covered[k:k + 15600])
    assert w.end() == [] and w.next_time is None  # the run is over


def test_end_without_audio_is_nothing():
    assert AudioWindower().end() == []

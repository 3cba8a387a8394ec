"""Head fine-tuning of the audio-event model (models/audio_events/finetune.py), on the shipped ONNX file:
the embedding output reproduces the shipped scores, the head round-trips, feedback becomes the documented
per-window targets, and a fitted head forgets a false alarm without disturbing unrelated sounds."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "models" / "audio_events"))

from edge_media.audio.windows import AudioWindower
from edge_media.config import AudioConfig
from edge_media.model_files import inference_session

import finetune as ft

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "models" / "audio_events" / "audio_events.onnx"
INFO = json.loads((ROOT / "models" / "manifest.json").read_text())["models"]["audio_events"]
LABELS, PRODUCT = INFO["labels"], INFO["product_labels"]
SR, WIN, HOP = 16000, 15600, 7800
SMOKE = LABELS.index("smoke_co_alarm")


# -- audio ------------------------------------------------------------------------------------------


def tone(seconds: float, hz: float, amp: float = 0.2) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def t3_alarm(seconds: float, hz: float = 3100.0) -> np.ndarray:
    """The smoke-alarm temporal-three pattern: 0.5 s on / 0.5 s off three times, then 1.5 s off."""
    t = np.arange(int(seconds * SR)) / SR
    phase = t % 4.0
    gate = (phase < 2.5) & (phase % 1.0 < 0.5)
    return (0.3 * np.sin(2 * np.pi * hz * t) * gate).astype(np.float32)


def noise(seconds: float, seed: int, dbfs: float = -26.0) -> np.ndarray:
    return (10 ** (dbfs / 20) * np.random.default_rng(seed).standard_normal(int(seconds * SR))).astype(np.float32)


def bursts(seconds: float, seed: int) -> np.ndarray:
    """50 ms noise bursts every 0.25 s (knocks, clatter)."""
    rng, x = np.random.default_rng(seed), np.zeros(int(seconds * SR), np.float32)
    for start in range(0, len(x) - 800, 4000):
        x[start:start + 800] = 0.5 * rng.standard_normal(800)
    return x


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z.astype(np.float64)))


# -- the graph ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model() -> onnx.ModelProto:
    return onnx.load(str(MODEL))


@pytest.fixture(scope="module")
def embedder(model: onnx.ModelProto) -> ft.Embedder:
    return ft.Embedder(model)


@pytest.fixture(scope="module")
def windows() -> np.ndarray:
    return np.concatenate([ft.audio_windows(a) for a in (t3_alarm(4.0), noise(2.0, 1), bursts(2.0, 2),
                                                         tone(2.0, 440.0))])


def scores_of(model: onnx.ModelProto, x: np.ndarray, tmp_path: Path) -> np.ndarray:
    """A plain runtime session's scores (the hub's own session options)."""
    path = tmp_path / "model.onnx"
    onnx.save(model, str(path))
    return inference_session(path).run(["scores"], {"waveform": x})[0]


def test_embedding_output_reproduces_the_shipped_scores(model, embedder, windows, tmp_path):
    plain = inference_session(MODEL).run(["scores"], {"waveform": windows})[0]
    emb, scores = embedder(windows, batch=7)  # batches that do not divide N: still one row per window
    w, b = ft.head(model)
    assert emb.shape == (len(windows), 384) and emb.dtype == np.float32
    assert w.shape == (8, 384) and b.shape == (8,) and w.dtype == b.dtype == np.float32
    np.testing.assert_allclose(sigmoid(emb @ w.T + b), plain, atol=1e-5)
    np.testing.assert_allclose(scores, plain, atol=1e-6)
    extended = ft.with_embedding_output(model)
    onnx.checker.check_model(extended)
    assert [o.name for o in extended.graph.output] == ["scores", "embedding"]
    assert [o.name for o in model.graph.output] == ["scores"]  # the original is left alone


def test_embedder_accepts_a_path_and_no_windows(windows):
    emb, scores = ft.Embedder(MODEL)(windows[:0])
    assert emb.shape == (0, 384) and scores.shape == (0, 8)


def test_replace_head_round_trips_and_a_bias_moves_only_its_label(model, windows, tmp_path):
    w, b = ft.head(model)
    plain = scores_of(model, windows, tmp_path)
    same = ft.replace_head(model, w, b)
    assert [o.name for o in same.graph.output] == ["scores"] and same.graph.input[0].name == "waveform"
    np.testing.assert_array_equal(scores_of(same, windows, tmp_path), plain)
    b2 = b.copy()
    b2[SMOKE] -= 3.0
    moved = scores_of(ft.replace_head(model, w, b2), windows, tmp_path)
    others = [i for i in range(len(LABELS)) if i != SMOKE]
    np.testing.assert_array_equal(moved[:, others], plain[:, others])
    assert np.all(moved[:, SMOKE] < plain[:, SMOKE])
    with pytest.raises(ValueError, match="must match"):
        ft.replace_head(model, w[:, :10], b)


def _tiny(concat_name: str, weight_name: str) -> onnx.ModelProto:
    """x [N, 4] -> Concat(x, x) [N, 8] -> Gemm -> Sigmoid: a model that is not the audio-event model."""
    nodes = [helper.make_node("Concat", ["x", "x"], [concat_name], axis=1),
             helper.make_node("Gemm", [concat_name, weight_name, "bias"], ["logits"], transB=1),
             helper.make_node("Sigmoid", ["logits"], ["scores"])]
    inits = [numpy_helper.from_array(np.ones((2, 8), np.float32), weight_name),
             numpy_helper.from_array(np.zeros(2, np.float32), "bias")]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                              [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 2])], inits)
    tiny = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(tiny)
    return tiny


@pytest.mark.parametrize("concat_name, weight_name, missing", [
    ("pooled", "clf_head.weight", "clf_/Concat_output_0"),  # no embedding tensor
    ("clf_/Concat_output_0", "other.weight", "clf_head.weight"),  # the embedding, but not our head
])
def test_a_graph_without_the_embedding_or_head_is_refused_by_name(concat_name, weight_name, missing):
    tiny = _tiny(concat_name, weight_name)
    for call in (ft.with_embedding_output, ft.head):
        with pytest.raises(ValueError, match=missing.replace(".", r"\.")):
            call(tiny)


# -- windows and targets -----------------------------------------------------------------------------


def test_audio_windows_are_the_hubs_windows():
    hub = AudioConfig()  # the service's defaults: the module's defaults must be the same
    windower = AudioWindower(window_samples=WIN, hop_samples=round(hub.hop_s * SR), sample_rate=SR,
                             silence_dbfs=hub.silence_dbfs)
    audio = np.concatenate([np.zeros(SR, np.float32), t3_alarm(3.0), np.zeros(2 * SR, np.float32), tone(0.7, 900)])
    ref = [w for w in windower.push(audio, 0.0) + windower.end() if not w.silent]
    got = ft.audio_windows(audio)
    assert got.shape == (len(ref), WIN) and got.dtype == np.float32 and 0 < len(ref) < 14
    padded = np.concatenate([audio, np.zeros(WIN, np.float32)])
    for row, w in zip(got, ref, strict=True):
        start = round(w.time * SR)
        assert start % HOP == 0
        np.testing.assert_array_equal(row, padded[start:start + WIN])  # same start, same samples


def test_audio_windows_skip_silence_and_pad_a_short_sound():
    assert ft.audio_windows(np.zeros(5 * SR, np.float32)).shape == (0, WIN)
    assert ft.audio_windows(noise(3.0, 5, dbfs=-70.0)).shape == (0, WIN)  # below the -60 dBFS gate
    assert ft.audio_windows(np.zeros(0, np.float32)).shape == (0, WIN)
    burst = noise(0.3, 6, dbfs=-10.0)
    got = ft.audio_windows(burst)
    assert got.shape == (1, WIN)
    np.testing.assert_array_equal(got[0, :len(burst)], burst)
    assert not got[0, len(burst):].any()


def _event_sample() -> tuple[np.ndarray, np.ndarray]:
    """Quiet room (-46 dBFS) with a loud tone exactly in window 4's span: windows 3 and 5 hold half of it
    (-3 dB from the loudest), the others none (~ -30 dB)."""
    audio = noise(9 * HOP / SR, 7, dbfs=-46.0)
    audio[4 * HOP:6 * HOP] += tone(2 * HOP / SR, 1000.0, amp=0.3)
    return audio, ft.audio_windows(audio)


def _scores(k: int) -> np.ndarray:
    return np.random.default_rng(8).uniform(0.0, 1.0, (k, len(LABELS))).astype(np.float32)


def test_a_false_alarm_silences_every_product_label_everywhere():
    audio, win = _event_sample()
    cur = _scores(len(win))
    y, wt = ft.feedback_targets(ft.FeedbackItem(audio, "smoke_co_alarm", "nothing"), win, cur, LABELS, PRODUCT)
    prod = [LABELS.index(p) for p in PRODUCT]
    rest = [i for i in range(len(LABELS)) if i not in prod]  # background, speech: the owner said nothing of them
    assert np.all(y[:, prod] == 0.0) and np.all(wt[:, prod] == 1.0)
    np.testing.assert_array_equal(y[:, rest], cur[:, rest])
    assert np.all(wt[:, rest] == np.float32(0.3))


def test_a_relabel_clears_the_wrong_label_and_teaches_the_right_one_on_the_event_windows():
    audio, win = _event_sample()
    cur = _scores(len(win))
    item = ft.FeedbackItem(audio, "smoke_co_alarm", "glass_break")
    y, wt = ft.feedback_targets(item, win, cur, LABELS, PRODUCT)
    events = np.isin(np.arange(len(win)), [3, 4, 5])
    g = LABELS.index("glass_break")
    assert np.all(y[:, SMOKE] == 0.0) and np.all(wt[:, SMOKE] == 1.0)
    np.testing.assert_array_equal(wt[:, g], events.astype(np.float32))
    assert np.all(y[events, g] == 1.0)
    rest = [i for i in range(len(LABELS)) if i not in (SMOKE, g)]
    np.testing.assert_array_equal(y[:, rest], cur[:, rest])
    assert np.all(wt[:, rest] == np.float32(0.3))
    # a tighter event range keeps only the window that holds the whole tone
    _, wt2 = ft.feedback_targets(item, win, cur, LABELS, PRODUCT, event_db=2.0)
    np.testing.assert_array_equal(wt2[:, g], (np.arange(len(win)) == 4).astype(np.float32))


@pytest.mark.parametrize("predicted", ["missed", None, "dog_bark"])  # missed, product-improvement, confirmed
def test_a_missed_event_is_taught_on_the_event_windows_only(predicted):
    audio, win = _event_sample()
    cur = _scores(len(win))
    y, wt = ft.feedback_targets(ft.FeedbackItem(audio, predicted, "dog_bark"), win, cur, LABELS, PRODUCT,
                                distill_weight=0.5)
    d, events = LABELS.index("dog_bark"), np.isin(np.arange(len(win)), [3, 4, 5])
    np.testing.assert_array_equal(wt[:, d], events.astype(np.float32))
    assert np.all(y[events, d] == 1.0)
    rest = [i for i in range(len(LABELS)) if i != d]
    np.testing.assert_array_equal(y[:, rest], cur[:, rest])
    assert np.all(wt[:, rest] == 0.5)


@pytest.mark.parametrize("predicted, corrected, message", [
    ("smoke_co_alarm", None, "unlabelled"),
    ("smoke_co_alarm", "doorbell", "doorbell"),
    ("kettle", "nothing", "kettle"),
])
def test_unusable_feedback_is_refused(predicted, corrected, message):
    audio, win = _event_sample()
    with pytest.raises(ValueError, match=message):
        ft.feedback_targets(ft.FeedbackItem(audio, predicted, corrected), win, _scores(len(win)), LABELS, PRODUCT)


# -- fitting -----------------------------------------------------------------------------------------


def test_fit_head_forgets_a_false_alarm_and_keeps_the_rest(model, embedder):
    # A steady 3 kHz beep (a microwave, a kettle) that the shipped model calls a smoke alarm; the owner
    # says "nothing". Other sounds only contribute self-distillation cells.
    beep = tone(4.0, 3000.0)
    fa = ft.audio_windows(beep)
    emb_fa, cur_fa = embedder(fa)
    y_fa, wt_fa = ft.feedback_targets(ft.FeedbackItem(beep, "smoke_co_alarm", "nothing"), fa, cur_fa, LABELS,
                                      PRODUCT)
    unrelated = np.concatenate([ft.audio_windows(a) for a in (noise(4.0, 11), bursts(4.0, 12), tone(4.0, 440.0))])
    alarm = ft.audio_windows(t3_alarm(8.0))
    emb_o, cur_o = embedder(np.concatenate([unrelated, alarm]))
    emb = np.concatenate([emb_fa, emb_o])
    y = np.concatenate([y_fa, cur_o])
    wt = np.concatenate([wt_fa, np.full(cur_o.shape, 0.3, np.float32)])
    w0, b0 = ft.head(model)

    w, b, report = ft.fit_head(emb, y, wt, w0, b0)
    after = sigmoid(emb @ w.T + b)
    threshold = INFO["thresholds"]["smoke_co_alarm"]
    assert cur_fa[:, SMOKE].max() > threshold  # the false alarm fires today (0.78..0.98)
    assert after[:len(fa), SMOKE].max() < 0.5 * cur_fa[:, SMOKE].min()  # measured: <= 0.09
    n_un = len(unrelated)
    assert np.abs(after[len(fa):len(fa) + n_un] - cur_o[:n_un]).max() < 0.1  # measured: 0.09 (440 Hz tone)
    # The real T3 alarm is the nearest sound to the beep: it loses a little (measured max 0.11) and no
    # more; a retrain should add alarm positives to hold it (distillation at 0.3 alone lets it slip).
    assert np.abs(after[len(fa) + n_un:, SMOKE] - cur_o[n_un:, SMOKE]).max() < 0.15
    assert report["final_loss"] < 0.5 * report["initial_loss"] and report["steps"] == 300
    assert report["hard_negatives"] == [0] + [len(fa)] * 6 + [0] and report["hard_positives"] == [0] * 8

    w2, b2, report2 = ft.fit_head(emb, y, wt, w0, b0)
    assert np.array_equal(w, w2) and np.array_equal(b, b2) and report == report2  # bit-identical


def test_balance_gives_a_labels_positives_and_negatives_equal_weight():
    # 2 positives and 18 negatives of one label on the same embedding: the best score is the weighted
    # share of positives, 0.1 unbalanced and 0.5 when both sides carry equal weight.
    emb = np.ones((20, 3), np.float32)
    y = (np.arange(20) < 2).astype(np.float32)[:, None]
    wt = np.ones_like(y)
    w0, b0 = np.zeros((1, 3), np.float32), np.zeros(1, np.float32)
    w_u, b_u, _ = ft.fit_head(emb, y, wt, w0, b0, lr=0.05, l2_to_prior=0.0, balance=False)
    w_b, b_b, rep = ft.fit_head(emb, y, wt, w0, b0, lr=0.05, l2_to_prior=0.0)
    assert rep["hard_positives"] == [2] and rep["hard_negatives"] == [18]
    assert sigmoid(emb[:1] @ w_u.T + b_u)[0, 0] == pytest.approx(0.1, abs=0.01)
    assert sigmoid(emb[:1] @ w_b.T + b_b)[0, 0] == pytest.approx(0.5, abs=0.01)
    with pytest.raises(ValueError, match="shapes"):
        ft.fit_head(emb, y[:, :0], wt, w0, b0)

"""Fine-tune the audio-event model's final dense head on owners' feedback, in numpy, without torch.

The shipped graph ends ``... -> Concat (clf_/Concat_output_0, the pooled [N, 384] embedding) -> Gemm
(clf_head.weight [L, 384], clf_head.bias [L], transB=1) -> Sigmoid -> scores``. Everything before the Gemm
stays frozen: the embeddings are computed once by onnxruntime (``Embedder``) and the head is refit by
full-batch Adam on a weighted BCE (``fit_head``), then written back into a copy of the graph
(``replace_head``). That is minutes of work on a hub-class CPU and needs only numpy, onnx and onnxruntime,
which CI has.

Feedback becomes per-window targets by ``feedback_targets``: the owner's word sets a few cells hard, and
every other cell is distilled from the current model's own score, so the behaviour nobody complained about
is kept. ``retrain.py`` (a separate script) builds the data set and the versioned model on top of this.
"""
from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edge_media.audio.windows import AudioWindower
from edge_media.model_files import inference_session

EMBEDDING_TENSOR = "clf_/Concat_output_0"
HEAD_WEIGHT = "clf_head.weight"
HEAD_BIAS = "clf_head.bias"
EMBEDDING_OUTPUT = "embedding"  # the extra graph output with_embedding_output adds
SAMPLE_RATE = 16000
MISSED, NOTHING = "missed", "nothing"  # feedback_data's non-label values of predicted / corrected


# -- the graph ----------------------------------------------------------------------------------------


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out


def _initializer(model: onnx.ModelProto, name: str) -> onnx.TensorProto:
    for init in model.graph.initializer:
        if init.name == name:
            return init
    raise ValueError(f"the graph has no initializer {name!r} (not the audio-event model's head?)")


def _head_gemm(model: onnx.ModelProto) -> onnx.NodeProto:
    """The Gemm that maps the embedding to logits. Its attributes are checked because fit_head assumes
    logits = emb @ W.T + b exactly; another layout would be refit silently wrong."""
    if not any(EMBEDDING_TENSOR in node.output for node in model.graph.node):
        raise ValueError(f"the graph has no tensor {EMBEDDING_TENSOR!r} (the pooled embedding)")
    for node in model.graph.node:
        if node.op_type == "Gemm" and list(node.input) == [EMBEDDING_TENSOR, HEAD_WEIGHT, HEAD_BIAS]:
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            if attrs.get("transA", 0) != 0 or attrs.get("transB", 0) != 1 or attrs.get("alpha", 1.0) != 1.0 \
                    or attrs.get("beta", 1.0) != 1.0:
                raise ValueError(f"head Gemm {node.name!r} is not emb @ W.T + b (attributes {attrs})")
            return node
    raise ValueError(f"the graph has no Gemm({EMBEDDING_TENSOR}, {HEAD_WEIGHT}, {HEAD_BIAS}) head")


def head(model: onnx.ModelProto) -> tuple[np.ndarray, np.ndarray]:
    """(W [L, D], b [L]) float32, as the head Gemm uses them."""
    _head_gemm(model)
    w = numpy_helper.to_array(_initializer(model, HEAD_WEIGHT)).astype(np.float32)
    b = numpy_helper.to_array(_initializer(model, HEAD_BIAS)).astype(np.float32)
    if w.ndim != 2 or b.shape != (w.shape[0],):
        raise ValueError(f"head shapes W {w.shape}, b {b.shape} are not [L, D], [L]")
    return w, b


def with_embedding_output(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy with a second graph output ``embedding`` [N, D] (an Identity of the pooled embedding: a graph
    output needs a name of its own, and the runtime's outputs stay as they were, first)."""
    w, _ = head(model)
    out = _copy(model)
    if any(o.name == EMBEDDING_OUTPUT for o in out.graph.output):
        return out
    batch = out.graph.input[0].type.tensor_type.shape.dim[0]
    n: str | int = batch.dim_param or batch.dim_value or "N"
    out.graph.node.append(helper.make_node("Identity", [EMBEDDING_TENSOR], [EMBEDDING_OUTPUT],
                                           name="finetune/embedding"))
    out.graph.output.append(helper.make_tensor_value_info(EMBEDDING_OUTPUT, onnx.TensorProto.FLOAT,
                                                          [n, int(w.shape[1])]))
    return out


def replace_head(model: onnx.ModelProto, w: np.ndarray, b: np.ndarray) -> onnx.ModelProto:
    """A copy with new head initializers; inputs, outputs and every other weight unchanged."""
    w0, b0 = head(model)
    w32, b32 = np.asarray(w, np.float32), np.asarray(b, np.float32)
    if w32.shape != w0.shape or b32.shape != b0.shape:
        raise ValueError(f"new head W {w32.shape}, b {b32.shape} must match the model's {w0.shape}, {b0.shape}")
    if not (np.all(np.isfinite(w32)) and np.all(np.isfinite(b32))):
        raise ValueError("new head has non-finite values")
    out = _copy(model)
    _initializer(out, HEAD_WEIGHT).CopyFrom(numpy_helper.from_array(w32, HEAD_WEIGHT))
    _initializer(out, HEAD_BIAS).CopyFrom(numpy_helper.from_array(b32, HEAD_BIAS))
    onnx.checker.check_model(out)
    return out


class Embedder:
    """Embeddings and scores of windows in one onnxruntime pass (the frozen part runs once per window)."""

    def __init__(self, model: onnx.ModelProto | Path, threads: int = 1) -> None:
        proto = onnx.load(str(model)) if isinstance(model, Path) else model
        self.scores_output = proto.graph.output[0].name
        self.input = proto.graph.input[0].name
        w, _ = head(proto)
        self.dim, self.labels = int(w.shape[1]), int(w.shape[0])
        # Through a file so the session gets the runtime's own options (inference_session takes a path).
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "embedder.onnx"
            onnx.save(with_embedding_output(proto), str(path))
            self.session = inference_session(path, threads)

    def __call__(self, windows: np.ndarray, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """(embedding [N, D], scores [N, L]) float32 for windows [N, samples]."""
        x = np.asarray(windows, np.float32)
        if len(x) == 0:
            return np.zeros((0, self.dim), np.float32), np.zeros((0, self.labels), np.float32)
        names = [EMBEDDING_OUTPUT, self.scores_output]
        parts = [self.session.run(names, {self.input: x[i:i + batch]}) for i in range(0, len(x), batch)]
        return (np.concatenate([p[0] for p in parts]).astype(np.float32),
                np.concatenate([p[1] for p in parts]).astype(np.float32))


# -- feedback -> per-window targets -------------------------------------------------------------------


def audio_windows(audio: np.ndarray, *, window: int = 15600, hop: int = 7800,
                  silence_dbfs: float = -60.0) -> np.ndarray:
    """The non-silent windows [K, window] float32 a hub would have scored, cut by the runtime's own
    AudioWindower; ``end()`` pads the tail with silence as the hub does at a file's end, so audio shorter
    than one window becomes one zero-padded window."""
    windower = AudioWindower(window_samples=window, hop_samples=hop, sample_rate=SAMPLE_RATE,
                             silence_dbfs=silence_dbfs)
    ws = windower.push(np.asarray(audio, np.float32), 0.0) + windower.end()
    loud = [w.samples for w in ws if not w.silent]
    return np.stack(loud).astype(np.float32) if loud else np.zeros((0, window), np.float32)


@dataclass(frozen=True)
class FeedbackItem:
    """One labelled sample, as feedback_data gives it: predicted is a label, ``missed`` or None
    (product-improvement audio); corrected is a label, ``nothing`` or None (unlabelled)."""

    audio: np.ndarray
    predicted: str | None
    corrected: str | None


def event_windows(windows: np.ndarray, event_db: float = 10.0) -> np.ndarray:
    """[K] bool: windows within event_db of the sample's loudest. The owner labels the sample, not each
    window, and the quiet lead-in or tail of a clip must not be taught as the event."""
    ms = np.mean(np.square(windows, dtype=np.float64), axis=1)
    db = 10.0 * np.log10(np.maximum(ms, 1e-20))
    return db >= db.max(initial=-np.inf) - event_db


def feedback_targets(item: FeedbackItem, windows: np.ndarray, current_scores: np.ndarray, labels: Sequence[str],
                     product: Sequence[str], *, distill_weight: float = 0.3,
                     event_db: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """(y [K, L] in [0, 1], weight [K, L] >= 0) for one sample's windows. Cells the owner's answer decides
    get weight 1; every other cell keeps the current model's score at ``distill_weight``."""
    col = {name: i for i, name in enumerate(labels)}
    _check_feedback(item, windows, current_scores, col, product)
    y = np.clip(np.asarray(current_scores, np.float32), 0.0, 1.0)  # self-distillation by default
    weight = np.full(y.shape, distill_weight, np.float32)
    if item.corrected == NOTHING:  # a false alarm: no product event anywhere in the sample
        idx = [col[p] for p in product]
        y[:, idx], weight[:, idx] = 0.0, 1.0
        return y, weight
    if item.predicted in col and item.predicted != item.corrected:  # what fired was wrong, on every window
        y[:, col[item.predicted]], weight[:, col[item.predicted]] = 0.0, 1.0
    c, events = col[str(item.corrected)], event_windows(windows, event_db)
    # The event is somewhere in the loud windows; elsewhere nothing is known of it, not even "absent".
    y[:, c] = np.where(events, 1.0, y[:, c])
    weight[:, c] = np.where(events, 1.0, 0.0)
    return y, weight


def _check_feedback(item: FeedbackItem, windows: np.ndarray, scores: np.ndarray, col: dict[str, int],
                    product: Sequence[str]) -> None:
    if item.corrected is None:
        raise ValueError("unlabelled feedback (corrected is None) has no targets; skip it")
    if item.corrected != NOTHING and item.corrected not in col:
        raise ValueError(f"corrected {item.corrected!r} is neither a label nor {NOTHING!r}")
    if item.predicted not in (None, MISSED) and item.predicted not in col:
        raise ValueError(f"predicted {item.predicted!r} is neither a label, {MISSED!r} nor None")
    if unknown := [p for p in product if p not in col]:
        raise ValueError(f"product labels {unknown} are not model labels")
    if scores.shape != (len(windows), len(col)):
        raise ValueError(f"current_scores {scores.shape} must be [windows={len(windows)}, labels={len(col)}]")


# -- fitting the head ---------------------------------------------------------------------------------


def _balanced(weight: np.ndarray, y: np.ndarray, hard: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per label, scale hard positives and negatives to equal halves of their total weight (when both
    exist): a few relabelled windows must not be drowned by many false-alarm windows, or the other way."""
    pos = (hard & (y == 1.0)).sum(axis=0)
    neg = (hard & (y == 0.0)).sum(axis=0)
    both = (pos > 0) & (neg > 0)
    f_pos = np.where(both, (pos + neg) / (2.0 * np.maximum(pos, 1)), 1.0)
    f_neg = np.where(both, (pos + neg) / (2.0 * np.maximum(neg, 1)), 1.0)
    factor = np.where(hard, np.where(y == 1.0, f_pos, f_neg), 1.0)
    return weight * factor, pos, neg


def _loss_grad(x: np.ndarray, y: np.ndarray, wt: np.ndarray, w: np.ndarray, b: np.ndarray, w0: np.ndarray,
               b0: np.ndarray, l2: float) -> tuple[float, np.ndarray, np.ndarray]:
    """Weighted mean BCE (by total weight, so lr and l2 mean the same for any data-set size) + L2 pull
    towards the shipped head, and its gradient; BCE from logits for stability."""
    z = x @ w.T + b
    p = 0.5 * (1.0 + np.tanh(0.5 * z))  # sigmoid without overflow
    bce = np.logaddexp(0.0, z) - y * z
    dw, db = w - w0, b - b0
    loss = float((wt * bce).sum() + 0.5 * l2 * ((dw * dw).sum() + (db * db).sum()))
    g = (p - y) * wt
    return loss, g.T @ x + l2 * dw, g.sum(axis=0) + l2 * db


def fit_head(emb: np.ndarray, y: np.ndarray, weight: np.ndarray, w0: np.ndarray, b0: np.ndarray, *,
             l2_to_prior: float = 1e-2, steps: int = 300, lr: float = 0.01, seed: int = 0,
             balance: bool = True) -> tuple[np.ndarray, np.ndarray, dict]:
    """Refit (W, b) from (w0, b0) by full-batch Adam; returns (W, b) float32 and a report. Hard cells are
    those with weight 1 and target 0 or 1 (feedback_targets' owner-decided cells). Deterministic: float64,
    fixed order, no random draws (``seed`` is recorded in the report, and kept for callers that vary it)."""
    x, t = np.asarray(emb, np.float64), np.asarray(y, np.float64)
    wt = np.asarray(weight, np.float64)
    w_prior, b_prior = np.asarray(w0, np.float64), np.asarray(b0, np.float64)
    if t.shape != wt.shape or t.shape != (len(x), len(b_prior)) or w_prior.shape != (len(b_prior), x.shape[1]):
        raise ValueError(f"shapes emb {x.shape}, y {t.shape}, weight {wt.shape}, w0 {w_prior.shape}, "
                         f"b0 {b_prior.shape} do not fit [N, D], [N, L], [N, L], [L, D], [L]")
    hard = (wt == 1.0) & ((t == 0.0) | (t == 1.0))
    wt, pos, neg = _balanced(wt, t, hard) if balance else (wt, (hard & (t == 1)).sum(0), (hard & (t == 0)).sum(0))
    if wt.sum() <= 0.0:
        raise ValueError("no cell carries weight: nothing to fit")
    wt = wt / wt.sum()
    w, b = w_prior.copy(), b_prior.copy()
    state = [np.zeros_like(w), np.zeros_like(w), np.zeros_like(b), np.zeros_like(b)]
    loss0, _, _ = _loss_grad(x, t, wt, w, b, w_prior, b_prior, l2_to_prior)
    for step in range(1, steps + 1):
        _, gw, gb = _loss_grad(x, t, wt, w, b, w_prior, b_prior, l2_to_prior)
        w = w - _adam(gw, state[0], state[1], step, lr)
        b = b - _adam(gb, state[2], state[3], step, lr)
    loss1, _, _ = _loss_grad(x, t, wt, w, b, w_prior, b_prior, l2_to_prior)
    report = {"initial_loss": loss0, "final_loss": loss1, "steps": steps, "lr": lr, "l2_to_prior": l2_to_prior,
              "seed": seed, "balance": balance, "windows": len(x),
              "hard_positives": pos.astype(int).tolist(), "hard_negatives": neg.astype(int).tolist()}
    return w.astype(np.float32), b.astype(np.float32), report


def _adam(g: np.ndarray, m: np.ndarray, v: np.ndarray, step: int, lr: float,
          beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8) -> np.ndarray:
    """One Adam step for g; updates the moments m, v in place and returns the parameter change."""
    m *= beta1
    m += (1.0 - beta1) * g
    v *= beta2
    v += (1.0 - beta2) * g * g
    return lr * (m / (1.0 - beta1 ** step)) / (np.sqrt(v / (1.0 - beta2 ** step)) + eps)

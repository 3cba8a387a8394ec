"""The classifier (PyTorch) and the assembly of the shipped ONNX: front end + classifier in one graph.

Classifier: per-band normalisation -> 3x3 conv stem -> 5 depthwise-separable conv blocks -> global
average + max pooling -> dense -> sigmoid (independent per-label scores; several events can overlap).
"""
from __future__ import annotations

import io

import numpy as np
import onnx
import torch
from torch import nn

import features

ACTIVATION = "sigmoid"


class DSBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.dw = nn.Conv2d(c_in, c_in, 3, stride=stride, padding=1, groups=c_in, bias=False)
        self.bn1 = nn.BatchNorm2d(c_in)
        self.pw = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.dw(x)))
        return torch.relu(self.bn2(self.pw(x)))


class AudioEventNet(nn.Module):
    """logmel [N, 95, 64] -> scores [N, L] in [0, 1]."""

    def __init__(self, n_labels: int, mean: np.ndarray, std: np.ndarray, width: int = 32) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).reshape(1, 1, 1, -1))
        self.register_buffer("inv_std", torch.tensor(1.0 / std, dtype=torch.float32).reshape(1, 1, 1, -1))
        w = width
        self.stem = nn.Sequential(nn.Conv2d(1, w, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU())
        self.blocks = nn.Sequential(
            DSBlock(w, 2 * w, 2), DSBlock(2 * w, 2 * w, 1), DSBlock(2 * w, 4 * w, 2),
            DSBlock(4 * w, 4 * w, 1), DSBlock(4 * w, 6 * w, 2),
        )
        self.dropout = nn.Dropout(0.2)
        self.head = nn.Linear(12 * w, n_labels)

    def logits(self, logmel: torch.Tensor) -> torch.Tensor:
        x = (logmel.unsqueeze(1) - self.mean) * self.inv_std
        x = self.blocks(self.stem(x))
        pooled = torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)
        return self.head(self.dropout(pooled))

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(logmel))


def export_classifier(model: AudioEventNet) -> onnx.ModelProto:
    """Classifier alone: input ``logmel`` [N, 95, 64] -> output ``scores`` [N, L] (opset 17)."""
    model.eval()
    dummy = torch.zeros(2, features.N_FRAMES, features.N_MELS)
    buf = io.BytesIO()
    torch.onnx.export(model, (dummy,), buf, input_names=["logmel"], output_names=["scores"],
                      dynamic_axes={"logmel": {0: "N"}, "scores": {0: "N"}}, opset_version=features.OPSET,
                      dynamo=False, do_constant_folding=True)
    return onnx.load_from_string(buf.getvalue())


def merge(classifier: onnx.ModelProto, labels: list[str]) -> onnx.ModelProto:
    """waveform [N, 15600] -> scores [N, L]: the front end's ``logmel`` feeds the classifier."""
    front = features.build_frontend()
    classifier = onnx.compose.add_prefix(classifier, prefix="clf_", rename_inputs=False, rename_outputs=False)
    classifier.ir_version = front.ir_version
    merged = onnx.compose.merge_models(front, classifier, io_map=[("logmel", "logmel")],
                                       producer_name="edge-media models/audio_events")
    merged.graph.name = "audio_events"
    merged.doc_string = "edge-media audio events: 16 kHz waveform windows -> per-label sigmoid scores"
    onnx.helper.set_model_props(merged, {"labels": ",".join(labels), "activation": ACTIVATION,
                                         "sample_rate": str(features.SAMPLE_RATE),
                                         "window_samples": str(features.WINDOW_SAMPLES)})
    onnx.checker.check_model(merged, full_check=True)
    return merged


def verify(merged: onnx.ModelProto, model: AudioEventNet, waveforms: np.ndarray, atol: float = 1e-4) -> float:
    """Max |onnx - torch| on the same waveforms (torch fed the onnxruntime front end's features)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(merged.SerializeToString(), providers=["CPUExecutionProvider"])
    onnx_scores = sess.run(["scores"], {"waveform": waveforms.astype(np.float32)})[0]
    logmel = features.FrontEnd()(waveforms)
    model.eval()
    with torch.no_grad():
        torch_scores = model(torch.from_numpy(logmel)).numpy()
    err = float(np.max(np.abs(onnx_scores - torch_scores)))
    if not err <= atol:
        raise AssertionError(f"merged ONNX differs from torch by {err}")
    return err

"""The feedback dataset loader (models/audio_events/feedback_data.py) against a real S3 server.

The bucket is filled by hand the way the hub's sender lays it out (docs/feedback-dataset.md): real FLAC made by
the anonymiser's own encoder, sample JSONs from its ``SampleMeta``, batch manifests and a retraction.
"""
from __future__ import annotations

import io
import json
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
from minio.commonconfig import CopySource

from edge_media.privacy import anonymise
from edge_media.tools.devserver import S3Server

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "models" / "audio_events"))

import feedback_data as fd
from s3_fixtures import empty_bucket

RATE = fd.SAMPLE_RATE


def _tone(seconds: float, hz: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def _meta(purpose: str, predicted: str | None, score: float | None, corrected: str | None,
          seconds: float, month: str = "2026-11") -> anonymise.SampleMeta:
    return anonymise.SampleMeta(sample_id=str(uuid.uuid4()), purpose=purpose, predicted=predicted, score=score,
                                corrected=corrected, model_name="audio_events", model_version="1.1.0",
                                duration_s=seconds, sample_rate=RATE, recipe="anon-v1+model", month=month)


class Bucket:
    """A feedback bucket on the test server, written the way the sender writes it."""

    def __init__(self, server: S3Server) -> None:
        self.client, self.name = server.client(), f"feedback-{uuid.uuid4().hex[:12]}"
        self.client.make_bucket(self.name)

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(self.name, key, io.BytesIO(data), len(data))

    def sample(self, meta: anonymise.SampleMeta, hz: float, *, extra: dict | None = None) -> anonymise.SampleMeta:
        sample = anonymise.AnonymisedSample(anonymise.encode_flac(_tone(meta.duration_s, hz)), meta)
        self.put(sample.key, sample.flac)
        self.put(sample.json_key, json.dumps({**meta.to_dict(), **(extra or {})}).encode())
        return meta

    def manifest(self, metas: list[anonymise.SampleMeta], *, extra: dict | None = None) -> None:
        lines = [json.dumps({"file_name": f"samples/{m.month}/{m.sample_id}.flac", **m.to_dict(), **(extra or {})})
                 for m in metas]
        self.put(f"manifests/{uuid.uuid4()}.jsonl", ("\n".join(lines) + "\n").encode())

    def retract(self, *ids: str) -> None:
        doc = {"retraction_id": str(uuid.uuid4()), "created_month": "2026-11", "sample_ids": list(ids)}
        self.put(f"retractions/{doc['retraction_id']}.json", json.dumps(doc).encode())

    def loader(self) -> fd.FeedbackBucket:
        return fd.FeedbackBucket(self.client, self.name)


@pytest.fixture
def bucket(s3_server: S3Server):
    b = Bucket(s3_server)
    yield b
    empty_bucket(s3_server, b.name)


@pytest.fixture
def filled(bucket: Bucket) -> tuple[Bucket, dict[str, anonymise.SampleMeta], str]:
    """Three live samples (a wrong label, a missed one, unlabelled product audio) and one retracted."""
    live = {
        "wrong": bucket.sample(_meta("misdetection-feedback", "dog_bark", 0.81, "nothing", 4.5), 440.0),
        "missed": bucket.sample(_meta("misdetection-feedback", "missed", None, "glass_break", 2.0, "2026-10"),
                                3000.0),
        "product": bucket.sample(_meta("product-improvement", None, None, None, 6.0), 1000.0),
    }
    gone = bucket.sample(_meta("misdetection-feedback", "siren", 0.7, "baby_cry", 3.0), 600.0)
    bucket.manifest([live["wrong"], live["missed"]])
    bucket.manifest([live["product"], gone])
    bucket.retract(gone.sample_id)
    return bucket, live, gone.sample_id


def test_allow_list_and_labels_are_the_hubs():
    """The loader's allow-list is the anonymiser's: a new field on the hub must be added here on purpose."""
    assert fd.ALLOWED_KEYS == anonymise.ALLOWED_KEYS
    assert fd.PURPOSES == anonymise.PURPOSES
    assert (fd.MISSED, fd.NOTHING) == (anonymise.MISSED, anonymise.NOTHING)
    assert "dog_bark" in fd.model_labels() and "speech" in fd.model_labels()


def test_loader_yields_exactly_the_non_retracted_samples(filled):
    bucket, live, gone = filled
    samples = {s.sample_id: s for s in bucket.loader().samples()}
    assert set(samples) == {m.sample_id for m in live.values()}
    assert gone not in samples
    for name, meta in live.items():
        sample = samples[meta.sample_id]
        assert sample.meta() == meta.to_dict()
        audio = sample.load()
        assert audio.dtype == np.float32
        assert abs(len(audio) / RATE - meta.duration_s) < 0.01, name
        assert np.sqrt(np.mean(audio ** 2)) == pytest.approx(0.3 / np.sqrt(2), rel=0.02)
    assert samples[live["wrong"].sample_id].label == "background"  # "there was nothing" trains background
    assert samples[live["missed"].sample_id].label == "glass_break"
    assert samples[live["product"].sample_id].label is None
    assert len(list(bucket.loader().manifest_lines())) == 4  # manifests stay as sent; retraction is applied later


def test_a_sample_listed_in_two_manifests_is_loaded_once(bucket: Bucket):
    """The sender may list a sample again after a crash between its upload and its commit."""
    meta = bucket.sample(_meta("misdetection-feedback", "siren", 0.9, "nothing", 2.0), 800.0)
    bucket.manifest([meta])
    bucket.manifest([meta])
    assert [s.sample_id for s in bucket.loader().samples()] == [meta.sample_id]
    assert [line["sample_id"] for line in bucket.loader().manifest_lines()] == [meta.sample_id]


def test_training_data_returns_the_labelled_waveforms(filled):
    bucket, live, _ = filled
    waves, labels = fd.training_data(bucket.loader().samples())
    assert sorted(labels) == ["background", "glass_break"]
    assert sorted(len(w) for w in waves) == [int(2.0 * RATE), int(4.5 * RATE)]


def test_a_sample_json_with_an_extra_key_is_refused(bucket: Bucket):
    good = bucket.sample(_meta("misdetection-feedback", "scream", 0.9, "nothing", 2.0), 500.0)
    leaky = bucket.sample(_meta("misdetection-feedback", "scream", 0.9, "nothing", 2.0), 500.0,
                          extra={"camera": "front-door"})
    bucket.manifest([leaky], extra={"camera": "front-door"})
    with pytest.warns(UserWarning, match="camera") as caught:
        ids = [s.sample_id for s in bucket.loader().samples()]
        lines = list(bucket.loader().manifest_lines())
    assert ids == [good.sample_id]
    assert lines == []
    assert any(leaky.sample_id in str(w.message) for w in caught)


@pytest.mark.parametrize("change, problem", [
    ({"predicted": "doorbell"}, "predicted"),
    ({"corrected": "Grandma's cough"}, "corrected"),
    ({"score": 1.5}, "score"),
    ({"score": True}, "score"),
    ({"month": "2026-11-29"}, "month"),
    ({"sample_id": "front-door-clip-17"}, "sample_id"),
    ({"purpose": "marketing"}, "purpose"),
    ({"sample_rate": 48000}, "sample_rate"),
    ({"model_version": "1.0 built by alice@home"}, "model_version"),
    ({"corrected": None}, "without its predicted and corrected"),
])
def test_malformed_values_are_refused(change, problem):
    meta = {**_meta("misdetection-feedback", "dog_bark", 0.8, "nothing", 3.0).to_dict(), **change}
    with pytest.raises(fd.SampleRejected, match=problem):
        fd.validate_meta(meta, fd.model_labels())


def test_a_sample_whose_key_lies_about_it_is_refused(bucket: Bucket):
    """The JSON must sit at samples/<its month>/<its id>.json; a mismatch is a sender bug, not data."""
    meta = _meta("misdetection-feedback", "siren", 0.6, "nothing", 2.0)
    bucket.sample(meta, 700.0)
    moved = f"samples/2026-01/{meta.sample_id}"
    bucket.client.copy_object(bucket.name, moved + ".json",
                              CopySource(bucket.name, f"samples/{meta.month}/{meta.sample_id}.json"))
    with pytest.warns(UserWarning, match="does not match"):
        ids = [s.sample_id for s in bucket.loader().samples()]
    assert ids == [meta.sample_id]


def test_an_unreadable_retraction_stops_the_load(filled):
    """Fail closed: skipping a retraction would train on audio whose consent was withdrawn."""
    bucket, _, _ = filled
    bucket.put(f"retractions/{uuid.uuid4()}.json", b'{"retraction_id": "x", "sample_ids": "not-a-list"}')
    with pytest.raises(fd.FeedbackDataError, match="unreadable"):
        list(bucket.loader().samples())


def _cli_env(monkeypatch, server: S3Server, bucket: Bucket) -> list[str]:
    monkeypatch.setenv("FEEDBACK_S3_ACCESS_KEY", server.access_key)
    monkeypatch.setenv("FEEDBACK_S3_SECRET_KEY", server.secret_key)
    return ["--endpoint", server.endpoint, "--bucket", bucket.name] + ([] if server.secure else ["--insecure"])


def test_mirror_writes_an_audiofolder_without_retracted_samples(filled, s3_server, tmp_path, monkeypatch, capsys):
    bucket, live, gone = filled
    stale = tmp_path / "samples" / "2026-11" / f"{gone}.flac"  # mirrored before the owner withdrew
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"fLaC old copy")
    assert fd.main([*_cli_env(monkeypatch, s3_server, bucket), "--mirror", str(tmp_path)]) == 0
    assert "3 samples" in capsys.readouterr().out
    lines = [json.loads(line) for line in (tmp_path / "metadata.jsonl").read_text().splitlines()]
    assert {line["sample_id"] for line in lines} == {m.sample_id for m in live.values()}
    for line in lines:
        assert set(line) == fd.ALLOWED_KEYS | {"file_name"}
        audio = fd.decode_flac((tmp_path / line["file_name"]).read_bytes())
        assert abs(len(audio) / RATE - line["duration_s"]) < 0.01
    assert not stale.exists()
    assert gone not in (tmp_path / "metadata.jsonl").read_text()
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == sorted(
        ["metadata.jsonl", *(f"{m.sample_id}.flac" for m in live.values())])

    bucket.retract(live["missed"].sample_id)  # a later withdrawal: the next mirror run removes it too
    assert fd.main([*_cli_env(monkeypatch, s3_server, bucket), "--mirror", str(tmp_path)]) == 0
    assert not (tmp_path / f"samples/2026-10/{live['missed'].sample_id}.flac").exists()
    assert live["missed"].sample_id not in (tmp_path / "metadata.jsonl").read_text()


def test_list_prints_counts_per_label(filled, s3_server, monkeypatch, capsys):
    bucket, _, _ = filled
    assert fd.main([*_cli_env(monkeypatch, s3_server, bucket), "--list"]) == 0
    out = capsys.readouterr().out
    assert "misdetection-feedback    background       1" in out
    assert "misdetection-feedback    glass_break      1" in out
    assert "product-improvement      (unlabelled)     1" in out
    assert out.rstrip().endswith("3")


def test_cli_without_credentials_is_a_usage_error(monkeypatch, capsys):
    monkeypatch.delenv("FEEDBACK_S3_ACCESS_KEY", raising=False)
    monkeypatch.delenv("FEEDBACK_S3_SECRET_KEY", raising=False)
    with pytest.raises(SystemExit) as exit_:
        fd.main(["--endpoint", "127.0.0.1:1", "--bucket", "b", "--list"])
    assert exit_.value.code == 2
    assert "FEEDBACK_S3_ACCESS_KEY" in capsys.readouterr().err


def test_a_mirror_loads_with_hugging_face_audiofolder(filled, tmp_path):
    datasets = pytest.importorskip("datasets", reason="Hugging Face datasets is optional (heavy); see the doc")
    # datasets < 4 decodes audio with soundfile + librosa; from 4.0 with torchcodec (needed even to build)
    for module in ("torchcodec",) if int(datasets.__version__.split(".")[0]) >= 4 else ("soundfile", "librosa"):
        pytest.importorskip(module, reason=f"datasets {datasets.__version__} needs {module} for audio; see the doc")
    bucket, live, _ = filled
    fd.export_audiofolder(bucket.loader(), tmp_path)
    ds = datasets.load_dataset("audiofolder", data_dir=str(tmp_path), split="train")
    assert sorted(ds["sample_id"]) == sorted(m.sample_id for m in live.values())
    for row in ds:  # the audio column decodes the mirrored FLAC at its length
        assert row["audio"]["sampling_rate"] == RATE
        assert abs(len(row["audio"]["array"]) / RATE - row["duration_s"]) < 0.01

"""Read the model partner's feedback bucket as a training dataset (layout: ``docs/feedback-dataset.md``).

    FEEDBACK_S3_ACCESS_KEY=… FEEDBACK_S3_SECRET_KEY=… \\
        python models/audio_events/feedback_data.py --endpoint s3.example:9000 --bucket feedback --list
    … --mirror DIR     # a local Hugging Face "audiofolder": DIR/metadata.jsonl + DIR/samples/<YYYY-MM>/<id>.flac

What it guarantees to its caller: every retraction in ``retractions/`` is applied (a retracted sample is never
yielded, never written to a mirror's ``metadata.jsonl``, and its file is deleted from a mirror), and every sample's
JSON holds exactly the allow-listed keys with well-formed values; anything else is skipped with a warning
(defence in depth: the hub's anonymiser is the first line, this is the second). A retraction that cannot be read
stops the load: silently ignoring one would put withdrawn audio into training.

Standalone on purpose (minio, PyAV, numpy; no ``edge_media`` import): the ML team runs it away from any hub.
"""
from __future__ import annotations

import argparse
import functools
import io
import json
import os
import re
import sys
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from minio import Minio
from minio.error import S3Error

HERE = Path(__file__).resolve().parent
MANIFEST = HERE.parent / "manifest.json"
SAMPLE_RATE = 16000
# The sample JSON's keys, exactly: edge_media.privacy.anonymise.ALLOWED_KEYS (a test keeps the two equal).
ALLOWED_KEYS = frozenset({"sample_id", "purpose", "predicted", "score", "corrected", "model_name",
                          "model_version", "duration_s", "sample_rate", "recipe", "month"})
PURPOSES = ("misdetection-feedback", "product-improvement")
MISSED, NOTHING = "missed", "nothing"
_MONTH = re.compile(r"(19|20)\d\d-(0[1-9]|1[0-2])")
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,39}")
_SAMPLE_KEY = re.compile(r"samples/((?:19|20)\d\d-(?:0[1-9]|1[0-2]))/([0-9a-f-]{36})\.(json|flac)")


class FeedbackDataError(Exception):
    """The bucket cannot be loaded safely (e.g. an unreadable retraction); the message is one line."""


class SampleRejected(ValueError):
    """One sample's JSON is outside the allow-list or malformed: it is skipped, never loaded."""


def model_labels(manifest: Path = MANIFEST) -> tuple[str, ...]:
    """The audio model's labels (``models/manifest.json``): the only predicted/corrected labels besides
    ``missed`` (predicted) and ``nothing`` (corrected)."""
    return tuple(json.loads(manifest.read_text())["models"]["audio_events"]["labels"])


@dataclass(frozen=True)
class FeedbackSample:
    """One non-retracted, validated sample; ``load()`` fetches and decodes its FLAC."""

    sample_id: str
    purpose: str
    predicted: str | None
    score: float | None
    corrected: str | None
    model_name: str
    model_version: str
    duration_s: float
    sample_rate: int
    recipe: str
    month: str
    _fetch: Callable[[], bytes] = field(repr=False, compare=False)

    @property
    def file_name(self) -> str:
        """The FLAC's key, relative to the bucket root (and to a mirror's root)."""
        return f"samples/{self.month}/{self.sample_id}.flac"

    @property
    def label(self) -> str | None:
        """The training label: the owner's correction (``nothing`` → ``background``); None when unlabelled
        (product-improvement audio nobody flagged)."""
        if self.corrected is None:
            return None
        return "background" if self.corrected == NOTHING else self.corrected

    def meta(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in sorted(ALLOWED_KEYS)}

    def flac(self) -> bytes:
        return self._fetch()

    def load(self) -> np.ndarray:
        """The audio as float32 mono at ``SAMPLE_RATE``."""
        return decode_flac(self._fetch())


def validate_meta(meta: object, labels: Iterable[str]) -> dict[str, object]:
    """``meta`` if it is exactly an allow-listed sample JSON, else ``SampleRejected`` naming the problem."""
    if not isinstance(meta, dict):
        raise SampleRejected("not a JSON object")
    extra, missing = set(meta) - ALLOWED_KEYS, ALLOWED_KEYS - set(meta)
    if extra or missing:
        raise SampleRejected(f"keys outside the allow-list {sorted(extra)} / missing {sorted(missing)}")
    known = set(labels)
    try:
        if str(uuid.UUID(str(meta["sample_id"]))) != meta["sample_id"]:
            raise ValueError
    except ValueError:
        raise SampleRejected(f"sample_id {meta['sample_id']!r} is not a canonical uuid") from None
    checks = {
        "purpose": meta["purpose"] in PURPOSES,
        "predicted": meta["predicted"] is None or meta["predicted"] in known | {MISSED},
        "corrected": meta["corrected"] is None or meta["corrected"] in known | {NOTHING},
        "score": meta["score"] is None or (_number(meta["score"]) and 0.0 <= meta["score"] <= 1.0),
        "duration_s": _number(meta["duration_s"]) and 0.0 < meta["duration_s"] <= 600.0,
        "sample_rate": meta["sample_rate"] == SAMPLE_RATE,
        "month": isinstance(meta["month"], str) and _MONTH.fullmatch(meta["month"]) is not None,
        **{k: isinstance(meta[k], str) and _TOKEN.fullmatch(meta[k]) is not None
           for k in ("model_name", "model_version", "recipe")},
    }
    bad = [k for k, ok in checks.items() if not ok]
    if bad:
        raise SampleRejected(", ".join(f"{k}={meta[k]!r}" for k in bad) + " not allowed")
    if meta["purpose"] == PURPOSES[0] and (meta["predicted"] is None or meta["corrected"] is None):
        raise SampleRejected("misdetection feedback without its predicted and corrected labels")
    return meta


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value)


def decode_flac(data: bytes) -> np.ndarray:
    """FLAC bytes → float32 mono at ``SAMPLE_RATE`` (PyAV, a runtime dependency of edge-media already)."""
    import av

    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    chunks = []
    with av.open(io.BytesIO(data), mode="r", format="flac") as container:
        for frame in container.decode(audio=0):
            chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)


class FeedbackBucket:
    """The feedback bucket through a minio client: retractions, samples, manifests."""

    def __init__(self, client: Minio, bucket: str, *, labels: Iterable[str] | None = None) -> None:
        self.client, self.bucket = client, bucket
        self.labels = tuple(labels) if labels is not None else model_labels()

    @classmethod
    def connect(cls, endpoint: str, bucket: str, *, access_key: str, secret_key: str, secure: bool = True,
                region: str | None = None) -> FeedbackBucket:
        return cls(Minio(endpoint, access_key, secret_key, secure=secure, region=region), bucket)

    def _get(self, key: str) -> bytes:
        response = self.client.get_object(self.bucket, key)
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def _keys(self, prefix: str) -> list[str]:
        return sorted(o.object_name for o in self.client.list_objects(self.bucket, prefix=prefix, recursive=True))

    def retracted_ids(self) -> set[str]:
        """Every sample id listed by a retraction. Fails closed: an unreadable retraction is an error."""
        ids: set[str] = set()
        for key in self._keys("retractions/"):
            try:
                doc = json.loads(self._get(key))
                listed = doc["sample_ids"]
                if not isinstance(listed, list) or not all(isinstance(i, str) for i in listed):
                    raise TypeError("sample_ids is not a list of strings")
            except (ValueError, KeyError, TypeError) as exc:
                raise FeedbackDataError(f"retraction {key} is unreadable ({exc}); refusing to load without it") \
                    from exc
            ids.update(listed)
        return ids

    def manifest_lines(self) -> Iterator[dict[str, object]]:
        """The valid lines of every batch manifest (``manifests/*.jsonl``), once per sample id (a sender that
        crashed mid-batch may list a sample again in its next manifest); others are skipped with a warning."""
        seen: set[str] = set()
        for key in self._keys("manifests/"):
            for n, line in enumerate(self._get(key).decode().splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    doc = json.loads(line)
                    name = doc.pop("file_name", None) if isinstance(doc, dict) else None
                    meta = validate_meta(doc, self.labels)
                    if name != f"samples/{meta['month']}/{meta['sample_id']}.flac":
                        raise SampleRejected(f"file_name {name!r} does not match the sample")
                except (SampleRejected, ValueError) as exc:
                    warnings.warn(f"skipped {key} line {n}: {exc}", stacklevel=2)
                    continue
                if meta["sample_id"] not in seen:
                    seen.add(str(meta["sample_id"]))
                    yield {"file_name": name, **meta}

    def samples(self) -> Iterator[FeedbackSample]:
        """Every valid, non-retracted sample with its audio present, in key order."""
        retracted = self.retracted_ids()
        keys = self._keys("samples/")
        present = set(keys)
        for key in keys:
            match = _SAMPLE_KEY.fullmatch(key)
            if not match or match[3] != "json" or match[2] in retracted:
                continue
            flac = key.removesuffix(".json") + ".flac"
            try:
                meta = validate_meta(json.loads(self._get(key)), self.labels)
                if (meta["month"], meta["sample_id"]) != (match[1], match[2]):
                    raise SampleRejected("its key does not match its month / sample_id")
                if flac not in present:
                    raise SampleRejected("its FLAC is missing")
            except (SampleRejected, ValueError) as exc:
                warnings.warn(f"skipped {key}: {exc}", stacklevel=2)
                continue
            yield FeedbackSample(**meta, _fetch=functools.partial(self._get, flac))  # type: ignore[arg-type]


def training_data(samples: Iterable[FeedbackSample]) -> tuple[list[np.ndarray], list[str]]:
    """(waveforms, labels) of the labelled samples, for ``train.py`` (unlabelled ones are left out)."""
    waves, labels = [], []
    for sample in samples:
        if sample.label is not None:
            waves.append(sample.load())
            labels.append(sample.label)
    return waves, labels


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


def export_audiofolder(bucket: FeedbackBucket, root: Path) -> list[FeedbackSample]:
    """Mirror the bucket into ``root`` as a Hugging Face audiofolder; returns the samples written.

    Downloads missing FLACs (an existing file of the same size is kept: mirrors are incremental), deletes the
    files of retracted samples, then writes ``metadata.jsonl`` (one line per sample, ``file_name`` relative to
    ``root``) last, atomically: a reader never sees a line whose file is not there.
    """
    retracted = bucket.retracted_ids()
    for sid in retracted:
        for stale in root.glob(f"samples/*/{sid}.flac"):
            stale.unlink()
    samples = [s for s in bucket.samples() if s.sample_id not in retracted]
    for sample in samples:
        path = root / sample.file_name
        if not path.exists():
            _write_atomic(path, sample.flac())
    lines = [json.dumps({"file_name": s.file_name, **s.meta()}, sort_keys=True) for s in samples]
    _write_atomic(root / "metadata.jsonl", "".join(line + "\n" for line in lines).encode())
    return samples


def _parse(argv: list[str] | None) -> argparse.Namespace:
    env = os.environ.get
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--endpoint", default=env("FEEDBACK_S3_ENDPOINT"), help="host:port (env FEEDBACK_S3_ENDPOINT)")
    p.add_argument("--bucket", default=env("FEEDBACK_S3_BUCKET"), help="bucket (env FEEDBACK_S3_BUCKET)")
    p.add_argument("--insecure", action="store_true", help="plain HTTP (a local MinIO / moto)")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--list", action="store_true", help="print the sample count per purpose and label")
    mode.add_argument("--mirror", type=Path, metavar="DIR", help="write a local audiofolder into DIR")
    args = p.parse_args(argv)
    # credentials only from the environment: a command line is visible to every user in ps
    args.access_key, args.secret_key = env("FEEDBACK_S3_ACCESS_KEY"), env("FEEDBACK_S3_SECRET_KEY")
    missing = [n for n, v in (("--endpoint", args.endpoint), ("--bucket", args.bucket),
                              ("FEEDBACK_S3_ACCESS_KEY", args.access_key),
                              ("FEEDBACK_S3_SECRET_KEY", args.secret_key)) if not v]
    if missing:
        p.error(f"missing {', '.join(missing)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    bucket = FeedbackBucket.connect(args.endpoint, args.bucket, access_key=args.access_key,
                                    secret_key=args.secret_key, secure=not args.insecure)
    try:
        if args.mirror:
            samples = export_audiofolder(bucket, args.mirror)
            print(f"{len(samples)} samples in {args.mirror / 'metadata.jsonl'}")
        else:
            counts = Counter((s.purpose, s.label or "(unlabelled)") for s in bucket.samples())
            for (purpose, label), n in sorted(counts.items()):
                print(f"{purpose:24} {label:16} {n}")
            print(f"{'total':41} {sum(counts.values())}")
    except (FeedbackDataError, S3Error) as exc:
        print(f"feedback_data: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

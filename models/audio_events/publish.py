"""Sign and publish audio-model releases; move a release's rollout; make a signing key.

    python models/audio_events/publish.py keygen --out keys/            # keys/release-signing.pem (0600) + public key
    python models/audio_events/publish.py publish --model M.onnx --manifest M.release.json --key K.pem --dir D
    python models/audio_events/publish.py rollout --version 1.2.1 --percent 25 --key K.pem --endpoint H:P --bucket B

``publish`` takes a model and an UNSIGNED release manifest (``retrain.py`` writes both), checks that the manifest
names the model's sha256 and size, stamps the key id and signs the manifest's exact bytes. It uploads the model
first, then the signature, then the manifest, so a hub that finds the manifest also finds the rest. ``rollout``
rewrites one field, ``rollout_percent``, and signs again: a fleet moves 5 % -> 25 % -> 100 % with it.
The private key stays with the ML team (a hub holds only the public key, in ``[models] public_keys``).
S3 credentials come from the environment only (``MODELS_S3_ACCESS_KEY``, ``MODELS_S3_SECRET_KEY``).
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from minio import Minio

from edge_media.privacy.feedback import write_atomic
from edge_media.rollout.release import (
    MANIFEST_FILE,
    SIGNATURE_FILE,
    ReleaseManifest,
    key_id,
    model_file_name,
    private_key_from_bytes,
    public_key_text,
    release_prefix,
    sign,
)


class Target(Protocol):
    def put(self, key: str, data: bytes) -> None: ...
    def get(self, key: str) -> bytes: ...


class DirTarget:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def put(self, key: str, data: bytes) -> None:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, data)  # a hub reading the share never sees half a file

    def get(self, key: str) -> bytes:
        return (self.root / key).read_bytes()


class S3Target:
    def __init__(self, client: Minio, bucket: str) -> None:
        self.client, self.bucket = client, bucket
        if not client.bucket_exists(bucket):
            client.make_bucket(bucket)

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(self.bucket, key, io.BytesIO(data), len(data))

    def get(self, key: str) -> bytes:
        response = self.client.get_object(self.bucket, key)
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()


def new_key(out_dir: Path) -> tuple[Path, str]:
    """A new Ed25519 signing key as ``out_dir/release-signing.pem`` (mode 0600); returns (path, public key)."""
    key = Ed25519PrivateKey.generate()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "release-signing.pem"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    return path, public_key_text(key.public_key())


def publish(target: Target, prefix: str, model: bytes, manifest: ReleaseManifest, key: Ed25519PrivateKey) -> bytes:
    """Sign ``manifest`` (its key id stamped here) and publish it with ``model``; returns the signed bytes."""
    sha = hashlib.sha256(model).hexdigest()
    if (manifest.sha256, manifest.size) != (sha, len(model)):
        raise ValueError(f"the manifest names sha256 {manifest.sha256[:16]}… / {manifest.size} bytes, the model is "
                         f"{sha[:16]}… / {len(model)} bytes")
    if manifest.file != model_file_name(manifest.name, manifest.version):
        raise ValueError(f"the manifest's file is {manifest.file!r}, expected "
                         f"{model_file_name(manifest.name, manifest.version)!r}")
    signed = manifest.model_copy(update={"key_id": key_id(key.public_key())}).to_bytes()
    base = release_prefix(prefix, manifest.name, manifest.version)
    target.put(base + manifest.file, model)
    target.put(base + SIGNATURE_FILE, sign(signed, key))
    target.put(base + MANIFEST_FILE, signed)
    return signed


def set_rollout(target: Target, prefix: str, name: str, version: str, percent: float,
                key: Ed25519PrivateKey) -> ReleaseManifest:
    """Re-sign a published release with a new ``rollout_percent``; nothing else changes."""
    if not 0 <= percent <= 100:
        raise ValueError(f"--percent must be within 0..100, got {percent}")
    base = release_prefix(prefix, name, version)
    manifest = ReleaseManifest.model_validate_json(target.get(base + MANIFEST_FILE))
    updated = manifest.model_copy(update={"rollout_percent": float(percent), "key_id": key_id(key.public_key())})
    signed = updated.to_bytes()
    ReleaseManifest.model_validate_json(signed)  # the edit must still be a valid manifest
    target.put(base + SIGNATURE_FILE, sign(signed, key))
    target.put(base + MANIFEST_FILE, signed)
    return updated


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _target(args: argparse.Namespace) -> Target:
    if args.dir:
        return DirTarget(args.dir)
    access, secret = os.environ.get("MODELS_S3_ACCESS_KEY"), os.environ.get("MODELS_S3_SECRET_KEY")
    if not (args.endpoint and args.bucket and access and secret):
        sys.exit("publish: give --dir, or --endpoint and --bucket with MODELS_S3_ACCESS_KEY / MODELS_S3_SECRET_KEY set")
    return S3Target(Minio(args.endpoint, access, secret, secure=not args.insecure), args.bucket)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    kg = sub.add_parser("keygen", help="make a signing key; print the public key for hubs' [models] public_keys")
    kg.add_argument("--out", type=Path, required=True)
    for name in ("publish", "rollout"):
        p = sub.add_parser(name)
        p.add_argument("--key", type=Path, required=True, help="the PEM private key")
        p.add_argument("--dir", type=Path, help="publish into this directory")
        p.add_argument("--endpoint", help="S3 host:port")
        p.add_argument("--bucket", help="models bucket")
        p.add_argument("--insecure", action="store_true", help="plain HTTP (a local MinIO / moto)")
        p.add_argument("--prefix", default="releases")
        if name == "publish":
            p.add_argument("--model", type=Path, required=True)
            p.add_argument("--manifest", type=Path, required=True, help="the unsigned release manifest (JSON)")
        else:
            p.add_argument("--name", default="audio_events")
            p.add_argument("--version", required=True)
            p.add_argument("--percent", type=float, required=True)
    args = ap.parse_args(argv)
    if args.command == "keygen":
        path, public = new_key(args.out)
        print(f"wrote {path} (keep it off hubs)\npublic key for [models] public_keys:\n{public}")
        return 0
    try:
        key = private_key_from_bytes(args.key.read_bytes())
    except (OSError, ValueError, TypeError) as exc:
        ap.error(f"--key {args.key}: not a readable unencrypted Ed25519 PEM private key ({exc})")
    target = _target(args)
    if args.command == "publish":
        manifest = ReleaseManifest.model_validate(json.loads(args.manifest.read_text()))
        publish(target, args.prefix, args.model.read_bytes(), manifest, key)
        print(f"published {manifest.name} {manifest.version} at {manifest.rollout_percent:g} % rollout")
    else:
        updated = set_rollout(target, args.prefix, args.name, args.version, args.percent, key)
        print(f"{args.name} {args.version}: rollout {updated.rollout_percent:g} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())

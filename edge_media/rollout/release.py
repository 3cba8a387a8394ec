"""A model release: its signed manifest, the signature check, and who is in its rollout cohort.

Layout of a release in a models bucket or directory (``<prefix>`` is configurable)::

    <prefix>/<name>/<version>/manifest.json        the release manifest (this module's ReleaseManifest)
    <prefix>/<name>/<version>/manifest.json.sig    base64 Ed25519 signature over manifest.json's exact bytes
    <prefix>/<name>/<version>/<name>-<version>.onnx the model; its sha256 and size are in the manifest

Signing covers the manifest's bytes as published, and the manifest names the ONNX file's sha256: one
signature check plus one hash check bind every byte a hub loads to the ML team's key. The hub checks the
signature before it parses the manifest or downloads the model, and holds only public keys.

Ed25519 through ``cryptography`` (not the ``model-signing`` package): the signature must also cover
fields that change after training (``rollout_percent``) and the gate's figures, i.e. our manifest rather
than a directory digest; ``cryptography`` is already in every hub's environment, small and audited, where
``model-signing`` would add the sigstore stack for one key-based signature.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import EdgeMediaError

MANIFEST_FILE = "manifest.json"
SIGNATURE_FILE = "manifest.json.sig"
MAX_MANIFEST_BYTES = 1 << 20
MAX_MODEL_BYTES = 256 << 20  # far above any audio model a hub runs; a bound on what a download may fill
FORMAT: Literal[1] = 1
_VERSION = re.compile(r"^(0|[1-9]\d{0,5})\.(0|[1-9]\d{0,5})\.(0|[1-9]\d{0,5})$")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class ReleaseError(EdgeMediaError):
    """A release cannot be used: unsigned, badly signed, malformed, tampered or incompatible. The message
    names the release and the reason in one line."""


def parse_version(version: str) -> tuple[int, int, int]:
    """``"1.2.10"`` -> (1, 2, 10); a ReleaseError for anything that is not MAJOR.MINOR.PATCH."""
    match = _VERSION.fullmatch(version)
    if match is None:
        raise ReleaseError(f"{version!r} is not a release version (MAJOR.MINOR.PATCH)")
    return int(match[1]), int(match[2]), int(match[3])


def is_version(version: str) -> bool:
    return _VERSION.fullmatch(version) is not None


class ReleaseManifest(BaseModel):
    """What the ML team signs. The runtime fields (labels ... opset) are those of ``models/manifest.json``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal[1] = FORMAT
    name: str = Field(pattern=_NAME.pattern)
    version: str = Field(pattern=_VERSION.pattern)
    parent_version: str | None = None
    file: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(gt=0, le=MAX_MODEL_BYTES)
    rollout_percent: float = Field(ge=0, le=100)
    created: str  # ISO 8601 UTC
    key_id: str  # fingerprint of the public key that signs it (key rotation: hubs may trust several)
    # runtime entry
    kind: str = "audio_events"
    labels: list[str] = Field(min_length=1)
    product_labels: list[str]
    sample_rate: int = Field(gt=0)
    window_samples: int = Field(gt=0)
    input: str
    output: str
    activation: str = "sigmoid"
    opset: int = 17
    thresholds: dict[str, float]
    min_duration_s: dict[str, float] = Field(default_factory=dict)
    # provenance: the release gate's verdict and figures, what it was trained on
    gate: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    training_data: dict[str, Any] = Field(default_factory=dict)

    @field_validator("file")
    @classmethod
    def _plain_file(cls, value: str) -> str:
        if "/" in value or "\\" in value or value.startswith(".") or not value.endswith(".onnx"):
            raise ValueError(f"must be a plain .onnx file name, got {value!r}")
        return value

    def check_identity(self, name: str, version: str) -> None:
        """The manifest must describe the release it was found under (no replaying 1.0.0 as 2.0.0)."""
        expected = model_file_name(name, version)
        if (self.name, self.version, self.file) != (name, version, expected):
            raise ReleaseError(f"release {name} {version}: its manifest describes {self.name} {self.version} "
                               f"({self.file}), not {expected}")
        missing = [x for x in self.product_labels if x not in self.labels]
        if missing:
            raise ReleaseError(f"release {name} {version}: product labels {missing} are not among its labels")

    def runtime_entry(self) -> dict[str, Any]:
        """The ``models/manifest.json`` entry the runtime loads (:meth:`AudioEventModel.from_manifest`)."""
        return {"file": self.file, "version": self.version, "sha256": self.sha256, "kind": self.kind,
                "labels": self.labels, "product_labels": self.product_labels, "sample_rate": self.sample_rate,
                "window_samples": self.window_samples, "input": self.input, "output": self.output,
                "activation": self.activation, "opset": self.opset, "thresholds": self.thresholds,
                "min_duration_s": self.min_duration_s}

    def to_bytes(self) -> bytes:
        return (json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True) + "\n").encode()


def model_file_name(name: str, version: str) -> str:
    return f"{name}-{version}.onnx"


def release_prefix(prefix: str, name: str, version: str | None = None) -> str:
    """``<prefix>/<name>/`` or ``<prefix>/<name>/<version>/`` (an empty prefix adds nothing)."""
    parts = [p for p in (prefix.strip("/"), name, version) if p]
    return "/".join(parts) + "/"


# -- keys and signatures ---------------------------------------------------------------------------

def key_id(public: Ed25519PublicKey) -> str:
    return hashlib.sha256(public_key_text(public).encode()).hexdigest()[:16]


def public_key_text(public: Ed25519PublicKey) -> str:
    """The raw 32-byte key, base64: what a hub's config holds (``[models] public_keys``)."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return base64.b64encode(public.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def load_public_key(text: str) -> Ed25519PublicKey:
    """A base64 raw Ed25519 public key (44 characters); ValueError naming the problem."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not base64") from None
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 public key is 32 bytes, this is {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def private_key_from_bytes(data: bytes) -> Ed25519PrivateKey:
    """A PEM (PKCS#8) Ed25519 private key, unencrypted."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(data, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("not an Ed25519 private key")
    return key


def sign(manifest_bytes: bytes, private: Ed25519PrivateKey) -> bytes:
    """The ``manifest.json.sig`` content for these exact manifest bytes."""
    return base64.b64encode(private.sign(manifest_bytes)) + b"\n"


def verify_manifest(manifest_bytes: bytes, signature: bytes | None, keys: list[Ed25519PublicKey], *,
                    name: str, version: str) -> ReleaseManifest:
    """The manifest, only if one of ``keys`` signed exactly these bytes and it describes ``name`` ``version``."""
    what = f"release {name} {version}"
    if not keys:
        raise ReleaseError(f"{what}: no public key is configured ([models] public_keys); refusing unsigned trust")
    if signature is None or not signature.strip():
        raise ReleaseError(f"{what} is unsigned (no {SIGNATURE_FILE}); refused")
    try:
        raw = base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ReleaseError(f"{what}: {SIGNATURE_FILE} is not base64; refused") from None
    if len(manifest_bytes) > MAX_MANIFEST_BYTES:
        raise ReleaseError(f"{what}: manifest of {len(manifest_bytes)} bytes is too large; refused")
    if not any(_verifies(key, raw, manifest_bytes) for key in keys):
        raise ReleaseError(f"{what}: the signature does not verify with any configured public key; refused")
    try:
        manifest = ReleaseManifest.model_validate_json(manifest_bytes)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ReleaseError(f"{what}: signed manifest is malformed ({where}: {first['msg']})") from None
    manifest.check_identity(name, version)
    return manifest


def _verifies(key: Ed25519PublicKey, signature: bytes, data: bytes) -> bool:
    try:
        key.verify(signature, data)
    except InvalidSignature:
        return False
    return True


# -- staged rollout ----------------------------------------------------------------------------------

def cohort_position(secret: bytes, name: str, version: str) -> float:
    """This hub's place in [0, 100) for one release, from its install secret: stable for the release, so a
    hub inside 5 % stays inside at 25 %, and unrelated between releases (not always the same early hubs)."""
    digest = hmac.new(secret, f"rollout|{name}|{version}".encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100.0


def in_cohort(secret: bytes, manifest: ReleaseManifest) -> bool:
    return cohort_position(secret, manifest.name, manifest.version) < manifest.rollout_percent

"""Per-install secret and the pseudonymous camera id used in object keys and tags.

Object keys and tags leave the hub, so they carry an HMAC of the camera name under a secret
that never leaves it: stable for one install, meaningless to anyone else.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path


def load_or_create_secret(data_dir: Path) -> bytes:
    path = Path(data_dir) / "install.secret"
    if path.exists():
        return bytes.fromhex(path.read_text().strip())
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key.hex())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return key


def camera_hash(secret: bytes, camera: str) -> str:
    return hmac.new(secret, camera.encode(), hashlib.sha256).hexdigest()[:16]

"""Signed clip links served by the API itself (the local store, and clips still in the spool).

``/api/v1/media/{clip_id}?u=<user>&exp=<epoch>&sig=<hex>``: ``sig`` is HMAC-SHA256 over clip id, user and
expiry under a key derived from the hub's install secret (never the secret itself, so a link key can never
be turned back into the camera-hash key). A link is per clip, per user and short-lived; on use it is checked
again against the user's current state (revoked, or no longer allowed the camera: 403).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote, urlencode

_KEY_LABEL = b"edge-media api clip links v1"


@dataclass(frozen=True)
class ClipLink:
    url: str
    expires_at: float  # epoch seconds


class LinkSigner:
    def __init__(self, secret: bytes, *, base_url: str = "", clock: Callable[[], float] = time.time) -> None:
        self._key = hmac.new(secret, _KEY_LABEL, hashlib.sha256).digest()
        self.base_url, self.clock = base_url.rstrip("/"), clock

    def sign(self, clip_id: str, user: str, exp: int) -> str:
        msg = f"{clip_id}\n{user}\n{exp}".encode()
        return hmac.new(self._key, msg, hashlib.sha256).hexdigest()

    def link(self, clip_id: str, user: str, ttl_s: int) -> ClipLink:
        exp = int(self.clock()) + ttl_s
        query = urlencode({"u": user, "exp": exp, "sig": self.sign(clip_id, user, exp)})
        return ClipLink(f"{self.base_url}/api/v1/media/{quote(clip_id, safe='')}?{query}", float(exp))

    def valid(self, clip_id: str, user: str, exp: int, sig: str) -> bool:
        """Signature matches and the link has not expired (the user's standing is checked by the caller)."""
        good = hmac.compare_digest(self.sign(clip_id, user, exp).encode(), sig.encode("utf-8", "replace"))
        return good and exp >= self.clock()

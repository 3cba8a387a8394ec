"""API tokens: 32 random bytes, urlsafe base64; stored as their sha256.

A token with 256 bits of entropy cannot be guessed or brute-forced from its hash, so a fast hash is enough
(a slow KDF protects low-entropy passwords, which these are not) and keeps every request cheap.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

TOKEN_BYTES = 32


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def same_hash(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())

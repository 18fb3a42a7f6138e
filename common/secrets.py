"""Secrets (API tokens, enrollment tokens, device credentials): minted random, stored hashed.

Tokens carry 256 random bits, so a fast keyed-free SHA-256 is the right hash: there is nothing
to brute-force, and lookups by hash stay indexable. Comparison is constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

PREFIXES = {"api": "cvy_api_", "enroll": "cvy_enr_", "device": "cvy_dev_"}


def mint(kind: str) -> str:
    return PREFIXES[kind] + secrets.token_urlsafe(32)


def hash_secret(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def matches(token: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(token), stored_hash)

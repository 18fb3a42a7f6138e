"""Secret script parameters in a job payload (docs/payloads.md, "Secret parameters").

A parameter its script's schema marks `"secret": true` travels to the agent as
`{"$secret": COMMITMENT, "value": "the plaintext"}`. Everything that is not the agent sees at most
`{"$secret": COMMITMENT}` (its *public form*): the manifest an operator signs, the API. The job
digest (common/signing.py) covers the public form, so an operator signs a payload whose secret
values they cannot read, and the commitment binds those values: an agent running signed work checks
that each value matches its commitment, so a coordinator cannot swap a secret under a signature.

COMMITMENT is `pbkdf2-sha256$<rounds>$<salt b64>$<hash b64>`: salted and stretched, so the value
cannot be read back from it (a weak secret could still be guessed offline by someone who can read
manifests: use strong secrets).
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from typing import Any

MARK = "$secret"
ROUNDS = 100_000


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def commit(value: str, *, salt: bytes | None = None, rounds: int = ROUNDS) -> str:
    import hashlib  # OpenSSL's libcrypto (~4 MB of RSS): not in the idle agent, only for a job

    salt = salt if salt is not None else os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", value.encode("utf-8", "surrogatepass"), salt, rounds)
    return f"pbkdf2-sha256${rounds}${_b64(salt)}${_b64(digest)}"


def matches(value: str, commitment: str) -> bool:
    import hashlib  # (see commit)
    import hmac

    try:
        scheme, rounds, salt, digest = commitment.split("$")
        if scheme != "pbkdf2-sha256" or not 1 <= int(rounds) <= 10_000_000:
            return False
        expected = base64.b64decode(digest, validate=True)
        got = hashlib.pbkdf2_hmac("sha256", value.encode("utf-8", "surrogatepass"), base64.b64decode(salt), int(rounds))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


def is_secret(value: Any) -> bool:
    return isinstance(value, Mapping) and isinstance(value.get(MARK), str)


def public_form(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The payload with each secret parameter reduced to its commitment (what the digest covers)."""
    params = payload.get("parameters")
    if not isinstance(params, Mapping) or not any(is_secret(v) for v in params.values()):
        return dict(payload)
    return {**payload, "parameters": {k: {MARK: v[MARK]} if is_secret(v) else v for k, v in params.items()}}


def plain(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters as a script receives them: each secret's value (None if none was delivered)."""
    return {k: v.get("value") if is_secret(v) else v for k, v in parameters.items()}


def mismatch(payload: Mapping[str, Any]) -> str | None:
    """Why a delivered payload's secrets do not match their commitments (None: they all do)."""
    params = payload.get("parameters")
    if not isinstance(params, Mapping):
        return None
    for name, v in params.items():
        if is_secret(v) and not (isinstance(v.get("value"), str) and matches(v["value"], v[MARK])):
            return f"secret parameter {name!r} does not match its signed commitment"
    return None

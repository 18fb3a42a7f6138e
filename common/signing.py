"""Signed work: the manifest of a deployment, its canonical encoding, Ed25519 keys and checks.

Shared by the CLI (which signs), the coordinator (which checks a signature against a client's
registered signers before storing it) and the agent (which trusts only its pinned keys). The
module imports nothing heavy: `cryptography` and `hashlib` (OpenSSL's libcrypto) are imported
inside the functions that need them, so an idle agent never loads them.

A manifest (docs/security.md, "Signed work") is a small JSON object:

    {"v": 1, "deploymentId", "clientId", "type", "digest": "sha256:<hex>", "rollback": bool,
     "expiresAt": "2026-12-09T03:00:00Z"}

`digest` is the SHA-256 of the canonical encoding of the job payload agents receive: the
script's interpreter, body and parameters; the artifact's sha256 (which the agent checks the
downloaded bytes against); the patch list; or the policy document. What is signed is
`SIGNING_CONTEXT + canonical(manifest)`, so a signature over a manifest can never be replayed as
a signature over a trust-set document (`TRUST_SET_CONTEXT`), or the other way round.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from common import secret_params

MANIFEST_VERSION = 1
SIGNING_CONTEXT = b"convoy-manifest-v1\n"
TRUST_SET_CONTEXT = b"convoy-trust-set-v1\n"
KEY_PREFIX = "ed25519:"
MAX_TRUSTED_KEYS = 64
SIGNATURE_REASON = "signature"
"""The failure reason an agent reports for a job that fails verification."""

_MANIFEST_KEYS = frozenset({"v", "deploymentId", "clientId", "type", "digest", "rollback", "expiresAt"})


class SigningError(ValueError):
    """A key, manifest or signature that cannot be used; the message says why."""


# --- canonical encoding ----------------------------------------------------------------------


def _normalise(value: Any) -> Any:
    """JSON values with one spelling per number: a whole float is an integer (the job payload
    travels as a protobuf Struct, where every number is a double: 3 arrives as 3.0)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SigningError("a signed document cannot hold NaN or infinity")
        if value.is_integer() and abs(value) < 2 ** 53:
            return int(value)
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, Mapping):
        return {str(k): _normalise(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    raise SigningError(f"a signed document cannot hold a {type(value).__name__}")


def canonical(value: Any) -> bytes:
    """The one byte form of a JSON value: sorted keys, no whitespace, UTF-8, normalised numbers."""
    # surrogatepass: a lone surrogate (legal in JSON text, not in UTF-8) still has one encoding.
    return json.dumps(_normalise(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8", "surrogatepass")


def payload_digest(payload: Mapping[str, Any]) -> str:
    """`sha256:<hex>` of the canonical job payload, in its public form: a secret parameter counts
    by its commitment, never its value (common/secret_params.py)."""
    import hashlib  # OpenSSL's libcrypto, ~4 MB of RSS: only when a digest is computed

    return "sha256:" + hashlib.sha256(canonical(secret_params.public_form(payload))).hexdigest()


# --- the manifest ----------------------------------------------------------------------------


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(text: Any, field: str) -> datetime:
    if not isinstance(text, str):
        raise SigningError(f"manifest {field} must be a time string")
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise SigningError(f"manifest {field} {text!r} is not a time") from None
    if when.tzinfo is None:
        raise SigningError(f"manifest {field} {text!r} has no time zone")
    return when


@dataclass(frozen=True)
class Manifest:
    deployment_id: str
    """The deployment the work belongs to (for a rollback: the deployment it reverts)."""
    client_id: str
    type: str
    """script | software | patch | policy"""
    digest: str
    """`payload_digest` of the job payload."""
    rollback: bool
    expires_at: datetime
    """After this instant agents refuse the work, whatever the coordinator says."""

    def to_dict(self) -> dict[str, Any]:
        return {"v": MANIFEST_VERSION, "deploymentId": self.deployment_id, "clientId": self.client_id,
                "type": self.type, "digest": self.digest, "rollback": self.rollback,
                "expiresAt": _iso(self.expires_at)}

    def encode(self) -> bytes:
        return canonical(self.to_dict())

    @classmethod
    def parse(cls, raw: Any) -> Manifest:
        """A manifest from its JSON form (a dict, or the canonical text); strict."""
        if isinstance(raw, (bytes, str)):
            try:
                raw = json.loads(raw)
            except ValueError:
                raise SigningError("the manifest is not JSON") from None
        if not isinstance(raw, Mapping):
            raise SigningError("the manifest must be a JSON object")
        if set(raw) != _MANIFEST_KEYS:
            missing, extra = sorted(_MANIFEST_KEYS - set(raw)), sorted(set(raw) - _MANIFEST_KEYS)
            raise SigningError("the manifest's fields are wrong" + (f"; missing {missing}" if missing else "")
                               + (f"; unknown {extra}" if extra else ""))
        if raw["v"] != MANIFEST_VERSION:
            raise SigningError(f"manifest version {raw['v']!r} is not supported (want {MANIFEST_VERSION})")
        for key in ("deploymentId", "clientId", "type", "digest"):
            if not isinstance(raw[key], str) or not raw[key]:
                raise SigningError(f"manifest {key} must be a non-empty string")
        if not isinstance(raw["rollback"], bool):
            raise SigningError("manifest rollback must be true or false")
        return cls(deployment_id=raw["deploymentId"], client_id=raw["clientId"], type=raw["type"],
                   digest=raw["digest"], rollback=raw["rollback"], expires_at=_parse_time(raw["expiresAt"], "expiresAt"))


def mismatch(manifest: Manifest, *, deployment_id: str, client_id: str, type_: str, payload: Mapping[str, Any],
             rollback: bool, now: datetime) -> str | None:
    """Why `manifest` does not describe this job (None: it does). `deployment_id` is the job's
    deployment, or for a rollback the deployment it reverts."""
    if manifest.deployment_id != deployment_id:
        return f"the signed manifest is for deployment {manifest.deployment_id}, not {deployment_id}"
    if manifest.client_id != client_id:
        return f"the signed manifest is for client {manifest.client_id}, not {client_id}"
    if manifest.type != type_:
        return f"the signed manifest is for a {manifest.type} job, not {type_}"
    if manifest.rollback != rollback:
        return "the signed manifest's rollback flag does not match the job"
    if manifest.digest != payload_digest(payload):
        return "the job's payload does not match the signed digest"
    if manifest.expires_at <= now:
        return f"the signature expired at {_iso(manifest.expires_at)}"
    return None


# --- keys ------------------------------------------------------------------------------------


def key_id(raw_public: bytes) -> str:
    """A public key's id: the first 16 bytes of its SHA-256, in hex."""
    import hashlib

    return hashlib.sha256(raw_public).hexdigest()[:32]


def parse_public_key(text: str) -> bytes:
    """The 32 raw bytes of an `ed25519:<base64>` public key."""
    text = text.strip()
    if not text.startswith(KEY_PREFIX):
        raise SigningError(f"a public key must look like {KEY_PREFIX}<base64> (got {text[:20]!r}…)")
    try:
        raw = base64.b64decode(text[len(KEY_PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        raise SigningError("the public key is not valid base64") from None
    if len(raw) != 32:
        raise SigningError(f"an Ed25519 public key is 32 bytes, this one is {len(raw)}")
    return raw


def format_public_key(raw: bytes) -> str:
    return KEY_PREFIX + base64.b64encode(raw).decode()


def generate_private_key() -> tuple[bytes, str]:
    """A new Ed25519 key: (its PKCS#8 PEM, unencrypted, and its public key text)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return pem, format_public_key(raw)


@dataclass(frozen=True)
class Signer:
    """A private signing key loaded from its PEM file."""

    pem: bytes

    def _key(self) -> Any:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        try:
            key = serialization.load_pem_private_key(self.pem, password=None)
        except (ValueError, TypeError) as exc:
            raise SigningError(f"not an unencrypted PEM private key: {exc}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise SigningError("the signing key is not an Ed25519 key")
        return key

    @property
    def public_key(self) -> str:
        from cryptography.hazmat.primitives import serialization

        raw = self._key().public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return format_public_key(raw)

    @property
    def key_id(self) -> str:
        return key_id(parse_public_key(self.public_key))

    def sign(self, context: bytes, document: bytes) -> str:
        """The base64 signature of `context + document`."""
        return base64.b64encode(self._key().sign(context + document)).decode()


def verify(public_key: str, context: bytes, document: bytes, signature: str) -> bool:
    """True when `signature` (base64) is `public_key`'s signature of `context + document`."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        sig = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return False
    try:
        Ed25519PublicKey.from_public_bytes(parse_public_key(public_key)).verify(sig, context + document)
    except (InvalidSignature, ValueError):
        return False
    return True


def sign_manifest(signer: Signer, manifest: Manifest) -> dict[str, str]:
    """`{"keyId", "value", "manifest"}`: what `start` takes (the manifest as its canonical text)."""
    doc = manifest.encode()
    return {"keyId": signer.key_id, "value": signer.sign(SIGNING_CONTEXT, doc), "manifest": doc.decode("utf-8")}


# --- trust-set documents ---------------------------------------------------------------------


def trust_document(client_id: str, serial: int, keys: list[str]) -> bytes:
    """The canonical trust-set document: the whole new list of an agent's trusted keys."""
    return canonical({"v": MANIFEST_VERSION, "clientId": client_id, "serial": serial,
                      "keys": sorted({format_public_key(parse_public_key(k)) for k in keys})})


def check_trust_document(raw: Any, text: str) -> dict[str, Any]:
    """`raw` (parsed from `text`) as a trust-set document, or SigningError saying what is wrong."""
    if not isinstance(raw, dict) or set(raw) != {"v", "clientId", "serial", "keys"}:
        raise SigningError('a trust-set document is {"v", "clientId", "serial", "keys"}')
    if raw["v"] != MANIFEST_VERSION:
        raise SigningError(f"trust-set version {raw['v']!r} is not supported")
    if not isinstance(raw["clientId"], str) or not raw["clientId"]:
        raise SigningError("trust-set clientId must be a non-empty string")
    if isinstance(raw["serial"], bool) or not isinstance(raw["serial"], int) or raw["serial"] < 1:
        raise SigningError("trust-set serial must be a positive integer")
    keys = raw["keys"]
    if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
        raise SigningError("trust-set keys must be a non-empty list of ed25519:<base64> keys")
    if len(keys) > MAX_TRUSTED_KEYS:
        raise SigningError(f"a trust set holds at most {MAX_TRUSTED_KEYS} keys")
    for k in keys:
        parse_public_key(k)
    if canonical(raw).decode("utf-8") != text:
        raise SigningError("the trust-set document is not in canonical form")
    return dict(raw)


def now_utc() -> datetime:
    return datetime.now(UTC)

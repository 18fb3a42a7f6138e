"""The agent's trust set: the signer keys it runs work for (docs/security.md, "Signed work").

    <state-dir>/trust.json   {"v": 1, "clientId", "serial", "keys": ["ed25519:…", …]}  (0644)

Pinned at install (`convoy agent install --trust-key …`); changed afterwards only by a trust-set
document of a higher serial, for this client, signed by a key the set already holds (forwarded
by the coordinator in `Welcome`). With no trust.json the agent runs unsigned work as before.

`cryptography` is imported only when a signature is checked (common/signing.py), so an agent
without a trust set, or an idle one, never loads it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from agent.state import StateDir, atomic_write
from common import secret_params, signing

log = logging.getLogger("convoy.agent.trust")

FILE_NAME = "trust.json"


class TrustError(Exception):
    """A trust set or update that cannot be used; the message says why."""


def path_of(state: StateDir) -> Path:
    return state.root / FILE_NAME


@dataclass(frozen=True)
class TrustSet:
    client_id: str
    serial: int
    keys: tuple[str, ...]
    """`ed25519:<base64>` public keys."""

    @property
    def by_id(self) -> dict[str, str]:
        return {signing.key_id(signing.parse_public_key(k)): k for k in self.keys}

    def to_json(self) -> bytes:
        return json.dumps({"v": 1, "clientId": self.client_id, "serial": self.serial, "keys": list(self.keys)},
                          indent=1, sort_keys=True).encode()

    # --- jobs ----------------------------------------------------------------------------

    def check_job(self, *, deployment_id: str, type_: str, payload: dict[str, Any], rollback: bool,
                  manifest: str, key_id: str, signature: str, now: datetime) -> str | None:
        """Why this job must not run (None: it is signed by a trusted key and matches)."""
        if not manifest or not signature:
            return "the job carries no signature and this agent runs only signed work"
        public = self.by_id.get(key_id)
        if public is None:
            return f"the job is signed by key {key_id or '(none)'}, which this agent does not trust"
        if not signing.verify(public, signing.SIGNING_CONTEXT, manifest.encode("utf-8"), signature):
            return f"the signature does not verify with trusted key {key_id}"
        try:
            parsed = signing.Manifest.parse(manifest)
        except signing.SigningError as exc:
            return f"the signed manifest is unusable: {exc}"
        # A rollback's jobs belong to a new deployment; what the operator signed is "revert
        # deployment X with this payload", and X is inside the payload the digest covers.
        expected = str(payload.get("revertsDeploymentId") or "") if rollback else deployment_id
        return signing.mismatch(parsed, deployment_id=expected, client_id=self.client_id, type_=type_,
                                payload=payload, rollback=rollback, now=now) or secret_params.mismatch(payload)

    # --- updates -------------------------------------------------------------------------

    def updated(self, document: str, key_id: str, signature: str) -> TrustSet | None:
        """The set a signed update makes (None: it is not newer than this one). TrustError when
        it is not signed by a key of this set, or is for another client, or malformed."""
        try:
            serial = json.loads(document).get("serial")
        except (ValueError, AttributeError):
            serial = None
        if isinstance(serial, int) and serial <= self.serial:
            # Not newer (every connect after an update): nothing to verify, nothing to load.
            return None
        public = self.by_id.get(key_id)
        if public is None:
            raise TrustError(f"signed by key {key_id or '(none)'}, which this agent does not trust")
        if not signing.verify(public, signing.TRUST_SET_CONTEXT, document.encode("utf-8"), signature):
            raise TrustError(f"the signature does not verify with trusted key {key_id}")
        try:
            raw = signing.check_trust_document(json.loads(document), document)
        except (ValueError, signing.SigningError) as exc:
            raise TrustError(f"the document is unusable: {exc}") from None
        if raw["clientId"] != self.client_id:
            raise TrustError(f"the document is for client {raw['clientId']}, not {self.client_id}")
        if raw["serial"] <= self.serial:
            return None
        return TrustSet(client_id=self.client_id, serial=int(raw["serial"]), keys=tuple(sorted(raw["keys"])))


def parse_keys(values: list[str]) -> list[str]:
    """`--trust-key` values (a key, or a file holding one) as normalised key texts."""
    keys: list[str] = []
    for value in values:
        text = value.strip()
        if not text.startswith(signing.KEY_PREFIX):
            try:
                text = Path(text).read_text().strip()
            except OSError as exc:
                raise TrustError(f"--trust-key {value!r} is neither ed25519:<base64> nor a readable file "
                                 f"({exc.strerror or exc})") from None
        try:
            keys.append(signing.format_public_key(signing.parse_public_key(text)))
        except signing.SigningError as exc:
            raise TrustError(f"--trust-key {value!r}: {exc}") from None
    if len(set(keys)) > signing.MAX_TRUSTED_KEYS:
        raise TrustError(f"at most {signing.MAX_TRUSTED_KEYS} --trust-key values")
    return sorted(set(keys))


def load(state: StateDir) -> TrustSet | None:
    """The pinned set, or None when the agent has none. A file that exists but cannot be read
    is an error: falling back to "no trust set" would silently drop the protection."""
    path = path_of(state)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        raw = json.loads(data)
        keys = tuple(sorted(signing.format_public_key(signing.parse_public_key(k)) for k in raw["keys"]))
        if not keys or len(keys) > signing.MAX_TRUSTED_KEYS:
            raise ValueError(f"between 1 and {signing.MAX_TRUSTED_KEYS} keys needed")
        return TrustSet(client_id=str(raw["clientId"]), serial=int(raw["serial"]), keys=keys)
    except (ValueError, KeyError, TypeError, signing.SigningError) as exc:
        raise TrustError(f"{path} is unreadable ({exc}): fix or reinstall it; no job runs until then") from None


def save(state: StateDir, trust: TrustSet) -> None:
    atomic_write(path_of(state), trust.to_json(), mode=0o644)


def apply_update(state: StateDir, document: str, key_id: str, signature: str) -> None:
    """A signed trust-set document from the coordinator: adopt it if it is newer and signed by a
    key this agent trusts; otherwise keep the set and log why."""
    try:
        trust = load(state)
        if trust is None:
            log.debug("trust-set update ignored: this agent has no trust set")
            return
        new = trust.updated(document, key_id, signature)
    except TrustError as exc:
        log.error("trust-set update refused, keeping the current set: %s", exc)
        return
    if new is None:
        return  # not newer than what we hold: the usual case on every connect
    save(state, new)
    log.warning("trust set updated to serial %d by key %s: %d key(s) %s", new.serial, key_id, len(new.keys),
                ", ".join(sorted(new.by_id)))

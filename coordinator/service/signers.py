"""Signed work, the coordinator's side: a client's signer keys, the manifest it proposes for a
deployment, the check of an operator's signature before it is stored, and the signed trust-set
documents forwarded to agents (docs/security.md, "Signed work").

The coordinator's checks are a courtesy, not the defence: they turn an operator's mistake (a
wrong key, a stale manifest) into a clear 400 at `start` instead of jobs failing on devices. The
defence is the agent, which trusts only its pinned keys and recomputes the digest from the
payload it actually receives.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from common import secret_params, signing
from common.errors import Conflict, InvalidArgument, NotFound
from common.ids import new_id, parse_uuid
from common.timefmt import iso
from coordinator.auth import Principal
from coordinator.service.audit_log import action
from coordinator.store import models as m

PROPOSED_LIFETIME = timedelta(days=7)
"""The expiry of the manifest the coordinator proposes; the signer may choose another."""


def _signer_dict(row: m.Signer) -> dict[str, Any]:
    return {"keyId": row.key_id, "clientId": row.client_id, "name": row.name, "publicKey": row.public_key,
            "createdAt": iso(row.created_at), "createdBy": row.created_by,
            "revokedAt": iso(row.revoked_at) if row.revoked_at else None}


def _client(s: Session, who: Principal, client_id: str | None, role: str, action: str) -> str:
    cid = parse_uuid(client_id, "clientId") if client_id else who.default_client(s, None)
    who.require_client(s, cid)
    who.require_role(role, action)
    return cid


# --- signer keys -----------------------------------------------------------------------------


@action("signer.register")
def register(s: Session, who: Principal, client_id: str | None, body: Any, now: datetime) -> dict[str, Any]:
    """Register a public key (`{"publicKey": "ed25519:…", "name"}`) as a signer of the client."""
    cid = _client(s, who, client_id, "admin", "register signer keys")
    if not isinstance(body, dict):
        raise InvalidArgument("the body must be a JSON object", parameter="body")
    text, name = body.get("publicKey"), body.get("name", "")
    if not isinstance(text, str) or not text:
        raise InvalidArgument("publicKey is required, e.g. ed25519:<base64>", parameter="publicKey")
    if not isinstance(name, str) or len(name) > 200:
        raise InvalidArgument("name must be a string of at most 200 characters", parameter="name")
    try:
        raw = signing.parse_public_key(text)
    except signing.SigningError as exc:
        raise InvalidArgument(str(exc), parameter="publicKey") from None
    kid = signing.key_id(raw)
    existing = s.scalar(select(m.Signer).where(m.Signer.client_id == cid, m.Signer.key_id == kid))
    if existing is not None:
        state = "revoked" if existing.revoked_at else "registered"
        raise Conflict(f"key {kid} is already {state} for this client", key_id=kid, status=state)
    row = m.Signer(id=new_id(), client_id=cid, key_id=kid, public_key=signing.format_public_key(raw),
                   name=name.strip(), created_at=now, created_by=who.token_id, revoked_at=None)
    s.add(row)
    s.flush()
    return _signer_dict(row)


def list_signers(s: Session, who: Principal, client_id: str | None) -> list[dict[str, Any]]:
    cid = _client(s, who, client_id, "viewer", "list signer keys")
    rows = s.scalars(select(m.Signer).where(m.Signer.client_id == cid).order_by(m.Signer.created_at, m.Signer.key_id))
    return [_signer_dict(r) for r in rows]


@action("signer.revoke")
def revoke(s: Session, who: Principal, client_id: str | None, key_id: str, now: datetime) -> dict[str, Any]:
    """The coordinator stops accepting the key's signatures on start. Agents that pinned it keep
    trusting it until a trust-set update removes it (docs/security.md)."""
    cid = _client(s, who, client_id, "admin", "revoke signer keys")
    row = s.scalar(select(m.Signer).where(m.Signer.client_id == cid, m.Signer.key_id == key_id))
    if row is None:
        raise NotFound("Signer key not found", key_id=key_id)
    if row.revoked_at is not None:
        raise Conflict(f"key {key_id} is already revoked", key_id=key_id, status="revoked")
    row.revoked_at = now
    s.flush()
    return _signer_dict(row)


def active_keys(s: Session, client_id: str) -> list[str]:
    """The public keys of the client's unrevoked signers (what `tokens create` prints)."""
    return list(s.scalars(select(m.Signer.public_key).where(m.Signer.client_id == client_id,
                                                            m.Signer.revoked_at.is_(None))
                          .order_by(m.Signer.created_at, m.Signer.key_id)))


# --- manifests and signatures ----------------------------------------------------------------


def proposed(d: m.Deployment, payload: dict[str, Any], *, rollback: bool, now: datetime) -> dict[str, Any]:
    """`{"manifest", "payload"}`: the unsigned manifest (canonical text) for `d`'s jobs."""
    manifest = signing.Manifest(deployment_id=d.id, client_id=d.client_id, type=d.type,
                                digest=signing.payload_digest(payload), rollback=rollback,
                                expires_at=now + PROPOSED_LIFETIME)
    # Secret parameters by their commitments only: the digest covers exactly this form.
    return {"manifest": manifest.encode().decode("utf-8"), "payload": secret_params.public_form(payload)}


def accept(s: Session, d: m.Deployment, raw: Any, *, payload: dict[str, Any], rollback: bool,
           now: datetime) -> dict[str, str]:
    """Check an operator's signature over `d`'s manifest; the form to store and send with jobs.

    `raw` is `{"keyId", "value", "manifest"}` (manifest: the canonical text, or the object)."""
    if not isinstance(raw, dict):
        raise InvalidArgument('signature must be an object {"keyId", "value", "manifest"}', parameter="signature")
    kid, value, doc = raw.get("keyId"), raw.get("value"), raw.get("manifest")
    if not isinstance(kid, str) or not kid:
        raise InvalidArgument("signature.keyId is required", parameter="signature.keyId")
    if not isinstance(value, str) or not value:
        raise InvalidArgument("signature.value is required (base64)", parameter="signature.value")
    if isinstance(doc, dict):
        try:
            doc = signing.canonical(doc).decode("utf-8")
        except signing.SigningError as exc:
            raise InvalidArgument(str(exc), parameter="signature.manifest") from None
    if not isinstance(doc, str) or not doc:
        raise InvalidArgument("signature.manifest is required: the manifest that was signed",
                              parameter="signature.manifest")
    try:
        manifest = signing.Manifest.parse(doc)
    except signing.SigningError as exc:
        raise InvalidArgument(str(exc), parameter="signature.manifest") from None
    if manifest.encode().decode("utf-8") != doc:
        raise InvalidArgument("signature.manifest is not in canonical form (sorted keys, no whitespace)",
                              parameter="signature.manifest")
    signer = s.scalar(select(m.Signer).where(m.Signer.client_id == d.client_id, m.Signer.key_id == kid))
    if signer is None or signer.revoked_at is not None:
        raise InvalidArgument(f"key {kid} is not a registered signer of this client"
                              + (" (revoked)" if signer is not None else ": `convoy keys register` it first"),
                              parameter="signature.keyId")
    if not signing.verify(signer.public_key, signing.SIGNING_CONTEXT, doc.encode("utf-8"), value):
        raise InvalidArgument("the signature does not verify with that key", parameter="signature.value")
    why = signing.mismatch(manifest, deployment_id=d.id, client_id=d.client_id, type_=d.type, payload=payload,
                           rollback=rollback, now=now)
    if why is not None:
        raise InvalidArgument(why, parameter="signature.manifest")
    return {"keyId": kid, "value": value, "manifest": doc}


# --- trust-set documents ---------------------------------------------------------------------


def _trust_dict(row: m.TrustSetDocument) -> dict[str, Any]:
    return {"clientId": row.client_id, "document": row.document, "keyId": row.key_id, "signature": row.signature,
            "serial": row.serial, "publishedAt": iso(row.published_at)}


@action("trust_set.publish")
def publish_trust_set(s: Session, who: Principal, client_id: str | None, body: Any, now: datetime) -> dict[str, Any]:
    """Store a signed trust-set document (`convoy keys rotate`) for the client's agents.

    The coordinator checks the form and that a registered signer of the client signed it, so a
    typo is a 400 here; agents check the signature against the keys *they* trust."""
    cid = _client(s, who, client_id, "admin", "publish trust sets")
    if not isinstance(body, dict):
        raise InvalidArgument("the body must be a JSON object", parameter="body")
    doc, kid, sig = body.get("document"), body.get("keyId"), body.get("signature")
    if not isinstance(doc, str) or not isinstance(kid, str) or not isinstance(sig, str) or not (doc and kid and sig):
        raise InvalidArgument("document, keyId and signature are required strings", parameter="document")
    try:
        trust = parse_trust_document(doc)
    except signing.SigningError as exc:
        raise InvalidArgument(str(exc), parameter="document") from None
    if trust["clientId"] != cid:
        raise InvalidArgument(f"the document is for client {trust['clientId']}, not {cid}", parameter="document")
    signer = s.scalar(select(m.Signer).where(m.Signer.client_id == cid, m.Signer.key_id == kid,
                                             m.Signer.revoked_at.is_(None)))
    if signer is None or not signing.verify(signer.public_key, signing.TRUST_SET_CONTEXT, doc.encode("utf-8"), sig):
        raise InvalidArgument("the document is not signed by a registered signer of this client", parameter="signature")
    row = s.get(m.TrustSetDocument, cid)
    if row is not None and trust["serial"] <= row.serial:
        raise Conflict(f"serial {trust['serial']} is not above the published {row.serial}", serial=row.serial)
    if row is None:
        row = m.TrustSetDocument(client_id=cid, document=doc, key_id=kid, signature=sig, serial=trust["serial"],
                                 published_at=now, published_by=who.token_id)
        s.add(row)
    else:
        row.document, row.key_id, row.signature, row.serial = doc, kid, sig, trust["serial"]
        row.published_at, row.published_by = now, who.token_id
    s.flush()
    return _trust_dict(row)


def get_trust_set(s: Session, who: Principal, client_id: str | None) -> dict[str, Any]:
    cid = _client(s, who, client_id, "viewer", "read the trust set")
    row = s.get(m.TrustSetDocument, cid)
    if row is None:
        raise NotFound("no trust set has been published for this client", client_id=cid)
    return _trust_dict(row)


def parse_trust_document(doc: str) -> dict[str, Any]:
    """`{"v": 1, "clientId", "serial", "keys": ["ed25519:…", …]}` in canonical form, checked."""
    try:
        raw = json.loads(doc)
    except ValueError:
        raise signing.SigningError("the trust-set document is not JSON") from None
    return signing.check_trust_document(raw, doc)

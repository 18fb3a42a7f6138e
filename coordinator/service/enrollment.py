"""Enrollment tokens, `Enroll`, `ReportEnrollment`, and the timeout of records that never report.

An enrollment creates (or re-identifies) a device and one `pending` device_deployments record
(seed 000). The record leaves `pending` exactly once, by a guarded update: the agent's report
(`success`, or `error` with its log lines) or the timeout loop (`error`), whichever comes first.

Re-identifying is guarded: an enrollment token admits new devices, it does not confer any
existing device's identity. A machine id that already has a device in the client is handed that
device only with proof: the device's current credential (a reinstall from its state dir), or a
replacement token an operator issued for exactly that device (`convoy devices replace`).
A device that enrolled with a key (docs/security.md, "Device certificates") must prove that
key instead: its credential alone no longer suffices, since a stolen credential is what the key
defends against. Anything else is refused (PermissionDenied) and logged, and takes no use of
the token.

An enrollment that carries a certificate request gets a device certificate signed by the
coordinator's CA; one without is a bearer-only device (compatibility mode, logged), unless the
coordinator requires certificates.

The RPCs write concurrent calls in batches (coordinator/service/enrollment_batch.py, the rules in
coordinator/domain/enrollment_claims.py); `enroll` and `report_enrollment` here are the same
code for one call.
"""

from __future__ import annotations

import asyncio
import logging
import math
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import CursorResult, and_, select, update
from sqlalchemy.orm import Session

from common.errors import ConvoyError, InvalidArgument, NotFound, PermissionDenied
from common.ids import new_id, parse_uuid
from common.secrets import hash_secret, mint
from common.timefmt import iso, log_line
from coordinator.auth import Principal
from coordinator.service import audit_log
from coordinator.service.audit_log import action
from coordinator.service.devices import list_scope, resolve_client
from coordinator.service.enrollment_batch import (
    DeviceIdentity,
    EnrollCall,
    Facts,
    KeyRequest,
    close_records,
    enroll_batch,
)
from coordinator.store import models as m

if TYPE_CHECKING:
    from coordinator.app import App

log = logging.getLogger("convoy.enrollment")

STATUSES = ("pending", "success", "error")
TIMEOUT_MESSAGE = "Enrollment timed out: the agent never reported"


# --- enrollment tokens (admin API) ---------------------------------------------------------

MAX_TOKEN_LIFETIME_S = 3650 * 86400


def token_dict(t: m.EnrollmentToken) -> dict[str, Any]:
    return {
        "id": t.id, "client_id": t.client_id, "name": t.name, "expires_at": iso(t.expires_at) or "",
        "max_uses": t.max_uses or 0, "uses": t.uses, "revoked": t.revoked_at is not None,
        "group_ids": list(t.group_ids or []), "created_at": iso(t.created_at) or "",
        "created_by": t.created_by or "", "device_id": t.device_id or "",
    }


@action("enrollment_token.create")
def create_token(s: Session, who: Principal, client_id: str, expires_in_s: float, max_uses: int,
                 group_ids: list[str], name: str, now: datetime, device_id: str = "") -> dict[str, str]:
    """Mint an enrollment token; only its hash is stored. `expires_in_s`/`max_uses` 0 = no limit.
    With `device_id` it is a replacement token: one use, re-enrolling exactly that device."""
    if expires_in_s < 0:
        raise InvalidArgument("expires_in must not be negative", parameter="expires_in")
    if max_uses < 0:
        raise InvalidArgument("max_uses must not be negative", parameter="max_uses")
    who.require_role("admin", "create enrollment tokens")
    client = resolve_client(s, who, client_id)
    replaces: str | None = None
    if device_id:
        replaces = parse_uuid(device_id, "device_id")
        target = s.get(m.Device, replaces)
        if target is None or target.client_id != client:
            raise NotFound("Device not found", device_id=replaces)
        if max_uses not in (0, 1):
            raise InvalidArgument("a replacement token has exactly one use", parameter="max_uses")
        max_uses = 1
        if not expires_in_s:
            raise InvalidArgument("a replacement token must expire", parameter="expires_in")
    groups = [parse_uuid(g, "group_id") for g in dict.fromkeys(group_ids)]
    if groups:
        found = set(s.scalars(select(m.Group.id).where(m.Group.client_id == client, m.Group.id.in_(groups))))
        for g in groups:
            if g not in found:
                raise NotFound("Group not found", group_id=g)
    if not math.isfinite(expires_in_s) or not 0 <= expires_in_s <= MAX_TOKEN_LIFETIME_S:
        raise InvalidArgument("expires-in must be between 0 (never) and 3650 days", parameter="expires_in",
                              value=str(expires_in_s))
    token = mint("enroll")
    row = m.EnrollmentToken(
        id=new_id(), client_id=client, token_hash=hash_secret(token), name=name, uses=0,
        expires_at=now + timedelta(seconds=expires_in_s) if expires_in_s else None,
        max_uses=max_uses or None, group_ids=groups, created_by=who.token_id, created_at=now,
        revoked_at=None, device_id=replaces)
    s.add(row)
    if replaces:
        log.info("replacement token %s issued for device %s by API token %s", row.id, replaces, who.token_id)
    audit_log.note(s, client_ids=[client], summary=f"name={name}, max_uses={max_uses or 'unlimited'}")
    if replaces:
        audit_log.note(s, action="device.replace", target_id=replaces, summary=f"replacement token {row.id}")
    return {"id": row.id, "token": token}


def list_tokens(s: Session, who: Principal, client_id: str) -> list[dict[str, Any]]:
    who.require_role("admin", "list enrollment tokens")
    rows = s.scalars(select(m.EnrollmentToken).where(m.EnrollmentToken.client_id.in_(list_scope(s, who, client_id)))
                     .order_by(m.EnrollmentToken.created_at, m.EnrollmentToken.id))
    return [token_dict(t) for t in rows]


@action("enrollment_token.revoke")
def revoke_token(s: Session, who: Principal, client_id: str, token_id: str, now: datetime) -> dict[str, Any]:
    """Revoke a token (idempotent). Devices already enrolled with it keep their credentials."""
    who.require_role("admin", "revoke enrollment tokens")
    client = resolve_client(s, who, client_id)
    tid = parse_uuid(token_id, "token_id")
    row = s.get(m.EnrollmentToken, tid)
    if row is None or row.client_id != client:
        raise NotFound("Enrollment token not found", token_id=tid)
    if row.revoked_at is None:
        row.revoked_at = now
    return token_dict(row)


# --- Enroll (agent API, authenticated by the enrollment token itself) ------------------------

def _set_identity(device: m.Device, public_key: str | None, identity: DeviceIdentity, now: datetime,
                  source: str) -> str:
    """Issue the device certificate for `public_key` (returns its PEM), or make the device
    bearer-only (returns "")."""
    if public_key is None or identity.ca is None:
        device.public_key = device.cert_sha256 = device.cert_expires_at = None
        if identity.ca is not None:
            log.warning("device %s (client %s) enrolled without a device key, from %s: bearer-only "
                        "(compatibility mode); reinstall it with this version of `convoy agent install`",
                        device.id, device.client_id, source or "unknown")
        return ""
    from coordinator.device_certs import issue

    cert = issue(identity.ca, public_key, device.id, device.client_id, now, timedelta(seconds=identity.lifetime_s))
    device.public_key, device.cert_sha256, device.cert_expires_at = public_key, cert.sha256, cert.not_after
    return cert.pem


def renew_certificate(device: m.Device, csr: bytes, identity: DeviceIdentity, now: datetime) -> dict[str, str]:
    """A new certificate for a device that called with its current one (the caller checked):
    for the key in `csr` (the same or a new one; its self-signature proves it). A bearer-only
    device cannot get one this way: a credential alone must never attach a key."""
    if identity.ca is None:
        raise InvalidArgument("this coordinator serves plaintext (--insecure) and issues no device certificates")
    if device.cert_sha256 is None:
        raise PermissionDenied(f"device {device.id} is bearer-only: it gets a device certificate by reinstalling "
                               "with `convoy agent install` from its state dir", device_id=device.id)
    from coordinator.device_certs import request_key

    pem = _set_identity(device, request_key(csr), identity, now, "")
    log.info("device %s (client %s) renewed its certificate, valid until %s", device.id, device.client_id,
             iso(device.cert_expires_at))
    return {"device_certificate": pem, "expires_at": iso(device.cert_expires_at) or ""}


def enroll(s: Session, token: str, machine_id: str, facts: Facts, tags: list[str], site: str,
           agent_version: str, now: datetime, timeout_s: float, proof: str = "", source: str = "",
           key: KeyRequest | None = None, identity: DeviceIdentity | None = None,
           report_success: bool = False) -> dict[str, str]:
    """Take one use of `token`; create or re-identify the device; open a `pending` record.

    `proof` is the device credential the request carries (a reinstall), `key` its device key
    request and key proof, `source` where it came from (for the log). A rejected token or a
    refused takeover raises and writes nothing. Returns device_id, client_id, the new device
    credential (shown once), enrollment_id and device_certificate (PEM; "" for a bearer-only
    device). `report_success`: the record is written `success` at once (the report came with the
    call). The Enroll RPC batches concurrent calls through `enroll_batch` directly.
    """
    key = key or KeyRequest()
    call = EnrollCall(token, machine_id, facts, tags, site, agent_version, proof=proof, source=source,
                      csr=key.csr, key_proof=key.proof, proof_time=key.proof_time, report_success=report_success)
    out = enroll_batch(s, [call], now, timeout_s, identity or DeviceIdentity())[0]
    if isinstance(out, ConvoyError):
        raise out
    return out


# --- ReportEnrollment (agent API, authenticated by the device credential) --------------------

def report_enrollment(s: Session, device: m.Device, enrollment_id: str, success: bool,
                      log_lines: list[str], now: datetime) -> str:
    """Close the device's own pending record: `success` (error_logs null) or `error` (the lines).

    A duplicate of the report that already closed the record is accepted (idempotent); a report
    that contradicts the record's final status (e.g. it timed out first) is a Conflict.
    """
    rid = parse_uuid(enrollment_id, "enrollment_id")
    out = close_records(s, [(device.id, rid, success, list(log_lines))], now)[0]
    if isinstance(out, ConvoyError):
        raise out
    return out


# --- records that never report ---------------------------------------------------------------

def expire_pending(s: Session, now: datetime) -> int:
    """Mark every pending record past its timeout as `error`, in one statement, and end the
    correction time of `success` records sent with Enroll that have passed it. Returns the count
    of records timed out."""
    d = m.DeviceEnrollment
    result = s.execute(
        update(d).where(and_(d.status == "pending", d.timeout_at.is_not(None), d.timeout_at <= now))
        .values(status="error", error_logs=[log_line(now, TIMEOUT_MESSAGE)], timeout_at=None, updated_at=now)
        .execution_options(synchronize_session=False))
    # Not updated_at: the record itself did not change.
    s.execute(update(d).where(and_(d.status == "success", d.timeout_at.is_not(None), d.timeout_at <= now))
              .values(timeout_at=None).execution_options(synchronize_session=False))
    return result.rowcount if isinstance(result, CursorResult) else 0


def _expire_in_tx(app: App) -> int:
    with app.store.tx() as s:
        return expire_pending(s, app.clock.now())


async def enrollment_timeout_loop(app: App) -> None:
    """Runs until cancelled: every few seconds, time out pending records (see `expire_pending`)."""
    interval = min(5.0, max(0.05, app.settings.enrollment_timeout_s / 4))
    while True:
        try:
            n = await app.run(_expire_in_tx, app)
            if n:
                log.info("%d enrollment(s) timed out", n)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a store hiccup must not end the loop
            log.exception("enrollment timeout sweep failed")
        await app.clock.sleep(interval)

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
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import CursorResult, and_, null, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from common import device_identity
from common.errors import Conflict, InvalidArgument, NotFound, PermissionDenied, Unauthenticated
from common.ids import new_id, parse_uuid
from common.secrets import hash_secret, matches, mint
from common.timefmt import iso, log_line
from coordinator.auth import Principal
from coordinator.domain import device_input as di
from coordinator.service.devices import resolve_client
from coordinator.store import models as m

if TYPE_CHECKING:
    from coordinator.app import App
    from coordinator.device_certs import DeviceCA

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
    return {"id": row.id, "token": token}


def list_tokens(s: Session, who: Principal, client_id: str) -> list[dict[str, Any]]:
    who.require_role("admin", "list enrollment tokens")
    client = resolve_client(s, who, client_id)
    rows = s.scalars(select(m.EnrollmentToken).where(m.EnrollmentToken.client_id == client)
                     .order_by(m.EnrollmentToken.created_at, m.EnrollmentToken.id))
    return [token_dict(t) for t in rows]


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

@dataclass
class Facts:
    """What the agent reports about its machine (the proto's DeviceFacts)."""

    hostname: str = ""
    os: str = ""
    os_version: str = ""
    arch: str = ""
    cpu_count: int = 0
    memory_bytes: int = 0
    disks: list[dict[str, Any]] = field(default_factory=list)
    ip_addresses: list[str] = field(default_factory=list)


def _usable_token(s: Session, token: str, now: datetime) -> m.EnrollmentToken:
    """The token row, or Unauthenticated with a message saying exactly what is wrong."""
    if not token:
        raise Unauthenticated("enrollment token required")
    row = s.scalar(select(m.EnrollmentToken).where(m.EnrollmentToken.token_hash == hash_secret(token)))
    # The lookup is by an index on the hash; the final comparison is constant time anyway.
    if row is None or not matches(token, row.token_hash):
        raise Unauthenticated("invalid enrollment token")
    if row.revoked_at is not None:
        raise Unauthenticated("enrollment token has been revoked", token_id=row.id)
    if row.expires_at is not None and row.expires_at <= now:
        raise Unauthenticated(f"enrollment token expired at {iso(row.expires_at)}", token_id=row.id)
    if row.max_uses is not None and row.uses >= row.max_uses:
        raise Unauthenticated(f"enrollment token has been used up ({row.max_uses} of {row.max_uses} uses)",
                              token_id=row.id)
    return row


def _take_use(s: Session, row: m.EnrollmentToken, now: datetime) -> None:
    # Guarded increment: two installs racing for the last use both pass the read above, but only
    # one UPDATE matches (PostgreSQL re-checks the WHERE after the row lock; SQLite serializes
    # writers with BEGIN IMMEDIATE). The loser's transaction rolls back before creating anything.
    t = m.EnrollmentToken
    result = s.execute(
        update(t).where(
            t.id == row.id, t.revoked_at.is_(None),
            or_(t.max_uses.is_(None), t.uses < t.max_uses),
            or_(t.expires_at.is_(None), t.expires_at > now),
        ).values(uses=t.uses + 1).execution_options(synchronize_session=False))
    if not isinstance(result, CursorResult) or result.rowcount != 1:
        raise Unauthenticated(f"enrollment token has been used up ({row.max_uses} of {row.max_uses} uses)",
                              token_id=row.id)


def _apply_facts(device: m.Device, facts: Facts, agent_version: str, tags: list[str], site: str,
                 now: datetime) -> None:
    """Store what the device sent, every field bounded and cleaned (coordinator/domain/device_input.py)."""
    device.hostname = di.line(facts.hostname, di.HOSTNAME)
    device.os = di.line(facts.os, di.OS)
    device.os_version = di.line(facts.os_version, di.OS_VERSION)
    device.arch = di.line(facts.arch, di.ARCH)
    device.cpu_count = di.clamp(facts.cpu_count, di.INT32_MAX)
    device.memory_bytes = di.clamp(facts.memory_bytes, di.INT64_MAX)
    device.disks = [di.disk(d) for d in list(facts.disks)[: di.MAX_DISKS]]
    device.ip_addresses = di.addresses(facts.ip_addresses)
    device.agent_version = di.line(agent_version, di.AGENT_VERSION)
    if di.tags(tags):
        device.tags = di.tags(tags)
    if di.site(site):
        device.site = di.site(site)
    device.updated_at = now


@dataclass(frozen=True)
class KeyRequest:
    """The device key part of an Enroll (all empty: a bearer-only or plaintext install)."""

    csr: bytes = b""
    """PKCS#10 (DER) for the key the agent made; the coordinator signs a certificate for it."""
    proof: str = ""
    """base64 signature by the device's previous key of `device_identity.proof_message`."""
    proof_time: int = 0
    """The Unix time signed in `proof`."""


@dataclass(frozen=True)
class DeviceIdentity:
    """How this coordinator identifies devices."""

    ca: DeviceCA | None = None
    """The CA that signs device certificates; None: plaintext (`--insecure`), no certificates."""
    require_certs: bool = False
    """Refuse an enrollment without a certificate request (`--require-device-certs`)."""
    lifetime_s: float = 365 * 86400.0
    """How long the certificates it signs are valid (`--device-cert-lifetime`)."""


def _key_proven(device: m.Device, machine_id: str, key: KeyRequest, now: datetime) -> str:
    """"" when `key.proof` is `device`'s key signing this request now; otherwise why not."""
    from coordinator.device_certs import verify_proof

    if not key.proof:
        return "it holds a device key and the request carries no proof by that key"
    if abs(now.timestamp() - key.proof_time) > device_identity.PROOF_WINDOW_S:
        return "the key proof is not from the last 5 minutes (check the device's clock)"
    assert device.public_key is not None
    if not verify_proof(device.public_key, device_identity.proof_message(machine_id, key.csr, key.proof_time),
                        key.proof):
        return "the key proof does not verify with the device's key"
    return ""


def _refuse_takeover(row: m.EnrollmentToken, machine_id: str, device: m.Device, why: str, source: str) -> None:
    log.warning("enrollment refused: machine id %r is already device %s of client %s and the request "
                "does not prove it is that device (%s); token %s, from %s",
                machine_id, device.id, row.client_id, why, row.id, source or "unknown")
    raise PermissionDenied(
        f"machine id {machine_id!r} is already enrolled as device {device.id} and this request does not prove "
        f"it is that device ({why}): reinstall from the device's own state dir (its device key, or for a "
        f"bearer-only device its credential, is the proof), or have an operator run `convoy devices replace "
        f"{device.id}` and install with that token",
        device_id=device.id, machine_id=machine_id)


def _claim(s: Session, row: m.EnrollmentToken, machine_id: str, proof: str, source: str, key: KeyRequest,
           now: datetime) -> m.Device | None:
    """The existing device this enrollment may re-identify, None for a new one, or refused."""
    existing = s.scalar(select(m.Device).where(m.Device.client_id == row.client_id,
                                               m.Device.machine_id == machine_id))
    if row.device_id is not None:
        target = s.get(m.Device, row.device_id)
        if target is None or target.client_id != row.client_id:
            raise Unauthenticated("the device this replacement token was issued for no longer exists",
                                  token_id=row.id)
        if existing is not None and existing.id != target.id:
            raise Conflict(f"machine id {machine_id!r} is already enrolled as another device {existing.id}; "
                           f"this replacement token is for device {target.id}",
                           device_id=existing.id, machine_id=machine_id)
        target.machine_id = machine_id  # the replacement may be new hardware with a new id
        return target
    if existing is None:
        return None
    if existing.public_key is not None:
        why = _key_proven(existing, machine_id, key, now)
        if why:
            _refuse_takeover(row, machine_id, existing, why, source)
        return existing
    if not proof:
        _refuse_takeover(row, machine_id, existing, "no device credential sent", source)
    if not matches(proof, existing.credential_hash):
        _refuse_takeover(row, machine_id, existing, "wrong device credential", source)
    return existing


def _device_for(s: Session, client_id: str, machine_id: str, credential_hash: str, now: datetime,
                device: m.Device | None) -> m.Device:
    """`device` (already proven, see `_claim`) or a new one. Its credential is (re)set."""
    if device is None:
        device = m.Device(id=new_id(), client_id=client_id, machine_id=machine_id,
                          credential_hash=credential_hash, tags=[], site="", disks=[], ip_addresses=[],
                          maintenance_windows=[], online=False, created_at=now, updated_at=now)
        if s.get_bind().dialect.name == "sqlite":
            # SQLite writers are serialized (BEGIN IMMEDIATE): no concurrent insert of the same
            # machine can exist, so the savepoint below would only cost time.
            s.add(device)
            device.credential_hash = credential_hash
            return device
        try:
            with s.begin_nested():
                s.add(device)
        except IntegrityError:
            # The same machine enrolled concurrently through another transaction. Its row is that
            # install's device, not ours to take over (this request proved nothing about it).
            raise Conflict(f"machine id {machine_id!r} was enrolled by another install at the same moment; "
                           "retry from that device's state dir", machine_id=machine_id) from None
    device.credential_hash = credential_hash
    return device


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
           key: KeyRequest | None = None, identity: DeviceIdentity | None = None) -> dict[str, str]:
    """Take one use of `token`; create or re-identify the device; open a `pending` record.

    `proof` is the device credential the request carries (a reinstall), `key` its device key
    request and key proof, `source` where it came from (for the log). Everything happens in the
    caller's one transaction, so a rejected token or a refused takeover leaves nothing behind.
    Returns device_id, client_id, the new device credential (shown once), enrollment_id and
    device_certificate (PEM; "" for a bearer-only device).
    """
    key = key or KeyRequest()
    identity = identity or DeviceIdentity()
    machine_id = machine_id.strip()
    row = _usable_token(s, token, now)
    if not machine_id:
        raise InvalidArgument("machine_id must not be empty", parameter="machine_id")
    if len(machine_id) > 200:
        raise InvalidArgument("machine_id must be at most 200 characters", parameter="machine_id")
    public_key = None
    if key.csr and identity.ca is not None:
        from coordinator.device_certs import request_key

        public_key = request_key(key.csr)
    elif identity.require_certs:
        raise InvalidArgument("this coordinator requires a device key (--require-device-certs): the request "
                              "carries no csr; install with a current `convoy agent install`", parameter="csr")
    claimed = _claim(s, row, machine_id, proof, source, key, now)
    _take_use(s, row, now)

    credential = mint("device")
    device = _device_for(s, row.client_id, machine_id, hash_secret(credential), now, claimed)
    _apply_facts(device, facts, agent_version, tags, site, now)
    certificate = _set_identity(device, public_key, identity, now, source)

    groups = list(row.group_ids or [])
    if groups:
        existing_groups = set(s.scalars(select(m.Group.id).where(
            m.Group.client_id == row.client_id, m.Group.id.in_(groups))))
        member_of = set(s.scalars(select(m.GroupMember.group_id).where(m.GroupMember.device_id == device.id)))
        for g in groups:
            # A group deleted since the token was made is skipped rather than failing the install.
            if g in existing_groups and g not in member_of:
                s.add(m.GroupMember(group_id=g, device_id=device.id))

    record = m.DeviceEnrollment(
        id=new_id(), client_id=row.client_id, device_id=device.id, enrollment_token_id=row.id,
        user_id=row.created_by, status="pending", enrollment_date=now,
        timeout_at=now + timedelta(seconds=timeout_s), created_at=now, updated_at=now)
    s.add(record)  # error_logs left unset: SQL NULL, not JSON null
    s.flush()
    return {"device_id": device.id, "client_id": row.client_id, "credential": credential,
            "enrollment_id": record.id, "device_certificate": certificate}


# --- ReportEnrollment (agent API, authenticated by the device credential) --------------------

def _clean_lines(lines: list[str]) -> list[str]:
    return di.log_lines(lines)


def report_enrollment(s: Session, device: m.Device, enrollment_id: str, success: bool,
                      log_lines: list[str], now: datetime) -> str:
    """Close the device's own pending record: `success` (error_logs null) or `error` (the lines).

    A duplicate of the report that already closed the record is accepted (idempotent); a report
    that contradicts the record's final status (e.g. it timed out first) is a Conflict.
    """
    rid = parse_uuid(enrollment_id, "enrollment_id")
    status = "success" if success else "error"
    d = m.DeviceEnrollment
    result = s.execute(
        update(d).where(d.id == rid, d.device_id == device.id, d.status == "pending")
        .values(status=status, error_logs=null() if success else _clean_lines(list(log_lines)),
                timeout_at=None, updated_at=now)
        .execution_options(synchronize_session=False))
    if isinstance(result, CursorResult) and result.rowcount == 1:
        return status
    current = s.scalar(select(d.status).where(d.id == rid, d.device_id == device.id))
    if current is None:
        raise NotFound("Deployment not found", deployment_id=rid)
    if current == status:
        return status
    raise Conflict(f"enrollment {rid} is already {current}", deployment_id=rid, status=current)


# --- records that never report ---------------------------------------------------------------

def expire_pending(s: Session, now: datetime) -> int:
    """Mark every pending record past its timeout as `error`, in one statement. Returns the count."""
    d = m.DeviceEnrollment
    result = s.execute(
        update(d).where(and_(d.status == "pending", d.timeout_at.is_not(None), d.timeout_at <= now))
        .values(status="error", error_logs=[log_line(now, TIMEOUT_MESSAGE)], timeout_at=None, updated_at=now)
        .execution_options(synchronize_session=False))
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

"""`Enroll` and `ReportEnrollment` for many calls in one transaction, with set-based statements.

Enrollments arrive in bursts (an install wave), each call small; written one transaction per
call they were bound by per-transaction overhead (docs/BENCHMARKS.md, enrollment). Here a batch:

1. reads the tokens and devices its calls name, locked (`FOR UPDATE` on PostgreSQL, so two
   replicas' batches for one token take turns; SQLite serializes writers with BEGIN IMMEDIATE);
2. decides each call in order on that snapshot (coordinator/domain/enrollment_claims.py);
3. writes what was admitted: re-identified devices in one executemany, new devices in one
   multi-row insert, token uses grouped per token in one guarded UPDATE each, group memberships and
   the `pending` records (seed 000) in one insert each.

A refused call (bad, expired, used-up or revoked token, a takeover without proof) fails alone
and writes nothing; the batch's other calls commit. The caller answers each call with its own
outcome: a dict, or the ConvoyError it would have raised alone.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import CursorResult, and_, bindparam, insert, null, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from common import device_identity
from common.errors import Conflict, ConvoyError, InvalidArgument, NotFound, Unauthenticated
from common.ids import new_id, parse_uuid
from common.secrets import hash_secret, mint
from coordinator.auth import check_certificate, revoked
from coordinator.domain import device_input as di
from coordinator.domain import enrollment_claims as claims
from coordinator.domain import enrollment_reports as reports
from coordinator.store import models as m

if TYPE_CHECKING:
    from coordinator.device_certs import DeviceCA

log = logging.getLogger("convoy.enrollment")

# Core tables, not the ORM classes, for the multi-row writes: the ORM's bulk path costs more
# per row than the statement itself (measured: a third of a batch's time).
_DEVICES: Any = m.Device.__table__
_RECORDS: Any = m.DeviceEnrollment.__table__
_MEMBERS: Any = m.GroupMember.__table__
_TOKENS: Any = m.EnrollmentToken.__table__

# The statements of a batch, built once: building one (and its cache key, which SQLAlchemy
# memoizes on the statement object) cost more CPU than executing it, about 4 ms per batch
# however small (profile note 2026-12-03). Lists go in as expanding parameters.
_SELECT_TOKENS = (select(_TOKENS.c.id, _TOKENS.c.client_id, _TOKENS.c.token_hash, _TOKENS.c.revoked_at,
                         _TOKENS.c.expires_at, _TOKENS.c.max_uses, _TOKENS.c.uses, _TOKENS.c.group_ids,
                         _TOKENS.c.created_by, _TOKENS.c.device_id)
                  .where(_TOKENS.c.token_hash.in_(bindparam("hashes", expanding=True)))
                  .order_by(_TOKENS.c.id).with_for_update())
_DEVICE_COLUMNS = (_DEVICES.c.id, _DEVICES.c.client_id, _DEVICES.c.machine_id, _DEVICES.c.credential_hash,
                   _DEVICES.c.tags, _DEVICES.c.site, _DEVICES.c.revoked_at, _DEVICES.c.public_key)
_BY_MACHINE = and_(_DEVICES.c.client_id.in_(bindparam("clients", expanding=True)),
                   _DEVICES.c.machine_id.in_(bindparam("machines", expanding=True)))
_BY_ID = _DEVICES.c.id.in_(bindparam("targets", expanding=True))
_SELECT_DEVICES = {  # by (machine ids named, replacement targets named)
    (True, False): select(*_DEVICE_COLUMNS).where(_BY_MACHINE),
    (False, True): select(*_DEVICE_COLUMNS).where(_BY_ID),
    (True, True): select(*_DEVICE_COLUMNS).where(or_(_BY_MACHINE, _BY_ID)),
}
_SELECT_DEVICES = {k: v.order_by(_DEVICES.c.id).with_for_update() for k, v in _SELECT_DEVICES.items()}
_TAKE_USES = (update(_TOKENS).where(
    _TOKENS.c.id == bindparam("b_id"), _TOKENS.c.revoked_at.is_(None),
    or_(_TOKENS.c.max_uses.is_(None), _TOKENS.c.uses + bindparam("b_n") <= _TOKENS.c.max_uses),
    or_(_TOKENS.c.expires_at.is_(None), _TOKENS.c.expires_at > bindparam("b_now")),
).values(uses=_TOKENS.c.uses + bindparam("b_n")))
_INSERT_DEVICES = insert(_DEVICES)
_INSERT_DEVICES_PG = (pg_insert(_DEVICES).on_conflict_do_nothing(index_elements=["client_id", "machine_id"])
                      .returning(_DEVICES.c.id))
_INSERT_RECORDS = insert(_RECORDS)
_REPORTERS = (select(_DEVICES.c.credential_hash, _DEVICES.c.id, _DEVICES.c.revoked_at, _DEVICES.c.cert_sha256)
              .where(_DEVICES.c.credential_hash.in_(bindparam("hashes", expanding=True))))
_SELECT_RECORDS = (select(_RECORDS.c.id, _RECORDS.c.device_id, _RECORDS.c.status, _RECORDS.c.timeout_at)
                   .where(_RECORDS.c.id.in_(bindparam("ids", expanding=True))).order_by(_RECORDS.c.id)
                   .with_for_update())
_CLOSE_RECORDS = {  # by success: the guarded update of each record a report closes
    success: _RECORDS.update().where(_RECORDS.c.id == bindparam("b_id"), _RECORDS.c.status == bindparam("b_was"))
    .values(status=bindparam("v_status"), timeout_at=None, updated_at=bindparam("v_now"),
            error_logs=null() if success else bindparam("v_error_logs"))
    for success in (True, False)}


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


@dataclass(frozen=True)
class EnrollCall:
    """One Enroll call, as the agent sent it."""

    token: str
    machine_id: str
    facts: Facts
    tags: list[str]
    site: str
    agent_version: str
    proof: str = ""
    """The device credential the call carries (a reinstall); "" for none."""
    source: str = ""
    """The caller's address, for the log."""
    csr: bytes = b""
    """PKCS#10 (DER) for the key the agent made; the coordinator signs a certificate for it."""
    key_proof: str = ""
    """base64 signature by the device's previous key of `device_identity.proof_message`."""
    proof_time: int = 0
    """The Unix time signed in `key_proof`."""
    report_success: bool = False
    """The report came with the call (docs/enrollment.md, "One call per install"): the record is
    written `success` at once, correctable to `error` by its device until the timeout."""


@dataclass(frozen=True)
class KeyRequest:
    """The device key part of an Enroll (all empty: a bearer-only or plaintext install)."""

    csr: bytes = b""
    proof: str = ""
    proof_time: int = 0


@dataclass(frozen=True)
class DeviceIdentity:
    """How this coordinator identifies devices."""

    ca: DeviceCA | None = None
    """The CA that signs device certificates; None: plaintext (`--insecure`), no certificates."""
    require_certs: bool = False
    """Refuse an enrollment without a certificate request (`--require-device-certs`)."""
    lifetime_s: float = 365 * 86400.0
    """How long the certificates it signs are valid (`--device-cert-lifetime`)."""


@dataclass(frozen=True)
class ReportCall:
    """One ReportEnrollment call: the device credential it was authenticated with, the `sha256:`
    fingerprint of the client certificate its connection presented ("" for none), and the report."""

    credential: str
    enrollment_id: str
    success: bool
    log_lines: list[str]
    presented: str = ""


class GuardFailed(RuntimeError):
    """A guarded write matched fewer rows than the locked read promised: the batch is rolled back
    (the caller then answers each call in a transaction of its own)."""


# --- Enroll ------------------------------------------------------------------------------------

def enroll_batch(s: Session, calls: list[EnrollCall], now: datetime, timeout_s: float,
                 identity: DeviceIdentity | None = None) -> list[dict[str, str] | ConvoyError]:
    """Enroll every call that may enroll; the outcome of each call, in order (see the module doc)."""
    identity = identity or DeviceIdentity()
    asks = [claims.Ask(token_hash=hash_secret(c.token) if c.token else "", machine_id=c.machine_id.strip(),
                       proof_hash=hash_secret(c.proof) if c.proof else "", source=c.source) for c in calls]
    tokens = _tokens(s, {a.token_hash for a in asks if a.token_hash})
    devices, kept = _devices(s, asks, tokens)
    results: list[dict[str, str] | ConvoyError | None] = [None] * len(calls)
    keys = _device_keys(calls, identity, results)
    asks = _with_key_proofs(asks, calls, tokens, devices, now)
    admitted: list[tuple[int, claims.Admit]] = []
    # Calls refused before the rules (a bad csr, or no key where one is required) take no part:
    # they must not use a token's last use or a machine id in the other calls' snapshot.
    live = [i for i in range(len(calls)) if results[i] is None]
    for i, decision in zip(live, claims.decide([asks[i] for i in live], tokens, devices, now), strict=True):
        if isinstance(decision, claims.Refuse):
            if decision.warning:
                log.warning("%s", decision.warning)
            results[i] = decision.error
        else:
            admitted.append((i, decision))

    credentials = {i: mint("device") for i, _ in admitted}
    ids = {i: a.device_id or new_id() for i, a in admitted}
    certs = _certificates(admitted, ids, keys, identity, now)
    # Re-identified devices first: one that a replacement token moves to a new machine id frees
    # its old one for a new device of this batch.
    _update_devices(s, [{"b_id": ids[i], **_prefixed(_device_values(a, calls[i], hash_secret(credentials[i]), now,
                                                                    kept[ids[i]], certs[i]))}
                        for i, a in admitted if a.device_id is not None])
    fresh = [(i, a) for i, a in admitted if a.device_id is None]
    lost = _insert_devices(s, [_device_row(ids[i], a, calls[i], hash_secret(credentials[i]), now, certs[i])
                               for i, a in fresh])
    for i, a in fresh:
        if ids[i] in lost:
            # Another replica enrolled the same machine at the same moment: its device, not ours.
            results[i] = Conflict(f"machine id {a.machine_id!r} was enrolled by another install at the same "
                                  "moment; retry from that device's state dir", machine_id=a.machine_id)
    admitted = [(i, a) for i, a in admitted if results[i] is None]
    _take_uses(s, Counter(a.token.id for _, a in admitted), now)
    _add_to_groups(s, [(a.token, ids[i], a.device_id is None) for i, a in admitted])
    records = {i: new_id() for i, _ in admitted}
    if admitted:
        s.execute(_INSERT_RECORDS, [
            # error_logs left out: SQL NULL, not JSON null
            {"id": records[i], "client_id": a.token.client_id, "device_id": ids[i], "enrollment_token_id": a.token.id,
             "user_id": a.token.created_by, "status": "success" if calls[i].report_success else "pending",
             # pending: when it times out; success sent with Enroll: until when its device may
             # still correct it to error (coordinator/domain/enrollment_reports.py)
             "enrollment_date": now, "timeout_at": now + timedelta(seconds=timeout_s), "created_at": now,
             "updated_at": now}
            for i, a in admitted])
    for i, a in admitted:
        if identity.ca is not None and certs[i].pem == "":
            log.warning("device %s (client %s) enrolled without a device key, from %s: bearer-only "
                        "(compatibility mode); reinstall it with this version of `convoy agent install`",
                        ids[i], a.token.client_id, calls[i].source or "unknown")
        results[i] = {"device_id": ids[i], "client_id": a.token.client_id, "credential": credentials[i],
                      "enrollment_id": records[i], "device_certificate": certs[i].pem}
    return [r if r is not None else ConvoyError("enrollment not decided") for r in results]


@dataclass(frozen=True)
class _Cert:
    """The identity columns an admitted device gets (all None and pem "": bearer-only)."""

    public_key: str | None = None
    sha256: str | None = None
    expires_at: datetime | None = None
    pem: str = ""


def _device_keys(calls: list[EnrollCall], identity: DeviceIdentity,
                 results: list[dict[str, str] | ConvoyError | None]) -> dict[int, str]:
    """Each call's device public key (SubjectPublicKeyInfo PEM) from its csr; a call whose csr is
    bad, or that has none where the coordinator requires one, is refused here (in `results`)."""
    keys: dict[int, str] = {}
    for i, c in enumerate(calls):
        if c.csr and identity.ca is not None:
            from coordinator.device_certs import request_key

            try:
                keys[i] = request_key(c.csr)
            except ConvoyError as exc:
                results[i] = exc
            except Exception as exc:  # noqa: BLE001 - device input the parser did not expect: this call only
                results[i] = InvalidArgument(f"csr could not be read: {type(exc).__name__}", parameter="csr")
        elif identity.require_certs:
            results[i] = InvalidArgument("this coordinator requires a device key (--require-device-certs): the "
                                         "request carries no csr; install with a current `convoy agent install`",
                                         parameter="csr")
    return keys


def _with_key_proofs(asks: list[claims.Ask], calls: list[EnrollCall], tokens: dict[str, claims.TokenRow],
                     devices: list[claims.DeviceRow], now: datetime) -> list[claims.Ask]:
    """Each ask, with whether it proves the key of the device its machine id already is (when
    that device enrolled with a key): checked here, with `cryptography`, so the rules stay pure."""
    by_key = {(d.client_id, d.machine_id): d for d in devices}
    out = []
    for ask, call in zip(asks, calls, strict=True):
        token = tokens.get(ask.token_hash)
        existing = by_key.get((token.client_id, ask.machine_id)) if token else None
        if existing is None or existing.public_key is None:
            out.append(ask)
            continue
        out.append(dataclasses.replace(ask, key_refusal=_key_refusal(existing.public_key, ask.machine_id, call, now)))
    return out


def _key_refusal(public_key: str, machine_id: str, call: EnrollCall, now: datetime) -> str:
    """"" when `call.key_proof` is the key `public_key` signing this request now; otherwise why not."""
    from coordinator.device_certs import verify_proof

    if not call.key_proof:
        return "it holds a device key and the request carries no proof by that key"
    if abs(now.timestamp() - call.proof_time) > device_identity.PROOF_WINDOW_S:
        return "the key proof is not from the last 5 minutes (check the device's clock)"
    if not verify_proof(public_key, device_identity.proof_message(machine_id, call.csr, call.proof_time),
                        call.key_proof):
        return "the key proof does not verify with the device's key"
    return ""


def _certificates(admitted: list[tuple[int, claims.Admit]], ids: dict[int, str], keys: dict[int, str],
                  identity: DeviceIdentity, now: datetime) -> dict[int, _Cert]:
    """A device certificate, signed by the coordinator's CA, for each admitted call with a key."""
    out: dict[int, _Cert] = {}
    for i, a in admitted:
        if i not in keys or identity.ca is None:
            out[i] = _Cert()
            continue
        from coordinator.device_certs import issue

        cert = issue(identity.ca, keys[i], ids[i], a.token.client_id, now, timedelta(seconds=identity.lifetime_s))
        out[i] = _Cert(public_key=keys[i], sha256=cert.sha256, expires_at=cert.not_after, pem=cert.pem)
    return out


def _tokens(s: Session, hashes: set[str]) -> dict[str, claims.TokenRow]:
    if not hashes:
        return {}
    rows = s.execute(_SELECT_TOKENS, {"hashes": sorted(hashes)})
    return {r.token_hash: claims.TokenRow(id=r.id, client_id=r.client_id, token_hash=r.token_hash,
                                          revoked=r.revoked_at is not None, expires_at=r.expires_at,
                                          max_uses=r.max_uses, uses=r.uses, group_ids=tuple(r.group_ids or ()),
                                          created_by=r.created_by, device_id=r.device_id)
            for r in rows}


def _devices(s: Session, asks: list[claims.Ask], tokens: dict[str, claims.TokenRow]
             ) -> tuple[list[claims.DeviceRow], dict[str, tuple[list[Any], str]]]:
    """Every device the calls name, locked in id order (two batches never lock in opposite
    orders), and each one's tags and site (kept when a reinstall sends none)."""
    keys = {(tokens[a.token_hash].client_id, a.machine_id) for a in asks if a.token_hash in tokens and a.machine_id}
    targets = {t.device_id for t in tokens.values() if t.device_id}
    if not keys and not targets:
        return [], {}
    params: dict[str, list[str]] = {}
    if keys:
        params["clients"], params["machines"] = sorted({c for c, _ in keys}), sorted({mid for _, mid in keys})
    if targets:
        params["targets"] = sorted(t for t in targets if t)
    rows = list(s.execute(_SELECT_DEVICES[(bool(keys), bool(targets))], params))
    return ([claims.DeviceRow(id=r.id, client_id=r.client_id, machine_id=r.machine_id,
                              credential_hash=r.credential_hash, revoked=r.revoked_at is not None,
                              public_key=r.public_key) for r in rows],
            {r.id: (list(r.tags or []), r.site or "") for r in rows})


def _facts_values(facts: Facts, agent_version: str) -> dict[str, Any]:
    """What the device sent, every field bounded and cleaned (coordinator/domain/device_input.py)."""
    return {"hostname": di.line(facts.hostname, di.HOSTNAME), "os": di.line(facts.os, di.OS),
            "os_version": di.line(facts.os_version, di.OS_VERSION), "arch": di.line(facts.arch, di.ARCH),
            "cpu_count": di.clamp(facts.cpu_count, di.INT32_MAX),
            "memory_bytes": di.clamp(facts.memory_bytes, di.INT64_MAX),
            "disks": [di.disk(x) for x in list(facts.disks)[: di.MAX_DISKS]],
            "ip_addresses": di.addresses(facts.ip_addresses), "agent_version": di.line(agent_version, di.AGENT_VERSION)}


def _device_values(a: claims.Admit, call: EnrollCall, credential_hash: str, now: datetime,
                   kept: tuple[list[Any], str], cert: _Cert) -> dict[str, Any]:
    """A re-identified device's new columns: facts refreshed, credential and device certificate
    replaced (none: bearer-only); tags and site only when the call gives them."""
    return {**_facts_values(call.facts, call.agent_version), "tags": di.tags(call.tags) or kept[0],
            "site": di.site(call.site) or kept[1], "machine_id": a.machine_id, "credential_hash": credential_hash,
            # Admitted, so not revoked, or reinstated by the replacement token issued for it.
            "revoked_at": None, "revoked_by": None, "public_key": cert.public_key, "cert_sha256": cert.sha256,
            "cert_expires_at": cert.expires_at, "updated_at": now}


def _device_row(device_id: str, a: claims.Admit, call: EnrollCall, credential_hash: str,
                now: datetime, cert: _Cert) -> dict[str, Any]:
    return {**_device_values(a, call, credential_hash, now, ([], ""), cert), "id": device_id,
            "client_id": a.token.client_id, "maintenance_windows": [], "online": False, "created_at": now}


def _prefixed(values: dict[str, Any]) -> dict[str, Any]:
    return {f"v_{k}": v for k, v in values.items()}


def _insert_devices(s: Session, rows: list[dict[str, Any]]) -> set[str]:
    """Insert the new devices; the ids of those another transaction's device got first."""
    if not rows:
        return set()
    if s.get_bind().dialect.name == "sqlite":
        # SQLite writers are serialized (BEGIN IMMEDIATE) and the batch read the machine ids
        # under that lock: no other insert of the same machine can exist.
        s.execute(_INSERT_DEVICES, rows)
        return set()
    inserted = set(s.scalars(_INSERT_DEVICES_PG, rows))
    return {r["id"] for r in rows} - inserted


def _take_uses(s: Session, uses: Counter[str], now: datetime) -> None:
    """One guarded increment per token: it never passes max_uses, nor takes a use of a revoked or
    expired token. The rows are locked since the read, so the guard holds; if it ever did not,
    the batch rolls back rather than over-use a token."""
    for token_id, n in sorted(uses.items()):
        result = s.execute(_TAKE_USES, {"b_id": token_id, "b_n": n, "b_now": now})
        if not isinstance(result, CursorResult) or result.rowcount != 1:
            raise GuardFailed(f"enrollment token {token_id}: {n} use(s) no longer available")


def _update_devices(s: Session, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    s.execute(_update_statement(tuple(k[2:] for k in rows[0] if k.startswith("v_"))), rows)


@functools.cache
def _update_statement(columns: tuple[str, ...]) -> Any:
    """The update of a re-identified device's `columns` (one set in practice: built once)."""
    return _DEVICES.update().where(_DEVICES.c.id == bindparam("b_id")).values(
        {k: bindparam(f"v_{k}") for k in columns})


def _add_to_groups(s: Session, wanted: list[tuple[claims.TokenRow, str, bool]]) -> None:
    """Each device joins its token's groups (a group deleted since the token was made is
    skipped rather than failing the install; a membership it already has is kept once)."""
    pairs = [(g, device_id, token.client_id, new) for token, device_id, new in wanted for g in token.group_ids]
    if not pairs:
        return
    groups = {(r.id, r.client_id) for r in
              s.execute(select(m.Group.id, m.Group.client_id).where(m.Group.id.in_({p[0] for p in pairs})))}
    old_devices = {p[1] for p in pairs if not p[3]}
    member: set[tuple[str, str]] = set()
    if old_devices:
        member = {(r.group_id, r.device_id) for r in s.execute(
            select(m.GroupMember.group_id, m.GroupMember.device_id).where(m.GroupMember.device_id.in_(old_devices)))}
    rows = {(g, dev) for g, dev, client, _ in pairs if (g, client) in groups and (g, dev) not in member}
    if rows:
        s.execute(insert(_MEMBERS), [{"group_id": g, "device_id": dev} for g, dev in sorted(rows)])


# --- ReportEnrollment --------------------------------------------------------------------------

def report_batch(s: Session, calls: list[ReportCall], now: datetime,
                 allow_bearer_only: bool = True) -> list[str | ConvoyError]:
    """Authenticate each call's device by its credential and close its own record (`close_records`)."""
    hashes = {hash_secret(c.credential) for c in calls}
    owners: dict[str, str] = {}
    revoked_at: dict[str, datetime] = {}
    certs: dict[str, str | None] = {}
    for r in s.execute(_REPORTERS, {"hashes": sorted(hashes)}):
        owners[r.credential_hash] = r.id
        certs[r.id] = r.cert_sha256
        if r.revoked_at is not None:
            revoked_at[r.id] = r.revoked_at
    results: list[str | ConvoyError | None] = [None] * len(calls)
    items: list[tuple[int, str, str, bool, list[str]]] = []
    for i, c in enumerate(calls):
        device_id = owners.get(hash_secret(c.credential))
        if device_id is None:
            results[i] = Unauthenticated("invalid device credential: re-enroll this device with `convoy agent install`")
            continue
        if device_id in revoked_at:
            results[i] = revoked(device_id, revoked_at[device_id])
            continue
        try:
            check_certificate(device_id, certs[device_id], c.presented, allow_bearer_only)
        except ConvoyError as exc:
            results[i] = exc
            continue
        try:
            items.append((i, device_id, parse_uuid(c.enrollment_id, "enrollment_id"), c.success, c.log_lines))
        except ConvoyError as exc:
            results[i] = exc
    for (i, *_), out in zip(items, close_records(s, [it[1:] for it in items], now), strict=True):
        results[i] = out
    return [r if r is not None else ConvoyError("report not decided") for r in results]


def close_records(s: Session, items: list[tuple[str, str, bool, list[str]]], now: datetime) -> list[str | ConvoyError]:
    """For each (device id, record id, success, log lines): close the device's own pending record,
    `success` (error_logs null) or `error` (the lines). A duplicate of the report that closed it
    is accepted; one that contradicts its final status (it timed out first) is a Conflict, except
    the correction of a `success` sent with Enroll (coordinator/domain/enrollment_reports.py)."""
    if not items:
        return []
    # Locked: the timeout sweep's guarded UPDATE waits for this transaction and then finds the
    # record no longer pending.
    current = {r.id: (r.device_id, r.status, r.timeout_at)
               for r in s.execute(_SELECT_RECORDS, {"ids": sorted({it[1] for it in items})})}
    out: list[str | ConvoyError] = []
    closing: dict[str, dict[str, Any]] = {}
    for device_id, rid, success, lines in items:
        owner, status, open_until = current.get(rid, ("", "", None))
        if owner != device_id:
            out.append(NotFound("Deployment not found", deployment_id=rid))
            continue
        decision = reports.on_report(rid, status, open_until, success, now)
        if isinstance(decision, ConvoyError):
            out.append(decision)
            continue
        if isinstance(decision, reports.Close):
            current[rid] = (owner, decision.status, None)
            closing[rid] = {"b_id": rid, "b_was": decision.was, "v_status": decision.status,
                            "v_error_logs": None if success else di.log_lines(list(lines))}
        out.append(decision.status)
    for success in (True, False):
        rows = [{**r, "v_now": now} for r in closing.values() if (r["v_status"] == "success") == success]
        if rows:
            s.execute(_CLOSE_RECORDS[success],
                      [{k: v for k, v in r.items() if not (success and k == "v_error_logs")} for r in rows])
    return out

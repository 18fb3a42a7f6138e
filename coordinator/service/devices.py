"""Devices: list, get (with the latest enrollment), and the operator-set tags and site.

`online`, `last_seen_at` and `maintenance_windows` are written by the Connect stream; here they
are only shown.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from common.errors import InvalidArgument, NotFound
from common.ids import parse_uuid
from common.timefmt import iso
from coordinator.auth import Principal
from coordinator.engine.rollout import revoke_records
from coordinator.service.audit_log import action
from coordinator.store import models as m

MAX_LIMIT = 1000


def resolve_client(s: Session, who: Principal, given: str | None, name: str = "client_id") -> str:
    """`given` (checked: 400 malformed, 403 outside scope, 404 missing) or the token's only client."""
    if given:
        client_id = parse_uuid(given, name)
        who.require_client(s, client_id)
        return client_id
    clients = who.visible_clients(s)
    if len(clients) == 1:
        return clients[0]
    raise InvalidArgument(f"{name} is required: this token spans several clients", parameter=name)


def list_scope(s: Session, who: Principal, given: str | None) -> list[str]:
    """The clients a list covers: `given` (checked as resolve_client does), else every client the
    token can see (docs/payloads.md: lists without a client span the token's clients)."""
    return [resolve_client(s, who, given)] if given else who.visible_clients(s)


def require_device(s: Session, who: Principal, client_id: str, device_id: str) -> m.Device:
    """The device, after checking both ids and the token's scope (400, 403, then 404)."""
    client = parse_uuid(client_id, "client_id")
    dev = parse_uuid(device_id, "device_id")
    who.require_client(s, client)
    device = s.get(m.Device, dev)
    if device is None or device.client_id != client:
        raise NotFound("Device not found", device_id=dev)
    return device


def enrollment_ref(r: m.DeviceEnrollment) -> dict[str, Any]:
    """The seed's DeviceDeploymentRef."""
    return {"id": r.id, "status": r.status, "enrollment_date": iso(r.enrollment_date)}


def latest_enrollment(s: Session, device_id: str) -> m.DeviceEnrollment | None:
    d = m.DeviceEnrollment
    return s.scalar(select(d).where(d.device_id == device_id)
                    .order_by(d.enrollment_date.desc(), d.id.desc()).limit(1))


def device_dict(d: m.Device, group_ids: list[str], latest: m.DeviceEnrollment | None) -> dict[str, Any]:
    """A device as both APIs show it (the proto's Device, snake_case)."""
    return {
        "id": d.id,
        "client_id": d.client_id,
        "machine_id": d.machine_id,
        "facts": {
            "hostname": d.hostname, "os": d.os, "os_version": d.os_version, "arch": d.arch,
            "cpu_count": d.cpu_count, "memory_bytes": d.memory_bytes,
            "disks": list(d.disks or []), "ip_addresses": list(d.ip_addresses or []),
        },
        "tags": list(d.tags or []),
        "site": d.site,
        "online": bool(d.online),
        "last_seen_at": iso(d.last_seen_at),
        "agent_version": d.agent_version,
        "maintenance_windows": list(d.maintenance_windows or []),
        "group_ids": group_ids,
        "created_at": iso(d.created_at),
        "updated_at": iso(d.updated_at),
        "latest_enrollment": enrollment_ref(latest) if latest is not None else None,
        "revoked_at": iso(d.revoked_at),
        "identity": "certificate" if d.cert_sha256 else "bearer",
        "certificate_expires_at": iso(d.cert_expires_at),
    }


def _groups_of(s: Session, device_ids: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {d: [] for d in device_ids}
    if device_ids:
        rows = s.execute(select(m.GroupMember.device_id, m.GroupMember.group_id)
                         .where(m.GroupMember.device_id.in_(device_ids))
                         .order_by(m.GroupMember.group_id))
        for device_id, group_id in rows:
            out[device_id].append(group_id)
    return out


def _latest_of(s: Session, device_ids: list[str]) -> dict[str, m.DeviceEnrollment]:
    """The newest record of each device, in one query (window function: both backends)."""
    if not device_ids:
        return {}
    d = m.DeviceEnrollment
    rank = func.row_number().over(partition_by=d.device_id,
                                  order_by=(d.enrollment_date.desc(), d.id.desc())).label("rank")
    sub = select(d.id, rank).where(d.device_id.in_(device_ids)).subquery()
    rows = s.scalars(select(d).join(sub, sub.c.id == d.id).where(sub.c.rank == 1))
    return {r.device_id: r for r in rows}


def _matching_ids(s: Session, clients: list[str], filter_text: str) -> list[str]:
    """Ids of the clients' devices matching a target filter, in list order (what a deployment
    with `targetType: "filter"` would resolve to right now)."""
    from coordinator.domain import filter as target_filter

    try:
        expr = target_filter.parse(filter_text)
    except InvalidArgument as exc:
        raise InvalidArgument(exc.message.replace(target_filter.PARAMETER, "filter", 1),
                              **{**exc.details, "parameter": "filter"}) from None
    groups: dict[str, list[str]] = {}
    for device_id, group_id, name in s.execute(
            select(m.GroupMember.device_id, m.Group.id, m.Group.name)
            .join(m.Group, m.Group.id == m.GroupMember.group_id).where(m.Group.client_id.in_(clients))):
        groups.setdefault(device_id, []).extend((group_id, name))
    rows = s.execute(select(m.Device.id, m.Device.os, m.Device.os_version, m.Device.arch, m.Device.hostname,
                            m.Device.site, m.Device.tags, m.Device.online)
                     .where(m.Device.client_id.in_(clients)).order_by(m.Device.created_at, m.Device.id))
    return [r.id for r in rows if target_filter.matches(expr, {
        "os": r.os, "os_version": r.os_version, "arch": r.arch, "hostname": r.hostname, "site": r.site,
        "tags": list(r.tags or []), "online": bool(r.online), "groups": groups.get(r.id, [])})]


def list_devices(s: Session, who: Principal, client_id: str, limit: int, offset: int,
                 filter_text: str = "") -> dict[str, Any]:
    """A page of the client's devices (of all the token's clients when none is given; oldest first),
    optionally only those matching a target filter expression (the deployment filter language), and
    the total count."""
    if limit < 0 or limit > MAX_LIMIT:
        raise InvalidArgument(f"limit must be between 1 and {MAX_LIMIT} (0 = the default, 100)",
                              parameter="limit", value=limit)
    if not 0 <= offset <= 10**9:
        raise InvalidArgument("offset must be between 0 and 1000000000", parameter="offset", value=offset)
    clients = list_scope(s, who, client_id)
    size = limit or 100
    if filter_text.strip():
        ids = _matching_ids(s, clients, filter_text)
        total = len(ids)
        page = ids[offset:offset + size]
        by_id = {d.id: d for d in s.scalars(select(m.Device).where(m.Device.id.in_(page)))} if page else {}
        rows = [by_id[i] for i in page]
    else:
        in_scope = m.Device.client_id.in_(clients)
        total = s.scalar(select(func.count()).select_from(m.Device).where(in_scope)) or 0
        rows = list(s.scalars(select(m.Device).where(in_scope)
                              .order_by(m.Device.created_at, m.Device.id).limit(size).offset(offset)))
    ids = [d.id for d in rows]
    groups, latest = _groups_of(s, ids), _latest_of(s, ids)
    return {"data": [device_dict(d, groups[d.id], latest.get(d.id)) for d in rows], "total": total}


def get_device(s: Session, who: Principal, client_id: str, device_id: str) -> dict[str, Any]:
    client = resolve_client(s, who, client_id)
    device = require_device(s, who, client, device_id)
    return device_dict(device, _groups_of(s, [device.id])[device.id], latest_enrollment(s, device.id))


@action("device.update")
def update_device(s: Session, who: Principal, client_id: str, device_id: str, tags: list[str] | None,
                  site: str | None, now: datetime) -> dict[str, Any]:
    """Replace the device's tags and/or site (None leaves a field as it is)."""
    who.require_role("operator", "update devices")
    client = resolve_client(s, who, client_id)
    device = require_device(s, who, client, device_id)
    if tags is not None:
        clean = [t.strip() for t in tags]
        if any(not t or len(t) > 100 for t in clean):
            raise InvalidArgument("tags must be non-empty and at most 100 characters", parameter="tags")
        device.tags = list(dict.fromkeys(clean))
    if site is not None:
        if len(site) > 200:
            raise InvalidArgument("site must be at most 200 characters", parameter="site")
        device.site = site.strip()
    if tags is not None or site is not None:
        device.updated_at = now
    return get_device(s, who, client, device.id)


@action("device.revoke")
def revoke_device(s: Session, who: Principal, client_id: str, device_id: str,
                  now: datetime) -> tuple[dict[str, Any], list[str], list[tuple[str, str, str]]]:
    """Revoke a device (idempotent; operator role): its credential is refused from now on and
    each of its unfinished deployment records ends (domain/records.py, `Revoked`), so no rollout
    waits for it. Returns the device, the deployments touched and the withdrawals to send; the
    door closes the device's stream on whichever replica holds it."""
    who.require_role("operator", "revoke devices")
    client = resolve_client(s, who, client_id)
    device = require_device(s, who, client, device_id)
    touched: list[str] = []
    withdrawn: list[tuple[str, str, str]] = []
    if device.revoked_at is None:
        device.revoked_at, device.revoked_by = now, who.token_id
        device.online, device.connection_id, device.updated_at = False, None, now
        touched, withdrawn = revoke_records(s, device.id, now)
    return get_device(s, who, client, device.id), touched, withdrawn

"""Clients (organizations) and API tokens."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from common.errors import Conflict, InvalidArgument, NotFound, PermissionDenied
from common.ids import new_id, parse_uuid
from common.secrets import hash_secret, mint
from common.timefmt import iso
from coordinator.auth import ROLES, Principal
from coordinator.service import audit_log
from coordinator.service.audit_log import action
from coordinator.store import models as m
from coordinator.store.db import Store


def bootstrap(store: Store, client_name: str, now: datetime, *, force: bool = False) -> dict[str, str]:
    """Create a client and a partner-level admin token, directly on the store (no network)."""
    if not client_name.strip():
        raise InvalidArgument("--client-name must not be empty", parameter="client_name")
    with store.tx() as s:
        existing = s.scalar(select(func.count()).select_from(m.ApiToken).where(
            m.ApiToken.partner.is_(True), m.ApiToken.revoked_at.is_(None)))
        if existing and not force:
            raise Conflict("this store already has a partner admin token; pass --force to mint another",
                           existing=existing)
        client = m.Client(id=new_id(), name=client_name.strip(), created_at=now)
        s.add(client)
        token = mint("api")
        s.add(m.ApiToken(id=new_id(), token_hash=hash_secret(token), name="bootstrap", role="admin",
                         partner=True, created_at=now))
    return {"client_id": client.id, "token": token}


def client_dict(c: m.Client) -> dict[str, str]:
    return {"id": c.id, "name": c.name, "created_at": iso(c.created_at) or ""}


@action("client.create")
def create_client(s: Session, who: Principal, name: str, now: datetime) -> dict[str, str]:
    who.require_partner("create clients")
    if not name.strip():
        raise InvalidArgument("name must not be empty", parameter="name")
    client = m.Client(id=new_id(), name=name.strip(), created_at=now)
    s.add(client)
    audit_log.note(s, client_ids=[client.id])
    return client_dict(client)


def list_clients(s: Session, who: Principal) -> list[dict[str, str]]:
    ids = who.visible_clients(s)
    if not ids:
        return []
    rows = s.scalars(select(m.Client).where(m.Client.id.in_(ids)).order_by(m.Client.created_at))
    return [client_dict(c) for c in rows]


MAX_TOKEN_LIFETIME_S = 3650 * 86400


@action("api_token.create")
def create_api_token(s: Session, who: Principal, client_ids: list[str], role: str, name: str,
                     now: datetime, expires_in_s: float = 0.0) -> dict[str, str]:
    """A token for `client_ids` with `role`; `expires_in_s` 0 = never expires."""
    if not math.isfinite(expires_in_s) or not 0 <= expires_in_s <= MAX_TOKEN_LIFETIME_S:
        raise InvalidArgument("expires-in must be between 0 (never) and 3650 days", parameter="expires_in")
    if role not in ROLES:
        raise InvalidArgument(f"role must be one of {', '.join(ROLES)}", parameter="role", value=role)
    if not client_ids:
        raise InvalidArgument("at least one client is required", parameter="client")
    who.require_role("admin", "create API tokens")
    parsed = [parse_uuid(c, "client") for c in client_ids]
    for client_id in parsed:
        who.require_client(s, client_id)
    token = mint("api")
    row = m.ApiToken(id=new_id(), token_hash=hash_secret(token), name=name, role=role, partner=False,
                     created_at=now, created_by=who.token_id,
                     expires_at=now + timedelta(seconds=expires_in_s) if expires_in_s else None)
    s.add(row)
    s.flush()
    for client_id in dict.fromkeys(parsed):
        s.add(m.ApiTokenClient(token_id=row.id, client_id=client_id))
    audit_log.note(s, client_ids=dict.fromkeys(parsed), summary=f"name={name}, role={role}")
    return {"id": row.id, "token": token}


def api_token_dict(t: m.ApiToken, client_ids: list[str]) -> dict[str, object]:
    return {"id": t.id, "name": t.name, "role": t.role, "partner": t.partner, "client_ids": client_ids,
            "created_at": iso(t.created_at) or "", "expires_at": iso(t.expires_at) or "",
            "revoked": t.revoked_at is not None, "created_by": t.created_by or ""}


def _token_clients(s: Session, token_ids: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {t: [] for t in token_ids}
    for i in range(0, len(token_ids), 1000):
        rows = s.execute(select(m.ApiTokenClient.token_id, m.ApiTokenClient.client_id)
                         .where(m.ApiTokenClient.token_id.in_(token_ids[i:i + 1000])))
        for token_id, client_id in rows:
            out[token_id].append(client_id)
    return {t: sorted(c) for t, c in out.items()}


def _may_manage(who: Principal, token: m.ApiToken, clients: list[str]) -> bool:
    """A partner manages every token; an admin only tokens all of whose clients it administers."""
    if who.partner:
        return True
    return not token.partner and bool(clients) and all(who.can_see(c) for c in clients)


def list_api_tokens(s: Session, who: Principal, client_id: str) -> list[dict[str, object]]:
    """The API tokens the caller may manage (admin role), optionally only those of one client."""
    who.require_role("admin", "list API tokens")
    wanted = parse_uuid(client_id, "client") if client_id else None
    if wanted:
        who.require_client(s, wanted)
    rows = list(s.scalars(select(m.ApiToken).order_by(m.ApiToken.created_at, m.ApiToken.id)))
    clients = _token_clients(s, [r.id for r in rows])
    out = []
    for row in rows:
        cs = clients[row.id]
        if not _may_manage(who, row, cs) or (wanted and wanted not in cs and not row.partner):
            continue
        out.append(api_token_dict(row, cs))
    return out


@action("api_token.revoke")
def revoke_api_token(s: Session, who: Principal, token_id: str, now: datetime) -> dict[str, object]:
    """Revoke a token (idempotent); it is refused from its next call on."""
    who.require_role("admin", "revoke API tokens")
    tid = parse_uuid(token_id, "token_id")
    row = s.get(m.ApiToken, tid)
    clients = _token_clients(s, [tid])[tid] if row is not None else []
    if row is None or not (who.partner or any(who.can_see(c) for c in clients)):
        raise NotFound("API token not found", token_id=tid)
    if not _may_manage(who, row, clients):
        raise PermissionDenied("this token also serves clients outside yours (or is a partner token): "
                               "only a partner admin can revoke it", token_id=tid)
    if row.revoked_at is None:
        row.revoked_at = now
    audit_log.note(s, client_ids=clients or [None], summary=f"name={row.name}, role={row.role}")
    return api_token_dict(row, clients)

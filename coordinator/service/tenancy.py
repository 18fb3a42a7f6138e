"""Clients (organizations) and API tokens."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from common.errors import Conflict, InvalidArgument
from common.ids import new_id, parse_uuid
from common.secrets import hash_secret, mint
from common.timefmt import iso
from coordinator.auth import ROLES, Principal
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


def create_client(s: Session, who: Principal, name: str, now: datetime) -> dict[str, str]:
    who.require_partner("create clients")
    if not name.strip():
        raise InvalidArgument("name must not be empty", parameter="name")
    client = m.Client(id=new_id(), name=name.strip(), created_at=now)
    s.add(client)
    return client_dict(client)


def list_clients(s: Session, who: Principal) -> list[dict[str, str]]:
    ids = who.visible_clients(s)
    if not ids:
        return []
    rows = s.scalars(select(m.Client).where(m.Client.id.in_(ids)).order_by(m.Client.created_at))
    return [client_dict(c) for c in rows]


def create_api_token(s: Session, who: Principal, client_ids: list[str], role: str, name: str,
                     now: datetime) -> dict[str, str]:
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
                     created_at=now)
    s.add(row)
    s.flush()
    for client_id in dict.fromkeys(parsed):
        s.add(m.ApiTokenClient(token_id=row.id, client_id=client_id))
    return {"id": row.id, "token": token}

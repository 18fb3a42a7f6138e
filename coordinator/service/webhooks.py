"""A client's webhooks: create (the secret is shown once), list, delete, and the deliveries of one
(docs/webhooks.md). Admins create and delete them; operators may look (a receiver's URL can
itself be a credential, as chat services' incoming-webhook URLs are, so viewers do not see it).
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from common.errors import InvalidArgument, NotFound
from common.ids import new_id, parse_uuid
from common.timefmt import iso
from coordinator.auth import Principal
from coordinator.domain import webhooks as W
from coordinator.store import models as m
from coordinator.webhook_keys import WebhookKeys

MAX_PER_CLIENT = 50
DELIVERY_STATUSES = ("pending", "delivered", "dead")


def _client(s: Session, who: Principal, client_id: str, role: str, action: str) -> str:
    """The client (default: the token's only one), checked in scope and for `role`."""
    cid = parse_uuid(client_id, "clientId") if client_id else who.default_client(s, None)
    who.require_client(s, cid)
    who.require_role(role, action)
    return cid


def webhook_dict(row: m.Webhook) -> dict[str, Any]:
    return {"id": row.id, "clientId": row.client_id, "url": row.url, "events": list(row.events or []),
            "createdAt": iso(row.created_at), "createdBy": row.created_by}


def check_receiver(url: str, allow_link_local: bool) -> None:
    """400 for a URL that cannot be a receiver (docs/webhooks.md, "Receiver addresses")."""
    why = W.check_url(url)
    if why is None and not allow_link_local:
        refused = W.refused_address(W.url_host(url))
        if refused:
            why = (f"url is refused: {refused} (an operator-supplied URL must not reach the coordinator's "
                   "own cloud credentials; start the coordinator with --webhooks-allow-link-local to allow it)")
    if why:
        raise InvalidArgument(why, parameter="url")


def create(s: Session, who: Principal, client_id: str, url: Any, events: Any, now: datetime, keys: WebhookKeys,
           allow_link_local: bool = False) -> dict[str, Any]:
    """A new webhook and its signing secret (returned here only; stored encrypted)."""
    cid = _client(s, who, client_id, "admin", "create webhooks")
    if not isinstance(url, str):
        raise InvalidArgument("url is required: http:// or https://", parameter="url")
    url = url.strip()
    check_receiver(url, allow_link_local)
    if events is None:
        events = []
    if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
        raise InvalidArgument(f"events must be a list of event types ({', '.join(W.EVENTS)})", parameter="events")
    try:
        wanted = W.parse_events([e.strip() for e in events if e.strip()])
    except ValueError as exc:
        raise InvalidArgument(str(exc), parameter="events") from None
    count = s.scalar(select(func.count()).select_from(m.Webhook).where(m.Webhook.client_id == cid)) or 0
    if count >= MAX_PER_CLIENT:
        raise InvalidArgument(f"a client has at most {MAX_PER_CLIENT} webhooks; delete one first", parameter="url")
    secret = "whsec_" + secrets.token_urlsafe(32)
    row = m.Webhook(id=new_id(), client_id=cid, url=url, events=wanted, secret_encrypted=keys.encrypt(secret),
                    secret_key_id=keys.key_id, created_at=now, created_by=who.token_id)
    s.add(row)
    s.flush()
    return {**webhook_dict(row), "secret": secret}


def list_webhooks(s: Session, who: Principal, client_id: str) -> list[dict[str, Any]]:
    cid = _client(s, who, client_id, "operator", "list webhooks")
    rows = s.scalars(select(m.Webhook).where(m.Webhook.client_id == cid).order_by(m.Webhook.created_at, m.Webhook.id))
    return [webhook_dict(r) for r in rows]


def _webhook(s: Session, cid: str, webhook_id: str) -> m.Webhook:
    wid = parse_uuid(webhook_id, "webhookId")
    row = s.get(m.Webhook, wid)
    if row is None or row.client_id != cid:
        raise NotFound("Webhook not found", webhook_id=wid)
    return row


def delete(s: Session, who: Principal, client_id: str, webhook_id: str) -> dict[str, Any]:
    """Remove a webhook and its deliveries (pending ones are never sent)."""
    cid = _client(s, who, client_id, "admin", "delete webhooks")
    row = _webhook(s, cid, webhook_id)
    out = webhook_dict(row)
    s.delete(row)
    s.flush()
    return out


def delivery_dict(row: m.WebhookDelivery) -> dict[str, Any]:
    return {"id": row.id, "webhookId": row.webhook_id, "eventId": row.event_id, "eventType": row.event_type,
            "deploymentId": row.deployment_id, "status": row.status, "attempts": row.attempts,
            "nextAttemptAt": iso(row.next_attempt_at) if row.next_attempt_at else None,
            "lastStatusCode": row.last_status_code, "lastError": row.last_error or None,
            "createdAt": iso(row.created_at), "deliveredAt": iso(row.delivered_at) if row.delivered_at else None}


def list_deliveries(s: Session, who: Principal, client_id: str, webhook_id: str, status: str | None = None,
                    limit: int | None = None) -> tuple[list[dict[str, Any]], int]:
    """A webhook's deliveries, newest first, and how many match."""
    cid = _client(s, who, client_id, "operator", "list webhook deliveries")
    hook = _webhook(s, cid, webhook_id)
    if status and status not in DELIVERY_STATUSES:
        raise InvalidArgument(f"status must be one of {', '.join(DELIVERY_STATUSES)}", parameter="status")
    lim = 50 if limit is None else limit
    if not 1 <= lim <= 500:
        raise InvalidArgument("limit must be between 1 and 500", parameter="limit")
    cond = [m.WebhookDelivery.webhook_id == hook.id, *([m.WebhookDelivery.status == status] if status else [])]
    total = s.scalar(select(func.count()).select_from(m.WebhookDelivery).where(*cond)) or 0
    rows = s.scalars(select(m.WebhookDelivery).where(*cond)
                     .order_by(m.WebhookDelivery.created_at.desc(), m.WebhookDelivery.id).limit(lim))
    return [delivery_dict(r) for r in rows], total

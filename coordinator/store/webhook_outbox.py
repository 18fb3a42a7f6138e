"""The webhook outbox: rows written with a deployment's move, claimed and settled by the delivery
worker (coordinator/service/webhook_delivery.py). The rules are in coordinator/domain/webhooks.py.

Claims are row locks with SKIP LOCKED on PostgreSQL, so replicas never take the same row, and a
claim moves the row's next_attempt_at one lease ahead: if the claiming replica dies, the row is
simply due again then, for anyone. SQLite is one process whose writers queue (store/db.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from common.ids import new_id
from common.timefmt import iso
from coordinator.domain import webhooks as W
from coordinator.store import models as m

ENQUEUED = "webhook_enqueued"
"""Set in `Session.info` by `enqueue`: the delivery worker listens for commits that carry it."""


def event_body(d: m.Deployment, event: str, event_id: str, before: str, reason: str, actor: str,
               now: datetime) -> str:
    """The JSON body of one event (docs/webhooks.md, "Payload"), fixed at the move."""
    body = {
        "id": event_id, "type": event, "createdAt": iso(now), "clientId": d.client_id,
        "deployment": {
            "id": d.id, "name": d.name, "type": d.type, "status": d.status, "previousStatus": before,
            "statusReason": d.status_reason or None, "currentBatch": d.current_batch,
            "totalBatches": d.total_batches,
            "progress": {"total": d.total, "pending": d.n_pending, "running": d.n_running,
                         "completed": d.n_completed, "failed": d.n_failed, "skipped": d.n_skipped},
            "rollbackOf": d.rollback_of, "rolledBackBy": d.rolled_back_by,
        },
        "reason": reason, "actor": actor,
    }
    return json.dumps(body, separators=(",", ":"), sort_keys=True)


def enqueue(s: Session, d: m.Deployment, event: str, before: str, reason: str, actor: str, now: datetime) -> int:
    """One pending delivery per webhook of `d`'s client that wants `event`, in `s`'s transaction."""
    hooks = [h for h in s.scalars(select(m.Webhook).where(m.Webhook.client_id == d.client_id))
             if W.wants(list(h.events or []), event)]
    if not hooks:
        return 0
    event_id = new_id()
    body = event_body(d, event, event_id, before, reason, actor, now)
    for h in hooks:
        s.add(m.WebhookDelivery(id=new_id(), webhook_id=h.id, client_id=d.client_id, event_id=event_id,
                                event_type=event, deployment_id=d.id, body=body, status="pending", attempts=0,
                                next_attempt_at=now, lease_until=None, last_error="", last_status_code=None,
                                created_at=now, delivered_at=None, updated_at=now))
    s.info[ENQUEUED] = True
    return len(hooks)


@dataclass(frozen=True)
class Claimed:
    """A delivery this replica now holds for one attempt."""

    id: str
    webhook_id: str
    url: str
    secret_encrypted: str
    event_id: str
    event_type: str
    body: str
    attempt: int


def claim(s: Session, now: datetime, key_id: str, limit: int = 20) -> list[Claimed]:
    """Take up to `limit` due deliveries whose secret this replica's key can open."""
    rows = s.execute(
        select(m.WebhookDelivery, m.Webhook)
        .join(m.Webhook, m.Webhook.id == m.WebhookDelivery.webhook_id)
        .where(m.WebhookDelivery.status == "pending", m.WebhookDelivery.next_attempt_at <= now,
               m.Webhook.secret_key_id == key_id)
        .order_by(m.WebhookDelivery.next_attempt_at).limit(limit)
        .with_for_update(skip_locked=True, of=m.WebhookDelivery)).all()
    lease = now + timedelta(seconds=W.LEASE_S)
    out = []
    for delivery, hook in rows:
        delivery.attempts += 1
        delivery.next_attempt_at = delivery.lease_until = lease
        delivery.updated_at = now
        out.append(Claimed(delivery.id, hook.id, hook.url, hook.secret_encrypted, delivery.event_id,
                           delivery.event_type, delivery.body, delivery.attempts))
    s.flush()
    return out


def settle(s: Session, delivery_id: str, attempt: int, result: W.AttemptResult, status_code: int | None,
           error: str, now: datetime) -> bool:
    """Write an attempt's outcome, guarded by the attempt number (a claim that expired and was
    taken again elsewhere is not overwritten by the late first try). False if not written."""
    done = s.execute(update(m.WebhookDelivery)
                     .where(m.WebhookDelivery.id == delivery_id, m.WebhookDelivery.attempts == attempt,
                            m.WebhookDelivery.status == "pending")
                     .values(status=result.status, next_attempt_at=result.next_attempt_at, lease_until=None,
                             last_status_code=status_code, last_error=error[:2000], updated_at=now,
                             delivered_at=now if result.status == "delivered" else None)
                     .execution_options(synchronize_session=False))
    return bool(done.rowcount)  # type: ignore[attr-defined]


def foreign_webhooks(s: Session, key_id: str) -> int:
    """Webhooks whose secrets another key encrypted."""
    return s.scalar(select(func.count()).select_from(m.Webhook).where(m.Webhook.secret_key_id != key_id)) or 0


def next_due(s: Session, key_id: str) -> datetime | None:
    """The earliest next_attempt_at of a pending delivery this replica could take."""
    return s.scalar(select(func.min(m.WebhookDelivery.next_attempt_at))
                    .join(m.Webhook, m.Webhook.id == m.WebhookDelivery.webhook_id)
                    .where(m.WebhookDelivery.status == "pending", m.Webhook.secret_key_id == key_id))

"""Guarded deployment transitions and their audit rows: the one way a deployment's status moves.

Used by the service (API actions) and the engine alike, so neither imports the other.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import or_, update
from sqlalchemy.orm import Session

from common.errors import Conflict
from coordinator.domain.states import check_action
from coordinator.domain.webhooks import event_for
from coordinator.store import models as m
from coordinator.store.inlist import id_in
from coordinator.store.webhook_outbox import enqueue


def add_event(s: Session, d: m.Deployment, actor: str, from_status: str, to_status: str, reason: str,
              now: datetime) -> None:
    s.add(m.DeploymentEvent(deployment_id=d.id, at=now, actor=actor, from_status=from_status,
                            to_status=to_status, reason=reason))


def mark_due(s: Session, deployment_ids: Iterable[str], now: datetime) -> None:
    """These deployments need an engine's look now (any replica's): their stored due time is
    brought forward to `now`, in the transaction of the change, so a replica dying before its
    engine reconciles costs nothing. Callers hold the deployments' row locks already."""
    for among in id_in(s, m.Deployment.id, sorted(set(deployment_ids))):
        s.execute(update(m.Deployment)
                  .where(among,
                         or_(m.Deployment.due_at.is_(None), m.Deployment.due_at > now))
                  .values(due_at=now).execution_options(synchronize_session=False))


def transition(s: Session, d: m.Deployment, action: str, now: datetime, actor: str, reason: str = "",
               **fields: Any) -> None:
    """Move `d` by `action` (checked against the state table), as an update guarded by the row's
    version; Conflict if someone else moved it first. Records the move in deployment_events, and
    queues the webhooks it is an event for (docs/webhooks.md) in the same transaction: a move
    that rolls back sends nothing, one that commits is delivered even across a restart."""
    target = check_action(action, d.status)
    assert target is not None, f"{action} has no fixed target status"
    before = d.status
    result = s.execute(
        update(m.Deployment)
        .where(m.Deployment.id == d.id, m.Deployment.version == d.version)
        # due_at: a moved deployment is due for an engine now (the engine's own moves write the
        # real next due time when their reconcile ends).
        .values(status=target, version=m.Deployment.version + 1, updated_at=now, due_at=now, **fields)
        .execution_options(synchronize_session=False))
    if result.rowcount != 1:  # type: ignore[attr-defined]
        s.refresh(d)
        raise Conflict(f"deployment changed concurrently; it is now {d.status}", status=d.status)
    s.refresh(d)
    if before != target or reason:
        add_event(s, d, actor, before, target, reason, now)
    event = event_for(action, before, target)
    if event is not None:
        enqueue(s, d, event, before, reason, actor, now)
    if actor.startswith("engine"):
        # The engine's own moves (auto-pause, batch starts, completion…) are in the global audit
        # log too; an operator's are written there by the door that ran them (api/base.py).
        replica = actor.partition("@")[2]
        s.add(m.AuditEntry(at=now, actor=actor, actor_name="", action=f"deployment.{action}", client_id=d.client_id,
                           target_id=d.id, replica=replica, outcome="ok",
                           summary=f"{before} -> {target}" + (f": {reason}" if reason else "")))

"""A deployment's audit trail, read back: every transition and approval in `deployment_events`
(who or what caused it, when, why), oldest first."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from common.timefmt import iso
from coordinator.auth import Principal
from coordinator.service.audit_log import bounded
from coordinator.service.deployments import LIST_LIMIT_MAX, load
from coordinator.store import models as m


def list_events(s: Session, who: Principal, deployment_id: str, *, limit: int | None,
                offset: int | None) -> tuple[list[dict[str, Any]], int]:
    """The events of a deployment the caller may see (404 otherwise), oldest first. `actor` is an
    API token id (named by `actorName` while the token exists), `engine@<replica id>` (`engine`
    in rows written before replica ids) or `agent:<device>`."""
    d = load(s, who, deployment_id)
    lim = bounded(limit, "limit", 100, 1, LIST_LIMIT_MAX)
    off = bounded(offset, "offset", 0, 0, 10**9)
    total = s.scalar(select(func.count()).select_from(m.DeploymentEvent)
                     .where(m.DeploymentEvent.deployment_id == d.id)) or 0
    rows = s.execute(select(m.DeploymentEvent, m.ApiToken.name)
                     .join(m.ApiToken, m.ApiToken.id == m.DeploymentEvent.actor, isouter=True)
                     .where(m.DeploymentEvent.deployment_id == d.id)
                     .order_by(m.DeploymentEvent.id).limit(lim).offset(off))
    return [{"at": iso(e.at), "actor": e.actor, "actorName": name or "", "fromStatus": e.from_status,
             "toStatus": e.to_status, "reason": e.reason} for e, name in rows], total

"""A device's records across deployments: what ran on it, newest first (the dashboard's device
page; seed 004 lists records per deployment, this is the same record per device)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from common.errors import InvalidArgument
from coordinator.auth import Principal
from coordinator.service.deployments import record_dict
from coordinator.service.devices import require_device, resolve_client
from coordinator.store import models as m

MAX_LIMIT = 500


def list_for_device(s: Session, who: Principal, client_id: str, device_id: str, limit: int = 50,
                    offset: int = 0) -> dict[str, Any]:
    """`{"data": [record + deploymentName, deploymentStatus], "total"}`; 404 for a device outside
    the client, 403 for a client outside the token."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidArgument(f"limit must be between 1 and {MAX_LIMIT}", parameter="limit", value=limit)
    if not 0 <= offset <= 10**9:  # beyond, SQLite cannot even bind it (a 500, not a 400)
        raise InvalidArgument("offset must be between 0 and 1000000000", parameter="offset", value=offset)
    client = resolve_client(s, who, client_id)
    device = require_device(s, who, client, device_id)
    where = (m.DeploymentDevice.device_id == device.id, m.Deployment.client_id == client)
    total = s.scalar(select(func.count()).select_from(m.DeploymentDevice)
                     .join(m.Deployment, m.Deployment.id == m.DeploymentDevice.deployment_id).where(*where))
    rows = s.execute(select(m.DeploymentDevice, m.Deployment.name, m.Deployment.status)
                     .join(m.Deployment, m.Deployment.id == m.DeploymentDevice.deployment_id).where(*where)
                     .order_by(m.Deployment.created_at.desc(), m.Deployment.id).limit(limit).offset(offset))
    data = [{**record_dict(r, device.hostname), "deploymentName": name, "deploymentStatus": status}
            for r, name, status in rows]
    return {"data": data, "total": int(total or 0), "limit": limit, "offset": offset}

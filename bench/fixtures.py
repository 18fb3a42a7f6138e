"""Stores seeded directly (no network) for the engine-level benchmarks: N online devices and a
deployment to all of them, created through the same service functions the API calls."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from sqlalchemy import insert

from common.clock import utcnow
from common.ids import new_id
from coordinator.auth import Principal
from coordinator.service import deployments as deployments_service
from coordinator.store import models as m
from coordinator.store.db import Store


def seed_devices(store: Store, n: int, now: datetime | None = None) -> tuple[Principal, str]:
    """A client with `n` online devices; returns an admin principal and the client id."""
    now = now or utcnow()
    client_id = new_id()
    with store.tx() as s:
        s.add(m.Client(id=client_id, name=f"bench {client_id[:8]}", created_at=now))
        s.flush()
        rows = [{"id": new_id(), "client_id": client_id, "machine_id": f"m-{i:07d}", "credential_hash": hashlib.sha256(new_id().encode()).hexdigest(),
                 "hostname": f"host-{i:07d}", "os": "linux", "os_version": "12", "arch": "x86_64", "cpu_count": 2,
                 "memory_bytes": 1 << 31, "disks": [], "ip_addresses": [], "tags": [], "site": "", "agent_version": "bench",
                 "maintenance_windows": [], "online": True, "last_seen_at": now, "created_at": now, "updated_at": now}
                for i in range(n)]
        for i in range(0, n, 2000):
            s.execute(insert(m.Device), rows[i:i + 2000])
    who = Principal(token_id="bench", role="admin", partner=True, client_ids=frozenset({client_id}))
    return who, client_id


def new_deployment(store: Store, who: Principal, client_id: str, batch_size: Any = None,
                   now: datetime | None = None) -> str:
    """A patch deployment to every device of the client, initialized and started (not dispatched)."""
    now = now or utcnow()
    rollout: dict[str, Any] = {"type": "immediate"}
    if batch_size is not None:
        rollout = {"type": "staggered", "staggered": {"batchSize": batch_size, "batchDelayMinutes": 0}}
    body = {"name": "bench", "type": "patch", "clientId": client_id, "targetType": "all",
            "payload": {"packages": [{"name": "bench", "version": "latest"}]}, "rolloutConfig": rollout}
    with store.tx() as s:
        dep_id = str(deployments_service.create(s, who, body, now)["id"])
    with store.tx() as s:
        deployments_service.initialize(s, who, dep_id, now)
    with store.tx() as s:
        deployments_service.start(s, who, dep_id, now)
    return dep_id

"""Timers in the store (replica mode): every deployment's next due time is stored by the change
or reconcile that set it, found with one index range by any engine, and claimed with a row lock
that a second engine skips instead of waiting on (PostgreSQL)."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select

from coordinator.auth import authenticate_api
from coordinator.engine.rollout import (
    Report,
    apply_reports,
    due_deployment_ids,
    earliest_due,
    reconcile,
)
from coordinator.service import deployments as svc
from coordinator.service import payloads
from coordinator.service.tenancy import bootstrap
from coordinator.store import models as m
from coordinator.store.db import Store

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
STAGGERED = {"type": "staggered", "staggered": {"batchSize": 1, "batchDelayMinutes": 10}}


def _devices(client_id: str, n: int) -> list[dict[str, Any]]:
    return [{"id": str(uuid.uuid4()), "client_id": client_id, "machine_id": f"m{i}",
             "credential_hash": uuid.uuid4().hex + uuid.uuid4().hex, "online": True, "last_seen_at": T0,
             "created_at": T0, "updated_at": T0, "hostname": f"h{i}", "os": "linux", "os_version": "12",
             "arch": "x86_64", "cpu_count": 1, "memory_bytes": 0, "disks": [], "ip_addresses": [], "tags": [],
             "site": "", "agent_version": "test", "maintenance_windows": []} for i in range(n)]


def _started(store: Store, n: int = 2) -> str:
    boot = bootstrap(store, "due", T0, force=True)
    with store.tx() as s:
        who = authenticate_api(s, boot["token"])
        s.execute(insert(m.Device), _devices(boot["client_id"], n))
        script = payloads.create_script(s, who, boot["client_id"], "x", "sh", "echo ok", "", "", T0)
        dep = svc.create(s, who, {"name": "due", "type": "script", "payload": {"scriptId": script["id"]},
                                  "targetType": "all", "rolloutConfig": STAGGERED}, T0)
        svc.initialize(s, who, dep["id"], T0)
        svc.start(s, who, dep["id"], T0)
    return str(dep["id"])


def _due_at(store: Store, dep_id: str) -> datetime | None:
    with store.read() as s:
        return s.scalar(select(m.Deployment.due_at).where(m.Deployment.id == dep_id))


def test_the_next_due_time_is_stored_by_changes_and_reconciles(store: Store) -> None:
    dep_id = _started(store)
    assert _due_at(store, dep_id) == T0  # start: due now, for whichever engine comes first
    with store.read() as s:
        assert due_deployment_ids(s, T0) == [dep_id] and earliest_due(s) == T0
    with store.tx() as s:
        jobs = reconcile(s, dep_id, T0).dispatched  # batch 1 out; next due: its install deadline
    assert len(jobs) == 1
    deadline = _due_at(store, dep_id)
    assert deadline is not None and deadline > T0
    with store.read() as s:
        assert due_deployment_ids(s, T0) == [] and earliest_due(s) == deadline
    t1 = T0 + timedelta(seconds=5)
    with store.tx() as s:  # the device reports: due now again (any replica's engine may look)
        apply_reports(s, [Report(jobs[0].device_id, jobs[0].job_id, "completed", exit_code=0)], t1)
    assert _due_at(store, dep_id) == t1
    with store.tx() as s:
        result = reconcile(s, dep_id, t1)  # batch 1 done: the delay's end is the next due time
    assert result.next_due == t1 + timedelta(minutes=10) == _due_at(store, dep_id)
    later = t1 + timedelta(minutes=10)
    with store.read() as s:
        assert due_deployment_ids(s, later - timedelta(seconds=1)) == []
        assert due_deployment_ids(s, later) == [dep_id]
    with store.tx() as s:
        assert len(reconcile(s, dep_id, later).dispatched) == 1  # batch 2, by whoever claimed it


def test_a_second_engine_skips_a_deployment_another_holds(store: Store) -> None:
    dep_id = _started(store)
    if store.dialect == "sqlite":
        # One writer at a time: the second engine waits for the write lock; nothing to skip.
        with store.tx() as s:
            assert not reconcile(s, dep_id, T0, skip_locked=True).skipped
        return
    holding, release = threading.Event(), threading.Event()

    def other_replica() -> None:
        with store.tx() as s:
            s.scalar(select(m.Deployment).where(m.Deployment.id == dep_id).with_for_update())
            holding.set()
            release.wait(10)

    t = threading.Thread(target=other_replica)
    t.start()
    try:
        assert holding.wait(10)
        start = time.monotonic()
        with store.tx() as s:
            result = reconcile(s, dep_id, T0, skip_locked=True)
        assert result.skipped and not result.dispatched
        assert time.monotonic() - start < 1.0  # did not wait for the other engine
    finally:
        release.set()
        t.join(10)
    with store.tx() as s:
        result = reconcile(s, dep_id, T0, skip_locked=True)
    assert not result.skipped and len(result.dispatched) == 1
    with store.tx() as s:  # an unknown deployment is not "held by someone"
        assert not reconcile(s, str(uuid.uuid4()), T0, skip_locked=True).skipped

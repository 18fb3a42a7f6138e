"""The webhook outbox on SQLite and PostgreSQL: rows are written in the transaction of the
deployment's move (none for a move that rolls back), claimed under a lease that a second claimer
skips (SKIP LOCKED across sessions on PostgreSQL), re-claimable when the lease ends, settled only
by the attempt that holds them, and dead after the tenth failed attempt."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select

from common.errors import Conflict
from coordinator.auth import authenticate_api
from coordinator.domain import webhooks as W
from coordinator.service import deployments as svc
from coordinator.service import payloads, webhooks
from coordinator.service.tenancy import bootstrap
from coordinator.store import models as m
from coordinator.store import webhook_outbox as outbox
from coordinator.store.db import Store
from coordinator.store.transitions import transition
from coordinator.webhook_keys import WebhookKeys

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _device(client_id: str) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "client_id": client_id, "machine_id": "m0",
            "credential_hash": uuid.uuid4().hex + uuid.uuid4().hex, "online": True, "last_seen_at": T0,
            "created_at": T0, "updated_at": T0, "hostname": "h0", "os": "linux", "os_version": "12",
            "arch": "x86_64", "cpu_count": 1, "memory_bytes": 0, "disks": [], "ip_addresses": [], "tags": [],
            "site": "", "agent_version": "test", "maintenance_windows": []}


@pytest.fixture
def keys(tmp_path: Path) -> WebhookKeys:
    return WebhookKeys.load_or_create(tmp_path / "data")


def _setup(store: Store, keys: WebhookKeys, filters: list[list[str]]) -> tuple[str, list[str]]:
    """A pending deployment of one device, and one webhook per event filter."""
    boot = bootstrap(store, "hooks", T0, force=True)
    with store.tx() as s:
        who = authenticate_api(s, boot["token"])
        s.execute(insert(m.Device), [_device(boot["client_id"])])
        script = payloads.create_script(s, who, boot["client_id"], "x", "sh", "echo ok", "", "", T0)
        dep = svc.create(s, who, {"name": "hooked", "type": "script", "payload": {"scriptId": script["id"]},
                                  "targetType": "all", "rolloutConfig": {"type": "immediate"}}, T0)
        svc.initialize(s, who, dep["id"], T0)
        hooks = [webhooks.create(s, who, boot["client_id"], f"http://127.0.0.1:9/{i}", f, T0, keys)["id"]
                 for i, f in enumerate(filters)]
    return str(dep["id"]), hooks


def _rows(store: Store) -> list[m.WebhookDelivery]:
    with store.read() as s:
        return list(s.scalars(select(m.WebhookDelivery).order_by(m.WebhookDelivery.webhook_id)))


def test_a_move_that_rolls_back_queues_nothing_one_that_commits_queues_per_webhook(store: Store,
                                                                                  keys: WebhookKeys) -> None:
    dep_id, hooks = _setup(store, keys, [[], ["deployment.started"], ["deployment.failed"]])
    with pytest.raises(RuntimeError), store.tx() as s:
        transition(s, s.get(m.Deployment, dep_id), "start", T0, "test", "started by test", started_at=T0)
        assert s.scalar(select(m.WebhookDelivery.id).limit(1)) is not None  # written in this transaction
        raise RuntimeError("the rest of the unit of work failed")
    assert _rows(store) == []
    with store.tx() as s:
        transition(s, s.get(m.Deployment, dep_id), "start", T0, "test", "started by test", started_at=T0)
    rows = _rows(store)
    assert sorted(r.webhook_id for r in rows) == sorted(hooks[:2])  # the "failed"-only hook gets nothing
    assert len({r.event_id for r in rows}) == 1 and all(r.status == "pending" and r.next_attempt_at == T0 for r in rows)
    body = json.loads(rows[0].body)
    assert body["type"] == "deployment.started" and body["id"] == rows[0].event_id
    assert body["deployment"]["id"] == dep_id and body["deployment"]["status"] == "downloading"
    assert body["deployment"]["previousStatus"] == "pending" and body["reason"] == "started by test"


def test_a_concurrent_move_that_loses_queues_nothing(store: Store, keys: WebhookKeys) -> None:
    dep_id, _ = _setup(store, keys, [[]])
    with store.tx() as s:
        stale = s.get(m.Deployment, dep_id)
    with store.tx() as s:
        transition(s, s.get(m.Deployment, dep_id), "start", T0, "test", started_at=T0)
    with pytest.raises(Conflict), store.tx() as s:
        s.add(stale)
        transition(s, stale, "cancel", T0, "test")
    assert [r.event_type for r in _rows(store)] == ["deployment.started"]


def _claim(store: Store, keys: WebhookKeys, now: datetime, limit: int = 20) -> list[outbox.Claimed]:
    with store.tx() as s:
        return outbox.claim(s, now, keys.key_id, limit)


def test_claim_lease_reclaim_and_guarded_settle(store: Store, keys: WebhookKeys) -> None:
    dep_id, _ = _setup(store, keys, [[]])
    with store.tx() as s:
        transition(s, s.get(m.Deployment, dep_id), "start", T0, "test", started_at=T0)
    first = _claim(store, keys, T0)
    assert [c.attempt for c in first] == [1] and first[0].event_type == "deployment.started"
    assert keys.decrypt(first[0].secret_encrypted).startswith("whsec_")
    assert _claim(store, keys, T0 + timedelta(seconds=59)) == []  # leased
    with store.read() as s:
        assert outbox.next_due(s, keys.key_id) == T0 + timedelta(seconds=W.LEASE_S)
        assert outbox.next_due(s, "another-key-id") is None  # a replica without the key never takes it
        assert outbox.foreign_webhooks(s, "another-key-id") == 1 and outbox.foreign_webhooks(s, keys.key_id) == 0
    assert _claim(store, WebhookKeys(b"x" * 43 + b"="), T0 + timedelta(hours=1)) == []
    again = _claim(store, keys, T0 + timedelta(seconds=60))  # the first claimer died: anyone may retry
    assert [c.attempt for c in again] == [2]
    late = T0 + timedelta(seconds=61)
    with store.tx() as s:  # the first claimer's late answer must not overwrite the second attempt
        assert not outbox.settle(s, first[0].id, 1, W.after_attempt(1, True, late), 200, "", late)
        assert outbox.settle(s, again[0].id, 2, W.after_attempt(2, False, late), 500, "HTTP 500", late)
    (row,) = _rows(store)
    assert (row.status, row.attempts, row.last_status_code, row.next_attempt_at) == (
        "pending", 2, 500, late + timedelta(seconds=4))
    assert _claim(store, keys, late + timedelta(seconds=3)) == []
    assert len(_claim(store, keys, late + timedelta(seconds=4))) == 1


def test_dead_after_the_tenth_failed_attempt(store: Store, keys: WebhookKeys) -> None:
    dep_id, _ = _setup(store, keys, [[]])
    with store.tx() as s:
        transition(s, s.get(m.Deployment, dep_id), "start", T0, "test", started_at=T0)
    now, schedule = T0, []
    for _ in range(W.MAX_ATTEMPTS):
        (c,) = _claim(store, keys, now)
        result = W.after_attempt(c.attempt, False, now)
        with store.tx() as s:
            assert outbox.settle(s, c.id, c.attempt, result, 503, "HTTP 503", now)
        if result.next_attempt_at is not None:
            schedule.append((result.next_attempt_at - now).total_seconds())
            now = result.next_attempt_at
    assert schedule == [2, 4, 8, 16, 32, 64, 128, 256, 512]
    (row,) = _rows(store)
    assert (row.status, row.attempts, row.next_attempt_at) == ("dead", 10, None)
    assert _claim(store, keys, now + timedelta(days=1)) == []
    with store.read() as s:
        assert outbox.next_due(s, keys.key_id) is None


def test_two_claimers_at_once_take_disjoint_rows(store: Store, keys: WebhookKeys) -> None:
    """Two replicas' workers claiming concurrently: no row is taken twice (SKIP LOCKED on
    PostgreSQL; SQLite's writers queue)."""
    dep_id, _ = _setup(store, keys, [[]] * 30)
    with store.tx() as s:
        transition(s, s.get(m.Deployment, dep_id), "start", T0, "test", started_at=T0)
    other = Store(store.url)
    got: list[list[str]] = [[], []]
    barrier = threading.Barrier(2)

    def worker(i: int, st: Store) -> None:
        barrier.wait()
        for _ in range(4):
            got[i].extend(c.id for c in _claim(st, keys, T0, limit=5))

    threads = [threading.Thread(target=worker, args=(0, store)), threading.Thread(target=worker, args=(1, other))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    other.close()
    assert len(got[0]) + len(got[1]) == 30 and not set(got[0]) & set(got[1])

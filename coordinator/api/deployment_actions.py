"""The deployment API's actions, shared by the gRPC and REST doors.

Each runs the service function in one transaction, then tells the engine (and agents) what
changed: the door never decides anything itself.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from common.ids import parse_uuid
from coordinator.api.base import Api
from coordinator.auth import Principal
from coordinator.domain.states import FINISHED, RecordStatus
from coordinator.service import deployments as svc
from coordinator.store import models as m


class DeploymentActions(Api):
    def _now(self) -> Any:
        return self.app.clock.now()

    def _poke(self, *ids: str) -> None:
        if self.app.engine is not None:
            self.app.engine.poke(*ids)

    def _withdraw(self, jobs: list[tuple[str, str, str]]) -> None:
        """Withdrawals are stored (and signalled to the other replicas at commit, `_signalled`);
        this tells the agents connected here now (agents offline hear on connect)."""
        if self.app.hub is not None:
            for device_id, job_id, reason in jobs:
                self.app.hub.send_cancel(device_id, job_id, reason)

    def _signalled(self, fn: Callable[..., tuple[dict[str, Any], list[tuple[str, str, str]]]]) -> Callable[..., Any]:
        """`fn` (cancel, rollback), plus a signal of its withdrawals in its own transaction: the
        replicas holding those devices' streams send the withdrawals once it commits."""
        signals = self.app.signals

        @functools.wraps(fn)  # keeps its audit action (service/audit_log.py)
        def run(s: Session, who: Principal, *args: Any) -> tuple[dict[str, Any], list[tuple[str, str, str]]]:
            out, withdraw = fn(s, who, *args)
            if signals is not None and withdraw:
                signals.in_transaction(s, devices=[device_id for device_id, _, _ in withdraw])
            return out, withdraw
        return run

    async def create(self, token: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self.call(token, svc.create, body, self._now())

    async def list_all(self, token: str, **kw: Any) -> tuple[list[dict[str, Any]], int]:
        return await self.read(token, svc.list_deployments, **kw)

    async def get(self, token: str, dep_id: str) -> dict[str, Any]:
        return await self.read(token, svc.get, dep_id)

    async def update(self, token: str, dep_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self.call(token, svc.update_spec, dep_id, body, self._now())

    async def delete(self, token: str, dep_id: str) -> dict[str, str]:
        return await self.call(token, svc.delete, dep_id)

    async def initialize(self, token: str, dep_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
        out = await self.call(token, svc.initialize, dep_id, self._now())
        self._poke(out[0]["id"])
        return out

    async def action(self, token: str, name: str, dep_id: str, signature: Any = None) -> dict[str, Any]:
        """start (optionally signed), pause or resume."""
        if name == "start":
            out = await self.call(token, svc.start, dep_id, self._now(), signature)
        else:
            fn = {"pause": svc.pause, "resume": svc.resume}[name]
            out = await self.call(token, fn, dep_id, self._now())
        self._poke(out["id"])
        return out

    async def manifest(self, token: str, dep_id: str, rollback: bool = False) -> dict[str, Any]:
        return await self.read(token, svc.manifest, dep_id, self._now(), rollback)

    async def approve(self, token: str, dep_id: str, comment: Any) -> dict[str, Any]:
        out = await self.call(token, svc.approve, dep_id, comment, self._now())
        self._poke(out["id"])  # wakes watchers: the approval shows in `watch`
        return out

    async def cancel(self, token: str, dep_id: str) -> dict[str, Any]:
        out, withdraw = await self.call(token, self._signalled(svc.cancel), dep_id, self._now())
        self._withdraw(withdraw)
        self._poke(out["id"])
        return out

    async def rollback(self, token: str, dep_id: str, signature: Any = None) -> dict[str, Any]:
        out, withdraw = await self.call(token, self._signalled(svc.rollback), dep_id, self._now(), signature)
        self._withdraw(withdraw)
        self._poke(out["id"], out["rollbackOf"])
        return out

    async def devices(self, token: str, dep_id: str, **kw: Any) -> tuple[list[dict[str, Any]], int]:
        return await self.read(token, svc.list_records, dep_id, **kw)

    async def retry(self, token: str, dep_id: str, device_id: str) -> dict[str, Any]:
        out = await self.call(token, svc.retry_device, dep_id, device_id, self._now())
        self._poke(out["deploymentId"])
        return out

    async def watch(self, token: str, dep_id: str) -> AsyncIterator[dict[str, Any]]:
        """Progress snapshots: one now, then one whenever it changes; ends when finished."""
        dep_id = parse_uuid(dep_id, "id")
        engine = self.app.engine
        # Subscribe before the first read: a change between the two must not be missed.
        ev = engine.subscribe(dep_id)
        try:
            snap, sent = await self.read(token, watch_snapshot, dep_id), None
            while True:
                key = (snap["deployment"]["status"], snap["deployment"]["progress"], snap["batches"],
                       snap["deployment"]["approval"])
                if key != sent:  # several wake-ups can carry the same state: send changes only
                    yield snap
                    sent = key
                if snap["deployment"]["status"] in FINISHED:
                    return
                await ev.wait()
                ev.clear()
                snap = await self.read(token, watch_snapshot, dep_id)
        finally:
            engine.unsubscribe(dep_id, ev)


def watch_snapshot(s: Session, who: Principal, dep_id: str) -> dict[str, Any]:
    d = svc.load(s, who, dep_id)
    per_batch: dict[int, dict[str, int]] = {}
    for batch, status, count in s.execute(
            select(m.DeploymentDevice.batch_number, m.DeploymentDevice.status, func.count())
            .where(m.DeploymentDevice.deployment_id == d.id)
            .group_by(m.DeploymentDevice.batch_number, m.DeploymentDevice.status)):
        b = per_batch.setdefault(batch, {"batchNumber": batch, "total": 0, "pending": 0, "running": 0,
                                         "completed": 0, "failed": 0, "skipped": 0})
        key = "running" if status in (RecordStatus.DOWNLOADING, RecordStatus.INSTALLING) else status
        b[key] += count
        b["total"] += count
    failures = s.execute(
        select(m.DeploymentDevice, m.Device.hostname).join(m.Device, m.Device.id == m.DeploymentDevice.device_id)
        .where(m.DeploymentDevice.deployment_id == d.id, m.DeploymentDevice.status == RecordStatus.FAILED)
        .order_by(m.DeploymentDevice.finished_at.desc()).limit(5))
    return {"deployment": svc.with_approval(s, d), "batches": [per_batch[k] for k in sorted(per_batch)],
            "recentFailures": [svc.record_dict(r, host) for r, host in failures]}

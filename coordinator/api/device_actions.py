"""Revoking a device, shared by the gRPC and REST doors: the service's unit of work, then the
device's stream closed (here at once, on the other replicas by the devices signal sent with the
commit: the replica holding the stream re-reads the device, finds it revoked and closes it)."""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy.orm import Session

from coordinator.api.base import Api
from coordinator.auth import Principal
from coordinator.service import devices


def _revoke_signalled(api: Api) -> Any:
    signals = api.app.signals

    @functools.wraps(devices.revoke_device)  # keeps its audit action (service/audit_log.py)
    def run(s: Session, who: Principal, client_id: str, device_id: str, now: Any) -> Any:
        out = devices.revoke_device(s, who, client_id, device_id, now)
        if signals is not None:
            signals.in_transaction(s, devices=[out[0]["id"]])
        return out
    return run


async def revoke(api: Api, token: str, client_id: str, device_id: str) -> dict[str, Any]:
    app = api.app
    device, touched, withdrawn = await api.call(token, _revoke_signalled(api), client_id, device_id, app.clock.now())
    if app.hub is not None:
        app.hub.refuse([device["id"]])
        for dev, job_id, reason in withdrawn:
            app.hub.send_cancel(dev, job_id, reason)
    if app.engine is not None and touched:
        app.engine.poke(*touched)
    return device

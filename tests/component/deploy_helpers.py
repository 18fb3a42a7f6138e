"""Shared set-up for deployment tests: a fleet of scripted devices and REST/gRPC callers."""

from __future__ import annotations

from typing import Any

import httpx

from common.convoy.v1 import admin_pb2 as pb
from tests.agents import Outcome, ScriptedAgent, always, wait_for
from tests.harness import InProcessCoordinator


def fleet(c: InProcessCoordinator, n: int, outcome: Outcome = always("completed"), *, connect: bool = True,
          prefix: str = "dev", tags: list[str] | None = None, windows: list[str] | None = None) -> list[ScriptedAgent]:
    token = c.admin().CreateEnrollmentToken(pb.CreateEnrollmentTokenRequest(client_id=c.client_id)).token
    agents = []
    for i in range(n):
        a = ScriptedAgent(c.grpc_target, f"{prefix}-{i:03d}", outcome, tags=list(tags or []), windows=list(windows or []))
        a.enroll(token)
        if connect:
            a.connect()
        agents.append(a)
    if connect:
        ids = {a.device_id for a in agents}
        wait_for(lambda: ids <= _online(c), what="devices online")
    return agents


def _online(c: InProcessCoordinator) -> set[str]:
    resp = c.admin().ListDevices(pb.ListDevicesRequest(client_id=c.client_id, limit=500))
    return {d.id for d in resp.data if d.online}


def wait_reported(c: InProcessCoordinator, device_id: str, state: str) -> None:
    """Until the device's job is stored in `state`: its report is written. A test that moves a
    fake clock right after the agent sent a report would otherwise race the report's write
    (written after the move, the report is device activity at the new time, and a silence
    deadline moves with it)."""
    from sqlalchemy import select

    from coordinator.store import models as m

    def stored() -> bool:
        assert c.coordinator.app is not None
        with c.coordinator.app.store.read() as s:
            return state in s.scalars(select(m.Job.state).where(m.Job.device_id == device_id)).all()

    wait_for(stored, what=f"a job of {device_id} stored {state}")


def script(c: InProcessCoordinator, body: str = "echo ok", rollback_body: str = "echo undo") -> str:
    return str(c.admin().CreateScript(pb.CreateScriptRequest(
        client_id=c.client_id, name="test script", interpreter="sh", body=body, rollback_body=rollback_body)).id)


def group(c: InProcessCoordinator, agents: list[ScriptedAgent], name: str = "g") -> str:
    g = c.admin().CreateGroup(pb.CreateGroupRequest(client_id=c.client_id, name=name))
    c.admin().AddGroupMembers(pb.GroupMembersRequest(client_id=c.client_id, group_id=g.id,
                                                     device_ids=[a.device_id for a in agents]))
    return str(g.id)


def body(script_id: str, device_ids: list[str], *, staggered: dict[str, Any] | None = None,
         retry: dict[str, Any] | None = None, windows: bool = False, timeout: float | None = None) -> dict[str, Any]:
    rollout: dict[str, Any] = {"type": "staggered" if staggered else "immediate", "respectMaintenanceWindows": windows}
    if staggered:
        rollout["staggered"] = staggered
    if retry:
        rollout["retryConfig"] = retry
    if timeout is not None:
        rollout["installTimeoutMinutes"] = timeout
    return {"name": "Test rollout", "type": "script", "payload": {"scriptId": script_id, "parameters": {}},
            "targetType": "devices", "targetConfig": {"type": "devices", "deviceIds": device_ids},
            "rolloutConfig": rollout}


class Rest:
    def __init__(self, c: InProcessCoordinator, token: str | None = None) -> None:
        tok = token if token is not None else c.token
        self.http = httpx.Client(base_url=c.http_url + "/v2", timeout=30,
                                 headers={"Authorization": f"Bearer {tok}"} if tok else {})

    def __call__(self, method: str, path: str, expect: int = 200, **kw: Any) -> Any:
        r = self.http.request(method, path, **kw)
        assert r.status_code == expect, f"{method} {path}: {r.status_code} {r.text}"
        return r.json()

    def launch(self, spec: dict[str, Any]) -> str:
        dep = self("POST", "/deployments", 201, json=spec)
        self("POST", f"/deployments/{dep['id']}/initialize")
        self("POST", f"/deployments/{dep['id']}/start")
        return str(dep["id"])

    def wait_status(self, dep_id: str, *statuses: str, timeout: float = 20) -> dict[str, Any]:
        result: dict[str, Any] = wait_for(lambda: (d := self("GET", f"/deployments/{dep_id}"))["status"] in statuses and d,
                                          timeout=timeout, what=f"status in {statuses}")
        return result

"""(issue 9, 1) A coordinator SIGKILLed mid-install and back after more than the install timeout
runs nothing twice: its first pass fails nobody (its downtime is not the devices' silence), and
results completed during the outage are accepted when the agents reconnect."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from common.convoy.v1 import admin_pb2 as pb
from tests.agents import ScriptedAgent, always, wait_for
from tests.harness import CoordinatorProcess


def test_downtime_longer_than_the_install_timeout_runs_nothing_twice(tmp_path: Path) -> None:
    coord = CoordinatorProcess(tmp_path / "coord", extra=("--install-timeout", "3s"), insecure=True)
    coord.bootstrap()
    coord.start()
    try:
        admin = coord.admin()
        token = admin.CreateEnrollmentToken(pb.CreateEnrollmentTokenRequest(client_id=coord.client_id)).token
        agents = [ScriptedAgent(coord.grpc_target, f"node-{i}", always("hang")) for i in range(3)]
        for a in agents:
            a.enroll(token)
            a.connect()
        script_id = admin.CreateScript(pb.CreateScriptRequest(client_id=coord.client_id, name="s", interpreter="sh",
                                                              body="echo ok")).id
        http = httpx.Client(base_url=coord.http_url + "/v2", headers={"Authorization": f"Bearer {coord.token}"})
        wait_for(lambda: all(d["online"] for d in http.get(f"/clients/{coord.client_id}/devices").json()["data"]),
                 what="devices online")
        spec = {"name": "downtime", "type": "script", "payload": {"scriptId": script_id}, "targetType": "all",
                "rolloutConfig": {"retryConfig": {"maxRetries": 1, "backoffMinutes": [0]}}}
        dep = http.post("/deployments", json=spec).json()
        http.post(f"/deployments/{dep['id']}/initialize").raise_for_status()
        http.post(f"/deployments/{dep['id']}/start").raise_for_status()
        wait_for(lambda: all(a.jobs for a in agents), what="every device working")

        grpc_port, http_port = coord.grpc_port, coord.http_port
        coord.kill()
        for a in agents:
            a.disconnect()
            a.finish(a.jobs[0], "completed")  # done during the outage; kept for the next hello
        time.sleep(5)  # longer than the 3 s install timeout
        coord.start(grpc_port=grpc_port, http_port=http_port)
        time.sleep(1)  # the restarted engine's first pass, before any agent is back
        http = httpx.Client(base_url=coord.http_url + "/v2", headers={"Authorization": f"Bearer {coord.token}"})
        first = http.get(f"/deployments/{dep['id']}").json()
        assert first["progress"]["failed"] == 0 and first["progress"]["running"] == 3, first["progress"]
        for a in agents:
            a.reconnect()
        final = wait_for(lambda: (d := http.get(f"/deployments/{dep['id']}").json())["status"] == "completed" and d,
                         timeout=30, what="completed after restart")
        assert final["progress"]["completed"] == 3
        assert all(len(a.jobs) == 1 and a.executions[dep["id"]] == 1 for a in agents), \
            {a.name: (len(a.jobs), a.executions[dep["id"]]) for a in agents}
    finally:
        coord.stop()

"""SIGKILL the coordinator mid-rollout, restart it: the rollout finishes, each job ran once."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from common.convoy.v1 import admin_pb2 as pb
from tests.agents import ScriptedAgent, always, wait_for
from tests.harness import CoordinatorProcess


def test_sigkill_mid_rollout_then_restart(tmp_path: Path) -> None:
    coord = CoordinatorProcess(tmp_path / "coord")
    coord.bootstrap()
    coord.start()
    try:
        admin = coord.admin()
        token = admin.CreateEnrollmentToken(pb.CreateEnrollmentTokenRequest(client_id=coord.client_id)).token
        agents = [ScriptedAgent(coord.grpc_target, f"node-{i:02d}", always("completed"), tls=coord.tls) for i in range(12)]
        for a in agents:
            a.enroll(token)
            a.connect()
        script_id = admin.CreateScript(pb.CreateScriptRequest(client_id=coord.client_id, name="s", interpreter="sh",
                                                              body="echo ok")).id
        http = httpx.Client(base_url=coord.http_url + "/v2", verify=coord.verify, headers={"Authorization": f"Bearer {coord.token}"})
        wait_for(lambda: all(d["online"] for d in http.get(f"/clients/{coord.client_id}/devices").json()["data"]),
                 what="devices online")
        spec = {"name": "restart test", "type": "script", "payload": {"scriptId": script_id},
                "targetType": "all", "targetConfig": {"type": "all"},
                "rolloutConfig": {"type": "staggered", "staggered": {"batchSize": 3, "batchDelayMinutes": 0.02}}}
        dep = http.post("/deployments", json=spec).json()
        http.post(f"/deployments/{dep['id']}/initialize").raise_for_status()
        http.post(f"/deployments/{dep['id']}/start").raise_for_status()
        wait_for(lambda: http.get(f"/deployments/{dep['id']}").json()["progress"]["currentBatch"] >= 2,
                 what="second batch")

        grpc_port, http_port = coord.grpc_port, coord.http_port
        coord.kill()
        for a in agents:
            a.disconnect()
        time.sleep(0.5)
        coord.start(grpc_port=grpc_port, http_port=http_port)
        for a in agents:
            a.reconnect()

        http = httpx.Client(base_url=coord.http_url + "/v2", verify=coord.verify, headers={"Authorization": f"Bearer {coord.token}"})
        final = wait_for(lambda: (d := http.get(f"/deployments/{dep['id']}").json())["status"] == "completed" and d,
                         timeout=60, what="completed after restart")
        assert final["progress"]["completed"] == 12 and final["progress"]["totalBatches"] == 4
        runs = {a.name: a.executions[dep["id"]] for a in agents}
        assert set(runs.values()) == {1}, f"each job must run exactly once: {json.dumps(runs)}"
    finally:
        coord.stop()

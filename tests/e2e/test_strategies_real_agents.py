"""Rollout strategies, part 2 (issue 13) with real `convoy agent run` processes running real
scripts: a verify script that fails on one device, a late arriver started after its batch, and a
job held by the agent until its maintenance window opens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from common.convoy.v1 import admin_pb2 as pb
from tests.agents import wait_for
from tests.harness import CoordinatorProcess
from tests.real_agents import RealFleet


def script(coord: CoordinatorProcess, name: str, body: str) -> str:
    req = pb.CreateScriptRequest(client_id=coord.client_id, name=name, interpreter="sh", body=body)
    return str(coord.admin().CreateScript(req).id)


def test_a_verify_script_that_fails_on_one_device(env: tuple[CoordinatorProcess, RealFleet], tmp_path: Path) -> None:
    coord, fleet = env
    agents = fleet.add(3)
    sick = agents[1].device_id
    marks = tmp_path / "marks"
    marks.mkdir()
    install = script(coord, "install", f'echo "installed on $CONVOY_DEVICE_ID" > {marks}/$CONVOY_DEVICE_ID; echo installed')
    check = script(coord, "health check", f'''test -f {marks}/$CONVOY_DEVICE_ID || {{ echo "change missing"; exit 5; }}
if [ "$CONVOY_DEVICE_ID" = "{sick}" ]; then echo "service unhealthy on $CONVOY_DEVICE_ID"; exit 4; fi
echo "healthy"''')
    dep = fleet.deploy({"name": "verified", "type": "script", "payload": {"scriptId": install}, "targetType": "devices",
                        "targetConfig": {"deviceIds": [a.device_id for a in agents]},
                        "rolloutConfig": {"verify": {"scriptId": check, "timeoutMinutes": 1}}})
    done = fleet.wait_finished(dep)
    assert done["status"] == "completed" and done["progress"]["completed"] == 2 and done["progress"]["failed"] == 1
    recs = {r["deviceId"]: r for r in fleet.records(dep)}
    bad = recs[sick]
    assert bad["status"] == "failed" and bad["error"] == "verification: exit code 4" and bad["exitCode"] == 4
    assert "installed" in bad["output"] and f"service unhealthy on {sick}" in bad["output"]  # the check's output kept
    for a in agents:
        assert (marks / a.device_id).exists()  # the install ran everywhere, once
        if a.device_id != sick:
            assert recs[a.device_id]["status"] == "completed" and "healthy" in recs[a.device_id]["output"]


def test_a_late_arriver_started_after_its_batch_completes(env: tuple[CoordinatorProcess, RealFleet], tmp_path: Path) -> None:
    coord, fleet = env
    online, late = fleet.add(2)
    late.stop()
    wait_for(lambda: not next(d for d in fleet.api("GET", f"/clients/{coord.client_id}/devices")["data"]
                              if d["id"] == late.device_id)["online"], what="device offline")
    sid = script(coord, "hello", "echo hello from $CONVOY_DEVICE_ID")
    dep = fleet.deploy({"name": "late", "type": "script", "payload": {"scriptId": sid}, "targetType": "devices",
                        "targetConfig": {"deviceIds": [online.device_id, late.device_id]},
                        "rolloutConfig": {"offlineDevices": {"policy": "wait", "waitMinutes": 10}}})
    wait_for(lambda: {r["deviceId"]: r["status"] for r in fleet.records(dep)}[online.device_id] == "completed",
             what="online device completed")
    rec = next(r for r in fleet.records(dep) if r["deviceId"] == late.device_id)
    assert rec["status"] == "pending" and rec["waitingUntil"]
    assert fleet.api("GET", f"/deployments/{dep}")["status"] == "running"
    late.start()
    done = fleet.wait_finished(dep)
    assert done["status"] == "completed" and done["progress"]["completed"] == 2
    rec = next(r for r in fleet.records(dep) if r["deviceId"] == late.device_id)
    assert rec["status"] == "completed" and f"hello from {late.device_id}" in rec["output"]


@pytest.mark.slow
def test_window_wait_a_real_agent_holds_the_job_and_installs_when_its_window_opens(
        env: tuple[CoordinatorProcess, RealFleet], tmp_path: Path) -> None:
    """Real time: the window opens at the next whole minute (20 to 80 s away)."""
    coord, fleet = env
    now = datetime.now(UTC)
    start = (now + timedelta(seconds=80)).replace(second=0, microsecond=0)
    window = f"daily {start:%H:%M}-{start + timedelta(minutes=30):%H:%M} UTC"
    [agent] = fleet.add(1, "--maintenance-window", window)
    marker = tmp_path / "installed-at"
    sid = script(coord, "stamp", f"date -u +%s > {marker}")
    dep = fleet.deploy({"name": "in the window", "type": "script", "payload": {"scriptId": sid},
                        "targetType": "devices", "targetConfig": {"deviceIds": [agent.device_id]},
                        "rolloutConfig": {"respectMaintenanceWindows": True, "windowPolicy": "wait"}})
    wait_for(lambda: "held until its maintenance window opens" in agent.log(), what="job held by the agent")
    assert fleet.records(dep)[0]["status"] == "downloading" and not marker.exists()
    done = fleet.wait_finished(dep, timeout=150)
    assert done["status"] == "completed" and fleet.records(dep)[0]["status"] == "completed"
    assert int(marker.read_text()) >= int(start.timestamp())  # installed once the window opened, not before

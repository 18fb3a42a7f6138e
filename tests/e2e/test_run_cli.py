"""`convoy run`: one command line, a script deployment to the target, each device's result
printed, and an exit status that says whether every device succeeded (real `convoy`
subprocesses against a real coordinator process, scripted devices on real agent streams)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from common.convoy.v1 import admin_pb2 as pb
from tests.agents import ScriptedAgent, wait_for
from tests.harness import CoordinatorProcess


@pytest.fixture
def fleet(coordinator_proc: CoordinatorProcess) -> Iterator[list[ScriptedAgent]]:
    """Two devices that succeed (ok-000, ok-001) and one whose script fails (bad-000)."""
    proc = coordinator_proc
    token = proc.admin().CreateEnrollmentToken(pb.CreateEnrollmentTokenRequest(client_id=proc.client_id)).token
    agents = [ScriptedAgent(proc.grpc_target, name, lambda a, _job: "failed" if a.name.startswith("bad") else "completed",
                            tls=proc.tls)
              for name in ("ok-000", "ok-001", "bad-000")]
    for a in agents:
        a.enroll(token)
        a.connect()
    ids = {a.device_id for a in agents}
    wait_for(lambda: ids <= {d.id for d in proc.admin().ListDevices(
        pb.ListDevicesRequest(client_id=proc.client_id, limit=500)).data if d.online}, what="devices online")
    yield agents
    for a in agents:
        a.disconnect()


def test_run_prints_every_device_and_exits_1_when_one_fails(coordinator_proc: CoordinatorProcess,
                                                            fleet: list[ScriptedAgent]) -> None:
    res = coordinator_proc.cli("run", "--target-all", "echo ok", check=False)
    assert res.returncode == 1, res.stderr
    rows = {line.split()[0]: line.split()[1:3] for line in res.stdout.splitlines()[1:-1]}
    assert rows == {"ok-000": ["completed", "0"], "ok-001": ["completed", "0"], "bad-000": ["failed", "3"]}
    assert "ok from ok-000" in res.stdout and "boom on bad-000" in res.stdout
    assert "completed: 2 completed, 1 failed, 0 skipped of 3 in" in res.stdout.splitlines()[-1]
    assert all(a.executions for a in fleet)  # each device got the job once
    deployments = coordinator_proc.admin().ListDeployments(pb.ListDeploymentsRequest(limit=5)).data
    assert deployments[0].name == "run: echo ok" and deployments[0].type == "script"


def test_run_in_batches_to_named_devices_as_json_exits_0(coordinator_proc: CoordinatorProcess,
                                                         fleet: list[ScriptedAgent]) -> None:
    ok = [a for a in fleet if a.name.startswith("ok")]
    res = coordinator_proc.cli("run", "--target-devices", *[a.device_id for a in ok], "--batch-size", "50%",
                               "-o", "json", "--", "uptime")
    out = json.loads(res.stdout)
    assert out["deployment"]["status"] == "completed"
    assert out["deployment"]["rolloutConfig"]["type"] == "staggered"
    assert out["deployment"]["progress"]["totalBatches"] == 2
    assert sorted(d["hostname"] for d in out["devices"]) == ["ok-000", "ok-001"]
    assert all(d["status"] == "completed" and d["exitCode"] == 0 for d in out["devices"])
    assert not [a for a in fleet if a.name.startswith("bad")][0].executions


def test_run_with_no_matching_device_is_2(coordinator_proc: CoordinatorProcess, fleet: list[ScriptedAgent]) -> None:
    res = coordinator_proc.cli("run", "--target-filter", "os == 'windows'", "echo ok", check=False)
    assert res.returncode == 2 and "resolve to no devices" in res.stderr, res.stderr
    assert not any(a.executions for a in fleet)
    res = coordinator_proc.cli("run", "echo ok", check=False)  # a target is required
    assert res.returncode == 2 and "--target-all" in res.stderr


def test_run_above_the_approval_policy_exits_5_and_leaves_it_pending(coordinator_proc: CoordinatorProcess,
                                                                     fleet: list[ScriptedAgent]) -> None:
    proc = coordinator_proc
    proc.admin().SetClientPolicy(pb.ClientPolicy(client_id=proc.client_id, require_approval_over=2))
    res = proc.cli("run", "--target-all", "echo ok", check=False)
    assert res.returncode == 5, res.stderr
    assert "needs approval by another operator: 3 targets over the client's limit of 2" in res.stderr
    dep = proc.admin().ListDeployments(pb.ListDeploymentsRequest(limit=1)).data[0]
    assert dep.status == "pending" and f"convoy deployments approve {dep.id}" in res.stderr
    assert not any(a.executions for a in fleet)
    assert proc.cli("run", "--target-devices", fleet[0].device_id, "--", "echo ok").returncode == 0  # within the limit

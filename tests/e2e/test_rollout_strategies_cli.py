"""The rollout-strategy flags of `convoy deployments create` against a coordinator process: the
body they make goes through gRPC unchanged, the preview and `get` show the plan and the
strategies, a scheduled start is shown, and a bad value is one line naming the field."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from common.convoy.v1 import admin_pb2 as pb
from tests.agents import ScriptedAgent
from tests.e2e.test_deployments_cli import _fleet, _json, _one_line_error, _script
from tests.harness import CoordinatorProcess


@pytest.fixture
def agents_to_stop() -> Iterator[list[ScriptedAgent]]:
    agents: list[ScriptedAgent] = []
    yield agents
    for a in agents:
        a.disconnect()


def test_strategy_flags_preview_and_a_scheduled_start(coordinator_proc: CoordinatorProcess,
                                                      agents_to_stop: list[ScriptedAgent]) -> None:
    proc = coordinator_proc
    agents = _fleet(proc, 4)
    agents_to_stop += agents
    ids = [a.device_id for a in agents]
    start_at = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    dep = _json(proc, "deployments", "create", "--name", "canary", "--script", _script(proc), "--target-devices", *ids,
                "--batches", "1,50%,100%", "--success-gate-percent", "50", "--pause-on-failure-percent", "40",
                "--failure-basis", "finished", "--min-finished-for-percent", "2", "--max-per-minute", "100",
                "--on-failure-threshold", "cancel", "--start-at", start_at.isoformat())
    rollout = dep["rolloutConfig"]
    assert rollout["staggered"]["batches"] == [1, "50%", "100%"] and "batchSize" not in rollout["staggered"]
    assert rollout["staggered"]["successGatePercent"] == 50 and rollout["staggered"]["failureBasis"] == "finished"
    assert rollout["staggered"]["minFinishedForPercent"] == 2
    assert rollout["maxPerMinute"] == 100 and rollout["onFailureThreshold"] == "cancel"
    assert datetime.fromisoformat(rollout["startAt"]) == start_at
    shown = proc.cli("deployments", "get", dep["id"]).stdout
    assert "batches 1, 50%, 100%" in shown and "at most 100 dispatches a minute" in shown

    init = _json(proc, "deployments", "initialize", dep["id"])
    preview = init["preview"]
    assert [b["deviceCount"] for b in preview["batches"]] == [1, 2, 1]
    assert preview["maxPerMinute"] == 100 and preview["onFailureThreshold"] == "cancel"
    assert preview["successGatePercent"] == 50 and datetime.fromisoformat(preview["startAt"]) == start_at

    started = _json(proc, "deployments", "start", dep["id"])
    assert started["statusReason"].startswith("scheduled: the first batch starts at")
    assert datetime.fromisoformat(started["nextBatchAt"].replace("Z", "+00:00")) == start_at
    assert not any(a.jobs for a in agents)
    proc.admin().CancelDeployment(pb.DeploymentRef(id=dep["id"]))


def test_a_bad_strategy_flag_is_one_line_naming_the_field(coordinator_proc: CoordinatorProcess,
                                                          agents_to_stop: list[ScriptedAgent]) -> None:
    proc = coordinator_proc
    agents = _fleet(proc, 1)
    agents_to_stop += agents
    base = ("deployments", "create", "--name", "x", "--script", _script(proc), "--target-devices", agents[0].device_id)
    _, err = _one_line_error(proc, *base, "--batches", "1,0%")
    assert "rolloutConfig.staggered.batches[1]" in err
    _, err = _one_line_error(proc, *base, "--batch-size", "2", "--ramp-start", "1")
    assert "rolloutConfig.staggered.ramp" in err
    _, err = _one_line_error(proc, *base, "--start-at", "2030-01-01T10:00:00")
    assert "rolloutConfig.startAt" in err and "offset" in err

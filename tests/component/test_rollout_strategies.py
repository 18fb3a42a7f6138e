"""Rollout strategies, part 1 (docs/deployments-rules.md, "Rollout strategies"), each through REST
against a real in-process coordinator with scripted devices and a fake clock, on SQLite and
PostgreSQL: step lists, ramps, the dispatch rate cap, success gates, the finished basis with a
minimum sample, onFailureThreshold rollback, and a scheduled start."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from sqlalchemy import select

from common.clock import FakeClock
from common.convoy.v1 import admin_pb2 as pb
from common.convoy.v1 import types_pb2 as tpb
from coordinator.store import models as m
from tests.agents import ScriptedAgent, always, wait_for
from tests.component.deploy_helpers import Rest, body, fleet, script
from tests.harness import InProcessCoordinator


@pytest.fixture
def fc(db_url: str, tmp_path: Path) -> Iterator[InProcessCoordinator]:
    c = InProcessCoordinator(db_url=db_url, data_dir=tmp_path,
                             clock=FakeClock(datetime.now().astimezone()), heartbeat_interval_s=0.2,
                             offline_after_missed=25)
    c.start()
    yield c
    c.stop()


def ordered(agents: list[ScriptedAgent]) -> list[ScriptedAgent]:
    """In the plan's order (device ids sorted)."""
    return sorted(agents, key=lambda a: a.device_id)


def prepare(rest: Rest, spec: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    dep = rest("POST", "/deployments", 201, json=spec)
    preview = rest("POST", f"/deployments/{dep['id']}/initialize")
    return str(dep["id"]), preview


def preview_sizes(preview: dict[str, Any]) -> list[int]:
    found = preview.get("preview", preview)
    return [b["deviceCount"] for b in found["batches"]]


def batch_numbers(rest: Rest, dep_id: str) -> dict[str, int]:
    return {r["deviceId"]: r["batchNumber"] for r in rest("GET", f"/deployments/{dep_id}/devices?limit=500")["data"]}


def audit(c: InProcessCoordinator, dep_id: str) -> list[str]:
    """The deployment's audit trail (deployment_events), oldest first."""
    with c.store.read() as s:
        return list(s.scalars(select(m.DeploymentEvent.reason).where(m.DeploymentEvent.deployment_id == dep_id)
                              .order_by(m.DeploymentEvent.id)))


def dispatched(agents: list[ScriptedAgent], dep_id: str) -> int:
    return sum(1 for a in agents for j in a.jobs if j.deployment_id == dep_id)


def test_a_canary_of_one_then_half_then_the_rest(fc: InProcessCoordinator) -> None:
    agents = fleet(fc, 10)
    rest = Rest(fc)
    dep_id, preview = prepare(rest, body(script(fc), [a.device_id for a in agents],
                                         staggered={"batches": [1, "50%", "100%"]}))
    assert preview_sizes(preview) == [1, 5, 4]
    rest("POST", f"/deployments/{dep_id}/start")
    done = rest.wait_status(dep_id, "completed")
    assert done["progress"]["totalBatches"] == 3 and done["progress"]["completed"] == 10
    numbers = batch_numbers(rest, dep_id)
    assert [numbers[a.device_id] for a in ordered(agents)] == [1, 2, 2, 2, 2, 2, 3, 3, 3, 3]
    assert [r for r in audit(fc, dep_id) if r.startswith("batch ")] == [
        "batch 1 of 3 started", "batch 2 of 3 started", "batch 3 of 3 started"]


def test_a_ramp_of_one_two_four_eight(fc: InProcessCoordinator) -> None:
    agents = fleet(fc, 15)
    rest = Rest(fc)
    dep_id, preview = prepare(rest, body(script(fc), [a.device_id for a in agents],
                                         staggered={"ramp": {"start": 1, "factor": 2, "max": "60%"}}))
    assert preview_sizes(preview) == [1, 2, 4, 8]
    rest("POST", f"/deployments/{dep_id}/start")
    rest.wait_status(dep_id, "completed")
    numbers = batch_numbers(rest, dep_id)
    assert [numbers[a.device_id] for a in ordered(agents)] == [1, 2, 2, 3, 3, 3, 3] + [4] * 8


def test_both_sizings_at_once_is_a_400_naming_the_field(fc: InProcessCoordinator) -> None:
    [agent] = fleet(fc, 1)
    rest = Rest(fc)
    spec = body(script(fc), [agent.device_id], staggered={"batchSize": 1, "batches": [1, "10%"]})
    err = rest("POST", "/deployments", 400, json=spec)["error"]
    assert err["details"]["parameter"] == "rolloutConfig.staggered.batches"
    spec = body(script(fc), [agent.device_id], staggered={"batches": [1, "0%"]})
    err = rest("POST", "/deployments", 400, json=spec)["error"]
    assert err["details"]["parameter"] == "rolloutConfig.staggered.batches[1]"


def test_max_per_minute_caps_dispatches_over_a_minute_of_fake_time(fc: InProcessCoordinator) -> None:
    """Immediate mode, 10 devices, at most 4 a minute: 4 at once, none more within the minute, 4
    more when it has passed, then the last 2."""
    agents = fleet(fc, 10)
    rest = Rest(fc)
    spec = body(script(fc), [a.device_id for a in agents])
    spec["rolloutConfig"]["maxPerMinute"] = 4
    dep_id = rest.launch(spec)
    wait_for(lambda: dispatched(agents, dep_id) == 4, what="first 4 dispatched")
    for _ in range(3):  # 45 seconds of fake time: the window is full
        fc.advance(15)
        time.sleep(0.3)
        assert dispatched(agents, dep_id) == 4
    got = rest("GET", f"/deployments/{dep_id}")
    assert got["progress"]["pending"] == 6 and got["status"] in ("running", "downloading", "installing")
    fc.advance(16)  # 61 s after the first dispatches
    wait_for(lambda: dispatched(agents, dep_id) == 8, what="4 more after a minute")
    time.sleep(0.3)
    assert dispatched(agents, dep_id) == 8
    fc.advance(61)
    wait_for(lambda: dispatched(agents, dep_id) == 10, what="the last 2")
    assert rest.wait_status(dep_id, "completed")["progress"]["completed"] == 10
    assert all(len(a.jobs) == 1 for a in agents)


def test_a_success_gate_pauses_and_a_resume_passes_it(fc: InProcessCoordinator) -> None:
    agents = ordered(fleet(fc, 4))
    agents[1].outcome = always("failed")  # batch 1 = agents 0 and 1
    rest = Rest(fc)
    dep_id = rest.launch(body(script(fc), [a.device_id for a in agents],
                              staggered={"batchSize": 2, "batchDelayMinutes": 5, "successGatePercent": 75}))
    wait_for(lambda: rest("GET", f"/deployments/{dep_id}")["status"] == "running" and
             rest("GET", f"/deployments/{dep_id}")["progress"]["failed"] == 1, what="batch 1 done, baking")
    time.sleep(0.3)
    assert rest("GET", f"/deployments/{dep_id}")["status"] == "running"  # the bake time is not over
    fc.advance(5 * 60 + 1)
    paused = rest.wait_status(dep_id, "paused")
    assert "success gate" in paused["statusReason"] and "successGatePercent=75" in paused["statusReason"]
    assert "1 of the 2 devices of batch 1" in paused["statusReason"]
    assert not agents[2].jobs and not agents[3].jobs
    rest("POST", f"/deployments/{dep_id}/resume")
    done = rest.wait_status(dep_id, "completed")
    assert done["progress"]["completed"] == 3 and done["progress"]["failed"] == 1


def test_min_finished_for_percent_holds_a_pause_back(fc: InProcessCoordinator) -> None:
    """failureBasis "finished", 50%, minFinishedForPercent 3: batch 1's failure (1 of 1 finished)
    does not pause; after batch 3, 2 of 3 finished failed: paused."""
    agents = ordered(fleet(fc, 5))
    agents[0].outcome = always("failed")
    agents[2].outcome = always("failed")
    rest = Rest(fc)
    dep_id = rest.launch(body(script(fc), [a.device_id for a in agents],
                              staggered={"batchSize": 1, "pauseOnFailurePercent": 50, "failureBasis": "finished",
                                         "minFinishedForPercent": 3}))
    paused = rest.wait_status(dep_id, "paused")
    assert paused["progress"]["currentBatch"] == 3 and paused["progress"]["failed"] == 2
    assert "of the 3 devices finished failed" in paused["statusReason"]
    assert agents[1].jobs and not agents[3].jobs


def test_on_failure_threshold_rollback_reverts_the_completed_devices(fc: InProcessCoordinator) -> None:
    agents = ordered(fleet(fc, 4))
    agents[1].outcome = always("failed")
    rest = Rest(fc)
    spec = body(script(fc), [a.device_id for a in agents], staggered={"batchSize": 2, "pauseOnFailureCount": 1})
    spec["rolloutConfig"]["onFailureThreshold"] = "rollback"
    dep_id = rest.launch(spec)
    original = rest.wait_status(dep_id, "rollback")
    assert "onFailureThreshold=rollback" in original["statusReason"]
    rb_id = original["rolledBackBy"]
    assert rb_id
    rb = rest.wait_status(rb_id, "completed")
    assert rb["rollbackOf"] == dep_id and rb["progress"]["total"] == 1 and rb["progress"]["completed"] == 1
    reverts = [j for j in agents[0].jobs if j.deployment_id == rb_id]
    assert len(reverts) == 1 and agents[0].payload(reverts[0])["revertsDeploymentId"] == dep_id
    assert not [j for j in agents[1].jobs if j.deployment_id == rb_id]  # it failed: nothing to revert
    assert not agents[2].jobs and not agents[3].jobs  # the rest was cancelled
    recs = {r["deviceId"]: r for r in rest("GET", f"/deployments/{dep_id}/devices")["data"]}
    assert recs[agents[2].device_id]["status"] == "skipped" and recs[agents[2].device_id]["skipReason"] == "rolled back"
    assert any("pauseOnFailureCount=1" in r and rb_id in r for r in audit(fc, dep_id))
    assert any(r.startswith(f"rollback of {dep_id}: rolled back after batch 1") for r in audit(fc, rb_id))


def test_on_failure_threshold_cancel_cancels_the_rest(fc: InProcessCoordinator) -> None:
    agents = ordered(fleet(fc, 4))
    agents[0].outcome = always("failed")
    rest = Rest(fc)
    spec = body(script(fc), [a.device_id for a in agents], staggered={"batchSize": 2, "pauseOnFailureCount": 1})
    spec["rolloutConfig"]["onFailureThreshold"] = "cancel"
    dep_id = rest.launch(spec)
    done = rest.wait_status(dep_id, "cancelled")
    assert done["statusReason"].startswith("cancelled after batch 1 (onFailureThreshold=cancel): 1 device failed")
    assert done["progress"]["skipped"] == 2 and done["rolledBackBy"] is None
    assert not agents[2].jobs and not agents[3].jobs


def test_rollback_needs_a_revertible_payload_at_initialize(fc: InProcessCoordinator) -> None:
    [agent] = fleet(fc, 1)
    rest = Rest(fc)
    spec = body(script(fc, rollback_body=""), [agent.device_id], staggered={"batchSize": 1, "pauseOnFailureCount": 1})
    spec["rolloutConfig"]["onFailureThreshold"] = "rollback"
    dep = rest("POST", "/deployments", 201, json=spec)
    err = rest("POST", f"/deployments/{dep['id']}/initialize", 400)["error"]
    assert err["details"]["parameter"] == "rolloutConfig.onFailureThreshold"


def test_a_scheduled_start(fc: InProcessCoordinator) -> None:
    agents = fleet(fc, 2)
    rest = Rest(fc)
    start_at = fc.clock.now().replace(microsecond=0) + timedelta(minutes=10)  # REST shows milliseconds
    spec = body(script(fc), [a.device_id for a in agents])
    spec["rolloutConfig"]["startAt"] = start_at.isoformat()
    dep_id = rest.launch(spec)
    got = wait_for(lambda: (d := rest("GET", f"/deployments/{dep_id}"))["status"] == "running" and d,
                   what="waiting for its start time")
    assert datetime.fromisoformat(got["nextBatchAt"].replace("Z", "+00:00")) == start_at
    assert got["statusReason"].startswith("scheduled: the first batch starts at")
    fc.advance(9 * 60)
    time.sleep(0.4)
    assert dispatched(agents, dep_id) == 0 and rest("GET", f"/deployments/{dep_id}")["progress"]["currentBatch"] == 0
    fc.advance(60)
    done = rest.wait_status(dep_id, "completed")
    assert dispatched(agents, dep_id) == 2 and done["statusReason"] is None


def test_a_start_time_in_the_past_is_a_400(fc: InProcessCoordinator) -> None:
    [agent] = fleet(fc, 1)
    rest = Rest(fc)
    spec = body(script(fc), [agent.device_id])
    spec["rolloutConfig"]["startAt"] = (fc.clock.now() - timedelta(minutes=1)).isoformat()
    err = rest("POST", "/deployments", 400, json=spec)["error"]
    assert err["details"]["parameter"] == "rolloutConfig.startAt" and "not in the future" in err["message"]
    spec["rolloutConfig"]["startAt"] = "2030-01-01T10:00:00"
    err = rest("POST", "/deployments", 400, json=spec)["error"]
    assert err["details"]["parameter"] == "rolloutConfig.startAt" and "offset" in err["message"]


def test_the_strategy_fields_through_grpc(fc: InProcessCoordinator) -> None:
    """The typed gRPC spec carries every strategy field; the preview names them; a bad one is
    INVALID_ARGUMENT naming the field."""
    agents = fleet(fc, 4)
    admin = fc.admin()
    start_at = (fc.clock.now() + timedelta(hours=1)).replace(microsecond=0)
    raw = body(script(fc), [a.device_id for a in agents],
               staggered={"ramp": {"start": 1, "factor": 2, "max": "50%"}, "successGatePercent": 50,
                          "failureBasis": "finished", "minFinishedForPercent": 2, "pauseOnFailurePercent": 30})
    raw["rolloutConfig"].update(maxPerMinute=10, onFailureThreshold="cancel", startAt=start_at.isoformat())
    dep = admin.CreateDeployment(pb.CreateDeploymentRequest(spec=json_format.ParseDict(raw, tpb.DeploymentSpec())))
    rc = dep.rollout_config
    assert (rc.max_per_minute, rc.on_failure_threshold) == (10, "cancel")
    assert datetime.fromisoformat(rc.start_at) == start_at
    assert rc.staggered.ramp.start == 1 and rc.staggered.ramp.max.string_value == "50%"
    assert (rc.staggered.success_gate_percent, rc.staggered.failure_basis, rc.staggered.min_finished_for_percent) == (
        50, "finished", 2)
    init = admin.InitializeDeployment(pb.DeploymentRef(id=dep.id))
    assert [b.device_count for b in init.preview.batches] == [1, 2, 1]
    assert (init.preview.max_per_minute, init.preview.on_failure_threshold, init.preview.failure_basis) == (
        10, "cancel", "finished")
    bad = json_format.ParseDict(body(script(fc), [agents[0].device_id], staggered={"batches": [1, "200%"]}),
                                tpb.DeploymentSpec())
    with pytest.raises(grpc.RpcError) as info:
        admin.CreateDeployment(pb.CreateDeploymentRequest(spec=bad))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "rolloutConfig.staggered.batches[1]" in (info.value.details() or "")

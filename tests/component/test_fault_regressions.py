"""Regressions for defects found in review: one bad input must never stall the coordinator,
and no input may produce a 500."""

from __future__ import annotations

import time

import grpc
import pytest

from common.convoy.v1 import admin_pb2 as pb
from tests.agents import ScriptedAgent, always, wait_for
from tests.component.deploy_helpers import Rest, body, fleet, script
from tests.harness import InProcessCoordinator, rpc_code


def test_nul_in_job_output_does_not_block_other_reports(coordinator_any: InProcessCoordinator) -> None:
    c = coordinator_any

    def nul_output(agent: ScriptedAgent, job: object) -> str:
        agent._status(job, "installing")  # type: ignore[arg-type]
        agent._status(job, "completed", exit_code=0, output="a\x00b")  # type: ignore[arg-type]
        return "hang"  # already reported

    [bad] = fleet(c, 1, nul_output, prefix="nul")
    good = fleet(c, 2, prefix="ok")
    rest = Rest(c)
    sid = script(c)
    first = rest.launch(body(sid, [bad.device_id]))
    second = rest.launch(body(sid, [a.device_id for a in good]))
    assert rest.wait_status(second, "completed")["progress"]["completed"] == 2
    done = rest.wait_status(first, "completed")
    assert rest("GET", f"/deployments/{first}/devices")["data"][0]["output"] == "ab"
    assert done["progress"]["completed"] == 1


@pytest.mark.parametrize("field,value", [
    ("retryConfig", {"maxRetries": 2, "backoffMinutes": [1e10]}),
    ("installTimeoutMinutes", 1e10),
    ("installTimeoutMinutes", 10**400),
])
def test_absurd_durations_are_400(coordinator: InProcessCoordinator, field: str, value: object) -> None:
    [agent] = fleet(coordinator, 1)
    spec = body(script(coordinator), [agent.device_id])
    spec["rolloutConfig"][field] = value
    err = Rest(coordinator)("POST", "/deployments", 400, json=spec)
    assert err["error"]["details"]["parameter"].startswith(f"rolloutConfig.{field}")


def test_huge_batch_delay_is_400(coordinator: InProcessCoordinator) -> None:
    [agent] = fleet(coordinator, 1)
    spec = body(script(coordinator), [agent.device_id], staggered={"batchSize": 1, "batchDelayMinutes": 1e10})
    err = Rest(coordinator)("POST", "/deployments", 400, json=spec)
    assert err["error"]["details"]["parameter"] == "rolloutConfig.staggered.batchDelayMinutes"


def test_out_of_range_query_values_are_400(coordinator_any: InProcessCoordinator) -> None:
    c = coordinator_any
    [agent] = fleet(c, 1)
    rest = Rest(c)
    dep = rest("POST", "/deployments", 201, json=body(script(c), [agent.device_id]))
    huge = "10000000000000000000000000"
    assert rest("GET", f"/deployments/{dep['id']}/devices", 400, params={"batchNumber": huge})["error"]["details"]["parameter"] == "batchNumber"
    assert rest("GET", f"/clients/{c.client_id}/devices", 400, params={"offset": huge})["error"]["code"] == "invalid_argument"
    assert rpc_code(c.admin().CreateEnrollmentToken, pb.CreateEnrollmentTokenRequest(
        client_id=c.client_id, expires_in_seconds=float("nan"))) == grpc.StatusCode.INVALID_ARGUMENT
    assert rpc_code(c.admin().CreateEnrollmentToken, pb.CreateEnrollmentTokenRequest(
        client_id=c.client_id, expires_in_seconds=1e12)) == grpc.StatusCode.INVALID_ARGUMENT
    # PostgreSQL cannot store a NUL byte in text: that is the caller's 400, never a 500.
    named = body(script(c), [agent.device_id])
    named["name"] = "a\u0000b"
    expected = 400 if c.db_url.startswith("postgresql") else 201
    assert rest.http.post("/deployments", json=named).status_code == expected
    if c.db_url.startswith("postgresql"):
        assert rpc_code(c.admin().CreateGroup, pb.CreateGroupRequest(
            client_id=c.client_id, name="x\x00y")) == grpc.StatusCode.INVALID_ARGUMENT


def test_rollback_of_a_rollback_is_refused(coordinator: InProcessCoordinator) -> None:
    agents = fleet(coordinator, 1)
    rest = Rest(coordinator)
    dep = rest.launch(body(script(coordinator), [agents[0].device_id]))
    rest.wait_status(dep, "completed")
    rb = rest("POST", f"/deployments/{dep}/rollback", 201)
    rest.wait_status(rb["id"], "completed")
    err = rest("POST", f"/deployments/{rb['id']}/rollback", 409)
    assert "cannot itself be rolled back" in err["error"]["message"]


def test_paused_deployment_does_not_spin_the_engine(fake_clock_coordinator: InProcessCoordinator) -> None:
    c = fake_clock_coordinator
    agents = fleet(c, 3, always("completed"))
    rest = Rest(c)
    dep = rest.launch(body(script(c), [a.device_id for a in agents], staggered={"batchSize": 1, "batchDelayMinutes": 5}))
    rest.wait_status(dep, "running")
    rest("POST", f"/deployments/{dep}/pause")
    c.advance(10 * 60)  # the next batch's time passes while paused
    time.sleep(0.3)
    engine = c.coordinator.app.engine
    before = engine.ticks
    time.sleep(1.0)
    assert engine.ticks - before <= 2, f"engine spun {engine.ticks - before} times in 1 s while paused"
    rest("POST", f"/deployments/{dep}/resume")
    wait_for(lambda: rest("GET", f"/deployments/{dep}")["progress"]["completed"] == 2, what="batch 2 after resume")

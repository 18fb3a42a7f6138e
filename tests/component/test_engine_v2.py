"""Engine v2 regressions (issue 9): each behaviour seen on the old engine, through REST and the
agent protocol, with scripted devices and a fake clock. The coordinator under test is real."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc
import pytest

from common.clock import FakeClock
from common.convoy.v1 import admin_pb2 as pb
from common.convoy.v1 import admin_pb2_grpc
from tests.agents import always, wait_for
from tests.component.deploy_helpers import Rest, body, fleet, script, wait_reported
from tests.harness import InProcessCoordinator


@pytest.fixture
def fc(db_url: str, tmp_path: Path) -> Iterator[InProcessCoordinator]:
    """A fake-clock coordinator whose heartbeat sweep runs every 0.2 s of real time, on SQLite
    and on PostgreSQL (the engine end to end on both stores)."""
    c = InProcessCoordinator(db_url=db_url, data_dir=tmp_path,
                             clock=FakeClock(datetime.now().astimezone()), heartbeat_interval_s=0.2,
                             offline_after_missed=25)
    c.start()
    yield c
    c.stop()


def record(rest: Rest, dep_id: str, device_id: str) -> dict[str, Any]:
    recs = rest("GET", f"/deployments/{dep_id}/devices")["data"]
    return next(r for r in recs if r["deviceId"] == device_id)


def by_outcome(outcomes: dict[str, str], default: str = "completed") -> Any:
    return lambda agent, _job: outcomes.get(agent.name, default)


def test_an_alive_device_with_queued_work_is_not_failed(fc: InProcessCoordinator) -> None:
    """(2) The deadline measures silence: heartbeats and job progress keep a device's attempt alive
    past installTimeoutMinutes; its real result is accepted; nothing runs twice."""
    [agent] = fleet(fc, 1, always("received"))  # queued behind other work on the device
    beats = agent.start_heartbeats(0.05)
    rest = Rest(fc)
    dep_id = rest.launch(body(script(fc), [agent.device_id], timeout=10, retry={"maxRetries": 1}))
    wait_for(lambda: agent.jobs, what="job delivered")
    for _ in range(4):  # 32 minutes of fake time, the device heartbeating all along
        fc.advance(8 * 60)
        time.sleep(0.5)  # a heartbeat sweep writes last_seen_at at the new fake time
        assert record(rest, dep_id, agent.device_id)["status"] == "downloading"
    agent.finish(agent.jobs[0], "completed")
    done = rest.wait_status(dep_id, "completed")
    beats.set()
    assert done["progress"]["completed"] == 1 and len(agent.jobs) == 1 and agent.executions[dep_id] == 1


def test_a_silent_device_is_failed_and_its_job_withdrawn_even_after_a_reconnect(fc: InProcessCoordinator) -> None:
    """(3) A withdrawal is stored: the device, away when its attempt timed out, is told on connect."""
    [agent] = fleet(fc, 1, always("received"))
    rest = Rest(fc)
    dep_id = rest.launch(body(script(fc), [agent.device_id], timeout=5, retry={"maxRetries": 1, "backoffMinutes": [60]}))
    wait_for(lambda: agent.jobs, what="job delivered")
    first = agent.jobs[0].job_id
    wait_reported(fc, agent.device_id, "received")
    agent.disconnect()
    fc.advance(6 * 60)
    rec = wait_for(lambda: (r := record(rest, dep_id, agent.device_id))["status"] == "pending" and r,
                   what="attempt failed by silence, retry scheduled")
    assert rec["error"].startswith("install timeout") and rec["nextAttemptAt"] and rec["retryCount"] == 1
    agent.reconnect()  # its journal still says "received"
    wait_for(lambda: first in agent.cancels, what="withdrawal sent on connect")


def test_cancel_leaves_running_devices_alone_and_withdraws_what_never_arrived(fc: InProcessCoordinator) -> None:
    """(6) Seed 004: cancel skips pending records only; dispatched ones that run are not affected.
    A job the device never acknowledged is withdrawn, stored, and sent when it connects."""
    agents = fleet(fc, 2, by_outcome({"dev-000": "hang", "dev-001": "ignore"}))
    running, lost = agents
    rest = Rest(fc)
    dep_id = rest.launch(body(script(fc), [a.device_id for a in agents]))
    wait_for(lambda: running.jobs and lost.jobs, what="both dispatched")
    wait_for(lambda: record(rest, dep_id, running.device_id)["status"] == "downloading", what="running")
    lost.disconnect()
    rest("POST", f"/deployments/{dep_id}/cancel")
    assert record(rest, dep_id, running.device_id)["status"] == "downloading"
    assert record(rest, dep_id, lost.device_id)["status"] == "skipped"
    time.sleep(0.3)
    assert running.cancels == []
    running.finish(running.jobs[0], "completed")
    wait_for(lambda: record(rest, dep_id, running.device_id)["status"] == "completed", what="running one completes")
    lost.reconnect()
    wait_for(lambda: lost.jobs[0].job_id in lost.cancels, what="stored withdrawal delivered on connect")
    assert rest("GET", f"/deployments/{dep_id}")["status"] == "cancelled"


def test_a_failed_device_whose_retry_finds_it_offline_counts_as_failed(fc: InProcessCoordinator) -> None:
    """(4) The typical device broken by a bad change: failed, retry offline. It is failed (not
    skipped), so pauseOnFailureCount trips; (10) a manual retry once it is back succeeds."""
    agents = fleet(fc, 2)
    broken = min(agents, key=lambda a: a.device_id)  # batch 1 in the plan's order
    broken.outcome = always("failed")
    rest = Rest(fc)
    dep_id = rest.launch(body(script(fc), [a.device_id for a in agents],
                              staggered={"batchSize": 1, "pauseOnFailureCount": 1},
                              retry={"maxRetries": 2, "backoffMinutes": [1]}))
    wait_for(lambda: record(rest, dep_id, broken.device_id)["status"] == "pending", what="retry scheduled")
    broken.disconnect()
    wait_for(lambda: not rest("GET", f"/clients/{fc.client_id}/devices/{broken.device_id}")["online"], what="offline")
    fc.advance(61)
    paused = rest.wait_status(dep_id, "paused")
    rec = record(rest, dep_id, broken.device_id)
    assert rec["status"] == "failed" and "offline" in rec["error"] and paused["progress"]["failed"] == 1
    assert "pauseOnFailureCount=1" in paused["statusReason"]
    broken.outcome = always("completed")
    broken.reconnect()
    wait_for(lambda: rest("GET", f"/clients/{fc.client_id}/devices/{broken.device_id}")["online"], what="online")
    retried = rest("POST", f"/deployments/{dep_id}/devices/{broken.device_id}/retry")
    assert retried["status"] == "pending"
    # Seed 004: a manual retry goes out without resuming the deployment.
    wait_for(lambda: record(rest, dep_id, broken.device_id)["status"] == "completed", what="manual retry completes")
    assert broken.executions[dep_id] == 2  # the failed attempt and the manual retry
    after = rest("GET", f"/deployments/{dep_id}")
    assert after["status"] == "paused" and after["progress"]["currentBatch"] == 1


def test_percent_threshold_counts_over_all_target_devices(fc: InProcessCoordinator) -> None:
    """(5) Seed 004: pauseOnFailurePercent is a percentage of total target devices."""
    agents = fleet(fc, 10)
    ordered = sorted(agents, key=lambda a: a.device_id)  # the batch plan's order
    for a in (ordered[0], ordered[2]):  # one failure in each of the first two batches
        a.outcome = always("failed")
    rest = Rest(fc)
    dep_id = rest.launch(body(script(fc), [a.device_id for a in agents],
                              staggered={"batchSize": 2, "pauseOnFailurePercent": 20}))
    paused = rest.wait_status(dep_id, "paused")
    # batch 1: 1 of 10 failed = 10% (the old rule, over finished devices, said 50% and paused)
    assert paused["progress"]["currentBatch"] == 2 and paused["progress"]["failed"] == 2
    assert "20% of the 10 target devices failed" in paused["statusReason"]


def test_manual_retry_brings_a_waiting_automatic_retry_forward(fc: InProcessCoordinator) -> None:
    """(10) A failed device waiting for its automatic retry (pending, nextAttemptAt) is retried now."""
    [agent] = fleet(fc, 1, always("failed"))
    rest = Rest(fc)
    dep_id = rest.launch(body(script(fc), [agent.device_id], retry={"maxRetries": 1, "backoffMinutes": [60]}))
    rec = wait_for(lambda: (r := record(rest, dep_id, agent.device_id))["status"] == "pending" and r["jobId"] and r,
                   what="waiting for the automatic retry")
    assert rec["nextAttemptAt"] and rest("GET", f"/deployments/{dep_id}")["progress"]["pending"] == 1
    agent.outcome = always("completed")
    rest("POST", f"/deployments/{dep_id}/devices/{agent.device_id}/retry")
    wait_for(lambda: len(agent.jobs) == 2, what="retried now, not in 60 minutes")
    done = rest.wait_status(dep_id, "completed")
    assert done["progress"]["completed"] == 1
    err = rest("POST", f"/deployments/{dep_id}/devices/{agent.device_id}/retry", 409)
    assert err["error"]["code"] == "conflict"


def test_a_device_that_skipped_its_job_can_be_retried_with_no_retries(fc: InProcessCoordinator) -> None:
    """(11) An attempt the agent skipped (outside its window) never ran: it uses up no retry."""
    [agent] = fleet(fc, 1, always("skipped"))
    rest = Rest(fc)
    dep_id = rest.launch(body(script(fc), [agent.device_id], windows=True))
    rest.wait_status(dep_id, "completed")
    assert record(rest, dep_id, agent.device_id)["status"] == "skipped"
    agent.outcome = always("completed")
    retried = rest("POST", f"/deployments/{dep_id}/devices/{agent.device_id}/retry")
    assert retried["retryCount"] == 0
    wait_for(lambda: record(rest, dep_id, agent.device_id)["status"] == "completed", what="retried device completes")


def test_serve_install_timeout_applies_to_deployments_that_set_none(tmp_path: Path) -> None:
    """(12) `serve --install-timeout` is the default of every deployment that sets none."""
    c = InProcessCoordinator(db_url=f"sqlite:///{tmp_path / 'convoy.db'}", data_dir=tmp_path,
                             clock=FakeClock(datetime.now().astimezone()), default_install_timeout_minutes=2)
    c.start()
    try:
        [agent] = fleet(c, 1, always("hang"))
        rest = Rest(c)
        dep_id = rest.launch(body(script(c), [agent.device_id]))
        assert rest("GET", f"/deployments/{dep_id}")["rolloutConfig"]["installTimeoutMinutes"] is None
        wait_for(lambda: agent.jobs, what="job delivered")
        assert agent.jobs[0].timeout_seconds == 120
        wait_reported(c, agent.device_id, "downloading")
        agent.disconnect()
        c.advance(121)
        rest.wait_status(dep_id, "failed")
        assert "2 minutes" in record(rest, dep_id, agent.device_id)["error"]
    finally:
        c.stop()


def test_rollback_of_a_cancelled_deployment_reverts_a_device_that_completes_later(fc: InProcessCoordinator) -> None:
    """(7) Rollback covers devices still installing: their revert waits for their outcome."""
    agents = fleet(fc, 3, by_outcome({"dev-001": "hang", "dev-002": "hang"}))
    done, late, fails = agents
    rest = Rest(fc)
    dep_id = rest.launch(body(script(fc), [a.device_id for a in agents]))
    wait_for(lambda: record(rest, dep_id, done.device_id)["status"] == "completed", what="one completed")
    wait_for(lambda: late.jobs and fails.jobs, what="two installing")
    rest("POST", f"/deployments/{dep_id}/cancel")
    rb = rest("POST", f"/deployments/{dep_id}/rollback", 201)
    assert rb["progress"]["total"] == 3
    wait_for(lambda: len(done.jobs) == 2, what="revert of the completed device")
    assert len(late.jobs) == 1  # held until its change finishes
    late.outcome = always("completed")  # its revert runs normally
    late.finish(late.jobs[0], "completed")
    fails.finish(fails.jobs[0], "failed")
    wait_for(lambda: len(late.jobs) == 2 and late.jobs[1].rollback, what="revert of the late completer")
    final = rest.wait_status(rb["id"], "completed")
    assert final["progress"]["completed"] == 2 and final["progress"]["skipped"] == 1
    assert len(fails.jobs) == 1  # its change never completed: nothing to revert


def test_an_ended_stream_is_not_written_back_online(fc: InProcessCoordinator) -> None:
    """(9) A heartbeat sweep never marks a device online: one whose stream ended stays offline."""
    [agent] = fleet(fc, 1)
    agent.heartbeat()
    agent.disconnect()
    url = f"/clients/{fc.client_id}/devices/{agent.device_id}"
    rest = Rest(fc)
    wait_for(lambda: not rest("GET", url)["online"], what="offline")
    time.sleep(1.0)  # several sweeps
    assert not rest("GET", url)["online"]


def test_a_timeout_that_changes_no_status_still_notifies_watchers(fc: InProcessCoordinator) -> None:
    """(16) WatchDeployment sees a record failed by silence even when the deployment status stays."""
    [agent] = fleet(fc, 1, always("received"))
    rest = Rest(fc)
    dep_id = rest.launch(body(script(fc), [agent.device_id], timeout=5, retry={"maxRetries": 1, "backoffMinutes": [60]}))
    wait_for(lambda: agent.jobs, what="job delivered")
    agent.disconnect()
    seen: list[Any] = []
    channel = grpc.insecure_channel(fc.grpc_target)
    stub = admin_pb2_grpc.AdminServiceStub(channel)
    stream = stub.WatchDeployment(pb.DeploymentRef(id=dep_id),
                                  metadata=[("authorization", f"Bearer {fc.token}")])

    def read() -> None:
        try:
            for snap in stream:
                seen.append(snap)
        except grpc.RpcError:
            pass

    threading.Thread(target=read, daemon=True).start()
    wait_for(lambda: seen, what="first snapshot")
    fc.advance(6 * 60)
    wait_for(lambda: any(s.deployment.progress.pending == 1 for s in seen), what="a snapshot after the timeout")
    stream.cancel()
    channel.close()


def test_agents_that_know_nothing_new_get_nothing_twice(fc: InProcessCoordinator) -> None:
    """Delivery is a difference: a reconnect re-sends only jobs still to run, and they run once."""
    agents = fleet(fc, 3)
    rest = Rest(fc)
    dep_id = rest.launch(body(script(fc), [a.device_id for a in agents]))
    rest.wait_status(dep_id, "completed")
    for a in agents:
        a.disconnect()
        a.reconnect()
    time.sleep(0.5)
    assert all(len(a.jobs) == 1 and a.executions[dep_id] == 1 for a in agents)


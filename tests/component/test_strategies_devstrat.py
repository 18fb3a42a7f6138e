"""Rollout strategies, part 2 (issue 13): late arrivers (offlineDevices "wait"), jobs held for the
maintenance window (windowPolicy "wait") and the verify script's validation, through REST and the
agent protocol against a real in-process coordinator on a fake clock (SQLite and PostgreSQL)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from common.clock import FakeClock
from common.convoy.v1 import agent_pb2
from tests.agents import ScriptedAgent, always, wait_for
from tests.component.deploy_helpers import Rest, _online, body, fleet, script
from tests.harness import InProcessCoordinator


@pytest.fixture
def fc(db_url: str, tmp_path: Path) -> Iterator[InProcessCoordinator]:
    c = InProcessCoordinator(db_url=db_url, data_dir=tmp_path,
                             clock=FakeClock(datetime.now().astimezone()), heartbeat_interval_s=0.2,
                             offline_after_missed=25)
    c.start()
    yield c
    c.stop()


def record(rest: Rest, dep_id: str, device_id: str) -> dict[str, Any]:
    recs = rest("GET", f"/deployments/{dep_id}/devices")["data"]
    return next(r for r in recs if r["deviceId"] == device_id)


def go_offline(c: InProcessCoordinator, agent: ScriptedAgent) -> None:
    agent.disconnect()
    wait_for(lambda: agent.device_id not in _online(c), what="device offline")


def test_a_late_arriver_gets_its_job_when_it_connects_and_the_batch_does_not_wait(fc: InProcessCoordinator) -> None:
    agents = sorted(fleet(fc, 3), key=lambda a: a.device_id)
    late = agents[0]  # the plan sorts device ids: the late arriver is in batch 1 of 3
    go_offline(fc, late)
    rest = Rest(fc)
    spec = body(script(fc), [a.device_id for a in agents], staggered={"batchSize": 1})
    spec["rolloutConfig"]["offlineDevices"] = {"policy": "wait", "waitMinutes": 30}
    dep_id = rest.launch(spec)
    # Batches 2 and 3 go out without waiting for batch 1's offline device...
    wait_for(lambda: all(record(rest, dep_id, a.device_id)["status"] == "completed" for a in agents[1:]),
             what="online devices completed")
    rec = record(rest, dep_id, late.device_id)
    assert rec["status"] == "pending" and not late.jobs and rec["waitingUntil"]
    # ...but the deployment does not complete while the late arriver may still come.
    time.sleep(0.5)
    dep = rest("GET", f"/deployments/{dep_id}")
    assert dep["status"] == "running" and dep["progress"]["currentBatch"] == 3
    assert dep["strategies"] == ["offline devices: wait up to 30 min after their batch starts and get the job when "
                                 "they connect (batches do not wait for them; the deployment does)"]
    fc.advance(12 * 60)  # 12 minutes after its batch started, the device connects
    late.reconnect()
    done = rest.wait_status(dep_id, "completed")
    assert record(rest, dep_id, late.device_id)["status"] == "completed"
    assert done["progress"]["completed"] == 3 and late.executions[dep_id] == 1 and len(late.jobs) == 1


def test_a_late_arriver_that_never_comes_is_skipped_when_its_wait_ends(fc: InProcessCoordinator) -> None:
    online, away = fleet(fc, 2)
    go_offline(fc, away)
    rest = Rest(fc)
    spec = body(script(fc), [online.device_id, away.device_id])
    spec["rolloutConfig"]["offlineDevices"] = {"policy": "wait", "waitMinutes": 30}
    dep_id = rest.launch(spec)
    wait_for(lambda: record(rest, dep_id, online.device_id)["status"] == "completed", what="online device completed")
    fc.advance(29 * 60)
    time.sleep(0.5)
    assert rest("GET", f"/deployments/{dep_id}")["status"] == "running"
    assert record(rest, dep_id, away.device_id)["status"] == "pending"
    fc.advance(2 * 60)
    done = rest.wait_status(dep_id, "completed")
    rec = record(rest, dep_id, away.device_id)
    assert rec["status"] == "skipped" and rec["skipReason"] == "offline"
    assert done["progress"]["skipped"] == 1
    away.reconnect()  # too late: nothing is sent
    time.sleep(0.5)
    assert not away.jobs


def test_the_default_still_skips_an_offline_device_at_once(fc: InProcessCoordinator) -> None:
    online, away = fleet(fc, 2)
    go_offline(fc, away)
    rest = Rest(fc)
    dep_id = rest.launch(body(script(fc), [online.device_id, away.device_id]))
    rest.wait_status(dep_id, "completed")
    assert record(rest, dep_id, away.device_id)["skipReason"] == "offline"


def _window_opening_in(now: datetime, hours: float) -> tuple[str, datetime]:
    start = (now.astimezone(UTC) + timedelta(hours=hours)).replace(second=0, microsecond=0)
    end = start + timedelta(hours=1)
    return f"daily {start:%H:%M}-{end:%H:%M} UTC", start


def test_window_wait_holds_the_job_and_the_deadline_starts_with_the_window(fc: InProcessCoordinator) -> None:
    clock = fc.clock
    assert isinstance(clock, FakeClock)
    window, opens = _window_opening_in(clock.now(), 2)
    held: list[agent_pb2.Job] = []

    def hold(_agent: ScriptedAgent, job: agent_pb2.Job) -> str:
        held.append(job)
        return "received"  # the real agent journals it and holds it until the window opens

    [agent] = fleet(fc, 1, hold, windows=[window])
    rest = Rest(fc)
    spec = body(script(fc), [agent.device_id], windows=True, timeout=30)
    spec["rolloutConfig"]["windowPolicy"] = "wait"
    dep_id = rest.launch(spec)
    wait_for(lambda: held, what="job sent outside the window")
    assert held[0].respect_maintenance_windows and held[0].window_wait_max_seconds == 168 * 3600
    # The device shuts down while it holds the job: 90 minutes pass, three times the install
    # timeout, but the deadline counts from the window's opening, so the attempt is not failed.
    agent.disconnect()
    fc.advance(90 * 60)
    time.sleep(0.6)
    assert record(rest, dep_id, agent.device_id)["status"] == "downloading"
    fc.advance((opens + timedelta(minutes=1) - clock.now()).total_seconds())  # the window opened: back, installs
    agent.reconnect()
    agent.finish(held[0], "completed")
    rest.wait_status(dep_id, "completed")
    assert record(rest, dep_id, agent.device_id)["status"] == "completed" and len(held) == 1


def test_window_wait_fails_a_held_job_silent_past_the_window_plus_the_timeout(fc: InProcessCoordinator) -> None:
    clock = fc.clock
    assert isinstance(clock, FakeClock)
    window, opens = _window_opening_in(clock.now(), 2)
    [agent] = fleet(fc, 1, always("received"), windows=[window])
    rest = Rest(fc)
    spec = body(script(fc), [agent.device_id], windows=True, timeout=30)
    spec["rolloutConfig"]["windowPolicy"] = "wait"
    dep_id = rest.launch(spec)
    wait_for(lambda: agent.jobs, what="job sent outside the window")
    agent.disconnect()
    fc.advance((opens + timedelta(minutes=31) - clock.now()).total_seconds())
    rec = wait_for(lambda: (r := record(rest, dep_id, agent.device_id))["status"] == "failed" and r,
                   what="held attempt failed by silence")
    assert rec["error"].startswith("install timeout")


def test_window_wait_skips_when_no_window_opens_within_the_limit_and_skip_is_the_default(fc: InProcessCoordinator) -> None:
    clock = fc.clock
    assert isinstance(clock, FakeClock)
    window, _opens = _window_opening_in(clock.now(), 5)
    a, b = fleet(fc, 2, windows=[window])
    rest = Rest(fc)
    spec = body(script(fc), [a.device_id], windows=True)
    spec["rolloutConfig"].update(windowPolicy="wait", windowWaitMaxHours=4)
    dep_id = rest.launch(spec)
    rest.wait_status(dep_id, "completed")
    assert record(rest, dep_id, a.device_id)["skipReason"] == "outside_maintenance_window" and not a.jobs
    seed = rest.launch(body(script(fc), [b.device_id], windows=True))
    rest.wait_status(seed, "completed")
    assert record(rest, seed, b.device_id)["skipReason"] == "outside_maintenance_window" and not b.jobs


def test_verify_script_must_exist_in_the_callers_client(fc: InProcessCoordinator) -> None:
    [agent] = fleet(fc, 1)
    rest = Rest(fc)
    spec = body(script(fc), [agent.device_id])
    spec["rolloutConfig"]["verify"] = {"scriptId": "5d1c5a9e-3f0b-4c43-9d7e-2b8f1c0e6a11"}
    r = rest.http.post("/deployments", json=spec)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["details"]["parameter"] == "rolloutConfig.verify.scriptId" and "rolloutConfig.verify.scriptId" in err["message"]
    spec["rolloutConfig"]["verify"] = {"scriptId": "nope"}
    r = rest.http.post("/deployments", json=spec)
    assert r.status_code == 400 and r.json()["error"]["details"]["parameter"] == "rolloutConfig.verify.scriptId"
    check = script(fc, "echo healthy")
    spec["rolloutConfig"]["verify"] = {"scriptId": check, "timeoutMinutes": 2}
    dep = rest("POST", "/deployments", 201, json=spec)
    assert dep["rolloutConfig"]["verify"] == {"scriptId": check, "timeoutMinutes": 2}
    rest("POST", f"/deployments/{dep['id']}/initialize")
    rest("POST", f"/deployments/{dep['id']}/start")
    wait_for(lambda: agent.jobs, what="job delivered")
    verify = agent.payload(agent.jobs[0])["verify"]
    assert verify["scriptId"] == check and verify["body"] == "echo healthy" and verify["timeoutSeconds"] == 120

"""Seed 004 over REST against a running coordinator, with scripted devices on real streams."""

from __future__ import annotations

from datetime import datetime

from common.convoy.v1 import admin_pb2 as pb
from tests.agents import always, wait_for
from tests.component.deploy_helpers import Rest, body, fleet, group, script, wait_reported
from tests.harness import InProcessCoordinator


def test_seed_create_body_immediate_rollout_completes(coordinator: InProcessCoordinator) -> None:
    agents = fleet(coordinator, 5)
    rest = Rest(coordinator)
    gid = group(coordinator, agents)
    spec = {"name": "Monthly Cleanup — Windows Fleet", "type": "script",
            "payload": {"scriptId": script(coordinator), "parameters": {}},
            "targetType": "groups", "targetConfig": {"type": "groups", "groupIds": [gid]},
            "rolloutConfig": {"type": "staggered",
                              "staggered": {"batchSize": "40%", "batchDelayMinutes": 0, "pauseOnFailurePercent": 20},
                              "respectMaintenanceWindows": True,
                              "retryConfig": {"maxRetries": 3, "backoffMinutes": [5, 15, 60]}}}
    dep = rest("POST", "/deployments", 201, json=spec)
    assert dep["status"] == "draft" and dep["rolloutConfig"]["staggered"]["batchSize"] == "40%"
    init = rest("POST", f"/deployments/{dep['id']}/initialize")
    assert init["deployment"]["status"] == "pending"
    assert init["preview"] == {"resolvedCount": 5, "totalBatches": 3, "batches": [
        {"batchNumber": 1, "deviceCount": 2}, {"batchNumber": 2, "deviceCount": 2}, {"batchNumber": 3, "deviceCount": 1}]}
    assert rest("GET", f"/deployments/{dep['id']}")["status"] == "pending"  # stuck until start is called
    started = rest("POST", f"/deployments/{dep['id']}/start")
    assert started["status"] in ("downloading", "installing", "running", "completed")
    done = rest.wait_status(dep["id"], "completed")
    assert done["progress"] == {"total": 5, "pending": 0, "running": 0, "completed": 5, "failed": 0, "skipped": 0,
                                "currentBatch": 3, "totalBatches": 3, "percentComplete": 100}
    assert sum(a.executions[dep["id"]] for a in agents) == 5
    recs = rest("GET", f"/deployments/{dep['id']}/devices", params={"batchNumber": 2})
    assert recs["total"] == 2 and {r["batchNumber"] for r in recs["data"]} == {2}
    assert all(r["status"] == "completed" and r["exitCode"] == 0 for r in recs["data"])


def test_auto_pause_between_batches_and_rearm_on_resume(coordinator: InProcessCoordinator) -> None:
    agents = fleet(coordinator, 6, always("failed"))
    rest = Rest(coordinator)
    spec = body(script(coordinator), [a.device_id for a in agents],
                staggered={"batchSize": 2, "batchDelayMinutes": 0, "pauseOnFailureCount": 2})
    dep_id = rest.launch(spec)
    paused = rest.wait_status(dep_id, "paused")
    assert paused["progress"]["failed"] == 2 and paused["progress"]["pending"] == 4
    assert "pauseOnFailureCount" in paused["statusReason"]
    assert sum(len(a.jobs) for a in agents) == 2  # nothing dispatched after the threshold
    failed = rest("GET", f"/deployments/{dep_id}/devices", params={"status": "failed"})
    assert failed["total"] == 2 and all("boom" in r["output"] for r in failed["data"])
    rest("POST", f"/deployments/{dep_id}/resume")
    paused_again = rest.wait_status(dep_id, "paused")  # re-armed: 2 new failures since resume
    assert paused_again["progress"]["failed"] == 4 and paused_again["progress"]["currentBatch"] == 2
    rest("POST", f"/deployments/{dep_id}/resume")
    final = rest.wait_status(dep_id, "failed")  # every device failed
    assert final["progress"]["failed"] == 6 and final["progress"]["percentComplete"] == 100


def test_pause_stops_dispatch_and_cancel_skips_pending(fake_clock_coordinator: InProcessCoordinator) -> None:
    c = fake_clock_coordinator
    agents = fleet(c, 4)
    rest = Rest(c)
    dep_id = rest.launch(body(script(c), [a.device_id for a in agents],
                              staggered={"batchSize": 1, "batchDelayMinutes": 30}))
    waiting = rest.wait_status(dep_id, "running")
    assert waiting["progress"]["completed"] == 1 and waiting["nextBatchAt"]
    rest("POST", f"/deployments/{dep_id}/pause")
    c.advance(31 * 60)
    assert rest("GET", f"/deployments/{dep_id}")["progress"]["completed"] == 1  # paused: nothing new
    assert rest("POST", f"/deployments/{dep_id}/pause", 409)["error"]["details"]["status"] == "paused"
    rest("POST", f"/deployments/{dep_id}/resume")
    wait_for(lambda: rest("GET", f"/deployments/{dep_id}")["progress"]["completed"] == 2, what="batch 2")
    rest.wait_status(dep_id, "running")
    out = rest("POST", f"/deployments/{dep_id}/cancel")
    assert out["status"] == "cancelled"
    assert out["progress"]["skipped"] == 2 and out["progress"]["completed"] == 2
    c.advance(60 * 60)
    assert sum(len(a.jobs) for a in agents) == 2
    assert rest("POST", f"/deployments/{dep_id}/resume", 409)["error"]["code"] == "conflict"


def test_retry_backoff_and_manual_retry_limit(fake_clock_coordinator: InProcessCoordinator) -> None:
    c = fake_clock_coordinator
    [agent] = fleet(c, 1, always("failed"))
    rest = Rest(c)
    dep_id = rest.launch(body(script(c), [agent.device_id], retry={"maxRetries": 2, "backoffMinutes": [60]}))
    rec = wait_for(lambda: (r := rest("GET", f"/deployments/{dep_id}/devices")["data"][0])["retryCount"] == 1 and r,
                   what="first retry scheduled")
    assert rec["status"] == "pending" and rec["nextAttemptAt"]
    c.advance(59 * 60)
    assert len(agent.jobs) == 1
    c.advance(61)
    wait_for(lambda: len(agent.jobs) == 2, what="second attempt")
    wait_for(lambda: rest("GET", f"/deployments/{dep_id}/devices")["data"][0]["retryCount"] == 2, what="second retry scheduled")
    c.advance(60 * 60 + 1)  # the last backoff value is reused
    wait_for(lambda: len(agent.jobs) == 3, what="third attempt")
    done = rest.wait_status(dep_id, "failed")
    assert done["progress"]["failed"] == 1
    err = rest("POST", f"/deployments/{dep_id}/devices/{agent.device_id}/retry", 400)
    assert err["error"]["code"] == "retries_exhausted" and "maxRetries" in err["error"]["message"]
    assert len({j.job_id for j in agent.jobs}) == 3


def test_offline_device_skipped_then_manual_retry(coordinator: InProcessCoordinator) -> None:
    online = fleet(coordinator, 1, prefix="on")
    offline = fleet(coordinator, 1, prefix="off", connect=False)
    rest = Rest(coordinator)
    dep_id = rest.launch(body(script(coordinator), [online[0].device_id, offline[0].device_id]))
    done = rest.wait_status(dep_id, "completed")
    assert done["progress"]["skipped"] == 1 and done["progress"]["percentComplete"] == 50
    rec = rest("GET", f"/deployments/{dep_id}/devices", params={"status": "skipped"})["data"][0]
    assert rec["skipReason"] == "offline" and rec["deviceId"] == offline[0].device_id
    offline[0].connect()
    wait_for(lambda: rest("GET", f"/clients/{coordinator.client_id}/devices/{offline[0].device_id}")["online"],
             what="device online")
    retried = rest("POST", f"/deployments/{dep_id}/devices/{offline[0].device_id}/retry")
    assert retried["status"] == "pending" and retried["retryCount"] == 0  # never ran: not a retry
    final = wait_for(lambda: (d := rest("GET", f"/deployments/{dep_id}"))["progress"]["completed"] == 2 and d,
                     what="retried device completes")
    assert final["status"] == "completed" and offline[0].executions[dep_id] == 1


def test_install_timeout_fails_a_silent_device(fake_clock_coordinator: InProcessCoordinator) -> None:
    c = fake_clock_coordinator
    [agent] = fleet(c, 1, always("hang"))
    rest = Rest(c)
    dep_id = rest.launch(body(script(c), [agent.device_id], timeout=10))
    wait_for(lambda: len(agent.jobs) == 1, what="dispatch")
    wait_reported(c, agent.device_id, "downloading")
    c.advance(10 * 60 + 1)
    done = rest.wait_status(dep_id, "failed")
    rec = rest("GET", f"/deployments/{dep_id}/devices")["data"][0]
    assert "install timeout" in rec["error"] and done["progress"]["failed"] == 1
    # The timed-out job is withdrawn, so a device that never started it will not run it late.
    wait_for(lambda: agent.cancels == [agent.jobs[0].job_id], what="the timed-out job to be withdrawn")


def test_maintenance_window_skip(coordinator: InProcessCoordinator) -> None:
    weekday = datetime.now().astimezone().strftime("%a")
    closed = [d for d in ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun") if d != weekday][0]
    agents = fleet(coordinator, 1, windows=[f"{closed} 01:00-02:00 UTC"])
    rest = Rest(coordinator)
    dep_id = rest.launch(body(script(coordinator), [agents[0].device_id], windows=True))
    rest.wait_status(dep_id, "completed")
    rec = rest("GET", f"/deployments/{dep_id}/devices")["data"][0]
    assert rec["status"] == "skipped" and rec["skipReason"] == "outside_maintenance_window"
    assert agents[0].jobs == []


def test_rollback_runs_the_rollback_body_where_completed(coordinator: InProcessCoordinator) -> None:
    agents = fleet(coordinator, 3)
    rest = Rest(coordinator)
    dep_id = rest.launch(body(script(coordinator, body="echo do", rollback_body="echo undo"),
                              [a.device_id for a in agents]))
    rest.wait_status(dep_id, "completed")
    rb = rest("POST", f"/deployments/{dep_id}/rollback", 201)
    assert rb["rollbackOf"] == dep_id
    assert rest("GET", f"/deployments/{dep_id}")["status"] == "rollback"
    rest.wait_status(rb["id"], "completed")
    rollback_jobs = [j for a in agents for j in a.jobs if j.deployment_id == rb["id"]]
    assert len(rollback_jobs) == 3 and all(j.rollback for j in rollback_jobs)
    assert {agents[0].payload(j)["body"] for j in rollback_jobs} == {"echo undo"}
    assert rest("POST", f"/deployments/{dep_id}/rollback", 409)["error"]["details"]["status"] == "rollback"


def test_errors_are_the_seed_body(coordinator: InProcessCoordinator) -> None:
    [agent] = fleet(coordinator, 1)
    rest = Rest(coordinator)
    sid = script(coordinator)
    bad = rest("POST", "/deployments", 400, json=body(sid, [agent.device_id], staggered={"batchSize": "0%"}))
    assert bad["error"]["details"]["parameter"] == "rolloutConfig.staggered.batchSize"
    unknown = rest("POST", "/deployments", 400, json=body("00000000-0000-4000-8000-000000000000", [agent.device_id]))
    assert unknown["error"]["code"] == "invalid_argument"
    rest("POST", "/deployments", 400, content=b"{not json")
    assert rest("GET", "/deployments/not-a-uuid", 400)["error"]["details"]["parameter"] == "id"
    missing = rest("GET", "/deployments/00000000-0000-4000-8000-000000000000", 404)
    assert missing["error"]["message"] == "Deployment not found"
    dep = rest("POST", "/deployments", 201, json=body(sid, [agent.device_id]))
    rest("PUT", f"/deployments/{dep['id']}", json={"name": "Renamed"})
    assert rest("GET", f"/deployments/{dep['id']}")["name"] == "Renamed"
    assert rest("POST", f"/deployments/{dep['id']}/start", 409)["error"]["details"]["status"] == "draft"
    rest("POST", f"/deployments/{dep['id']}/initialize")
    conflict = rest("PUT", f"/deployments/{dep['id']}", 409, json={"name": "x"})
    assert conflict["error"]["details"]["status"] == "pending"
    rest("DELETE", f"/deployments/{dep['id']}", 409)
    assert rest("GET", "/deployments", params={"limit": "abc"}, expect=400)["error"]["details"]["parameter"] == "limit"
    assert rest("GET", "/deployments", params={"status": "bogus"}, expect=400)["error"]["details"]["parameter"] == "status"
    listed = rest("GET", "/deployments", params={"status": "pending", "type": "script", "limit": 1, "offset": 0})
    assert listed["total"] == 1 and listed["data"][0]["id"] == dep["id"]
    Rest(coordinator, token="")("GET", "/deployments", 401)
    viewer = coordinator.admin().CreateApiToken(pb.CreateApiTokenRequest(
        client_ids=[coordinator.client_id], role="viewer")).token
    Rest(coordinator, token=viewer)("POST", "/deployments", 403, json=body(sid, [agent.device_id]))
    Rest(coordinator, token=viewer)("GET", f"/deployments/{dep['id']}")
    draft = rest("POST", "/deployments", 201, json=body(sid, [agent.device_id]))
    assert rest("DELETE", f"/deployments/{draft['id']}")["deleted"] is True
    rest("GET", f"/deployments/{draft['id']}", 404)


def test_cancelled_deployment_still_times_out_silent_devices(fake_clock_coordinator: InProcessCoordinator) -> None:
    c = fake_clock_coordinator
    [agent] = fleet(c, 1, always("hang"))
    rest = Rest(c)
    dep_id = rest.launch(body(script(c), [agent.device_id], timeout=5))
    wait_for(lambda: rest("GET", f"/deployments/{dep_id}")["progress"]["running"] == 1, what="dispatch")
    assert rest("POST", f"/deployments/{dep_id}/cancel")["progress"]["running"] == 1  # already dispatched: left to finish
    c.advance(5 * 60 + 1)
    done = wait_for(lambda: (d := rest("GET", f"/deployments/{dep_id}"))["progress"]["failed"] == 1 and d,
                    what="the silent device to time out")
    assert done["status"] == "cancelled" and done["progress"]["running"] == 0


def test_openapi_documents_every_seed_path_and_the_real_errors(coordinator: InProcessCoordinator) -> None:
    import httpx

    spec = httpx.get(f"{coordinator.http_url}/openapi.json").json()
    paths = spec["paths"]
    expected = {
        "/v2/deployments": {"get", "post"},
        "/v2/deployments/{dep_id}": {"get", "put", "delete"},
        "/v2/deployments/{dep_id}/initialize": {"post"}, "/v2/deployments/{dep_id}/start": {"post"},
        "/v2/deployments/{dep_id}/pause": {"post"}, "/v2/deployments/{dep_id}/resume": {"post"},
        "/v2/deployments/{dep_id}/cancel": {"post"}, "/v2/deployments/{dep_id}/rollback": {"post"},
        "/v2/deployments/{dep_id}/devices": {"get"},
        "/v2/deployments/{dep_id}/devices/{device_id}/retry": {"post"},
        "/v2/clients/{client_id}/devices/{device_id}/deployments": {"get"},
        "/v2/clients/{client_id}/devices/{device_id}/deployments/{deployment_id}": {"get"},
    }
    for path, methods in expected.items():
        assert methods <= set(paths.get(path, {})), path
    for path, ops in paths.items():
        for op in ops.values():
            assert "422" not in op["responses"]
            # /metrics, /healthz and /readyz answer no error bodies: only the API documents them
            assert ("400" in op["responses"]) == path.startswith("/v2/"), path
    assert {"/metrics", "/healthz", "/readyz"} <= set(paths)
    assert "Error" in spec["components"]["schemas"]


def test_deployments_are_scoped_to_the_tokens_clients(coordinator: InProcessCoordinator) -> None:
    admin = coordinator.admin()
    [agent] = fleet(coordinator, 1)
    sid = script(coordinator)
    other = admin.CreateClient(pb.CreateClientRequest(name="Other Org")).id
    partner = Rest(coordinator)  # the bootstrap token spans every client
    spec = body(sid, [agent.device_id])
    err = partner("POST", "/deployments", 400, json=spec)
    assert err["error"]["details"]["parameter"] == "clientId"
    mine = partner("POST", "/deployments", 201, json={**spec, "clientId": coordinator.client_id})
    assert mine["clientId"] == coordinator.client_id

    scoped = admin.CreateApiToken(pb.CreateApiTokenRequest(client_ids=[other], role="operator")).token
    outsider = Rest(coordinator, token=scoped)
    outsider("GET", f"/deployments/{mine['id']}", 404)  # another client's deployment does not exist for it
    outsider("POST", f"/deployments/{mine['id']}/initialize", 404)
    assert outsider("GET", "/deployments")["total"] == 0
    outsider("POST", "/deployments", 403, json={**spec, "clientId": coordinator.client_id})
    # Its own client has no such script or device: a 400 naming the field, not a leak.
    assert outsider("POST", "/deployments", 400, json=spec)["error"]["details"]["parameter"] == "payload.scriptId"

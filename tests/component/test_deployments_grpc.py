"""Every row of seed 004's API reference over gRPC, with its 400/404/409 answers, and the
WatchDeployment stream."""

from __future__ import annotations

import threading

import grpc
from google.protobuf import json_format

from common.convoy.v1 import admin_pb2 as pb
from common.convoy.v1 import types_pb2 as tpb
from tests.agents import always, wait_for
from tests.component.deploy_helpers import body, fleet, script
from tests.harness import InProcessCoordinator, rpc_code

MISSING = "00000000-0000-4000-8000-000000000000"


def spec(data: dict) -> tpb.DeploymentSpec:  # type: ignore[type-arg]
    return json_format.ParseDict(data, tpb.DeploymentSpec())


def test_every_api_row_over_grpc(coordinator: InProcessCoordinator) -> None:
    agents = fleet(coordinator, 4, always("completed"))
    admin = coordinator.admin()
    sid = script(coordinator)
    ids = [a.device_id for a in agents]
    staggered = {"batchSize": "50%", "batchDelayMinutes": 0}

    dep = admin.CreateDeployment(pb.CreateDeploymentRequest(spec=spec(body(sid, ids, staggered=staggered))))
    assert dep.status == "draft" and dep.rollout_config.staggered.batch_size.string_value == "50%"
    assert rpc_code(admin.CreateDeployment, pb.CreateDeploymentRequest(
        spec=spec(body(sid, ids, staggered={"batchSize": 0})))) == grpc.StatusCode.INVALID_ARGUMENT
    int_size = admin.CreateDeployment(pb.CreateDeploymentRequest(spec=spec(body(sid, ids, staggered={"batchSize": 3}))))
    assert int_size.rollout_config.staggered.batch_size.number_value == 3

    upd = admin.UpdateDeployment(pb.UpdateDeploymentRequest(id=dep.id, spec=tpb.DeploymentSpec(name="Renamed")))
    assert upd.name == "Renamed"
    assert admin.GetDeployment(pb.DeploymentRef(id=dep.id)).name == "Renamed"
    assert rpc_code(admin.GetDeployment, pb.DeploymentRef(id=MISSING)) == grpc.StatusCode.NOT_FOUND
    assert rpc_code(admin.GetDeployment, pb.DeploymentRef(id="nope")) == grpc.StatusCode.INVALID_ARGUMENT
    assert rpc_code(admin.StartDeployment, pb.DeploymentRef(id=dep.id)) == grpc.StatusCode.FAILED_PRECONDITION

    listed = admin.ListDeployments(pb.ListDeploymentsRequest(status="draft", type="script", limit=10))
    assert listed.total == 2 and {d.id for d in listed.data} == {dep.id, int_size.id}
    assert rpc_code(admin.ListDeployments, pb.ListDeploymentsRequest(status="nope")) == grpc.StatusCode.INVALID_ARGUMENT
    assert admin.DeleteDeployment(pb.DeploymentRef(id=int_size.id)).id == int_size.id
    assert rpc_code(admin.DeleteDeployment, pb.DeploymentRef(id=int_size.id)) == grpc.StatusCode.NOT_FOUND

    init = admin.InitializeDeployment(pb.DeploymentRef(id=dep.id))
    assert init.deployment.status == "pending" and init.preview.resolved_count == 4
    assert [b.device_count for b in init.preview.batches] == [2, 2]
    assert rpc_code(admin.UpdateDeployment, pb.UpdateDeploymentRequest(
        id=dep.id, spec=tpb.DeploymentSpec(name="x"))) == grpc.StatusCode.FAILED_PRECONDITION
    assert rpc_code(admin.DeleteDeployment, pb.DeploymentRef(id=dep.id)) == grpc.StatusCode.FAILED_PRECONDITION
    assert rpc_code(admin.ResumeDeployment, pb.DeploymentRef(id=dep.id)) == grpc.StatusCode.FAILED_PRECONDITION

    events: list[pb.DeploymentEvent] = []
    watcher = threading.Thread(target=lambda: events.extend(admin.WatchDeployment(pb.DeploymentRef(id=dep.id), timeout=30)))
    watcher.start()
    admin.StartDeployment(pb.DeploymentRef(id=dep.id))
    watcher.join(30)
    assert not watcher.is_alive(), "WatchDeployment must end when the deployment finishes"
    assert events[0].deployment.status in ("pending", "downloading", "installing")
    assert events[-1].deployment.status == "completed" and events[-1].deployment.progress.percent_complete == 100
    assert [b.completed for b in events[-1].batches] == [2, 2]
    percents = [e.deployment.progress.percent_complete for e in events]
    assert percents == sorted(percents)

    recs = admin.ListDeploymentDevices(pb.ListDeploymentDevicesRequest(id=dep.id, batch_number=1))
    assert recs.total == 2 and all(r.batch_number == 1 and r.status == "completed" for r in recs.data)
    assert rpc_code(admin.ListDeploymentDevices, pb.ListDeploymentDevicesRequest(
        id=dep.id, status="weird")) == grpc.StatusCode.INVALID_ARGUMENT
    assert rpc_code(admin.RetryDeploymentDevice, pb.RetryDeploymentDeviceRequest(
        id=dep.id, device_id=ids[0])) == grpc.StatusCode.FAILED_PRECONDITION  # completed: nothing to retry
    assert rpc_code(admin.RetryDeploymentDevice, pb.RetryDeploymentDeviceRequest(
        id=dep.id, device_id=MISSING)) == grpc.StatusCode.NOT_FOUND
    assert rpc_code(admin.PauseDeployment, pb.DeploymentRef(id=dep.id)) == grpc.StatusCode.FAILED_PRECONDITION
    assert rpc_code(admin.CancelDeployment, pb.DeploymentRef(id=dep.id)) == grpc.StatusCode.FAILED_PRECONDITION

    rb = admin.RollbackDeployment(pb.DeploymentRef(id=dep.id))
    assert rb.rollback_of == dep.id
    wait_for(lambda: admin.GetDeployment(pb.DeploymentRef(id=rb.id)).status == "completed", what="rollback done")
    assert admin.GetDeployment(pb.DeploymentRef(id=dep.id)).status == "rollback"


def test_pause_resume_cancel_and_retry_over_grpc(coordinator: InProcessCoordinator) -> None:
    failing = fleet(coordinator, 2, always("failed"), prefix="bad")
    admin = coordinator.admin()
    sid = script(coordinator)
    data = body(sid, [a.device_id for a in failing], staggered={"batchSize": 1, "batchDelayMinutes": 0,
                                                                 "pauseOnFailureCount": 1},
                retry={"maxRetries": 1, "backoffMinutes": [0]})
    dep = admin.CreateDeployment(pb.CreateDeploymentRequest(spec=spec(data)))
    admin.InitializeDeployment(pb.DeploymentRef(id=dep.id))
    admin.StartDeployment(pb.DeploymentRef(id=dep.id))
    paused = wait_for(lambda: (d := admin.GetDeployment(pb.DeploymentRef(id=dep.id))).status == "paused" and d,
                      what="auto-pause")
    assert paused.progress.failed == 1 and "pauseOnFailureCount" in paused.status_reason
    failed = admin.ListDeploymentDevices(pb.ListDeploymentDevicesRequest(id=dep.id, status="failed")).data[0]
    assert failed.retry_count == 1 and failed.attempts == 2  # one automatic retry, then failed
    assert rpc_code(admin.RetryDeploymentDevice, pb.RetryDeploymentDeviceRequest(
        id=dep.id, device_id=failed.device_id)) == grpc.StatusCode.FAILED_PRECONDITION  # retries exhausted (400 in REST)
    resumed = admin.ResumeDeployment(pb.DeploymentRef(id=dep.id))
    assert resumed.status == "running"
    wait_for(lambda: admin.GetDeployment(pb.DeploymentRef(id=dep.id)).status in ("paused", "failed"), what="batch 2")
    final = admin.GetDeployment(pb.DeploymentRef(id=dep.id))
    if final.status == "paused":
        admin.CancelDeployment(pb.DeploymentRef(id=dep.id))
    assert admin.GetDeployment(pb.DeploymentRef(id=dep.id)).status in ("failed", "cancelled")


def test_policy_and_integer_parameters_over_grpc(coordinator: InProcessCoordinator) -> None:
    [agent] = fleet(coordinator, 1)
    admin = coordinator.admin()
    policy = {"name": "p", "type": "policy", "payload": {"name": "agent-settings", "version": 3,
                                                          "document": {"heartbeatIntervalSeconds": 10}},
              "targetType": "devices", "targetConfig": {"type": "devices", "deviceIds": [agent.device_id]}}
    dep = admin.CreateDeployment(pb.CreateDeploymentRequest(spec=spec(policy)))
    assert json_format.MessageToDict(dep.payload)["version"] == 3
    admin.InitializeDeployment(pb.DeploymentRef(id=dep.id))
    admin.StartDeployment(pb.DeploymentRef(id=dep.id))
    wait_for(lambda: agent.jobs, what="policy job")
    assert agent.payload(agent.jobs[0]) == {"name": "agent-settings", "version": 3, "action": "apply",
                                            "document": {"heartbeatIntervalSeconds": 10}}

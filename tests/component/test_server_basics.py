"""The coordinator serves health, reflection, and enforces admin auth over gRPC."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from common.convoy.v1 import admin_pb2 as pb
from tests.harness import InProcessCoordinator, rpc_code


def test_health_and_reflection(coordinator: InProcessCoordinator) -> None:
    channel = grpc.insecure_channel(coordinator.grpc_target)
    resp = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service="convoy.v1.AdminService"))
    assert resp.status == health_pb2.HealthCheckResponse.SERVING
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    answers = list(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
    names = {s.name for s in answers[0].list_services_response.service}
    assert {"convoy.v1.AdminService", "convoy.v1.AgentService", "grpc.health.v1.Health"} <= names


def test_admin_auth_and_roles(coordinator: InProcessCoordinator) -> None:
    assert rpc_code(coordinator.admin(token="").ListClients, pb.ListClientsRequest()) == grpc.StatusCode.UNAUTHENTICATED
    assert rpc_code(coordinator.admin(token="cvy_api_nope").ListClients, pb.ListClientsRequest()) == grpc.StatusCode.UNAUTHENTICATED

    admin = coordinator.admin()
    other = admin.CreateClient(pb.CreateClientRequest(name="Other Org"))
    viewer = admin.CreateApiToken(pb.CreateApiTokenRequest(client_ids=[coordinator.client_id], role="viewer"))
    scoped_admin = admin.CreateApiToken(pb.CreateApiTokenRequest(client_ids=[coordinator.client_id], role="admin"))
    assert viewer.token.startswith("cvy_api_") and len(viewer.token) > 40

    v = coordinator.admin(token=viewer.token)
    assert [c.id for c in v.ListClients(pb.ListClientsRequest()).data] == [coordinator.client_id]
    assert rpc_code(v.CreateApiToken, pb.CreateApiTokenRequest(client_ids=[coordinator.client_id], role="viewer")) == grpc.StatusCode.PERMISSION_DENIED
    a = coordinator.admin(token=scoped_admin.token)
    assert rpc_code(a.CreateClient, pb.CreateClientRequest(name="x")) == grpc.StatusCode.PERMISSION_DENIED
    assert rpc_code(a.CreateApiToken, pb.CreateApiTokenRequest(client_ids=[other.id], role="viewer")) == grpc.StatusCode.PERMISSION_DENIED
    assert rpc_code(admin.CreateApiToken, pb.CreateApiTokenRequest(client_ids=["not-a-uuid"], role="viewer")) == grpc.StatusCode.INVALID_ARGUMENT
    assert rpc_code(admin.CreateApiToken, pb.CreateApiTokenRequest(client_ids=["00000000-0000-0000-0000-000000000000"], role="viewer")) == grpc.StatusCode.NOT_FOUND

"""API tokens: list, revoke and expiry, through gRPC, REST and the CLI of a real coordinator."""

from __future__ import annotations

import json
import time

import grpc
import httpx
import pytest

from common.convoy.v1 import admin_pb2 as pb
from tests.harness import InProcessCoordinator, rpc_code


def _rest_status(c: InProcessCoordinator, token: str) -> int:
    return httpx.get(f"{c.http_url}/v2/deployments", headers={"Authorization": f"Bearer {token}"}).status_code


def test_revoked_and_expired_tokens_are_refused_at_once(coordinator: InProcessCoordinator) -> None:
    c = coordinator
    admin = c.admin()
    other = admin.CreateClient(pb.CreateClientRequest(name="Other")).id
    op = admin.CreateApiToken(pb.CreateApiTokenRequest(client_ids=[c.client_id], role="operator", name="ci"))
    short = admin.CreateApiToken(pb.CreateApiTokenRequest(client_ids=[c.client_id], role="viewer",
                                                          expires_in_seconds=1))
    scoped_admin = admin.CreateApiToken(pb.CreateApiTokenRequest(client_ids=[c.client_id], role="admin"))
    both = admin.CreateApiToken(pb.CreateApiTokenRequest(client_ids=[c.client_id, other], role="viewer"))
    assert _rest_status(c, op.token) == 200 and _rest_status(c, short.token) == 200

    listed = {t.id: t for t in admin.ListApiTokens(pb.ListApiTokensRequest()).data}
    assert {op.id, short.id, scoped_admin.id, both.id} <= set(listed)
    assert listed[op.id].role == "operator" and listed[op.id].client_ids == [c.client_id] and not listed[op.id].revoked
    assert listed[short.id].expires_at and listed[op.id].expires_at == ""
    assert any(t.partner for t in listed.values())  # the bootstrap token, shown to a partner
    assert op.token not in str(listed)

    # an admin of one client sees and revokes only tokens wholly inside it
    mine = c.admin(scoped_admin.token)
    seen = {t.id for t in mine.ListApiTokens(pb.ListApiTokensRequest()).data}
    assert op.id in seen and both.id not in seen and not any(t.partner for t in mine.ListApiTokens(
        pb.ListApiTokensRequest()).data)
    assert rpc_code(mine.RevokeApiToken, pb.RevokeApiTokenRequest(token_id=both.id)) == grpc.StatusCode.PERMISSION_DENIED
    assert rpc_code(c.admin(op.token).ListApiTokens, pb.ListApiTokensRequest()) == grpc.StatusCode.PERMISSION_DENIED

    revoked = mine.RevokeApiToken(pb.RevokeApiTokenRequest(token_id=op.id))
    assert revoked.revoked
    started = time.monotonic()
    assert _rest_status(c, op.token) == 401
    assert rpc_code(c.admin(op.token).ListClients, pb.ListClientsRequest()) == grpc.StatusCode.UNAUTHENTICATED
    assert time.monotonic() - started < 1.0

    time.sleep(1.1)
    assert _rest_status(c, short.token) == 401
    with pytest.raises(grpc.RpcError) as info:
        c.admin(short.token).ListClients(pb.ListClientsRequest())
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED and "expired at" in (info.value.details() or "")


def test_api_tokens_cli(coordinator: InProcessCoordinator) -> None:
    c = coordinator
    made = json.loads(c.cli("api-tokens", "create", "--client", c.client_id, "--role", "viewer",
                            "--expires-in", "1h", "-o", "json").stdout)
    rows = json.loads(c.cli("api-tokens", "list", "--client", c.client_id, "-o", "json").stdout)["data"]
    [row] = [r for r in rows if r["id"] == made["id"]]
    assert row["role"] == "viewer" and row["expires_at"] and row["revoked"] is False
    assert json.loads(c.cli("api-tokens", "revoke", made["id"], "-o", "json").stdout)["revoked"] is True
    table = c.cli("api-tokens", "list").stdout
    assert made["id"] in table and "yes" in table
    bad = c.cli("api-tokens", "create", "--client", c.client_id, "--expires-in", "soon", check=False)
    assert bad.returncode == 2 and bad.stderr.startswith("error: --expires-in")


def test_rest_twins(coordinator: InProcessCoordinator) -> None:
    c = coordinator
    admin = c.admin()
    viewer = admin.CreateApiToken(pb.CreateApiTokenRequest(client_ids=[c.client_id], role="viewer"))
    h = {"Authorization": f"Bearer {c.token}"}
    listed = httpx.get(f"{c.http_url}/v2/api-tokens", params={"clientId": c.client_id}, headers=h).json()
    assert viewer.id in {t["id"] for t in listed["data"]} and listed["total"] == len(listed["data"])
    r = httpx.get(f"{c.http_url}/v2/api-tokens", headers={"Authorization": f"Bearer {viewer.token}"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    r = httpx.post(f"{c.http_url}/v2/api-tokens/{viewer.id}/revoke", headers=h)
    assert r.status_code == 200 and r.json()["revoked"] is True
    assert _rest_status(c, viewer.token) == 401
    r = httpx.post(f"{c.http_url}/v2/api-tokens/not-a-uuid/revoke", headers=h)
    assert r.status_code == 400

    from common import transport
    from common.convoy.v1 import agent_pb2, agent_pb2_grpc

    tok = admin.CreateEnrollmentToken(pb.CreateEnrollmentTokenRequest(client_id=c.client_id)).token
    stub = agent_pb2_grpc.AgentServiceStub(transport.sync_channel(c.grpc_target, transport.PLAINTEXT))
    dev = stub.Enroll(agent_pb2.EnrollRequest(token=tok, machine_id="m-1"), timeout=10)
    r = httpx.post(f"{c.http_url}/v2/clients/{c.client_id}/devices/{dev.device_id}/replace", headers=h)
    assert r.status_code == 201 and r.json()["device_id"] == dev.device_id
    again = stub.Enroll(agent_pb2.EnrollRequest(token=r.json()["token"], machine_id="m-2"), timeout=10)
    assert again.device_id == dev.device_id

"""Approvals (docs/approvals.md) over REST and gRPC against a real coordinator, on both stores:
the client's policy, the 409 on start until another operator approves, the 403 for the token
that created the deployment, tenancy scoping, and the audit trail."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from sqlalchemy import select

from common.convoy.v1 import admin_pb2 as pb
from common.convoy.v1 import types_pb2 as tpb
from coordinator.store import models as m
from tests.component.deploy_helpers import Rest, body, fleet, script
from tests.harness import InProcessCoordinator, rpc_code


def _token(c: InProcessCoordinator, role: str, client_id: str | None = None, name: str = "") -> str:
    return str(c.admin().CreateApiToken(pb.CreateApiTokenRequest(
        client_ids=[client_id or c.client_id], role=role, name=name or role)).token)


def _token_id(c: InProcessCoordinator, token: str) -> str:
    return str(Rest(c, token)("GET", "/me")["tokenId"])


def _other_client(c: InProcessCoordinator) -> str:
    return str(c.admin().CreateClient(pb.CreateClientRequest(name="Other MSP customer")).id)


def _error(rest: Rest, method: str, path: str, status: int, **kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = rest(method, path, status, **kw)["error"]
    return out


def test_policy_set_get_validation_and_scoping(coordinator_any: InProcessCoordinator) -> None:
    c = coordinator_any
    admin = Rest(c)
    path = f"/clients/{c.client_id}/policy"
    assert admin("GET", path) == {"clientId": c.client_id, "requireApprovalOver": None,
                                  "requireApprovalForAll": False, "updatedAt": None, "updatedBy": None}
    out = admin("PUT", path, json={"requireApprovalOver": 50, "requireApprovalForAll": True})
    assert out["requireApprovalOver"] == 50 and out["requireApprovalForAll"] is True
    assert out["updatedBy"] == _token_id(c, c.token) and out["updatedAt"]
    assert admin("GET", path) == out
    # PUT replaces the whole policy: a field left out is no such rule
    assert admin("PUT", path, json={"requireApprovalForAll": True})["requireApprovalOver"] is None
    assert admin("PUT", path, json={})["requireApprovalForAll"] is False
    assert admin("GET", path)["updatedBy"] is None

    for bad, field in (({"requireApprovalOver": -1}, "requireApprovalOver"),
                       ({"requireApprovalOver": "ten"}, "requireApprovalOver"),
                       ({"requireApprovalForAll": "yes"}, "requireApprovalForAll"),
                       ({"requireApprovalOver": 3, "limit": 3}, "limit")):
        err = _error(admin, "PUT", path, 400, json=bad)
        assert err["code"] == "invalid_argument" and err["details"]["parameter"] == field, err
    assert _error(admin, "PUT", path, 400, content=b"{nope")["details"]["parameter"] == "body"
    assert _error(admin, "GET", "/clients/not-a-uuid/policy", 400)["details"]["parameter"] == "clientId"
    assert _error(admin, "GET", "/clients/00000000-0000-4000-8000-000000000000/policy", 404)["code"] == "not_found"

    # admin role only, and only for the caller's clients
    operator = Rest(c, _token(c, "operator"))
    assert "admin role required" in _error(operator, "GET", path, 403)["message"]
    assert "admin role required" in _error(operator, "PUT", path, 403, json={"requireApprovalOver": 1})["message"]
    other = _other_client(c)
    other_admin = Rest(c, _token(c, "admin", other))
    assert _error(other_admin, "PUT", path, 403, json={"requireApprovalOver": 1})["code"] == "forbidden"
    assert admin("GET", path)["requireApprovalOver"] is None  # unchanged by the refused call
    assert Rest(c, "")("GET", path, 401)["error"]["code"] == "unauthenticated"

    # gRPC: the same rules
    got = c.admin().SetClientPolicy(pb.ClientPolicy(client_id=c.client_id, require_approval_over=0))
    assert got.HasField("require_approval_over") and got.require_approval_over == 0
    assert not c.admin().GetClientPolicy(pb.ClientPolicyRef(client_id=c.client_id)).require_approval_for_all
    assert admin("GET", path)["requireApprovalOver"] == 0
    assert rpc_code(c.admin(_token(c, "viewer")).GetClientPolicy,
                    pb.ClientPolicyRef(client_id=c.client_id)) == grpc.StatusCode.PERMISSION_DENIED
    assert rpc_code(c.admin().SetClientPolicy, pb.ClientPolicy(client_id="x")) == grpc.StatusCode.INVALID_ARGUMENT


def test_start_refused_until_another_operator_approves(coordinator_any: InProcessCoordinator) -> None:
    c = coordinator_any
    agents = fleet(c, 3)
    ids = [a.device_id for a in agents]
    Rest(c)("PUT", f"/clients/{c.client_id}/policy", json={"requireApprovalOver": 2})
    alice_token, bob_token = _token(c, "operator", name="alice"), _token(c, "operator", name="bob")
    alice, bob = Rest(c, alice_token), Rest(c, bob_token)
    dep = alice("POST", "/deployments", 201, json=body(script(c), ids))
    path = f"/deployments/{dep['id']}"
    assert alice("GET", path)["approval"]["status"] == "not_evaluated"
    assert "initialize it first" in _error(bob, "POST", path + "/approve", 409)["message"]

    init = alice("POST", path + "/initialize")
    reason = "needs approval by another operator: 3 targets over the client's limit of 2"
    assert init["preview"]["approval"] == {"status": "required", "required": True, "reason": reason, "approvals": []}
    assert init["deployment"]["approval"]["status"] == "required"

    err = _error(alice, "POST", path + "/start", 409)
    assert err["code"] == "conflict" and err["message"] == reason and err["details"]["approval"] == "required"
    assert _error(bob, "POST", path + "/start", 409)["message"] == reason  # the approver cannot skip it either

    # the creating token is refused with the reason; so are a viewer and another client's operator
    err = _error(alice, "POST", path + "/approve", 403, json={"comment": "me, myself"})
    assert err["code"] == "forbidden" and "created this deployment cannot approve it" in err["message"]
    assert "operator role required" in _error(Rest(c, _token(c, "viewer")), "POST", path + "/approve", 403)["message"]
    outsider = Rest(c, _token(c, "operator", _other_client(c)))
    assert _error(outsider, "POST", path + "/approve", 404)["code"] == "not_found"
    assert _error(bob, "POST", path + "/approve", 400, json={"comment": 7})["details"]["parameter"] == "comment"
    assert _error(bob, "POST", path + "/approve", 400, json={"why": "x"})["details"]["parameter"] == "why"
    assert _error(bob, "POST", "/deployments/nope/approve", 400)["details"]["parameter"] == "id"
    assert alice("GET", path)["approval"]["approvals"] == []

    approved = bob("POST", path + "/approve", json={"comment": "CHG-1234 reviewed"})
    a = approved["approval"]
    assert a["status"] == "approved" and a["required"] and approved["status"] == "pending"
    bob_id = _token_id(c, bob_token)
    assert [(x["tokenId"], x["tokenName"], x["comment"]) for x in a["approvals"]] == [(bob_id, "bob", "CHG-1234 reviewed")]
    assert bob("POST", path + "/approve")["approval"] == a  # idempotent: nothing new recorded

    started = alice("POST", path + "/start")
    assert started["status"] != "pending" and started["approval"]["status"] == "approved"
    done = alice.wait_status(dep["id"], "completed")
    assert done["progress"]["completed"] == 3 and done["approval"]["approvals"][0]["tokenId"] == bob_id
    assert "cannot be approved" in _error(bob, "POST", path + "/approve", 409)["message"]

    # the audit trail: who approved, when, why; then who started
    trail = alice("GET", path + "/audit")
    events = [(e["actor"], e["fromStatus"], e["toStatus"], e["reason"]) for e in trail["data"]]
    assert trail["total"] == len(events) and events[0][3] == "created"
    alice_id = _token_id(c, alice_token)
    approval = (bob_id, "pending", "pending", "approved: CHG-1234 reviewed")
    assert events.count(approval) == 1  # the idempotent second approve recorded nothing
    approved_at = events.index(approval)
    assert trail["data"][approved_at]["actorName"] == "bob" and trail["data"][approved_at]["at"]
    assert events[approved_at + 1][:3] == (alice_id, "pending", "downloading")
    with c.store.read() as s:  # the REST view is the stored trail, row for row
        stored = [(e.actor, e.from_status, e.to_status, e.reason) for e in s.scalars(
            select(m.DeploymentEvent).where(m.DeploymentEvent.deployment_id == dep["id"]).order_by(m.DeploymentEvent.id))]
    assert stored == events
    assert alice("GET", path + "/audit", params={"limit": 1, "offset": 1})["data"][0]["reason"] == events[1][3]
    assert _error(alice, "GET", path + "/audit", 400, params={"limit": 0})["details"]["parameter"] == "limit"
    assert _error(alice, "GET", path + "/audit", 400, params={"offset": "x"})["details"]["parameter"] == "offset"
    assert _error(outsider, "GET", path + "/audit", 404)["code"] == "not_found"
    audit = c.admin().ListDeploymentAudit(pb.ListDeploymentAuditRequest(id=dep["id"]))
    assert audit.total == len(events) and audit.data[approved_at].actor_name == "bob"


def test_grpc_approve_refuses_the_creator_and_accepts_another(coordinator_any: InProcessCoordinator) -> None:
    c = coordinator_any
    agents = fleet(c, 2, connect=False)
    c.admin().SetClientPolicy(pb.ClientPolicy(client_id=c.client_id, require_approval_over=1))
    alice, bob = c.admin(_token(c, "operator")), c.admin(_token(c, "admin"))
    spec = json_format.ParseDict(body(script(c), [a.device_id for a in agents]), tpb.DeploymentSpec())
    dep = alice.CreateDeployment(pb.CreateDeploymentRequest(spec=spec))
    alice.InitializeDeployment(pb.DeploymentRef(id=dep.id))
    assert alice.GetDeployment(pb.DeploymentRef(id=dep.id)).approval.status == "required"
    with pytest.raises(grpc.RpcError) as exc:
        alice.StartDeployment(pb.DeploymentRef(id=dep.id))
    assert exc.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "2 targets over the client's limit of 1" in (exc.value.details() or "")
    assert rpc_code(alice.ApproveDeployment, pb.ApproveDeploymentRequest(id=dep.id)) == grpc.StatusCode.PERMISSION_DENIED
    out = bob.ApproveDeployment(pb.ApproveDeploymentRequest(id=dep.id, comment="ok"))
    assert out.approval.status == "approved" and out.approval.approvals[0].comment == "ok"
    assert alice.StartDeployment(pb.DeploymentRef(id=dep.id)).status != "pending"


def test_no_approval_needed_for_all_rule_and_a_tightened_policy(coordinator_any: InProcessCoordinator) -> None:
    c = coordinator_any
    agents = fleet(c, 2, connect=False)
    ids = [a.device_id for a in agents]
    admin, bob = Rest(c), Rest(c, _token(c, "operator"))
    policy = f"/clients/{c.client_id}/policy"
    sid = script(c)

    # no policy: approving is a 409 that says why, and start needs nothing
    dep = admin("POST", "/deployments", 201, json=body(sid, ids))
    admin("POST", f"/deployments/{dep['id']}/initialize")
    assert (_error(bob, "POST", f"/deployments/{dep['id']}/approve", 409)["message"]
            == "deployment needs no approval: the client has no approval policy")

    # the targetType all rule, whatever the size
    admin("PUT", policy, json={"requireApprovalForAll": True})
    everyone = {**body(sid, ids), "targetType": "all", "targetConfig": {"type": "all"}}
    dep_all = admin("POST", "/deployments", 201, json=everyone)
    admin("POST", f"/deployments/{dep_all['id']}/initialize")
    assert (_error(admin, "POST", f"/deployments/{dep_all['id']}/start", 409)["message"]
            == "needs approval by another operator: it targets all of the client's devices")
    assert "targetType is devices, not all" in _error(bob, "POST", f"/deployments/{dep['id']}/approve", 409)["message"]
    assert admin("POST", f"/deployments/{dep['id']}/start")["status"] != "pending"

    # a policy tightened after initialize holds at start (the count frozen at initialize)
    small = admin("POST", "/deployments", 201, json=body(sid, ids[:1]))
    admin("POST", f"/deployments/{small['id']}/initialize")
    admin("PUT", policy, json={"requireApprovalOver": 0})
    assert "1 target over the client's limit of 0" in _error(admin, "POST", f"/deployments/{small['id']}/start", 409)["message"]
    bob("POST", f"/deployments/{small['id']}/approve")
    assert admin("POST", f"/deployments/{small['id']}/start")["approval"]["status"] == "approved"
    # lists leave the approval out (one more query per row); GET has it
    listed = admin("GET", "/deployments")["data"]
    assert listed and all("approval" not in d for d in listed)


def test_watch_shows_the_approval_as_it_arrives(coordinator: InProcessCoordinator) -> None:
    c = coordinator
    agents = fleet(c, 2)
    c.admin().SetClientPolicy(pb.ClientPolicy(client_id=c.client_id, require_approval_over=0))
    dep = Rest(c)("POST", "/deployments", 201, json=body(script(c), [a.device_id for a in agents]))
    Rest(c)("POST", f"/deployments/{dep['id']}/initialize")
    stream = c.admin().WatchDeployment(pb.DeploymentRef(id=dep["id"]), timeout=20)
    try:
        first = next(stream)
        assert first.deployment.status == "pending" and first.deployment.approval.status == "required"
        assert "2 targets over the client's limit of 0" in first.deployment.approval.reason
        Rest(c, _token(c, "operator", name="bob"))("POST", f"/deployments/{dep['id']}/approve", json={"comment": "go"})
        second = next(stream)  # nothing else changed: the approval alone is a new snapshot
        assert second.deployment.status == "pending" and second.deployment.approval.status == "approved"
        assert [(a.token_name, a.comment) for a in second.deployment.approval.approvals] == [("bob", "go")]
        Rest(c)("POST", f"/deployments/{dep['id']}/start")
        statuses = [ev.deployment.status for ev in stream]
        assert statuses[-1] == "completed"
    finally:
        stream.cancel()

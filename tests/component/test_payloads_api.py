"""Groups, scripts and artifacts over gRPC against a running coordinator."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime

import grpc
import pytest

from common.convoy.v1 import admin_pb2 as pb
from common.ids import new_id
from coordinator.service import payloads
from coordinator.store import models as m
from tests.harness import AdminClient, InProcessCoordinator, rpc_code

NOW = datetime(2026, 3, 1, tzinfo=UTC)
MIB = 1024 * 1024
MISSING = "00000000-0000-0000-0000-000000000000"


def _device(c: InProcessCoordinator, client_id: str) -> str:
    with c.store.tx() as s:
        d = m.Device(id=new_id(), client_id=client_id, machine_id=new_id(), credential_hash=new_id(),
                     hostname="web-1", created_at=NOW, updated_at=NOW)
        s.add(d)
    return d.id


def _token(c: InProcessCoordinator, role: str, client_id: str | None = None) -> AdminClient:
    out = c.admin().CreateApiToken(pb.CreateApiTokenRequest(client_ids=[client_id or c.client_id], role=role))
    return c.admin(token=out.token)


def _upload(client: AdminClient, name: str, data: bytes, client_id: str = "", piece: int = 256 * 1024) -> pb.Artifact:
    def messages() -> Iterator[pb.UploadArtifactChunk]:
        yield pb.UploadArtifactChunk(client_id=client_id, name=name, data=data[:piece])
        for i in range(piece, len(data), piece):
            yield pb.UploadArtifactChunk(data=data[i:i + piece])
    return client.UploadArtifact(messages())  # type: ignore[no-any-return]


def _details(exc: grpc.RpcError) -> dict[str, object]:
    return json.loads(dict(exc.trailing_metadata())["convoy-error-details"])  # type: ignore[attr-defined, no-any-return]


def test_groups(coordinator: InProcessCoordinator) -> None:
    op = _token(coordinator, "operator")
    d1, d2 = _device(coordinator, coordinator.client_id), _device(coordinator, coordinator.client_id)
    g = op.CreateGroup(pb.CreateGroupRequest(name="web"))  # the token's only client
    assert g.client_id == coordinator.client_id and g.name == "web" and list(g.device_ids) == []
    assert rpc_code(op.CreateGroup, pb.CreateGroupRequest(name="web")) == grpc.StatusCode.FAILED_PRECONDITION
    assert rpc_code(op.CreateGroup, pb.CreateGroupRequest(name=" ")) == grpc.StatusCode.INVALID_ARGUMENT

    g = op.AddGroupMembers(pb.GroupMembersRequest(group_id=g.id, device_ids=[d1, d2, d1]))
    assert sorted(g.device_ids) == sorted([d1, d2])
    g = op.AddGroupMembers(pb.GroupMembersRequest(group_id=g.id, device_ids=[d2]))
    assert len(g.device_ids) == 2
    g = op.RemoveGroupMembers(pb.GroupMembersRequest(group_id=g.id, device_ids=[d2]))
    assert list(g.device_ids) == [d1]
    listed = _token(coordinator, "viewer").ListGroups(pb.ListGroupsRequest()).data
    assert [(x.id, list(x.device_ids)) for x in listed] == [(g.id, [d1])]

    with pytest.raises(grpc.RpcError) as bad:
        op.AddGroupMembers(pb.GroupMembersRequest(group_id=g.id, device_ids=[d1, "nope"]))
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "device_ids" in bad.value.details()
    with pytest.raises(grpc.RpcError) as missing:
        op.AddGroupMembers(pb.GroupMembersRequest(group_id=g.id, device_ids=[MISSING]))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND and MISSING in missing.value.details()
    assert _details(missing.value)["device_id"] == MISSING
    assert rpc_code(op.AddGroupMembers, pb.GroupMembersRequest(group_id=MISSING, device_ids=[d1])) == grpc.StatusCode.NOT_FOUND
    assert rpc_code(op.AddGroupMembers, pb.GroupMembersRequest(group_id="x", device_ids=[d1])) == grpc.StatusCode.INVALID_ARGUMENT


def test_groups_across_clients(coordinator: InProcessCoordinator) -> None:
    admin = coordinator.admin()
    other = admin.CreateClient(pb.CreateClientRequest(name="Other Org")).id
    theirs = _device(coordinator, other)
    # The partner token now spans two clients: a create must say which.
    assert rpc_code(admin.CreateGroup, pb.CreateGroupRequest(name="g")) == grpc.StatusCode.INVALID_ARGUMENT
    g = admin.CreateGroup(pb.CreateGroupRequest(client_id=coordinator.client_id, name="g"))
    admin.CreateGroup(pb.CreateGroupRequest(client_id=other, name="g"))  # names are unique per client
    # A device of another client cannot join.
    assert rpc_code(admin.AddGroupMembers, pb.GroupMembersRequest(group_id=g.id, device_ids=[theirs])) == grpc.StatusCode.NOT_FOUND
    op = _token(coordinator, "operator")
    assert rpc_code(op.CreateGroup, pb.CreateGroupRequest(client_id=other, name="x")) == grpc.StatusCode.PERMISSION_DENIED
    assert rpc_code(op.ListGroups, pb.ListGroupsRequest(client_id=other)) == grpc.StatusCode.PERMISSION_DENIED
    assert rpc_code(op.AddGroupMembers, pb.GroupMembersRequest(client_id=other, group_id=g.id, device_ids=[theirs])) == grpc.StatusCode.PERMISSION_DENIED
    assert [x.id for x in op.ListGroups(pb.ListGroupsRequest()).data] == [g.id]
    assert len(admin.ListGroups(pb.ListGroupsRequest()).data) == 2
    assert len(admin.ListGroups(pb.ListGroupsRequest(client_id=other)).data) == 1


def test_scripts(coordinator: InProcessCoordinator) -> None:
    op = _token(coordinator, "operator")
    schema = '{"type": "object", "properties": {"port": {"type": "integer"}}, "required": ["port"]}'
    sc = op.CreateScript(pb.CreateScriptRequest(name="open-port", interpreter="bash", body="ufw allow $port\n",
                                                parameters_schema=schema, rollback_body="ufw deny $port\n"))
    assert (sc.interpreter, sc.rollback_body) == ("bash", "ufw deny $port\n")
    assert json.loads(sc.parameters_schema)["required"] == ["port"]
    plain = op.CreateScript(pb.CreateScriptRequest(name="uptime", interpreter="powershell", body="Get-Uptime"))
    assert plain.parameters_schema == "" and plain.rollback_body == ""
    listed = _token(coordinator, "viewer").ListScripts(pb.ListScriptsRequest()).data
    assert [x.id for x in listed] == [sc.id, plain.id]

    for bad in (pb.CreateScriptRequest(name="x", interpreter="zsh", body="true"),
                pb.CreateScriptRequest(name="x", interpreter="sh", body=""),
                pb.CreateScriptRequest(name="x", interpreter="sh", body="true", parameters_schema="[1]")):
        assert rpc_code(op.CreateScript, bad) == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as exc:
        op.CreateScript(pb.CreateScriptRequest(name="x", interpreter="sh", body="true",
                                               parameters_schema='{"properties": {"n": {"type": "date"}}}'))
    assert "parameters_schema.properties.n.type" in exc.value.details()
    # What the deployment service checks a deployment's parameters against.
    with coordinator.store.read() as s:
        stored = payloads.get_script(s, coordinator.client_id, sc.id).parameters_schema
    payloads.validate_parameters(stored, {"port": 443})


def test_artifacts(coordinator: InProcessCoordinator) -> None:
    op = _token(coordinator, "operator")
    data = os.urandom(3 * MIB + 5)
    deb = _upload(op, "tools_1.0_amd64.deb", data)
    assert (deb.name, deb.kind, deb.size, deb.sha256) == ("tools_1.0_amd64.deb", "deb", len(data),
                                                          hashlib.sha256(data).hexdigest())
    assert deb.client_id == coordinator.client_id
    tgz = _upload(op, "site.tgz", data, client_id=coordinator.client_id, piece=MIB + 17)
    assert tgz.kind == "tar.gz" and tgz.sha256 == deb.sha256 and tgz.id != deb.id
    txt = _upload(op, "notes.txt", b"hello")
    assert (txt.kind, txt.size) == ("file", 5)
    listed = _token(coordinator, "viewer").ListArtifacts(pb.ListArtifactsRequest()).data
    assert [a.id for a in listed] == [deb.id, tgz.id, txt.id]
    with coordinator.store.read() as s:  # one copy of the shared bytes, readable in chunks
        assert s.query(m.Blob).count() == 2
        assert b"".join(p for _, p in payloads.read_blob(s, deb.sha256, 0)) == data

    assert rpc_code(_upload, op, "", b"x") == grpc.StatusCode.INVALID_ARGUMENT
    assert rpc_code(_upload, op, "empty.bin", b"") == grpc.StatusCode.INVALID_ARGUMENT
    assert rpc_code(op.UploadArtifact, iter([])) == grpc.StatusCode.INVALID_ARGUMENT
    assert rpc_code(_upload, op, "x.bin", b"x", MISSING) == grpc.StatusCode.PERMISSION_DENIED
    assert rpc_code(_upload, coordinator.admin(), "x.bin", b"x", MISSING) == grpc.StatusCode.NOT_FOUND
    assert rpc_code(_upload, coordinator.admin(token="cvy_api_bad"), "x.bin", b"x") == grpc.StatusCode.UNAUTHENTICATED


def test_viewer_cannot_create(coordinator: InProcessCoordinator) -> None:
    viewer = _token(coordinator, "viewer")
    g = coordinator.admin().CreateGroup(pb.CreateGroupRequest(name="g"))
    d = _device(coordinator, coordinator.client_id)
    denied = grpc.StatusCode.PERMISSION_DENIED
    assert rpc_code(viewer.CreateGroup, pb.CreateGroupRequest(name="v")) == denied
    assert rpc_code(viewer.AddGroupMembers, pb.GroupMembersRequest(group_id=g.id, device_ids=[d])) == denied
    assert rpc_code(viewer.RemoveGroupMembers, pb.GroupMembersRequest(group_id=g.id, device_ids=[d])) == denied
    assert rpc_code(viewer.CreateScript, pb.CreateScriptRequest(name="s", interpreter="sh", body="true")) == denied
    assert rpc_code(_upload, viewer, "a.bin", b"abc") == denied
    with coordinator.store.read() as s:
        assert (s.query(m.Script).count(), s.query(m.Blob).count(), s.query(m.Artifact).count()) == (0, 0, 0)

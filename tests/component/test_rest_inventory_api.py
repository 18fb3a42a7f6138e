"""The REST twins of the CLI's inventory commands (clients, API and enrollment tokens, device
tags, groups, scripts, artifacts) over HTTP against a real coordinator: status codes, the seeds'
error body, and client scoping (a token of client A can neither see nor touch client B)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest
from sqlalchemy import func, select

from common import transport
from common.convoy.v1 import admin_pb2 as pb
from common.convoy.v1 import agent_pb2, agent_pb2_grpc
from coordinator.service.payloads import MAX_ARTIFACT_BYTES, TEMP_PREFIX
from coordinator.store import models as m
from tests.agents import ScriptedAgent, wait_for
from tests.harness import InProcessCoordinator

MISSING = "00000000-0000-0000-0000-000000000000"
MIB = 1024 * 1024


class Caller:
    """REST as one token: `caller("GET", path, expect=200)` returns the JSON body."""

    def __init__(self, c: InProcessCoordinator, token: str) -> None:
        self.http = httpx.Client(base_url=c.http_url + "/v2", timeout=30,
                                 headers={"Authorization": f"Bearer {token}"} if token else {})

    def __call__(self, method: str, path: str, expect: int = 200, **kw: Any) -> Any:
        r = self.http.request(method, path, **kw)
        assert r.status_code == expect, f"{method} {path}: {r.status_code} {r.text}"
        body = r.json()
        if expect >= 400:
            assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
        return body

    def error(self, method: str, path: str, expect: int, **kw: Any) -> dict[str, Any]:
        err: dict[str, Any] = self(method, path, expect, **kw)["error"]
        return err


def _token(c: InProcessCoordinator, role: str, *clients: str) -> str:
    out = c.admin().CreateApiToken(pb.CreateApiTokenRequest(client_ids=list(clients or [c.client_id]), role=role))
    return str(out.token)


@pytest.fixture
def two(coordinator: InProcessCoordinator) -> tuple[InProcessCoordinator, str, Caller, Caller]:
    """The coordinator, a second client B, an admin of A only and an admin of B only."""
    c = coordinator
    b = c.admin().CreateClient(pb.CreateClientRequest(name="Client B")).id
    return c, b, Caller(c, _token(c, "admin")), Caller(c, _token(c, "admin", b))


def _device(c: InProcessCoordinator, client_id: str, name: str) -> str:
    tok = c.admin().CreateEnrollmentToken(pb.CreateEnrollmentTokenRequest(client_id=client_id)).token
    agent = ScriptedAgent(c.grpc_target, name)
    agent.enroll(tok)
    return agent.device_id


def test_clients_and_api_tokens(two: tuple[InProcessCoordinator, str, Caller, Caller]) -> None:
    c, b, admin_a, _ = two
    partner = Caller(c, c.token)
    made = partner("POST", "/clients", 201, json={"name": "  Gamma  "})
    assert made["name"] == "Gamma" and set(made) == {"id", "name", "created_at"}
    assert made["id"] in {x["id"] for x in partner("GET", "/clients")["data"]}
    assert admin_a.error("POST", "/clients", 403, json={"name": "x"})["code"] == "forbidden"  # not a partner
    assert Caller(c, "")("POST", "/clients", 401, json={"name": "x"})["error"]["code"] == "unauthenticated"
    err = partner.error("POST", "/clients", 400, json={"name": 5})
    assert err["code"] == "invalid_argument" and err["details"]["parameter"] == "name"
    assert partner.error("POST", "/clients", 400, json={"name": "x", "nmae": "y"})["details"]["parameter"] == "nmae"
    assert partner.error("POST", "/clients", 400)["details"]["parameter"] == "body"
    assert partner.error("POST", "/clients", 400, json={"name": " "})["details"]["parameter"] == "name"

    new = admin_a("POST", "/api-tokens", 201, json={"clientIds": [c.client_id], "role": "viewer", "name": "ci",
                                                    "expiresInSeconds": 3600})
    assert set(new) == {"id", "token"}
    viewer = Caller(c, new["token"])
    assert viewer("GET", "/me")["role"] == "viewer"
    listed = {t["id"]: t for t in admin_a("GET", "/api-tokens")["data"]}
    assert listed[new["id"]]["name"] == "ci" and listed[new["id"]]["expires_at"]
    assert viewer.error("POST", "/api-tokens", 403, json={"clientIds": [c.client_id]})["code"] == "forbidden"
    # an admin of A cannot mint a token for B
    assert admin_a.error("POST", "/api-tokens", 403, json={"clientIds": [b], "role": "admin"})["code"] == "forbidden"
    assert admin_a.error("POST", "/api-tokens", 400, json={"clientIds": []})["details"]["parameter"] == "clientIds"
    assert admin_a.error("POST", "/api-tokens", 400, json={"clientIds": [c.client_id], "role": "root"})[
        "details"]["parameter"] == "role"
    assert admin_a.error("POST", "/api-tokens", 400, json={"clientIds": ["nope"]})["details"]["parameter"] == "client"
    assert admin_a.error("POST", "/api-tokens", 400, json={"clientIds": [c.client_id], "expiresInSeconds": -1})[
        "details"]["parameter"] == "expiresInSeconds"
    # a client that does not exist: outside an admin's scope (403), unknown to a partner (404)
    assert admin_a.error("POST", "/api-tokens", 403, json={"clientIds": [MISSING]})["code"] == "forbidden"
    assert partner.error("POST", "/api-tokens", 404, json={"clientIds": [MISSING]})["code"] == "not_found"
    admin_a("POST", f"/api-tokens/{new['id']}/revoke")
    assert viewer.error("GET", "/me", 401)["code"] == "unauthenticated"


def test_enrollment_tokens(two: tuple[InProcessCoordinator, str, Caller, Caller]) -> None:
    c, b, admin_a, admin_b = two
    base = f"/clients/{c.client_id}/enrollment-tokens"
    made = admin_a("POST", base, 201, json={"maxUses": 2, "expiresInSeconds": 600, "name": "lab"})
    assert set(made) == {"id", "token"} and made["token"].startswith("cvy_enr_")
    listed = admin_a("GET", base)
    [row] = [t for t in listed["data"] if t["id"] == made["id"]]
    assert listed["total"] == len(listed["data"])
    assert row["max_uses"] == 2 and row["uses"] == 0 and row["name"] == "lab" and row["expires_at"] and not row["revoked"]
    assert made["token"] not in str(listed)
    # without limits given, a token still gets the CLI's: 24 h and 100 uses
    bounded = admin_a("POST", base, 201, json={})
    [row] = [t for t in admin_a("GET", base)["data"] if t["id"] == bounded["id"]]
    assert row["max_uses"] == 100 and row["expires_at"]

    stub = agent_pb2_grpc.AgentServiceStub(transport.sync_channel(c.grpc_target, transport.PLAINTEXT))
    stub.Enroll(agent_pb2.EnrollRequest(token=made["token"], machine_id="m-1"), timeout=10)
    assert [t for t in admin_a("GET", base)["data"] if t["id"] == made["id"]][0]["uses"] == 1

    # client B's admin can neither list, create nor revoke A's tokens
    assert admin_b.error("GET", base, 403)["code"] == "forbidden"
    assert admin_b.error("POST", base, 403, json={})["code"] == "forbidden"
    assert admin_b.error("POST", f"{base}/{made['id']}/revoke", 403)["code"] == "forbidden"
    # nor find it under its own client
    assert admin_b.error("POST", f"/clients/{b}/enrollment-tokens/{made['id']}/revoke", 404)["code"] == "not_found"
    operator = Caller(c, _token(c, "operator"))
    assert operator.error("POST", base, 403, json={})["code"] == "forbidden"  # admin role
    assert admin_a.error("POST", base, 400, json={"maxUses": -1})["details"]["parameter"] == "maxUses"
    assert admin_a.error("POST", base, 400, json={"maxUses": "2"})["details"]["parameter"] == "maxUses"
    assert admin_a.error("POST", base, 404, json={"groupIds": [MISSING]})["details"]["group_id"] == MISSING
    assert admin_a.error("POST", "/clients/nope/enrollment-tokens", 400, json={})["code"] == "invalid_argument"
    assert admin_a.error("POST", f"{base}/{MISSING}/revoke", 404)["code"] == "not_found"

    revoked = admin_a("POST", f"{base}/{made['id']}/revoke")
    assert revoked["revoked"] is True and admin_a("POST", f"{base}/{made['id']}/revoke")["revoked"] is True
    with pytest.raises(grpc.RpcError) as refused:
        stub.Enroll(agent_pb2.EnrollRequest(token=made["token"], machine_id="m-2"), timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_device_tags_and_site(two: tuple[InProcessCoordinator, str, Caller, Caller]) -> None:
    c, b, admin_a, admin_b = two
    device = _device(c, c.client_id, "web-1")
    path = f"/clients/{c.client_id}/devices/{device}"
    out = admin_a("PATCH", path, json={"tags": ["web", " canary ", "web"], "site": "berlin"})
    assert out["tags"] == ["web", "canary"] and out["site"] == "berlin" and out["id"] == device
    assert admin_a("GET", path)["tags"] == ["web", "canary"]
    found = admin_a("GET", f"/clients/{c.client_id}/devices", params={"filter": '"canary" in tags and site == "berlin"'})
    assert [d["id"] for d in found["data"]] == [device]
    assert admin_a("PATCH", path, json={"site": ""})["tags"] == ["web", "canary"]  # tags left as they were
    assert admin_a("PATCH", path, json={"tags": []})["tags"] == []

    viewer = Caller(c, _token(c, "viewer"))
    assert viewer.error("PATCH", path, 403, json={"site": "x"})["code"] == "forbidden"
    assert admin_b.error("PATCH", path, 403, json={"site": "x"})["code"] == "forbidden"
    # A's device under B's client is not found, even by B's admin
    assert admin_b.error("PATCH", f"/clients/{b}/devices/{device}", 404, json={"site": "x"})["code"] == "not_found"
    assert admin_a.error("PATCH", path, 400, json={"tags": [""]})["details"]["parameter"] == "tags"
    assert admin_a.error("PATCH", path, 400, json={"tags": "web"})["details"]["parameter"] == "tags"
    assert admin_a.error("PATCH", path, 400, json={"colour": "red"})["details"]["parameter"] == "colour"
    assert admin_a.error("PATCH", f"/clients/{c.client_id}/devices/nope", 400, json={})["code"] == "invalid_argument"
    assert admin_a("GET", path)["site"] == ""


def test_groups_and_scripts(two: tuple[InProcessCoordinator, str, Caller, Caller]) -> None:
    c, b, admin_a, admin_b = two
    d1, other = _device(c, c.client_id, "a-1"), _device(c, b, "b-1")
    group = admin_a("POST", "/groups", 201, json={"name": "web"})
    assert group["client_id"] == c.client_id and group["device_ids"] == []
    assert admin_a.error("POST", "/groups", 409, json={"name": "web"})["code"] == "conflict"
    assert admin_a("POST", f"/groups/{group['id']}/members/add", json={"deviceIds": [d1, d1]})["device_ids"] == [d1]
    assert admin_a("GET", f"/groups/{group['id']}")["device_ids"] == [d1]
    err = admin_a.error("POST", f"/groups/{group['id']}/members/add", 404, json={"deviceIds": [other]})
    assert err["details"]["device_id"] == other  # B's device is not in A's client
    assert admin_a.error("POST", f"/groups/{group['id']}/members/add", 400, json={"deviceIds": []})[
        "details"]["parameter"] == "deviceIds"
    assert admin_a("POST", f"/groups/{group['id']}/members/remove", json={"deviceIds": [d1]})["device_ids"] == []
    listed = admin_a("GET", "/groups")
    assert [g["id"] for g in listed["data"]] == [group["id"]] and listed["total"] == 1
    assert Caller(c, _token(c, "viewer")).error("POST", "/groups", 403, json={"name": "x"})["code"] == "forbidden"

    script = admin_a("POST", "/scripts", 201, json={
        "name": "motd", "interpreter": "sh", "body": "echo $message", "rollbackBody": "echo undo",
        "parametersSchema": {"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]}})
    assert script["interpreter"] == "sh" and '"message"' in script["parameters_schema"]
    assert admin_a("GET", f"/scripts/{script['id']}") == script
    assert [s["id"] for s in admin_a("GET", "/scripts", params={"clientId": c.client_id})["data"]] == [script["id"]]
    assert admin_a.error("POST", "/scripts", 400, json={"name": "x", "interpreter": "cmd", "body": "x"})[
        "details"]["parameter"] == "interpreter"
    bad_schema = {"name": "x", "interpreter": "sh", "body": "x", "parametersSchema": {"type": "array"}}
    assert admin_a.error("POST", "/scripts", 400, json=bad_schema)["details"]["parameter"] == "parameters_schema"

    # B sees none of it and touches none of it
    for path in (f"/groups/{group['id']}", f"/scripts/{script['id']}"):
        assert admin_b.error("GET", path, 404)["code"] == "not_found"
    assert admin_b("GET", "/groups")["data"] == [] and admin_b("GET", "/scripts")["data"] == []
    assert admin_b.error("GET", "/groups", 403, params={"clientId": c.client_id})["code"] == "forbidden"
    assert admin_b.error("POST", f"/groups/{group['id']}/members/add", 404, json={"deviceIds": [other]})[
        "code"] == "not_found"
    assert admin_b.error("POST", "/scripts", 403, json={"name": "x", "interpreter": "sh", "body": "x",
                                                         "clientId": c.client_id})["code"] == "forbidden"
    assert admin_a.error("GET", "/groups/nope", 400)["code"] == "invalid_argument"


def _temp_chunks(c: InProcessCoordinator) -> int:
    with c.store.read() as s:
        return int(s.scalar(select(func.count()).select_from(m.BlobChunk)
                            .where(m.BlobChunk.sha256.like(f"{TEMP_PREFIX}%"))) or 0)


def test_artifact_upload_is_streamed_into_the_store(two: tuple[InProcessCoordinator, str, Caller, Caller]) -> None:
    c, b, admin_a, admin_b = two
    data = bytes(range(256)) * (5 * MIB // 256) + b"tail"  # 5 MiB: five times the door's JSON body limit
    half = threading.Event()

    def body() -> Iterator[bytes]:
        for i in range(0, 3 * MIB, 256 * 1024):
            yield data[i:i + 256 * 1024]
        half.wait(30)  # the rest only once the first MiBs are already in the store
        for i in range(3 * MIB, len(data), 256 * 1024):
            yield data[i:i + 256 * 1024]

    result: dict[str, Any] = {}

    def upload() -> None:
        result["r"] = admin_a.http.post("/artifacts", params={"name": "tools.tar.gz"}, content=body(),
                                        headers={"Content-Type": "application/octet-stream"})

    t = threading.Thread(target=upload)
    t.start()
    wait_for(lambda: _temp_chunks(c) >= 2, what="chunks written while the upload is still arriving")
    half.set()
    t.join(60)
    r = result["r"]
    assert r.status_code == 201, r.text
    art = r.json()
    assert art["sha256"] == hashlib.sha256(data).hexdigest() and art["size"] == len(data) and art["kind"] == "tar.gz"
    assert _temp_chunks(c) == 0
    again = admin_a("POST", "/artifacts", 201, params={"name": "tools.tar.gz"}, content=data)
    assert again["id"] == art["id"]  # the same bytes under the same name: the same artifact
    assert admin_a("GET", f"/artifacts/{art['id']}") == art
    assert [a["id"] for a in admin_a("GET", "/artifacts")["data"]] == [art["id"]]

    assert admin_a.error("POST", "/artifacts", 400, params={"name": "x.deb"})["details"]["parameter"] == "data"
    assert admin_a.error("POST", "/artifacts", 400, content=b"abc")["details"]["parameter"] == "name"
    assert admin_a.error("POST", "/artifacts", 400, params={"name": "../x"}, content=b"abc")[
        "details"]["parameter"] == "name"
    viewer = Caller(c, _token(c, "viewer"))
    assert viewer.error("POST", "/artifacts", 403, params={"name": "x"}, content=b"abc")["code"] == "forbidden"
    assert admin_b.error("GET", f"/artifacts/{art['id']}", 404)["code"] == "not_found"
    assert admin_b("GET", "/artifacts")["data"] == []
    assert admin_b.error("POST", "/artifacts", 403, params={"name": "x", "clientId": c.client_id},
                         content=b"abc")["code"] == "forbidden"
    assert Caller(c, "cvy_api_wrong").error("POST", "/artifacts", 401, params={"name": "x"}, content=b"a")[
        "code"] == "unauthenticated"


def test_an_oversized_upload_is_refused_before_it_is_read(coordinator: InProcessCoordinator) -> None:
    import socket

    c = coordinator
    head = (f"POST /v2/artifacts?name=big.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {c.token}\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {MAX_ARTIFACT_BYTES + 1}\r\n\r\n")
    with socket.create_connection(("127.0.0.1", c.coordinator.http_port), timeout=5) as sock:
        sock.sendall(head.encode() + b"x" * 1000)  # an answer at all: the body was not waited for
        answer = b""
        while chunk := sock.recv(65536):  # the door closes the connection after answering
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413") and b"payload_too_large" in answer

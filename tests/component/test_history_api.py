"""Seed 000 over the wire: the history API's example requests and documented errors sent over
HTTP and gRPC to a real coordinator (SQLite and PostgreSQL), enrollment over AgentService, the
enrollment timeout, and a database dump that holds no plaintext secret."""

from __future__ import annotations

import re
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from sqlalchemy import MetaData, insert, select

from common import transport
from common.convoy.v1 import admin_pb2 as pb
from common.convoy.v1 import agent_pb2 as apb
from common.convoy.v1 import agent_pb2_grpc
from common.convoy.v1 import types_pb2 as tpb
from common.ids import new_id
from coordinator.store import models as m
from tests.harness import InProcessCoordinator, rpc_code

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
SEED_LINES = [
    "2026-01-29T09:00:01Z: Starting deployment...",
    "2026-01-29T09:00:05Z: Downloading agent package...",
    "2026-01-29T09:00:15Z: Installation failed - insufficient permissions",
    "2026-01-29T09:00:15Z: Deployment aborted",
]


def _agent(c: InProcessCoordinator) -> Any:
    return agent_pb2_grpc.AgentServiceStub(transport.sync_channel(c.grpc_target, transport.PLAINTEXT))


def _enroll(c: InProcessCoordinator, token: str, machine_id: str, proof: str = "") -> apb.EnrollResponse:
    facts = tpb.DeviceFacts(hostname=f"host-{machine_id}", os="linux", os_version="Debian 12", arch="x86_64",
                            cpu_count=2, memory_bytes=4 << 30, ip_addresses=["10.0.0.7"],
                            disks=[tpb.Disk(mountpoint="/", fstype="ext4", total_bytes=100, free_bytes=40)])
    metadata = [("authorization", f"Bearer {proof}")] if proof else []
    return _agent(c).Enroll(apb.EnrollRequest(token=token, machine_id=machine_id, facts=facts, agent_version="0.1.0"),
                            metadata=metadata, timeout=10)


def _report(c: InProcessCoordinator, resp: apb.EnrollResponse, success: bool, lines: list[str]) -> str:
    out = _agent(c).ReportEnrollment(
        apb.ReportEnrollmentRequest(enrollment_id=resp.enrollment_id, success=success, log_lines=lines),
        metadata=[("authorization", f"Bearer {resp.credential}")], timeout=10)
    return str(out.status)


def _headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _token_id(c: InProcessCoordinator) -> str:
    from common.secrets import hash_secret

    with c.store.read() as s:
        return str(s.scalar(select(m.ApiToken.id).where(m.ApiToken.token_hash == hash_secret(c.token))))


def test_seed_examples_over_rest_and_grpc(coordinator_any: InProcessCoordinator) -> None:
    c = coordinator_any
    admin = c.admin()
    tok = admin.CreateEnrollmentToken(pb.CreateEnrollmentTokenRequest(client_id=c.client_id, expires_in_seconds=3600))
    failed = _enroll(c, tok.token, "machine-a")
    assert _report(c, failed, False, SEED_LINES) == "error"
    time.sleep(0.01)  # distinct enrollment dates, so "newest first" is observable
    ok = _enroll(c, tok.token, "machine-a", proof=failed.credential)
    assert ok.device_id == failed.device_id  # same machine, proven by its credential: same device, new record
    assert _report(c, ok, True, ["2026-01-30T14:30:01Z: Starting deployment..."]) == "success"

    base = f"{c.http_url}/v2/clients/{c.client_id}/devices/{ok.device_id}/deployments"
    # Example Request: GET …/deployments
    r = httpx.get(base, headers=_headers(c.token))
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"data", "total_count", "next_cursor"}
    assert body["total_count"] == 2 and body["next_cursor"] is None
    assert [d["id"] for d in body["data"]] == [ok.enrollment_id, failed.enrollment_id]
    assert [d["status"] for d in body["data"]] == ["success", "error"]
    for d in body["data"]:
        assert set(d) == {"id", "status", "enrollment_date"} and TS.match(d["enrollment_date"])

    # Filter by Status
    r = httpx.get(base, params={"status": "error"}, headers=_headers(c.token))
    assert r.status_code == 200 and [d["id"] for d in r.json()["data"]] == [failed.enrollment_id]
    assert r.json()["total_count"] == 1

    # Get Deployment: the error example
    r = httpx.get(f"{base}/{failed.enrollment_id}", headers=_headers(c.token))
    assert r.status_code == 200
    rec = r.json()
    assert list(rec) == ["id", "status", "enrollment_date", "enrollment_token_id", "user_id", "error_logs",
                         "created_at", "updated_at"]
    assert rec["status"] == "error" and rec["error_logs"] == SEED_LINES
    assert rec["enrollment_token_id"] == tok.id and rec["user_id"] == _token_id(c)
    assert all(TS.match(rec[k]) for k in ("enrollment_date", "created_at", "updated_at"))
    # …and the success example: error_logs is null
    r = httpx.get(f"{base}/{ok.enrollment_id}", headers=_headers(c.token))
    assert r.status_code == 200 and r.json()["status"] == "success" and r.json()["error_logs"] is None

    # gRPC serves the same records from the same service functions
    lst = admin.ListDeviceDeployments(pb.ListDeviceDeploymentsRequest(client_id=c.client_id, device_id=ok.device_id))
    assert [(d.id, d.status, d.enrollment_date) for d in lst.data] == [
        (d["id"], d["status"], d["enrollment_date"]) for d in body["data"]]
    assert lst.total_count == 2 and lst.next_cursor == ""
    g = admin.GetDeviceDeployment(pb.GetDeviceDeploymentRequest(client_id=c.client_id, device_id=ok.device_id,
                                                                deployment_id=failed.enrollment_id))
    assert g.has_error_logs and list(g.error_logs) == SEED_LINES and g.user_id == rec["user_id"]
    g = admin.GetDeviceDeployment(pb.GetDeviceDeploymentRequest(client_id=c.client_id, device_id=ok.device_id,
                                                                deployment_id=ok.enrollment_id))
    assert not g.has_error_logs and list(g.error_logs) == []

    # Get Device includes the latest enrollment; List Devices shows the facts
    r = httpx.get(f"{c.http_url}/v2/clients/{c.client_id}/devices/{ok.device_id}", headers=_headers(c.token))
    assert r.status_code == 200
    dev = r.json()
    assert dev["latest_enrollment"] == body["data"][0]
    assert dev["facts"]["hostname"] == "host-machine-a" and dev["facts"]["disks"][0]["mountpoint"] == "/"
    r = httpx.get(f"{c.http_url}/v2/clients/{c.client_id}/devices", headers=_headers(c.token))
    assert r.status_code == 200 and r.json()["total"] == 1 and r.json()["data"][0]["id"] == ok.device_id
    got = admin.GetDevice(pb.GetDeviceRequest(client_id=c.client_id, device_id=ok.device_id))
    assert got.latest_enrollment.id == ok.enrollment_id and got.facts.cpu_count == 2


def test_each_documented_error_status(coordinator_any: InProcessCoordinator) -> None:
    c = coordinator_any
    admin = c.admin()
    tok = admin.CreateEnrollmentToken(pb.CreateEnrollmentTokenRequest(client_id=c.client_id))
    dev = _enroll(c, tok.token, "m-1")
    other = admin.CreateClient(pb.CreateClientRequest(name="Other Org"))
    scoped = admin.CreateApiToken(pb.CreateApiTokenRequest(client_ids=[c.client_id], role="viewer")).token
    base = f"{c.http_url}/v2/clients/{c.client_id}/devices/{dev.device_id}/deployments"
    h = _headers(c.token)

    def err(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
        assert r.status_code == status, r.text
        body = r.json()
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
        assert body["error"]["code"] == code
        return body["error"]  # type: ignore[no-any-return]

    # 400: each bad parameter is named
    for params, name in [({"sort_by": "hostname"}, "sort_by"), ({"sort_order": "sideways"}, "sort_order"),
                         ({"status": "done"}, "status"), ({"page_size": "501"}, "page_size"),
                         ({"page_size": "0"}, "page_size"), ({"page_size": "lots"}, "page_size"),
                         ({"cursor": "garbage%%"}, "cursor")]:
        e = err(httpx.get(base, params=params, headers=h), 400, "invalid_argument")
        assert e["details"]["parameter"] == name and name in e["message"]
    e = err(httpx.get(f"{c.http_url}/v2/clients/{c.client_id}/devices/not-a-uuid/deployments", headers=h),
            400, "invalid_argument")
    assert e["details"]["parameter"] == "device_id"
    e = err(httpx.get(f"{base}/12345", headers=h), 400, "invalid_argument")
    assert e["details"]["parameter"] == "deployment_id"
    e = err(httpx.get(f"{c.http_url}/v2/clients/{c.client_id}/devices", params={"limit": "x"}, headers=h),
            400, "invalid_argument")
    assert e["details"]["parameter"] == "limit"

    # 401: no token, a wrong token, a malformed header
    err(httpx.get(base), 401, "unauthenticated")
    err(httpx.get(base, headers=_headers("cvy_api_wrong")), 401, "unauthenticated")
    err(httpx.get(base, headers={"Authorization": "Basic abc"}), 401, "unauthenticated")

    # 403: a client outside the token's scope
    e = err(httpx.get(f"{c.http_url}/v2/clients/{other.id}/devices/{dev.device_id}/deployments",
                      headers=_headers(scoped)), 403, "forbidden")
    assert e["details"]["client_id"] == other.id

    # 404: deployment (the seed's exact body), device, client
    missing = "c2d3e4f5-a6b7-8901-bcde-f12345678901"
    r = httpx.get(f"{base}/{missing}", headers=h)
    assert r.status_code == 404 and r.json() == {"error": {"code": "not_found", "message": "Deployment not found",
                                                           "details": {"deployment_id": missing}}}
    e = err(httpx.get(f"{c.http_url}/v2/clients/{c.client_id}/devices/{missing}/deployments", headers=h),
            404, "not_found")
    assert e["message"] == "Device not found" and e["details"] == {"device_id": missing}
    e = err(httpx.get(f"{c.http_url}/v2/clients/{missing}/devices/{dev.device_id}/deployments", headers=h),
            404, "not_found")
    assert e["message"] == "Client not found"
    # a device of this client asked for under another client is not found there
    e = err(httpx.get(f"{c.http_url}/v2/clients/{other.id}/devices/{dev.device_id}", headers=h), 404, "not_found")

    # the same over gRPC
    req = pb.ListDeviceDeploymentsRequest(client_id=c.client_id, device_id=dev.device_id, sort_by="hostname")
    assert rpc_code(admin.ListDeviceDeployments, req) == grpc.StatusCode.INVALID_ARGUMENT
    req = pb.ListDeviceDeploymentsRequest(client_id=c.client_id, device_id=dev.device_id, page_size=501)
    assert rpc_code(admin.ListDeviceDeployments, req) == grpc.StatusCode.INVALID_ARGUMENT
    req = pb.ListDeviceDeploymentsRequest(client_id=c.client_id, device_id=dev.device_id)
    assert rpc_code(c.admin(token="").ListDeviceDeployments, req) == grpc.StatusCode.UNAUTHENTICATED
    req = pb.ListDeviceDeploymentsRequest(client_id=other.id, device_id=dev.device_id)
    assert rpc_code(c.admin(token=scoped).ListDeviceDeployments, req) == grpc.StatusCode.PERMISSION_DENIED
    req2 = pb.GetDeviceDeploymentRequest(client_id=c.client_id, device_id=dev.device_id, deployment_id=missing)
    assert rpc_code(admin.GetDeviceDeployment, req2) == grpc.StatusCode.NOT_FOUND
    # a viewer may read but not tag devices or mint enrollment tokens
    viewer = c.admin(token=scoped)
    assert viewer.GetDevice(pb.GetDeviceRequest(device_id=dev.device_id)).id == dev.device_id
    upd = pb.UpdateDeviceRequest(client_id=c.client_id, device_id=dev.device_id, tags=["x"], set_tags=True)
    assert rpc_code(viewer.UpdateDevice, upd) == grpc.StatusCode.PERMISSION_DENIED
    assert rpc_code(viewer.CreateEnrollmentToken, pb.CreateEnrollmentTokenRequest()) == grpc.StatusCode.PERMISSION_DENIED
    out = admin.UpdateDevice(upd)
    assert list(out.tags) == ["x"] and out.site == ""


def test_1200_records_page_over_http(coordinator_any: InProcessCoordinator) -> None:
    c = coordinator_any
    tok = c.admin().CreateEnrollmentToken(pb.CreateEnrollmentTokenRequest(client_id=c.client_id))
    dev = _enroll(c, tok.token, "busy-machine")
    when = datetime(2026, 1, 30, 14, 30, tzinfo=UTC)
    with c.store.tx() as s:
        s.execute(insert(m.DeviceEnrollment), [
            {"id": new_id(), "client_id": c.client_id, "device_id": dev.device_id, "enrollment_token_id": tok.id,
             "user_id": None, "status": "success", "enrollment_date": when, "error_logs": None, "timeout_at": None,
             "created_at": when, "updated_at": when} for _ in range(1199)])
    url = f"{c.http_url}/v2/clients/{c.client_id}/devices/{dev.device_id}/deployments"
    seen: list[str] = []
    pages = 0
    params: dict[str, str] = {"page_size": "500"}
    with httpx.Client(headers=_headers(c.token), timeout=30) as http:
        while True:
            body = http.get(url, params=params).json()
            pages += 1
            assert body["total_count"] == 1200
            seen += [d["id"] for d in body["data"]]
            if body["next_cursor"] is None:
                break
            params = {"page_size": "500", "cursor": body["next_cursor"]}
    assert pages == 3 and len(seen) == 1200 and len(set(seen)) == 1200
    # the enrollment made through the API is newest; the 1,199 sharing a date follow by id, descending
    assert seen[0] == dev.enrollment_id and seen[1:] == sorted(seen[1:], reverse=True)


def test_enrollment_token_lifecycle(coordinator_any: InProcessCoordinator) -> None:
    c = coordinator_any
    admin = c.admin()
    tok = admin.CreateEnrollmentToken(pb.CreateEnrollmentTokenRequest(client_id=c.client_id, max_uses=2, name="lab"))
    listed = admin.ListEnrollmentTokens(pb.ListEnrollmentTokensRequest(client_id=c.client_id)).data
    assert [(t.id, t.name, t.max_uses, t.uses, t.revoked) for t in listed] == [(tok.id, "lab", 2, 0, False)]
    _enroll(c, tok.token, "one")
    revoked = admin.RevokeEnrollmentToken(pb.RevokeEnrollmentTokenRequest(client_id=c.client_id, token_id=tok.id))
    assert revoked.revoked and revoked.uses == 1
    with pytest.raises(grpc.RpcError) as info:
        _enroll(c, tok.token, "two")
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED and "revoked" in (info.value.details() or "")
    with pytest.raises(grpc.RpcError) as info:
        _enroll(c, "cvy_enr_bogus", "two")
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED and "invalid" in (info.value.details() or "")
    r = httpx.get(f"{c.http_url}/v2/clients/{c.client_id}/devices", headers=_headers(c.token))
    assert r.json()["total"] == 1
    # ReportEnrollment needs the device credential
    req = apb.ReportEnrollmentRequest(enrollment_id=new_id(), success=True)
    assert rpc_code(_agent(c).ReportEnrollment, req) == grpc.StatusCode.UNAUTHENTICATED


def test_takeover_by_machine_id_is_refused_over_grpc(coordinator: InProcessCoordinator) -> None:
    """A token holder who knows a device's machine id gets a clear PERMISSION_DENIED, not the
    device; the device's own credential (a reinstall) is let through."""
    c = coordinator
    tok = c.admin().CreateEnrollmentToken(pb.CreateEnrollmentTokenRequest(client_id=c.client_id))
    victim = _enroll(c, tok.token, "victim")
    for proof in ("", "cvy_dev_forged"):
        with pytest.raises(grpc.RpcError) as info:
            _enroll(c, tok.token, "victim", proof=proof)
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert f"already enrolled as device {victim.device_id}" in (info.value.details() or "")
        assert dict(info.value.trailing_metadata() or ())["convoy-error-code"] == "forbidden"
    history = f"{c.http_url}/v2/clients/{c.client_id}/devices/{victim.device_id}/deployments"
    assert httpx.get(history, headers=_headers(c.token)).json()["total_count"] == 1
    assert _report(c, victim, True, []) == "success"  # the victim's credential still works
    again = _enroll(c, tok.token, "victim", proof=victim.credential)
    assert again.device_id == victim.device_id


def test_one_call_per_install_report_with_enroll(coordinator_any: InProcessCoordinator) -> None:
    """Enroll with `report_success` answers `reported` and the record is `success` at once over
    REST; the device's ReportEnrollment(error) corrects it with its lines; an Enroll without it
    (an older agent) still opens a `pending` record and says it was not reported."""
    c = coordinator_any
    tok = c.admin().CreateEnrollmentToken(pb.CreateEnrollmentTokenRequest(client_id=c.client_id))

    def enroll(machine_id: str, report_success: bool) -> apb.EnrollResponse:
        return _agent(c).Enroll(apb.EnrollRequest(token=tok.token, machine_id=machine_id, agent_version="0.1.0",
                                                  report_success=report_success), timeout=10)

    def rest(resp: apb.EnrollResponse) -> dict[str, Any]:
        url = f"{c.http_url}/v2/clients/{c.client_id}/devices/{resp.device_id}/deployments/{resp.enrollment_id}"
        r = httpx.get(url, headers=_headers(c.token))
        assert r.status_code == 200
        return dict(r.json())

    one = enroll("one-call", True)
    assert one.reported
    rec = rest(one)
    assert (rec["status"], rec["error_logs"]) == ("success", None)

    broken = enroll("one-call-broken", True)
    assert rest(broken)["status"] == "success"
    assert _report(c, broken, False, SEED_LINES) == "error"
    rec = rest(broken)
    assert (rec["status"], rec["error_logs"]) == ("error", SEED_LINES)
    with pytest.raises(grpc.RpcError) as info:
        _report(c, broken, True, [])
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    old = enroll("two-calls", False)
    assert not old.reported and rest(old)["status"] == "pending"
    assert _report(c, old, True, []) == "success" and rest(old)["status"] == "success"


def test_pending_record_times_out(db_url: str, tmp_path: Path) -> None:
    c = InProcessCoordinator(db_url=db_url, data_dir=tmp_path, enrollment_timeout_s=0.3)
    c.start()
    try:
        tok = c.admin().CreateEnrollmentToken(pb.CreateEnrollmentTokenRequest(client_id=c.client_id))
        silent = _enroll(c, tok.token, "silent")
        url = f"{c.http_url}/v2/clients/{c.client_id}/devices/{silent.device_id}/deployments/{silent.enrollment_id}"
        assert httpx.get(url, headers=_headers(c.token)).json()["status"] == "pending"
        deadline = time.monotonic() + 15
        rec: dict[str, Any] = {}
        while time.monotonic() < deadline:
            rec = httpx.get(url, headers=_headers(c.token)).json()
            if rec["status"] != "pending":
                break
            time.sleep(0.1)
        assert rec["status"] == "error"
        assert len(rec["error_logs"]) == 1
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ: Enrollment timed out: the agent never reported$",
                        rec["error_logs"][0])
        # the agent's late report cannot turn it into a success
        with pytest.raises(grpc.RpcError) as info:
            _report(c, silent, True, [])
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    finally:
        c.stop()


def _dump(c: InProcessCoordinator) -> str:
    """Everything in the database as text: SQLite's own dump, or every row of every PG table."""
    if c.db_url.startswith("sqlite"):
        conn = sqlite3.connect(c.db_url.removeprefix("sqlite:///"))
        try:
            return "\n".join(conn.iterdump())
        finally:
            conn.close()
    meta = MetaData()
    meta.reflect(c.store.engine)
    parts: list[str] = []
    with c.store.engine.connect() as conn:
        for table in meta.sorted_tables:
            parts += [repr(tuple(row)) for row in conn.execute(table.select())]
    return "\n".join(parts)


def test_database_holds_no_plaintext_secret(coordinator_any: InProcessCoordinator) -> None:
    from common.secrets import hash_secret

    c = coordinator_any
    admin = c.admin()
    api = admin.CreateApiToken(pb.CreateApiTokenRequest(client_ids=[c.client_id], role="operator")).token
    enr = admin.CreateEnrollmentToken(pb.CreateEnrollmentTokenRequest(client_id=c.client_id)).token
    dev = _enroll(c, enr, "secret-machine")
    _report(c, dev, True, [])
    dump = _dump(c)
    for secret in (c.token, api, enr, dev.credential):
        assert secret not in dump
        assert secret.split("_", 2)[2] not in dump  # not even without its prefix
        assert hash_secret(secret) in dump  # the dump really covers the tables that hold them
    assert dev.device_id in dump and "secret-machine" in dump


def test_enroll_validates_input(coordinator_any: InProcessCoordinator) -> None:
    c = coordinator_any
    tok = c.admin().CreateEnrollmentToken(pb.CreateEnrollmentTokenRequest(client_id=c.client_id, max_uses=1))
    with pytest.raises(grpc.RpcError) as info:
        _enroll(c, tok.token, "   ")
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # the refused call did not spend the only use
    assert _enroll(c, tok.token, "real").device_id
    expired_at = c.admin().CreateEnrollmentToken(
        pb.CreateEnrollmentTokenRequest(client_id=c.client_id, expires_in_seconds=0.001))
    time.sleep(0.05)
    with pytest.raises(grpc.RpcError) as info:
        _enroll(c, expired_at.token, "late")
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED and "expired" in (info.value.details() or "")


def test_device_list_paging_and_filter(coordinator_any: InProcessCoordinator) -> None:
    c = coordinator_any
    admin = c.admin()
    tok = admin.CreateEnrollmentToken(pb.CreateEnrollmentTokenRequest(client_id=c.client_id))
    ids = [_enroll(c, tok.token, f"m{i}").device_id for i in range(5)]
    admin.UpdateDevice(pb.UpdateDeviceRequest(client_id=c.client_id, device_id=ids[3], tags=["canary"],
                                              set_tags=True, site="berlin", set_site=True))
    url = f"{c.http_url}/v2/clients/{c.client_id}/devices"
    h = _headers(c.token)
    page = httpx.get(url, params={"limit": "2", "offset": "1"}, headers=h).json()
    assert page["total"] == 5 and [d["id"] for d in page["data"]] == ids[1:3]
    hit = httpx.get(url, params={"filter": '"canary" in tags and site == "Berlin"'}, headers=h).json()
    assert hit["total"] == 1 and [d["id"] for d in hit["data"]] == [ids[3]]
    grpc_hit = admin.ListDevices(pb.ListDevicesRequest(client_id=c.client_id, filter='hostname =~ "host-m[01]"'))
    assert grpc_hit.total == 2 and [d.id for d in grpc_hit.data] == ids[:2]
    r = httpx.get(url, params={"filter": "os ==="}, headers=h)
    assert r.status_code == 400 and r.json()["error"]["details"]["parameter"] == "filter"
    r = httpx.get(url, params={"limit": "5000"}, headers=h)
    assert r.status_code == 400 and r.json()["error"]["details"]["parameter"] == "limit"


def test_openapi_documents_the_history_endpoints(coordinator: InProcessCoordinator) -> None:
    spec = httpx.get(f"{coordinator.http_url}/openapi.json").json()
    op = spec["paths"]["/v2/clients/{client_id}/devices/{device_id}/deployments"]["get"]
    assert [p["name"] for p in op["parameters"]] == ["client_id", "device_id", "status", "sort_by", "sort_order",
                                                     "page_size", "cursor"]
    assert "/v2/clients/{client_id}/devices/{device_id}/deployments/{deployment_id}" in spec["paths"]


def test_device_sent_fields_are_bounded_and_one_bad_hello_spoils_nothing(coordinator_any: InProcessCoordinator) -> None:
    """A 300-character hostname with terminal escapes (enrolled and in a hello), next to a
    normal device: both come online, the hostname is stored bounded and without escapes."""
    from tests.agents import ScriptedAgent, wait_for

    c = coordinator_any
    tok = c.admin().CreateEnrollmentToken(pb.CreateEnrollmentTokenRequest(client_id=c.client_id)).token
    evil = ScriptedAgent(c.grpc_target, "\x1b[31m" + "e" * 300)
    stub = _agent(c)
    facts = tpb.DeviceFacts(hostname=evil.name, os="linux", cpu_count=2**31 - 1, ip_addresses=["x" * 1000])
    resp = stub.Enroll(apb.EnrollRequest(token=tok, machine_id="evil-machine", facts=facts, tags=["\x1b[0m", "ok"],
                                         agent_version="\x00" * 80), timeout=10)
    evil.device_id, evil.credential = resp.device_id, resp.credential
    good = ScriptedAgent(c.grpc_target, "good")
    good.enroll(tok)
    evil.connect()
    good.connect()
    try:
        url = f"{c.http_url}/v2/clients/{c.client_id}/devices"
        devices = wait_for(lambda: (d := httpx.get(url, headers=_headers(c.token)).json()["data"])
                           and all(x["online"] for x in d) and len(d) == 2 and d, what="both devices online")
        [bad] = [d for d in devices if d["id"] == evil.device_id]
        hostname = bad["facts"]["hostname"]
        assert len(hostname) == 255 and "\x1b" not in hostname and hostname.startswith("[31m")
        assert bad["tags"] == ["[0m", "ok"] and bad["agent_version"] == "test"
    finally:
        evil.disconnect()
        good.disconnect()


def test_failed_enrollments_are_throttled_per_source(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    c = InProcessCoordinator(db_url=f"sqlite:///{tmp_path / 'convoy.db'}", data_dir=tmp_path, enroll_failure_limit=3)
    c.start()
    try:
        tok = c.admin().CreateEnrollmentToken(pb.CreateEnrollmentTokenRequest(client_id=c.client_id)).token
        with caplog.at_level("WARNING", logger="convoy.enrollment"):
            for _ in range(3):
                with pytest.raises(grpc.RpcError) as info:
                    _enroll(c, "cvy_enr_guess", "m")
                assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(grpc.RpcError) as info:  # even a good token, from this address, for a minute
                _enroll(c, tok, "m")
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "too many failed enrollments from 127.0.0.1" in (info.value.details() or "")
        failures = [r.message for r in caplog.records if "Enroll from ipv4:127.0.0.1" in r.message]
        assert len(failures) == 4 and "(3 in the last minute): unauthenticated" in failures[2]
    finally:
        c.stop()

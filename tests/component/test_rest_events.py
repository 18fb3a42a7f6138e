"""REST added for the dashboard: live progress as server-sent events, and who a token is."""

from __future__ import annotations

import json

import httpx

from common.convoy.v1 import admin_pb2 as pb
from tests.component.deploy_helpers import Rest, body, fleet, script
from tests.harness import InProcessCoordinator


def _events(c: InProcessCoordinator, dep_id: str, token: str) -> list[tuple[str, dict]]:
    out: list[tuple[str, dict]] = []
    with httpx.stream("GET", f"{c.http_url}/v2/deployments/{dep_id}/events",
                      headers={"Authorization": f"Bearer {token}"}, timeout=30) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        event = ""
        for line in r.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                out.append((event, json.loads(line.split(":", 1)[1])))
    return out


def test_events_stream_progress_until_the_deployment_ends(coordinator: InProcessCoordinator) -> None:
    agents = fleet(coordinator, 3)
    rest = Rest(coordinator)
    dep = rest("POST", "/deployments", 201, json=body(script(coordinator), [a.device_id for a in agents],
                                                      staggered={"batchSize": 1, "batchDelayMinutes": 0}))
    rest("POST", f"/deployments/{dep['id']}/initialize")
    rest("POST", f"/deployments/{dep['id']}/start")
    events = _events(coordinator, dep["id"], coordinator.token)
    kinds = [k for k, _ in events]
    assert kinds[-1] == "end" and set(kinds[:-1]) == {"progress"}
    last = events[-2][1]
    assert set(last) == {"deployment", "batches", "recentFailures"}
    assert last["deployment"]["status"] == "completed" and last["deployment"]["progress"]["completed"] == 3
    assert [b["batchNumber"] for b in last["batches"]] == [1, 2, 3]
    # a finished deployment: its final state at once, then the end
    assert [k for k, _ in _events(coordinator, dep["id"], coordinator.token)] == ["progress", "end"]


def test_events_errors_are_the_usual_json(coordinator: InProcessCoordinator) -> None:
    url = f"{coordinator.http_url}/v2/deployments/00000000-0000-0000-0000-000000000000/events"
    missing = httpx.get(url, headers={"Authorization": f"Bearer {coordinator.token}"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url.replace("00000000-0000-0000-0000-000000000000", "nope"),
                     headers={"Authorization": f"Bearer {coordinator.token}"}).status_code == 400


def test_me_and_clients_are_scoped_to_the_token(coordinator: InProcessCoordinator) -> None:
    admin = coordinator.admin()
    other = admin.CreateClient(pb.CreateClientRequest(name="Other")).id
    operator = admin.CreateApiToken(pb.CreateApiTokenRequest(client_ids=[other], role="operator")).token
    as_partner = Rest(coordinator)
    assert {c["id"] for c in as_partner("GET", "/clients")["data"]} == {coordinator.client_id, other}
    as_operator = Rest(coordinator, operator)
    me = as_operator("GET", "/me")
    assert me["role"] == "operator" and me["partner"] is False and [c["id"] for c in me["clients"]] == [other]
    assert as_operator("GET", "/clients") == {"data": [{"id": other, "name": "Other",
                                                        "created_at": me["clients"][0]["created_at"]}], "total": 1}
    assert as_operator("GET", f"/clients/{coordinator.client_id}/devices", 403)["error"]["code"] == "forbidden"


def test_device_records_across_deployments(coordinator: InProcessCoordinator) -> None:
    agents = fleet(coordinator, 2)
    rest = Rest(coordinator)
    sid = script(coordinator)
    first = rest.launch(body(sid, [a.device_id for a in agents]))
    rest.wait_status(first, "completed")
    second = rest.launch(body(sid, [agents[0].device_id]))
    rest.wait_status(second, "completed")
    base = f"/clients/{coordinator.client_id}/devices"
    out = rest("GET", f"{base}/{agents[0].device_id}/records")
    assert out["total"] == 2 and [r["deploymentId"] for r in out["data"]] == [second, first]
    assert all(r["status"] == "completed" and r["hostname"] == agents[0].name and r["deploymentName"] for r in out["data"])
    assert rest("GET", f"{base}/{agents[1].device_id}/records", params={"limit": 1})["total"] == 1
    assert rest("GET", f"{base}/{agents[1].device_id}/records", 400, params={"limit": 0})["error"]["details"] == {
        "parameter": "limit", "value": 0}
    assert rest("GET", f"{base}/00000000-0000-0000-0000-000000000000/records", 404)["error"]["code"] == "not_found"
    assert Rest(coordinator, "cvy_api_wrong")("GET", f"{base}/{agents[0].device_id}/records", 401)

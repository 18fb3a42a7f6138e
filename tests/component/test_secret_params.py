"""Secret script parameters (issue 11, item 6): write-only through every API, sealed at rest with
the data dir's key, delivered only inside the job, and still covered by signed work's digest."""

from __future__ import annotations

import json
import stat
from typing import Any

import grpc
import pytest
from google.protobuf import json_format

from common import secret_params, signing
from common.convoy.v1 import admin_pb2 as pb
from tests.agents import wait_for
from tests.component.deploy_helpers import Rest, fleet
from tests.component.test_history_api import _dump
from tests.harness import InProcessCoordinator

SECRET = "hunter2-correct-horse-battery-staple"
SCHEMA = json.dumps({"type": "object", "properties": {
    "user": {"type": "string"}, "password": {"type": "string", "secret": True}}, "required": ["user", "password"]})


def _script(c: InProcessCoordinator) -> str:
    return str(c.admin().CreateScript(pb.CreateScriptRequest(
        client_id=c.client_id, name="set password", interpreter="sh", body='echo "$CONVOY_PARAM_USER"',
        parameters_schema=SCHEMA)).id)


def _spec(script_id: str, devices: list[str], password: Any = SECRET) -> dict[str, Any]:
    return {"name": "rotate", "type": "script", "payload": {"scriptId": script_id,
                                                             "parameters": {"user": "ops", "password": password}},
            "targetType": "devices", "targetConfig": {"type": "devices", "deviceIds": devices},
            "rolloutConfig": {"type": "immediate"}}


def test_a_secret_is_write_only_sealed_at_rest_and_delivered_in_the_job(coordinator_any: InProcessCoordinator) -> None:
    c = coordinator_any
    rest = Rest(c)
    (agent,) = fleet(c, 1)
    script_id = _script(c)
    dep = rest("POST", "/deployments", expect=201, json=_spec(script_id, [agent.device_id]))
    assert dep["payload"]["parameters"] == {"user": "ops", "password": "***"}
    # An update that leaves the payload alone, and one that gives "***" back, keep the value.
    rest("PUT", f"/deployments/{dep['id']}", json={"name": "rotate ops"})
    again = rest("PUT", f"/deployments/{dep['id']}", json={"payload": {
        "scriptId": script_id, "parameters": {"user": "ops", "password": "***"}}})
    assert again["payload"]["parameters"]["password"] == "***"
    rest("POST", f"/deployments/{dep['id']}/initialize")
    manifest = rest("GET", f"/deployments/{dep['id']}/manifest")
    shown = manifest["payload"]["parameters"]["password"]
    assert set(shown) == {"$secret"} and secret_params.matches(SECRET, shown["$secret"])
    assert signing.Manifest.parse(manifest["manifest"]).digest == signing.payload_digest(manifest["payload"])

    # Nothing any API answers holds it: REST, gRPC, the lists, the audit log.
    seen = json.dumps([rest("GET", f"/deployments/{dep['id']}"), rest("GET", "/deployments"), manifest,
                       rest("GET", "/audit", params={"limit": 500}),
                       json_format.MessageToDict(c.admin().GetDeployment(pb.DeploymentRef(id=dep["id"])))])
    assert SECRET not in seen

    rest("POST", f"/deployments/{dep['id']}/start")
    wait_for(lambda: agent.jobs, what="the job")
    delivered = agent.payload(agent.jobs[0])["parameters"]
    assert delivered["user"] == "ops"
    assert delivered["password"]["value"] == SECRET  # the agent, and only the agent, gets the value
    assert delivered["password"]["$secret"] == shown["$secret"]
    # The digest an operator signed still matches what the agent receives.
    assert signing.payload_digest(agent.payload(agent.jobs[0])) == signing.Manifest.parse(manifest["manifest"]).digest
    assert secret_params.mismatch(agent.payload(agent.jobs[0])) is None

    dump = _dump(c)
    assert SECRET not in dump and "hunter2" not in dump
    assert "sealed:v1:" in dump  # the dump really covers where it is kept
    key = c.data_dir / "secrets.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_secret_parameters_refuse_what_would_leak_them(coordinator_any: InProcessCoordinator) -> None:
    c = coordinator_any
    rest = Rest(c)
    (agent,) = fleet(c, 1)
    for prop in ({"type": "integer", "secret": True}, {"type": "string", "secret": True, "default": "x"},
                 {"type": "string", "secret": True, "enum": ["a"]}, {"type": "string", "secret": "yes"}):
        with pytest.raises(grpc.RpcError) as info:
            c.admin().CreateScript(pb.CreateScriptRequest(
                client_id=c.client_id, name="bad", interpreter="sh", body="true",
                parameters_schema=json.dumps({"type": "object", "properties": {"p": prop}})))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and ".secret" in (info.value.details() or "")
    script_id = _script(c)
    r = rest.http.post("/deployments", json=_spec(script_id, [agent.device_id], password=12345))
    assert r.status_code == 400 and "12345" not in r.text  # a wrong value is never echoed
    for fake in ("***", "sealed:v1:pbkdf2-sha256$1$AA==$AA==|token"):  # nothing stored to keep
        r = rest.http.post("/deployments", json=_spec(script_id, [agent.device_id], password=fake))
        assert r.status_code == 400 and "payload.parameters.password" in r.text, r.text


def test_a_kept_secret_stays_with_its_script(coordinator: InProcessCoordinator) -> None:
    """`"***"` keeps a stored secret only while the deployment runs the same script: someone who
    never saw the value cannot swap in a script of their own and have it delivered the secret."""
    c = coordinator
    rest = Rest(c)
    (agent,) = fleet(c, 1)
    dep = rest("POST", "/deployments", expect=201, json=_spec(_script(c), [agent.device_id]))
    other = str(c.admin().CreateScript(pb.CreateScriptRequest(
        client_id=c.client_id, name="exfil", interpreter="sh", body='echo "$CONVOY_PARAM_PASSWORD"',
        parameters_schema=SCHEMA)).id)
    refused = rest("PUT", f"/deployments/{dep['id']}", expect=400, json={"payload": {
        "scriptId": other, "parameters": {"user": "ops", "password": "***"}}})
    assert refused["error"]["details"]["parameter"] == "payload.parameters.password"
    # the same script keeps it
    kept = rest("PUT", f"/deployments/{dep['id']}", json={"name": "renamed", "payload": {
        "scriptId": dep["payload"]["scriptId"], "parameters": {"user": "ops", "password": "***"}}})
    assert kept["payload"]["parameters"]["password"] == "***"
    rest("POST", f"/deployments/{dep['id']}/initialize")
    rest("POST", f"/deployments/{dep['id']}/start")
    wait_for(lambda: agent.jobs, what="the job")
    assert agent.payload(agent.jobs[0])["parameters"]["password"]["value"] == SECRET

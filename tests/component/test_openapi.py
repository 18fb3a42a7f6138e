"""The OpenAPI document, checked two ways against a real in-process coordinator:

- it is a valid OpenAPI document, and every /v2 operation has a schema for its request body
  (where it takes one) and for every JSON response it documents;
- schemathesis, from that document, sends a few generated requests to every operation (valid
  and invalid ones, with random ids and with ids of real objects) and checks that none is a 5xx,
  none answers a status the document does not list, and none answers a body its schema refuses.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings

from tests.agents import ScriptedAgent
from tests.component.deploy_helpers import Rest
from tests.harness import InProcessCoordinator

METHODS = ("get", "put", "post", "delete", "patch")
# Per operation and kind of run: enough to meet each schema's branches in under a minute.
# CONVOY_SCHEMATHESIS_EXAMPLES=50 digs deeper (minutes).
EXAMPLES = int(os.environ.get("CONVOY_SCHEMATHESIS_EXAMPLES", "4"))


def _spec(c: InProcessCoordinator) -> dict[str, Any]:
    r = httpx.get(f"{c.http_url}/openapi.json")
    assert r.status_code == 200
    spec: dict[str, Any] = r.json()
    return spec


def test_the_document_validates_and_every_body_has_a_schema(coordinator: InProcessCoordinator) -> None:
    from openapi_spec_validator import validate

    spec = _spec(coordinator)
    validate(spec)  # raises on an invalid document
    missing: list[str] = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if method not in METHODS or not path.startswith("/v2/"):
                continue
            where = f"{method.upper()} {path}"
            if method in ("put", "patch") or (method == "post" and _takes_body(path)):
                content = op.get("requestBody", {}).get("content", {})
                if not content or not all(m.get("schema") for m in content.values()):
                    missing.append(f"{where}: request body")
            for code, resp in op["responses"].items():
                for media, entry in resp.get("content", {}).items():
                    if media == "application/json" and not _real(entry.get("schema"), spec):
                        missing.append(f"{where}: {code} response")
            if not any(code.startswith("2") for code in op["responses"]):
                missing.append(f"{where}: no success response")
    assert not missing, "operations without schemas:\n" + "\n".join(missing)


def _takes_body(path: str) -> bool:
    """POSTs that are actions without a body (seed 004's pause, resume, cancel, retry …)."""
    bare = ("/initialize", "/pause", "/resume", "/cancel", "/retry", "/revoke", "/replace")
    return not path.endswith(bare)


def _real(schema: Any, spec: dict[str, Any]) -> bool:
    """A schema that says something: a $ref to a component with properties, or a typed schema
    (FastAPI writes `{}` for a route that returns an undeclared dict)."""
    if not isinstance(schema, dict) or not schema:
        return False
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return bool(spec["components"]["schemas"].get(name, {}).get("properties"))
    return "type" in schema or "anyOf" in schema or "oneOf" in schema


# --- schemathesis -------------------------------------------------------------------------------

def _world(c: InProcessCoordinator) -> dict[str, str]:
    """Real objects of every kind, so generated requests also reach the success paths."""
    rest = Rest(c)
    enroll = rest("POST", f"/clients/{c.client_id}/enrollment-tokens", 201, json={"maxUses": 5})
    agent = ScriptedAgent(c.grpc_target, "schema-dev")
    agent.enroll(enroll["token"])
    device = agent.device_id
    group = rest("POST", "/groups", 201, json={"name": "schema group"})["id"]
    rest("POST", f"/groups/{group}/members/add", json={"deviceIds": [device]})
    script = rest("POST", "/scripts", 201, json={"name": "s", "interpreter": "sh", "body": "echo hi",
                                                 "rollbackBody": "echo undo"})["id"]
    artifact = rest("POST", "/artifacts", 201, params={"name": "tool.tar.gz"}, content=b"bytes" * 100,
                    headers={"Content-Type": "application/octet-stream"})["id"]
    spec = {"name": "schema rollout", "type": "script", "payload": {"scriptId": script, "parameters": {}},
            "targetType": "devices", "targetConfig": {"type": "devices", "deviceIds": [device]}}
    dep = rest("POST", "/deployments", 201, json=spec)["id"]
    rest("POST", f"/deployments/{dep}/initialize")
    spare = rest("POST", "/api-tokens", 201, json={"clientIds": [c.client_id], "role": "viewer"})["id"]
    enrollment = rest("GET", f"/clients/{c.client_id}/devices/{device}/deployments")["data"][0]["id"]
    webhook = rest("POST", f"/clients/{c.client_id}/webhooks", 201, json={"url": "http://127.0.0.1:9/hook"})["id"]
    return {"client_id": c.client_id, "device_id": device, "group_id": group, "script_id": script,
            "artifact_id": artifact, "dep_id": dep, "deployment_id": enrollment, "token_id": spare,
            "enrollment_token_id": enroll["id"], "key_id": "0" * 16, "webhook_id": webhook}


def test_response_models_neither_drop_nor_add_a_field(coordinator: InProcessCoordinator) -> None:
    """What REST serves is exactly what the service functions return: the models describe the
    bodies, they do not filter them (seed fields, nulls and integers stay as they are)."""
    import json

    from coordinator.auth import authenticate_api
    from coordinator.service import deployments, devices, history, payloads

    c = coordinator
    world = _world(c)
    rest = Rest(c)
    dep, dev, client = world["dep_id"], world["device_id"], c.client_id
    with c.store.read() as s:
        who = authenticate_api(s, c.token)
        records, total = deployments.list_records(s, who, dep, status=None, batch_number=None, limit=None, offset=None)
        expected = {
            f"/deployments/{dep}": deployments.get(s, who, dep),
            f"/deployments/{dep}/devices": {"data": records, "total": total, "limit": 50, "offset": 0},
            f"/clients/{client}/devices/{dev}": devices.get_device(s, who, client, dev),
            f"/clients/{client}/devices/{dev}/deployments/{world['deployment_id']}":
                history.get_deployment(s, who, client, dev, world["deployment_id"]),
            f"/groups/{world['group_id']}": payloads.show_group(s, who, world["group_id"]),
            f"/scripts/{world['script_id']}": payloads.show_script(s, who, world["script_id"]),
            f"/artifacts/{world['artifact_id']}": payloads.show_artifact(s, who, world["artifact_id"]),
        }
    for path, want in expected.items():
        got = rest("GET", path)
        assert got == json.loads(json.dumps(want)), path
        assert json.dumps(got, sort_keys=True) == json.dumps(json.loads(json.dumps(want)), sort_keys=True), path
    # the preview's optional keys appear only when the service sets them
    draft = rest("POST", "/deployments", 201, json={
        "name": "preview", "type": "script", "payload": {"scriptId": world["script_id"], "parameters": {}},
        "targetType": "all"})
    preview = rest("POST", f"/deployments/{draft['id']}/initialize")["preview"]
    assert set(preview) == {"resolvedCount", "totalBatches", "batches"}


def _real_ids(path: str, world: dict[str, str]) -> dict[str, str]:
    names = [part[1:-1] for part in path.split("/") if part.startswith("{")]
    ids = {name: world[name] for name in names if name in world}
    if "/enrollment-tokens/" in path:
        ids["token_id"] = world["enrollment_token_id"]
    return ids


def _examples(strategy: Any, body: Any) -> Any:
    """A hypothesis test running `body(case)` on a few generated cases, without shrinking:
    `body` records failures itself, so one report lists every operation that failed."""
    @settings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def run(case: Any) -> None:
        body(case)
    return run


@pytest.mark.slow
def test_schemathesis_finds_no_server_error_and_no_schema_violation(coordinator: InProcessCoordinator) -> None:
    import schemathesis
    from schemathesis.checks import not_a_server_error
    from schemathesis.generation import GenerationMode
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    c = coordinator
    world = _world(c)
    schema = schemathesis.openapi.from_url(f"{c.http_url}/openapi.json")
    auth = {"Authorization": f"Bearer {c.token}"}
    positive = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    failures: dict[str, str] = {}
    answered: dict[str, set[int]] = defaultdict(set)
    calls = 0
    started = time.monotonic()

    def send(case: Any, where: str, checks: list[Any]) -> None:
        nonlocal calls
        calls += 1
        try:
            response = case.call_and_validate(base_url=c.http_url, headers=auth, checks=checks, timeout=30)
            answered[where.split(" (")[0]].add(response.status_code)
        except Exception as exc:  # noqa: BLE001 - collected, reported together below
            failures.setdefault(where, f"{type(exc).__name__}: {exc}"[:1500])

    for result in schema.get_all_operations():
        op = result.ok()
        if not op.path.startswith("/v2/") or op.path.endswith("/events"):
            continue  # /events streams until its deployment ends: test_rest_events drives it
        label = f"{op.method.upper()} {op.path}"
        runs: list[tuple[str, Any, list[Any]]] = [
            ("random ids", op.as_strategy(generation_mode=GenerationMode.POSITIVE), positive),
            ("invalid input", op.as_strategy(generation_mode=GenerationMode.NEGATIVE),
             positive),
        ]
        ids = _real_ids(op.path, world)
        if ids:
            runs.append(("real ids", op.as_strategy(generation_mode=GenerationMode.POSITIVE, path_parameters=ids),
                         positive))
        for mode, strategy, checks in runs:
            where = f"{label} ({mode})"
            try:
                _examples(strategy, lambda case, w=where, ch=checks: send(case, w, ch))()
            except Exception as exc:  # noqa: BLE001 - e.g. a strategy hypothesis cannot satisfy
                failures.setdefault(where, f"generation: {type(exc).__name__}: {exc}"[:600])

    elapsed = time.monotonic() - started
    assert not failures, f"{len(failures)} operations failed ({calls} requests, {elapsed:.0f} s):\n\n" + \
        "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
    assert calls > 100, f"only {calls} requests were made"
    # the runs with real ids reach the success paths, where the response bodies are richest
    succeeded = {op for op, codes in answered.items() if any(200 <= code < 300 for code in codes)}
    assert len(succeeded) >= 0.6 * len(answered), f"never 2xx: {sorted(set(answered) - succeeded)}"


"""Issue 11, item 5: a revoked device is refused within a second — through the real `convoy`
CLI, a real coordinator process and real `convoy agent run` agents. Its open stream is closed
(the agent hears UNAUTHENTICATED and exits 3), it cannot reconnect, and a rollout that waited for
it ends without it."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.agents import wait_for
from tests.harness import CoordinatorProcess, pg_create_from_template, pg_drop, run_cli
from tests.real_agents import RealFleet

EXIT_UNAUTHENTICATED = 3


def _revoke(coord: CoordinatorProcess, device_id: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(coord.cli("devices", "revoke", device_id, "--client", coord.client_id,
                                               "-o", "json").stdout)
    return out


def test_revoked_agent_is_disconnected_and_refused_within_a_second(
        env: tuple[CoordinatorProcess, RealFleet], tmp_path: Path) -> None:
    coord, fleet = env
    victim, other = fleet.add(2)
    assert victim.proc is not None

    revoked = _revoke(coord, victim.device_id)
    t0 = time.monotonic()
    assert revoked["id"] == victim.device_id and revoked["revoked_at"]
    code = wait_for(lambda: victim.proc.poll() if victim.proc.poll() is not None else None,  # type: ignore[union-attr]
                    timeout=5, interval=0.02, what="the revoked agent to stop")
    elapsed = time.monotonic() - t0
    assert code == EXIT_UNAUTHENTICATED, victim.log()
    assert elapsed < 1.0, f"revoked agent stopped after {elapsed:.2f}s"
    assert "was revoked" in victim.log()

    # It cannot reconnect: a restarted agent is refused at once, with the reason.
    victim.start()
    assert victim.proc is not None
    assert victim.proc.wait(15) == EXIT_UNAUTHENTICATED
    assert victim.log().count("was revoked") >= 2

    # The other agent is untouched; the API shows the revocation; a second revoke changes nothing.
    devices = {d["id"]: d for d in fleet.api("GET", f"/clients/{coord.client_id}/devices")["data"]}
    assert devices[other.device_id]["online"] and devices[other.device_id]["revoked_at"] is None
    assert not devices[victim.device_id]["online"] and devices[victim.device_id]["revoked_at"] == revoked["revoked_at"]
    again = fleet.api("POST", f"/clients/{coord.client_id}/devices/{victim.device_id}/revoke")
    assert again["revoked_at"] == revoked["revoked_at"]

    # Its install cannot come back either: re-enrolling with proof from its state dir is refused.
    tok = json.loads(coord.cli("tokens", "create", "--client", coord.client_id, "-o", "json").stdout)["token"]
    res = run_cli("agent", "install", "--server", coord.grpc_target, "--token", tok, "--state-dir",
                  str(victim.state_dir), "--machine-id", f"it-{victim.name}", "--no-service",
                  *coord.install_trust(), check=False)
    assert res.returncode != 0 and "was revoked" in res.stderr, res.stderr


def test_a_rollout_waiting_for_a_revoked_device_finishes_without_it(
        env: tuple[CoordinatorProcess, RealFleet], tmp_path: Path) -> None:
    coord, fleet = env
    away, present = fleet.add(2)
    away.stop()
    wait_for(lambda: not {d["id"]: d for d in fleet.api("GET", f"/clients/{coord.client_id}/devices")["data"]}
             [away.device_id]["online"], timeout=30, what="the stopped agent offline")
    body = tmp_path / "hello.sh"
    body.write_text("echo hello\n")
    script = json.loads(coord.cli("scripts", "create", "--client", coord.client_id, "--name", "hello",
                                  "--interpreter", "sh", "--file", str(body), "-o", "json").stdout)
    dep_id = fleet.deploy({
        "name": "waits for late arrivers", "type": "script", "clientId": coord.client_id,
        "payload": {"scriptId": script["id"]}, "targetType": "devices",
        "targetConfig": {"type": "devices", "deviceIds": [away.device_id, present.device_id]},
        "rolloutConfig": {"type": "immediate", "offlineDevices": {"policy": "wait", "waitMinutes": 240}}})
    wait_for(lambda: {r["deviceId"]: r["status"] for r in fleet.records(dep_id)}.get(present.device_id) == "completed",
             timeout=30, what="the online device completed")
    time.sleep(0.5)
    assert fleet.api("GET", f"/deployments/{dep_id}")["status"] not in ("completed", "failed")  # waiting for `away`

    _revoke(coord, away.device_id)
    done = fleet.wait_finished(dep_id, timeout=10)
    assert done["status"] == "completed", done
    rec = {r["deviceId"]: r for r in fleet.records(dep_id)}[away.device_id]
    assert rec["status"] == "skipped" and rec["skipReason"] == "device_revoked", rec

    # A new deployment to all devices leaves the revoked one out.
    dep2 = fleet.api("POST", "/deployments", json={
        "name": "everyone", "type": "script", "clientId": coord.client_id, "payload": {"scriptId": script["id"]},
        "targetType": "all", "targetConfig": {"type": "all"}, "rolloutConfig": {"type": "immediate"}})
    fleet.api("POST", f"/deployments/{dep2['id']}/initialize")
    assert [r["deviceId"] for r in fleet.records(dep2["id"])] == [present.device_id]


def test_revoke_is_scoped_and_needs_the_operator_role(env: tuple[CoordinatorProcess, RealFleet]) -> None:
    coord, fleet = env
    (agent,) = fleet.add(1)
    other = json.loads(coord.cli("clients", "create", "--name", "Other", "-o", "json").stdout)
    viewer = json.loads(coord.cli("api-tokens", "create", "--client", coord.client_id, "--role", "viewer",
                                  "-o", "json").stdout)["token"]
    base = f"/clients/{coord.client_id}/devices/{agent.device_id}/revoke"
    # Another client's id in the path: 404, the device is not there; a malformed id: 400.
    assert fleet.http.post(f"/clients/{other['id']}/devices/{agent.device_id}/revoke").status_code == 404
    assert fleet.http.post(f"/clients/{coord.client_id}/devices/not-a-uuid/revoke").status_code == 400
    # No token: 401; a viewer: 403, and so is the CLI, in one line.
    assert httpx.post(f"{coord.http_url}/v2{base}", verify=coord.verify).status_code == 401
    r = fleet.http.post(base, headers={"Authorization": f"Bearer {viewer}"})
    assert r.status_code == 403 and "operator role required" in r.json()["error"]["message"], r.text
    res = coord.cli("devices", "revoke", agent.device_id, token=viewer, check=False)
    assert res.returncode != 0 and "operator role required" in res.stderr and "Traceback" not in res.stderr
    assert agent.proc is not None and agent.proc.poll() is None  # none of these touched it
    assert fleet.api("GET", f"/clients/{coord.client_id}/devices/{agent.device_id}")["revoked_at"] is None


@pytest.fixture
def two_replicas(tmp_path: Path, _pg_template: str | None) -> Iterator[tuple[CoordinatorProcess, CoordinatorProcess]]:
    if _pg_template is None:
        pytest.skip("PostgreSQL not reachable (set CI=true to make this a failure)")
    name = f"convoy_t_{uuid.uuid4().hex[:12]}"
    url = pg_create_from_template(name, _pg_template)
    reps = [CoordinatorProcess(tmp_path / n, db=url, insecure=True, extra=("--replica-id", f"replica-{n}"))
            for n in ("a", "b")]
    try:
        reps[0].bootstrap()
        for rep in reps:
            rep.data_dir.mkdir(parents=True, exist_ok=True)
            rep.token, rep.client_id = reps[0].token, reps[0].client_id
            rep.start()
        yield reps[0], reps[1]
    finally:
        for rep in reps:
            rep.stop()
        pg_drop(name)


def test_revoked_through_one_replica_the_stream_on_another_closes_within_a_second(
        two_replicas: tuple[CoordinatorProcess, CoordinatorProcess], tmp_path: Path) -> None:
    a, b = two_replicas
    fleet = RealFleet(b, tmp_path / "agents")  # the agent streams to replica B
    fleet.root.mkdir()
    try:
        (agent,) = fleet.add(1)
        assert agent.proc is not None
        _revoke(a, agent.device_id)  # through replica A
        t0 = time.monotonic()
        code = wait_for(lambda: agent.proc.poll() if agent.proc.poll() is not None else None,  # type: ignore[union-attr]
                        timeout=5, interval=0.02, what="the agent on replica B to stop")
        elapsed = time.monotonic() - t0
        assert code == EXIT_UNAUTHENTICATED, agent.log()
        assert elapsed < 1.0, f"the stream on the other replica closed after {elapsed:.2f}s"
        print(f"revoked through A, the agent on B was refused after {elapsed:.2f}s")
        assert "was revoked" in agent.log()
    finally:
        fleet.stop()

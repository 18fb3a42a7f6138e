"""Issue 11, item 5: the global audit log of admin writes, through the real `convoy` CLI and REST
against a real coordinator process: who, what, which client, which target, when, from which
replica and with what outcome; refused writes too; scoped to the caller's clients; never a
secret in it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from tests.harness import CoordinatorProcess
from tests.real_agents import RealFleet


def _cli(coord: CoordinatorProcess, *args: str, token: str | None = None) -> Any:
    return json.loads(coord.cli(*args, "-o", "json", token=token).stdout)


def _rest(coord: CoordinatorProcess, token: str, **params: str) -> httpx.Response:
    return httpx.get(f"{coord.http_url}/v2/audit", params=params, verify=coord.verify,
                     headers={"Authorization": f"Bearer {token}"})


def test_every_admin_write_is_in_the_audit_log(env: tuple[CoordinatorProcess, RealFleet], tmp_path: Path) -> None:
    coord, fleet = env
    (agent,) = fleet.add(1)
    t0 = datetime.now(UTC) - timedelta(seconds=1)
    body = tmp_path / "s.sh"
    body.write_text("echo hi\n")
    script = _cli(coord, "scripts", "create", "--client", coord.client_id, "--name", "hi", "--interpreter", "sh",
                  "--file", str(body))
    group = _cli(coord, "groups", "create", "--client", coord.client_id, "--name", "web")
    operator = _cli(coord, "api-tokens", "create", "--client", coord.client_id, "--role", "operator",
                    "--name", "ops-bot")
    _cli(coord, "devices", "tag", agent.device_id, "--client", coord.client_id, "--tag", "web")
    dep = _cli(coord, "deployments", "create", "--name", "hello", "--script", script["id"], "--target-all",
               token=operator["token"])
    coord.cli("deployments", "initialize", dep["id"], token=operator["token"])
    coord.cli("deployments", "start", dep["id"], token=operator["token"])
    assert fleet.wait_finished(dep["id"])["status"] == "completed"
    _cli(coord, "devices", "revoke", agent.device_id, "--client", coord.client_id, token=operator["token"])

    out = _cli(coord, "audit", "--client", coord.client_id, "--limit", "500")
    rows = out["data"]
    assert out["total"] == len(rows)
    by_action = {r["action"]: r for r in rows}
    for action, target in [("script.create", script["id"]), ("group.create", group["id"]),
                           ("api_token.create", operator["id"]), ("device.update", agent.device_id),
                           ("deployment.create", dep["id"]), ("device.revoke", agent.device_id),
                           ("enrollment_token.create", None)]:
        row = by_action[action]
        assert row["clientId"] == coord.client_id and row["outcome"] == "ok", row
        if target:
            assert row["targetId"] == target, row
        assert row["replica"], row  # the replica that served the call
        assert datetime.fromisoformat(row["at"].replace("Z", "+00:00")) >= t0 - timedelta(seconds=30)
    assert by_action["deployment.start"]["actor"] == operator["id"]
    # The engine's own moves are there too, by replica.
    engine = [r for r in rows if r["actor"].startswith("engine@") and r["targetId"] == dep["id"]]
    assert "deployment.complete" in {r["action"] for r in engine}, engine
    assert all(r["actor"] == f"engine@{r['replica']}" for r in engine)
    assert by_action["device.revoke"]["actor"] == operator["id"]
    assert by_action["device.revoke"]["actorName"] == "ops-bot"
    assert by_action["script.create"]["actorName"] == "bootstrap"
    assert [r["id"] for r in rows] == sorted((r["id"] for r in rows), reverse=True)  # newest first
    # Never a secret: the minted tokens appear nowhere in the log.
    text = json.dumps(rows)
    assert operator["token"] not in text and coord.token not in text

    # The REST twin: the same rows, filtered by action family and time; paginated.
    r = _rest(coord, coord.token, clientId=coord.client_id, action="device")
    assert r.status_code == 200, r.text
    assert {e["action"] for e in r.json()["data"]} == {"device.update", "device.revoke"}
    future = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert _rest(coord, coord.token, since=future).json()["total"] == 0
    page = _rest(coord, coord.token, limit="2", offset="1").json()
    assert [e["id"] for e in page["data"]] == [e["id"] for e in rows[1:3]] and page["limit"] == 2
    bad = _rest(coord, coord.token, since="yesterday")
    assert bad.status_code == 400 and bad.json()["error"]["details"]["parameter"] == "since"
    assert _rest(coord, coord.token, limit="0").status_code == 400
    assert _rest(coord, "not-a-token").status_code == 401

    # The table form prints the same, one line per entry.
    table = coord.cli("audit", "--action", "device.revoke").stdout
    assert "device.revoke" in table and "ops-bot" in table

    # The per-deployment trail is still there beside it.
    trail = fleet.api("GET", f"/deployments/{dep['id']}/audit")
    assert trail["data"][0]["toStatus"] == "draft"


def test_refused_writes_are_audited_and_entries_are_scoped_to_the_callers_clients(
        env: tuple[CoordinatorProcess, RealFleet], tmp_path: Path) -> None:
    coord, _fleet = env
    other = _cli(coord, "clients", "create", "--name", "Other")
    viewer = _cli(coord, "api-tokens", "create", "--client", coord.client_id, "--role", "viewer", "--name", "v")
    other_admin = _cli(coord, "api-tokens", "create", "--client", other["id"], "--role", "admin", "--name", "oa")
    _cli(coord, "groups", "create", "--client", other["id"], "--name", "theirs", token=other_admin["token"])

    res = coord.cli("groups", "create", "--client", coord.client_id, "--name", "nope", token=viewer["token"],
                    check=False)
    assert res.returncode != 0
    refused = [r for r in _cli(coord, "audit", "--client", coord.client_id, "--action", "group.create")["data"]
               if r["actor"] == viewer["id"]]
    assert len(refused) == 1 and refused[0]["outcome"] == "forbidden", refused
    assert "operator role required" in refused[0]["summary"]
    # Nothing of the refused write itself was kept.
    groups = _cli(coord, "groups", "list", "--client", coord.client_id)["data"]
    assert "nope" not in {g["name"] for g in groups}

    # Other's admin sees Other's entries only; asking for ours is a 403.
    theirs = _rest(coord, other_admin["token"]).json()["data"]
    assert theirs and {e["clientId"] for e in theirs} == {other["id"]}
    assert {e["action"] for e in theirs} >= {"group.create", "api_token.create", "client.create"}
    assert _rest(coord, other_admin["token"], clientId=coord.client_id).status_code == 403
    # The viewer (our client) reads ours, never Other's; the partner token reads both.
    mine = _rest(coord, viewer["token"]).json()["data"]
    assert mine and other["id"] not in {e["clientId"] for e in mine}
    everyone = {e["clientId"] for e in _rest(coord, coord.token, limit="500").json()["data"]}
    assert {coord.client_id, other["id"]} <= everyone

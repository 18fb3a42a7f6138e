"""Secret script parameters through the real `convoy` CLI, a real coordinator process and real
`convoy agent run` agents: the script receives the value; the CLI and REST show "***"; the
database holds no plaintext; signed work verifies, and an agent with a trust set refuses a value
rewritten in the database under a valid signature."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.e2e.test_signed_work import by_device, cli_json
from tests.harness import CoordinatorProcess
from tests.real_agents import RealAgent, RealFleet

SECRET = "s3cr3t-Zebra-Quartz-9931"
SCRIPT = """#!/bin/sh
printf '%s' "$CONVOY_PARAM_PASSWORD" > "$CONVOY_PARAM_DIR/$CONVOY_DEVICE_ID.secret"
"""
SCHEMA = json.dumps({"type": "object", "properties": {
    "dir": {"type": "string"}, "password": {"type": "string", "secret": True}}, "required": ["dir", "password"]})


def test_a_secret_reaches_the_script_only(env: tuple[CoordinatorProcess, RealFleet], tmp_path: Path) -> None:
    coord, fleet = env
    out = tmp_path / "out"
    out.mkdir()
    key = cli_json(coord, "keys", "create", "--name", "alice", "--out", str(tmp_path / "keys"))
    coord.cli("keys", "register", key["public_key_file"], "--client", coord.client_id)
    tok = cli_json(coord, "tokens", "create", "--client", coord.client_id)
    pinned, plain = RealAgent(coord, fleet.root, "pinned"), RealAgent(coord, fleet.root, "plain")
    pinned.install(tok["token"], "--trust-key", key["public_key"])
    plain.install(tok["token"])
    for a in (pinned, plain):
        a.start()
    fleet.agents += [pinned, plain]
    fleet.wait_online([pinned, plain])
    body = tmp_path / "s.sh"
    body.write_text(SCRIPT)
    schema = tmp_path / "schema.json"
    schema.write_text(SCHEMA)
    script = cli_json(coord, "scripts", "create", "--client", coord.client_id, "--name", "pw", "--interpreter", "sh",
                      "--file", str(body), "--parameters-schema", str(schema))

    def deployment(name: str) -> str:
        dep = cli_json(coord, "deployments", "create", "--name", name, "--script", script["id"],
                       "--param", f"dir={out}", "--param", f"password={SECRET}", "--target-devices",
                       pinned.device_id, plain.device_id)
        assert dep["payload"]["parameters"]["password"] == "***"
        coord.cli("deployments", "initialize", dep["id"])
        return str(dep["id"])

    # Signed: both agents run it, each script gets the value; nothing else ever shows it.
    dep = deployment("signed")
    coord.cli("deployments", "start", dep, "--sign-key", key["private_key_file"])
    assert fleet.wait_finished(dep)["status"] == "completed"
    for a in (pinned, plain):
        assert (out / f"{a.device_id}.secret").read_text() == SECRET
    shown = coord.cli("deployments", "get", dep, "-o", "json").stdout + coord.cli("deployments", "get", dep).stdout
    shown += json.dumps(fleet.api("GET", f"/deployments/{dep}")) + json.dumps(fleet.api("GET", "/audit"))
    assert SECRET not in shown and "***" in shown
    db = coord.data_dir / "convoy.db"
    with sqlite3.connect(db) as conn:
        assert SECRET not in "\n".join(conn.iterdump())
    for log in (coord.log_path, pinned.log_path, plain.log_path):
        assert SECRET not in log.read_text(errors="replace")

    # A coordinator whose database is rewritten: another value, encrypted with its own key, under
    # the same commitment. The signature still verifies, the pinned agent refuses the value.
    dep = deployment("tampered")
    from coordinator.store.sealing import open_sealer

    forged = open_sealer(coord.data_dir).seal("attacker-chosen").split("|", 1)[1]
    with sqlite3.connect(db) as conn:
        (raw,) = conn.execute("SELECT job_payload FROM deployments WHERE id = ?", (dep,)).fetchone()
        payload = json.loads(raw)
        payload["parameters"]["password"]["sealed"] = forged
        conn.execute("UPDATE deployments SET job_payload = ? WHERE id = ?", (json.dumps(payload), dep))
    (out / f"{pinned.device_id}.secret").unlink()
    coord.cli("deployments", "start", dep, "--sign-key", key["private_key_file"])
    fleet.wait_finished(dep)
    recs = by_device(fleet, dep)
    assert (recs[pinned.device_id]["status"], recs[pinned.device_id]["error"]) == ("failed", "signature")
    assert "does not match its signed commitment" in recs[pinned.device_id]["output"]
    assert not (out / f"{pinned.device_id}.secret").exists()
    assert (out / f"{plain.device_id}.secret").read_text() == "attacker-chosen"  # no trust set: no check

"""Issue 11, item 4, done when: a job with a missing, wrong or expired signature never runs on
an agent that has a trust set, and one signed correctly does — through the real `convoy` CLI, a
real coordinator process and real `convoy agent run` agents installed with `--trust-key`. A
coordinator whose database is rewritten after signing cannot run the rewritten script."""

from __future__ import annotations

import json
import sqlite3
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from common.convoy.v1 import admin_pb2 as pb
from tests.agents import wait_for
from tests.harness import CoordinatorProcess
from tests.real_agents import RealAgent, RealFleet

MARKER_SCRIPT = """#!/bin/sh
touch "$CONVOY_PARAM_DIR/$CONVOY_DEVICE_ID.$CONVOY_PARAM_TAG"
echo "ran on $CONVOY_DEVICE_ID"
"""
SCHEMA = json.dumps({"type": "object", "properties": {"dir": {"type": "string"}, "tag": {"type": "string"}},
                     "required": ["dir", "tag"]})
FLAKY_SCRIPT = """#!/bin/sh
touch "$CONVOY_PARAM_DIR/$CONVOY_DEVICE_ID.$CONVOY_PARAM_TAG"
[ "$CONVOY_ATTEMPT" = 1 ] && exit 3
exit 0
"""
EVIL_SCRIPT = """#!/bin/sh
touch "$CONVOY_PARAM_DIR/$CONVOY_DEVICE_ID.evil"
"""


def cli_json(coord: CoordinatorProcess, *args: str) -> Any:
    return json.loads(coord.cli(*args, "-o", "json").stdout)


def deployment(fleet: RealFleet, script_id: str, out: Path, tag: str, devices: list[str], **rollout: Any) -> str:
    dep = fleet.api("POST", "/deployments", json={
        "name": f"signed {tag}", "type": "script",
        "payload": {"scriptId": script_id, "parameters": {"dir": str(out), "tag": tag}},
        "targetType": "devices", "targetConfig": {"type": "devices", "deviceIds": devices},
        "rolloutConfig": {"type": "immediate", **rollout}})
    fleet.api("POST", f"/deployments/{dep['id']}/initialize")
    return str(dep["id"])


def by_device(fleet: RealFleet, dep_id: str) -> dict[str, dict[str, Any]]:
    return {r["deviceId"]: r for r in fleet.records(dep_id)}


def pinned_agent(coord: CoordinatorProcess, fleet: RealFleet, trust_key: str) -> RealAgent:
    """A real agent installed with a fresh enrollment token and `--trust-key`, started and online."""
    tok = cli_json(coord, "tokens", "create", "--client", coord.client_id)
    agent = RealAgent(coord, fleet.root, "pinned")
    agent.install(tok["token"], "--trust-key", trust_key)
    agent.start()
    fleet.agents.append(agent)
    fleet.wait_online([agent])
    return agent


def test_only_signed_work_runs_on_agents_with_a_trust_set(env: tuple[CoordinatorProcess, RealFleet],
                                                          tmp_path: Path) -> None:
    coord, fleet = env
    out = tmp_path / "out"
    out.mkdir()

    # An operator makes a key on their machine and registers its public half.
    key = cli_json(coord, "keys", "create", "--name", "alice", "--out", str(tmp_path / "keys"))
    assert stat.S_IMODE(Path(key["private_key_file"]).stat().st_mode) == 0o600
    assert key["public_key"].startswith("ed25519:")
    reg = cli_json(coord, "keys", "register", key["public_key_file"], "--client", coord.client_id, "--name", "alice")
    assert reg["key_id"] == key["key_id"]
    assert reg["public_key"] == key["public_key"]  # only the public half went to the coordinator
    assert "PRIVATE" not in json.dumps(cli_json(coord, "keys", "list", "--client", coord.client_id))

    # The install command printed by `tokens create` pins the client's signer keys.
    tok = cli_json(coord, "tokens", "create", "--client", coord.client_id)
    assert f"--trust-key {key['public_key']}" in tok["install_command"]
    assert tok["trust_keys"] == [key["public_key"]]

    pinned, plain = RealAgent(coord, fleet.root, "pinned"), RealAgent(coord, fleet.root, "plain")
    pinned.install(tok["token"], "--trust-key", key["public_key"])
    plain.install(tok["token"])
    assert json.loads((pinned.state_dir / "trust.json").read_text())["keys"] == [key["public_key"]]
    assert not (plain.state_dir / "trust.json").exists()
    for a in (pinned, plain):
        a.start()
    fleet.agents += [pinned, plain]
    fleet.wait_online([pinned, plain])

    sid = coord.admin().CreateScript(pb.CreateScriptRequest(
        client_id=coord.client_id, name="marker", interpreter="sh", body=MARKER_SCRIPT,
        parameters_schema=SCHEMA)).id
    both = [pinned.device_id, plain.device_id]

    # 1. Signed with the registered key: runs on both.
    dep = deployment(fleet, sid, out, "signed", both)
    started = coord.cli("deployments", "start", dep, "--sign-key", key["private_key_file"], "-o", "json")
    assert "signing with key " + key["key_id"] in started.stderr
    assert json.loads(started.stdout)["signedBy"] == key["key_id"]
    assert fleet.wait_finished(dep)["status"] == "completed"
    assert (out / f"{pinned.device_id}.signed").exists() and (out / f"{plain.device_id}.signed").exists()

    # 2. Unsigned: the pinned agent refuses it (reason `signature`), the plain one runs it.
    dep = deployment(fleet, sid, out, "unsigned", both)
    fleet.api("POST", f"/deployments/{dep}/start")
    fleet.wait_finished(dep)
    recs = by_device(fleet, dep)
    assert recs[pinned.device_id]["status"] == "failed"
    assert recs[pinned.device_id]["error"] == "signature"
    assert "no signature" in recs[pinned.device_id]["output"]
    assert recs[plain.device_id]["status"] == "completed"
    assert not (out / f"{pinned.device_id}.unsigned").exists()
    assert (out / f"{plain.device_id}.unsigned").exists()

    # 3. Signed by a key the agent does not trust (registered on the coordinator, so it accepts it).
    mallory = cli_json(coord, "keys", "create", "--name", "mallory", "--out", str(tmp_path / "keys"))
    coord.cli("keys", "register", mallory["public_key"], "--client", coord.client_id)
    dep = deployment(fleet, sid, out, "mallory", [pinned.device_id])
    coord.cli("deployments", "start", dep, "--sign-key", mallory["private_key_file"])
    fleet.wait_finished(dep)
    rec = by_device(fleet, dep)[pinned.device_id]
    assert (rec["status"], rec["error"]) == ("failed", "signature") and "does not trust" in rec["output"]
    assert not (out / f"{pinned.device_id}.mallory").exists()

    # 4. A compromised coordinator: the script body is rewritten in the database after signing.
    # The first attempt runs the signed body and fails; the retry is dispatched from the store,
    # after the rewrite (and a restart, which drops the coordinator's in-memory payload cache).
    flaky = coord.admin().CreateScript(pb.CreateScriptRequest(
        client_id=coord.client_id, name="flaky", interpreter="sh", body=FLAKY_SCRIPT, parameters_schema=SCHEMA)).id
    dep = deployment(fleet, flaky, out, "tampered", [pinned.device_id],
                     retryConfig={"maxRetries": 1, "backoffMinutes": [600]})
    coord.cli("deployments", "start", dep, "--sign-key", key["private_key_file"])
    wait_for(lambda: by_device(fleet, dep)[pinned.device_id]["error"] == "exit code 3", timeout=60,
             what="the first attempt to fail (a retry waits)")
    assert (out / f"{pinned.device_id}.tampered").exists()  # the signed body ran once
    coord.stop()
    db = sqlite3.connect(coord.data_dir / "convoy.db")
    with db:
        (raw,) = db.execute("SELECT job_payload FROM deployments WHERE id = ?", (dep,)).fetchone()
        payload = json.loads(raw)
        payload["body"] = EVIL_SCRIPT
        assert db.execute("UPDATE deployments SET job_payload = ? WHERE id = ?",
                          (json.dumps(payload), dep)).rowcount == 1
    db.close()
    coord.start(grpc_port=coord.grpc_port, http_port=coord.http_port)
    fleet.wait_online([pinned])
    coord.cli("deployments", "retry", dep, pinned.device_id)
    fleet.wait_finished(dep)
    rec = by_device(fleet, dep)[pinned.device_id]
    assert (rec["status"], rec["error"]) == ("failed", "signature"), rec
    assert "digest" in rec["output"]
    assert not (out / f"{pinned.device_id}.evil").exists()
    assert "refused" in pinned.log()


def test_start_refuses_a_bad_signature_with_400(env: tuple[CoordinatorProcess, RealFleet], tmp_path: Path) -> None:
    coord, fleet = env
    [agent] = fleet.add(1)
    key = cli_json(coord, "keys", "create", "--name", "k", "--out", str(tmp_path / "keys"))
    sid = coord.admin().CreateScript(pb.CreateScriptRequest(
        client_id=coord.client_id, name="marker", interpreter="sh", body=MARKER_SCRIPT,
        parameters_schema=SCHEMA)).id
    dep = deployment(fleet, sid, tmp_path, "x", [agent.device_id])

    # not registered yet: the CLI signs, the coordinator refuses (exit 2, naming the field)
    refused = coord.cli("deployments", "start", dep, "--sign-key", key["private_key_file"], check=False)
    assert refused.returncode == 2 and "not a registered signer" in refused.stderr
    coord.cli("keys", "register", key["public_key"], "--client", coord.client_id)
    again = coord.cli("keys", "register", key["public_key"], "--client", coord.client_id, check=False)
    assert again.returncode == 5 and "already registered" in again.stderr

    manifest = fleet.api("GET", f"/deployments/{dep}/manifest")
    assert json.loads(manifest["manifest"])["deploymentId"] == dep
    r = fleet.http.post(f"/deployments/{dep}/start", json={"signature": {
        "keyId": key["key_id"], "value": "AAAA", "manifest": manifest["manifest"]}})
    assert r.status_code == 400 and r.json()["error"]["details"]["parameter"] == "signature.value", r.text
    r = fleet.http.post(f"/deployments/{dep}/start", json={"signature": "nope"})
    assert r.status_code == 400 and r.json()["error"]["details"]["parameter"] == "signature", r.text
    r = fleet.http.post(f"/deployments/{dep}/start", json={"bogus": 1})
    assert r.status_code == 400, r.text
    r = fleet.http.post("/clients/" + coord.client_id + "/signers", json={"publicKey": "ed25519:xx"})
    assert r.status_code == 400 and r.json()["error"]["details"]["parameter"] == "publicKey", r.text
    r = fleet.http.delete(f"/clients/{coord.client_id}/signers/{'0' * 32}")
    assert r.status_code == 404, r.text

    # --expect: the CLI refuses to sign a body that is not the operator's file
    other = tmp_path / "other.sh"
    other.write_text("echo something else\n")
    refused = coord.cli("deployments", "start", dep, "--sign-key", key["private_key_file"], "--expect", str(other),
                        check=False)
    assert refused.returncode == 5 and "refusing to sign" in refused.stderr
    mine = tmp_path / "mine.sh"
    mine.write_text(MARKER_SCRIPT)
    coord.cli("deployments", "start", dep, "--sign-key", key["private_key_file"], "--expect", str(mine))

    # revoked: the coordinator stops accepting its signatures
    coord.cli("keys", "revoke", key["key_id"], "--client", coord.client_id)
    rows = fleet.api("GET", f"/clients/{coord.client_id}/signers")["data"]
    assert rows[0]["revokedAt"] is not None


def test_trust_set_changes_only_through_a_document_signed_by_a_trusted_key(
        env: tuple[CoordinatorProcess, RealFleet], tmp_path: Path) -> None:
    coord, fleet = env
    out = tmp_path / "out"
    out.mkdir()
    keys = tmp_path / "keys"
    alice = cli_json(coord, "keys", "create", "--name", "alice", "--out", str(keys))
    bob = cli_json(coord, "keys", "create", "--name", "bob", "--out", str(keys))
    mallory = cli_json(coord, "keys", "create", "--name", "mallory", "--out", str(keys))
    for k in (alice, bob, mallory):
        coord.cli("keys", "register", k["public_key"], "--client", coord.client_id)
    agent = pinned_agent(coord, fleet, alice["public_key_file"])
    trust_file = agent.state_dir / "trust.json"
    before = trust_file.read_text()

    # A set signed by a key the agent does not trust (what a compromised coordinator could make
    # with a key of its own) is published but refused by the agent.
    coord.cli("keys", "rotate", "--client", coord.client_id, "--sign-key", mallory["private_key_file"],
              "--trust-key", mallory["public_key"], "--trust-key", alice["public_key"])
    agent.stop()
    agent.start()
    fleet.wait_online([agent])
    wait_for(lambda: "trust-set update refused" in agent.log(), timeout=20, what="the agent to refuse the update")
    assert trust_file.read_text() == before

    # alice (trusted) hands over to bob: the agent adopts it on its next connect.
    rotated = coord.cli("keys", "rotate", "--client", coord.client_id, "--sign-key", alice["private_key_file"],
                        "--trust-key", bob["public_key_file"], "-o", "json")
    assert json.loads(rotated.stdout)["serial"] == 2
    agent.stop()
    agent.start()
    fleet.wait_online([agent])
    wait_for(lambda: json.loads(trust_file.read_text())["keys"] == [bob["public_key"]], timeout=20,
             what="the agent to adopt the rotated trust set")

    sid = coord.admin().CreateScript(pb.CreateScriptRequest(
        client_id=coord.client_id, name="marker", interpreter="sh", body=MARKER_SCRIPT, parameters_schema=SCHEMA)).id
    dep = deployment(fleet, sid, out, "bob", [agent.device_id])
    coord.cli("deployments", "start", dep, "--sign-key", bob["private_key_file"])
    assert fleet.wait_finished(dep)["status"] == "completed"
    assert (out / f"{agent.device_id}.bob").exists()
    dep = deployment(fleet, sid, out, "alice", [agent.device_id])
    coord.cli("deployments", "start", dep, "--sign-key", alice["private_key_file"])
    fleet.wait_finished(dep)
    assert by_device(fleet, dep)[agent.device_id]["error"] == "signature"
    assert not (out / f"{agent.device_id}.alice").exists()


ROLLBACK_SCRIPT = """#!/bin/sh
touch "$CONVOY_PARAM_DIR/$CONVOY_DEVICE_ID.$CONVOY_PARAM_TAG.undone"
"""


def test_rollbacks_are_signed_too_and_key_files_stay_local(env: tuple[CoordinatorProcess, RealFleet],
                                                           tmp_path: Path) -> None:
    coord, fleet = env
    out = tmp_path / "out"
    out.mkdir()
    keys = tmp_path / "keys"
    key = cli_json(coord, "keys", "create", "--name", "ops", "--out", str(keys))
    again = coord.cli("keys", "create", "--name", "ops", "--out", str(keys), check=False)
    assert again.returncode == 5 and "never overwritten" in again.stderr
    # registering from the private key file sends only its public half
    reg = cli_json(coord, "keys", "register", key["private_key_file"], "--client", coord.client_id)
    assert reg["public_key"] == key["public_key"]
    agent = pinned_agent(coord, fleet, key["public_key_file"])
    sid = coord.admin().CreateScript(pb.CreateScriptRequest(
        client_id=coord.client_id, name="marker", interpreter="sh", body=MARKER_SCRIPT,
        rollback_body=ROLLBACK_SCRIPT, parameters_schema=SCHEMA)).id

    for tag, signed in (("rb-signed", True), ("rb-unsigned", False)):
        dep = deployment(fleet, sid, out, tag, [agent.device_id])
        coord.cli("deployments", "start", dep, "--sign-key", key["private_key_file"])
        assert fleet.wait_finished(dep)["status"] == "completed"
        sign = ["--sign-key", key["private_key_file"]] if signed else []
        proc = coord.cli("deployments", "rollback", dep, *sign, "-o", "json")
        rb = json.loads(proc.stdout)
        assert rb["signedBy"] == (key["key_id"] if signed else None)
        assert ("warning: started unsigned" in proc.stderr) is not signed
        fleet.wait_finished(rb["id"])
        rec = by_device(fleet, rb["id"])[agent.device_id]
        undone = out / f"{agent.device_id}.{tag}.undone"
        if signed:
            assert rec["status"] == "completed" and undone.exists(), rec
        else:
            assert (rec["status"], rec["error"]) == ("failed", "signature") and not undone.exists(), rec


COUNTING_FLAKY = """#!/bin/sh
echo "$CONVOY_ATTEMPT" >> "$CONVOY_PARAM_DIR/$CONVOY_DEVICE_ID.$CONVOY_PARAM_TAG"
[ "$CONVOY_ATTEMPT" = 1 ] && exit 3
exit 0
"""


def test_an_expired_signature_is_refused(env: tuple[CoordinatorProcess, RealFleet], tmp_path: Path) -> None:
    """The first attempt runs within the signature's life; the retry, dispatched after it
    expired, is refused by the agent whatever the coordinator says."""
    coord, fleet = env
    out = tmp_path / "out"
    out.mkdir()
    key = cli_json(coord, "keys", "create", "--name", "short", "--out", str(tmp_path / "keys"))
    coord.cli("keys", "register", key["public_key"], "--client", coord.client_id)
    agent = pinned_agent(coord, fleet, key["public_key"])
    sid = coord.admin().CreateScript(pb.CreateScriptRequest(
        client_id=coord.client_id, name="flaky", interpreter="sh", body=COUNTING_FLAKY, parameters_schema=SCHEMA)).id
    dep = deployment(fleet, sid, out, "runs", [agent.device_id], retryConfig={"maxRetries": 1, "backoffMinutes": [600]})
    started = coord.cli("deployments", "start", dep, "--sign-key", key["private_key_file"], "--sign-expires-in", "4s")
    expires = started.stderr.split("expires ")[1].split()[0].strip(",")
    wait_for(lambda: by_device(fleet, dep)[agent.device_id]["error"] == "exit code 3", timeout=30,
             what="the first attempt to fail")
    wait_for(lambda: datetime.now(UTC) > datetime.fromisoformat(expires.replace("Z", "+00:00")) + timedelta(seconds=1),
             timeout=30, what=f"the signature to expire at {expires}")
    coord.cli("deployments", "retry", dep, agent.device_id)
    fleet.wait_finished(dep)
    rec = by_device(fleet, dep)[agent.device_id]
    assert (rec["status"], rec["error"]) == ("failed", "signature"), rec
    assert "expired" in rec["output"]
    assert (out / f"{agent.device_id}.runs").read_text().split() == ["1"]  # the retry never ran


def test_convoy_run_signs_the_command_it_was_given(env: tuple[CoordinatorProcess, RealFleet], tmp_path: Path) -> None:
    coord, fleet = env
    key = cli_json(coord, "keys", "create", "--name", "ops", "--out", str(tmp_path / "keys"))
    coord.cli("keys", "register", key["public_key"], "--client", coord.client_id)
    agent = pinned_agent(coord, fleet, key["public_key"])
    signed, unsigned = tmp_path / "signed", tmp_path / "unsigned"
    ok = coord.cli("run", "--target-devices", agent.device_id, "--sign-key", key["private_key_file"],
                   f"touch {signed}", "-o", "json")
    assert signed.exists() and "signing with key" in ok.stderr
    refused = coord.cli("run", f"touch {unsigned}", "--target-devices", agent.device_id, "-o", "json", check=False)
    assert refused.returncode == 1 and not unsigned.exists(), refused.stderr + refused.stdout
    assert "warning: started unsigned" in refused.stderr

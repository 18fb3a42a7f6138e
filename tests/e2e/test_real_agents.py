"""Issue 4, done when: real `convoy agent run` processes against a real coordinator deploy each
payload type for real, survive faults with every job executed at most once, and never install
a tampered artifact or an archive that escapes its directory."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from common.convoy.v1 import admin_pb2 as pb
from tests.agents import wait_for
from tests.harness import CoordinatorProcess, cli_json
from tests.real_agents import RealFleet


def script(coord: CoordinatorProcess, body: str, rollback: str = "", schema: str = "") -> str:
    req = pb.CreateScriptRequest(client_id=coord.client_id, name="it", interpreter="sh", body=body,
                                 rollback_body=rollback, parameters_schema=schema)
    return str(coord.admin().CreateScript(req).id)


def upload(coord: CoordinatorProcess, path: Path) -> dict[str, Any]:
    return dict(cli_json("artifacts", "upload", str(path), server=coord.grpc_target, token=coord.token,
                         env=coord.trust_env()))


def spec(type_: str, payload: dict[str, Any], device_ids: list[str], **rollout: Any) -> dict[str, Any]:
    return {"name": f"it {type_}", "type": type_, "payload": payload, "targetType": "devices",
            "targetConfig": {"type": "devices", "deviceIds": device_ids},
            "rolloutConfig": {"type": "immediate", **rollout}}


COUNTER_SCRIPT = """#!/bin/sh
# one line per execution, per device: proves each job ran at most once
echo "$CONVOY_JOB_ID" >> "$CONVOY_PARAM_DIR/$CONVOY_DEVICE_ID.count"
sleep "${CONVOY_PARAM_SLEEP:-0}"
echo "wrote for $CONVOY_DEVICE_ID attempt $CONVOY_ATTEMPT"
"""
COUNTER_SCHEMA = json.dumps({"type": "object", "properties": {"dir": {"type": "string"}, "sleep": {"type": "number"}},
                             "required": ["dir"]})


def counts(directory: Path) -> dict[str, list[str]]:
    return {p.stem: p.read_text().split() for p in directory.glob("*.count")}


def test_script_writes_files_on_every_agent(env: tuple[CoordinatorProcess, RealFleet], tmp_path: Path) -> None:
    coord, fleet = env
    agents = fleet.add(3)
    out = tmp_path / "out"
    out.mkdir()
    sid = script(coord, COUNTER_SCRIPT, schema=COUNTER_SCHEMA)
    dep = fleet.deploy(spec("script", {"scriptId": sid, "parameters": {"dir": str(out)}}, [a.device_id for a in agents]))
    assert fleet.wait_finished(dep)["status"] == "completed"
    assert {k: len(v) for k, v in counts(out).items()} == {a.device_id: 1 for a in agents}
    assert all("wrote for" in r["output"] for r in fleet.records(dep))


def _deb(tmp_path: Path, name: str, marker: Path) -> Path:
    root = tmp_path / "debroot"
    (root / "DEBIAN").mkdir(parents=True)
    target = root / marker.relative_to("/")
    target.parent.mkdir(parents=True)
    target.write_text("installed by convoy test\n")
    (root / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: 1.0\nArchitecture: all\nMaintainer: Convoy Tests <t@example.com>\n"
        "Description: convoy integration test package\n")
    deb = tmp_path / f"{name}_1.0_all.deb"
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(root), str(deb)], check=True, capture_output=True)
    return deb


def test_deb_installed_then_removed_by_rollback(env: tuple[CoordinatorProcess, RealFleet], tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("installing a .deb needs root")
    if not shutil.which("dpkg-deb") or not shutil.which("dpkg"):
        pytest.skip("dpkg is not available on this host")
    coord, fleet = env
    [agent] = fleet.add(1)
    name = f"convoy-it-{tmp_path.name[-8:].lower().replace('_', '-')}"
    marker = Path(f"/opt/{name}/marker.txt")
    deb = _deb(tmp_path, name, marker)
    art = upload(coord, deb)
    try:
        dep = fleet.deploy(spec("software", {"artifactId": art["id"], "packageName": name}, [agent.device_id]))
        assert fleet.wait_finished(dep)["status"] == "completed", fleet.records(dep)
        assert marker.exists()
        assert subprocess.run(["dpkg-query", "-W", name], capture_output=True).returncode == 0
        rb = fleet.api("POST", f"/deployments/{dep}/rollback")
        assert fleet.wait_finished(rb["id"])["status"] == "completed", fleet.records(rb["id"])
        assert not marker.exists()
        assert fleet.api("GET", f"/deployments/{dep}")["status"] == "rollback"
    finally:
        subprocess.run(["dpkg", "-r", name], capture_output=True)


def _package(tmp_path: Path, name: str, out_file: Path, extra: dict[str, bytes] | None = None) -> Path:
    manifest = {"name": name, "version": "1.0",
                "install": ["sh", "-c", f"cp payload.txt {out_file}"],
                "uninstall": ["rm", "-f", str(out_file)]}
    path = tmp_path / f"{name}.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for member, data in {"convoy-manifest.json": json.dumps(manifest).encode(), "payload.txt": b"portable!\n",
                             **(extra or {})}.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_portable_archive_install_and_rollback(env: tuple[CoordinatorProcess, RealFleet], tmp_path: Path) -> None:
    coord, fleet = env
    agents = fleet.add(2)
    out = tmp_path / "portable-installed.txt"
    art = upload(coord, _package(tmp_path, "portable-demo", out))
    assert art["sha256"] == hashlib.sha256((tmp_path / "portable-demo.tar.gz").read_bytes()).hexdigest()
    dep = fleet.deploy(spec("software", {"artifactId": art["id"]}, [a.device_id for a in agents]))
    assert fleet.wait_finished(dep)["status"] == "completed", fleet.records(dep)
    assert out.read_text() == "portable!\n"
    rb = fleet.api("POST", f"/deployments/{dep}/rollback")
    assert fleet.wait_finished(rb["id"])["status"] == "completed", fleet.records(rb["id"])
    assert not out.exists()


def test_archive_escaping_its_directory_is_refused(env: tuple[CoordinatorProcess, RealFleet], tmp_path: Path) -> None:
    coord, fleet = env
    [agent] = fleet.add(1)
    out = tmp_path / "never.txt"
    evil = _package(tmp_path, "evil", out, extra={"../../escaped.txt": b"gotcha"})
    art = upload(coord, evil)
    dep = fleet.deploy(spec("software", {"artifactId": art["id"]}, [agent.device_id]))
    assert fleet.wait_finished(dep)["status"] == "failed"
    [rec] = fleet.records(dep)
    assert ".." in rec["error"] and not out.exists()
    assert not list(agent.state_dir.parent.parent.rglob("escaped.txt"))


def test_policy_changes_heartbeat_and_rollback_restores(env: tuple[CoordinatorProcess, RealFleet]) -> None:
    coord, fleet = env
    [agent] = fleet.add(1)
    from agent.installers.policy import effective_settings
    from agent.state import StateDir

    before = effective_settings(StateDir(agent.state_dir)).get("heartbeatIntervalSeconds")
    payload = {"name": "agent-settings", "version": 2, "document": {"heartbeatIntervalSeconds": 5}}
    dep = fleet.deploy(spec("policy", payload, [agent.device_id]))
    assert fleet.wait_finished(dep)["status"] == "completed", fleet.records(dep)
    assert effective_settings(StateDir(agent.state_dir))["heartbeatIntervalSeconds"] == 5
    wait_for(lambda: "heartbeat interval now 5s" in agent.log(), what="the agent to apply the new interval")
    rb = fleet.api("POST", f"/deployments/{dep}/rollback")
    assert fleet.wait_finished(rb["id"])["status"] == "completed", fleet.records(rb["id"])
    assert effective_settings(StateDir(agent.state_dir)).get("heartbeatIntervalSeconds") == before


def test_sigkill_agent_mid_install_reports_failure_and_never_reruns(env: tuple[CoordinatorProcess, RealFleet],
                                                                     tmp_path: Path) -> None:
    coord, fleet = env
    [agent] = fleet.add(1)
    out = tmp_path / "out"
    out.mkdir()
    sid = script(coord, COUNTER_SCRIPT, schema=COUNTER_SCHEMA)
    dep = fleet.deploy(spec("script", {"scriptId": sid, "parameters": {"dir": str(out), "sleep": 30}},
                            [agent.device_id], retryConfig={"maxRetries": 0, "backoffMinutes": [0]}))
    wait_for(lambda: counts(out).get(agent.device_id), what="the install to start")
    agent.kill()
    agent.start()
    final = fleet.wait_finished(dep, timeout=60)
    [rec] = fleet.records(dep)
    assert final["status"] == "failed" and rec["status"] == "failed"
    assert "agent restarted during install" in rec["error"]
    assert len(counts(out)[agent.device_id]) == 1  # started once, never run again


def test_sigkill_coordinator_mid_rollout_with_real_agents(env: tuple[CoordinatorProcess, RealFleet],
                                                          tmp_path: Path) -> None:
    coord, fleet = env
    agents = fleet.add(4)
    out = tmp_path / "out"
    out.mkdir()
    sid = script(coord, COUNTER_SCRIPT, schema=COUNTER_SCHEMA)
    dep = fleet.deploy(spec("script", {"scriptId": sid, "parameters": {"dir": str(out), "sleep": 1}},
                            [a.device_id for a in agents], type="staggered",
                            staggered={"batchSize": 1, "batchDelayMinutes": 0.01}))
    wait_for(lambda: len(counts(out)) >= 2, timeout=30, what="two batches to run")
    grpc_port, http_port = coord.grpc_port, coord.http_port
    coord.kill()
    coord.start(grpc_port=grpc_port, http_port=http_port)
    final = fleet.wait_finished(dep, timeout=120)
    assert final["status"] == "completed", fleet.records(dep)
    assert {k: len(v) for k, v in counts(out).items()} == {a.device_id: 1 for a in agents}
    assert {r["status"] for r in fleet.records(dep)} == {"completed"}


def _tamper(coord: CoordinatorProcess, sha256: str, how: str) -> None:
    import sqlite3

    db = sqlite3.connect(coord.data_dir / "convoy.db")
    try:
        if how == "flip":
            (data,) = db.execute("SELECT data FROM blob_chunks WHERE sha256=? ORDER BY seq LIMIT 1", (sha256,)).fetchone()
            flipped = bytes([data[0] ^ 0xFF]) + bytes(data[1:])
            db.execute("UPDATE blob_chunks SET data=? WHERE sha256=? AND seq=0", (flipped, sha256))
        elif how == "truncate":
            (data,) = db.execute("SELECT data FROM blob_chunks WHERE sha256=? ORDER BY seq LIMIT 1", (sha256,)).fetchone()
            db.execute("UPDATE blob_chunks SET data=? WHERE sha256=? AND seq=0", (bytes(data[: len(data) // 2]), sha256))
        db.commit()
    finally:
        db.close()


@pytest.mark.parametrize("how", ["flip", "truncate"])
def test_tampered_artifact_is_never_installed(env: tuple[CoordinatorProcess, RealFleet], tmp_path: Path, how: str) -> None:
    coord, fleet = env
    [agent] = fleet.add(1)
    out = tmp_path / "portable-installed.txt"
    art = upload(coord, _package(tmp_path, f"tampered-{how}", out))
    _tamper(coord, art["sha256"], how)
    dep = fleet.deploy(spec("software", {"artifactId": art["id"]}, [agent.device_id]))
    assert fleet.wait_finished(dep)["status"] == "failed"
    [rec] = fleet.records(dep)
    reasons = ("sha256 mismatch", "size mismatch", "stream ended after")  # flipped = wrong hash; truncated = short
    assert any(r in rec["error"] for r in reasons), rec
    assert not out.exists()

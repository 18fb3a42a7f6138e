"""`convoy deployments …` and `convoy completion` as an operator runs them: real `convoy`
subprocesses against a real coordinator process, with scripted devices on real agent streams."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from common.convoy.v1 import admin_pb2 as pb
from tests.agents import Outcome, ScriptedAgent, always, wait_for
from tests.harness import CONVOY, ROOT, CoordinatorProcess

MISSING = "00000000-0000-4000-8000-000000000000"


# --- set-up -----------------------------------------------------------------------------------

def _fleet(proc: CoordinatorProcess, n: int, outcome: Outcome = always("completed"),
           prefix: str = "dev") -> list[ScriptedAgent]:
    token = proc.admin().CreateEnrollmentToken(pb.CreateEnrollmentTokenRequest(client_id=proc.client_id)).token
    agents = []
    for i in range(n):
        a = ScriptedAgent(proc.grpc_target, f"{prefix}-{i:03d}", outcome, tls=proc.tls)
        a.enroll(token)
        a.connect()
        agents.append(a)
    ids = {a.device_id for a in agents}

    def online() -> bool:
        resp = proc.admin().ListDevices(pb.ListDevicesRequest(client_id=proc.client_id, limit=500))
        return ids <= {d.id for d in resp.data if d.online}

    wait_for(online, what="devices online")
    return agents


@pytest.fixture
def agents_to_stop() -> Iterator[list[ScriptedAgent]]:
    agents: list[ScriptedAgent] = []
    yield agents
    for a in agents:
        a.disconnect()


def _script(proc: CoordinatorProcess, schema: dict[str, Any] | None = None) -> str:
    return str(proc.admin().CreateScript(pb.CreateScriptRequest(
        client_id=proc.client_id, name="cleanup", interpreter="sh", body="echo do", rollback_body="echo undo",
        parameters_schema=json.dumps(schema) if schema else "")).id)


def _json(proc: CoordinatorProcess, *args: str) -> Any:
    return json.loads(proc.cli(*args, "-o", "json").stdout)


def _one_line_error(proc: CoordinatorProcess, *args: str, token: str | None = None) -> tuple[int, str]:
    res = proc.cli(*args, check=False, token=token)
    assert res.returncode != 0, res.stdout
    assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 1, res.stderr
    assert "Traceback" not in res.stderr
    return res.returncode, res.stderr


def _launch(proc: CoordinatorProcess, *flags: str) -> str:
    dep = _json(proc, "deployments", "create", "--name", "rollout", *flags)
    proc.cli("deployments", "initialize", dep["id"])
    proc.cli("deployments", "start", dep["id"])
    return str(dep["id"])


def _status(proc: CoordinatorProcess, dep_id: str) -> str:
    return str(_json(proc, "deployments", "get", dep_id)["status"])


def _env(proc: CoordinatorProcess) -> dict[str, str]:
    env = {**os.environ, "CONVOY_SERVER": proc.grpc_target, "CONVOY_TOKEN": proc.token, **proc.trust_env()}
    return env


def _watch_bg(proc: CoordinatorProcess, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*CONVOY, "deployments", "watch", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env(proc), cwd=ROOT)


def _watch_tty(proc: CoordinatorProcess, dep_id: str) -> tuple[int, str]:
    """`watch` on a terminal (a pty), as a person sees it: (exit status, screen text)."""
    master, slave = pty.openpty()
    child = subprocess.Popen([*CONVOY, "deployments", "watch", dep_id], stdout=slave, stderr=slave, stdin=slave,
                             env={**_env(proc), "COLUMNS": "140", "TERM": "xterm-256color"}, cwd=ROOT)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
        elif child.poll() is not None:
            break
    os.close(master)
    return child.wait(10), out.decode("utf-8", "replace")


# --- the whole lifecycle from the seed's body -----------------------------------------------

def test_seed_body_lifecycle_watch_and_rollback(coordinator_proc: CoordinatorProcess, tmp_path: Path,
                                                agents_to_stop: list[ScriptedAgent]) -> None:
    proc = coordinator_proc
    agents = _fleet(proc, 5)
    agents_to_stop += agents
    group = proc.admin().CreateGroup(pb.CreateGroupRequest(client_id=proc.client_id, name="windows-fleet"))
    proc.admin().AddGroupMembers(pb.GroupMembersRequest(client_id=proc.client_id, group_id=group.id,
                                                        device_ids=[a.device_id for a in agents]))
    seed_body = {
        "name": "Monthly Cleanup — Windows Fleet", "type": "script",
        "payload": {"scriptId": _script(proc), "parameters": {}},
        "targetType": "groups", "targetConfig": {"type": "groups", "groupIds": [group.id]},
        "rolloutConfig": {"type": "staggered",
                          "staggered": {"batchSize": "40%", "batchDelayMinutes": 0, "pauseOnFailurePercent": 20},
                          "respectMaintenanceWindows": False,
                          "retryConfig": {"maxRetries": 3, "backoffMinutes": [5, 15, 60]}}}
    body_file = tmp_path / "cleanup.json"
    body_file.write_text(json.dumps(seed_body, ensure_ascii=False))

    dep = _json(proc, "deployments", "create", "--file", str(body_file))
    assert dep["status"] == "draft" and dep["name"] == seed_body["name"]
    for key in ("payload", "targetType", "targetConfig"):
        assert dep[key] == seed_body[key]
    rollout = dep["rolloutConfig"]
    assert rollout["staggered"] == {"batchSize": "40%", "batchDelayMinutes": 0, "pauseOnFailurePercent": 20}
    assert rollout["retryConfig"] == {"maxRetries": 3, "backoffMinutes": [5, 15, 60]}
    dep_id = dep["id"]
    assert _json(proc, "deployments", "get", dep_id) == dep
    assert "Monthly Cleanup" in proc.cli("deployments", "get", dep_id).stdout

    listed = _json(proc, "deployments", "list", "--status", "draft")
    assert listed["total"] == 1 and [d["id"] for d in listed["data"]] == [dep_id]
    assert _json(proc, "deployments", "list", "--status", "completed") == {"data": [], "total": 0}
    table = proc.cli("deployments", "list").stdout
    assert table.splitlines()[0].startswith("ID") and dep_id in table and "draft" in table

    renamed = _json(proc, "deployments", "update", dep_id, "--name", "Monthly Cleanup (v2)")
    assert renamed["name"] == "Monthly Cleanup (v2)" and renamed["rolloutConfig"] == rollout  # only the name changed
    seed_body["name"] = "Monthly Cleanup (v3)"
    body_file.write_text(json.dumps(seed_body))
    assert _json(proc, "deployments", "update", dep_id, "--file", str(body_file))["name"] == "Monthly Cleanup (v3)"

    init = _json(proc, "deployments", "initialize", dep_id)
    assert init["deployment"]["status"] == "pending"
    assert init["preview"] == {"resolvedCount": 5, "totalBatches": 3, "batches": [
        {"batchNumber": 1, "deviceCount": 2}, {"batchNumber": 2, "deviceCount": 2}, {"batchNumber": 3, "deviceCount": 1}]}

    started = _json(proc, "deployments", "start", dep_id)
    assert started["status"] in ("downloading", "installing", "running", "completed")
    res = proc.cli("deployments", "watch", dep_id, check=False, timeout=30)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert "completed=5 failed=0" in lines[-2] and "100%" in lines[-2]
    assert lines[-1].startswith("deployment completed")

    code, screen = _watch_tty(proc, dep_id)  # what a person sees on a terminal
    assert code == 0, screen
    assert "batch 3 of 3" in screen and "100%" in screen and "━" in screen and "deployment completed" in screen
    assert "Traceback" not in screen

    records = _json(proc, "deployments", "devices", dep_id)
    assert records["total"] == 5
    assert all(r["status"] == "completed" and r["exitCode"] == 0 for r in records["data"])
    batch2 = _json(proc, "deployments", "devices", dep_id, "--batch", "2")
    assert batch2["total"] == 2 and {r["batchNumber"] for r in batch2["data"]} == {2}
    table = proc.cli("deployments", "devices", dep_id, "--status", "completed").stdout
    assert table.splitlines()[0].split()[:4] == ["DEVICE", "HOSTNAME", "BATCH", "STATUS"]
    assert all(a.name in table for a in agents)

    rollback = _json(proc, "deployments", "rollback", dep_id)
    assert rollback["rollbackOf"] == dep_id
    assert proc.cli("deployments", "watch", rollback["id"], check=False).returncode == 0
    assert _status(proc, dep_id) == "rollback"
    res = proc.cli("deployments", "watch", dep_id, check=False)  # the original ended by being rolled back
    assert res.returncode == 12 and "rolled back by" in res.stdout
    code, err = _one_line_error(proc, "deployments", "rollback", dep_id)
    assert code == 5 and "rollback" in err


# --- creating from flags --------------------------------------------------------------------

def test_create_and_update_from_flags(coordinator_proc: CoordinatorProcess,
                                      agents_to_stop: list[ScriptedAgent]) -> None:
    proc = coordinator_proc
    agents = _fleet(proc, 2)
    agents_to_stop += agents
    sid = _script(proc, {"type": "object", "properties": {"count": {"type": "integer"}, "message": {"type": "string"},
                                                          "force": {"type": "boolean"}}})
    dep = _json(proc, "deployments", "create", "--name", "flags", "--script", sid,
                "--param", "count=3", "--param", "message=42", "--param", "force=true",
                "--target-devices", agents[0].device_id, agents[1].device_id,
                "--batch-size", "1", "--batch-delay", "0.5", "--pause-on-failure-count", "2",
                "--pause-on-failure-percent", "50", "--respect-maintenance-windows", "--max-retries", "2",
                "--backoff", "5,15", "--install-timeout", "10")
    assert dep["type"] == "script" and dep["status"] == "draft"
    assert dep["payload"] == {"scriptId": sid, "parameters": {"count": 3, "message": "42", "force": True}}
    assert dep["targetType"] == "devices"
    assert dep["targetConfig"]["deviceIds"] == [agents[0].device_id, agents[1].device_id]
    assert dep["rolloutConfig"] == {
        "type": "staggered", "respectMaintenanceWindows": True, "installTimeoutMinutes": 10,
        "staggered": {"batchSize": 1, "batchDelayMinutes": 0.5, "pauseOnFailureCount": 2, "pauseOnFailurePercent": 50},
        "retryConfig": {"maxRetries": 2, "backoffMinutes": [5, 15]}}

    updated = _json(proc, "deployments", "update", dep["id"], "--batch-size", "50%", "--param", "count=4")
    assert updated["rolloutConfig"]["staggered"]["batchSize"] == "50%"
    assert updated["rolloutConfig"]["retryConfig"] == {"maxRetries": 2, "backoffMinutes": [5, 15]}  # kept
    assert updated["payload"]["parameters"] == {"count": 4, "message": "42", "force": True}
    immediate = _json(proc, "deployments", "update", dep["id"], "--immediate", "--target-all")
    assert immediate["rolloutConfig"]["type"] == "immediate" and "staggered" not in immediate["rolloutConfig"]
    assert immediate["targetType"] == "all"

    patch = _json(proc, "deployments", "create", "--name", "openssl", "--package", "openssl=3.0.13",
                  "--package", "curl", "--target-filter", "os == 'linux'", "--immediate")
    assert patch["type"] == "patch" and patch["targetConfig"] == {"type": "filter", "filter": "os == 'linux'"}
    assert patch["payload"] == {"packages": [{"name": "openssl", "version": "3.0.13"},
                                             {"name": "curl", "version": "latest"}]}
    assert "created deployment" in proc.cli("deployments", "create", "--name", "t", "--script", sid,
                                            "--target-all").stdout

    deleted = _json(proc, "deployments", "delete", patch["id"])
    assert deleted == {"id": patch["id"]}
    code, err = _one_line_error(proc, "deployments", "get", patch["id"])
    assert code == 4 and "not found" in err


# --- errors ---------------------------------------------------------------------------------

def test_bad_input_is_one_line_with_the_right_exit(coordinator_proc: CoordinatorProcess, tmp_path: Path,
                                                   agents_to_stop: list[ScriptedAgent]) -> None:
    proc = coordinator_proc
    agents = _fleet(proc, 1)
    agents_to_stop += agents
    sid = _script(proc)

    missing = tmp_path / "nope.json"
    code, err = _one_line_error(proc, "deployments", "create", "--file", str(missing))
    assert code == 2 and str(missing) in err
    broken = tmp_path / "broken.json"
    broken.write_text('{"name": "x",\n  "type": }')
    code, err = _one_line_error(proc, "deployments", "create", "--file", str(broken))
    assert code == 2 and str(broken) in err and "line 2" in err
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"name": "x", "type": "script", "rolloutConfig": {"staggered": {"batchsize": 2}}}))
    code, err = _one_line_error(proc, "deployments", "create", "--file", str(unknown))
    assert code == 2 and str(unknown) in err and '"batchsize"' in err
    listed = tmp_path / "list.json"
    listed.write_text("[]")
    code, err = _one_line_error(proc, "deployments", "create", "--file", str(listed))
    assert code == 2 and "JSON object" in err

    target = ("--target-devices", agents[0].device_id)
    code, err = _one_line_error(proc, "deployments", "create", "--name", "x", "--script", sid, *target,
                                "--batch-size", "0%")
    assert code == 2 and "rolloutConfig.staggered.batchSize" in err
    code, err = _one_line_error(proc, "deployments", "create", "--name", "x", "--script", sid, *target,
                                "--batch-delay", "5")
    assert code == 2 and "--batch-size" in err
    code, err = _one_line_error(proc, "deployments", "create", "--name", "x", "--script", sid, *target,
                                "--param", "novalue")
    assert code == 2 and "KEY=VALUE" in err

    draft = _json(proc, "deployments", "create", "--name", "d", "--script", sid, *target)["id"]
    code, err = _one_line_error(proc, "deployments", "start", draft)
    assert code == 5 and "initialize it first" in err
    code, err = _one_line_error(proc, "deployments", "resume", draft)
    assert code == 5 and "draft" in err
    for cmd in ("get", "start", "watch", "devices", "cancel"):
        code, err = _one_line_error(proc, "deployments", cmd, MISSING)
        assert code == 4 and "Deployment not found" in err, (cmd, err)
    code, err = _one_line_error(proc, "deployments", "get", "not-a-uuid")
    assert code == 2 and "UUID" in err
    code, err = _one_line_error(proc, "deployments", "list", token="cvy_bogus")
    assert code == 3
    code, err = _one_line_error(proc, "deployments", "watch", draft, token="cvy_bogus")
    assert code == 3
    res = subprocess.run([*CONVOY, "deployments", "list", "--server", "127.0.0.1:1", "--token", "x"],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert res.returncode == 6 and res.stderr.count("\n") == 1 and "cannot reach" in res.stderr


# --- watch exit statuses ---------------------------------------------------------------------

def test_watch_failed_exits_10_in_json_lines(coordinator_proc: CoordinatorProcess,
                                            agents_to_stop: list[ScriptedAgent]) -> None:
    proc = coordinator_proc
    agents = _fleet(proc, 2, always("failed"))
    agents_to_stop += agents
    dep_id = _launch(proc, "--script", _script(proc), "--target-devices", *[a.device_id for a in agents],
                     "--immediate")
    res = proc.cli("deployments", "watch", dep_id, "-o", "json", check=False)
    assert res.returncode == 10, res.stderr
    events = [json.loads(line) for line in res.stdout.splitlines()]
    assert events and all(set(e) == {"deployment", "batches", "recentFailures"} for e in events)
    last = events[-1]
    assert last["deployment"]["status"] == "failed" and last["deployment"]["progress"]["failed"] == 2
    assert last["batches"][0]["failed"] == 2
    assert {f["hostname"] for f in last["recentFailures"]} == {a.name for a in agents}
    assert all("boom" in f["output"] for f in last["recentFailures"])

    failed = _json(proc, "deployments", "devices", dep_id, "--status", "failed")
    assert failed["total"] == 2 and all(r["exitCode"] == 3 for r in failed["data"])
    table = proc.cli("deployments", "devices", dep_id, "--status", "failed").stdout
    assert "exit code 3" in table
    code, err = _one_line_error(proc, "deployments", "retry", dep_id, agents[0].device_id)
    assert code == 2 and "maxRetries" in err


def test_watch_auto_pause_exits_13_then_cancel_exits_11(coordinator_proc: CoordinatorProcess,
                                                      agents_to_stop: list[ScriptedAgent]) -> None:
    proc = coordinator_proc
    agents = _fleet(proc, 6, always("failed"))
    agents_to_stop += agents
    dep_id = _launch(proc, "--script", _script(proc), "--target-devices", *[a.device_id for a in agents],
                     "--batch-size", "2", "--batch-delay", "0", "--pause-on-failure-count", "2")
    res = proc.cli("deployments", "watch", dep_id, check=False)
    assert res.returncode == 13, res.stdout + res.stderr
    assert "pauseOnFailureCount" in res.stdout.splitlines()[-1] and "resume" in res.stdout.splitlines()[-1]
    code, screen = _watch_tty(proc, dep_id)
    assert code == 13 and "paused" in screen and "latest failures" in screen and "boom on dev-" in screen

    # keep watching through the pause: resume re-arms (2 more failures pause it again), then cancel
    watcher = _watch_bg(proc, dep_id, "--no-exit-on-pause", "-o", "json")
    assert watcher.stdout is not None
    assert json.loads(watcher.stdout.readline())["deployment"]["status"] == "paused"
    assert _json(proc, "deployments", "resume", dep_id)["status"] == "running"
    wait_for(lambda: _json(proc, "deployments", "get", dep_id)["progress"]["failed"] == 4 and
             _status(proc, dep_id) == "paused", what="paused again")
    assert watcher.poll() is None  # still watching
    assert _json(proc, "deployments", "cancel", dep_id)["status"] == "cancelled"
    out, err = watcher.communicate(timeout=30)
    assert watcher.returncode == 11, err
    statuses = [json.loads(line)["deployment"]["status"] for line in out.splitlines()]
    assert statuses[-1] == "cancelled" and "paused" in statuses  # watched through the second pause
    assert {"running", "downloading", "installing"} & set(statuses)  # and saw the resume
    final = _json(proc, "deployments", "get", dep_id)["progress"]
    assert final["failed"] == 4 and final["skipped"] == 2


def test_watch_live_cancel_exits_11_and_manual_pause_exits_13(coordinator_proc: CoordinatorProcess,
                                                            agents_to_stop: list[ScriptedAgent]) -> None:
    proc = coordinator_proc
    agents = _fleet(proc, 3)
    agents_to_stop += agents
    dep_id = _launch(proc, "--script", _script(proc), "--target-devices", *[a.device_id for a in agents],
                     "--batch-size", "1", "--batch-delay", "30")
    wait_for(lambda: _status(proc, dep_id) == "running", what="waiting between batches")

    watcher = _watch_bg(proc, dep_id)
    assert watcher.stdout is not None
    assert "running batch 1/3 completed=1" in watcher.stdout.readline()
    proc.cli("deployments", "pause", dep_id)
    out, _ = watcher.communicate(timeout=30)
    assert watcher.returncode == 13 and "deployment paused" in out
    assert "resumed deployment" in proc.cli("deployments", "resume", dep_id).stdout

    watcher = _watch_bg(proc, dep_id)  # Ctrl-C: a clean stop, the deployment untouched
    assert watcher.stdout is not None
    watcher.stdout.readline()
    watcher.send_signal(signal.SIGINT)
    _, err = watcher.communicate(timeout=30)
    assert watcher.returncode == 130 and err.startswith("stopped watching (deployment still ") and "Traceback" not in err
    assert _status(proc, dep_id) in ("running", "downloading", "installing")

    watcher = _watch_bg(proc, dep_id)
    assert watcher.stdout is not None
    watcher.stdout.readline()
    assert "cancelled deployment" in proc.cli("deployments", "cancel", dep_id).stdout
    out, _ = watcher.communicate(timeout=30)
    assert watcher.returncode == 11 and "deployment cancelled" in out.splitlines()[-1]


# --- help and completion --------------------------------------------------------------------

def test_every_deployments_command_has_help_with_examples() -> None:
    from tests.harness import run_cli

    for cmd in ("create", "list", "get", "update", "delete", "initialize", "start", "pause", "resume", "cancel",
                "rollback", "devices", "retry", "watch"):
        out = run_cli("deployments", cmd, "--help").stdout
        assert "examples:" in out and f"convoy deployments {cmd}" in out, cmd
    assert "exit status: 0 completed, 10 failed, 11 cancelled, 12 rolled back, 13 paused" in \
        run_cli("deployments", "watch", "--help").stdout


def test_completion_scripts_and_completions(coordinator_proc: CoordinatorProcess, tmp_path: Path) -> None:
    proc = coordinator_proc
    bash = proc.cli("completion", "bash").stdout
    assert "complete" in bash and "convoy" in bash and "_python_argcomplete" in bash
    assert proc.cli("completion", "zsh").stdout.startswith("#compdef convoy")
    assert proc.cli("completion", "fish", check=False).returncode == 2

    sid = _script(proc)
    dep_id = _json(proc, "deployments", "create", "--name", "c", "--script", sid, "--target-all")["id"]

    def complete(line: str) -> list[str]:
        out = tmp_path / "completions"
        env = {**_env(proc), "_ARGCOMPLETE": "1", "_ARGCOMPLETE_IFS": "\n", "COMP_LINE": line,
               "COMP_POINT": str(len(line)), "_ARGCOMPLETE_STDOUT_FILENAME": str(out)}
        subprocess.run([*CONVOY], env=env, cwd=ROOT, timeout=60, capture_output=True)
        return [c.strip() for c in out.read_text().split("\n")]

    assert "watch" in complete("convoy deployments wa")
    assert "--pause-on-failure-percent" in complete("convoy deployments create --pause-on-failure-p")
    assert dep_id in complete("convoy deployments get ")

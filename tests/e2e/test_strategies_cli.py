"""`convoy deployments create` flags for verify, offlineDevices and windowPolicy, and what
`initialize`, `get` and `watch` say about them: real `convoy` subprocesses, a real coordinator."""

from __future__ import annotations

import json
import os
import subprocess
import time
from typing import Any

import httpx

from common.convoy.v1 import admin_pb2 as pb
from tests.agents import ScriptedAgent, wait_for
from tests.harness import CONVOY, ROOT, CoordinatorProcess


def _json(proc: CoordinatorProcess, *args: str) -> Any:
    return json.loads(proc.cli(*args, "-o", "json").stdout)


def _script(proc: CoordinatorProcess, name: str = "s") -> str:
    return str(proc.admin().CreateScript(pb.CreateScriptRequest(
        client_id=proc.client_id, name=name, interpreter="sh", body="echo ok")).id)


def _agents(proc: CoordinatorProcess, n: int) -> list[ScriptedAgent]:
    token = proc.admin().CreateEnrollmentToken(pb.CreateEnrollmentTokenRequest(client_id=proc.client_id)).token
    out = []
    for i in range(n):
        a = ScriptedAgent(proc.grpc_target, f"cli-{i}", tls=proc.tls)
        a.enroll(token)
        a.connect()
        out.append(a)
    return out


def test_create_flags_errors_and_what_initialize_get_and_watch_show(coordinator_proc: CoordinatorProcess) -> None:
    proc = coordinator_proc
    sid, check = _script(proc, "change"), _script(proc, "check")
    dep = _json(proc, "deployments", "create", "--name", "f", "--script", sid, "--target-all",
                "--verify-script", check, "--verify-timeout", "2m", "--offline-wait", "2h",
                "--respect-maintenance-windows", "--window-policy", "wait", "--window-wait-max", "2d")
    rc = dep["rolloutConfig"]
    assert rc["verify"] == {"scriptId": check, "timeoutMinutes": 2}
    assert rc["offlineDevices"] == {"policy": "wait", "waitMinutes": 120}
    assert rc["windowPolicy"] == "wait" and rc["windowWaitMaxHours"] == 48
    shown = proc.cli("deployments", "get", dep["id"]).stdout
    assert "verify: script" in shown and "offline devices: wait up to 120 min" in shown and "within 48 h" in shown
    updated = _json(proc, "deployments", "update", dep["id"], "--offline-devices", "skip", "--window-policy", "skip")
    assert updated["rolloutConfig"]["offlineDevices"] == {"policy": "skip"}
    assert updated["rolloutConfig"]["windowPolicy"] == "skip" and "windowWaitMaxHours" not in updated["rolloutConfig"]

    for flags, fragment, code in (
            (["--verify-script", "00000000-0000-4000-8000-000000000000"], "rolloutConfig.verify.scriptId", 2),
            (["--verify-timeout", "5m"], "--verify-timeout needs --verify-script", 2),
            (["--offline-devices", "wait"], "needs --offline-wait", 2),
            (["--offline-devices", "skip", "--offline-wait", "1h"], "--offline-wait is for", 2),
            (["--window-policy", "wait"], "rolloutConfig.windowPolicy: 'wait' needs", 2)):
        res = proc.cli("deployments", "create", "--name", "bad", "--script", sid, "--target-all", *flags, check=False)
        assert res.returncode == code and res.stderr.startswith("error: ") and fragment in res.stderr, res.stderr
        assert "Traceback" not in res.stderr


def test_initialize_preview_and_watch_show_late_arrivers(coordinator_proc: CoordinatorProcess) -> None:
    proc = coordinator_proc
    online, away = _agents(proc, 2)
    away.disconnect()

    def offline() -> bool:
        resp = proc.admin().ListDevices(pb.ListDevicesRequest(client_id=proc.client_id, limit=50))
        return {d.id: d.online for d in resp.data} == {online.device_id: True, away.device_id: False}

    wait_for(offline, what="one device offline")
    try:
        dep = _json(proc, "deployments", "create", "--name", "late", "--script", _script(proc), "--target-devices",
                    online.device_id, away.device_id, "--offline-wait", "30m")
        out = proc.cli("deployments", "initialize", dep["id"]).stdout
        assert "offline devices: wait up to 30 min after their batch starts" in out
        http = httpx.Client(base_url=proc.http_url + "/v2", verify=proc.verify,
                            headers={"Authorization": f"Bearer {proc.token}"})
        other = _json(proc, "deployments", "create", "--name", "late2", "--script", _script(proc),
                      "--target-devices", online.device_id, away.device_id, "--offline-wait", "30m")
        preview = http.post(f"/deployments/{other['id']}/initialize").json()["preview"]
        assert preview["offlineNow"] == 1 and preview["strategies"][0].startswith("offline devices: wait up to 30")
        proc.cli("deployments", "start", dep["id"])
        wait_for(lambda: _json(proc, "deployments", "get", dep["id"])["progress"]["completed"] == 1,
                 what="the online device completed")
        time.sleep(0.5)
        watch = subprocess.Popen([*CONVOY, "deployments", "watch", dep["id"]], stdout=subprocess.PIPE, text=True,
                                 stderr=subprocess.PIPE, cwd=ROOT,
                                 env={**os.environ, **proc.trust_env(), "CONVOY_SERVER": proc.grpc_target,
                                      "CONVOY_TOKEN": proc.token})
        time.sleep(3)
        watch.terminate()
        lines, _ = watch.communicate(timeout=10)
        assert "running" in lines and "waiting-for-late-arrivers" in lines, lines
        away.reconnect()
        wait_for(lambda: _json(proc, "deployments", "get", dep["id"])["status"] == "completed", what="completed")
    finally:
        online.disconnect()
        away.disconnect()

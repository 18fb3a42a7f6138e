"""`convoy agent install` as a real subprocess against a real `convoy coordinator serve`, and the
operator commands (`convoy tokens …`, `convoy devices …`) parsed back from `-o json`."""

from __future__ import annotations

import json
import re
import stat
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import CoordinatorProcess, run_cli

pytestmark = pytest.mark.slow


def _install(c: CoordinatorProcess, token: str, state_dir: Path, machine_id: str, *extra: str) -> Any:
    return run_cli("agent", "install", "--server", c.grpc_target, "--token", token, "--state-dir", str(state_dir),
                   "--machine-id", machine_id, "--no-service", *c.install_trust(), *extra, check=False)


def _json(c: CoordinatorProcess, *args: str) -> Any:
    return json.loads(c.cli(*args, "-o", "json").stdout)


def _report_calls(c: CoordinatorProcess) -> float:
    """ReportEnrollment calls the coordinator has answered (its /metrics), whatever their status."""
    text = httpx.get(c.http_url + "/metrics", verify=c.verify, timeout=10).text
    return sum(float(v) for v in re.findall(
        r'^convoy_grpc_requests_total\{[^}]*method="/convoy.v1.AgentService/ReportEnrollment"[^}]*\} (\S+)$', text, re.M))


def _new_token(c: CoordinatorProcess, *extra: str) -> dict[str, str]:
    return _json(c, "tokens", "create", "--client", c.client_id, *extra)  # type: ignore[no-any-return]


def test_install_success_and_reinstall(coordinator_proc: CoordinatorProcess, tmp_path: Path) -> None:
    c = coordinator_proc
    tok = _new_token(c, "--expires-in", "1h", "--max-uses", "5")
    assert set(tok) == {"id", "token", "ca_fingerprint", "install_command"} and tok["token"].startswith("cvy_enr_")
    assert tok["ca_fingerprint"] == c.ca_fingerprint
    assert tok["install_command"] == (f"convoy agent install --server {c.grpc_target} --token {tok['token']} "
                                      f"--ca-fingerprint {c.ca_fingerprint}")

    state = tmp_path / "agent1"
    reports = _report_calls(c)
    res = _install(c, tok["token"], state, "vm-clone-17", "--tag", "lab", "--site", "berlin",
                   "--maintenance-window", "Sat 01:00-05:00 Europe/Berlin", "-o", "json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert set(out) == {"device_id", "client_id", "enrollment_id", "state_dir"}
    assert out["client_id"] == c.client_id and Path(out["state_dir"]) == state.resolve()
    assert stat.S_IMODE((state / "credential").stat().st_mode) == 0o600
    identity = json.loads((state / "agent.json").read_text())
    assert identity["device_id"] == out["device_id"] and identity["machine_id"] == "vm-clone-17"
    assert (state / "windows.conf").read_text().strip() == "Sat 01:00-05:00 Europe/Berlin"

    # --no-service: the success report went with Enroll, one call per install
    assert _report_calls(c) == reports
    hist = _json(c, "devices", "history", "--client", c.client_id, out["device_id"])
    assert hist["total_count"] == 1 and hist["next_cursor"] is None
    assert [(r["id"], r["status"]) for r in hist["data"]] == [(out["enrollment_id"], "success")]

    dev = _json(c, "devices", "get", "--client", c.client_id, out["device_id"])
    assert dev["machine_id"] == "vm-clone-17" and dev["tags"] == ["lab"] and dev["site"] == "berlin"
    assert dev["facts"]["hostname"] and dev["facts"]["cpu_count"] >= 1 and dev["facts"]["memory_bytes"] > 0
    assert dev["latest_enrollment"]["id"] == out["enrollment_id"]
    assert dev["latest_enrollment"]["status"] == "success"

    # reinstall on the same machine id: same device, a new record, a new credential
    old_credential = (state / "credential").read_text()
    time.sleep(0.01)
    again = _install(c, tok["token"], state, "vm-clone-17", "-o", "json")
    assert again.returncode == 0, again.stderr
    out2 = json.loads(again.stdout)
    assert out2["device_id"] == out["device_id"] and out2["enrollment_id"] != out["enrollment_id"]
    assert (state / "credential").read_text() != old_credential
    hist = _json(c, "devices", "history", out["device_id"])  # --client defaults to the token's only client
    assert [r["id"] for r in hist["data"]] == [out2["enrollment_id"], out["enrollment_id"]]

    # a second agent on the same host, told apart by --machine-id
    other = _install(c, tok["token"], tmp_path / "agent2", "host-a-agent-2", "-o", "json")
    assert other.returncode == 0, other.stderr
    listed = _json(c, "devices", "list", "--client", c.client_id)
    assert listed["total"] == 2
    assert {d["machine_id"] for d in listed["data"]} == {"vm-clone-17", "host-a-agent-2"}

    tokens = _json(c, "tokens", "list", "--client", c.client_id)
    assert tokens["total"] == 1
    assert [(t["id"], t["uses"], t["max_uses"]) for t in tokens["data"]] == [(tok["id"], 3, 5)]
    assert tok["token"] not in json.dumps(tokens)

    tagged = _json(c, "devices", "tag", "--client", c.client_id, out["device_id"], "--tag", "canary", "--site", "paris")
    assert tagged["tags"] == ["canary"] and tagged["site"] == "paris"

    table = c.cli("devices", "history", "--client", c.client_id, out["device_id"])
    assert out2["enrollment_id"] in table.stdout and "success" in table.stdout

    # on the same coordinator (one start less): a reinstall from elsewhere needs proof
    _reinstall_needs_proof_or_a_replacement_token(c, tmp_path)


def _assert_refused(c: CoordinatorProcess, token: str, state: Path, expected: str) -> None:
    before = _json(c, "devices", "list", "--client", c.client_id)["total"]
    res = _install(c, token, state, f"refused-{state.name}")
    assert res.returncode != 0
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("error: ") and expected in res.stderr, res.stderr
    assert "Traceback" not in res.stderr and res.stdout == ""
    assert not state.exists() or not any(state.iterdir())
    assert _json(c, "devices", "list", "--client", c.client_id)["total"] == before


def test_refused_tokens_leave_nothing_behind(coordinator_proc: CoordinatorProcess, tmp_path: Path) -> None:
    c = coordinator_proc
    _assert_refused(c, "cvy_enr_made-up-token", tmp_path / "bad", "invalid enrollment token")

    revoked = _new_token(c)
    out = _json(c, "tokens", "revoke", "--client", c.client_id, revoked["id"])
    assert out["id"] == revoked["id"] and out["revoked"] is True
    _assert_refused(c, revoked["token"], tmp_path / "revoked", "revoked")

    single = _new_token(c, "--max-uses", "1")
    first = _install(c, single["token"], tmp_path / "first", "first-machine")
    assert first.returncode == 0, first.stderr
    _assert_refused(c, single["token"], tmp_path / "exhausted", "used up")

    short = _new_token(c, "--expires-in", "1s")
    time.sleep(1.2)
    _assert_refused(c, short["token"], tmp_path / "expired", "expired")

    # with -o json too, a refusal is one line on stderr
    res = _install(c, "cvy_enr_nope", tmp_path / "json", "x", "-o", "json")
    assert res.returncode == 3 and res.stdout == "" and res.stderr.count("\n") == 1


def test_failed_local_step_is_reported_with_its_logs(coordinator_proc: CoordinatorProcess, tmp_path: Path) -> None:
    c = coordinator_proc
    tok = _new_token(c)
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the state dir should go")
    reports = _report_calls(c)
    res = _install(c, tok["token"], blocker / "state", "broken-machine")
    assert res.returncode == 1 and "install failed" in res.stderr.splitlines()[-1]
    # the success sent with Enroll was corrected by the one ReportEnrollment of the failure
    assert _report_calls(c) == reports + 1
    devices = _json(c, "devices", "list", "--client", c.client_id)["data"]
    [dev] = [d for d in devices if d["machine_id"] == "broken-machine"]
    assert dev["latest_enrollment"]["status"] == "error"
    rec = _json(c, "devices", "deployment", "--client", c.client_id, dev["id"], dev["latest_enrollment"]["id"])
    logs = rec["error_logs"]
    assert logs[0].endswith(": Starting deployment...") and logs[-1].endswith(": Deployment aborted")
    assert any("failed -" in line for line in logs)
    hist = _json(c, "devices", "history", "--client", c.client_id, dev["id"], "--status", "error", "--all")
    assert [r["id"] for r in hist["data"]] == [rec["id"]]


def test_devices_commands_report_errors_as_one_line(coordinator_proc: CoordinatorProcess) -> None:
    c = coordinator_proc
    res = c.cli("devices", "history", "--client", c.client_id, "00000000-0000-0000-0000-000000000000", check=False)
    assert res.returncode == 4 and res.stderr.strip() == "error: Device not found"
    res = c.cli("devices", "get", "--client", c.client_id, "not-a-uuid", check=False)
    assert res.returncode == 2 and "device_id" in res.stderr and res.stderr.count("\n") == 1
    res = c.cli("tokens", "create", "--client", c.client_id, "--expires-in", "soon", check=False)
    assert res.returncode == 2 and "--expires-in" in res.stderr
    res = c.cli("tokens", "create", "--client", c.client_id, "--max-uses", "-1", check=False)
    assert res.returncode == 2 and "--max-uses" in res.stderr


def test_enrollment_tokens_default_to_a_lifetime_and_a_use_count(coordinator_proc: CoordinatorProcess) -> None:
    c = coordinator_proc
    default, unlimited = _new_token(c), _new_token(c, "--max-uses", "0", "--expires-in", "0")
    listed = {t["id"]: t for t in _json(c, "tokens", "list", "--client", c.client_id)["data"]}
    assert listed[default["id"]]["max_uses"] == 100 and listed[default["id"]]["expires_at"]
    assert listed[unlimited["id"]]["max_uses"] == 0 and not listed[unlimited["id"]]["expires_at"]


def _reinstall_needs_proof_or_a_replacement_token(c: CoordinatorProcess, tmp_path: Path) -> None:
    """A second install claiming an enrolled machine id from elsewhere (no state dir: no device
    credential) is refused; `convoy devices replace` issues the one token that re-enrolls it."""
    tok = _new_token(c)
    first = _install(c, tok["token"], tmp_path / "original", "rebuilt-host", "-o", "json")
    assert first.returncode == 0, first.stderr
    device_id = json.loads(first.stdout)["device_id"]

    stranger = _install(c, tok["token"], tmp_path / "elsewhere", "rebuilt-host", "-o", "json")
    assert stranger.returncode == 3 and stranger.stdout == "" and stranger.stderr.count("\n") == 1
    assert f"already enrolled as device {device_id}" in stranger.stderr
    assert f"convoy devices replace {device_id}" in stranger.stderr
    assert not (tmp_path / "elsewhere").exists()
    assert _json(c, "devices", "history", device_id)["total_count"] == 1

    repl = _json(c, "devices", "replace", device_id)
    assert repl["device_id"] == device_id and repl["token"] in repl["install_command"]
    assert f"--ca-fingerprint {c.ca_fingerprint}" in repl["install_command"]
    again = _install(c, repl["token"], tmp_path / "elsewhere", "rebuilt-host", "-o", "json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["device_id"] == device_id
    assert _json(c, "devices", "history", device_id)["total_count"] == 2
    used = _install(c, repl["token"], tmp_path / "third", "third-host")
    assert used.returncode == 3 and "used up" in used.stderr

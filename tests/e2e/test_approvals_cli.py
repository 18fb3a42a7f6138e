"""Approvals as an operator runs them (docs/approvals.md): `convoy clients policy`, `convoy
deployments approve`, and the approval in `initialize`, `start`, `get` and `watch`; real
`convoy` subprocesses against a real coordinator process, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_deployments_cli import _fleet, _script
from tests.harness import CoordinatorProcess


@pytest.fixture
def proc(db_url: str, tmp_path: Path) -> Iterator[CoordinatorProcess]:
    p = CoordinatorProcess(tmp_path / "coord", db=db_url)
    p.bootstrap()
    p.start()
    yield p
    p.stop()


def _json(proc: CoordinatorProcess, *args: str, token: str | None = None) -> Any:
    return json.loads(proc.cli(*args, "-o", "json", token=token).stdout)


def test_policy_then_approval_by_another_operator(proc: CoordinatorProcess) -> None:
    client = proc.client_id
    assert _json(proc, "clients", "policy", "get", client)["requireApprovalOver"] is None
    assert "no approval policy" in proc.cli("clients", "policy", "get", client).stdout

    # bad usage is one line and exit 2, before or at the coordinator
    for bad in ((), ("--no-require-approval", "--require-approval-over", "3"), ("--require-approval-over", "-1")):
        res = proc.cli("clients", "policy", "set", client, *bad, check=False)
        assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, (bad, res.stderr)
    res = proc.cli("clients", "policy", "set", "not-a-client", "--require-approval-over", "1", check=False)
    assert res.returncode == 2 and "clientId" in res.stderr

    out = proc.cli("clients", "policy", "set", client, "--require-approval-over", "1", "--require-approval-for-all").stdout
    assert "deployments targeting more than 1 device(s) and every targetType all deployment" in out
    policy = _json(proc, "clients", "policy", "get", client)
    assert policy["requireApprovalOver"] == 1 and policy["requireApprovalForAll"] is True and policy["updatedBy"]

    alice = proc.cli("api-tokens", "create", "--client", client, "--role", "operator", "--name", "alice", "-q").stdout.strip()
    bob = proc.cli("api-tokens", "create", "--client", client, "--role", "operator", "--name", "bob", "-q").stdout.strip()
    res = proc.cli("clients", "policy", "set", client, "--no-require-approval", token=alice, check=False)
    assert res.returncode == 3 and "admin role required" in res.stderr

    agents = _fleet(proc, 2)
    try:
        dep_id = proc.cli("deployments", "create", "--name", "fleet change", "--script", _script(proc),
                          "--target-devices", *[a.device_id for a in agents], "--immediate", "-q",
                          token=alice).stdout.strip()
        init = proc.cli("deployments", "initialize", dep_id, token=alice).stdout
        reason = "needs approval by another operator: 2 targets over the client's limit of 1"
        assert reason in init and f"convoy deployments approve {dep_id}" in init

        res = proc.cli("deployments", "start", dep_id, token=alice, check=False)
        assert res.returncode == 5 and reason in res.stderr
        res = proc.cli("deployments", "approve", dep_id, token=alice, check=False)
        assert res.returncode == 3 and "created this deployment cannot approve it" in res.stderr
        assert f"approval:       {reason}" in proc.cli("deployments", "get", dep_id).stdout

        out = proc.cli("deployments", "approve", dep_id, "--comment", "CHG-42 reviewed", token=bob).stdout
        assert "approved by bob (" in out and ": CHG-42 reviewed" in out
        got = _json(proc, "deployments", "get", dep_id)
        assert got["approval"]["status"] == "approved"
        assert [(a["tokenName"], a["comment"]) for a in got["approval"]["approvals"]] == [("bob", "CHG-42 reviewed")]

        assert proc.cli("deployments", "start", dep_id, token=alice).returncode == 0
        watched = proc.cli("deployments", "watch", dep_id, timeout=30).stdout  # piped: plain lines
        assert "approval='approved by bob" in watched and "deployment completed" in watched
        assert "approved by bob" in proc.cli("deployments", "get", dep_id).stdout
        trail = proc.cli("deployments", "audit", dep_id).stdout
        assert "approved: CHG-42 reviewed" in trail and "bob (" in trail
        reasons = [e["reason"] for e in _json(proc, "deployments", "audit", dep_id)["data"]]
        assert reasons[:3] == ["created", "2 devices in 1 batches", "approved: CHG-42 reviewed"], reasons
    finally:
        for a in agents:
            a.disconnect()

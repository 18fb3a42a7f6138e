"""The real `convoy` command: bootstrap, serve, client and token creation, clean shutdown."""

from __future__ import annotations

import json

from tests.harness import CoordinatorProcess, run_cli


def test_bootstrap_serve_and_cli(coordinator_proc: CoordinatorProcess) -> None:
    out = json.loads(coordinator_proc.cli("clients", "create", "--name", "Branch Office", "-o", "json").stdout)
    assert out["name"] == "Branch Office"
    tok = json.loads(coordinator_proc.cli("api-tokens", "create", "--client", out["id"], "--role", "operator", "-o", "json").stdout)
    assert set(tok) == {"id", "token"}
    bad = coordinator_proc.cli("clients", "list", token="cvy_api_wrong", check=False)
    assert bad.returncode == 3 and bad.stderr.startswith("error: ") and "Traceback" not in bad.stderr


def test_bootstrap_refuses_second_admin(tmp_path) -> None:  # type: ignore[no-untyped-def]
    first = run_cli("admin", "bootstrap", "--data-dir", str(tmp_path), "--client-name", "A", "-o", "json")
    assert json.loads(first.stdout)["token"]
    again = run_cli("admin", "bootstrap", "--data-dir", str(tmp_path), "--client-name", "A", check=False)
    assert again.returncode != 0 and "--force" in again.stderr


def test_unreachable_coordinator_is_one_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    res = run_cli("clients", "list", server="127.0.0.1:1", token="cvy_api_x", check=False)
    assert res.returncode == 6 and res.stderr.count("\n") == 1 and "cannot reach" in res.stderr

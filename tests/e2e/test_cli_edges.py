"""The CLI's rough edges, each as a user meets it: pipes, help, typos, output shapes, durations,
wrong addresses, and watch's exit statuses apart from its error codes."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator

import pytest
import yaml

from common.convoy.v1 import admin_pb2 as pb
from tests.harness import CONVOY, ROOT, CoordinatorProcess, run_cli


@pytest.fixture(scope="module")
def shared_proc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CoordinatorProcess]:
    """One coordinator for this module: these tests only add drafts, groups and tokens."""
    p = CoordinatorProcess(tmp_path_factory.mktemp("cli-edges") / "coord", insecure=True)  # TLS: test_tls.py
    p.bootstrap()
    p.start()
    yield p
    p.stop()


def _closed_pipe(*args: str, server: str = "", token: str = "",
                 trust: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `convoy ARGS` with a stdout whose reader is already gone (`… | head` after head exits)."""
    import os

    read, write = os.pipe()
    os.close(read)
    env = {**os.environ, "CONVOY_SERVER": server, "CONVOY_TOKEN": token, **(trust or {})}
    try:
        proc = subprocess.run([*CONVOY, *args], stdout=write, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                              env=env, timeout=60)
    finally:
        os.close(write)
    return subprocess.CompletedProcess(proc.args, proc.returncode, "", proc.stderr)


def _script(proc: CoordinatorProcess) -> str:
    return str(proc.admin().CreateScript(pb.CreateScriptRequest(
        client_id=proc.client_id, name="s", interpreter="sh", body="echo hi")).id)


def test_help_version_and_did_you_mean() -> None:
    bare = run_cli(check=False)
    assert bare.returncode == 0 and bare.stdout.startswith("usage: convoy") and "deployments" in bare.stdout
    group = run_cli("deployments", check=False)
    assert group.returncode == 2 and "watch" in group.stdout and "error" not in group.stderr
    version = run_cli("version", "-o", "json")
    assert json.loads(version.stdout)["version"] == "0.1.0"
    assert run_cli("--version").stdout.strip() == "convoy 0.1.0"
    typo = run_cli("deploymnts", "list", check=False)
    assert typo.returncode == 2 and "did you mean 'deployments'?" in typo.stderr
    typo = run_cli("deployments", "wach", "x", check=False)
    assert typo.returncode == 2 and "did you mean 'watch'?" in typo.stderr
    serve_help = run_cli("coordinator", "serve", "--help").stdout
    assert "127.0.0.1:7443" in serve_help and "127.0.0.1:7080" in serve_help and "CONVOY_DB" in serve_help


def test_broken_pipe_exits_quietly(shared_proc: CoordinatorProcess) -> None:
    proc = shared_proc
    dep = json.loads(proc.cli("deployments", "create", "--name", "p", "--script", _script(proc), "--target-all",
                              "-o", "json").stdout)
    res = _closed_pipe("deployments", "get", dep["id"], "-o", "json", server=proc.grpc_target, token=proc.token,
                       trust=proc.trust_env())
    assert res.returncode == 141 and res.stderr == ""
    res = _closed_pipe("version")
    assert res.returncode == 141 and res.stderr == ""


def test_output_shapes_quiet_and_yaml(shared_proc: CoordinatorProcess) -> None:
    proc = shared_proc
    sid = _script(proc)
    dep_id = proc.cli("deployments", "create", "--name", "q", "--script", sid, "--target-all", "-q").stdout.strip()
    ids = proc.cli("deployments", "list", "-q").stdout.split()
    assert dep_id in ids and all(len(i) == 36 for i in ids)
    as_yaml = yaml.safe_load(proc.cli("deployments", "get", dep_id, "-o", "yaml").stdout)
    assert as_yaml["id"] == dep_id and as_yaml["status"] == "draft"
    proc.cli("groups", "create", "--client", proc.client_id, "--name", "web")
    for area in ("groups", "scripts", "clients", "artifacts", "tokens", "deployments", "devices"):
        args = [area, "list", "-o", "json"] + (["--client", proc.client_id] if area in ("groups", "tokens") else [])
        out = json.loads(proc.cli(*args).stdout)
        assert set(out) >= {"data", "total"} and out["total"] == len(out["data"]), area
    assert proc.cli("clients", "list", "-q").stdout.split() == [proc.client_id]
    secret = proc.cli("tokens", "create", "--client", proc.client_id, "-q").stdout.strip()
    assert secret.startswith("cvy_enr_") and "\n" not in secret


def test_durations_take_units_and_refuse_ambiguous_numbers(shared_proc: CoordinatorProcess) -> None:
    proc = shared_proc
    sid = _script(proc)
    dep = json.loads(proc.cli("deployments", "create", "--name", "d", "--script", sid, "--target-all",
                              "--batch-size", "1", "--batch-delay", "5m", "--install-timeout", "1h30m",
                              "--backoff", "30s,5m,1h", "-o", "json").stdout)
    rollout = dep["rolloutConfig"]
    assert rollout["staggered"]["batchDelayMinutes"] == 5
    assert rollout["installTimeoutMinutes"] == 90
    assert rollout["retryConfig"]["backoffMinutes"] == [0.5, 5, 60]
    # the CLI's JSON says what the REST API says: null for unset, whole numbers as integers
    import httpx

    rest = httpx.get(f"{proc.http_url}/v2/deployments/{dep['id']}", headers={"Authorization": f"Bearer {proc.token}"}).json()
    for key in ("statusReason", "startedAt", "completedAt", "nextBatchAt", "rollbackOf", "rolledBackBy"):
        assert dep[key] is None and rest[key] is None, key
    assert json.dumps(rollout["retryConfig"], sort_keys=True) == json.dumps(rest["rolloutConfig"]["retryConfig"], sort_keys=True)
    assert rollout["staggered"]["batchSize"] == rest["rolloutConfig"]["staggered"]["batchSize"] == 1
    bad = proc.cli("tokens", "create", "--client", proc.client_id, "--expires-in", "90", check=False)
    assert bad.returncode == 2 and "no unit" in bad.stderr
    assert proc.cli("tokens", "create", "--client", proc.client_id, "--expires-in", "1h30m", "-o", "json").returncode == 0
    bad = proc.cli("deployments", "create", "--name", "d", "--script", sid, "--target-all", "--batch-size", "1",
                   "--batch-delay", "soon", check=False)
    assert bad.returncode == 2 and "--batch-delay" in bad.stderr


def test_wrong_address_hints(shared_proc: CoordinatorProcess) -> None:
    proc = shared_proc
    url = run_cli("deployments", "list", "--server", f"http://127.0.0.1:{proc.grpc_port}", token=proc.token,
                  check=False)
    assert url.returncode == 2 and "a URL" in url.stderr and f"127.0.0.1:{proc.grpc_port}" in url.stderr
    rest_port = run_cli("deployments", "list", "--server", f"127.0.0.1:{proc.http_port}", "--insecure",
                        token=proc.token, check=False, timeout=90)
    assert rest_port.returncode == 6 and "REST/dashboard port" in rest_port.stderr, rest_port.stderr
    assert rest_port.stderr.count("\n") == 1


def test_watch_errors_are_not_outcomes(shared_proc: CoordinatorProcess) -> None:
    proc = shared_proc
    dep_id = proc.cli("deployments", "create", "--name", "w", "--script", _script(proc), "--target-all",
                      "-q").stdout.strip()
    bad_token = proc.cli("deployments", "watch", dep_id, token="cvy_api_wrong", check=False)
    assert bad_token.returncode == 3 and "error:" in bad_token.stderr
    started = time.monotonic()
    away = run_cli("deployments", "watch", dep_id, "--server", "127.0.0.1:1", token=proc.token, check=False)
    assert away.returncode == 6 and time.monotonic() - started < 60
    from cli.cmd_deployments import WATCH_EXIT
    from cli.common import EXIT_CODES

    outcomes, errors = set(WATCH_EXIT.values()) - {0}, set(EXIT_CODES.values()) | {1, 130}
    assert not outcomes & errors

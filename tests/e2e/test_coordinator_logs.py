"""`convoy coordinator serve` logging and environment: JSON lines, quiet libraries, CONVOY_* vars."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import httpx

from tests.harness import CONVOY, ROOT, CoordinatorProcess, run_cli


def _serve_env(tmp_path: Path, **env: str) -> tuple[subprocess.Popen[str], dict[str, int], Path]:
    """`serve` configured only through the environment; returns the process, ports, stderr file."""
    log = tmp_path / "stderr.log"
    full = {k: v for k, v in os.environ.items() if not k.startswith("CONVOY_")}
    full.update({"CONVOY_DATA_DIR": str(tmp_path / "data"), "CONVOY_GRPC_LISTEN": "127.0.0.1:0",
                 "CONVOY_HTTP_LISTEN": "127.0.0.1:0", **env})
    with open(log, "w") as err:
        proc = subprocess.Popen([*CONVOY, "coordinator", "serve", "--insecure"], stdout=subprocess.PIPE, stderr=err, text=True,
                                cwd=ROOT, env=full)
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        event = json.loads(line)
        if event.get("event") == "listening":
            return proc, event, log
    proc.kill()
    raise AssertionError(f"coordinator did not start: {log.read_text()}")


def test_json_logs_one_object_per_line_and_no_library_noise(tmp_path: Path) -> None:
    proc, ports, log = _serve_env(tmp_path, CONVOY_LOG_FORMAT="json", CONVOY_LOG_LEVEL="info",
                                  CONVOY_REPLICA_ID="replica-7")
    assert ports["replica_id"] == "replica-7"
    try:
        assert (tmp_path / "data" / "convoy.db").exists()  # CONVOY_DATA_DIR was used
        assert httpx.get(f"http://127.0.0.1:{ports['http_port']}/healthz").status_code == 200
    finally:
        proc.terminate()
        proc.wait(15)
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    assert lines, "the coordinator logged nothing at info"
    events = [json.loads(line) for line in lines]  # every line is one JSON object
    for ev in events:
        assert {"time", "level", "logger", "message", "replica"} <= ev.keys()
        assert ev["replica"] == "replica-7"  # CONVOY_REPLICA_ID, on every line
    assert any(ev["logger"] == "convoy.coordinator" and "listening" in ev["message"] for ev in events)
    assert not [ev for ev in events if ev["logger"].startswith(("alembic", "uvicorn")) and ev["level"] == "INFO"]


def test_text_logs_carry_no_alembic_info(coordinator_proc: CoordinatorProcess) -> None:
    text = coordinator_proc.log_path.read_text()
    assert "coordinator listening" in text
    assert "alembic" not in text.lower() and "Context impl" not in text


def test_bad_environment_value_names_the_variable(tmp_path: Path) -> None:
    res = run_cli("coordinator", "serve", check=False, timeout=30,
                  env={"CONVOY_DATA_DIR": str(tmp_path), "CONVOY_INSTALL_TIMEOUT": "90"})
    assert res.returncode == 2
    assert "CONVOY_INSTALL_TIMEOUT" in res.stderr and "no unit" in res.stderr
    res = run_cli("coordinator", "serve", "--log-format", "xml", check=False, timeout=30)
    assert res.returncode == 2 and "--log-format" in res.stderr


def test_a_bad_replica_id_is_refused_before_anything_starts(tmp_path: Path) -> None:
    for bad, why in (("a" * 49, "at most 48 characters"), ("a b", "may contain only")):
        out = run_cli("coordinator", "serve", "--insecure", "--data-dir", str(tmp_path), "--replica-id", bad,
                      check=False)
        assert out.returncode == 2 and "--replica-id: " in out.stderr and why in out.stderr, out.stderr
        assert "Traceback" not in out.stderr


def test_convoy_db_names_the_store_for_bootstrap_and_serve(tmp_path: Path) -> None:
    """CONVOY_DB (no --db anywhere): bootstrap and serve both use that database, not the data dir's."""
    db = tmp_path / "elsewhere" / "store.db"
    db.parent.mkdir()
    env = {"CONVOY_DB": f"sqlite:///{db}", "CONVOY_DATA_DIR": str(tmp_path / "data")}
    boot = json.loads(run_cli("admin", "bootstrap", "--client-name", "Env", "-o", "json", env=env).stdout)
    proc, ports, log = _serve_env(tmp_path, **env)
    try:
        listed = run_cli("clients", "list", "-q", server=f"127.0.0.1:{ports['grpc_port']}", token=boot["token"],
                         env={"CONVOY_INSECURE": "1"})
        assert listed.stdout.split() == [boot["client_id"]]  # the token exists only in CONVOY_DB's store
    finally:
        proc.terminate()
        proc.wait(15)
    assert db.exists() and not (tmp_path / "data" / "convoy.db").exists(), log.read_text()

"""`convoy groups|scripts|artifacts …` as a user runs them, against a real coordinator process."""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common.ids import new_id
from coordinator.store import models as m
from coordinator.store.db import Store
from tests.harness import CoordinatorProcess

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def _json(proc: CoordinatorProcess, *args: str) -> Any:
    return json.loads(proc.cli(*args, "-o", "json").stdout)


def _one_line_error(proc: CoordinatorProcess, *args: str) -> tuple[int, str]:
    res = proc.cli(*args, check=False)
    assert res.returncode != 0, res.stdout
    assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 1, res.stderr
    assert "Traceback" not in res.stderr
    return res.returncode, res.stderr


def _devices(proc: CoordinatorProcess, n: int) -> list[str]:
    """Devices in the coordinator's store (enrollment is another command's business)."""
    store = Store.open(data_dir=proc.data_dir, run_migrations=False)
    ids = [new_id() for _ in range(n)]
    with store.tx() as s:
        s.add_all(m.Device(id=d, client_id=proc.client_id, machine_id=d, credential_hash=d, created_at=NOW,
                           updated_at=NOW) for d in ids)
    store.close()
    return ids


def test_groups_cli(coordinator_proc: CoordinatorProcess) -> None:
    d1, d2 = _devices(coordinator_proc, 2)
    g = _json(coordinator_proc, "groups", "create", "--name", "web-servers")
    assert g["name"] == "web-servers" and g["client_id"] == coordinator_proc.client_id
    out = _json(coordinator_proc, "groups", "add", g["id"], d1, d2)
    assert sorted(out["device_ids"]) == sorted([d1, d2])
    out = _json(coordinator_proc, "groups", "remove", g["id"], d1)
    assert out["device_ids"] == [d2]
    listed = _json(coordinator_proc, "groups", "list")
    assert [(x["id"], x["device_ids"]) for x in listed["data"]] == [(g["id"], [d2])]
    table = coordinator_proc.cli("groups", "list").stdout
    assert "web-servers" in table and table.splitlines()[0].startswith("ID")

    code, err = _one_line_error(coordinator_proc, "groups", "create", "--name", "web-servers")
    assert code == 5 and "already exists" in err
    code, err = _one_line_error(coordinator_proc, "groups", "add", g["id"], "not-a-uuid")
    assert code == 2 and "UUID" in err
    missing = new_id()
    code, err = _one_line_error(coordinator_proc, "groups", "add", g["id"], missing)
    assert code == 4 and missing in err


def test_scripts_cli(coordinator_proc: CoordinatorProcess, tmp_path: Path) -> None:
    body = tmp_path / "motd.sh"
    body.write_text('echo "$message" > /etc/motd\n')
    undo = tmp_path / "undo.sh"
    undo.write_text("rm -f /etc/motd\n")
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({"type": "object", "properties": {"message": {"type": "string"}},
                                  "required": ["message"]}))
    sc = _json(coordinator_proc, "scripts", "create", "--name", "motd", "--interpreter", "sh", "--file", str(body),
               "--rollback-file", str(undo), "--parameters-schema", str(schema))
    assert sc["body"] == body.read_text() and sc["rollback_body"] == "rm -f /etc/motd\n"
    listed = _json(coordinator_proc, "scripts", "list")
    assert [x["id"] for x in listed["data"]] == [sc["id"]]
    assert "message" in coordinator_proc.cli("scripts", "list").stdout

    code, err = _one_line_error(coordinator_proc, "scripts", "create", "--name", "x", "--interpreter", "zsh",
                                "--file", str(body))
    assert code == 2 and "interpreter" in err
    code, err = _one_line_error(coordinator_proc, "scripts", "create", "--name", "x", "--interpreter", "sh",
                                "--file", str(tmp_path / "nope.sh"))
    assert code == 2 and "nope.sh" in err
    schema.write_text('{"type": "object", "properties": {"n": {"type": "date"}}}')
    code, err = _one_line_error(coordinator_proc, "scripts", "create", "--name", "x", "--interpreter", "sh",
                                "--file", str(body), "--parameters-schema", str(schema))
    assert code == 2 and "properties.n.type" in err


def test_artifacts_cli(coordinator_proc: CoordinatorProcess, tmp_path: Path) -> None:
    pkg = tmp_path / "tools_1.0_amd64.deb"
    data = os.urandom(2 * 1024 * 1024 + 333)  # several upload messages
    pkg.write_bytes(data)
    out = _json(coordinator_proc, "artifacts", "upload", str(pkg))
    assert out["sha256"] == hashlib.sha256(data).hexdigest() and out["size"] == len(data)
    assert out["kind"] == "deb" and out["name"] == pkg.name
    again = _json(coordinator_proc, "artifacts", "upload", str(pkg), "--name", "tools.tgz")
    assert again["sha256"] == out["sha256"] and again["kind"] == "tar.gz" and again["id"] != out["id"]
    listed = _json(coordinator_proc, "artifacts", "list")
    assert [(a["id"], a["size"]) for a in listed["data"]] == [(out["id"], len(data)), (again["id"], len(data))]
    assert "tools.tgz" in coordinator_proc.cli("artifacts", "list").stdout

    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    code, err = _one_line_error(coordinator_proc, "artifacts", "upload", str(empty))
    assert code == 2 and "empty" in err
    code, err = _one_line_error(coordinator_proc, "artifacts", "upload", str(tmp_path / "missing.deb"))
    assert code == 2 and "missing.deb" in err
    code, _ = _one_line_error(coordinator_proc, "artifacts", "upload", str(tmp_path))
    assert code == 2
    code, err = _one_line_error(coordinator_proc, "artifacts", "upload", str(pkg), "--client", new_id())
    assert code in (3, 4)

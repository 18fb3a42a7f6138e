"""The policy store: apply keeps the previous version, restore brings it back, files are managed."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest

from agent.installers import InstallError, JobContext, policy
from agent.state import StateDir


def run(state: StateDir, name: str, version: int, action: str = "apply", document: dict[str, Any] | None = None) -> Any:
    ctx = JobContext(job_id=f"{name}-{version}-{action}", deployment_id="d", device_id="dev", attempt=1,
                     payload={"name": name, "version": float(version), "action": action, "document": document or {}},
                     state=state)
    return policy.run(ctx)


def test_apply_then_restore_returns_the_previous_settings(tmp_path: Path) -> None:
    state = StateDir(tmp_path / "state")
    out = run(state, "agent", 1, document={"heartbeatIntervalSeconds": 60})
    assert out.success and out.settings == {"heartbeatIntervalSeconds": 60.0}
    out = run(state, "agent", 2, document={"heartbeatIntervalSeconds": 5,
                                           "maintenanceWindows": ["Sat  01:00-05:00   Europe/Berlin"]})
    assert out.settings == {"heartbeatIntervalSeconds": 5.0, "maintenanceWindows": ["Sat 01:00-05:00 Europe/Berlin"]}
    assert policy.effective_settings(state) == out.settings

    out = run(state, "agent", 2, action="restore")
    assert out.success and out.settings == {"heartbeatIntervalSeconds": 60.0}
    assert "restored to version 1" in out.output
    out = run(state, "agent", 1, action="restore")
    assert out.success and out.settings == {}
    # Restoring a version that is no longer active changes nothing and says so.
    out = run(state, "agent", 1, action="restore")
    assert out.success and "nothing to restore" in out.output


def test_the_most_recently_changed_policy_wins_a_setting(tmp_path: Path) -> None:
    state = StateDir(tmp_path / "state")
    run(state, "base", 1, document={"heartbeatIntervalSeconds": 30})
    run(state, "fast", 1, document={"heartbeatIntervalSeconds": 2})
    assert policy.effective_settings(state)["heartbeatIntervalSeconds"] == 2.0
    run(state, "fast", 1, action="restore")
    assert policy.effective_settings(state)["heartbeatIntervalSeconds"] == 30.0


def test_managed_files_are_written_and_given_back_on_restore(tmp_path: Path) -> None:
    state = StateDir(tmp_path / "state")
    existing = tmp_path / "etc" / "app.conf"
    existing.parent.mkdir()
    existing.write_text("original\n")
    existing.chmod(0o640)
    created = tmp_path / "etc" / "new.conf"

    run(state, "files", 1, document={"files": [{"path": str(existing), "content": "v1\n", "mode": "0600"}]})
    assert existing.read_text() == "v1\n" and stat.S_IMODE(existing.stat().st_mode) == 0o600
    run(state, "files", 2, document={"files": [{"path": str(existing), "content": "v2\n", "mode": 420.0},
                                               {"path": str(created), "content": "new\n"}]})
    assert existing.read_text() == "v2\n" and stat.S_IMODE(existing.stat().st_mode) == 0o644
    assert created.read_text() == "new\n"

    run(state, "files", 2, action="restore")
    assert existing.read_text() == "v1\n" and not created.exists()
    run(state, "files", 1, action="restore")
    assert existing.read_text() == "original\n" and stat.S_IMODE(existing.stat().st_mode) == 0o640


def test_versions_are_kept_on_disk(tmp_path: Path) -> None:
    state = StateDir(tmp_path / "state")
    for v in range(1, 4):
        run(state, "p", v, document={"heartbeatIntervalSeconds": v * 10})
    store = policy.PolicyStore(state, "p")
    st = store.load_state()
    assert st["active"] == 3 and st["history"] == [1, 2]
    assert store.document(2)["heartbeatIntervalSeconds"] == 20.0


@pytest.mark.parametrize("document,message", [
    ({"heartbeatIntervalSeconds": 0}, "between 1 and 86400"),
    ({"heartbeatIntervalSeconds": "fast"}, "between 1 and 86400"),
    ({"maintenanceWindows": "Sat 01:00-05:00 UTC"}, "must be a list"),
    ({"maintenanceWindows": ["someday 01:00-05:00 UTC"]}, "maintenance window #1"),
    ({"files": [{"path": "relative.conf", "content": ""}]}, "must be absolute"),
    ({"files": [{"path": "/etc/../x", "content": ""}]}, "must be absolute"),
    ({"files": [{"path": "/tmp/x", "content": "", "mode": "rwx"}]}, "not an octal"),
])
def test_bad_documents_are_refused_and_change_nothing(tmp_path: Path, document: dict[str, Any], message: str) -> None:
    state = StateDir(tmp_path / "state")
    with pytest.raises(InstallError, match=message):
        run(state, "p", 1, document=document)
    assert policy.effective_settings(state) == {}


def test_bad_names_and_versions(tmp_path: Path) -> None:
    state = StateDir(tmp_path / "state")
    with pytest.raises(InstallError, match="plain name"):
        run(state, "../x", 1)
    with pytest.raises(InstallError, match="non-negative integer"):
        policy.run(JobContext(job_id="j", deployment_id="d", device_id="v", attempt=1, state=state,
                              payload={"name": "p", "version": 1.5, "action": "apply", "document": {}}))


def test_rolling_back_a_reapply_of_the_active_version_changes_nothing(tmp_path: Path) -> None:
    state = StateDir(tmp_path / "state")

    def job(deployment: str, version: int, action: str, reverts: str | None = None) -> Any:
        payload: dict[str, Any] = {"name": "p", "version": float(version), "action": action,
                                   "document": {"heartbeatIntervalSeconds": version * 10}}
        if reverts:
            payload["revertsDeploymentId"] = reverts
        return policy.run(JobContext(job_id=f"{deployment}-{action}", deployment_id=deployment, device_id="dev",
                                     attempt=1, payload=payload, state=state, rollback=reverts is not None))

    job("d1", 1, "apply")
    job("d2", 2, "apply")
    job("d3", 2, "apply")  # the same version again: the state before d3 is version 2 active
    out = job("rb3", 2, "restore", reverts="d3")
    assert out.success and "was already active before deployment d3; nothing to restore" in out.output
    assert policy.PolicyStore(state, "p").load_state()["active"] == 2
    out = job("rb2", 2, "restore", reverts="d2")
    assert out.success and out.settings == {"heartbeatIntervalSeconds": 10.0}

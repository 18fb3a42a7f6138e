"""The patch installer against a fake apt/dpkg (tests/unit/fake_debian.py): a rollback puts the
recorded versions back, removes only what the deployment newly installed, and otherwise fails
with a reason and changes nothing."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.installers import InstallError, JobContext, Outcome, debian, patch
from agent.installers.prestate import PreStateStore
from agent.state import StateDir
from tests.unit.fake_debian import FakeDebian

DEP = "dep-patch-1"


@pytest.fixture
def apt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDebian]:
    fake = FakeDebian(tmp_path / "debian")
    for key, value in fake.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    archives = tmp_path / "archives"
    archives.mkdir()
    monkeypatch.setattr(debian, "APT_ARCHIVES", archives)
    fake.set(installed={"openssl": "3.0.11-1", "libc6": "2.36-9", "bash": "5.2.15-2"},
             available={"openssl": ["3.0.11-1", "3.0.13-1"], "libc6": ["2.36-9", "2.36-9+deb12u4"],
                        "bash": ["5.2.15-2"]})
    yield fake


def job(state: StateDir, packages: list[dict[str, str]], *, job_id: str = "j1", deployment: str = DEP,
        rollback_of: str | None = None, action: str | None = None) -> Outcome:
    payload: dict[str, Any] = {"packages": packages}
    if rollback_of is not None:
        payload.update(action=action or "rollback", revertsDeploymentId=rollback_of)
    elif action is not None:
        payload["action"] = action
    ctx = JobContext(job_id=job_id, deployment_id=deployment if rollback_of is None else f"rb-{deployment}",
                     device_id="dev", attempt=1, payload=payload, state=state, timeout_seconds=30,
                     rollback=rollback_of is not None)
    return patch.run(ctx)


UPGRADE = [{"name": "openssl", "version": "latest"}, {"name": "libc6", "version": "latest"}]


def test_rollback_downgrades_to_the_recorded_versions_and_removes_nothing(tmp_path: Path, apt: FakeDebian) -> None:
    state = StateDir(tmp_path / "state")
    out = job(state, UPGRADE)
    assert out.success, out
    assert "note:" not in out.output  # the sources still have the versions before
    assert apt.installed == {"openssl": "3.0.13-1", "libc6": "2.36-9+deb12u4", "bash": "5.2.15-2"}
    record = PreStateStore(state).load(DEP)
    assert record is not None and record.before == {"openssl": "3.0.11-1", "libc6": "2.36-9"}
    assert record.after == {"openssl": "3.0.13-1", "libc6": "2.36-9+deb12u4"}
    assert oct(PreStateStore(state).path(DEP).stat().st_mode & 0o777) == "0o600"

    out = job(state, UPGRADE, job_id="j2", rollback_of=DEP)
    assert out.success, out
    assert apt.installed == {"openssl": "3.0.11-1", "libc6": "2.36-9", "bash": "5.2.15-2"}
    assert "openssl: 3.0.13-1 -> 3.0.11-1" in out.output
    assert apt.changes()[-1] == ["apt-get", "install", "-y", "--allow-downgrades", "libc6=2.36-9", "openssl=3.0.11-1"]
    assert not any("remove" in c or any(a.endswith("-") for a in c[1:]) for c in apt.changes())
    restored = PreStateStore(state).load(DEP)
    assert restored is not None and restored.restored_at

    # A second rollback job (a retry; here under the action's old name) finds everything as
    # before and changes nothing.
    n = len(apt.changes())
    out = job(state, UPGRADE, job_id="j3", rollback_of=DEP, action="uninstall")
    assert out.success and "nothing to restore" in out.output and len(apt.changes()) == n


def test_a_version_that_cannot_be_had_fails_the_rollback_and_changes_nothing(tmp_path: Path, apt: FakeDebian) -> None:
    state = StateDir(tmp_path / "state")
    assert job(state, UPGRADE).success
    apt.set(available={"openssl": ["3.0.13-1"], "libc6": ["2.36-9", "2.36-9+deb12u4"]})  # the mirror moved on
    assert "note: a rollback could not restore openssl 3.0.11-1" in job(state, UPGRADE, job_id="j1b").output
    n = len(apt.changes())
    out = job(state, UPGRADE, job_id="j2", rollback_of=DEP)
    assert not out.success
    assert out.reason == ("cannot restore openssl 3.0.11-1: that version is not available from the package "
                          "sources, apt's archive or convoy's cache; left 3.0.13-1 installed")
    assert len(apt.changes()) == n  # not even libc6, which could have been restored: all or nothing
    assert apt.installed["openssl"] == "3.0.13-1" and apt.installed["libc6"] == "2.36-9+deb12u4"


def test_the_installed_version_is_kept_in_convoys_cache_before_the_upgrade(tmp_path: Path, apt: FakeDebian) -> None:
    state = StateDir(tmp_path / "state")
    apt.deb(debian.APT_ARCHIVES / "openssl_3.0.11-1_amd64.deb", "openssl", "3.0.11-1")
    assert job(state, UPGRADE[:1]).success
    (debian.APT_ARCHIVES / "openssl_3.0.11-1_amd64.deb").unlink()  # apt-get autoclean
    apt.set(available={"openssl": ["3.0.13-1"]})
    out = job(state, UPGRADE[:1], job_id="j2", rollback_of=DEP)
    assert out.success, out
    cached = state.packages_dir / "debs" / "openssl_3.0.11-1.deb"
    assert apt.changes()[-1] == ["apt-get", "install", "-y", "--allow-downgrades", str(cached)]
    assert apt.installed["openssl"] == "3.0.11-1"


def test_rollback_removes_only_what_the_deployment_newly_installed(tmp_path: Path, apt: FakeDebian) -> None:
    state = StateDir(tmp_path / "state")
    apt.set(available={"newtool": ["1.0"], "openssl": ["3.0.11-1"]},
            depends={"newtool": {"libnew": "2.0", "openssl": "3.0.11-1"}})
    out = job(state, [{"name": "newtool", "version": "1.0"}])
    assert out.success, out
    assert apt.installed == {"openssl": "3.0.11-1", "libc6": "2.36-9", "bash": "5.2.15-2", "newtool": "1.0",
                             "libnew": "2.0"}
    out = job(state, [{"name": "newtool", "version": "1.0"}], job_id="j2", rollback_of=DEP)
    assert out.success, out
    assert apt.installed == {"openssl": "3.0.11-1", "libc6": "2.36-9", "bash": "5.2.15-2"}
    assert apt.changes()[-1] == ["apt-get", "install", "-y", "--allow-downgrades", "libnew-", "newtool-"]


def test_rollback_refuses_when_apt_would_remove_a_package_that_was_there_before(tmp_path: Path, apt: FakeDebian) -> None:
    state = StateDir(tmp_path / "state")
    apt.set(available={"newtool": ["1.0"]})
    assert job(state, [{"name": "newtool", "version": "1.0"}]).success
    apt.set(installed={**apt.installed, "oldapp": "1"}, rdepends={"newtool": ["oldapp"]})  # came to depend on it
    n = len(apt.changes())
    out = job(state, [{"name": "newtool", "version": "1.0"}], job_id="j2", rollback_of=DEP)
    assert not out.success
    assert out.reason == f"restoring would also remove oldapp, installed before deployment {DEP}; nothing changed"
    assert len(apt.changes()) == n and "oldapp" in apt.installed and "newtool" in apt.installed


def test_a_package_changed_since_the_deployment_is_not_touched(tmp_path: Path, apt: FakeDebian) -> None:
    state = StateDir(tmp_path / "state")
    assert job(state, UPGRADE[:1]).success
    apt.set(installed={**apt.installed, "openssl": "3.0.14-1"})  # another deployment, or a person
    n = len(apt.changes())
    out = job(state, UPGRADE[:1], job_id="j2", rollback_of=DEP)
    assert not out.success and len(apt.changes()) == n
    assert out.reason == (f"openssl is 3.0.14-1, not 3.0.13-1 as deployment {DEP} left it: changed since, "
                          "not touched")


def test_a_retry_keeps_what_the_first_attempt_saw(tmp_path: Path, apt: FakeDebian) -> None:
    state = StateDir(tmp_path / "state")
    # Attempt 1 upgrades openssl, then asks for a libc6 version the sources do not have.
    packages = [{"name": "openssl", "version": "latest"}, {"name": "libc6", "version": "2.36-9+deb12u9"}]
    out = job(state, packages)
    assert not out.success and apt.installed["openssl"] == "3.0.13-1"
    apt.set(available={**apt.available,
                       "libc6": ["2.36-9", "2.36-9+deb12u4", "2.36-9+deb12u9"]})
    assert job(state, packages, job_id="j1b").success  # attempt 2: openssl is already 3.0.13-1 now
    out = job(state, packages, job_id="j2", rollback_of=DEP)
    assert out.success, out
    assert apt.installed["openssl"] == "3.0.11-1" and apt.installed["libc6"] == "2.36-9"


def test_no_record_means_no_guess(tmp_path: Path, apt: FakeDebian) -> None:
    state = StateDir(tmp_path / "state")
    with pytest.raises(InstallError, match="no record of what was on this device before deployment dep-never"):
        job(state, UPGRADE, job_id="j2", rollback_of="dep-never")
    # The old action name is accepted; a payload that names no deployment is refused, not guessed.
    with pytest.raises(InstallError, match="does not name the deployment it reverts"):
        job(state, UPGRADE, job_id="j3", action="uninstall")
    assert apt.changes() == []


def test_apts_archive_is_found_for_a_version_with_an_epoch(tmp_path: Path, apt: FakeDebian) -> None:
    # apt names the file of 1:1.16.5-1.3 automake_1%3a1.16.5-1.3_all.deb
    archived = apt.deb(debian.APT_ARCHIVES / "automake_1%3a1.16.5-1.3_all.deb", "automake", "1:1.16.5-1.3")
    apt.deb(debian.APT_ARCHIVES / "automake_1%3a1.16.5-1.4_all.deb", "automake", "1:1.16.5-1.4")
    assert debian.archived_deb("automake", "1:1.16.5-1.3") == archived
    assert debian.archived_deb("automake", "1.16.5-1.3") is None

"""The software installer: portable tar.gz packages, files and real .deb packages, installed and rolled
back to what was there before."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
import uuid
from pathlib import Path
from typing import Any

import pytest

from agent.installers import InstallError, JobContext, deb, debian, software
from agent.state import StateDir
from tests.unit.fake_debian import FakeDebian

INSTALL_SH = 'echo "installed $CONVOY_JOB_ID" > "$MARKER"; echo install-ran\n'
UNINSTALL_SH = 'rm -f "$MARKER"; echo uninstall-ran\n'


def portable(path: Path, manifest: dict[str, Any] | None, extra: dict[str, str] | None = None) -> Path:
    files = dict(extra or {})
    if manifest is not None:
        files["convoy-manifest.json"] = json.dumps(manifest)
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            info = tarfile.TarInfo(name)
            data = text.encode()
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    return path


def ctx(state: StateDir, payload: dict[str, Any], artifact: Path | None = None, job: str = "j1",
        deployment: str = "d") -> JobContext:
    return JobContext(job_id=job, deployment_id=deployment, device_id="dev", attempt=1, payload=payload, state=state,
                      timeout_seconds=30, artifact=artifact)


def rollback(artifact: dict[str, Any], reverts: str = "d", **extra: Any) -> dict[str, Any]:
    """The payload of a rollback job (docs/protocol.md)."""
    return {"artifact": artifact, "action": "rollback", "revertsDeploymentId": reverts, **extra}


def test_portable_package_install_then_rollback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "marker"
    monkeypatch.setenv("MARKER", str(marker))
    state = StateDir(tmp_path / "state")
    arc = portable(tmp_path / "tool.tar.gz",
                   {"name": "tool", "version": "1.2.0", "install": ["sh", "install.sh"], "uninstall": ["sh", "uninstall.sh"]},
                   {"install.sh": INSTALL_SH, "uninstall.sh": UNINSTALL_SH, "bin/tool": "#!/bin/sh\necho tool\n"})
    artifact = {"sha256": "ab" * 32, "size": arc.stat().st_size, "name": "tool.tar.gz", "kind": "tar.gz"}

    out = software.run(ctx(state, {"artifact": artifact, "action": "install"}, arc))
    assert out.success, out
    assert "install-ran" in out.output and marker.read_text() == "installed j1\n"
    installed = state.packages_dir / "tool" / "1.2.0"
    assert (installed / "bin" / "tool").exists()
    record = software.load_record(ctx(state, {}))
    assert record["tar.gz:tool"]["version"] == "1.2.0" and record["tar.gz:tool"]["path"] == str(installed)

    # Rollback names the deployment it reverts: its pre-state record says there was nothing before.
    out = software.run(ctx(state, rollback(artifact), job="j2", deployment="rb"))
    assert out.success, out
    assert "uninstall-ran" in out.output and not marker.exists() and not installed.exists()
    assert software.load_record(ctx(state, {})) == {}


def test_failed_install_command_leaves_nothing_recorded(tmp_path: Path) -> None:
    state = StateDir(tmp_path / "state")
    arc = portable(tmp_path / "bad.tar.gz", {"name": "bad", "version": "1", "install": ["sh", "-c", "echo nope; exit 7"]})
    out = software.run(ctx(state, {"artifact": {"kind": "tar.gz", "sha256": "00" * 32}, "action": "install"}, arc))
    assert not out.success and out.exit_code == 7 and out.reason == "install command exit code 7"
    assert not (state.packages_dir / "bad" / "1").exists() and software.load_record(ctx(state, {})) == {}


def test_an_archive_with_dotdot_is_refused_and_nothing_installed(tmp_path: Path) -> None:
    state = StateDir(tmp_path / "state")
    arc = portable(tmp_path / "evil.tar.gz", {"name": "evil", "version": "1", "install": ["true"]},
                   {"../../escaped.txt": "x"})
    out = software.run(ctx(state, {"artifact": {"kind": "tar.gz"}, "action": "install"}, arc))
    assert not out.success and "archive refused" in out.reason and "'../../escaped.txt'" in out.reason
    assert not (tmp_path / "escaped.txt").exists() and not (state.packages_dir / "evil").exists()


@pytest.mark.parametrize("manifest,message", [
    (None, "holds no convoy-manifest.json"),
    ({"name": "../x", "version": "1"}, "'name' must be a plain name"),
    ({"name": "x", "version": "1", "install": "make install"}, "'install' must be a list of strings"),
])
def test_bad_manifests(tmp_path: Path, manifest: dict[str, Any] | None, message: str) -> None:
    arc = portable(tmp_path / "m.tar.gz", manifest, {"README": "hi"})
    with pytest.raises(InstallError, match=message):
        software.run(ctx(StateDir(tmp_path / "state"), {"artifact": {"kind": "tar.gz"}, "action": "install"}, arc))


def test_rolling_back_what_never_ran_here_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(InstallError, match="no record of what was on this device before deployment d "):
        software.run(ctx(StateDir(tmp_path / "state"), rollback({"kind": "tar.gz"}, packageName="ghost"),
                         deployment="rb"))
    # The old action name still means rollback, and without the deployment it reverts nothing is guessed.
    with pytest.raises(InstallError, match="does not name the deployment it reverts"):
        software.run(ctx(StateDir(tmp_path / "state"), {"artifact": {"kind": "file"}, "action": "uninstall"}))


def test_plain_file_artifact(tmp_path: Path) -> None:
    state = StateDir(tmp_path / "state")
    blob = tmp_path / "blob"
    blob.write_bytes(b"payload")
    art = {"kind": "file", "name": "config.bin", "sha256": "cd" * 32}
    assert software.run(ctx(state, {"artifact": art, "action": "install"}, blob)).success
    assert (state.packages_dir / "files" / "config.bin").read_bytes() == b"payload"
    assert software.run(ctx(state, rollback(art), deployment="rb")).success
    assert not (state.packages_dir / "files" / "config.bin").exists()


def _deb_skip_reason() -> str | None:
    if shutil.which("dpkg-deb") is None or shutil.which("dpkg") is None:
        return "dpkg-deb/dpkg not available: not a Debian-family host"
    if os.geteuid() != 0:
        return "installing a .deb needs root"
    return None


@pytest.mark.skipif(_deb_skip_reason() is not None, reason=_deb_skip_reason() or "")
def test_deb_install_then_rollback(tmp_path: Path) -> None:
    name = f"convoy-selftest-{uuid.uuid4().hex[:8]}"
    root = tmp_path / "pkg"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "usr" / "share" / name).mkdir(parents=True)
    (root / "usr" / "share" / name / "marker").write_text("deb installed\n")
    (root / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: 1.0-1\nArchitecture: all\nMaintainer: Convoy Tests <t@example.com>\n"
        "Description: convoy installer self-test\n")
    deb = tmp_path / f"{name}.deb"
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(root), str(deb)], check=True, capture_output=True)
    state = StateDir(tmp_path / "state")
    art = {"kind": "deb", "sha256": "ef" * 32, "name": deb.name}
    try:
        out = software.run(ctx(state, {"artifact": art, "action": "install"}, deb))
        assert out.success, out
        assert Path(f"/usr/share/{name}/marker").read_text() == "deb installed\n"
        assert software.load_record(ctx(state, {}))[f"deb:{name}"]["version"] == "1.0-1"
        # Not installed before the deployment: the rollback removes it.
        out = software.run(ctx(state, rollback(art), job="j2", deployment="rb"))
        assert out.success, out
        assert not Path(f"/usr/share/{name}/marker").exists()
    finally:
        subprocess.run(["dpkg", "--purge", name], capture_output=True)


def test_deb_refused_without_dpkg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no dpkg on this PATH
    blob = tmp_path / "x.deb"
    blob.write_bytes(b"!<arch>")
    with pytest.raises(InstallError, match="dpkg is not available"):
        software.run(ctx(StateDir(tmp_path / "state"), {"artifact": {"kind": "deb"}, "action": "install"}, blob))


# --- rollback restores what was there before --------------------------------------------------

VERSIONED_SH = 'echo "$1" > "$MARKER"\n'


def tool(tmp_path: Path, version: str) -> tuple[Path, dict[str, Any]]:
    """A portable package `tool` whose install writes its version to $MARKER and uninstall removes it."""
    arc = portable(tmp_path / f"tool-{version}.tar.gz",
                   {"name": "tool", "version": version, "install": ["sh", "install.sh", version],
                    "uninstall": ["sh", "-c", 'rm -f "$MARKER"']},
                   {"install.sh": VERSIONED_SH})
    return arc, {"sha256": version * 8, "name": arc.name, "kind": "tar.gz"}


def test_portable_upgrade_rollback_installs_the_previous_version_again(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "marker"
    monkeypatch.setenv("MARKER", str(marker))
    state = StateDir(tmp_path / "state")
    (arc1, art1), (arc2, art2) = tool(tmp_path, "1.0"), tool(tmp_path, "2.0")
    assert software.run(ctx(state, {"artifact": art1, "action": "install"}, arc1, deployment="d1")).success
    entry_v1 = software.load_record(ctx(state, {}))["tar.gz:tool"]
    assert software.run(ctx(state, {"artifact": art2, "action": "install"}, arc2, job="j2", deployment="d2")).success
    assert marker.read_text() == "2.0\n"

    out = software.run(ctx(state, rollback(art2, "d2"), job="j3", deployment="rb2"))
    assert out.success, out
    assert marker.read_text() == "1.0\n" and "tool 1.0 installed again" in out.output
    assert not (state.packages_dir / "tool" / "2.0").exists()
    assert software.load_record(ctx(state, {}))["tar.gz:tool"] == entry_v1
    # Then the first deployment's rollback: nothing was there before it.
    assert software.run(ctx(state, rollback(art1, "d1"), job="j4", deployment="rb1")).success
    assert not marker.exists() and software.load_record(ctx(state, {})) == {}


def test_portable_reinstall_of_the_same_version_gives_the_old_copy_back(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARKER", str(tmp_path / "marker"))
    state = StateDir(tmp_path / "state")
    arc, art = tool(tmp_path, "1.0")
    assert software.run(ctx(state, {"artifact": art, "action": "install"}, arc, deployment="d1")).success
    copy = state.packages_dir / "tool" / "1.0"
    (copy / "local-data").write_text("kept\n")  # what the package's copy held before the second deployment
    assert software.run(ctx(state, {"artifact": art, "action": "install"}, arc, job="j2", deployment="d2")).success
    assert not (copy / "local-data").exists()
    out = software.run(ctx(state, rollback(art, "d2"), job="j3", deployment="rb2"))
    assert out.success, out
    assert (copy / "local-data").read_text() == "kept\n" and (tmp_path / "marker").read_text() == "1.0\n"


def test_portable_rollback_fails_and_keeps_the_new_version_when_the_old_copy_is_gone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "marker"
    monkeypatch.setenv("MARKER", str(marker))
    state = StateDir(tmp_path / "state")
    (arc1, art1), (arc2, art2) = tool(tmp_path, "1.0"), tool(tmp_path, "2.0")
    assert software.run(ctx(state, {"artifact": art1, "action": "install"}, arc1, deployment="d1")).success
    assert software.run(ctx(state, {"artifact": art2, "action": "install"}, arc2, job="j2", deployment="d2")).success
    shutil.rmtree(state.packages_dir / "tool" / "1.0")
    out = software.run(ctx(state, rollback(art2, "d2"), job="j3", deployment="rb2"))
    assert not out.success
    assert out.reason == (f"cannot restore tool 1.0: its installed copy {state.packages_dir / 'tool' / '1.0'} "
                          "is gone; left 2.0 installed")
    assert marker.read_text() == "2.0\n" and software.load_record(ctx(state, {}))["tar.gz:tool"]["version"] == "2.0"


def test_file_rollback_gives_back_what_the_file_held(tmp_path: Path) -> None:
    state = StateDir(tmp_path / "state")
    art = {"kind": "file", "name": "config.bin", "sha256": "cd" * 32}
    target = state.packages_dir / "files" / "config.bin"
    for n, body in ((1, b"first"), (2, b"second")):
        blob = tmp_path / f"blob{n}"
        blob.write_bytes(body)
        assert software.run(ctx(state, {"artifact": art, "action": "install"}, blob, job=f"j{n}",
                                deployment=f"d{n}")).success
    entry_1 = software.load_record(ctx(state, {}))["file:config.bin"]
    assert entry_1["job_id"] == "j2" and target.read_bytes() == b"second"
    out = software.run(ctx(state, rollback(art, "d2"), job="j3", deployment="rb2"))
    assert out.success, out
    assert target.read_bytes() == b"first" and software.load_record(ctx(state, {}))["file:config.bin"]["job_id"] == "j1"
    # Changed by something else since the deployment wrote it: not touched.
    target.write_bytes(b"edited")
    out = software.run(ctx(state, rollback(art, "d1"), job="j4", deployment="rb1"))
    assert not out.success and "changed since, not touched" in out.reason and target.read_bytes() == b"edited"


# --- .deb against a fake dpkg/apt (tests/unit/fake_debian.py) -------------------------------------

@pytest.fixture
def fake_debian(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeDebian:
    fake = FakeDebian(tmp_path / "debian")
    for key, value in fake.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(debian, "APT_ARCHIVES", tmp_path / "no-archives")
    return fake


def deb_job(state: StateDir, fake: FakeDebian, tmp_path: Path, version: str, deployment: str) -> Any:
    blob = fake.deb(tmp_path / f"demo_{version}.deb", "demo", version)
    art = {"kind": "deb", "sha256": version.replace(".", "") * 16, "name": blob.name}
    return software.run(ctx(state, {"artifact": art, "action": "install"}, blob, job=f"j-{deployment}",
                            deployment=deployment))


DEB_ART = {"kind": "deb", "sha256": "00" * 32, "name": "demo.deb"}


def test_deb_upgrade_rollback_reinstalls_the_previous_version_from_convoys_cache(
        tmp_path: Path, fake_debian: FakeDebian) -> None:
    state = StateDir(tmp_path / "state")
    assert deb_job(state, fake_debian, tmp_path, "1.0", "d1").success
    out = deb_job(state, fake_debian, tmp_path, "2.0", "d2")
    assert out.success and out.output.startswith("demo: 1.0 -> 2.0"), out
    assert "note:" not in out.output  # 1.0 is in convoy's cache
    (tmp_path / "demo_1.0.deb").unlink()  # the upload is long gone; convoy kept its own copy

    out = software.run(ctx(state, rollback(DEB_ART, "d2"), job="j3", deployment="rb2"))
    assert out.success, out
    assert fake_debian.installed == {"demo": "1.0"}
    assert fake_debian.changes()[-1] == ["dpkg", "-i", str(state.packages_dir / "debs" / "demo_1.0.deb")]
    assert software.load_record(ctx(state, {}))["deb:demo"]["version"] == "1.0"
    out = software.run(ctx(state, rollback(DEB_ART, "d1"), job="j4", deployment="rb1"))
    assert out.success and fake_debian.installed == {} and fake_debian.changes()[-1] == ["dpkg", "-r", "demo"]


def test_deb_upgrade_of_a_package_convoy_did_not_install_is_never_removed(
        tmp_path: Path, fake_debian: FakeDebian) -> None:
    state = StateDir(tmp_path / "state")
    fake_debian.set(installed={"demo": "1.0"})  # installed by hand, from a .deb nobody kept
    out = deb_job(state, fake_debian, tmp_path, "2.0", "d1")
    assert out.success, out
    # The forward job already says so.
    assert ("note: a rollback could not restore demo 1.0: that version is not in convoy's cache, apt's "
            "archive or the package sources") in out.output.splitlines()
    n = len(fake_debian.changes())
    out = software.run(ctx(state, rollback(DEB_ART, "d1"), job="j2", deployment="rb1"))
    assert not out.success
    assert out.reason == ("cannot restore demo 1.0: that version is not in convoy's package cache, apt's archive "
                          "or the package sources; left 2.0 installed")
    assert fake_debian.installed == {"demo": "2.0"} and len(fake_debian.changes()) == n

    # Once the sources offer 1.0, the same rollback job (a retry) downgrades through apt.
    fake_debian.set(available={"demo": ["1.0", "2.0"]})
    out = software.run(ctx(state, rollback(DEB_ART, "d1"), job="j3", deployment="rb1"))
    assert out.success, out
    assert fake_debian.changes()[-1] == ["apt-get", "install", "-y", "--allow-downgrades", "demo=1.0"]
    assert fake_debian.installed == {"demo": "1.0"} and "deb:demo" not in software.load_record(ctx(state, {}))


def test_the_deb_cache_is_bounded(tmp_path: Path, fake_debian: FakeDebian) -> None:
    state = StateDir(tmp_path / "state")
    for n in range(1, 6):
        assert deb_job(state, fake_debian, tmp_path, f"{n}.0", f"d{n}").success
        os.utime(state.packages_dir / "debs" / f"demo_{n}.0.deb", (n, n))  # mtime order = install order
    assert sorted(p.name for p in (state.packages_dir / "debs").iterdir()) == [
        "demo_3.0.deb", "demo_4.0.deb", "demo_5.0.deb"]


def test_a_failed_reinstall_leaves_the_copy_that_was_there(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARKER", str(tmp_path / "marker"))
    state = StateDir(tmp_path / "state")
    arc, art = tool(tmp_path, "1.0")
    assert software.run(ctx(state, {"artifact": art, "action": "install"}, arc, deployment="d1")).success
    copy = state.packages_dir / "tool" / "1.0"
    (copy / "local-data").write_text("kept\n")
    entry = software.load_record(ctx(state, {}))["tar.gz:tool"]
    broken = portable(tmp_path / "broken.tar.gz", {"name": "tool", "version": "1.0", "install": ["sh", "-c", "exit 4"]})
    out = software.run(ctx(state, {"artifact": art, "action": "install"}, broken, job="j2", deployment="d2"))
    assert not out.success and out.reason == "install command exit code 4"
    assert (copy / "local-data").read_text() == "kept\n" and software.load_record(ctx(state, {}))["tar.gz:tool"] == entry


def test_deb_waits_for_the_dpkg_lock(tmp_path: Path, fake_debian: FakeDebian, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deb, "LOCK_POLL", 0.01)
    fake_debian.set(locked=2)  # unattended-upgrades is busy for a moment
    out = deb_job(StateDir(tmp_path / "state"), fake_debian, tmp_path, "1.0", "d1")
    assert out.success, out
    assert fake_debian.installed == {"demo": "1.0"}
    assert [c for c in fake_debian.log if c[0] == "dpkg"] == [["dpkg", "-i", str(tmp_path / "demo_1.0.deb")]] * 3

"""The software installer: portable tar.gz packages (install, record, uninstall) and real .deb packages."""

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

from agent.installers import InstallError, JobContext, software
from agent.state import StateDir

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


def ctx(state: StateDir, payload: dict[str, Any], artifact: Path | None = None, job: str = "j1") -> JobContext:
    return JobContext(job_id=job, deployment_id="d", device_id="dev", attempt=1, payload=payload, state=state,
                      timeout_seconds=30, artifact=artifact)


def test_portable_package_install_then_uninstall(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
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

    # Rollback names the artifact only: the record says which package that was.
    out = software.run(ctx(state, {"artifact": artifact, "action": "uninstall"}, job="j2"))
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


def test_uninstalling_what_was_never_installed_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(InstallError, match="not installed by convoy"):
        software.run(ctx(StateDir(tmp_path / "state"), {"artifact": {"kind": "tar.gz"}, "packageName": "ghost",
                                                        "action": "uninstall"}))


def test_plain_file_artifact(tmp_path: Path) -> None:
    state = StateDir(tmp_path / "state")
    blob = tmp_path / "blob"
    blob.write_bytes(b"payload")
    art = {"kind": "file", "name": "config.bin", "sha256": "cd" * 32}
    assert software.run(ctx(state, {"artifact": art, "action": "install"}, blob)).success
    assert (state.packages_dir / "files" / "config.bin").read_bytes() == b"payload"
    assert software.run(ctx(state, {"artifact": art, "action": "uninstall"})).success
    assert not (state.packages_dir / "files" / "config.bin").exists()


def _deb_skip_reason() -> str | None:
    if shutil.which("dpkg-deb") is None or shutil.which("dpkg") is None:
        return "dpkg-deb/dpkg not available: not a Debian-family host"
    if os.geteuid() != 0:
        return "installing a .deb needs root"
    return None


@pytest.mark.skipif(_deb_skip_reason() is not None, reason=_deb_skip_reason() or "")
def test_deb_install_then_uninstall(tmp_path: Path) -> None:
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
        # Uninstall by the artifact alone (what a rollback sends): the record names the package.
        out = software.run(ctx(state, {"artifact": art, "action": "uninstall"}, job="j2"))
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

"""The software installer: an uploaded artifact installed by its kind.

- `deb`: `dpkg -i` on Debian-family hosts (root only); uninstall is `dpkg -r <packageName>`.
- `tar.gz`: the portable package format. The archive holds `convoy-manifest.json`:
  `{"name", "version", "install": [argv], "uninstall": [argv]}`. It is extracted safely into
  `<state>/packages/<name>/<version>` and `install` runs there; uninstall runs the manifest's
  `uninstall` from that installed copy and removes it.
- `file`: the artifact is kept as `<state>/packages/files/<name>`; uninstall removes it.

Every successful install is recorded in `<state>/packages/installed.json`, so an uninstall
(what a rollback runs) knows what was installed even when the payload names only the artifact.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from agent.archive import UnsafeArchive, safe_extract
from agent.installers.base import (
    CommandResult,
    InstallError,
    JobContext,
    Outcome,
    outcome_of,
    run_command,
)
from agent.state import atomic_write
from common.clock import utcnow

MANIFEST = "convoy-manifest.json"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")


# --- the record of installed packages ------------------------------------------------------

def _record_path(ctx: JobContext) -> Path:
    return ctx.state.packages_dir / "installed.json"


def load_record(ctx: JobContext) -> dict[str, dict[str, Any]]:
    path = _record_path(ctx)
    if not path.exists():
        return {}
    data: dict[str, dict[str, Any]] = json.loads(path.read_text()).get("packages", {})
    return data


def _save_record(ctx: JobContext, record: dict[str, dict[str, Any]]) -> None:
    atomic_write(_record_path(ctx), json.dumps({"packages": record}, indent=1, sort_keys=True).encode(), 0o600)


def _find(ctx: JobContext, kind: str, name: str, sha256: str) -> tuple[str, dict[str, Any]] | None:
    """The record entry for this uninstall: by package name, else by the artifact's sha256."""
    record = load_record(ctx)
    if name and f"{kind}:{name}" in record:
        return f"{kind}:{name}", record[f"{kind}:{name}"]
    for key, entry in record.items():
        if entry.get("kind") == kind and sha256 and entry.get("sha256") == sha256:
            return key, entry
    return None


def _remember(ctx: JobContext, kind: str, name: str, **fields: Any) -> None:
    record = load_record(ctx)
    record[f"{kind}:{name}"] = {"kind": kind, "name": name, "installed_at": utcnow().isoformat(),
                                "job_id": ctx.job_id, **fields}
    _save_record(ctx, record)


def _forget(ctx: JobContext, key: str) -> None:
    record = load_record(ctx)
    record.pop(key, None)
    _save_record(ctx, record)


# --- entry point ---------------------------------------------------------------------------

def run(ctx: JobContext) -> Outcome:
    artifact = ctx.payload.get("artifact") or {}
    if not isinstance(artifact, dict):
        raise InstallError("payload field 'artifact' must be an object")
    kind = str(artifact.get("kind") or "")
    action = str(ctx.payload.get("action") or "install")
    if action not in ("install", "uninstall"):
        raise InstallError(f"unknown software action {action!r} (install, uninstall)")
    handlers = {"deb": (_deb_install, _deb_uninstall), "tar.gz": (_tar_install, _tar_uninstall),
                "file": (_file_install, _file_uninstall)}
    if kind not in handlers:
        raise InstallError(f"unknown artifact kind {kind!r} (deb, tar.gz, file)")
    install, uninstall = handlers[kind]
    if action == "install":
        if ctx.artifact is None:
            raise InstallError("no verified artifact to install")
        return install(ctx, artifact)
    return uninstall(ctx, artifact)


def needs_artifact(payload: dict[str, Any]) -> bool:
    return str(payload.get("action") or "install") == "install"


# --- deb -----------------------------------------------------------------------------------

def _dpkg_ready() -> None:
    if shutil.which("dpkg") is None:
        raise InstallError("dpkg is not available: .deb packages install only on Debian-family hosts")
    if os.geteuid() != 0:
        raise InstallError("installing a .deb needs root: the agent runs as an unprivileged user")


def _deb_install(ctx: JobContext, artifact: dict[str, Any]) -> Outcome:
    _dpkg_ready()
    assert ctx.artifact is not None
    probe = run_command(["dpkg-deb", "-f", str(ctx.artifact), "Package", "Version"], timeout=60)
    if probe.exit_code != 0:
        return Outcome(False, probe.exit_code, probe.output, "artifact is not a valid .deb package")
    fields = dict(line.split(": ", 1) for line in probe.output.splitlines() if ": " in line)
    package = fields.get("Package", "").strip()
    result = run_command(["dpkg", "-i", str(ctx.artifact)], timeout=ctx.timeout, env=_noninteractive(ctx))
    outcome = outcome_of(result, ctx.timeout, "dpkg -i exit code")
    if outcome.success and package:
        _remember(ctx, "deb", package, version=fields.get("Version", "").strip(),
                  sha256=artifact.get("sha256", ""))
    return outcome


def _deb_uninstall(ctx: JobContext, artifact: dict[str, Any]) -> Outcome:
    _dpkg_ready()
    name = str(ctx.payload.get("packageName") or "")
    found = _find(ctx, "deb", name, str(artifact.get("sha256") or ""))
    package = name or (found[1]["name"] if found else "")
    if not package or not _SAFE_NAME.match(package):
        raise InstallError("payload names no packageName to uninstall and no recorded install matches the artifact")
    result = run_command(["dpkg", "-r", package], timeout=ctx.timeout, env=_noninteractive(ctx))
    outcome = outcome_of(result, ctx.timeout, "dpkg -r exit code")
    if outcome.success and found:
        _forget(ctx, found[0])
    return outcome


def _noninteractive(ctx: JobContext) -> dict[str, str]:
    return {**ctx.env(), "DEBIAN_FRONTEND": "noninteractive"}


# --- tar.gz (portable package) -------------------------------------------------------------

def _argv(manifest: dict[str, Any], key: str) -> list[str]:
    value = manifest.get(key, [])
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        raise InstallError(f"{MANIFEST}: {key!r} must be a list of strings (an argv)")
    return value


def read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    if not path.is_file():
        raise InstallError(f"the archive holds no {MANIFEST} at its top level")
    try:
        manifest = json.loads(path.read_text())
    except ValueError as exc:
        raise InstallError(f"{MANIFEST} is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict):
        raise InstallError(f"{MANIFEST} must be a JSON object")
    for key in ("name", "version"):
        value = manifest.get(key)
        if not isinstance(value, str) or not _SAFE_NAME.match(value):
            raise InstallError(f"{MANIFEST}: {key!r} must be a plain name (letters, digits, . _ + -)")
    _argv(manifest, "install")
    _argv(manifest, "uninstall")
    return manifest


def _run_manifest(ctx: JobContext, argv: list[str], where: Path) -> CommandResult | None:
    if not argv:
        return None
    env = {**ctx.env(), "CONVOY_PACKAGE_DIR": str(where)}
    return run_command(argv, timeout=ctx.timeout, cwd=where, env=env)


def _tar_install(ctx: JobContext, artifact: dict[str, Any]) -> Outcome:
    assert ctx.artifact is not None
    staging = ctx.state.packages_dir / f".staging-{ctx.job_id}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        try:
            safe_extract(ctx.artifact, staging)
        except UnsafeArchive as exc:
            return Outcome(False, None, "", f"archive refused: {exc}")
        manifest = read_manifest(staging)
        name, version = manifest["name"], manifest["version"]
        target = ctx.state.packages_dir / name / version
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    result = _run_manifest(ctx, _argv(manifest, "install"), target)
    if result is None:
        outcome = Outcome(True, None, f"{name} {version} unpacked into {target}", "")
    else:
        outcome = outcome_of(result, ctx.timeout, "install command exit code")
    if outcome.success:
        _remember(ctx, "tar.gz", name, version=version, path=str(target), sha256=artifact.get("sha256", ""))
    else:
        shutil.rmtree(target, ignore_errors=True)
    return outcome


def _tar_uninstall(ctx: JobContext, artifact: dict[str, Any]) -> Outcome:
    name = str(ctx.payload.get("packageName") or "")
    found = _find(ctx, "tar.gz", name, str(artifact.get("sha256") or ""))
    if found is None:
        raise InstallError(f"package {name or artifact.get('sha256', '?')} is not installed by convoy on this device")
    key, entry = found
    target = Path(entry["path"])
    manifest = read_manifest(target)
    result = _run_manifest(ctx, _argv(manifest, "uninstall"), target)
    outcome = (Outcome(True, None, f"{entry['name']} {entry['version']} removed", "") if result is None
               else outcome_of(result, ctx.timeout, "uninstall command exit code"))
    if outcome.success:
        shutil.rmtree(target, ignore_errors=True)
        _forget(ctx, key)
    return outcome


# --- plain file ----------------------------------------------------------------------------

def _file_install(ctx: JobContext, artifact: dict[str, Any]) -> Outcome:
    assert ctx.artifact is not None
    name = str(artifact.get("name") or "")
    if not _SAFE_NAME.match(name):
        raise InstallError("a file artifact needs a plain 'name' (letters, digits, . _ + -)")
    target = ctx.state.packages_dir / "files" / name
    atomic_write(target, ctx.artifact.read_bytes(), mode=0o644)
    _remember(ctx, "file", name, path=str(target), sha256=artifact.get("sha256", ""))
    return Outcome(True, None, f"stored {target}", "")


def _file_uninstall(ctx: JobContext, artifact: dict[str, Any]) -> Outcome:
    name = str(ctx.payload.get("packageName") or artifact.get("name") or "")
    found = _find(ctx, "file", name, str(artifact.get("sha256") or ""))
    if found is None:
        raise InstallError(f"file {name or '?'} is not installed by convoy on this device")
    Path(found[1]["path"]).unlink(missing_ok=True)
    _forget(ctx, found[0])
    return Outcome(True, None, f"removed {found[1]['path']}", "")


"""The software installer: an uploaded artifact installed by its kind, and rolled back to what
was there before.

- `deb`: `dpkg -i` on Debian-family hosts (root only); see agent/installers/deb.py.
- `tar.gz`: the portable package format. The archive holds `convoy-manifest.json`:
  `{"name", "version", "install": [argv], "uninstall": [argv]}`. It is extracted safely into
  `<state>/packages/<name>/<version>` and `install` runs there.
- `file`: the artifact is kept as `<state>/packages/files/<name>`.

Every successful install is recorded in `<state>/packages/installed.json`
(agent/installers/installed.py). Before an install changes anything, what was there is recorded
for the deployment (agent/installers/prestate.py): the convoy entry it replaces, and a copy of
what was at the target path. A rollback (`action: rollback`, or the old name `uninstall`)
names the deployment it reverts and restores that: it uninstalls what the deployment put there,
then gives back the previous package (re-running its install from its kept copy) or file, and
fails without touching anything when that is gone or the device changed since.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.archive import UnsafeArchive, safe_extract
from agent.installers import deb, installed
from agent.installers.base import (
    CommandResult,
    InstallError,
    JobContext,
    Outcome,
    outcome_of,
    run_command,
)
from agent.installers.installed import load_record
from agent.installers.prestate import PreState, PreStateStore, reverted_deployment
from agent.state import atomic_write

MANIFEST = "convoy-manifest.json"
ROLLBACK_ACTIONS = ("rollback", "uninstall")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")

__all__ = ["MANIFEST", "load_record", "read_manifest", "run"]


# --- entry point ---------------------------------------------------------------------------

def run(ctx: JobContext) -> Outcome:
    artifact = ctx.payload.get("artifact") or {}
    if not isinstance(artifact, dict):
        raise InstallError("payload field 'artifact' must be an object")
    kind = str(artifact.get("kind") or "")
    action = str(ctx.payload.get("action") or ("rollback" if ctx.rollback else "install"))
    if action not in ("install", *ROLLBACK_ACTIONS):
        raise InstallError(f"unknown software action {action!r} (install, rollback)")
    handlers = {"deb": (deb.install, deb.rollback), "tar.gz": (_tar_install, _tar_rollback),
                "file": (_file_install, _file_rollback)}
    if kind not in handlers:
        raise InstallError(f"unknown artifact kind {kind!r} (deb, tar.gz, file)")
    install, rollback = handlers[kind]
    if action == "install":
        if ctx.artifact is None:
            raise InstallError("no verified artifact to install")
        return install(ctx, artifact)
    record = PreStateStore(ctx.state).require(reverted_deployment(ctx.payload), kind)
    return rollback(ctx, record)


@dataclass(frozen=True)
class TarDetails:
    """What a tar.gz deployment's pre-state record holds besides the versions."""

    name: str
    version: str
    previous_entry: dict[str, Any] | None = None
    """convoy's installed.json entry for the package before (an earlier version, or this one)."""
    saved_copy: str = ""
    """Where what was at `packages/<name>/<version>` was moved aside; empty: nothing was there."""
    placed: bool = False
    """The deployment's own copy is at that path (a retry replaces it rather than saving it)."""


@dataclass(frozen=True)
class FileDetails:
    """What a file deployment's pre-state record holds besides the sha256 before and after."""

    name: str
    previous_entry: dict[str, Any] | None = None
    """convoy's installed.json entry for the file before."""
    saved_copy: str = ""
    """A copy of what the file held before; empty: there was no file."""
    saved_mode: int = 0o644


def _changed_since(record: PreState, what: str, now: str, left: str) -> Outcome:
    reason = (f"{what} is {now}, not {left} as deployment {record.deployment_id} left it: "
              "changed since, not touched")
    return Outcome(False, None, reason, reason)


def _cannot(reason: str) -> Outcome:
    return Outcome(False, None, reason, reason)


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
        store = PreStateStore(ctx.state)
        previous = installed.entry(ctx, "tar.gz", name)
        record, _ = store.record_before(ctx.deployment_id, "tar.gz", ctx.job_id,
                                        {name: previous.get("version") if previous else None},
                                        TarDetails(name, version, previous))
        if target.exists():
            if record.details_as(TarDetails).placed:
                shutil.rmtree(target)  # an earlier attempt of this deployment, cut short
            else:
                # What is there (this version installed before, or a leftover) is moved aside,
                # not deleted, so a rollback or a failed install can put it back. Noted first:
                # a crash before the move leaves it in place, and the next attempt moves it.
                saved = store.copies(ctx.deployment_id) / f"tar.gz-{name}-{version}"
                record = store.save(record.with_details(saved_copy=str(saved)))
                shutil.rmtree(saved, ignore_errors=True)
                saved.parent.mkdir(parents=True, exist_ok=True)
                os.replace(target, saved)
        record = store.save(record.with_details(placed=True))
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
        installed.remember(ctx, "tar.gz", name, version=version, path=str(target), sha256=artifact.get("sha256", ""))
        store.save(record.ended({name: version}))
        return outcome
    # A failed install leaves what was there before in place.
    shutil.rmtree(target, ignore_errors=True)
    saved_copy = record.details_as(TarDetails).saved_copy
    if saved_copy and Path(saved_copy).is_dir():
        os.replace(saved_copy, target)
    store.save(record.with_details(saved_copy="", placed=False).ended({name: (previous or {}).get("version")}))
    return outcome


def _tar_rollback(ctx: JobContext, record: PreState) -> Outcome:
    details = record.details_as(TarDetails)
    name, version, previous = details.name, details.version, details.previous_entry
    saved = Path(details.saved_copy) if details.saved_copy else None
    target = ctx.state.packages_dir / name / version
    current = installed.entry(ctx, "tar.gz", name)
    store = PreStateStore(ctx.state)

    if current == previous:  # whole entries: a reinstall of the same version has a new job id
        store.save(record.restored())
        return Outcome(True, 0, f"nothing to restore: {name} is as it was before deployment {record.deployment_id}", "")
    if current is None or current.get("version") != version or current.get("path") != str(target):
        return _changed_since(record, f"{name}", f"{current['version'] if current else 'not installed by convoy'}",
                              version)
    # Check that what comes back is there before anything is removed.
    if saved is not None and not saved.is_dir():
        return _cannot(f"cannot restore {name}: the copy of what was at {target} before ({saved}) is gone; "
                       f"left {version} installed")
    prev_dir = Path(previous["path"]) if previous else None
    if prev_dir is not None and prev_dir != target and not (prev_dir / MANIFEST).is_file():
        return _cannot(f"cannot restore {name} {previous['version'] if previous else ''}: its installed copy "
                       f"{prev_dir} is gone; left {version} installed")
    if prev_dir == target and saved is None:
        return _cannot(f"cannot restore {name} {version} as it was: no copy of it was kept; left the "
                       "deployment's copy installed")
    result = _run_manifest(ctx, _argv(read_manifest(target), "uninstall"), target)
    removed = (Outcome(True, None, f"{name} {version} removed", "") if result is None
               else outcome_of(result, ctx.timeout, "uninstall command exit code"))
    if not removed.success:
        return removed
    shutil.rmtree(target, ignore_errors=True)
    installed.put(ctx, "tar.gz", name, None)
    if saved is not None:
        os.replace(saved, target)
    lines = [removed.output or f"{name} {version} removed"]
    if previous is not None and prev_dir is not None:
        again = _run_manifest(ctx, _argv(read_manifest(prev_dir), "install"), prev_dir)
        reinstalled = (Outcome(True, None, "", "") if again is None
                       else outcome_of(again, ctx.timeout, "install command exit code"))
        lines.append(f"{name} {previous['version']} installed again from {prev_dir}\n{reinstalled.output}")
        if not reinstalled.success:
            return Outcome(False, reinstalled.exit_code, "\n".join(lines),
                           f"{name} {version} removed, but installing {previous['version']} again failed: "
                           f"{reinstalled.reason}")
        installed.put(ctx, "tar.gz", name, previous)
    store.save(record.restored())
    return Outcome(True, 0, "\n".join(lines), "")


# --- plain file ----------------------------------------------------------------------------

def _sha256(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def _file_install(ctx: JobContext, artifact: dict[str, Any]) -> Outcome:
    assert ctx.artifact is not None
    name = str(artifact.get("name") or "")
    if not _SAFE_NAME.match(name):
        raise InstallError("a file artifact needs a plain 'name' (letters, digits, . _ + -)")
    target = ctx.state.packages_dir / "files" / name
    store = PreStateStore(ctx.state)
    details = FileDetails(name, installed.entry(ctx, "file", name))
    if store.load(ctx.deployment_id) is None and target.is_file():
        saved = store.copies(ctx.deployment_id) / f"file-{name}"
        atomic_write(saved, target.read_bytes(), mode=0o600)
        details = FileDetails(name, details.previous_entry, str(saved), target.stat().st_mode & 0o7777)
    record, _ = store.record_before(ctx.deployment_id, "file", ctx.job_id, {name: _sha256(target)}, details)
    atomic_write(target, ctx.artifact.read_bytes(), mode=0o644)
    installed.remember(ctx, "file", name, path=str(target), sha256=artifact.get("sha256", ""))
    store.save(record.ended({name: _sha256(target)}))
    return Outcome(True, None, f"stored {target}", "")


def _file_rollback(ctx: JobContext, record: PreState) -> Outcome:
    details = record.details_as(FileDetails)
    name = details.name
    target = ctx.state.packages_dir / "files" / name
    before, now = record.before.get(name), _sha256(target)
    store = PreStateStore(ctx.state)
    if now == before:
        store.save(record.restored())
        return Outcome(True, 0, f"nothing to restore: {target} is as it was before deployment {record.deployment_id}", "")
    if name in record.after and now != record.after[name]:
        return _changed_since(record, str(target), f"sha256 {now}" if now else "absent",
                              f"sha256 {record.after[name]}")
    if before is None:
        target.unlink(missing_ok=True)
        line = f"removed {target}"
    else:
        saved = Path(details.saved_copy)
        if not details.saved_copy or not saved.is_file():
            return _cannot(f"cannot restore {target}: the copy of what it held before is gone; left it as the "
                           "deployment wrote it")
        atomic_write(target, saved.read_bytes(), mode=details.saved_mode)
        line = f"restored {target} to what it held before deployment {record.deployment_id}"
    installed.put(ctx, "file", name, details.previous_entry)
    store.save(record.restored())
    return Outcome(True, None, line, "")

"""The policy installer: a versioned configuration document in the agent's local policy store.

    <state>/policy/<name>/versions/<version>.json   each applied document
    <state>/policy/<name>/state.json                active version, the stack of earlier ones,
                                                    and the original content of managed files

`apply` makes a version active and pushes the previous one on the stack; `restore` (what a
rollback runs) pops it back. Before an apply changes anything, the active version is also noted
in the deployment's pre-state record (agent/installers/prestate.py). A document may set:

    {"heartbeatIntervalSeconds": 30,
     "maintenanceWindows": ["Sat 01:00-05:00 Europe/Berlin"],
     "files": [{"path": "/etc/app.conf", "content": "…", "mode": "0644"}]}

Managed files are written atomically. A file that stops being managed (restore to a version
without it) gets back what it held before the policy first managed it, or is removed if it did
not exist. The effective agent settings are those of the active versions of every policy, the
most recently changed policy winning; `effective_settings` computes them for the daemon.
"""

from __future__ import annotations

import base64
import json
import os
import re
import stat
from pathlib import Path
from typing import Any

from agent.installers.base import InstallError, JobContext, Outcome
from agent.installers.prestate import PreStateStore
from agent.state import StateDir, atomic_write
from common.clock import utcnow
from common.maintenance import validate_windows

HISTORY_LIMIT = 10
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
SETTINGS = ("heartbeatIntervalSeconds", "maintenanceWindows")


def _mode(value: Any, path: str) -> int:
    if value is None:
        return 0o644
    try:
        mode = int(value, 8) if isinstance(value, str) else int(value)
    except (TypeError, ValueError):
        raise InstallError(f"file {path}: mode {value!r} is not an octal string or integer") from None
    if not 0 <= mode <= 0o7777:
        raise InstallError(f"file {path}: mode {value!r} out of range")
    return mode


def validate_document(doc: Any) -> dict[str, Any]:
    """The document with settings normalised; InstallError naming the first bad field."""
    if not isinstance(doc, dict):
        raise InstallError("policy document must be an object")
    out = dict(doc)
    hb = doc.get("heartbeatIntervalSeconds")
    if hb is not None:
        if isinstance(hb, bool) or not isinstance(hb, (int, float)) or not 1 <= hb <= 86400:
            raise InstallError("heartbeatIntervalSeconds must be a number of seconds between 1 and 86400")
        out["heartbeatIntervalSeconds"] = float(hb)
    windows = doc.get("maintenanceWindows")
    if windows is not None:
        if not isinstance(windows, list):
            raise InstallError("maintenanceWindows must be a list of window strings")
        try:
            out["maintenanceWindows"] = validate_windows(windows)
        except ValueError as exc:
            raise InstallError(str(exc)) from None
    files = doc.get("files", [])
    if not isinstance(files, list):
        raise InstallError("files must be a list of {path, content, mode}")
    normalised = []
    for item in files:
        if not isinstance(item, dict) or not isinstance(item.get("path"), str):
            raise InstallError("each file must be an object with a 'path'")
        path = item["path"]
        if not os.path.isabs(path) or ".." in Path(path).parts:
            raise InstallError(f"file path {path!r} must be absolute, without '..'")
        content = item.get("content", "")
        if not isinstance(content, str):
            raise InstallError(f"file {path}: content must be a string")
        normalised.append({"path": path, "content": content, "mode": _mode(item.get("mode"), path)})
    out["files"] = normalised
    return out


class PolicyStore:
    """One named policy's versions, active pointer and history."""

    def __init__(self, state: StateDir, name: str) -> None:
        if not _SAFE_NAME.match(name):
            raise InstallError(f"policy name {name!r} must be a plain name (letters, digits, . _ -)")
        self.name = name
        self.dir = state.policy_dir / name

    @property
    def _state_path(self) -> Path:
        return self.dir / "state.json"

    def load_state(self) -> dict[str, Any]:
        if not self._state_path.exists():
            return {"active": None, "history": [], "changed_at": "", "originals": {}}
        data: dict[str, Any] = json.loads(self._state_path.read_text())
        return data

    def _save_state(self, st: dict[str, Any]) -> None:
        st["changed_at"] = utcnow().isoformat()
        atomic_write(self._state_path, json.dumps(st, indent=1, sort_keys=True).encode(), 0o600)

    def _version_path(self, version: int) -> Path:
        return self.dir / "versions" / f"{version}.json"

    def document(self, version: int | None) -> dict[str, Any]:
        if version is None:
            return {}
        data: dict[str, Any] = json.loads(self._version_path(version).read_text())["document"]
        return data

    def _switch_files(self, st: dict[str, Any], old: dict[str, Any], new: dict[str, Any]) -> list[str]:
        """Write `new`'s files; give files only `old` managed their original content back."""
        originals: dict[str, Any] = st.setdefault("originals", {})
        changes: list[str] = []
        new_files = {f["path"]: f for f in new.get("files", [])}
        for path, f in new_files.items():
            target = Path(path)
            if path not in originals:
                if target.is_file():
                    originals[path] = {"existed": True, "mode": stat.S_IMODE(target.stat().st_mode),
                                       "content": base64.b64encode(target.read_bytes()).decode()}
                else:
                    originals[path] = {"existed": False}
            atomic_write(target, f["content"].encode(), mode=f["mode"])
            changes.append(f"wrote {path} (mode {f['mode']:04o})")
        for f in old.get("files", []):
            path = f["path"]
            if path in new_files:
                continue
            original = originals.pop(path, {"existed": False})
            if original.get("existed"):
                atomic_write(Path(path), base64.b64decode(original["content"]), mode=original["mode"])
                changes.append(f"restored {path} to its content before the policy")
            else:
                Path(path).unlink(missing_ok=True)
                changes.append(f"removed {path}")
        return changes

    def apply(self, version: int, document: dict[str, Any]) -> list[str]:
        doc = validate_document(document)
        st = self.load_state()
        active = st.get("active")
        atomic_write(self._version_path(version),
                     json.dumps({"name": self.name, "version": version, "document": doc,
                                 "applied_at": utcnow().isoformat()}, indent=1).encode(), 0o600)
        old = self.document(active) if active is not None and active != version else {}
        changes = self._switch_files(st, old, doc)
        if active is not None and active != version:
            st["history"] = [*st.get("history", []), active][-HISTORY_LIMIT:]
        st["active"] = version
        self._save_state(st)
        self._prune(st)
        return [f"policy {self.name} version {version} active (previous: {active if active is not None else 'none'})",
                *changes]

    def restore(self, version: int) -> list[str]:
        """Undo `apply(version)`: the version before it becomes active again."""
        st = self.load_state()
        active = st.get("active")
        if active != version:
            return [f"policy {self.name} version {version} is not active "
                    f"(active: {active if active is not None else 'none'}); nothing to restore"]
        history: list[int] = st.get("history", [])
        previous = history.pop() if history else None
        changes = self._switch_files(st, self.document(active), self.document(previous))
        st["active"], st["history"] = previous, history
        self._save_state(st)
        return [f"policy {self.name} restored to version {previous if previous is not None else 'none'}",
                *changes]

    def _prune(self, st: dict[str, Any]) -> None:
        keep = {st.get("active"), *st.get("history", [])}
        for path in (self.dir / "versions").glob("*.json"):
            if path.stem.isdigit() and int(path.stem) not in keep:
                path.unlink(missing_ok=True)


def effective_settings(state: StateDir) -> dict[str, Any]:
    """Agent settings from every active policy; the most recently changed one wins a key."""
    stores: list[tuple[str, PolicyStore, int]] = []
    if state.policy_dir.is_dir():
        for d in state.policy_dir.iterdir():
            if not (d / "state.json").exists() or not _SAFE_NAME.match(d.name):
                continue
            store = PolicyStore(state, d.name)
            st = store.load_state()
            if st.get("active") is not None:
                stores.append((st.get("changed_at", ""), store, st["active"]))
    settings: dict[str, Any] = {}
    for _, store, version in sorted(stores, key=lambda s: s[0]):
        doc = store.document(version)
        settings.update({k: doc[k] for k in SETTINGS if k in doc})
    return settings


def _version(payload: dict[str, Any]) -> int:
    v = payload.get("version")
    if isinstance(v, bool) or not isinstance(v, (int, float)) or int(v) != v or v < 0:
        raise InstallError("payload field 'version' must be a non-negative integer")
    return int(v)


def _restore(ctx: JobContext, store: PolicyStore, version: int) -> list[str]:
    """Undo the reverted deployment's apply. The store's own stack of earlier versions is the
    state before (every agent version keeps it), so a rollback without a pre-state record still
    restores; the record adds one case the stack cannot tell: the version was already active
    before the deployment applied it again, so there is nothing to undo."""
    reverted = ctx.payload.get("revertsDeploymentId")
    record = PreStateStore(ctx.state).load(reverted) if isinstance(reverted, str) and reverted else None
    if record is not None and record.kind == "policy" and record.before.get(store.name) == str(version):
        return [f"policy {store.name} version {version} was already active before deployment {reverted}; "
                "nothing to restore"]
    return store.restore(version)


def run(ctx: JobContext) -> Outcome:
    payload = dict(ctx.payload)
    name = payload.get("name")
    if not isinstance(name, str):
        raise InstallError("payload field 'name' is missing")
    store = PolicyStore(ctx.state, name)
    version = _version(payload)
    action = str(payload.get("action") or ("restore" if ctx.rollback else "apply"))
    if action == "apply":
        validate_document(payload.get("document") or {})
        active = store.load_state().get("active")
        PreStateStore(ctx.state).record_before(ctx.deployment_id, "policy", ctx.job_id,
                                               {name: None if active is None else str(active)})
        lines = store.apply(version, payload.get("document") or {})
    elif action in ("restore", "rollback"):
        lines = _restore(ctx, store, version)
    else:
        raise InstallError(f"unknown policy action {action!r} (apply, restore)")
    settings = effective_settings(ctx.state)
    lines.append("effective agent settings: " + json.dumps(settings, sort_keys=True))
    return Outcome(True, 0, "\n".join(lines), "", settings=settings)

"""`<state>/packages/installed.json`: what convoy installed through the software installer.

One entry per `<kind>:<name>` (kind `deb`, `tar.gz` or `file`): version, path, the artifact's
sha256, when and by which job. A rollback puts back the entry the reverted deployment replaced.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agent.installers.base import JobContext
from agent.state import atomic_write
from common.clock import utcnow


def _path(ctx: JobContext) -> Path:
    return ctx.state.packages_dir / "installed.json"


def load_record(ctx: JobContext) -> dict[str, dict[str, Any]]:
    path = _path(ctx)
    if not path.exists():
        return {}
    data: dict[str, dict[str, Any]] = json.loads(path.read_text()).get("packages", {})
    return data


def _save(ctx: JobContext, record: dict[str, dict[str, Any]]) -> None:
    atomic_write(_path(ctx), json.dumps({"packages": record}, indent=1, sort_keys=True).encode(), 0o600)


def entry(ctx: JobContext, kind: str, name: str) -> dict[str, Any] | None:
    return load_record(ctx).get(f"{kind}:{name}")


def remember(ctx: JobContext, kind: str, name: str, **fields: Any) -> None:
    put(ctx, kind, name, {"kind": kind, "name": name, "installed_at": utcnow().isoformat(),
                          "job_id": ctx.job_id, **fields})


def put(ctx: JobContext, kind: str, name: str, value: Mapping[str, Any] | None) -> None:
    """Set the entry of `kind:name` to `value`; None removes it."""
    record = load_record(ctx)
    if value is None:
        record.pop(f"{kind}:{name}", None)
    else:
        record[f"{kind}:{name}"] = dict(value)
    _save(ctx, record)

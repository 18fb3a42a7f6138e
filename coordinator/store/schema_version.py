"""The schema's revision without Alembic: the heads the code ships, read from the migration
scripts' `revision` / `down_revision` lines, and the revision(s) the store records in Alembic's
`alembic_version` table.

A coordinator starts by bringing its store to the newest revision (store/db.py `migrate`), and
readiness checks the same every 2 s (coordinator/health.py). Alembic's import (with Mako and
Pygments) and its script directory were a fifth of the restarted coordinator's time from exec to
listening in a restart under 3,000 agents, for a store that is almost always already current:
that case is answered here, and Alembic is imported only when there is something to migrate.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import inspect, text

VERSION_TABLE = "alembic_version"


def _revision_of(path: Path) -> tuple[str, tuple[str, ...]] | None:
    """(revision, down revisions) of one migration script, from its top-level assignments."""
    found: dict[str, Any] = {}
    for node in ast.parse(path.read_text(encoding="utf-8"), str(path)).body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if isinstance(t, ast.Name) and t.id in ("revision", "down_revision") and node.value is not None:
                    found[t.id] = ast.literal_eval(node.value)
    if "revision" not in found:
        return None
    down = found.get("down_revision")
    downs = () if down is None else (down,) if isinstance(down, str) else tuple(down)
    return str(found["revision"]), downs


@cache
def code_heads(versions: Path) -> frozenset[str]:
    """The revisions no other script revises: Alembic's heads for `versions`."""
    revisions: set[str] = set()
    revised: set[str] = set()
    for path in sorted(versions.glob("*.py")):
        rev = _revision_of(path)
        if rev is not None:
            revisions.add(rev[0])
            revised.update(rev[1])
    return frozenset(revisions - revised)


def store_heads(conn: Any) -> set[str]:
    """The revision(s) the store is at; empty for a store never migrated."""
    if not inspect(conn).has_table(VERSION_TABLE):
        return set()
    return {str(v) for v in conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars()}

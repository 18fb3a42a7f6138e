"""(issue 14) The schema check without Alembic (store/schema_version.py): the heads read from the
migration scripts are Alembic's own, a current store starts without importing Alembic, and a
store that is behind is still migrated."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlalchemy import text

from coordinator.store.db import MIGRATIONS, Store, migrate
from coordinator.store.schema_version import code_heads, store_heads

ROOT = Path(__file__).resolve().parents[2]


def test_the_heads_read_from_the_scripts_are_alembics() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    assert code_heads(MIGRATIONS / "versions") == set(ScriptDirectory.from_config(cfg).get_heads())


def test_a_merge_revision_and_a_branch_are_read(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("revision = 'a'\ndown_revision = None\n")
    (tmp_path / "b.py").write_text("revision: str = 'b'\ndown_revision = 'a'\n")
    (tmp_path / "c.py").write_text("revision = 'c'\ndown_revision = 'a'\n")
    assert code_heads(tmp_path) == {"b", "c"}
    (tmp_path / "d.py").write_text("revision = 'd'\ndown_revision = ('b', 'c')\n")
    code_heads.cache_clear()
    assert code_heads(tmp_path) == {"d"}


def test_a_current_store_is_not_migrated_again_nor_alembic_imported(db_url: str) -> None:
    store = Store.open(db_url)  # the fixture's store is migrated; this opens it again
    try:
        assert migrate(store.engine) is False
        with store.engine.connect() as conn:
            assert store_heads(conn) == code_heads(MIGRATIONS / "versions")
    finally:
        store.close()
    probe = ("import sys; from coordinator.store.db import Store; Store.open(sys.argv[1]).close(); "
             "print('alembic' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe, db_url], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"


def test_a_store_never_migrated_is_migrated(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    store = Store(url)
    try:
        with store.engine.connect() as conn:
            assert store_heads(conn) == set()
        assert migrate(store.engine) is True
        with store.read() as s:
            assert s.execute(text("SELECT count(*) FROM devices")).scalar() == 0
        assert migrate(store.engine) is False
    finally:
        store.close()

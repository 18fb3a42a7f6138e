"""Engines, sessions and migrations for SQLite (embedded default) and PostgreSQL.

SQLite pragmas, and why:
- journal_mode=WAL: readers (API calls, watchers) never block the single writer.
- synchronous=NORMAL: in WAL mode a commit is durable against process crashes (SIGKILL) and
  only the last transactions can be lost on power loss; FULL costs an fsync per commit.
- busy_timeout=10000: concurrent writers (the engine, the report flusher, the API) wait for
  the lock instead of failing with "database is locked".
- foreign_keys=ON: SQLite does not enforce them otherwise.

Writers on SQLite also queue on one in-process lock (`Store.tx`). SQLite allows one writer at a
time anyway, and a writer that finds the lock taken waits in SQLite's busy handler, which sleeps
1, 2, 5, 10 … up to 100 ms between tries: under contention (enrollments, the report flusher, the
presence flusher and the engine at once) most of the time went to those sleeps, and a commit
waited up to 100 ms after the lock was free. A Python lock hands over at once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def database_url(db: str | None, data_dir: str | Path | None) -> str:
    """The store URL: `db` if given, else a SQLite file in the data dir."""
    if db:
        return db
    directory = Path(data_dir or "./convoy-data").expanduser().resolve()
    directory.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{directory / 'convoy.db'}"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # pysqlite's own transaction handling is disabled so that BEGIN is emitted by us below.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    # BEGIN IMMEDIATE takes the write lock up front: a read-then-write transaction cannot
    # fail half-way with SQLITE_BUSY, and guarded updates see the latest committed state.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_begin_deferred(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN")


def make_engine(url: str, *, for_reads: bool = False) -> Engine:
    """An engine for `url`. On SQLite, write engines take the write lock at BEGIN; the read
    engine (`for_reads`) uses deferred transactions, which in WAL mode never block a writer."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin_deferred if for_reads else _sqlite_begin)
        return engine
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


MIGRATION_LOCK = 0x636F6E766F79  # "convoy": the advisory lock key migrations hold on PostgreSQL


def migrate(engine: Engine) -> bool:
    """Bring the schema to the newest Alembic revision (the coordinator does this on start).
    False when it already was: then Alembic is not even imported (store/schema_version.py)."""
    from coordinator.store.schema_version import code_heads, store_heads

    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # Replicas starting at once on one database: one migrates, the others wait for it
            # here and then find the schema current (the lock ends with this transaction).
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
        if store_heads(conn) == code_heads(MIGRATIONS / "versions"):
            return False
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
        return True


class Store:
    """The engine and a session factory; `with store.tx() as s:` is one unit of work."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        # Copied into every session's `info` when it is made: the secrets sealer (store/sealing.py)
        # reaches the service functions that seal parameters this way (`sealer(s)`).
        self.info: dict[str, Any] = {}
        self.sessions = sessionmaker(self.engine, expire_on_commit=False, info=self.info)
        self.dialect = self.engine.dialect.name
        self.read_engine = make_engine(url, for_reads=True) if self.dialect == "sqlite" else self.engine
        self.read_sessions = sessionmaker(self.read_engine, expire_on_commit=False, info=self.info)
        self._write_lock: threading.RLock | None = threading.RLock() if self.dialect == "sqlite" else None

    @classmethod
    def open(cls, db: str | None = None, data_dir: str | Path | None = None, *, run_migrations: bool = True) -> Store:
        store = cls(database_url(db, data_dir))
        if run_migrations:
            migrate(store.engine)
        return store

    @contextmanager
    def tx(self) -> Iterator[Session]:
        if self._write_lock is None:
            with self.sessions() as session, session.begin():
                yield session
            return
        with self._write_lock, self.sessions() as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for queries only (it never takes SQLite's write lock)."""
        with self.read_sessions() as session:
            yield session

    def close(self) -> None:
        self.engine.dispose()
        if self.read_engine is not self.engine:
            self.read_engine.dispose()

"""store/bulk.py on each backend: rows written through the compiled executemany read back the
same as rows written through SQLAlchemy's own path (timestamps, JSON, booleans, NULLs), repeated
values are converted once, and a guarded UPDATE leaves the rows whose guard does not hold."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import insert, select

from coordinator.service.tenancy import bootstrap
from coordinator.store import bulk
from coordinator.store import models as m
from coordinator.store.db import Store

T0 = datetime(2026, 12, 3, 9, 0, 0, 123456, tzinfo=UTC)
COLUMNS = ("id", "client_id", "machine_id", "credential_hash", "hostname", "os", "os_version", "arch", "cpu_count",
           "memory_bytes", "disks", "ip_addresses", "tags", "site", "agent_version", "maintenance_windows", "online",
           "last_seen_at", "created_at", "updated_at", "revoked_at", "revoked_by")
READ = (m.Device.machine_id, m.Device.disks, m.Device.online, m.Device.last_seen_at, m.Device.created_at,
        m.Device.updated_at, m.Device.hostname, m.Device.cpu_count)


def _client(store: Store) -> str:
    return str(bootstrap(store, "bulk", T0, force=True)["client_id"])


def _row(client_id: str, i: int, seen: datetime | None, machine: str = "m") -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "client_id": client_id, "machine_id": f"{machine}{i}",
            "credential_hash": uuid.uuid4().hex + uuid.uuid4().hex, "disks": [{"mount": "/", "n": i}],
            "online": i % 2 == 0, "last_seen_at": seen, "created_at": T0, "updated_at": T0, "hostname": "",
            "os": "linux", "os_version": "", "arch": "", "cpu_count": 0, "memory_bytes": 2**40, "ip_addresses": [],
            "tags": [], "site": "", "agent_version": "", "maintenance_windows": [], "revoked_at": None,
            "revoked_by": None}


def _read(store: Store, ids: list[str]) -> list[tuple[Any, ...]]:
    with store.read() as s:
        by_id = {r[0]: tuple(r[1:]) for r in s.execute(select(m.Device.id, *READ).where(m.Device.id.in_(ids)))}
    return [by_id[i] for i in ids]


def test_inserted_rows_read_back_as_sqlalchemys_own(store: Store) -> None:
    client = _client(store)
    # A time in another zone is stored as the same instant in UTC, as UTCDateTime does.
    seen = [T0 + timedelta(seconds=3), None, T0.astimezone(timezone(timedelta(hours=5)))]
    ours = [_row(client, i, t) for i, t in enumerate(seen)]
    theirs = [_row(client, i, t, machine="theirs-") for i, t in enumerate(seen)]
    with store.tx() as s:
        bulk.insert_many(s, m.Device.__table__, COLUMNS, [tuple(r[c] for c in COLUMNS) for r in ours])
        s.execute(insert(m.Device), theirs)
    got = _read(store, [r["id"] for r in ours])
    assert [g[1:] for g in got] == [g[1:] for g in _read(store, [r["id"] for r in theirs])]
    assert got[0][3] == T0 + timedelta(seconds=3) and got[1][3] is None and got[2][3] == T0
    assert got[0][1] == [{"mount": "/", "n": 0}] and got[0][2] is True and got[1][2] is False


def test_a_guarded_update_moves_only_the_rows_whose_guard_holds(store: Store) -> None:
    client = _client(store)
    rows = [_row(client, i, T0) for i in range(4)]
    with store.tx() as s:
        s.execute(insert(m.Device), rows)
    later = T0 + timedelta(minutes=1)
    with store.tx() as s:
        # Guarded by machine_id: rows 0 and 2 hold their guard, 1 and 3 do not.
        bulk.update_many(s, m.Device.__table__, ("hostname", "cpu_count", "updated_at"), ("id", "machine_id"), [
            ("h0", 4, later, rows[0]["id"], "m0"),
            ("h1", 4, later, rows[1]["id"], "not-m1"),
            ("h2", 8, later, rows[2]["id"], "m2"),
            ("h3", 8, later, rows[3]["id"], "m9"),
        ])
    got = _read(store, [r["id"] for r in rows])
    assert [(g[6], g[7], g[5]) for g in got] == [("h0", 4, later), ("", 0, T0), ("h2", 8, later), ("", 0, T0)]


def test_a_repeated_value_is_converted_once(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    client = _client(store)
    calls: list[datetime] = []
    real = m.UTCDateTime.process_bind_param

    def counted(self: Any, value: Any, dialect: Any) -> Any:
        calls.append(value)
        return real(self, value, dialect)

    monkeypatch.setattr(m.UTCDateTime, "process_bind_param", counted)
    bulk._CACHE.clear()  # processors are taken when a statement is compiled
    rows = [_row(client, i, T0 + timedelta(seconds=i % 2)) for i in range(50)]
    with store.tx() as s:
        bulk.insert_many(s, m.Device.__table__, COLUMNS, [tuple(r[c] for c in COLUMNS) for r in rows])
    # last_seen_at: two distinct values; created_at and updated_at: one each.
    assert len(calls) == 4
    assert [g[3] for g in _read(store, [r["id"] for r in rows])] == [T0 + timedelta(seconds=i % 2)
                                                                      for i in range(50)]
    bulk._CACHE.clear()


def test_an_insert_that_leaves_out_a_column_with_a_python_default_is_refused(store: Store) -> None:
    # The driver would get a statement with a placeholder no row fills.
    client = _client(store)
    row = _row(client, 0, T0)
    with store.tx() as s, pytest.raises(ValueError, match="hostname"):
        bulk.insert_many(s, m.Device.__table__, ("id", "client_id", "machine_id", "credential_hash", "created_at",
                                                  "updated_at"), [tuple(row[c] for c in ("id", "client_id", "machine_id",
                                                                                          "credential_hash", "created_at",
                                                                                          "updated_at"))])


def test_nothing_to_write_runs_no_statement(store: Store) -> None:
    with store.tx() as s:
        bulk.update_many(s, m.Device.__table__, ("hostname",), ("id",), [])
        bulk.insert_many(s, m.Device.__table__, COLUMNS, [])
        assert s.scalar(select(m.Device.id).limit(1)) is None

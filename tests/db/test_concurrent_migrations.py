"""(issue 10) Replicas starting at once on one empty PostgreSQL database: the migrations run once
(an advisory lock serializes them), every replica's store opens. PostgreSQL only (CI=true: a
missing PostgreSQL fails)."""

from __future__ import annotations

import os
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text

from tests.harness import PG_ADMIN_URL, _pg_admin, _pg_url, pg_available, pg_drop


def test_three_stores_opening_at_once_migrate_once() -> None:
    from coordinator.store.db import Store

    if not pg_available():
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required in CI and is not reachable at {PG_ADMIN_URL}")
        pytest.skip("PostgreSQL not reachable (set CI=true to make this a failure)")
    name = f"convoy_mig_{uuid.uuid4().hex[:10]}"
    admin = _pg_admin()
    with admin.connect() as c:
        c.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    try:
        with ThreadPoolExecutor(3) as pool:
            stores = list(pool.map(lambda _i: Store.open(_pg_url(name)), range(3)))
        with stores[0].read() as s:
            versions = s.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
            assert len(versions) == 1
            assert s.execute(text("SELECT count(*) FROM devices")).scalar() == 0
        for st in stores:
            st.close()
    finally:
        pg_drop(name)

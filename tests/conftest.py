"""Fixtures shared by every tier.

- `db_url`: parametrized over SQLite and PostgreSQL. Each test gets its own fresh, migrated
  database (PostgreSQL: cloned from a per-run template database, dropped afterwards), so runs
  never see each other's rows. With CI=true a missing PostgreSQL fails instead of skipping.
- `coordinator`: a real coordinator (gRPC + REST) on loopback in a background thread of this
  process, over a store of the test's choosing, with a clock the test may fake.
- `coordinator_proc`: a real `convoy coordinator serve` subprocess, bootstrapped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import (
    PG_ADMIN_URL,
    CoordinatorProcess,
    InProcessCoordinator,
    pg_available,
    pg_create_from_template,
    pg_drop,
    pg_template,
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """`slow` tests first (a stable sort: the rest keep their order, so waiting end-to-end tests
    and busy unit tests stay mixed on the workers): pytest-xdist hands tests out in this order,
    so the minute-long ones start early instead of one of them running alone at the end."""
    items.sort(key=lambda item: 0 if item.get_closest_marker("slow") else 1)


@pytest.fixture(scope="session")
def _pg_template() -> Iterator[str | None]:
    if not pg_available():
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required in CI and is not reachable at {PG_ADMIN_URL}")
        yield None
        return
    name = f"convoy_tpl_{uuid.uuid4().hex[:10]}"
    pg_template(name)
    yield name
    pg_drop(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, _pg_template: str | None) -> Iterator[str]:
    """A fresh, migrated database URL, on each backend in turn."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'convoy.db'}"
        return
    if _pg_template is None:
        pytest.skip("PostgreSQL not reachable (set CI=true to make this a failure)")
    name = f"convoy_t_{uuid.uuid4().hex[:12]}"
    url = pg_create_from_template(name, _pg_template)
    yield url
    pg_drop(name)


@pytest.fixture
def store(db_url: str) -> Iterator[object]:
    from coordinator.store.db import Store

    s = Store.open(db_url)
    yield s
    s.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'convoy.db'}"


@pytest.fixture
def coordinator(tmp_path: Path) -> Iterator[InProcessCoordinator]:
    """A running coordinator on SQLite with the real clock; bootstrapped admin in `.token`."""
    c = InProcessCoordinator(db_url=f"sqlite:///{tmp_path / 'convoy.db'}", data_dir=tmp_path)
    c.start()
    yield c
    c.stop()


@pytest.fixture
def fake_clock_coordinator(tmp_path: Path) -> Iterator[InProcessCoordinator]:
    """The same with a FakeClock: tests move time with `.advance(seconds)`."""
    from datetime import datetime

    from common.clock import FakeClock

    c = InProcessCoordinator(db_url=f"sqlite:///{tmp_path / 'convoy.db'}", data_dir=tmp_path,
                             clock=FakeClock(datetime.now().astimezone()))
    c.start()
    yield c
    c.stop()


@pytest.fixture
def coordinator_any(db_url: str, tmp_path: Path) -> Iterator[InProcessCoordinator]:
    """The same, on each store backend."""
    c = InProcessCoordinator(db_url=db_url, data_dir=tmp_path)
    c.start()
    yield c
    c.stop()


@pytest.fixture
def coordinator_proc(tmp_path: Path) -> Iterator[CoordinatorProcess]:
    p = CoordinatorProcess(tmp_path / "coord")
    p.bootstrap()
    p.start()
    yield p
    p.stop()

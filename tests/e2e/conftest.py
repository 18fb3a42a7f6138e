"""Fixtures the end-to-end tests share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import CoordinatorProcess
from tests.real_agents import RealFleet


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[CoordinatorProcess, RealFleet]]:
    """A `convoy coordinator serve` subprocess (TLS) and an empty fleet of real agents for it."""
    coord = CoordinatorProcess(tmp_path / "coord")
    coord.bootstrap()
    coord.start()
    fleet = RealFleet(coord, tmp_path / "agents")
    fleet.root.mkdir()
    try:
        yield coord, fleet
    finally:
        fleet.stop()
        coord.stop()

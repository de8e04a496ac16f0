"""The coordinator contract suite runs every behaviour on both backends and, after each
test, proves the live views equal the views rebuilt from the event log."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from adapters.bootstrap import Settings
from coordinator.fleet import Fleet
from tests.support import FakeClock, build_fleet, fleet_wide


@pytest.fixture
def fleet(fleet: Fleet) -> Iterator[Fleet]:
    yield fleet
    report = fleet.verify_projections(fleet_wide())
    assert report.ok, [d.describe() for d in report.differences]


@pytest.fixture
def pg_fleet(pg_database: str, clock: FakeClock) -> Iterator[Fleet]:
    """A PostgreSQL fleet whose pool holds exactly one connection (what it prepared, and
    how many round trips it takes, stay observable), verified against the log after."""
    fleet = build_fleet(Settings(database_url=pg_database, pool_size=1, max_overflow=0), clock)
    try:
        yield fleet
        report = fleet.verify_projections(fleet_wide())
        assert report.ok, [d.describe() for d in report.differences]
    finally:
        fleet.close()

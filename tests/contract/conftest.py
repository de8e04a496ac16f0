"""The coordinator contract suite runs every behaviour on both backends and, after each
test, proves the live views equal the views rebuilt from the event log."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from coordinator.fleet import Fleet
from tests.support import fleet_wide


@pytest.fixture
def fleet(fleet: Fleet) -> Iterator[Fleet]:
    yield fleet
    report = fleet.verify_projections(fleet_wide())
    assert report.ok, [d.describe() for d in report.differences]

"""Roles and tenancy at the service boundary (the HTTP API maps these to 401/403/404)."""

from __future__ import annotations

import pytest

from coordinator.claiming import ClaimRequest
from coordinator.errors import Forbidden, InvalidRequest
from coordinator.fleet import Fleet
from coordinator.identity import Identity, Role
from tests.contract.helpers import submit
from tests.support import make_spec, tenant


def test_each_action_needs_its_role(fleet: Fleet) -> None:
    reader = Identity.of("r", "acme", Role.READER)
    worker = Identity.of("w", "acme", Role.WORKER)
    job = submit(fleet, tenant("acme"))
    with pytest.raises(Forbidden):
        fleet.submit(reader, make_spec())
    with pytest.raises(Forbidden):
        fleet.claim(reader, ClaimRequest(factory_id="f"))
    with pytest.raises(Forbidden):
        fleet.cancel(worker, job)
    with pytest.raises(Forbidden):
        fleet.requeue(Identity.of("s", "acme", Role.SUBMITTER), job)
    with pytest.raises(Forbidden):
        fleet.get(worker, job)
    assert fleet.get(reader, job).id == job


def test_projection_maintenance_needs_a_fleet_wide_admin(fleet: Fleet) -> None:
    tenant_admin = Identity.of("a", "acme", Role.ADMIN)
    with pytest.raises(Forbidden):
        fleet.verify_projections(tenant_admin)
    with pytest.raises(Forbidden):
        fleet.rebuild_projections(tenant_admin)


@pytest.mark.parametrize("name", ["", "UPPER", "has space", "x" * 64, "-dash"])
def test_malformed_tenant_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidRequest):
        Identity.of("s", name)

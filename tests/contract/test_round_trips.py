"""PostgreSQL units of work in as few round trips as the docs promise (adapters/store/
postgres.py, ``PgCursor``): each round trip costs the client more CPU than the statements
it carries, so a regression here is a throughput regression."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from coordinator.fleet import Fleet
from coordinator.reporting import Completion
from tests.contract.helpers import claim, submit
from tests.support import fleet_wide, tenant

pytestmark = pytest.mark.postgres

ACME = tenant("acme")
WORKER = fleet_wide("worker")


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> Callable[[Callable[[], Any]], int]:
    """How many statement strings an action sends to the server (each one round trip)."""
    sent = [0]
    execute = psycopg.ClientCursor.execute

    def counting(self: psycopg.ClientCursor[Any], *args: Any, **kwargs: Any) -> Any:
        sent[0] += 1
        return execute(self, *args, **kwargs)

    monkeypatch.setattr(psycopg.ClientCursor, "execute", counting)

    def count(action: Callable[[], Any]) -> int:
        before = sent[0]
        action()
        return sent[0] - before

    return count


def test_a_plain_submit_is_one_round_trip(pg_fleet: Fleet, round_trips: Callable[..., int]) -> None:
    submit(pg_fleet, ACME)  # prepares the statements: not what is counted
    assert round_trips(lambda: submit(pg_fleet, ACME)) == 1


def test_a_claim_is_two_round_trips_while_one_tenant_has_work(
    pg_fleet: Fleet, round_trips: Callable[..., int]
) -> None:
    for _ in range(10):
        submit(pg_fleet, ACME)
    claim(pg_fleet, WORKER, "w", capabilities=(), max_jobs=2)  # learns who has work
    # Factory, leases, tenants and the jobs in one trip; the writes with COMMIT in the other
    assert round_trips(lambda: claim(pg_fleet, WORKER, "w", capabilities=(), max_jobs=2)) == 2
    # A second tenant with work: its jobs are one more trip
    submit(pg_fleet, tenant("other"))
    assert round_trips(lambda: claim(pg_fleet, WORKER, "w", capabilities=(), max_jobs=2)) == 3


def test_a_completion_batch_is_two_round_trips(pg_fleet: Fleet, round_trips: Callable[..., int]) -> None:
    for _ in range(8):
        submit(pg_fleet, ACME)
    first = claim(pg_fleet, WORKER, "w", capabilities=(), max_jobs=4)
    pg_fleet.complete(
        WORKER, [Completion(job_id=c.job.id, epoch=c.epoch, outcome="succeeded") for c in first]
    )
    claimed = claim(pg_fleet, WORKER, "w", capabilities=(), max_jobs=4)
    done = [Completion(job_id=c.job.id, epoch=c.epoch, outcome="succeeded") for c in claimed]
    assert round_trips(lambda: pg_fleet.complete(WORKER, done)) == 2

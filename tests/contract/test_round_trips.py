"""PostgreSQL units of work in as few round trips as the docs promise (adapters/store/
postgres.py, ``PgCursor``): each round trip costs the client more CPU than the statements
it carries, so a regression here is a throughput regression."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from coordinator.claiming import ClaimRequest
from coordinator.fleet import Fleet
from coordinator.reporting import Completion
from domain.factory import FactoryReport
from tests.contract.helpers import LoopHandOvers, claim, submit
from tests.support import fleet_wide, make_spec, tenant

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


def test_a_hand_over_after_a_short_claim_is_one_round_trip_and_three_when_the_guess_misses(
    pg_fleet: Fleet, round_trips: Callable[..., int]
) -> None:
    pg_fleet.heartbeat(WORKER, FactoryReport(factory_id="w", seat_limit=2))
    request = ClaimRequest(factory_id="w", capabilities=(), max_jobs=4)
    claimed: list[list[Any]] = []

    def hand_over() -> None:
        claimed.append(pg_fleet.submit_handing_over(ACME, make_spec(), WORKER, request)[1])

    # The worker's claim found nothing: the next hand-over to it is decided on the factory
    # as that claim read it, and checked in the commit's one round trip.
    assert pg_fleet.claim(WORKER, request) == []
    assert round_trips(hand_over) == 1
    # A heartbeat that changes nothing a claim rests on voids no guess
    pg_fleet.heartbeat(WORKER, FactoryReport(factory_id="w", seat_limit=2, load=0.5))
    assert round_trips(hand_over) == 1
    assert [len(c) for c in claimed] == [1, 1]
    # Both seats taken: the commit's check refuses the guess (one trip, nothing written),
    # and the submit runs again with a claim that reads first (two more); it takes nothing.
    assert round_trips(hand_over) == 3
    assert claimed[-1] == []
    # That claim found no seat: the next hand-over reads first again (two trips)
    assert round_trips(hand_over) == 2
    assert claimed[-1] == []
    assert [j.state for j in pg_fleet.list_jobs(ACME).jobs].count("queued") == 2


def test_a_guessed_hand_over_from_an_event_loop_is_one_round_trip_sent_from_the_loop(
    pg_fleet: Fleet, round_trips: Callable[..., int], monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = [0]
    execute = psycopg.AsyncClientCursor.execute

    async def counting(self: psycopg.AsyncClientCursor[Any], *args: Any, **kwargs: Any) -> Any:
        sent[0] += 1
        return await execute(self, *args, **kwargs)

    monkeypatch.setattr(psycopg.AsyncClientCursor, "execute", counting)
    pg_fleet.heartbeat(WORKER, FactoryReport(factory_id="w", seat_limit=2))
    request = ClaimRequest(factory_id="w", capabilities=(), max_jobs=4)
    loop = LoopHandOvers(pg_fleet)
    claimed: list[list[Any]] = []

    def trips(action: Callable[[], Any]) -> tuple[int, int]:
        """(round trips from threads, round trips from the loop)"""
        before = sent[0]
        return round_trips(action), sent[0] - before

    def hand_over() -> None:
        claimed.append(loop(pg_fleet, ACME, make_spec(), WORKER, request)[1])

    try:
        assert pg_fleet.claim(WORKER, request) == []
        # Each guessed hand-over is the one round trip that commits (what must be
        # prepared outside a transaction was, as the loop's connection opened)
        assert trips(hand_over) == (0, 1)
        assert trips(hand_over) == (0, 1)
        assert [len(c) for c in claimed] == [1, 1]
        # Both seats taken: the commit refuses the guess (nothing written), and the
        # submit runs again on a thread with a claim that reads first; it takes nothing
        assert trips(hand_over) == (2, 1)
        assert claimed[-1] == []
        # Nothing to guess on now: the unit of work would read, so the loop sends nothing
        assert trips(hand_over) == (2, 0)
        assert claimed[-1] == []
        assert [j.state for j in pg_fleet.list_jobs(ACME).jobs].count("queued") == 2
    finally:
        loop.close()

"""Units of work committed from an event loop (``Store.loop_commits``, PostgreSQL): what
they refuse and how a caller falls back. That hand-overs made this way behave as any
other is test_handoff.py's business (every test there runs both ways), and that they
are one round trip sent from the loop, test_round_trips.py's."""

from __future__ import annotations

import asyncio
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from adapters.bootstrap import Settings
from adapters.store.loop_commits import LOOP_POOL_SIZE, LOOP_QUERIES, PgLoopCommits
from adapters.store.prepared import OUTSIDE_TRANSACTIONS, PREFIX
from coordinator.claiming import ClaimRequest
from coordinator.errors import Unavailable, WouldRead
from coordinator.fleet import Fleet
from domain.factory import FactoryReport
from tests.contract.helpers import LoopHandOvers, claim
from tests.support import FakeClock, build_fleet, make_spec, tenant

ACME = tenant("acme")


def test_sqlite_has_none(tmp_path: Path, clock: FakeClock) -> None:
    fleet = build_fleet(Settings(data_dir=tmp_path / "data"), clock)
    try:
        assert fleet.ctx.store.loop_commits() is None
    finally:
        fleet.close()


def _warm(fleet: Fleet) -> ClaimRequest:
    fleet.heartbeat(ACME, FactoryReport(factory_id="f1"))
    assert claim(fleet, ACME, "f1") == []  # short: the next hand-over is guessed
    return ClaimRequest(factory_id="f1", start=True)


@pytest.mark.postgres
def test_a_unit_of_work_that_reads_is_refused_before_anything_is_sent(pg_fleet: Fleet) -> None:
    request = _warm(pg_fleet)
    commits = pg_fleet.ctx.store.loop_commits()
    assert commits is not None
    # An idempotency key is looked up before the job is placed
    unit = pg_fleet.hand_over_unit(ACME, make_spec(idempotency_key="k1"), ACME, request)
    assert unit is not None

    async def attempt() -> None:
        try:
            with pytest.raises(WouldRead, match="find_idempotent"):
                await commits.transact(unit)
        finally:
            await commits.close()

    asyncio.run(attempt())
    assert pg_fleet.list_jobs(ACME).jobs == []


@pytest.mark.postgres
def test_with_its_pool_unreachable_a_hand_over_goes_the_ordinary_way(
    pg_fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = _warm(pg_fleet)
    # Nothing listens on port 1: the loop's pool gets no connection within its wait
    unreachable = "postgresql://postgres@127.0.0.1:1/nowhere?connect_timeout=1"
    init = PgLoopCommits.__init__

    def elsewhere(self: PgLoopCommits, url: str, *args: object, **kwargs: object) -> None:
        init(self, unreachable, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(PgLoopCommits, "__init__", elsewhere)
    loop = LoopHandOvers(pg_fleet)
    try:
        started = time.monotonic()
        result, claimed = loop(pg_fleet, ACME, make_spec(), ACME, request)
        assert time.monotonic() - started < 5
        assert [c.job.id for c in claimed] == [result.job.id]
        assert pg_fleet.get(ACME, result.job.id).state == "running"
        # The refusal itself: the coordinator's Unavailable, nothing written
        assert loop.commits is not None
        unit = pg_fleet.hand_over_unit(ACME, make_spec(), ACME, request)
        assert unit is not None
        with pytest.raises(Unavailable):
            asyncio.run_coroutine_threadsafe(loop.commits.transact(unit), loop.loop).result(timeout=30)
        assert len(pg_fleet.list_jobs(ACME).jobs) == 1
    finally:
        loop.close()


@pytest.mark.postgres
def test_after_a_failed_batch_the_loops_connections_prepare_again(pg_fleet: Fleet) -> None:
    request = _warm(pg_fleet)
    commits = pg_fleet.ctx.store.loop_commits()
    assert commits is not None

    def failing(uow: Any) -> None:
        # A hand-over's statements (their PREPAREs lead the batch), then one that fails
        unit = pg_fleet.hand_over_unit(ACME, make_spec(), ACME, request)
        assert unit is not None
        unit(uow)
        uow._db.add("SELECT 1/0")

    async def scenario() -> list[int]:
        try:
            await commits.open()
            with pytest.raises(Unavailable, match="division by zero"):
                await commits.transact(failing)
            # That session starts its prepared statements over (DEALLOCATE, PREPARE), and
            # the next hand-overs commit from the loop (no fallback here: any error fails)
            taken = []
            for _ in range(4):
                unit = pg_fleet.hand_over_unit(ACME, make_spec(), ACME, request)
                assert unit is not None
                _, claimed = await commits.transact(unit)
                taken.append(len(claimed))
            return taken
        finally:
            await commits.close()

    assert asyncio.run(scenario()) == [1, 1, 1, 1]


@pytest.mark.postgres
def test_every_loop_connection_is_open_and_prepared_before_the_first_hand_over(pg_fleet: Fleet) -> None:
    commits = pg_fleet.ctx.store.loop_commits()
    assert isinstance(commits, PgLoopCommits)
    expected = {PREFIX + name for name in (*LOOP_QUERIES, *OUTSIDE_TRANSACTIONS)}

    async def scenario() -> list[dict[str, int]]:
        try:
            await commits.open()
            pool = await commits._opened()
            assert pool.get_stats()["pool_size"] == LOOP_POOL_SIZE  # none opened later, cold
            query = "SELECT name, generic_plans + custom_plans AS runs FROM pg_prepared_statements"
            async with AsyncExitStack() as stack:  # every connection at once: each is seen
                conns = [await stack.enter_async_context(pool.connection()) for _ in range(LOOP_POOL_SIZE)]
                return [
                    {row["name"]: row["runs"] for row in await (await conn.execute(query)).fetchall()}
                    for conn in conns
                ]
        finally:
            await commits.close()

    for prepared in asyncio.run(scenario()):
        assert expected <= set(prepared)  # parsed as it connected ...
        assert all(prepared[name] == 0 for name in expected)  # ... and never executed yet

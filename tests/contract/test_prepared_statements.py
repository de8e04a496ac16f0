"""PostgreSQL units of work run their named queries as prepared statements
(adapters/store/prepared.py): prepared once per connection, reused, and recovered after a
failed batch or after someone dropped them, without touching other prepared statements."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest

from adapters.bootstrap import Settings
from adapters.sql import queries
from adapters.store.postgres import PostgresStore
from adapters.store.prepared import PREFIX, SESSIONS, prepared_query
from coordinator.errors import Unavailable
from coordinator.fleet import Fleet
from tests.contract.helpers import claim_one, submit
from tests.support import FakeClock, build_fleet, tenant

pytestmark = pytest.mark.postgres

ACME = tenant("acme")


def _store(fleet: Fleet) -> PostgresStore:
    store = fleet.ctx.store
    assert isinstance(store, PostgresStore)
    return store


def _session(fleet: Fleet, sql: str) -> list[Any]:
    """Run ``sql`` on the pool's only connection, in autocommit."""
    with _store(fleet).datastore.get_connection() as conn:
        cur = conn.execute(sql)
        return cur.fetchall() if cur.description is not None else []


def _prepared(fleet: Fleet) -> dict[str, int]:
    """Our prepared statements on that connection, with how often each was executed."""
    rows = _session(
        fleet,
        "SELECT name, generic_plans + custom_plans AS runs FROM pg_prepared_statements "
        f"WHERE starts_with(name, '{PREFIX}')",
    )
    return {r["name"]: r["runs"] for r in rows}


def test_every_named_query_prepares(pg_database: str) -> None:
    """PREPARE infers every parameter's type; a query it could not take would fail only
    when first used, perhaps in production."""
    not_preparable = []
    with psycopg.connect(pg_database, autocommit=True) as conn:
        for name in sorted(queries("postgres")):
            statement = prepared_query(name)
            if statement is None:
                not_preparable.append(name)
                continue
            conn.execute(statement.prepare)
            [row] = conn.execute(
                "SELECT cardinality(parameter_types) FROM pg_prepared_statements WHERE name = %s",
                (statement.statement,),
            ).fetchall()
            assert row[0] == len(statement.params), name
    assert sorted(not_preparable) == ["clear_views", "lock_events", "lock_views"]


def test_statements_are_prepared_once_per_connection_and_reused(pg_fleet: Fleet) -> None:
    fleet = pg_fleet
    for _ in range(3):
        submit(fleet, ACME)
    runs = _prepared(fleet)
    assert runs[f"{PREFIX}insert_jobs"] == 3  # one PREPARE, three EXECUTEs of it
    claim_one(fleet, ACME)
    assert _prepared(fleet)[f"{PREFIX}insert_jobs"] == 3
    assert f"{PREFIX}lock_claimable_tenant" in _prepared(fleet)


def test_a_failed_batch_starts_the_next_afresh_and_spares_other_statements(
    pg_fleet: Fleet,
) -> None:
    fleet = pg_fleet
    submit(fleet, ACME)
    _session(fleet, "PREPARE someone_elses AS SELECT 42")
    with pytest.raises(Unavailable), _store(fleet)._transaction() as cursor:
        cursor.fetch("get_job", job_id="not-a-uuid")  # fails on the server
    job = submit(fleet, ACME)
    assert fleet.get(ACME, job).id == job
    runs = _prepared(fleet)
    assert runs[f"{PREFIX}insert_jobs"] == 1  # deallocated after the failure, prepared again
    assert _session(fleet, "EXECUTE someone_elses")[0]["?column?"] == 42


def test_statements_dropped_under_a_connection_are_prepared_again(pg_fleet: Fleet) -> None:
    fleet = pg_fleet
    submit(fleet, ACME)
    _session(fleet, "DEALLOCATE ALL")
    # The first try fails on the missing statement (Unavailable, retried); the batch
    # failure made the set unknown, so the re-run deallocates and prepares afresh.
    job = submit(fleet, ACME)
    assert fleet.get(ACME, job).id == job
    assert f"{PREFIX}insert_jobs" in _prepared(fleet)


def test_prepared_statements_can_be_turned_off_for_a_transaction_pooler(
    pg_database: str, clock: FakeClock
) -> None:
    settings = Settings.from_env(
        {"DATABASE_URL": pg_database, "FLEETLOG_PG_PREPARED_STATEMENTS": "off"}, pool_size=1, max_overflow=0
    )
    assert settings.prepared_statements is False
    fleet = build_fleet(settings, clock)
    try:
        submit(fleet, ACME)
        claimed = claim_one(fleet, ACME)
        fleet.succeed(ACME, claimed.job.id, claimed.epoch)
        assert fleet.get(ACME, claimed.job.id).state == "succeeded"
        assert _prepared(fleet) == {}
    finally:
        fleet.close()


def test_the_events_insert_is_never_prepared_inside_a_write_transaction(
    pg_fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PREPARE takes the locks of the statement it parses and holds them to the end of
    the transaction: ROW EXCLUSIVE on the events table for the events INSERT. A write
    transaction takes that table's EXCLUSIVE lock last, so one that had prepared the
    INSERT in it could deadlock with another doing the same, or with one holding a row it
    wanted (seen under load: PostgreSQL found it after deadlock_timeout, 1 s, and one
    transaction was retried). It is prepared in a round trip of its own, before BEGIN."""
    batches: list[list[str]] = []
    execute = psycopg.ClientCursor.execute

    def recording(self: psycopg.ClientCursor[Any], query: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(query, str):
            batches.append([part.strip() for part in query.split(";\n")])
        return execute(self, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.ClientCursor, "execute", recording)
    fleet = pg_fleet
    submit(fleet, ACME)
    claimed = claim_one(fleet, ACME)
    fleet.succeed(ACME, claimed.job.id, claimed.epoch)
    with _store(fleet).datastore.get_connection() as conn:
        SESSIONS.forget(conn)  # as after a failed batch: everything is prepared again
    submit(fleet, ACME)
    preparing = [b for b in batches if f"PREPARE {PREFIX}append_events AS" in "\n".join(b)]
    assert len(preparing) == 2  # once on the new connection, once after the forget
    for batch in preparing:
        assert "BEGIN" not in batch
        assert not any(part.startswith("EXECUTE") or part.startswith("LOCK") for part in batch)
    writes = [b for b in batches if "BEGIN" in b]
    assert writes and all(f"PREPARE {PREFIX}append_events AS" not in "\n".join(b) for b in writes)


def test_connections_preparing_at_once_write_without_deadlocks(pg_database: str, clock: FakeClock) -> None:
    """The race the test above rules out, run: six connections whose prepared set is
    unknown (as after a failed batch) submit at the same moment, 30 times. A deadlock
    would surface as a Conflict (retries off)."""
    fleets = [
        build_fleet(Settings(database_url=pg_database, pool_size=1, max_overflow=0), clock) for _ in range(6)
    ]
    try:
        for fleet in fleets:
            fleet.ctx.transaction_attempts = 1
        with ThreadPoolExecutor(len(fleets)) as pool:
            for _ in range(30):
                for fleet in fleets:
                    with _store(fleet).datastore.get_connection() as conn:
                        SESSIONS.forget(conn)
                barrier = threading.Barrier(len(fleets))

                def write(fleet: Fleet, barrier: threading.Barrier = barrier) -> None:
                    barrier.wait()
                    submit(fleet, ACME)

                list(pool.map(write, fleets))
    finally:
        for fleet in fleets:
            fleet.close()

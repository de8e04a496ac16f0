"""The consumer keeps up while 20,000 jobs are drained (PostgreSQL, real chDB): its lag
is reported along the way and returns to zero soon after the drain ends, and the
result agrees with the log. A correctness check under load, not a benchmark (bench/
measures the lag)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from adapters.analytics.analytics import ClickHouseAnalytics
from adapters.bootstrap import Settings, build_app
from coordinator.analytics import AnalyticsConsumer, ConsumerConfig, analytics_status, verify
from coordinator.claiming import ClaimRequest
from coordinator.fleet import Fleet
from coordinator.reporting import Completion
from tests.analytics.conftest import Ch
from tests.support import fleet_wide, tenant

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

JOBS = 20_000
ACME = tenant("acme")


@pytest.fixture
def pg_fleet(pg_database: str) -> Iterator[Fleet]:
    app = build_app(Settings(database_url=pg_database, pool_size=4, max_overflow=4))
    try:
        yield app
    finally:
        app.close()


def drain(fleet: Fleet, worker: int, stop: threading.Event) -> None:
    me = fleet_wide(f"worker-{worker}")
    while not stop.is_set():
        claimed = fleet.claim(me, ClaimRequest(factory_id=f"f{worker}", max_jobs=50, lease_seconds=60))
        if not claimed:
            return
        fleet.complete(me, [Completion(job_id=c.job.id, epoch=c.epoch, outcome="succeeded") for c in claimed])


def test_the_consumer_keeps_up_with_a_drain_of_20000_jobs(pg_fleet: Fleet, ch: Ch) -> None:
    analytics = ClickHouseAnalytics(ch.client, ch.settings)
    store, clock = pg_fleet.ctx.store, pg_fleet.ctx.clock
    consumer = AnalyticsConsumer(store, analytics, clock, config=ConsumerConfig(linger_seconds=0.05))
    stop = threading.Event()
    follower = threading.Thread(target=consumer.run, args=(stop,))
    follower.start()
    lags: list[tuple[int, float]] = []
    try:
        # Given 20,000 jobs submitted in batches, then drained by four workers
        for start in range(0, JOBS, 1000):
            pg_fleet.submit_many(
                ACME, [{"queue": "q", "payload": {"i": i}} for i in range(start, start + 1000)]
            )
        workers = [threading.Thread(target=drain, args=(pg_fleet, w, stop)) for w in range(4)]
        for w in workers:
            w.start()
        while any(w.is_alive() for w in workers):
            status = analytics_status(store, clock, consumer.name)
            lags.append((status.events_behind, status.seconds_behind))
            time.sleep(0.25)
        drained_at = time.monotonic()
        # Then the consumer catches up soon after the drain ends
        while (status := analytics_status(store, clock, consumer.name)).events_behind:
            assert time.monotonic() - drained_at < 30, status
            time.sleep(0.1)
    finally:
        stop.set()
        follower.join(30)
    assert pg_fleet.list_jobs(ACME, states=("succeeded",), limit=1).jobs  # the drain ran
    assert len(lags) >= 2 and all(n >= 0 and s >= 0 for n, s in lags)
    head = store.notification_head()
    assert head is not None and head.notification_id >= 3 * JOBS  # submitted, leased, succeeded
    result = verify(store, analytics, head.notification_id)
    assert result.ok, result.differences
    assert (
        ch.scalar(f"SELECT count() FROM {ch.settings.database}.job_runs WHERE outcome = 'succeeded'") == JOBS
    )
    assert ch.scalar(f"SELECT sumMerge(succeeded) FROM {ch.settings.database}.tenant_hourly") == JOBS

"""Waking claimers: PostgreSQL notifies the queues that gained claimable work, once per
transaction, and nothing else; SQLite polls."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from psycopg import sql

from adapters.bootstrap import Settings
from adapters.store.signals import LOG_POLL_SECONDS, QUEUE_CHANNEL, PollBackoff
from domain.factory import FactoryReport
from tests.contract.helpers import claim_one, submit
from tests.support import FakeClock, build_fleet, fleet_wide, tenant

ACME = tenant("acme")


def _woken(signal, action) -> bool:
    signal.arm()
    action()
    started = time.monotonic()
    signal.wait(1.0)
    return time.monotonic() - started < 0.5


@pytest.mark.postgres
def test_only_new_claimable_work_on_my_queues_wakes_me(pg_database: str, clock: FakeClock) -> None:
    fleet = build_fleet(Settings(database_url=pg_database, pool_size=1), clock)
    signal = fleet.ctx.store.work_signal(queues=("render",))
    try:
        job = submit(fleet, ACME, queue="render")
        signal.arm()
        signal.wait(0.2)  # drain the notification of that first submit
        # A heartbeat, a checkpoint or a job on another queue wakes nobody here
        c = claim_one(fleet, ACME)
        assert not _woken(signal, lambda: fleet.checkpoint(ACME, job, c.epoch, {"x": 1}))
        assert not _woken(signal, lambda: fleet.heartbeat(fleet_wide(), FactoryReport(factory_id="h")))
        assert not _woken(signal, lambda: submit(fleet, ACME, queue="email"))
        # Work for my queue does, promptly
        assert _woken(signal, lambda: submit(fleet, ACME, queue="render"))
        # And so does a job returning to my queue
        assert _woken(signal, lambda: fleet.release(ACME, job, c.epoch))
    finally:
        signal.close()
        fleet.close()


def test_interrupt_ends_a_wait_at_once(backend: Settings, clock: FakeClock) -> None:
    fleet = build_fleet(backend, clock)
    signal = fleet.ctx.store.work_signal()
    try:
        signal.arm()
        threading.Timer(0.1, signal.interrupt).start()
        started = time.monotonic()
        signal.wait(5.0)
        assert time.monotonic() - started < 1.0
    finally:
        signal.close()
        fleet.close()


@pytest.mark.postgres
def test_appends_do_not_notify_the_events_channel_and_the_log_is_followed_by_polling(
    pg_database: str, clock: FakeClock
) -> None:
    """The library NOTIFYs its events channel in every append, which takes PostgreSQL's
    cluster-wide notification lock at each commit; Fleetlog's own appends leave it out
    (only the library's ``subscribe()`` waits for it) and follow the log by polling."""
    fleet = build_fleet(Settings(database_url=pg_database, pool_size=1), clock)
    store = fleet.ctx.store
    channel = store.recorder.channel_name
    with psycopg.connect(pg_database, autocommit=True) as listener:
        listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        listener.execute(f"LISTEN {QUEUE_CHANNEL}")
        try:
            job = submit(fleet, ACME, queue="render")
            c = claim_one(fleet, ACME)
            fleet.checkpoint(ACME, job, c.epoch, {"x": 1})
            heard = [n.channel for n in listener.notifies(timeout=0.5)]
        finally:
            fleet.close()
    # The submit announced its queue; nothing went to the events channel
    assert heard == [QUEUE_CHANNEL]
    signal = store.log_signal()
    try:
        assert isinstance(signal, PollBackoff) and signal.maximum == LOG_POLL_SECONDS
    finally:
        signal.close()

"""Waking claimers: PostgreSQL notifies the queues that gained claimable work, once per
transaction, and nothing else; SQLite polls."""

from __future__ import annotations

import threading
import time

import pytest

from adapters.bootstrap import Settings
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

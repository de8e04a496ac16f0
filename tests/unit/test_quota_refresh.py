"""``QuotaRefresher``: the server's quota cache reloaded in the background, from the start."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from typing import Any

import pytest

from adapters.http.quota_refresh import QuotaRefresher
from coordinator.errors import Unavailable
from coordinator.quotas import QuotaCache
from projections.tenant_rows import TenantRow


class SlowLoader:
    """The tenants with quotas (none), after ``delay`` seconds; or the store down."""

    def __init__(self, delay: float = 0.0, fail: bool = False):
        self.delay, self.fail = delay, fail
        self.calls = 0

    def __call__(self) -> list[TenantRow]:
        self.calls += 1
        time.sleep(self.delay)
        if self.fail:
            raise Unavailable("down")
        return []


async def on_thread(fn: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


def test_it_loads_at_start_without_holding_the_start_up_and_keeps_reloading() -> None:
    async def scenario() -> tuple[float, bool, int]:
        load = SlowLoader(delay=0.2)
        cache = QuotaCache(load, ttl=0.3)
        refresher = QuotaRefresher(cache, on_thread)
        started = time.monotonic()
        refresher.start()
        took = time.monotonic() - started
        await asyncio.sleep(0.9)
        loaded = cache.loaded() is not None
        await refresher.close()
        return took, loaded, load.calls

    took, loaded, calls = asyncio.run(scenario())
    assert took < 0.1  # the first load runs in the background
    assert loaded
    assert calls >= 3  # every third of the TTL (0.1 s) after each 0.2 s load


def test_a_store_that_is_down_leaves_the_cache_unloaded_and_the_refresher_running() -> None:
    async def scenario() -> tuple[bool, int, bool]:
        load = SlowLoader(fail=True)
        cache = QuotaCache(load, ttl=0.3)
        refresher = QuotaRefresher(cache, on_thread)
        refresher.start()
        await asyncio.sleep(0.35)
        unloaded = cache.loaded() is None
        calls = load.calls
        load.fail = False
        await asyncio.sleep(0.25)
        recovered = cache.loaded() is not None
        await refresher.close()
        return unloaded, calls, recovered

    unloaded, calls, recovered = asyncio.run(scenario())
    assert unloaded and calls >= 2  # tried again, not given up
    assert recovered  # loaded once the store is back


def test_an_outage_is_logged_once_and_its_end_once(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> int:
        load = SlowLoader(fail=True)
        refresher = QuotaRefresher(QuotaCache(load, ttl=0.15), on_thread)  # a reload every 0.05 s
        refresher.start()
        await asyncio.sleep(0.4)
        failed = load.calls
        load.fail = False
        await asyncio.sleep(0.2)
        await refresher.close()
        return failed

    with caplog.at_level(logging.INFO, logger="fleetlog.http"):
        failed = asyncio.run(scenario())
    assert failed >= 3
    records = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "fleetlog.http"]
    assert len(records) == 2, records
    (first_level, first), (last_level, last) = records
    assert first_level == logging.ERROR
    assert "quota cache refresh failed: event store unavailable: down" in first
    assert last_level == logging.WARNING
    counted = re.search(r"works again after (\d+) failed reloads", last)
    assert counted is not None, last
    assert 3 <= int(counted.group(1)) <= failed  # one may have been in flight as the store came back


def test_close_stops_it() -> None:
    async def scenario() -> int:
        load = SlowLoader()
        refresher = QuotaRefresher(QuotaCache(load, ttl=0.3), on_thread)
        refresher.start()
        await asyncio.sleep(0.05)
        await refresher.close()
        calls = load.calls
        await asyncio.sleep(0.3)
        return load.calls - calls

    assert asyncio.run(scenario()) == 0

"""``QuotaRefresher``: keeps a server process's quota cache (``QuotaCache``) fresh ahead
of its expiry, so that no request waits for its reload.

The cache says which tenants have quotas and lives ``QUOTA_CACHE_TTL_SECONDS``. Left to
itself it expires once a second, and the first submit after that reloads it inline: a
round trip more on that submit's path, and a hand-over submit cannot run from the event
loop then (``Fleet.hand_over_unit`` needs the cache loaded), so it goes the thread way,
reading before it writes. Traces of the benchmark's W3 showed that submit among the
slowest each second. Here the loop has it reloaded on a thread every third of its life,
from the server's start (in the background: a store still unreachable does not hold the
start up). A reload that fails keeps the last answer until it expires; requests then
reload it themselves, or fail as the store does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from coordinator.quotas import QuotaCache

log = logging.getLogger("fleetlog.http")

REFRESHES_PER_TTL = 3
"""Reloads per cache lifetime: a reload may come a third of it late and still be in time."""


class QuotaRefresher:
    def __init__(self, cache: QuotaCache, run: Callable[..., Awaitable[Any]]):
        self.cache = cache
        self.run = run
        """Runs the (synchronous) reload on a thread (``Api.run``)."""
        self.interval = cache.ttl / REFRESHES_PER_TTL
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Load at once (in the background: a store still unreachable does not hold up the
        server's start), then keep it fresh."""
        self._task = asyncio.get_running_loop().create_task(self._keep_fresh(), name="fleetlog-quota-refresh")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _keep_fresh(self) -> None:
        while True:
            await self._refresh()
            await asyncio.sleep(self.interval)

    async def _refresh(self) -> None:
        try:
            await self.run(self.cache.refresh)
        except Exception:  # a background task: log loudly, keep going
            log.exception("quota cache refresh failed")

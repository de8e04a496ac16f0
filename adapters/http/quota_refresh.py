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
reload it themselves, or fail as the store does. An outage is logged once, with its
error, when the first reload fails, and once more when a reload works again (with how
many failed meanwhile), not three times a second while it lasts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from coordinator.quotas import QuotaCache
from domain.errors import DomainError

log = logging.getLogger("fleetlog.http")

REFRESHES_PER_TTL = 3
"""Reloads per cache lifetime: a reload may come a third of it late and still be in time."""


class QuotaRefresher:
    def __init__(self, cache: QuotaCache, run: Callable[..., Awaitable[Any]]):
        self.cache = cache
        self.run = run
        """Runs the (synchronous) reload on a thread (``Api.run``)."""
        self.interval = cache.ttl / REFRESHES_PER_TTL
        self.failures = 0
        """Reloads failed in a row (0: the last one worked)."""
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
        except Exception as exc:  # a background task: log the outage, keep going
            self.failures += 1
            if self.failures == 1:
                log.error(
                    "quota cache refresh failed: %s; retrying every %.2f s, logged again once it works",
                    exc,
                    self.interval,
                    exc_info=not isinstance(exc, DomainError),  # a traceback for a bug, not an outage
                )
            else:
                log.debug("quota cache refresh failed again (%d in a row)", self.failures, exc_info=True)
        else:
            if self.failures:
                log.warning("quota cache refresh works again after %d failed reloads", self.failures)
            self.failures = 0

"""Analytics inside a server process: the ClickHouse connection, the consumer thread,
and what the API asks of them.

ClickHouse may be down when the server starts: the server starts anyway, the thread
keeps trying to connect (exponential backoff with jitter), and the analytics routes
answer 503 until it has. The event log keeps everything meanwhile; the consumer
catches up once connected.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import datetime
from typing import Any

from adapters.analytics.analytics import ClickHouseAnalytics
from adapters.analytics.client import AnalyticsSettings, open_client
from adapters.analytics.queries import AnalyticsQueries
from coordinator.analytics import (
    PROJECTION,
    AnalyticsConsumer,
    AnalyticsStatus,
    ConsumerConfig,
    analytics_status,
)
from coordinator.errors import Unavailable
from coordinator.fleet import Fleet

log = logging.getLogger("fleetlog.analytics")


def member_name() -> str:
    """Who a consumer is, in the position row and the logs."""
    return f"{socket.gethostname()}:{os.getpid()}"


class AnalyticsRuntime:
    def __init__(self, fleet: Fleet, settings: AnalyticsSettings, config: ConsumerConfig | None = None):
        self.fleet = fleet
        self.settings = settings
        self.config = config or ConsumerConfig()
        self._analytics: ClickHouseAnalytics | None = None
        self._queries: AnalyticsQueries | None = None
        """On a client of its own: an analyst's slow query must not hold up the consumer
        (chDB serialises the calls of one client)."""
        self.consumer: AnalyticsConsumer | None = None
        self._opening_lock = threading.Lock()

    # -------------------------------------------------------------- lifecycle

    def run(self, stop: threading.Event) -> None:
        """Connect (retrying while ClickHouse is down), then follow the log until ``stop``."""
        delay = 0.5
        while not stop.is_set():
            try:
                analytics = self.open()
            except Unavailable as exc:
                log.warning("analytics: %s; retrying in %.1f s", exc.message, delay)
                stop.wait(delay * (0.5 + self.fleet.ctx.random.sample()))
                delay = min(delay * 2, self.config.retry_max_seconds)
                continue
            consumer = AnalyticsConsumer(
                self.fleet.ctx.store,
                analytics,
                self.fleet.ctx.clock,
                config=self.config,
                member=member_name(),
            )
            self.consumer = consumer
            consumer.run(stop)
            return

    def open(self) -> ClickHouseAnalytics:
        with self._opening_lock:
            if self._analytics is None:
                self._analytics = ClickHouseAnalytics.open(self.settings)
                self._queries = AnalyticsQueries(open_client(self.settings), self.settings)
                log.info(
                    "analytics: writing to %s, database %s", self.settings.describe(), self.settings.database
                )
            return self._analytics

    def close(self) -> None:
        with self._opening_lock:
            if self._queries is not None:
                self._queries.close()
                self._queries = None
            if self._analytics is not None:
                self._analytics.close()
                self._analytics = None

    # ------------------------------------------------------------- the API's

    def _connected(self) -> AnalyticsQueries:
        if self._queries is None:
            self.open()  # Unavailable (503, Retry-After) while ClickHouse is down
        assert self._queries is not None
        return self._queries

    def status(self) -> dict[str, Any]:
        status: AnalyticsStatus = analytics_status(self.fleet.ctx.store, self.fleet.ctx.clock, PROJECTION)
        data = status.to_json()
        data["sink"] = self.settings.describe()
        data["database"] = self.settings.database
        data["connected"] = self._analytics is not None
        c = self.consumer
        if c is not None:
            s = c.stats
            data["consumer"] = {
                "leader": c.is_leader(),
                "batches": s.batches,
                "events": s.events,
                "rows": s.rows,
                "write_failures": s.write_failures,
                "last_error": s.last_error,
                "batch_size": s.batch_size,
                "active_parts_max": s.parts,
                "merges_running": s.merges,
            }
        return data

    def runs(
        self, tenant: str, since: datetime, until: datetime, queue: str | None, limit: int
    ) -> list[dict[str, Any]]:
        return self._connected().runs(tenant, since, until, queue=queue, limit=limit)

    def throughput(self, tenant: str, since: datetime, until: datetime, bucket: str) -> list[dict[str, Any]]:
        return self._connected().throughput(tenant, since, until, bucket)  # type: ignore[arg-type]

"""The real clock, id generator and random source, and process-wide tuning."""

from __future__ import annotations

import gc
import random
import sys
from datetime import UTC, datetime
from uuid import UUID

import uuid6


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class Uuid7Ids:
    """Time-ordered ids: new jobs land at the end of the primary-key index."""

    def new_id(self) -> UUID:
        return UUID(bytes=uuid6.uuid7().bytes)


class SystemRandom:
    def __init__(self, seed: int | None = None):
        self._random = random.Random(seed)

    def sample(self) -> float:
        return self._random.random()


def freeze_startup_objects() -> None:
    """For a long-running process, once it is set up: collect what starting left behind,
    then move everything still alive (modules, schemas, models, the app) out of the
    cyclic garbage collector's reach (``gc.freeze``). A full collection then walks only
    what the process allocated since: under load, ``fleetlog serve`` paused 66 ms in one
    every few seconds, and a worker 24-32 ms, stalling every request or job in flight."""
    gc.collect()
    gc.freeze()


SERVER_SWITCH_INTERVAL_SECONDS = 0.0005
"""``fleetlog serve``'s GIL switch interval (CPython's default is 5 ms). The server's
event loop thread, busy with HTTP, kept the GIL up to the whole interval while a
transaction thread whose PostgreSQL answer had arrived waited for it: under W3 load the
submit's round trip measured p50 4.1 / p99 20 ms in the server against 1.8 / 8.1 ms
inside PostgreSQL. Same-session A/B, four pairs at 200 jobs/s: p99 7.5-12.9 against
12.5-18.4 ms; the HTTP drain 727-1,069 against 630-869 jobs/s. Only the server: in the
workers (busy handler threads) the same setting slowed drains by 20-75 %."""
MAX_SWITCH_INTERVAL_SECONDS = 0.1


def set_switch_interval(seconds: float) -> None:
    """How long a thread may keep the GIL while another waits for it (process-wide)."""
    if not 0 < seconds <= MAX_SWITCH_INTERVAL_SECONDS:
        raise ValueError(f"a switch interval is 0-{MAX_SWITCH_INTERVAL_SECONDS:g} seconds, got {seconds}")
    sys.setswitchinterval(seconds)

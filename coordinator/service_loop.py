"""The shape every background service shares (River's): a validated Config with named
defaults, ``run_once()`` returning counts, and ``run(stop)`` looping with jitter."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from coordinator.errors import Conflict, Unavailable
from coordinator.ports import RandomSource

log = logging.getLogger("fleetlog.services")


class ServiceConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    interval_seconds: Annotated[float, Field(gt=0, le=3600)] = 1.0
    jitter: Annotated[float, Field(ge=0, le=1)] = 0.1
    """Spread of the interval (0.1 = +/-10%) so services in several processes drift apart."""
    batch_size: Annotated[int, Field(ge=1, le=10_000)] = 100
    """Jobs per transaction; a pass keeps taking batches until one comes back short."""


def run_loop(
    name: str,
    run_once: Callable[[], object],
    config: ServiceConfig,
    stop: threading.Event,
    random: RandomSource,
) -> None:
    while not stop.is_set():
        try:
            result = run_once()
            log.debug("%s: %s", name, result)
        except (Conflict, Unavailable) as exc:
            # Transient (the store is busy or briefly unreachable): try again next tick.
            log.warning("%s pass failed, will retry: %s", name, exc)
        spread = config.jitter * (2.0 * random.sample() - 1.0)
        stop.wait(config.interval_seconds * (1.0 + spread))

"""The worker runtime: claims jobs, runs handlers, renews leases, reports outcomes.

``Worker`` drives a ``FleetPort``; ``DirectPort`` implements the port in-process over a
``Fleet`` (the HTTP transport implements the same port). Nothing is built at import.
"""

from __future__ import annotations

from adapters.worker.config import WorkerConfig
from adapters.worker.context import Handler, JobContext, LeaseLost, NonRetryable
from adapters.worker.port import FleetPort
from adapters.worker.runtime import Worker

__all__ = ["FleetPort", "Handler", "JobContext", "LeaseLost", "NonRetryable", "Worker", "WorkerConfig"]

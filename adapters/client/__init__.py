"""A typed client for Fleetlog's HTTP API (``FleetClient``), with retries that know
which calls are safe to repeat and failures mapped back to the coordinator's errors.
Nothing is built at import."""

from __future__ import annotations

from adapters.client.client import UNSET, FleetClient
from adapters.client.errors import ApiError
from adapters.client.interrupt import Interrupter
from adapters.client.retry import RetryPolicy

__all__ = ["UNSET", "ApiError", "FleetClient", "Interrupter", "RetryPolicy"]

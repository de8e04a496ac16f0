"""Errors of the analytics fold: a consumer that feeds it wrongly, never bad data."""

from __future__ import annotations

from uuid import UUID


class AnalyticsFoldError(Exception):
    retryable = False


class NotPrimed(AnalyticsFoldError, LookupError):
    """An event arrived for an aggregate whose earlier events the fold has not seen (or
    has forgotten): the consumer should have asked ``needs_priming`` and called ``prime``."""

    def __init__(self, originator_id: UUID, version: int, have: int | None):
        self.fields = {"originator_id": originator_id, "version": version, "have": have}
        known = "no context" if have is None else f"context at version {have}"
        super().__init__(f"event {version} of {originator_id} arrived with {known}; prime it first")


class UnknownAggregate(AnalyticsFoldError, TypeError):
    """A creating event of an aggregate type the fold has no rows for."""

    def __init__(self, event_type: str):
        self.fields = {"event_type": event_type}
        super().__init__(f"no analytics context for aggregates created by {event_type}")

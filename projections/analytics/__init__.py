"""Analytics: the pure fold from domain events to rows of the ClickHouse tables."""

from __future__ import annotations

from projections.analytics.columns import COLUMNS, DESCRIPTIONS, TABLES

__all__ = ["COLUMNS", "DESCRIPTIONS", "TABLES"]

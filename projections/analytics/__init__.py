"""Analytics: the pure fold from domain events to rows of the ClickHouse tables."""

from __future__ import annotations

from projections.analytics.columns import COLUMNS, DESCRIPTIONS, TABLES
from projections.analytics.errors import AnalyticsFoldError, NotPrimed, UnknownAggregate
from projections.analytics.fold import AnalyticsFold, RowBatch

__all__ = [
    "COLUMNS",
    "DESCRIPTIONS",
    "TABLES",
    "AnalyticsFold",
    "AnalyticsFoldError",
    "NotPrimed",
    "RowBatch",
    "UnknownAggregate",
]

"""The analytics projection as a service: the consumer that follows the log into the
analytics sink, its rebuild and verify, and its lag (docs/analytics-design.md)."""

from __future__ import annotations

from coordinator.analytics.consumer import PROJECTION, AnalyticsConsumer, ConsumerConfig, LeadershipLost
from coordinator.analytics.rebuild import RebuildResult, VerifyResult, verify
from coordinator.analytics.status import AnalyticsStatus, analytics_status

__all__ = [
    "PROJECTION",
    "AnalyticsConsumer",
    "AnalyticsStatus",
    "ConsumerConfig",
    "LeadershipLost",
    "RebuildResult",
    "VerifyResult",
    "analytics_status",
    "verify",
]

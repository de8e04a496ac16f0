"""Retry delays: exponential, linear or constant backoff, capped, with jitter.

The jitter sample comes in as an argument (a float in [0, 1)), so the domain stays
deterministic; the coordinator draws it from its random source.
"""

from __future__ import annotations

from domain.job.spec import BackoffKind, RetryPolicy


def retry_delay(policy: RetryPolicy, failed_attempts: int, jitter_sample: float) -> float:
    """Seconds to wait after the ``failed_attempts``-th failure (1-based)."""
    if failed_attempts < 1:
        raise ValueError("failed_attempts starts at 1")
    if not 0.0 <= jitter_sample < 1.0:
        raise ValueError("jitter_sample must be in [0, 1)")
    n = failed_attempts
    if policy.backoff is BackoffKind.EXPONENTIAL:
        # Cap the exponent before multiplying: 2**1000 would overflow a float.
        raw = policy.base_seconds * 2.0 ** min(n - 1, 64)
    elif policy.backoff is BackoffKind.LINEAR:
        raw = policy.base_seconds * n
    else:
        raw = policy.base_seconds
    capped = min(raw, policy.max_seconds)
    spread = capped * policy.jitter * (2.0 * jitter_sample - 1.0)
    return max(0.0, min(policy.max_seconds, capped + spread))

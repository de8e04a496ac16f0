"""retry_delay: backoff shapes, the cap, and jitter bounds."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.job.spec import BackoffKind, RetryPolicy
from domain.retry import retry_delay


def policy(**overrides: Any) -> RetryPolicy:
    fields: dict[str, Any] = {"base_seconds": 1, "max_seconds": 1000, "jitter": 0}
    fields.update(overrides)
    return RetryPolicy.model_validate(fields)


@pytest.mark.parametrize(
    ("backoff", "delays"),
    [
        ("exponential", [2, 4, 8, 16, 32]),
        ("linear", [2, 4, 6, 8, 10]),
        ("constant", [2, 2, 2, 2, 2]),
    ],
)
def test_backoff_shapes(backoff: str, delays: list[float]) -> None:
    # Given a 2 s base and no jitter / When attempts 1..5 fail / Then the delays follow the shape
    shaped = policy(backoff=backoff, base_seconds=2)
    assert [retry_delay(shaped, n, 0.5) for n in range(1, 6)] == delays


@pytest.mark.parametrize("backoff", ["exponential", "linear", "constant"])
def test_cap_is_respected(backoff: str) -> None:
    capped = policy(backoff=backoff, base_seconds=10, max_seconds=25)
    assert retry_delay(capped, 50, 0.5) == (25 if backoff != "constant" else 10)


def test_exponential_does_not_overflow_after_a_thousand_attempts() -> None:
    assert retry_delay(policy(max_seconds=7 * 86_400), 1000, 0.5) == 7 * 86_400


@pytest.mark.parametrize(("sample", "expected"), [(0.0, 80.0), (0.5, 100.0), (0.75, 110.0)])
def test_jitter_spreads_around_the_delay(sample: float, expected: float) -> None:
    # Given +/-20% jitter on a constant 100 s delay / Then the sample picks within the spread
    jittered = policy(backoff="constant", base_seconds=100, jitter=0.2)
    assert retry_delay(jittered, 1, sample) == pytest.approx(expected)


def test_jitter_never_exceeds_the_cap() -> None:
    jittered = policy(backoff="constant", base_seconds=100, max_seconds=100, jitter=0.5)
    assert retry_delay(jittered, 1, 0.999) == 100


@pytest.mark.parametrize(
    ("attempts", "sample"), [(0, 0.5), (-1, 0.5), (1, 1.0), (1, -0.01), (1, float("nan"))]
)
def test_invalid_inputs_are_rejected(attempts: int, sample: float) -> None:
    with pytest.raises(ValueError):
        retry_delay(policy(), attempts, sample)


@st.composite
def policies(draw: st.DrawFn) -> RetryPolicy:
    base = draw(st.floats(0.001, 86_400))
    return RetryPolicy(
        backoff=draw(st.sampled_from(list(BackoffKind))),
        base_seconds=base,
        max_seconds=draw(st.floats(base, 7 * 86_400)),
        jitter=draw(st.floats(0, 1)),
    )


def capped_delay(retry: RetryPolicy, attempts: int) -> float:
    """The delay before jitter, computed independently of the implementation."""
    if retry.backoff == "exponential":
        raw = retry.base_seconds * 2.0 ** min(attempts - 1, 1023)
    elif retry.backoff == "linear":
        raw = retry.base_seconds * attempts
    else:
        raw = retry.base_seconds
    return min(raw, retry.max_seconds)


@settings(max_examples=300)
@given(policies(), st.integers(1, 1000), st.floats(0, 1, exclude_max=True))
def test_delay_is_bounded_and_within_jitter_of_the_capped_delay(
    retry: RetryPolicy, attempts: int, sample: float
) -> None:
    delay = retry_delay(retry, attempts, sample)
    capped = capped_delay(retry, attempts)
    assert 0 <= delay <= retry.max_seconds
    # A few ulps of slack: capped + spread rounds to the float grid around ``capped``.
    assert abs(delay - capped) <= capped * retry.jitter + 4 * math.ulp(capped)


@settings(max_examples=100)
@given(policies(), st.integers(1, 999))
def test_without_jitter_delays_never_shrink(retry: RetryPolicy, attempts: int) -> None:
    steady = retry.model_copy(update={"jitter": 0.0})
    assert retry_delay(steady, attempts + 1, 0.5) >= retry_delay(steady, attempts, 0.5)

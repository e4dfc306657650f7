"""The policy values: product defaults, validation, and the backoff arithmetic per jitter kind."""

from __future__ import annotations

import math
from random import Random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestr8._workflow._policy import (
    BulkheadPolicy,
    CircuitBreakerPolicy,
    Policy,
    RateLimitPolicy,
    RetryPolicy,
)

HUGE_ATTEMPTS = [10**3, 10**6, 10**18, 10**400]


def test_defaults_follow_the_product_spec() -> None:
    """Timeout 30 s; 3 attempts from 1 s doubling to 10 s with full jitter; breaker 5/60 s/3."""
    policy = Policy()
    assert policy.timeout == 30.0
    assert policy.retry == RetryPolicy(
        max_attempts=3, initial_delay=1.0, max_delay=10.0, multiplier=2.0, jitter="full"
    )
    assert policy.circuit_breaker == CircuitBreakerPolicy(
        failure_threshold=5, reset_timeout=60.0, half_open_requests=3
    )
    assert policy.deadline is None
    assert policy.bulkhead is None
    assert policy.rate_limit is None
    assert policy.key is None


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda: RetryPolicy(max_attempts=0), "max_attempts must be at least 1"),
        (lambda: RetryPolicy(initial_delay=-1.0), "initial_delay must be 0 or more"),
        (lambda: RetryPolicy(multiplier=0.0), "multiplier must be greater than 0"),
        (lambda: RetryPolicy(jitter="some"), "jitter"),  # type: ignore[arg-type]
        (lambda: CircuitBreakerPolicy(half_open_requests=0), "half_open_requests"),
        (lambda: BulkheadPolicy(max_concurrent=0), "max_concurrent must be at least 1"),
        (lambda: RateLimitPolicy(rate=0.0, burst=1), "rate must be greater than 0"),
        (lambda: Policy(timeout=0.0), "timeout must be greater than 0"),
        (lambda: Policy(deadline=-1.0), "deadline must be greater than 0"),
    ],
)
def test_invalid_values_are_refused_with_the_field_name(factory: object, message: str) -> None:
    """Each out-of-range value raises ValueError naming the field."""
    with pytest.raises(ValueError, match=message):
        factory()  # type: ignore[operator]


def test_backoff_doubles_from_the_initial_delay_up_to_the_cap() -> None:
    """Delay n is min(max_delay, initial_delay * multiplier**(n-1)): 1, 2, 4, 8, 10, 10."""
    policy = RetryPolicy(initial_delay=1.0, max_delay=10.0, multiplier=2.0)
    assert [policy.backoff_delay(n) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


@pytest.mark.parametrize("attempt", HUGE_ATTEMPTS)
def test_backoff_does_not_overflow_at_huge_attempt_numbers(attempt: int) -> None:
    """A huge attempt number yields max_delay (growing), initial_delay (flat) or ~0 (shrinking)."""
    assert RetryPolicy(multiplier=2.0).backoff_delay(attempt) == 10.0
    assert RetryPolicy(multiplier=1.0, initial_delay=3.0).backoff_delay(attempt) == 3.0
    assert 0.0 <= RetryPolicy(multiplier=0.5).backoff_delay(attempt) < 1e-300


def test_a_zero_initial_delay_never_waits() -> None:
    """With initial_delay 0 every delay is 0, even at attempt numbers where the power overflows."""
    policy = RetryPolicy(initial_delay=0.0, multiplier=10.0)
    assert policy.backoff_delay(1) == 0.0
    assert policy.backoff_delay(10**6) == 0.0


def test_backoff_rejects_attempt_numbers_below_one() -> None:
    """Attempts are numbered from 1."""
    with pytest.raises(ValueError, match="attempt must be at least 1"):
        RetryPolicy().backoff_delay(0)


def test_no_jitter_gives_the_exact_delay_and_draws_nothing() -> None:
    """`none` returns the backoff itself and leaves the random source untouched."""
    random = Random(7)
    state = random.getstate()
    policy = RetryPolicy(jitter="none")
    assert [policy.compute_delay(n, random) for n in (1, 2, 3, 10**6)] == [1.0, 2.0, 4.0, 10.0]
    assert random.getstate() == state


def test_full_jitter_draws_from_zero_to_the_delay() -> None:
    """`full` is U(0, d), the same value for the same seed."""
    policy = RetryPolicy(jitter="full")
    delays = [policy.compute_delay(3, Random(seed)) for seed in range(200)]
    assert all(0.0 <= delay <= 4.0 for delay in delays)
    assert min(delays) < 0.5
    assert max(delays) > 3.5
    assert policy.compute_delay(3, Random(1)) == Random(1).uniform(0.0, 4.0)


def test_equal_jitter_draws_from_half_the_delay_to_the_delay() -> None:
    """`equal` is d/2 + U(0, d/2)."""
    policy = RetryPolicy(jitter="equal")
    delays = [policy.compute_delay(3, Random(seed)) for seed in range(200)]
    assert all(2.0 <= delay <= 4.0 for delay in delays)
    assert min(delays) < 2.25
    assert max(delays) > 3.75
    assert policy.compute_delay(3, Random(1)) == 2.0 + Random(1).uniform(0.0, 2.0)


def test_jitter_works_without_a_random_source() -> None:
    """Without `random` a module-wide source is used."""
    assert 0.0 <= RetryPolicy(jitter="full").compute_delay(1) <= 1.0


@given(
    initial_delay=st.floats(min_value=0.0, max_value=1e6),
    max_delay=st.floats(min_value=0.0, max_value=1e6),
    multiplier=st.floats(min_value=1e-3, max_value=1e3),
    attempt=st.one_of(st.integers(min_value=1, max_value=2000), st.sampled_from(HUGE_ATTEMPTS)),
    jitter=st.sampled_from(["full", "equal", "none"]),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_every_delay_is_finite_and_within_its_jitter_bounds(
    initial_delay: float,
    max_delay: float,
    multiplier: float,
    attempt: int,
    jitter: str,
    seed: int,
) -> None:
    """For any policy and attempt, the delay is finite and inside the bounds of its jitter kind."""
    policy = RetryPolicy(
        initial_delay=initial_delay,
        max_delay=max_delay,
        multiplier=multiplier,
        jitter=jitter,  # type: ignore[arg-type]
    )
    base = policy.backoff_delay(attempt)
    assert math.isfinite(base)
    assert 0.0 <= base <= max_delay
    delay = policy.compute_delay(attempt, Random(seed))
    low = {"full": 0.0, "equal": base / 2, "none": base}[jitter]
    assert low <= delay <= base

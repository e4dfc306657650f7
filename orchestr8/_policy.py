"""Resilience policies as frozen values: what the workflow JSON says, and what the pipeline obeys.

The defaults are the product's: a 30 s attempt timeout; 3 attempts (calls, not retries) starting at
1 s, doubling, capped at 10 s, with full jitter; a breaker that opens after 5 consecutive failures,
waits 60 s, then admits 3 concurrent probes.
"""

from __future__ import annotations

from typing import Literal

import attrs

Jitter = Literal["full", "equal", "none"]


def _positive(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be greater than 0, got {value!r}")


def _not_negative(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value >= 0:
        raise ValueError(f"{attribute.name} must be 0 or more, got {value!r}")


def _optional_positive(
    instance: object, attribute: attrs.Attribute[float | None], value: float | None
) -> None:
    if value is not None and not value > 0:
        raise ValueError(f"{attribute.name} must be greater than 0, got {value!r}")


def _at_least_one(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 1:
        raise ValueError(f"{attribute.name} must be at least 1, got {value!r}")


@attrs.frozen
class RetryPolicy:
    """How often and how patiently a failing call is tried again (`max_attempts` counts calls)."""

    max_attempts: int = attrs.field(default=3, validator=_at_least_one)
    initial_delay: float = attrs.field(default=1.0, validator=_not_negative)
    max_delay: float = attrs.field(default=10.0, validator=_not_negative)
    multiplier: float = attrs.field(default=2.0, validator=_positive)
    jitter: Jitter = attrs.field(
        default="full", validator=attrs.validators.in_(("full", "equal", "none"))
    )


@attrs.frozen
class CircuitBreakerPolicy:
    """When a circuit breaker opens, how long it stays open, and how many probes it admits."""

    failure_threshold: int = attrs.field(default=5, validator=_at_least_one)
    reset_timeout: float = attrs.field(default=60.0, validator=_not_negative)
    half_open_requests: int = attrs.field(default=3, validator=_at_least_one)


@attrs.frozen
class BulkheadPolicy:
    """At most `max_concurrent` calls at once; a caller waits up to `max_wait` seconds for a slot."""

    max_concurrent: int = attrs.field(validator=_at_least_one)
    max_wait: float = attrs.field(default=0.0, validator=_not_negative)


@attrs.frozen
class RateLimitPolicy:
    """A token bucket: `rate` tokens per second, at most `burst` stored, waiting up to `max_wait`."""

    rate: float = attrs.field(validator=_positive)
    burst: int = attrs.field(validator=_at_least_one)
    max_wait: float = attrs.field(default=0.0, validator=_not_negative)


@attrs.frozen
class Policy:
    """Everything the resilience pipeline needs for one call, mirroring a workflow step's `policy`.

    `timeout` bounds each attempt and `deadline` all attempts together (None: unbounded);
    `circuit_breaker` None means no breaker; `key` names the breaker (default: the agent id).
    """

    timeout: float | None = attrs.field(default=30.0, validator=_optional_positive)
    retry: RetryPolicy = attrs.field(factory=RetryPolicy)
    circuit_breaker: CircuitBreakerPolicy | None = attrs.field(factory=CircuitBreakerPolicy)
    deadline: float | None = attrs.field(default=None, validator=_optional_positive)
    bulkhead: BulkheadPolicy | None = None
    rate_limit: RateLimitPolicy | None = None
    key: str | None = None

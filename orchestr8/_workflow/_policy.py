"""Resilience policies as frozen values: what the workflow JSON says, and what the pipeline obeys.

The defaults are the product's: a 30 s attempt timeout; 3 attempts (calls, not retries) starting at
1 s, doubling, capped at 10 s, with full jitter; a breaker that opens after 5 consecutive failures,
waits 60 s, then admits 3 concurrent probes.
"""

from __future__ import annotations

import math
from random import Random
from typing import Any, Literal

import attrs

Jitter = Literal["full", "equal", "none"]

#: Where a bulkhead or rate limit counts: in each process, or across every process on the database.
Scope = Literal["process", "global"]

#: The random source of jittered delays when the caller passes none (tests pass a seeded one).
_DEFAULT_RANDOM = Random()


def _positive(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be greater than 0, got {value!r}")


def _not_negative(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value >= 0:
        raise ValueError(f"{attribute.name} must be 0 or more, got {value!r}")


def _optional_positive(
    instance: object, attribute: attrs.Attribute[Any], value: float | None
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

    def backoff_delay(self, attempt: int) -> float:
        """The delay before the retry that follows attempt `attempt` (1-based), before jitter.

        It is `min(max_delay, initial_delay * multiplier ** (attempt - 1))`, computed without
        overflow however large `attempt` is: a power too large for a float is simply capped.
        """
        if attempt < 1:
            raise ValueError(f"attempt must be at least 1, got {attempt!r}")
        if self.initial_delay == 0:
            return 0.0
        try:
            growth = self.multiplier ** (attempt - 1)
        except OverflowError:
            # Only reached for huge exponents, where the true power is 0, 1 or beyond any delay.
            if self.multiplier > 1:
                growth = math.inf
            elif self.multiplier == 1:
                growth = 1.0
            else:
                growth = 0.0
        return min(self.max_delay, self.initial_delay * growth)

    def compute_delay(self, attempt: int, random: Random | None = None) -> float:
        """The jittered delay after attempt `attempt`; pass a seeded `random` for repeatable tests.

        With `d = backoff_delay(attempt)`: `full` draws from U(0, d), `equal` is d/2 + U(0, d/2),
        `none` is d. Both bounds are inclusive.
        """
        delay = self.backoff_delay(attempt)
        if self.jitter == "none":
            return delay
        source = _DEFAULT_RANDOM if random is None else random
        if self.jitter == "full":
            return source.uniform(0.0, delay)
        half = delay / 2
        return half + source.uniform(0.0, half)


@attrs.frozen
class CircuitBreakerPolicy:
    """When a circuit breaker opens, how long it stays open, and how many probes it admits."""

    failure_threshold: int = attrs.field(default=5, validator=_at_least_one)
    reset_timeout: float = attrs.field(default=60.0, validator=_not_negative)
    half_open_requests: int = attrs.field(default=3, validator=_at_least_one)


@attrs.frozen
class BulkheadPolicy:
    """At most `max_concurrent` calls at once; a caller waits up to `max_wait` s for a slot.

    `scope` "global": at most that many across every process sharing a PostgreSQL journal.
    """

    max_concurrent: int = attrs.field(validator=_at_least_one)
    max_wait: float = attrs.field(default=0.0, validator=_not_negative)
    scope: Scope = attrs.field(
        default="process", validator=attrs.validators.in_(("process", "global"))
    )


@attrs.frozen
class RateLimitPolicy:
    """A token bucket: `rate` tokens a second, at most `burst` stored, waiting up to `max_wait`.

    `scope` "global": one bucket shared by every process sharing a PostgreSQL journal.
    """

    rate: float = attrs.field(validator=_positive)
    burst: int = attrs.field(validator=_at_least_one)
    max_wait: float = attrs.field(default=0.0, validator=_not_negative)
    scope: Scope = attrs.field(
        default="process", validator=attrs.validators.in_(("process", "global"))
    )


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

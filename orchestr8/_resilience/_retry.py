"""Retry decisions: which errors are worth another attempt, and how long to wait before it.

The retry loop itself lives in `_pipeline.call_with_policy`, fused with the other layers so that a
call that succeeds at once pays for no extra frames. This module holds the pure rules it applies:

- `is_retryable` is the default classification. Never retried: `NonRetryableError` and its
  subclasses, `InputValidationError`, `CircuitOpenError` (the breaker already says when to come
  back), `DeadlineExceededError` (no time is left) and `CallStoppedError` (the caller stopped).
  Every other `Exception` is retried, including `AttemptTimeoutError` and the rejections
  `BulkheadFullError` and `RateLimitedError`. `trio.Cancelled` is not an `Exception` and is never
  seen here.
- `retry_delay` is the jittered backoff of the `RetryPolicy`, raised to the error's `retry_after`
  when the error carries one (`RetryableError`, `RateLimitedError`, `CircuitOpenError`): the
  agent, or the layer that refused the call, knows best when trying again can succeed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from random import Random
from typing import Final

from .._errors import (
    CallStoppedError,
    CircuitOpenError,
    DeadlineExceededError,
    InputValidationError,
    NonRetryableError,
    RateLimitedError,
    RetryableError,
)
from .._workflow._policy import RetryPolicy

#: Errors that `is_retryable` never retries (subclasses included).
NON_RETRYABLE_ERRORS: Final[tuple[type[Exception], ...]] = (
    NonRetryableError,
    InputValidationError,
    CircuitOpenError,
    DeadlineExceededError,
    CallStoppedError,
)

#: Decides whether an attempt's error deserves another attempt (if attempts and time are left).
RetryPredicate = Callable[[Exception], bool]


def is_retryable(error: Exception) -> bool:
    """Whether `error` is worth another attempt by default (the rules: the module docstring)."""
    return not isinstance(error, NON_RETRYABLE_ERRORS)


def retry_after_of(error: BaseException) -> float | None:
    """The minimum wait that `error` asks for before the next attempt, or None if it names none."""
    if isinstance(error, (RetryableError, RateLimitedError, CircuitOpenError)):
        retry_after = error.retry_after
        # NaN and negative hints say nothing useful; `>= 0` rejects both.
        if retry_after is not None and retry_after >= 0:
            return float(retry_after)
    return None


def retry_delay(
    policy: RetryPolicy, attempt: int, error: BaseException, random: Random | None = None
) -> float:
    """The wait after failed attempt `attempt`: the jittered backoff, but at least `retry_after`.

    Args:
        policy: The backoff schedule and jitter kind.
        attempt: The 1-based number of the attempt that just failed.
        error: That attempt's error; its `retry_after` (if any) is a lower bound on the result.
        random: The random source for jitter; pass a seeded `random.Random` for repeatable tests.

    Returns:
        The delay in seconds; `math.inf` only if the error asks to wait forever.
    """
    delay = policy.compute_delay(attempt, random)
    retry_after = retry_after_of(error)
    if retry_after is not None and retry_after > delay:
        return retry_after
    return delay


def may_retry(
    policy: RetryPolicy,
    attempt: int,
    error: Exception,
    should_retry: RetryPredicate = is_retryable,
) -> bool:
    """Whether another attempt may follow attempt `attempt`, before the deadline is considered.

    False after the last attempt (`max_attempts` counts calls) or when `should_retry` says no.
    """
    return attempt < policy.max_attempts and should_retry(error)


def backoff_fits(now: float, delay: float, deadline_at: float) -> bool:
    """Whether a backoff of `delay` started at `now` ends before `deadline_at`, leaving time to try.

    A backoff that would end at or after the deadline is not started: the next attempt would have
    no time at all. An infinite delay never fits, so nobody sleeps forever.
    """
    return delay != math.inf and now + delay < deadline_at

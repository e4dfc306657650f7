"""The resilience pipeline: run one callable under a `Policy`, every layer in the documented order.

Outer to inner: total deadline, retry, circuit breaker, bulkhead, rate limiter, attempt timeout,
the callable. The layers are fused into one loop rather than nested wrappers, and layers that are
absent cost nothing, so a call that succeeds at once pays for one `CancelScope` (when there is a
timeout or a deadline) and a few attribute reads.

The total deadline needs no scope of its own. Virtual time passes in only three places, and each
is bounded by the deadline: an attempt runs under one `CancelScope` whose deadline is the earlier
of the attempt timeout and the total deadline; waits for a bulkhead slot or a rate-limiter token
are limited to the time left (a wait cut short that way is an ordinary rejection); and a backoff
that would end at or after the deadline is not started at all.

A `stop` event ends the call early without cancelling what runs: once it is set no new attempt
starts and no backoff begins or goes on, and `CallStoppedError` is raised (caused by the last
attempt's error). The engine sets it when an execution is being cancelled or timed out, so the
grace period lets the running attempt finish but never buys new ones; the attempt that runs is
left to the cancellation itself. Checking it costs one method call per attempt.

Every rule, with the reasons, is in `docs/resilience.md`.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from random import Random
from typing import Protocol, TypeVar

import trio

from .._errors import (
    AttemptTimeoutError,
    BulkheadFullError,
    CallStoppedError,
    CircuitOpenError,
    DeadlineExceededError,
    RateLimitedError,
)
from .._observability._telemetry import retry_span
from .._workflow._policy import Policy
from ._breaker import CircuitBreaker
from ._limits import Bulkhead, RateLimiter
from ._retry import RetryPredicate, backoff_fits, is_retryable, may_retry, retry_delay

T = TypeVar("T")

#: The errors with which an admission layer refuses a call before it is made.
Rejection = CircuitOpenError | BulkheadFullError | RateLimitedError


class PipelineListener(Protocol):
    """Synchronous callbacks about one call's attempts, so the engine can journal them.

    They run inline on the pipeline's task: they must be quick, must not block and must not raise.
    For each attempt number exactly one of these happens: `rejected` (a layer refused it; the
    callable was not called), or `attempt_started` followed by `attempt_failed` unless the
    attempt succeeded or was cancelled from outside.
    """

    def attempt_started(self, attempt: int) -> None:
        """Attempt `attempt` (1-based) passed every admission layer; its callable runs now."""

    def attempt_failed(self, attempt: int, error: Exception) -> None:
        """Attempt `attempt` raised `error` (its own error, `AttemptTimeoutError` or a deadline)."""

    def retry_scheduled(self, attempt: int, delay: float) -> None:
        """Attempt `attempt` failed or was rejected; attempt `attempt + 1` starts in `delay` s."""

    def rejected(self, attempt: int, error: Rejection) -> None:
        """Attempt `attempt` was refused by the breaker, the bulkhead or the rate limiter."""


async def call_with_policy(
    fn: Callable[[int], Awaitable[T]],
    policy: Policy,
    *,
    breaker: CircuitBreaker | None = None,
    bulkhead: Bulkhead | None = None,
    rate_limiter: RateLimiter | None = None,
    listener: PipelineListener | None = None,
    random: Random | None = None,
    should_retry: RetryPredicate = is_retryable,
    stop: trio.Event | None = None,
) -> T:
    """Call `await fn(attempt)` under `policy`: deadline, retry, breaker, limits, attempt timeout.

    The layer objects are passed in because they are shared state (a breaker is shared by every
    call to one agent); `policy` supplies the timeout, the retry schedule and the deadline. Its
    `circuit_breaker`, `bulkhead` and `rate_limit` parts describe how to build those objects and
    are not read here.

    Args:
        fn: The callable, given the 1-based attempt number of each call.
        policy: The step's resilience policy.
        breaker: The circuit breaker for the callable's key, or None for no breaker.
        bulkhead: The bulkhead bounding concurrent calls, or None.
        rate_limiter: The rate limiter bounding call starts, or None.
        listener: Told about attempts, failures, retries and rejections, or None.
        random: The random source of backoff jitter; seed one for repeatable runs.
        should_retry: Whether an error deserves another attempt (default `is_retryable`).
        stop: Once set, no attempt starts and no backoff goes on (the running attempt is not
            touched); None for a call that only cancellation ends.

    Returns:
        The result of the first attempt that succeeds.

    Raises:
        AttemptTimeoutError: the last attempt ran past `policy.timeout`.
        DeadlineExceededError: `policy.deadline` cut an attempt short.
        CircuitOpenError, BulkheadFullError, RateLimitedError: the last attempt was refused.
        CallStoppedError: `stop` was set before an attempt that would otherwise have started.
        Exception: otherwise the last attempt's own error, unwrapped.
    """
    retry = policy.retry
    deadline_at = math.inf if policy.deadline is None else trio.current_time() + policy.deadline
    attempt = 0
    last_error: Exception | None = None
    while True:
        attempt += 1
        try:
            return await _attempt(
                fn, attempt, policy, deadline_at, breaker, bulkhead, rate_limiter, listener, stop
            )
        except CallStoppedError as stopped:
            raise stopped from last_error
        except Exception as error:
            if not may_retry(retry, attempt, error, should_retry):
                raise
            if stop is not None and stop.is_set():
                raise _stopped(attempt + 1) from error
            delay = retry_delay(retry, attempt, error, random)
            if not backoff_fits(trio.current_time(), delay, deadline_at):
                raise
            last_error = error
        if listener is not None:
            listener.retry_scheduled(attempt, delay)
        with retry_span(delay, attempt=attempt):
            if stop is None:
                await trio.sleep(delay)
            else:
                with trio.move_on_after(delay):
                    await stop.wait()
                if stop.is_set():
                    raise _stopped(attempt + 1) from last_error


def _stopped(attempt: int) -> CallStoppedError:
    """The error for attempt `attempt` not started because the call's stop signal was set."""
    return CallStoppedError(f"attempt {attempt} was not started: the call was stopped")


async def _attempt(
    fn: Callable[[int], Awaitable[T]],
    attempt: int,
    policy: Policy,
    deadline_at: float,
    breaker: CircuitBreaker | None,
    bulkhead: Bulkhead | None,
    rate_limiter: RateLimiter | None,
    listener: PipelineListener | None,
    stop: trio.Event | None,
) -> T:
    """One attempt through the breaker, the admission limits and the attempt timeout."""
    if stop is not None and stop.is_set():
        raise _stopped(attempt)
    ticket = 0
    if breaker is not None:
        try:
            ticket = breaker.admit()
        except CircuitOpenError as error:
            if listener is not None:
                listener.rejected(attempt, error)
            raise
    if bulkhead is not None or rate_limiter is not None:
        try:
            await _admit(bulkhead, rate_limiter, deadline_at)
        except (BulkheadFullError, RateLimitedError) as error:
            if breaker is not None:
                breaker.record_neutral(ticket)
            if listener is not None:
                listener.rejected(attempt, error)
            raise
        except BaseException:
            if breaker is not None:
                breaker.record_neutral(ticket)
            raise
        if stop is not None and stop.is_set():
            # Stopped while waiting for admission: give back what was taken, start nothing.
            if breaker is not None:
                breaker.record_neutral(ticket)
            if bulkhead is not None:
                bulkhead.release()
            raise _stopped(attempt)
    deadline_cut = False
    try:
        if listener is not None:
            listener.attempt_started(attempt)
        timeout = policy.timeout
        timeout_at = math.inf if timeout is None else trio.current_time() + timeout
        if timeout_at == math.inf and deadline_at == math.inf:
            result = await fn(attempt)
        else:
            with trio.CancelScope(deadline=min(timeout_at, deadline_at)) as scope:
                result = await fn(attempt)
            if scope.cancelled_caught:
                if deadline_at > timeout_at:
                    raise AttemptTimeoutError(f"attempt {attempt} timed out after {timeout} s")
                deadline_cut = True
    except Exception as error:
        if breaker is not None:
            breaker.record_failure(ticket, error)
        if listener is not None:
            listener.attempt_failed(attempt, error)
        raise
    except BaseException:
        if breaker is not None:
            breaker.record_neutral(ticket)
        raise
    else:
        if deadline_cut:
            # The deadline is a cancellation from outside the attempt: neutral for the breaker.
            if breaker is not None:
                breaker.record_neutral(ticket)
            cut = DeadlineExceededError(
                f"deadline of {policy.deadline} s exceeded during attempt {attempt}"
            )
            if listener is not None:
                listener.attempt_failed(attempt, cut)
            raise cut
        if breaker is not None:
            breaker.record_success(ticket)
        return result
    finally:
        if bulkhead is not None:
            bulkhead.release()


async def _admit(
    bulkhead: Bulkhead | None, rate_limiter: RateLimiter | None, deadline_at: float
) -> None:
    """Take a bulkhead slot, then a rate-limiter token, waiting no later than the deadline."""
    if bulkhead is not None:
        await bulkhead.acquire(_wait_limit(bulkhead.max_wait, deadline_at))
    if rate_limiter is not None:
        try:
            await rate_limiter.acquire(_wait_limit(rate_limiter.max_wait, deadline_at))
        except BaseException:
            if bulkhead is not None:
                bulkhead.release()
            raise


def _wait_limit(max_wait: float, deadline_at: float) -> float:
    """`max_wait`, shortened so that a wait never ends after the deadline."""
    if deadline_at == math.inf:
        return max_wait
    return max(0.0, min(max_wait, deadline_at - trio.current_time()))

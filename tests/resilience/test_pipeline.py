"""The composed pipeline: deadline, retry, breaker, bulkhead, rate limiter and timeout together."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path
from typing import Any, cast

import attrs
import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

import orchestr8
from orchestr8._errors import (
    AttemptTimeoutError,
    BulkheadFullError,
    CallStoppedError,
    CircuitOpenError,
    DeadlineExceededError,
    RateLimitedError,
)
from orchestr8._resilience import _breaker, _limits, _pipeline, _retry
from orchestr8._resilience._breaker import BreakerState, CircuitBreaker
from orchestr8._resilience._limits import Bulkhead, RateLimiter
from orchestr8._resilience._pipeline import Rejection, call_with_policy
from orchestr8._workflow import _policy
from orchestr8._workflow._policy import Policy, RetryPolicy


class BoomError(Exception):
    """The failure the test agents raise."""


@attrs.define
class Recorder:
    """A pipeline listener that writes down every callback with the trio time."""

    events: list[tuple[object, ...]] = attrs.field(factory=list)

    def attempt_started(self, attempt: int) -> None:
        self.events.append(("started", attempt, trio.current_time()))

    def attempt_failed(self, attempt: int, error: Exception) -> None:
        self.events.append(("failed", attempt, type(error).__name__, trio.current_time()))

    def retry_scheduled(self, attempt: int, delay: float) -> None:
        self.events.append(("retry", attempt, delay, trio.current_time()))

    def rejected(self, attempt: int, error: Rejection) -> None:
        self.events.append(("rejected", attempt, type(error).__name__, trio.current_time()))


def policy(
    *, timeout: float | None = 30.0, deadline: float | None = None, attempts: int = 3
) -> Policy:
    """A policy with deterministic backoff: 1, 2, 4, 8, 10 s."""
    return Policy(
        timeout=timeout,
        deadline=deadline,
        retry=RetryPolicy(max_attempts=attempts, jitter="none"),
    )


async def always_fail(attempt: int) -> None:
    raise BoomError(f"attempt {attempt}")


async def hang(attempt: int) -> None:
    await trio.sleep_forever()


async def echo_attempt(attempt: int) -> int:
    return attempt


async def occupy(bulkhead: Bulkhead, release: trio.Event) -> None:
    """Hold one slot of `bulkhead` until `release` is set."""
    await bulkhead.call(release.wait)


async def test_a_call_that_succeeds_passes_through_every_layer_once(
    autojump_clock: trio.abc.Clock,
) -> None:
    """The callable gets attempt 1; the breaker, bulkhead and limiter each admit it once."""
    breaker = CircuitBreaker()
    bulkhead = Bulkhead(max_concurrent=1)
    limiter = RateLimiter(rate=1.0, burst=1)
    recorder = Recorder()
    result = await call_with_policy(
        echo_attempt,
        policy(),
        breaker=breaker,
        bulkhead=bulkhead,
        rate_limiter=limiter,
        listener=recorder,
    )
    assert result == 1
    assert recorder.events == [("started", 1, 0.0)]
    assert breaker.statistics().successes == 1
    assert bulkhead.statistics().in_use == 0
    assert limiter.statistics().admitted == 1


async def test_an_open_circuit_is_not_retried(autojump_clock: trio.abc.Clock) -> None:
    """CircuitOpenError ends the call at once: one rejection, no backoff, the agent uncalled."""
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=60.0)
    breaker.force_open()
    recorder = Recorder()
    with pytest.raises(CircuitOpenError):
        await call_with_policy(always_fail, policy(), breaker=breaker, listener=recorder)
    assert recorder.events == [("rejected", 1, "CircuitOpenError", 0.0)]
    assert trio.current_time() == 0.0


async def test_every_failed_attempt_counts_and_the_opened_circuit_stops_the_retries(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Threshold 3 with 5 attempts: attempts at 0, 1, 3 fail, then attempt 4 is rejected at 7."""
    breaker = CircuitBreaker(failure_threshold=3, reset_timeout=60.0)
    recorder = Recorder()
    with pytest.raises(CircuitOpenError) as caught:
        await call_with_policy(always_fail, policy(attempts=5), breaker=breaker, listener=recorder)
    assert caught.value.retry_after == 56.0
    assert [event for event in recorder.events if event[0] in ("started", "rejected")] == [
        ("started", 1, 0.0),
        ("started", 2, 1.0),
        ("started", 3, 3.0),
        ("rejected", 4, "CircuitOpenError", 7.0),
    ]
    assert breaker.statistics().opened_at == 3.0


async def test_an_attempt_timeout_is_a_breaker_failure(autojump_clock: trio.abc.Clock) -> None:
    """A hung attempt cut by the attempt timeout counts against the breaker."""
    breaker = CircuitBreaker(failure_threshold=2)
    with pytest.raises(AttemptTimeoutError):
        await call_with_policy(hang, policy(timeout=2.0, attempts=2), breaker=breaker)
    assert trio.current_time() == 5.0
    assert breaker.state is BreakerState.OPEN


async def test_an_outside_cancel_is_not_a_breaker_failure(autojump_clock: trio.abc.Clock) -> None:
    """Cancelling the caller neither counts against the breaker nor leaks a bulkhead slot."""
    breaker = CircuitBreaker(failure_threshold=1)
    bulkhead = Bulkhead(max_concurrent=1)
    with trio.move_on_after(1.0) as scope:
        await call_with_policy(hang, policy(timeout=2.0), breaker=breaker, bulkhead=bulkhead)
    assert scope.cancelled_caught
    assert breaker.state is BreakerState.CLOSED
    assert breaker.statistics().failures == 0
    assert bulkhead.statistics().in_use == 0


class RefusedByBudgetError(orchestr8.NonRetryableError, orchestr8.BreakerNeutral):
    """An agent's own error that says nothing about the health of what it calls."""


@pytest.mark.parametrize(
    "error",
    [
        orchestr8.BudgetExhaustedError("the workflow's budget cannot cover this model call"),
        orchestr8.TemplateInputError("variable topic has no value"),
        orchestr8.MissingAPIKeyError("provider 'anthropic' needs ANTHROPIC_API_KEY"),
        orchestr8.UnknownProviderError("no provider 'nope'"),
        RefusedByBudgetError("refused"),
    ],
)
async def test_errors_that_say_nothing_about_the_service_never_open_the_breaker(
    autojump_clock: trio.abc.Clock, error: Exception
) -> None:
    """A BreakerNeutral error, raised any number of times, is neither a failure nor a success."""

    async def refused(attempt: int) -> None:
        raise error

    breaker = CircuitBreaker(failure_threshold=1)
    for _ in range(5):
        with pytest.raises(type(error)):
            await call_with_policy(refused, policy(), breaker=breaker)
    statistics = breaker.statistics()
    assert breaker.state is BreakerState.CLOSED
    assert (statistics.failures, statistics.successes, statistics.consecutive_failures) == (0, 0, 0)


async def test_a_neutral_error_gives_back_a_half_open_probe_permit(
    autojump_clock: trio.abc.Clock,
) -> None:
    """A probe refused by a budget frees its permit; the next real success closes the breaker."""
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=10.0, half_open_requests=1)
    with pytest.raises(BoomError):
        await call_with_policy(always_fail, policy(attempts=1), breaker=breaker)
    await trio.sleep(10.0)

    async def refused(attempt: int) -> None:
        raise orchestr8.BudgetExhaustedError("no budget left")

    with pytest.raises(orchestr8.BudgetExhaustedError):
        await call_with_policy(refused, policy(), breaker=breaker)
    assert breaker.state is BreakerState.HALF_OPEN
    assert await call_with_policy(echo_attempt, policy(), breaker=breaker) == 1
    assert breaker.statistics().state is BreakerState.CLOSED


async def test_a_model_output_error_still_counts_against_the_breaker(
    autojump_clock: trio.abc.Clock,
) -> None:
    """A reply that cannot be used (an ordinary RetryableError) is a failure: it was paid for."""

    async def unusable(attempt: int) -> None:
        raise orchestr8.RetryableError("the reply is not JSON")

    breaker = CircuitBreaker(failure_threshold=2)
    with pytest.raises(CircuitOpenError):
        await call_with_policy(unusable, policy(attempts=3), breaker=breaker)
    assert breaker.statistics().failures == 2


async def test_a_backoff_that_would_end_at_or_after_the_deadline_is_not_started(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Deadline 3: attempts at 0 and 1; a 2 s backoff would end at 3, so attempt 2's error rises."""
    recorder = Recorder()
    with pytest.raises(BoomError, match="attempt 2"):
        await call_with_policy(always_fail, policy(deadline=3.0, attempts=5), listener=recorder)
    assert trio.current_time() == 1.0
    assert [event[0] for event in recorder.events] == [
        "started",
        "failed",
        "retry",
        "started",
        "failed",
    ]


async def test_a_backoff_that_ends_before_the_deadline_is_started(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Deadline 3.5: the backoff ending at 3 runs, and attempt 3 starts at 3."""
    agent_times: list[float] = []

    async def agent(attempt: int) -> None:
        agent_times.append(trio.current_time())
        raise BoomError(f"attempt {attempt}")

    with pytest.raises(BoomError, match="attempt 3"):
        await call_with_policy(agent, policy(deadline=3.5, attempts=5))
    assert agent_times == [0.0, 1.0, 3.0]


async def test_the_deadline_cuts_a_running_attempt(autojump_clock: trio.abc.Clock) -> None:
    """An attempt running at the deadline ends in DeadlineExceededError, neutral for the breaker."""
    breaker = CircuitBreaker(failure_threshold=1)
    recorder = Recorder()
    with pytest.raises(
        DeadlineExceededError, match=r"deadline of 5\.0 s exceeded during attempt 1"
    ):
        await call_with_policy(hang, policy(deadline=5.0), breaker=breaker, listener=recorder)
    assert trio.current_time() == 5.0
    assert breaker.state is BreakerState.CLOSED
    assert breaker.statistics().failures == 0
    assert recorder.events == [("started", 1, 0.0), ("failed", 1, "DeadlineExceededError", 5.0)]


async def test_the_timeout_and_the_deadline_each_end_attempts_with_their_own_error(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Timeout 2, deadline 3.5: attempt 1 times out at 2; attempt 2 (at 3) is cut at 3.5."""
    recorder = Recorder()
    with pytest.raises(DeadlineExceededError):
        await call_with_policy(hang, policy(timeout=2.0, deadline=3.5), listener=recorder)
    assert [event for event in recorder.events if event[0] == "failed"] == [
        ("failed", 1, "AttemptTimeoutError", 2.0),
        ("failed", 2, "DeadlineExceededError", 3.5),
    ]


async def test_when_timeout_and_deadline_coincide_the_deadline_wins(
    autojump_clock: trio.abc.Clock,
) -> None:
    """An attempt ending at both limits at once fails with DeadlineExceededError, not retried."""
    recorder = Recorder()
    with pytest.raises(DeadlineExceededError):
        await call_with_policy(hang, policy(timeout=5.0, deadline=5.0), listener=recorder)
    assert recorder.events == [("started", 1, 0.0), ("failed", 1, "DeadlineExceededError", 5.0)]


async def test_a_deadline_alone_bounds_a_call_without_a_timeout(
    autojump_clock: trio.abc.Clock,
) -> None:
    """With no attempt timeout, the deadline still ends a hung attempt."""
    with pytest.raises(DeadlineExceededError):
        await call_with_policy(hang, policy(timeout=None, deadline=4.0))
    assert trio.current_time() == 4.0


async def test_bulkhead_rejections_are_retried_but_never_breaker_failures(
    autojump_clock: trio.abc.Clock,
) -> None:
    """A full bulkhead refuses each attempt; the retries follow the backoff; the breaker is calm."""
    breaker = CircuitBreaker(failure_threshold=1)
    bulkhead = Bulkhead(max_concurrent=1)
    recorder = Recorder()
    release = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(occupy, bulkhead, release)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(BulkheadFullError):
            await call_with_policy(
                echo_attempt, policy(), breaker=breaker, bulkhead=bulkhead, listener=recorder
            )
        release.set()
    assert [event for event in recorder.events if event[0] == "rejected"] == [
        ("rejected", 1, "BulkheadFullError", 0.0),
        ("rejected", 2, "BulkheadFullError", 1.0),
        ("rejected", 3, "BulkheadFullError", 3.0),
    ]
    assert breaker.state is BreakerState.CLOSED
    assert breaker.statistics().failures == 0


async def test_a_probe_refused_by_the_bulkhead_frees_its_breaker_permit(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Inside a half-open breaker, a bulkhead rejection gives the probe permit back."""
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=1.0, half_open_requests=1)
    bulkhead = Bulkhead(max_concurrent=1)
    with pytest.raises(BoomError):
        await breaker.call(always_fail, 0)
    await trio.sleep(1.0)
    release = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(occupy, bulkhead, release)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(BulkheadFullError):
            await call_with_policy(
                echo_attempt, policy(attempts=1), breaker=breaker, bulkhead=bulkhead
            )
        assert breaker.state is BreakerState.HALF_OPEN
        assert breaker.statistics().probes_in_flight == 0
        release.set()
    assert await call_with_policy(echo_attempt, policy(), breaker=breaker, bulkhead=bulkhead) == 1
    assert breaker.statistics().state is BreakerState.CLOSED


async def test_a_rate_limited_attempt_is_retried_after_retry_after(
    autojump_clock: trio.abc.Clock,
) -> None:
    """The limiter's retry_after (4 s) beats the 1 s backoff; attempt 2 runs at 4 s."""
    limiter = RateLimiter(rate=0.25, burst=1)
    await limiter.acquire()
    recorder = Recorder()
    assert (
        await call_with_policy(echo_attempt, policy(), rate_limiter=limiter, listener=recorder) == 2
    )
    assert recorder.events == [
        ("rejected", 1, "RateLimitedError", 0.0),
        ("retry", 1, 4.0, 0.0),
        ("started", 2, 4.0),
    ]


async def test_admission_waits_never_run_past_the_deadline(
    autojump_clock: trio.abc.Clock,
) -> None:
    """A bulkhead willing to wait 10 s is asked to wait only until the 3 s deadline."""
    bulkhead = Bulkhead(max_concurrent=1, max_wait=10.0)
    limiter = RateLimiter(rate=0.125, burst=1, max_wait=10.0)
    await limiter.acquire()
    release = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(occupy, bulkhead, release)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(BulkheadFullError):
            await call_with_policy(
                echo_attempt, policy(deadline=3.0, attempts=1), bulkhead=bulkhead
            )
        assert trio.current_time() == 3.0
        release.set()
    with pytest.raises(RateLimitedError) as caught:
        await call_with_policy(echo_attempt, policy(deadline=3.0, attempts=1), rate_limiter=limiter)
    assert caught.value.retry_after == 5.0  # 3 s refilled 0.375 of a token, 0.625 are missing
    assert trio.current_time() == 3.0
    assert bulkhead.statistics().in_use == 0


async def test_waiting_for_admission_does_not_count_against_the_attempt_timeout(
    autojump_clock: trio.abc.Clock,
) -> None:
    """The attempt timeout starts when the callable is called, after the bulkhead wait."""
    bulkhead = Bulkhead(max_concurrent=1, max_wait=10.0)
    release = trio.Event()

    async def slow(attempt: int) -> float:
        await trio.sleep(1.5)
        return trio.current_time()

    async def free_later() -> None:
        await trio.sleep(5.0)
        release.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(occupy, bulkhead, release)
        nursery.start_soon(free_later)
        await trio.testing.wait_all_tasks_blocked()
        assert await call_with_policy(slow, policy(timeout=2.0), bulkhead=bulkhead) == 6.5


async def test_a_slot_is_freed_whatever_the_attempt_does(autojump_clock: trio.abc.Clock) -> None:
    """Success, failure, timeout and rate-limiter refusal all give the bulkhead slot back."""
    bulkhead = Bulkhead(max_concurrent=1)
    limiter = RateLimiter(rate=1.0, burst=1)
    assert await call_with_policy(echo_attempt, policy(), bulkhead=bulkhead) == 1
    with pytest.raises(BoomError):
        await call_with_policy(always_fail, policy(attempts=1), bulkhead=bulkhead)
    with pytest.raises(AttemptTimeoutError):
        await call_with_policy(hang, policy(timeout=1.0, attempts=1), bulkhead=bulkhead)
    await limiter.acquire()
    with pytest.raises(RateLimitedError):
        await call_with_policy(
            echo_attempt, policy(attempts=1), bulkhead=bulkhead, rate_limiter=limiter
        )
    assert bulkhead.statistics().in_use == 0


# -- the stop signal ---------------------------------------------------------------------------


async def test_a_stop_during_an_attempt_starts_no_further_attempt(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Stopped during attempt 1 (which then fails): no backoff, no attempt 2, cause kept."""
    stop = trio.Event()
    recorder = Recorder()

    async def fail_after_stop(attempt: int) -> None:
        await trio.sleep(0.5)
        stop.set()
        raise BoomError(f"attempt {attempt}")

    with pytest.raises(CallStoppedError, match="attempt 2 was not started") as caught:
        await call_with_policy(fail_after_stop, policy(attempts=5), listener=recorder, stop=stop)
    assert isinstance(caught.value.__cause__, BoomError)
    assert recorder.events == [("started", 1, 0.0), ("failed", 1, "BoomError", 0.5)]
    assert trio.current_time() == 0.5


async def test_a_stop_interrupts_a_backoff_sleep_at_once(autojump_clock: trio.abc.Clock) -> None:
    """A stop at 0.25 into a 1 s backoff ends the call then, with attempt 2 never started."""
    stop = trio.Event()
    recorder = Recorder()

    async def stop_later() -> None:
        await trio.sleep(0.25)
        stop.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(stop_later)
        with pytest.raises(CallStoppedError) as caught:
            await call_with_policy(always_fail, policy(), listener=recorder, stop=stop)
    assert isinstance(caught.value.__cause__, BoomError)
    assert [event[0] for event in recorder.events] == ["started", "failed", "retry"]
    assert trio.current_time() == 0.25


async def test_a_call_stopped_before_it_began_calls_nothing(
    autojump_clock: trio.abc.Clock,
) -> None:
    """A stop already set: the callable is never called and the breaker is not asked."""
    stop = trio.Event()
    stop.set()
    breaker = CircuitBreaker()
    recorder = Recorder()
    with pytest.raises(CallStoppedError, match="attempt 1") as caught:
        await call_with_policy(
            echo_attempt, policy(), breaker=breaker, listener=recorder, stop=stop
        )
    assert caught.value.__cause__ is None
    assert recorder.events == []
    assert breaker.statistics().successes == breaker.statistics().failures == 0


async def test_a_stop_while_waiting_for_admission_gives_back_the_slot_and_permit(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Stopped while queued for the bulkhead: once admitted it starts nothing and frees all."""
    stop = trio.Event()
    bulkhead = Bulkhead(max_concurrent=1, max_wait=10.0)
    breaker = CircuitBreaker(failure_threshold=1, half_open_requests=1)
    release = trio.Event()
    recorder = Recorder()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(occupy, bulkhead, release)
        await trio.testing.wait_all_tasks_blocked()

        async def stop_then_free() -> None:
            await trio.sleep(1.0)
            stop.set()
            release.set()

        nursery.start_soon(stop_then_free)
        with pytest.raises(CallStoppedError):
            await call_with_policy(
                echo_attempt,
                policy(),
                breaker=breaker,
                bulkhead=bulkhead,
                listener=recorder,
                stop=stop,
            )
    assert recorder.events == []
    assert bulkhead.statistics().in_use == 0
    assert breaker.statistics().failures == 0
    assert breaker.state is BreakerState.CLOSED


async def test_a_stop_leaves_a_final_error_as_it_is(autojump_clock: trio.abc.Clock) -> None:
    """The only attempt failing after a stop raises its own error: the stop prevented nothing."""
    stop = trio.Event()

    async def fail_after_stop(attempt: int) -> None:
        stop.set()
        raise BoomError("last")

    with pytest.raises(BoomError, match="last"):
        await call_with_policy(fail_after_stop, policy(attempts=1), stop=stop)


@settings(max_examples=200)
@given(
    stop_at=st.integers(min_value=0, max_value=40).map(lambda whole: whole + 0.5),
    durations=st.lists(st.integers(min_value=0, max_value=5), min_size=6, max_size=6),
    attempts=st.integers(min_value=1, max_value=6),
)
def test_no_attempt_starts_and_no_backoff_goes_on_after_a_stop(
    stop_at: float, durations: list[int], attempts: int
) -> None:
    """Whenever the stop comes, every attempt started before it, and the call ends by then.

    The call ends at the stop, or when the attempt running at the stop ends (it is not cut).
    """
    recorder = Recorder()
    ends: list[float] = []
    finished: list[tuple[str, float]] = []

    async def failing(attempt: int) -> None:
        await trio.sleep(durations[attempt - 1])
        ends.append(trio.current_time())
        raise BoomError(f"attempt {attempt}")

    async def main() -> None:
        stop = trio.Event()

        async def stop_later() -> None:
            await trio.sleep(stop_at)
            stop.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(stop_later)
            with pytest.raises((BoomError, CallStoppedError)) as caught:
                await call_with_policy(
                    failing,
                    policy(timeout=None, attempts=attempts),
                    listener=recorder,
                    stop=stop,
                )
            finished.append((type(caught.value).__name__, trio.current_time()))
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    started = [cast(float, event[2]) for event in recorder.events if event[0] == "started"]
    ((raised, finished_at),) = finished
    assert all(time < stop_at for time in started)
    assert len(ends) == len(started)
    # Over when the last attempt ended, or at the stop if a backoff was waiting then: never later.
    assert ends[-1] <= finished_at <= max(stop_at, ends[-1])
    assert (raised == "CallStoppedError") == (len(started) < attempts)


# The resilience names `orchestr8/__init__.py` exports (or will): the docs use them from there.
RESILIENCE_API = {
    "call_with_policy": _pipeline.call_with_policy,
    "PipelineListener": _pipeline.PipelineListener,
    "CircuitBreaker": _breaker.CircuitBreaker,
    "CircuitBreakerRegistry": _breaker.CircuitBreakerRegistry,
    "BreakerState": _breaker.BreakerState,
    "BreakerTransition": _breaker.BreakerTransition,
    "BreakerStatistics": _breaker.BreakerStatistics,
    "Bulkhead": _limits.Bulkhead,
    "BulkheadStatistics": _limits.BulkheadStatistics,
    "RateLimiter": _limits.RateLimiter,
    "RateLimiterStatistics": _limits.RateLimiterStatistics,
    "Policy": _policy.Policy,
    "RetryPolicy": _policy.RetryPolicy,
    "CircuitBreakerPolicy": _policy.CircuitBreakerPolicy,
    "BulkheadPolicy": _policy.BulkheadPolicy,
    "RateLimitPolicy": _policy.RateLimitPolicy,
    "is_retryable": _retry.is_retryable,
    "retry_delay": _retry.retry_delay,
}
DOCS = Path(__file__).resolve().parents[2] / "docs" / "resilience.md"
EXAMPLES = re.findall(r"```python\n(.*?)```", DOCS.read_text(encoding="utf-8"), flags=re.DOTALL)


class PublicApi(types.ModuleType):
    """`orchestr8` as the docs see it: its exports, plus resilience names not yet exported."""

    def __getattr__(self, name: str) -> Any:
        try:
            return getattr(orchestr8, name)
        except AttributeError:
            return RESILIENCE_API[name]


def test_the_docs_have_examples() -> None:
    """docs/resilience.md shows the library API in runnable examples."""
    assert len(EXAMPLES) >= 3


@pytest.mark.parametrize("source", EXAMPLES)
def test_the_examples_in_the_docs_run(source: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every Python example in docs/resilience.md runs, and its assertions hold."""
    monkeypatch.setitem(sys.modules, "orchestr8", PublicApi("orchestr8"))
    exec(compile(source, str(DOCS), "exec"), {"__name__": "docs_example"})

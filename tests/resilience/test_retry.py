"""Retry: which errors are retried, when each attempt runs, and what finally propagates."""

from __future__ import annotations

import copy
import math
from random import Random

import attrs
import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from orchestr8._errors import (
    AttemptTimeoutError,
    BulkheadFullError,
    CircuitOpenError,
    DeadlineExceededError,
    InputValidationError,
    NonRetryableError,
    Problem,
    RateLimitedError,
    RetryableError,
)
from orchestr8._resilience._pipeline import Rejection, call_with_policy
from orchestr8._resilience._retry import (
    backoff_fits,
    is_retryable,
    may_retry,
    retry_after_of,
    retry_delay,
)
from orchestr8._workflow._policy import Policy, RetryPolicy


class BoomError(Exception):
    """The failure the scripted agents raise."""


class PermanentError(NonRetryableError):
    """A subclass of NonRetryableError, as agents define them."""


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

    def delays(self) -> list[float]:
        return [float(event[2]) for event in self.events if event[0] == "retry"]  # type: ignore[arg-type]


@attrs.define
class Script:
    """An agent playing one outcome per call: exceptions are raised, anything else returned."""

    outcomes: list[object]
    calls: list[tuple[int, float]] = attrs.field(factory=list)
    raised: list[BaseException] = attrs.field(factory=list)

    async def __call__(self, attempt: int) -> object:
        self.calls.append((attempt, trio.current_time()))
        outcome = self.outcomes[min(len(self.calls), len(self.outcomes)) - 1]
        if isinstance(outcome, BaseException):
            error = copy.copy(outcome)  # a fresh exception per call, with its attributes
            self.raised.append(error)
            raise error
        return outcome

    def times(self) -> list[float]:
        return [time for _, time in self.calls]


def retry_only(**retry: object) -> Policy:
    """A policy with no timeout, so only retry acts."""
    return Policy(timeout=None, retry=RetryPolicy(jitter="none", **retry))  # type: ignore[arg-type]


async def test_attempts_run_at_the_backoff_times_with_no_sleep_after_the_last(
    autojump_clock: trio.abc.Clock,
) -> None:
    """3 failing attempts run at 0, 1 and 3 s; the last attempt's own error is raised at 3 s."""
    agent = Script([BoomError("always")])
    with pytest.raises(BoomError) as caught:
        await call_with_policy(agent, retry_only(max_attempts=3))
    assert agent.calls == [(1, 0.0), (2, 1.0), (3, 3.0)]
    assert trio.current_time() == 3.0
    assert caught.value is agent.raised[-1]


async def test_a_success_ends_the_retries(autojump_clock: trio.abc.Clock) -> None:
    """The first successful attempt's value is returned; no further attempt runs."""
    agent = Script([BoomError("once"), "done", "never"])
    assert await call_with_policy(agent, retry_only(max_attempts=5)) == "done"
    assert agent.calls == [(1, 0.0), (2, 1.0)]


async def test_max_attempts_counts_calls_not_retries() -> None:
    """max_attempts=1 makes exactly one call."""
    agent = Script([BoomError("always")])
    with pytest.raises(BoomError):
        await call_with_policy(agent, retry_only(max_attempts=1))
    assert len(agent.calls) == 1


@pytest.mark.parametrize(
    "error",
    [
        NonRetryableError("no"),
        PermanentError("never"),
        InputValidationError([Problem("$.topic", "required")]),
        CircuitOpenError("open", retry_after=1.0),
        DeadlineExceededError("late"),
    ],
)
async def test_errors_that_no_retry_can_fix_are_raised_at_once(error: Exception) -> None:
    """Non-retryable errors (and subclasses), input errors and open circuits end the call."""
    calls = []

    async def agent(attempt: int) -> None:
        calls.append(attempt)
        raise error

    with pytest.raises(type(error)) as caught:
        await call_with_policy(agent, retry_only(max_attempts=5))
    assert caught.value is error
    assert calls == [1]


async def test_retry_after_from_the_agent_is_a_lower_bound(autojump_clock: trio.abc.Clock) -> None:
    """A retry_after above the backoff sets the delay; one below it changes nothing."""
    agent = Script(
        [RetryableError("slow down", retry_after=5.0), RetryableError("hm", retry_after=0.5), "ok"]
    )
    recorder = Recorder()
    assert await call_with_policy(agent, retry_only(), listener=recorder) == "ok"
    assert agent.times() == [0.0, 5.0, 7.0]
    assert recorder.delays() == [5.0, 2.0]


async def test_cancellation_during_a_backoff_propagates_unwrapped(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Cancelling while the pipeline sleeps between attempts stops it; nothing else is called."""
    agent = Script([BoomError("always")])
    recorder = Recorder()
    with trio.move_on_at(2.0) as scope:
        await call_with_policy(agent, retry_only(max_attempts=5), listener=recorder)
    assert scope.cancelled_caught
    assert agent.times() == [0.0, 1.0]
    assert trio.current_time() == 2.0
    assert recorder.events[-1] == ("retry", 2, 2.0, 1.0)


async def test_cancellation_during_an_attempt_is_neither_retried_nor_reported(
    autojump_clock: trio.abc.Clock,
) -> None:
    """An outside cancel of a running attempt is not a failure: no attempt_failed, no retry."""
    recorder = Recorder()
    calls = []

    async def agent(attempt: int) -> None:
        calls.append(attempt)
        await trio.sleep_forever()

    with trio.move_on_after(5.0) as scope:
        await call_with_policy(agent, retry_only(max_attempts=5), listener=recorder)
    assert scope.cancelled_caught
    assert calls == [1]
    assert recorder.events == [("started", 1, 0.0)]


async def test_an_attempt_timeout_is_a_failure_that_is_retried(
    autojump_clock: trio.abc.Clock,
) -> None:
    """A hung attempt ends at the timeout with AttemptTimeoutError; the next attempt may succeed."""
    recorder = Recorder()

    async def agent(attempt: int) -> str:
        if attempt == 1:
            await trio.sleep_forever()
        return "second time lucky"

    policy = Policy(timeout=2.0, retry=RetryPolicy(jitter="none"))
    assert await call_with_policy(agent, policy, listener=recorder) == "second time lucky"
    assert recorder.events == [
        ("started", 1, 0.0),
        ("failed", 1, "AttemptTimeoutError", 2.0),
        ("retry", 1, 1.0, 2.0),
        ("started", 2, 3.0),
    ]


async def test_the_last_attempt_timeout_raises_attempt_timeout_error(
    autojump_clock: trio.abc.Clock,
) -> None:
    """After the last attempt times out, AttemptTimeoutError (a TimeoutError) propagates."""

    async def agent(attempt: int) -> None:
        await trio.sleep_forever()

    policy = Policy(timeout=2.0, retry=RetryPolicy(max_attempts=2, jitter="none"))
    with pytest.raises(AttemptTimeoutError, match=r"attempt 2 timed out after 2\.0 s"):
        await call_with_policy(agent, policy)
    assert trio.current_time() == 5.0
    assert issubclass(AttemptTimeoutError, TimeoutError)


async def test_a_custom_predicate_decides_what_is_retried() -> None:
    """should_retry replaces the default classification."""
    agent = Script([BoomError("nope")])
    with pytest.raises(BoomError):
        await call_with_policy(agent, retry_only(max_attempts=3), should_retry=lambda error: False)
    assert len(agent.calls) == 1


def test_the_default_classification() -> None:
    """Ordinary errors, timeouts and admission rejections are retried; the rest are not."""
    assert is_retryable(BoomError())
    assert is_retryable(RetryableError())
    assert is_retryable(AttemptTimeoutError())
    assert is_retryable(BulkheadFullError())
    assert is_retryable(RateLimitedError())
    assert not is_retryable(PermanentError())
    assert not is_retryable(CircuitOpenError())
    assert not is_retryable(DeadlineExceededError())


def test_retry_after_is_read_only_from_errors_that_carry_one() -> None:
    """retry_after is read from RetryableError, RateLimitedError and CircuitOpenError only."""
    assert retry_after_of(RetryableError(retry_after=3.0)) == 3.0
    assert retry_after_of(RateLimitedError(retry_after=0.25)) == 0.25
    assert retry_after_of(CircuitOpenError(retry_after=7.0)) == 7.0
    assert retry_after_of(RetryableError()) is None
    assert retry_after_of(RetryableError(retry_after=-1.0)) is None
    assert retry_after_of(RetryableError(retry_after=math.nan)) is None
    assert retry_after_of(BoomError()) is None


def test_retry_delay_is_the_backoff_raised_to_retry_after() -> None:
    """The delay is max(jittered backoff, retry_after)."""
    policy = RetryPolicy(jitter="none")
    assert retry_delay(policy, 3, BoomError()) == 4.0
    assert retry_delay(policy, 3, RetryableError(retry_after=9.0)) == 9.0
    assert retry_delay(policy, 3, RetryableError(retry_after=1.0)) == 4.0


def test_may_retry_stops_at_max_attempts() -> None:
    """Attempt max_attempts is the last one, whatever the error."""
    policy = RetryPolicy(max_attempts=3)
    assert may_retry(policy, 2, BoomError())
    assert not may_retry(policy, 3, BoomError())
    assert not may_retry(policy, 1, PermanentError())


def test_a_backoff_fits_only_if_it_ends_before_the_deadline() -> None:
    """Ending exactly at the deadline leaves no time for the attempt, so it does not fit."""
    assert backoff_fits(1.0, 2.0, 3.5)
    assert not backoff_fits(1.0, 2.0, 3.0)
    assert backoff_fits(1.0, 1e9, math.inf)
    assert not backoff_fits(1.0, math.inf, math.inf)


@given(
    max_attempts=st.integers(min_value=1, max_value=6),
    initial_delay=st.floats(min_value=0.0, max_value=5.0),
    max_delay=st.floats(min_value=0.0, max_value=20.0),
    multiplier=st.floats(min_value=0.5, max_value=4.0),
    jitter=st.sampled_from(["full", "equal", "none"]),
    failures=st.integers(min_value=0, max_value=8),
    permanent=st.booleans(),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_retry_makes_exactly_the_promised_calls_and_sleeps(
    max_attempts: int,
    initial_delay: float,
    max_delay: float,
    multiplier: float,
    jitter: str,
    failures: int,
    permanent: bool,
    seed: int,
) -> None:
    """Calls, sleeps, delay bounds and the elapsed virtual time follow from the policy exactly."""
    retry = RetryPolicy(
        max_attempts=max_attempts,
        initial_delay=initial_delay,
        max_delay=max_delay,
        multiplier=multiplier,
        jitter=jitter,  # type: ignore[arg-type]
    )
    error = PermanentError("permanent") if permanent else BoomError("transient")
    agent = Script([*([error] * failures), "done"])
    recorder = Recorder()

    async def main() -> None:
        start = trio.current_time()
        outcome: object
        try:
            outcome = await call_with_policy(
                agent, Policy(timeout=None, retry=retry), listener=recorder, random=Random(seed)
            )
        except (BoomError, PermanentError) as raised:
            outcome = raised
        assert outcome == "done" or outcome is agent.raised[-1]
        expected_calls = 1 if permanent and failures else min(failures + 1, max_attempts)
        assert [attempt for attempt, _ in agent.calls] == list(range(1, expected_calls + 1))
        delays = recorder.delays()
        assert len(delays) == expected_calls - 1
        for attempt, delay in enumerate(delays, start=1):
            base = retry.backoff_delay(attempt)
            low = {"full": 0.0, "equal": base / 2, "none": base}[jitter]
            assert low <= delay <= base
        expected_time = start
        expected_times = [start]
        for delay in delays:
            expected_time += delay
            expected_times.append(expected_time)
        assert agent.times() == expected_times
        assert trio.current_time() == expected_time

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


@given(
    cancel_at=st.floats(min_value=0.0, max_value=40.0),
    hang=st.booleans(),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_cancellation_is_never_retried_or_wrapped(cancel_at: float, hang: bool, seed: int) -> None:
    """Whenever the cancel comes, Cancelled reaches the canceller and no attempt starts after it."""
    recorder = Recorder()
    calls: list[float] = []

    async def agent(attempt: int) -> None:
        calls.append(trio.current_time())
        await trio.sleep(3.0 if hang else 0.0)
        raise BoomError(f"attempt {attempt}")

    async def main() -> None:
        policy = Policy(timeout=None, retry=RetryPolicy(max_attempts=10))
        with trio.move_on_at(cancel_at) as scope:
            try:
                await call_with_policy(agent, policy, listener=recorder, random=Random(seed))
            except BoomError:
                assert len(calls) == 10
                return
        assert scope.cancelled_caught
        assert all(time <= cancel_at for time in calls)
        failed = [event for event in recorder.events if event[0] == "failed"]
        assert len(failed) in (len(calls) - 1, len(calls))
        assert all(event[2] == "BoomError" for event in failed)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))

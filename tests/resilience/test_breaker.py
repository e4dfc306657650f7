"""The circuit breaker: counting, opening, probing, closing, manual control, and its events."""

from __future__ import annotations

import math

import attrs
import pytest
import trio
import trio.testing
from hypothesis import example, given, settings
from hypothesis import strategies as st

from orchestr8._errors import AttemptTimeoutError, CircuitOpenError
from orchestr8._resilience._breaker import (
    BreakerState,
    BreakerStatistics,
    BreakerTransition,
    CircuitBreaker,
    CircuitBreakerRegistry,
)
from orchestr8._resilience._pipeline import call_with_policy
from orchestr8._workflow._policy import CircuitBreakerPolicy, Policy, RetryPolicy

CLOSED = BreakerState.CLOSED
OPEN = BreakerState.OPEN
HALF_OPEN = BreakerState.HALF_OPEN
FORCED_OPEN = BreakerState.FORCED_OPEN
DISABLED = BreakerState.DISABLED


class BoomError(Exception):
    """The failure every test agent raises."""


class ExcludedError(Exception):
    """A failure the breakers under test are told to ignore."""


async def succeed() -> str:
    return "ok"


async def fail() -> None:
    raise BoomError("boom")


async def fail_excluded() -> None:
    raise ExcludedError("not the agent's fault")


@attrs.define
class Transitions:
    """A breaker listener that keeps every transition."""

    seen: list[BreakerTransition] = attrs.field(factory=list)

    def __call__(self, transition: BreakerTransition) -> None:
        self.seen.append(transition)

    def pairs(self) -> list[tuple[BreakerState, BreakerState]]:
        return [(transition.old, transition.new) for transition in self.seen]


def watched(breaker: CircuitBreaker) -> Transitions:
    transitions = Transitions()
    breaker.add_listener(transitions)
    return transitions


async def fail_times(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        with pytest.raises(BoomError):
            await breaker.call(fail)


@attrs.define
class HungCall:
    """A call that stays inside the breaker until the test finishes or cancels it."""

    release: trio.Event = attrs.field(factory=trio.Event)
    done: trio.Event = attrs.field(factory=trio.Event)
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    outcome: str = "success"
    admitted: bool = False
    rejection: CircuitOpenError | None = None

    async def finish(self, outcome: str) -> None:
        self.outcome = outcome
        self.release.set()
        await self.done.wait()

    async def cancel(self) -> None:
        self.scope.cancel()
        await self.done.wait()


async def start_hung(nursery: trio.Nursery, breaker: CircuitBreaker) -> HungCall:
    """Start a call that hangs; return once the breaker admitted or rejected it."""
    call = HungCall()

    async def run(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async def body() -> str:
            call.admitted = True
            task_status.started()
            await call.release.wait()
            if call.outcome == "failure":
                raise BoomError("late failure")
            if call.outcome == "excluded":
                raise ExcludedError("late excluded failure")
            return "late success"

        with call.scope:
            try:
                await breaker.call(body)
            except CircuitOpenError as rejection:
                call.rejection = rejection
                task_status.started()
            except (BoomError, ExcludedError):
                pass
        call.done.set()

    await nursery.start(run)
    return call


async def test_it_opens_exactly_at_the_failure_threshold(autojump_clock: trio.abc.Clock) -> None:
    """Threshold - 1 consecutive failures keep it closed; the next one opens it, at its time."""
    breaker = CircuitBreaker(failure_threshold=3, reset_timeout=10.0, name="agent")
    transitions = watched(breaker)
    await fail_times(breaker, 2)
    assert breaker.state is CLOSED
    await trio.sleep(4.0)
    await fail_times(breaker, 1)
    assert breaker.state is OPEN
    assert transitions.seen == [
        BreakerTransition("agent", CLOSED, OPEN, 4.0, "failure_threshold", retry_after=10.0)
    ]
    assert breaker.statistics().opened_at == 4.0


async def test_an_open_breaker_rejects_without_calling(autojump_clock: trio.abc.Clock) -> None:
    """While open, calls raise CircuitOpenError with the exact wait until a probe is admitted."""
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=10.0)
    await fail_times(breaker, 1)
    await trio.sleep(3.0)
    called = []

    async def agent() -> None:
        called.append(True)

    with pytest.raises(CircuitOpenError) as caught:
        await breaker.call(agent)
    assert caught.value.retry_after == 7.0
    assert called == []
    assert breaker.statistics().rejected == 1


async def test_a_success_resets_the_failure_count() -> None:
    """Failures count only while consecutive: a success in between starts the count over."""
    breaker = CircuitBreaker(failure_threshold=3)
    await fail_times(breaker, 2)
    assert await breaker.call(succeed) == "ok"
    assert breaker.statistics().consecutive_failures == 0
    await fail_times(breaker, 2)
    assert breaker.state is CLOSED
    await fail_times(breaker, 1)
    assert breaker.state is OPEN


async def test_excluded_errors_are_neutral() -> None:
    """An excluded error propagates but neither counts as a failure nor resets the count."""
    breaker = CircuitBreaker(failure_threshold=2, exclude=(ExcludedError,))
    await fail_times(breaker, 1)
    for _ in range(5):
        with pytest.raises(ExcludedError):
            await breaker.call(fail_excluded)
    assert breaker.statistics().consecutive_failures == 1
    await fail_times(breaker, 1)
    assert breaker.state is OPEN


async def test_a_cancelled_call_counts_for_nothing() -> None:
    """Cancellation is never a failure: cancelled calls leave the count where it was."""
    breaker = CircuitBreaker(failure_threshold=2)
    await fail_times(breaker, 1)
    for _ in range(3):
        with trio.CancelScope() as scope:
            scope.cancel()
            await breaker.call(trio.sleep_forever)
        assert scope.cancelled_caught
    assert breaker.statistics().consecutive_failures == 1
    assert breaker.state is CLOSED


async def test_the_first_call_at_the_end_of_the_open_window_is_a_probe(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Half-open is decided on a call at now >= opened_at + reset_timeout, not a moment before."""
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=10.0, half_open_requests=1)
    transitions = watched(breaker)
    await trio.sleep(2.0)
    await fail_times(breaker, 1)
    await trio.sleep_until(11.5)
    with pytest.raises(CircuitOpenError) as caught:
        await breaker.call(succeed)
    assert caught.value.retry_after == 0.5
    await trio.sleep_until(12.0)
    assert breaker.state is OPEN  # nothing happens until a call comes
    assert await breaker.call(succeed) == "ok"
    assert transitions.pairs() == [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED)]
    assert [transition.at for transition in transitions.seen] == [2.0, 12.0, 12.0]


async def test_half_open_admits_exactly_half_open_requests_concurrent_probes(
    autojump_clock: trio.abc.Clock,
) -> None:
    """With every probe permit taken, further calls are rejected (retry_after 0) uncalled."""
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=5.0, half_open_requests=3)
    await fail_times(breaker, 1)
    await trio.sleep(5.0)
    async with trio.open_nursery() as nursery:
        calls = [await start_hung(nursery, breaker) for _ in range(5)]
        assert [call.admitted for call in calls] == [True, True, True, False, False]
        assert [call.rejection.retry_after for call in calls[3:] if call.rejection] == [0.0, 0.0]
        assert breaker.state is HALF_OPEN
        assert breaker.statistics().probes_in_flight == 3
        await calls[0].finish("success")
        assert breaker.statistics().probes_in_flight == 2
        another = await start_hung(nursery, breaker)
        assert another.admitted
        for call in [*calls[1:3], another]:
            await call.finish("success")
    assert breaker.state is CLOSED


async def test_probe_successes_close_it_only_when_there_are_enough() -> None:
    """half_open_requests probe successes (one after another is fine) close the breaker."""
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=0.0, half_open_requests=3)
    await fail_times(breaker, 1)
    await breaker.call(succeed)
    await breaker.call(succeed)
    assert breaker.state is HALF_OPEN
    assert breaker.statistics().probe_successes == 2
    await breaker.call(succeed)
    assert breaker.state is CLOSED
    assert breaker.statistics().consecutive_failures == 0


async def test_any_probe_failure_reopens_with_a_new_window(
    autojump_clock: trio.abc.Clock,
) -> None:
    """One failed probe re-opens the breaker at the failure's time, even after probe successes."""
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=10.0, half_open_requests=3)
    transitions = watched(breaker)
    await fail_times(breaker, 1)
    await trio.sleep(10.0)
    await breaker.call(succeed)
    await trio.sleep(1.5)
    await fail_times(breaker, 1)
    assert breaker.state is OPEN
    assert breaker.statistics().opened_at == 11.5
    assert transitions.pairs() == [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, OPEN)]
    assert transitions.seen[-1].reason == "probe_failed"
    await trio.sleep_until(21.0)
    with pytest.raises(CircuitOpenError) as caught:
        await breaker.call(succeed)
    assert caught.value.retry_after == 0.5


async def test_late_results_of_calls_admitted_before_the_trip_change_nothing(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Calls admitted before the breaker opened neither move opened_at nor emit events."""
    breaker = CircuitBreaker(failure_threshold=2, reset_timeout=10.0, half_open_requests=1)
    transitions = watched(breaker)
    async with trio.open_nursery() as nursery:
        slow = [await start_hung(nursery, breaker) for _ in range(4)]
        await fail_times(breaker, 2)
        assert breaker.statistics().opened_at == 0.0
        await trio.sleep(3.0)
        await slow[0].finish("failure")
        await slow[1].finish("success")
        assert breaker.state is OPEN
        assert breaker.statistics().opened_at == 0.0
        await trio.sleep(7.0)
        await breaker.call(succeed)  # the probe closes it
        await slow[2].finish("failure")
        await slow[3].finish("failure")
    assert breaker.state is CLOSED
    assert breaker.statistics().consecutive_failures == 0
    assert transitions.pairs() == [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED)]


async def test_a_cancelled_probe_frees_its_permit_and_counts_for_nothing(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Cancelling the only probe lets the next call probe; the breaker stays half open."""
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=1.0, half_open_requests=1)
    await fail_times(breaker, 1)
    await trio.sleep(1.0)
    async with trio.open_nursery() as nursery:
        probe = await start_hung(nursery, breaker)
        assert probe.admitted
        with pytest.raises(CircuitOpenError):
            await breaker.call(succeed)
        await probe.cancel()
        assert breaker.state is HALF_OPEN
        assert breaker.statistics().probes_in_flight == 0
        assert await breaker.call(succeed) == "ok"
    assert breaker.state is CLOSED


async def test_hung_probes_hit_the_attempt_timeout_and_reopen_it(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Through the pipeline a probe that hangs fails with AttemptTimeoutError, re-opening it."""
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=10.0, half_open_requests=1)
    policy = Policy(timeout=2.0, retry=RetryPolicy(max_attempts=1))
    await fail_times(breaker, 1)
    await trio.sleep(10.0)

    async def hang(attempt: int) -> None:
        await trio.sleep_forever()

    with pytest.raises(AttemptTimeoutError):
        await call_with_policy(hang, policy, breaker=breaker)
    assert trio.current_time() == 12.0
    assert breaker.state is OPEN
    assert breaker.statistics().opened_at == 12.0
    assert breaker.statistics().probes_in_flight == 0


async def test_force_open_rejects_everything_until_closed(autojump_clock: trio.abc.Clock) -> None:
    """A forced-open breaker never probes; its rejections say retry_after is infinite."""
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=1.0)
    transitions = watched(breaker)
    breaker.force_open()
    await trio.sleep(100.0)
    with pytest.raises(CircuitOpenError) as caught:
        await breaker.call(succeed)
    assert caught.value.retry_after == math.inf
    assert breaker.state is FORCED_OPEN
    breaker.close()
    assert await breaker.call(succeed) == "ok"
    assert transitions.pairs() == [(CLOSED, FORCED_OPEN), (FORCED_OPEN, CLOSED)]
    assert {transition.reason for transition in transitions.seen} == {"manual"}


async def test_disable_lets_everything_through_and_records_nothing() -> None:
    """A disabled breaker calls through and ignores failures until closed again."""
    breaker = CircuitBreaker(failure_threshold=1)
    breaker.disable()
    await fail_times(breaker, 10)
    assert breaker.state is DISABLED
    assert breaker.statistics().consecutive_failures == 0
    breaker.close()
    await fail_times(breaker, 1)
    assert breaker.state is OPEN


async def test_close_resets_an_open_breaker_and_ignores_calls_admitted_before(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Closing by hand starts afresh: failures of calls admitted earlier do not count."""
    breaker = CircuitBreaker(failure_threshold=1)
    async with trio.open_nursery() as nursery:
        earlier = await start_hung(nursery, breaker)
        await fail_times(breaker, 1)
        breaker.close()
        await earlier.finish("failure")
    assert breaker.state is CLOSED


async def test_one_event_per_real_transition() -> None:
    """Repeating a manual command, or failing while already open, emits nothing more."""
    breaker = CircuitBreaker(failure_threshold=1)
    transitions = watched(breaker)
    breaker.close()
    await fail_times(breaker, 1)
    with pytest.raises(CircuitOpenError):
        await breaker.call(fail)
    breaker.force_open()
    breaker.force_open()
    breaker.disable()
    breaker.disable()
    breaker.close()
    breaker.close()
    assert transitions.pairs() == [
        (CLOSED, OPEN),
        (OPEN, FORCED_OPEN),
        (FORCED_OPEN, DISABLED),
        (DISABLED, CLOSED),
    ]


async def test_removed_listeners_hear_nothing() -> None:
    """remove_listener stops the deliveries."""
    breaker = CircuitBreaker(failure_threshold=1)
    transitions = watched(breaker)
    breaker.remove_listener(transitions)
    await fail_times(breaker, 1)
    assert transitions.seen == []


async def test_call_passes_arguments_and_returns_the_result() -> None:
    """`call(fn, *args)` awaits fn(*args) and hands back its value."""
    breaker = CircuitBreaker()

    async def add(left: int, right: int) -> int:
        return left + right

    assert await breaker.call(add, 2, 3) == 5


def test_from_policy_copies_the_policy() -> None:
    """A breaker built from a CircuitBreakerPolicy has its threshold, timeout and probe count."""
    policy = CircuitBreakerPolicy(failure_threshold=7, reset_timeout=3.0, half_open_requests=2)
    breaker = CircuitBreaker.from_policy(policy, name="llm", exclude=(ExcludedError,))
    assert (breaker.failure_threshold, breaker.reset_timeout, breaker.half_open_requests) == (
        7,
        3.0,
        2,
    )
    assert breaker.name == "llm"
    assert breaker.exclude == (ExcludedError,)


def test_invalid_settings_are_refused() -> None:
    """The breaker validates its settings like the policy does."""
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker(failure_threshold=0)
    with pytest.raises(ValueError, match="reset_timeout"):
        CircuitBreaker(reset_timeout=-1.0)


async def test_statistics_count_calls_by_outcome() -> None:
    """statistics() is a frozen snapshot of the state and the counters."""
    breaker = CircuitBreaker(failure_threshold=2, name="echo")
    await breaker.call(succeed)
    await fail_times(breaker, 2)
    with pytest.raises(CircuitOpenError):
        await breaker.call(succeed)
    statistics = breaker.statistics()
    assert statistics == BreakerStatistics(
        name="echo",
        state=OPEN,
        consecutive_failures=0,
        opened_at=statistics.opened_at,
        probes_in_flight=0,
        probe_successes=0,
        admitted=3,
        rejected=1,
        successes=1,
        failures=2,
    )
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        statistics.admitted = 0  # type: ignore[misc]


async def test_the_registry_shares_one_breaker_per_key_and_forwards_transitions() -> None:
    """get() creates a breaker per key from the first policy given; listeners hear every breaker."""
    registry = CircuitBreakerRegistry(default_policy=CircuitBreakerPolicy(failure_threshold=1))
    transitions = Transitions()
    registry.add_listener(transitions)
    echo = registry.get("echo")
    llm = registry.get("llm", CircuitBreakerPolicy(failure_threshold=2))
    assert registry.get("echo") is echo
    assert registry.get("llm", CircuitBreakerPolicy(failure_threshold=9)) is llm
    assert llm.failure_threshold == 2
    assert "llm" in registry
    assert "search" not in registry
    assert registry.find("search") is None
    assert list(registry) == ["echo", "llm"]
    assert len(registry) == 2
    await fail_times(echo, 1)
    await fail_times(llm, 2)
    assert [(transition.name, transition.new) for transition in transitions.seen] == [
        ("echo", OPEN),
        ("llm", OPEN),
    ]
    assert [statistics.name for statistics in registry.statistics()] == ["echo", "llm"]
    registry.remove_listener(transitions)
    echo.close()
    assert len(transitions.seen) == 2


# The state machine, checked against a small reference model on generated programs.

ALLOWED = {
    (CLOSED, OPEN),
    (OPEN, HALF_OPEN),
    (HALF_OPEN, OPEN),
    (HALF_OPEN, CLOSED),
    *((state, FORCED_OPEN) for state in BreakerState if state is not FORCED_OPEN),
    *((state, DISABLED) for state in BreakerState if state is not DISABLED),
    *((state, CLOSED) for state in BreakerState if state is not CLOSED),
}


@attrs.define
class Model:
    """The breaker rules in their plainest form: a state, a period number, and three counters."""

    threshold: int
    reset_timeout: float
    limit: int
    state: BreakerState = CLOSED
    period: int = 0
    failures: int = 0
    probes: int = 0
    successes: int = 0
    opened_at: float = 0.0
    transitions: list[tuple[BreakerState, BreakerState]] = attrs.field(factory=list)

    def move(self, new: BreakerState, now: float) -> None:
        self.transitions.append((self.state, new))
        self.state, self.period = new, self.period + 1
        self.failures = self.probes = self.successes = 0
        self.opened_at = now

    def admit(self, now: float) -> int | None:
        """The period a new call is admitted in, or None when it is rejected."""
        if self.state is OPEN and now >= self.opened_at + self.reset_timeout:
            self.move(HALF_OPEN, now)
        if self.state in (CLOSED, DISABLED):
            return self.period
        if self.state is HALF_OPEN and self.probes < self.limit:
            self.probes += 1
            return self.period
        return None

    def finish(self, period: int, outcome: str, now: float) -> None:
        if period != self.period:
            return
        if self.state is HALF_OPEN:
            self.probes -= 1
            if outcome == "failure":
                self.move(OPEN, now)
            elif outcome == "success":
                self.successes += 1
                if self.successes == self.limit:
                    self.move(CLOSED, now)
        elif self.state is CLOSED and outcome == "success":
            self.failures = 0
        elif self.state is CLOSED and outcome == "failure":
            self.failures += 1
            if self.failures == self.threshold:
                self.move(OPEN, now)

    def command(self, name: str, now: float) -> None:
        target = {"force_open": FORCED_OPEN, "close": CLOSED, "disable": DISABLED}[name]
        if self.state is not target:
            self.move(target, now)
        elif target is CLOSED:
            self.failures = 0


@attrs.frozen
class Operation:
    """One step of a generated program."""

    kind: str
    seconds: float = 0.0
    index: int = 0
    outcome: str = ""


# Calls and hung calls dominate; commands are rare (each one resets most of the state); time moves
# in steps that often land exactly on the end of the open window.
KINDS = [
    *["success"] * 3,
    *["failure"] * 3,
    "excluded",
    *["start"] * 4,
    *["finish"] * 4,
    *["advance"] * 2,
    "force_open",
    "close",
    "disable",
]
operations = st.builds(
    Operation,
    kind=st.sampled_from(KINDS),
    seconds=st.sampled_from([0.5, 1.0]),
    index=st.integers(min_value=0, max_value=7),
    outcome=st.sampled_from(["success", "failure", "failure", "excluded", "cancel"]),
)
START, FAILURE = Operation("start"), Operation("failure")


def finish(index: int, outcome: str) -> Operation:
    return Operation("finish", index=index, outcome=outcome)


@settings(max_examples=400)
@example(  # a call admitted while closed fails late, while a probe is in flight
    threshold=1, reset_timeout=0.0, limit=2, program=[START, FAILURE, START, finish(0, "failure")]
)
@example(  # a call admitted before a manual close succeeds late, amid new failures
    threshold=2,
    reset_timeout=1.0,
    limit=1,
    program=[START, FAILURE, FAILURE, Operation("close"), FAILURE, finish(0, "success"), FAILURE],
)
@example(  # one probe more than allowed is tried
    threshold=1, reset_timeout=0.0, limit=2, program=[FAILURE, START, START, START]
)
@given(
    threshold=st.integers(min_value=1, max_value=3),
    reset_timeout=st.sampled_from([0.0, 1.0, 1.5]),
    limit=st.integers(min_value=1, max_value=3),
    program=st.lists(operations, min_size=1, max_size=60),
)
def test_the_breaker_follows_the_reference_model(
    threshold: int, reset_timeout: float, limit: int, program: list[Operation]
) -> None:
    """On any program: same states, only allowed transitions, probes within limit, no leaks."""
    clock = trio.testing.MockClock()
    breaker = CircuitBreaker(
        failure_threshold=threshold,
        reset_timeout=reset_timeout,
        half_open_requests=limit,
        exclude=(ExcludedError,),
    )
    model = Model(threshold, reset_timeout, limit)
    transitions = watched(breaker)
    agents = {"success": succeed, "failure": fail, "excluded": fail_excluded}

    def check(operation: Operation, before: BreakerStatistics, events_before: int) -> None:
        statistics = breaker.statistics()
        assert breaker.state is model.state, operation
        assert transitions.pairs() == model.transitions, operation
        assert set(transitions.pairs()) <= ALLOWED
        assert 0 <= statistics.probes_in_flight <= limit
        assert statistics.probes_in_flight == (model.probes if model.state is HALF_OPEN else 0)
        if model.state is OPEN:
            assert statistics.opened_at == model.opened_at
        if before.state is OPEN and model.state is OPEN and len(transitions.seen) == events_before:
            assert statistics.opened_at == before.opened_at, operation

    async def run(operation: Operation, nursery: trio.Nursery, pending: list[Pending]) -> None:
        now = trio.current_time()
        if operation.kind in agents:
            period = model.admit(now)
            try:
                await breaker.call(agents[operation.kind])
            except CircuitOpenError:
                assert period is None, operation
            except (BoomError, ExcludedError):
                assert period is not None, operation
            else:
                assert period is not None, operation
            if period is not None:
                model.finish(period, operation.kind, now)
        elif operation.kind == "start":
            period = model.admit(now)
            call = await start_hung(nursery, breaker)
            assert call.admitted == (period is not None), operation
            if period is not None:
                pending.append(Pending(call, period))
        elif operation.kind == "advance":
            clock.jump(operation.seconds)
        elif operation.kind == "finish" and pending:
            chosen = pending.pop(operation.index % len(pending))
            if operation.outcome == "cancel":
                await chosen.call.cancel()
            else:
                await chosen.call.finish(operation.outcome)
            model.finish(chosen.period, operation.outcome, now)
        elif operation.kind in ("force_open", "close", "disable"):
            getattr(breaker, operation.kind)()
            model.command(operation.kind, now)

    async def main() -> None:
        pending: list[Pending] = []
        async with trio.open_nursery() as nursery:
            for operation in program:
                before = breaker.statistics()
                events_before = len(transitions.seen)
                await run(operation, nursery, pending)
                check(operation, before, events_before)
            for chosen in pending:
                await chosen.call.cancel()
                model.finish(chosen.period, "cancel", trio.current_time())
            check(Operation("cancel every hung call"), breaker.statistics(), len(transitions.seen))
        assert breaker.statistics().probes_in_flight == 0

    trio.run(main, clock=clock)


@attrs.frozen
class Pending:
    """A hung call the program may still finish, with the model period it was admitted in."""

    call: HungCall
    period: int

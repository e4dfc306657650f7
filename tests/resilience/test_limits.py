"""Bulkhead and rate limiter: who is admitted at once, who waits, until when, and who is refused."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from orchestr8._errors import BulkheadFullError, RateLimitedError
from orchestr8._resilience._limits import (
    Bulkhead,
    BulkheadStatistics,
    RateLimiter,
    RateLimiterStatistics,
)
from orchestr8._workflow._policy import BulkheadPolicy, RateLimitPolicy


async def hold(bulkhead: Bulkhead, release: trio.Event, entered: list[float]) -> None:
    async def work() -> None:
        entered.append(trio.current_time())
        await release.wait()

    await bulkhead.call(work)


async def test_a_full_bulkhead_refuses_at_once_without_calling() -> None:
    """With max_wait 0, call max_concurrent + 1 is refused immediately; its callable never runs."""
    bulkhead = Bulkhead(max_concurrent=2, name="db")
    release = trio.Event()
    entered: list[float] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(hold, bulkhead, release, entered)
        nursery.start_soon(hold, bulkhead, release, entered)
        await trio.testing.wait_all_tasks_blocked()
        called = []

        async def work() -> None:
            called.append(True)

        with pytest.raises(BulkheadFullError, match="bulkhead 'db' is full: 2 calls running"):
            await bulkhead.call(work)
        assert called == []
        assert bulkhead.statistics() == BulkheadStatistics(
            name="db", max_concurrent=2, in_use=2, waiting=0, admitted=2, rejected=1
        )
        release.set()
    assert bulkhead.statistics().in_use == 0


async def test_a_waiter_gets_the_slot_the_moment_it_is_freed(
    mock_clock: trio.testing.MockClock,
) -> None:
    """Within max_wait, a waiter enters exactly when a slot is released."""
    bulkhead = Bulkhead(max_concurrent=1, max_wait=5.0)
    release = trio.Event()
    entered: list[float] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(hold, bulkhead, release, entered)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(hold, bulkhead, trio.Event(), entered)
        await trio.testing.wait_all_tasks_blocked()
        assert bulkhead.statistics().waiting == 1
        mock_clock.jump(2.0)
        release.set()
        await trio.testing.wait_all_tasks_blocked()
        assert entered == [0.0, 2.0]
        assert bulkhead.statistics().in_use == 1
        nursery.cancel_scope.cancel()
    assert bulkhead.statistics().in_use == 0


async def test_a_waiter_is_refused_when_max_wait_runs_out(autojump_clock: trio.abc.Clock) -> None:
    """A slot that frees only after max_wait comes too late: BulkheadFullError at max_wait."""
    bulkhead = Bulkhead(max_concurrent=1, max_wait=5.0)
    release = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(hold, bulkhead, release, [])
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(BulkheadFullError):
            await bulkhead.call(trio.sleep, 0)
        assert trio.current_time() == 5.0
        release.set()


async def test_slots_go_to_waiters_in_arrival_order(mock_clock: trio.testing.MockClock) -> None:
    """Freed slots are handed to the longest waiter; a newcomer cannot barge in."""
    bulkhead = Bulkhead(max_concurrent=1, max_wait=60.0)
    order: list[str] = []
    releases = {name: trio.Event() for name in "abc"}

    async def worker(name: str) -> None:
        async def work() -> None:
            order.append(name)
            await releases[name].wait()

        await bulkhead.call(work)

    async with trio.open_nursery() as nursery:
        for name in "abc":
            nursery.start_soon(worker, name)
            await trio.testing.wait_all_tasks_blocked()
        releases["a"].set()
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(BulkheadFullError):
            await bulkhead.acquire(max_wait=0.0)
        releases["b"].set()
        releases["c"].set()
    assert order == ["a", "b", "c"]


async def test_a_cancelled_waiter_takes_no_slot(autojump_clock: trio.abc.Clock) -> None:
    """Cancelling a waiting caller leaves the queue and the slot count unchanged."""
    bulkhead = Bulkhead(max_concurrent=1, max_wait=60.0)
    release = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(hold, bulkhead, release, [])
        await trio.testing.wait_all_tasks_blocked()
        with trio.move_on_after(1.0):
            await bulkhead.acquire()
        assert bulkhead.statistics().waiting == 0
        release.set()
    assert bulkhead.statistics().in_use == 0
    await bulkhead.acquire()
    bulkhead.release()


def test_releasing_more_than_acquired_is_an_error() -> None:
    """A release without an acquire is a bug, reported at once."""
    with pytest.raises(RuntimeError, match="released more often than acquired"):
        Bulkhead(max_concurrent=1).release()


def test_bulkhead_from_policy() -> None:
    """A bulkhead built from a BulkheadPolicy has its limits."""
    bulkhead = Bulkhead.from_policy(BulkheadPolicy(max_concurrent=4, max_wait=1.5), name="x")
    assert (bulkhead.max_concurrent, bulkhead.max_wait, bulkhead.name) == (4, 1.5, "x")


async def test_the_bucket_starts_full_then_refuses_with_the_exact_wait(
    autojump_clock: trio.abc.Clock,
) -> None:
    """`burst` calls pass at once; the next is refused with retry_after = time to the next token."""
    limiter = RateLimiter(rate=2.0, burst=3, name="api")
    for _ in range(3):
        await limiter.acquire()
    with pytest.raises(RateLimitedError) as caught:
        await limiter.acquire()
    assert caught.value.retry_after == 0.5
    assert trio.current_time() == 0.0
    await trio.sleep(0.5)
    await limiter.acquire()
    assert limiter.statistics() == RateLimiterStatistics(
        name="api", rate=2.0, burst=3, tokens=0.0, waiting=0, admitted=4, rejected=1
    )


async def test_callers_within_max_wait_wait_for_their_token_in_order(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Waiting callers reserve tokens in turn; one that would wait past max_wait is refused."""
    limiter = RateLimiter(rate=2.0, burst=1, max_wait=1.0)
    started: list[tuple[int, float]] = []

    async def caller(number: int) -> None:
        async def work() -> None:
            started.append((number, trio.current_time()))

        await limiter.call(work)

    async with trio.open_nursery() as nursery:
        for number in range(3):
            nursery.start_soon(caller, number)
            await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(RateLimitedError) as caught:
            await limiter.acquire()
        assert caught.value.retry_after == 1.5
    assert started == [(0, 0.0), (1, 0.5), (2, 1.0)]


async def test_an_idle_bucket_refills_only_up_to_burst(autojump_clock: trio.abc.Clock) -> None:
    """After a long pause, exactly `burst` calls pass at once."""
    limiter = RateLimiter(rate=10.0, burst=2)
    await limiter.acquire()
    await limiter.acquire()
    await trio.sleep(3600.0)
    await limiter.acquire()
    await limiter.acquire()
    with pytest.raises(RateLimitedError):
        await limiter.acquire()


async def test_tokens_that_add_up_in_floating_point_count_as_whole(
    autojump_clock: trio.abc.Clock,
) -> None:
    """0.1 s at 10 tokens/s is a whole token, though 10 * 0.1-ish sums are not exactly 1.0."""
    limiter = RateLimiter(rate=10.0, burst=1)
    await limiter.acquire()
    await trio.sleep(0.3)
    await limiter.acquire()
    await trio.sleep(0.3 - 0.2)
    await limiter.acquire()


async def test_a_cancelled_waiter_gives_its_token_back(autojump_clock: trio.abc.Clock) -> None:
    """A caller cancelled while waiting returns the token it had reserved."""
    limiter = RateLimiter(rate=1.0, burst=1, max_wait=10.0)
    await limiter.acquire()
    with trio.move_on_after(0.25):
        await limiter.acquire()
    assert limiter.statistics().waiting == 0
    await trio.sleep(0.75)
    await limiter.acquire(max_wait=0.0)


async def test_rate_limiter_call_passes_arguments() -> None:
    """`call(fn, *args)` awaits fn(*args) after taking a token."""
    limiter = RateLimiter(rate=1.0, burst=1)

    async def double(value: int) -> int:
        return value * 2

    assert await limiter.call(double, 21) == 42


def test_rate_limiter_from_policy_and_validation() -> None:
    """A limiter built from a RateLimitPolicy has its numbers; bad numbers are refused."""
    limiter = RateLimiter.from_policy(RateLimitPolicy(rate=5.0, burst=10, max_wait=2.0))
    assert (limiter.rate, limiter.burst, limiter.max_wait) == (5.0, 10, 2.0)
    with pytest.raises(ValueError, match="rate must be greater than 0"):
        RateLimiter(rate=0.0, burst=1)
    with pytest.raises(ValueError, match="burst must be at least 1"):
        RateLimiter(rate=1.0, burst=0)

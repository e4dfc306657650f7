"""Global bulkheads and rate limiters on a real PostgreSQL, one process holding slots killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
import trio.testing

from orchestr8._errors import BulkheadFullError, RateLimitedError
from orchestr8._journal._postgres_resilience import PostgresResilienceStore
from orchestr8._journal._postgres_schema import connect
from orchestr8._resilience._global_limits import GlobalBulkhead, GlobalRateLimiter
from orchestr8._resilience._pipeline import call_with_policy
from orchestr8._resilience._shared_state import SharedState
from orchestr8._workflow._policy import BulkheadPolicy, Policy, RateLimitPolicy, RetryPolicy

ROOT = Path(__file__).resolve().parents[2]

HOLDER = """
import sys, trio
from orchestr8._journal._postgres_resilience import PostgresResilienceStore
from orchestr8._resilience._shared_state import SharedState

async def main():
    store = await PostgresResilienceStore.open(sys.argv[1])
    state = SharedState(store, "doomed", ttl=0.1, slot_lease=1.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(state.run)
        assert await state.acquire_slot("bulk", 1) is not None
        print("held", flush=True)
        await trio.sleep_forever()

trio.run(main)
"""


@asynccontextmanager
async def shared_state(url: str, name: str) -> AsyncIterator[SharedState]:
    """A running shared state of one "process" (its own connection and holder)."""
    store = await PostgresResilienceStore.open(url)
    state = SharedState(store, name, ttl=0.05)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(state.run)
            yield state
            await state.stop()
    finally:
        await store.aclose()


def slots(url: str) -> list[str]:
    with connect(url, purpose="test") as connection:
        return [row[0] for row in connection.execute("SELECT holder FROM limit_slots")]


async def test_a_full_global_bulkhead_refuses_at_once_without_max_wait(postgres_url: str) -> None:
    """Every slot taken by another process: a caller with no max_wait is refused, naming it."""
    async with shared_state(postgres_url, "p1") as one, shared_state(postgres_url, "p2") as two:
        policy = BulkheadPolicy(max_concurrent=1, scope="global")
        first = GlobalBulkhead.from_policy(policy, shared=one, name="bulk")
        second = GlobalBulkhead.from_policy(policy, shared=two, name="bulk")
        await first.acquire()
        with pytest.raises(BulkheadFullError, match=r"'bulk' \(global\) is full"):
            await second.acquire()
        assert second.statistics().rejected == 1
        first.release()
        await second.acquire(max_wait=30.0)
        assert second.statistics().in_use == 1
        second.release()
        with pytest.raises(RuntimeError, match="released more often"):
            second.release()


async def test_a_local_release_wakes_a_local_waiter_at_once(postgres_url: str) -> None:
    """A waiter of the same process is woken by the release, not by its next poll."""
    async with shared_state(postgres_url, "p1") as one:
        bulkhead = GlobalBulkhead(max_concurrent=1, max_wait=30.0, name="bulk", shared=one)
        await bulkhead.acquire()
        admitted = trio.Event()

        async def waiter() -> None:
            await bulkhead.acquire()
            admitted.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiter)
            await trio.testing.wait_all_tasks_blocked()
            assert bulkhead.statistics().waiting == 1
            bulkhead.release()
            await admitted.wait()
        bulkhead.release()
    assert slots(postgres_url) == []


async def test_a_killed_holders_slot_expires_and_the_others_proceed(postgres_url: str) -> None:
    """A process SIGKILLed while holding the only slot: its lease runs out and this one gets it."""
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}
    holder = await trio.lowlevel.open_process(
        [sys.executable, "-c", HOLDER, postgres_url], stdout=subprocess.PIPE, env=environment
    )
    try:
        assert holder.stdout is not None
        said = b""
        while not said.endswith(b"\n"):
            said += await holder.stdout.receive_some()
        assert said.strip() == b"held"
        async with shared_state(postgres_url, "survivor") as survivor:
            bulkhead = GlobalBulkhead(max_concurrent=1, name="bulk", shared=survivor)
            with pytest.raises(BulkheadFullError):
                await bulkhead.acquire()
            holder.send_signal(signal.SIGKILL)
            await holder.wait()
            await bulkhead.acquire(max_wait=60.0)
            assert slots(postgres_url) == ["survivor"]
            bulkhead.release()
    finally:
        if holder.returncode is None:
            holder.kill()
        await holder.wait()
        if holder.stdout is not None:
            await holder.stdout.aclose()


async def test_a_global_rate_limiter_shares_one_bucket(postgres_url: str) -> None:
    """Two processes' limiters of one key take from one bucket of `burst` tokens."""
    async with shared_state(postgres_url, "p1") as one, shared_state(postgres_url, "p2") as two:
        policy = RateLimitPolicy(rate=0.0001, burst=2, scope="global")
        first = GlobalRateLimiter.from_policy(policy, shared=one, name="api")
        second = GlobalRateLimiter.from_policy(policy, shared=two, name="api")
        await first.acquire()
        await second.acquire()
        with pytest.raises(RateLimitedError, match=r"'api' \(global\) has no token") as refused:
            await first.acquire()
        assert refused.value.retry_after > 1000
        assert first.statistics().admitted == 1
        assert first.statistics().rejected == 1


async def test_a_global_rate_limiter_counts_a_database_failure_as_a_refusal() -> None:
    """An unreachable database refuses the token (RateLimitedError), counted as rejected."""
    store = PostgresResilienceStore("postgresql://nobody@127.0.0.1:1/none")
    limiter = GlobalRateLimiter(rate=1.0, burst=1, name="api", shared=SharedState(store, "p"))
    with pytest.raises(RateLimitedError, match="could not take a token"):
        await limiter.acquire()
    assert limiter.statistics().rejected == 1
    bulkhead = GlobalBulkhead(max_concurrent=1, name="bulk", shared=SharedState(store, "p"))
    with pytest.raises(BulkheadFullError, match="could not take a slot"):
        await bulkhead.acquire()
    assert bulkhead.statistics().rejected == 1


async def test_a_waiting_caller_gives_up_at_the_steps_deadline(
    postgres_url: str, autojump_clock: trio.testing.MockClock
) -> None:
    """In the pipeline, a full global bulkhead's wait ends at the deadline, not at max_wait."""
    stores = [await PostgresResilienceStore.open(postgres_url) for _ in range(2)]
    try:
        waiting, holding = SharedState(stores[0], "a"), SharedState(stores[1], "b")
        assert await holding.acquire_slot("bulk", 1) is not None
        bulkhead = GlobalBulkhead(max_concurrent=1, max_wait=600.0, name="bulk", shared=waiting)
        calls = 0

        async def call(attempt: int) -> None:
            nonlocal calls
            calls += 1

        policy = Policy(deadline=5.0, retry=RetryPolicy(max_attempts=1), circuit_breaker=None)
        started = trio.current_time()
        with pytest.raises(BulkheadFullError):
            await call_with_policy(call, policy, bulkhead=bulkhead)
        assert trio.current_time() - started == pytest.approx(5.0)
        assert calls == 0
    finally:
        for store in stores:
            await store.aclose()

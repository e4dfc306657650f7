"""Shared circuit breakers: two processes' breakers of one key on a real PostgreSQL.

Each "process" is a `SharedState` of its own (its own connection and holder) with a breaker
registry on it. The trio clock is a `MockClock` moved by hand; the database's clock is moved by
rewriting `open_until`, so no test waits for real time to pass.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing
from postgres_server import free_port

from orchestr8._errors import BudgetExhaustedError, CircuitOpenError
from orchestr8._journal._postgres_resilience import PostgresResilienceStore
from orchestr8._journal._postgres_schema import connect
from orchestr8._resilience._breaker import (
    BreakerState,
    BreakerTransition,
    CircuitBreaker,
    CircuitBreakerRegistry,
)
from orchestr8._resilience._shared_breaker import CLOSED_ELSEWHERE, SharedCircuitBreaker
from orchestr8._resilience._shared_state import SharedState
from orchestr8._workflow._policy import CircuitBreakerPolicy

POLICY = CircuitBreakerPolicy(failure_threshold=2, reset_timeout=30.0, half_open_requests=1)


@asynccontextmanager
async def process(url: str, name: str) -> AsyncIterator[tuple[SharedState, CircuitBreakerRegistry]]:
    """One process's shared state (not running: tests call `sync`) and breaker registry."""
    store = await PostgresResilienceStore.open(url)
    state = SharedState(store, name)
    try:
        yield state, CircuitBreakerRegistry(default_policy=POLICY, shared=state)
    finally:
        await state.stop()
        await store.aclose()


def expire(url: str) -> None:
    """Move every breaker's open time into the database's past."""
    with connect(url, purpose="test") as connection:
        connection.execute("UPDATE breakers SET open_until = now() - interval '1 second'")


def fail(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        breaker.record_failure(breaker.admit(), RuntimeError("down"))


async def test_a_registry_without_shared_state_builds_plain_breakers() -> None:
    """No shared state (SQLite, memory): the registry's breakers are the process-local kind."""
    registry = CircuitBreakerRegistry()
    assert type(registry.get("k")) is CircuitBreaker


async def test_an_opening_in_one_process_rejects_calls_in_the_other(
    postgres_url: str, mock_clock: trio.testing.MockClock
) -> None:
    """Process 1 opens after its failures; after one refresh process 2 rejects without calling."""
    async with (
        process(postgres_url, "p1") as (one, first),
        process(postgres_url, "p2") as (
            two,
            second,
        ),
    ):
        breaker_one, breaker_two = first.get("dep"), second.get("dep")
        assert isinstance(breaker_two, SharedCircuitBreaker)
        fail(breaker_one, 1)
        breaker_two.record_success(breaker_two.admit())
        fail(breaker_one, 1)
        assert breaker_one.state is BreakerState.OPEN
        assert breaker_two.admit() >= 0  # the opening is not known there before a refresh
        await one.sync()
        await two.sync()
        with pytest.raises(CircuitOpenError, match="shared by every process") as rejected:
            breaker_two.admit()
        assert 29.0 < rejected.value.retry_after <= 30.0
        assert breaker_two.state is BreakerState.CLOSED
        mock_clock.jump(10)
        with pytest.raises(CircuitOpenError) as later:
            breaker_two.admit()
        assert later.value.retry_after <= 20.0


async def test_after_open_until_only_the_first_claimer_probes_and_its_success_closes_both(
    postgres_url: str, mock_clock: trio.testing.MockClock
) -> None:
    """Both ask for the probe; one wins it, the other keeps rejecting until the probe closes it."""
    async with (
        process(postgres_url, "p1") as (one, first),
        process(postgres_url, "p2") as (
            two,
            second,
        ),
    ):
        transitions: list[BreakerTransition] = []
        first.add_listener(transitions.append)
        breaker_one, breaker_two = first.get("dep"), second.get("dep")
        fail(breaker_one, 2)
        await one.sync()
        await two.sync()
        expire(postgres_url)
        mock_clock.jump(31)
        for breaker in (breaker_one, breaker_two):
            with pytest.raises(CircuitOpenError, match="probe is being arranged"):
                breaker.admit()
        await one.sync()
        await two.sync()
        assert one.open_breakers()["dep"].mine
        assert not two.open_breakers()["dep"].mine
        with pytest.raises(CircuitOpenError, match="another process probes it"):
            breaker_two.admit()
        ticket = breaker_one.admit()
        assert breaker_one.state is BreakerState.HALF_OPEN
        with pytest.raises(CircuitOpenError, match="every probe slot is taken"):
            breaker_one.admit()
        breaker_one.record_success(ticket)
        assert breaker_one.statistics().state is BreakerState.CLOSED
        assert "dep" not in one.open_breakers()
        await one.sync()
        await two.sync()
        breaker_two.record_success(breaker_two.admit())
        assert [(t.new, t.reason) for t in transitions] == [
            (BreakerState.OPEN, "failure_threshold"),
            (BreakerState.HALF_OPEN, "reset_timeout"),
            (BreakerState.CLOSED, "probes_succeeded"),
        ]


async def test_a_failed_probe_reopens_the_breaker_for_everyone(
    postgres_url: str, mock_clock: trio.testing.MockClock
) -> None:
    """The prober's failure publishes a new open time: the other process rejects again."""
    async with (
        process(postgres_url, "p1") as (one, first),
        process(postgres_url, "p2") as (
            two,
            second,
        ),
    ):
        breaker_one, breaker_two = first.get("dep"), second.get("dep")
        fail(breaker_two, 2)
        await two.sync()
        expire(postgres_url)
        await one.sync()
        with pytest.raises(CircuitOpenError):
            breaker_one.admit()
        await one.sync()
        fail(breaker_one, 1)
        assert breaker_one.state is BreakerState.OPEN
        await one.sync()
        await two.sync()
        with pytest.raises(CircuitOpenError) as rejected:
            breaker_two.admit()
        assert rejected.value.retry_after > 29.0


async def test_a_breaker_open_here_closes_when_another_process_closed_it(
    postgres_url: str, mock_clock: trio.testing.MockClock
) -> None:
    """Process 2's breaker opened too; process 1's probes closed it: process 2 closes as well."""
    async with (
        process(postgres_url, "p1") as (one, first),
        process(postgres_url, "p2") as (
            two,
            second,
        ),
    ):
        seen: list[BreakerTransition] = []
        second.add_listener(seen.append)
        breaker_one, breaker_two = first.get("dep"), second.get("dep")
        fail(breaker_two, 2)
        await two.sync()
        expire(postgres_url)
        await one.sync()
        with pytest.raises(CircuitOpenError):
            breaker_one.admit()
        await one.sync()
        breaker_one.record_success(breaker_one.admit())
        await one.sync()
        await two.sync()
        breaker_two.record_success(breaker_two.admit())
        assert breaker_two.state is BreakerState.CLOSED
        assert seen[-1].reason == CLOSED_ELSEWHERE


async def test_manual_states_stay_local_and_a_manual_close_is_shared(
    postgres_url: str, mock_clock: trio.testing.MockClock
) -> None:
    """force_open and disable change one process only; close() publishes the closing."""
    async with (
        process(postgres_url, "p1") as (one, first),
        process(postgres_url, "p2") as (
            two,
            second,
        ),
    ):
        breaker_one, breaker_two = first.get("dep"), second.get("dep")
        breaker_one.force_open()
        await one.sync()
        await two.sync()
        breaker_two.record_success(breaker_two.admit())
        with pytest.raises(CircuitOpenError, match="forced open"):
            breaker_one.admit()
        breaker_one.disable()
        fail(breaker_one, 5)
        fail(breaker_two, 2)
        await two.sync()
        await one.sync()
        assert breaker_one.admit() >= 0
        breaker_two.close()
        await two.sync()
        await one.sync()
        assert one.open_breakers() == {}


async def test_neutral_errors_change_nothing_shared(
    postgres_url: str, mock_clock: trio.testing.MockClock
) -> None:
    """A budget refusal is neutral: no opening is counted or published."""
    async with process(postgres_url, "p1") as (one, first):
        breaker = first.get("dep")
        for _ in range(3):
            breaker.record_failure(breaker.admit(), BudgetExhaustedError("no budget"))
        await one.sync()
        assert one.open_breakers() == {}


async def test_while_the_database_is_away_an_open_breaker_probes_on_its_own(
    mock_clock: trio.testing.MockClock,
) -> None:
    """No database to hand out the token: after reset_timeout the breaker probes locally."""
    store = PostgresResilienceStore(f"postgresql://nobody@127.0.0.1:{free_port()}/none")
    state = SharedState(store, "alone")
    registry = CircuitBreakerRegistry(default_policy=POLICY, shared=state)
    breaker = registry.get("dep")
    fail(breaker, 2)
    await state.sync()
    assert not state.connected
    with pytest.raises(CircuitOpenError):
        breaker.admit()
    mock_clock.jump(31)
    breaker.record_success(breaker.admit())
    assert breaker.state is BreakerState.CLOSED
    assert state.open_breakers() == {}


async def test_an_opening_written_late_ends_when_it_would_have(
    postgres_url: str, mock_clock: trio.testing.MockClock
) -> None:
    """An opening held back (database away) is written with the time it has left, not anew."""
    async with (
        process(postgres_url, "p1") as (one, first),
        process(postgres_url, "p2") as (
            two,
            _,
        ),
    ):
        fail(first.get("dep"), 2)
        mock_clock.jump(25)
        await one.sync()
        await two.sync()
        assert two.open_breakers()["dep"].until - trio.current_time() <= 5.0

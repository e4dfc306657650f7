"""The shared state's cache and rounds, and the token-bucket arithmetic every process uses."""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st
from postgres_server import free_port

from orchestr8._errors import BulkheadFullError, RateLimitedError
from orchestr8._journal._postgres_resilience import PostgresResilienceStore
from orchestr8._journal._postgres_schema import connect
from orchestr8._resilience._shared_state import SHARED_STATE_TTL, SharedState, take_token

rates = st.floats(min_value=0.001, max_value=1000.0)
bursts = st.integers(min_value=1, max_value=100)
waits = st.floats(min_value=0.0, max_value=100.0)


@given(
    rate=rates,
    burst=bursts,
    max_wait=waits,
    steps=st.lists(st.floats(min_value=0.0, max_value=10.0), min_size=1, max_size=60),
)
def test_a_bucket_never_grants_more_than_burst_plus_rate_times_time(
    rate: float, burst: int, max_wait: float, steps: list[float]
) -> None:
    """Takes granted up to any moment <= burst + rate x (time elapsed + max_wait)."""
    tokens, elapsed, granted = float(burst), 0.0, 0
    for step in steps:
        take = take_token(tokens, step, rate=rate, burst=burst, max_wait=max_wait)
        elapsed += step
        tokens = take.tokens
        granted += take.taken
        assert granted <= burst + rate * (elapsed + max_wait) + 1e-6
        assert take.tokens <= burst
        assert take.wait <= max_wait or not take.taken


@given(rate=rates, burst=bursts, tokens=st.floats(min_value=-50.0, max_value=100.0))
def test_a_take_refused_leaves_the_bucket_refilled_and_names_the_wait(
    rate: float, burst: int, tokens: float
) -> None:
    """A refused take takes nothing, and its wait is exactly what one token would need."""
    take = take_token(tokens, 0.0, rate=rate, burst=burst, max_wait=0.0)
    refilled = min(float(burst), tokens)
    if take.taken:
        assert take.tokens == pytest.approx(refilled - 1)
    else:
        assert take.tokens == refilled
        assert take.wait == pytest.approx((1 - refilled) / rate)


def test_negative_elapsed_time_refills_nothing() -> None:
    """A clock that went back (another host's) adds no tokens."""
    take = take_token(0.5, -10.0, rate=1.0, burst=5, max_wait=0.0)
    assert not take.taken
    assert take.tokens == 0.5


def test_the_ttl_must_be_positive_and_finite() -> None:
    """A TTL of zero, below zero or infinite is refused when the state is built."""
    store = PostgresResilienceStore("postgresql://user@127.0.0.1:5432/db")
    for ttl in (0.0, -1.0, float("inf")):
        with pytest.raises(ValueError, match="ttl"):
            SharedState(store, "p", ttl=ttl)


async def test_the_background_task_refreshes_every_ttl(
    postgres_url: str, mock_clock: trio.testing.MockClock
) -> None:
    """Another process's opening is seen after at most one TTL, without a call here."""
    store = await PostgresResilienceStore.open(postgres_url)
    other = await PostgresResilienceStore.open(postgres_url)
    state = SharedState(store, "p1")
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(state.run)
            await other.publish_open("dep", "p2", 60.0, "failure_threshold")
            refreshed = state.refreshed
            assert state.open_breakers() == {}
            mock_clock.jump(SHARED_STATE_TTL)
            await refreshed.wait()
            view = state.open_breakers()["dep"]
            assert view.state == "open"
            assert not view.mine
            await state.stop()
    finally:
        await store.aclose()
        await other.aclose()


async def test_own_transitions_show_at_once_and_survive_a_refresh_before_their_write(
    postgres_url: str, mock_clock: trio.testing.MockClock
) -> None:
    """An opening shows in the snapshot before it is written; a closing removes it at once."""
    store = await PostgresResilienceStore.open(postgres_url)
    state = SharedState(store, "p1")
    try:
        state.breaker_opened("dep", 30.0, "failure_threshold")
        assert state.open_breakers()["dep"].until == pytest.approx(trio.current_time() + 30.0)
        await state._read()
        assert "dep" in state.open_breakers()
        await state.store.publish_open("dep", "p1", 30.0, "failure_threshold")
        state.breaker_closed("dep", "probes_succeeded")
        assert "dep" not in state.open_breakers()
        await state._read()
        assert "dep" not in state.open_breakers()
        state.breaker_opened("other", 5.0, "failure_threshold")
        state.breaker_closed("other", "manual")
        await state.sync()
        assert state.open_breakers() == {}
    finally:
        await store.aclose()


async def test_released_slots_are_given_back_and_held_ones_renewed(
    postgres_url: str, mock_clock: trio.testing.MockClock
) -> None:
    """A round gives back released slots and renews held ones; stop writes what is left."""
    store = await PostgresResilienceStore.open(postgres_url)
    state = SharedState(store, "p1", slot_lease=30.0)
    try:
        first = await state.acquire_slot("bulk", 2)
        second = await state.acquire_slot("bulk", 2)
        assert first is not None
        assert second is not None
        assert await state.acquire_slot("bulk", 2) is None
        with connect(postgres_url, purpose="test") as connection:
            connection.execute("UPDATE limit_slots SET expires_at = now() + interval '1 second'")
        await state.sync()
        with connect(postgres_url, purpose="test") as connection:
            (left,) = connection.execute(
                "SELECT min(EXTRACT(EPOCH FROM expires_at - now())) FROM limit_slots"
            ).fetchone() or (0,)
        assert left > 20
        state.release_slot(first)
        await state.stop()
        assert await state.acquire_slot("bulk", 2) is not None
    finally:
        await store.aclose()


async def test_an_unreachable_database_is_logged_and_refuses_global_limits(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Rounds log the failure and go on; a slot or token asked for is refused, naming it."""
    store = PostgresResilienceStore(f"postgresql://nobody@127.0.0.1:{free_port()}/none")
    state = SharedState(store, "p1")
    state.breaker_opened("dep", 30.0, "failure_threshold")
    with caplog.at_level(logging.WARNING, logger="orchestr8.resilience"):
        await state.sync()
        await state.stop()
    assert "could not be synchronised" in caplog.text
    assert "could not be written at shutdown" in caplog.text
    assert "dep" in state.open_breakers()
    with pytest.raises(BulkheadFullError, match="could not take a slot: the shared state database"):
        await state.acquire_slot("bulk", 1)
    with pytest.raises(RateLimitedError, match="could not take a token") as refused:
        await state.take_token("rl", 1.0, 1, 0.0)
    assert refused.value.retry_after == SHARED_STATE_TTL

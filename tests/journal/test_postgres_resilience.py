"""The shared resilience state's SQL on a real PostgreSQL: breakers, global slots, token buckets."""

from __future__ import annotations

import functools
from typing import Any

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st
from postgres_server import PostgresServer

from orchestr8._errors import JournalError
from orchestr8._journal._postgres_resilience import STATEMENT_TIMEOUT, PostgresResilienceStore
from orchestr8._journal._postgres_schema import connect
from orchestr8._resilience._shared_state import TokenTake, take_token


def _decide(tokens: float, elapsed: float, *, rate: float, burst: int) -> tuple[float, TokenTake]:
    take = take_token(tokens, elapsed, rate=rate, burst=burst, max_wait=0.0)
    return take.tokens, take


def _sql(url: str, statement: str, *parameters: Any) -> list[tuple[Any, ...]]:
    with connect(url, purpose="test") as connection:
        cursor = connection.execute(statement, parameters)
        return cursor.fetchall() if cursor.description is not None else []


async def test_an_opened_breaker_is_read_back_with_the_time_it_stays_open(
    postgres_url: str,
) -> None:
    """publish_open writes open_until in database time; breakers() reads the seconds left."""
    store = await PostgresResilienceStore.open(postgres_url)
    try:
        await store.publish_open("agent:a", "worker-1", 30.0, "failure_threshold")
        (row,) = await store.breakers()
        assert (row.key, row.state, row.holder) == ("agent:a", "open", "worker-1")
        assert 25.0 < row.remaining <= 30.0
        await store.publish_closed("agent:a", "worker-2", "probes_succeeded")
        assert await store.breakers() == []
        assert _sql(postgres_url, "SELECT state, opened_by, reason FROM breakers") == [
            ("closed", "worker-2", "probes_succeeded")
        ]
    finally:
        await store.aclose()


async def test_only_one_process_wins_the_half_open_token(postgres_url: str) -> None:
    """Of many claims on an expired open breaker exactly one wins; none while it is open."""
    stores = [await PostgresResilienceStore.open(postgres_url) for _ in range(4)]
    try:
        await stores[0].publish_open("k", "w0", 60.0, "failure_threshold")
        assert not await stores[1].claim_probe("k", "w1", 10.0)
        _sql(postgres_url, "UPDATE breakers SET open_until = now() - interval '1 second'")
        wins: list[str] = []

        async def claim(index: int) -> None:
            if await stores[index].claim_probe("k", f"w{index}", 10.0):
                wins.append(f"w{index}")

        async with trio.open_nursery() as nursery:
            for index in range(4):
                nursery.start_soon(claim, index)
        assert len(wins) == 1
        (row,) = await stores[0].breakers()
        assert (row.state, row.holder) == ("half_open", wins[0])
    finally:
        for store in stores:
            await store.aclose()


async def test_concurrent_takers_never_hold_more_slots_than_the_limit(postgres_url: str) -> None:
    """Many concurrent acquire_slot calls on three connections grant exactly `limit` slots."""
    stores = [await PostgresResilienceStore.open(postgres_url) for _ in range(3)]
    try:
        granted: list[int] = []

        async def take(store: PostgresResilienceStore, holder: str) -> None:
            slot = await store.acquire_slot("bulk", 2, holder, 30.0)
            if slot is not None:
                granted.append(slot)

        async with trio.open_nursery() as nursery:
            for index in range(12):
                nursery.start_soon(take, stores[index % 3], f"w{index % 3}")
        assert len(granted) == 2
        await stores[0].release_slots(granted[:1])
        assert await stores[1].acquire_slot("bulk", 2, "w1", 30.0) is not None
        assert await stores[2].acquire_slot("bulk", 2, "w2", 30.0) is None
    finally:
        for store in stores:
            await store.aclose()


async def test_an_expired_slot_is_taken_over_and_a_renewed_one_is_not(postgres_url: str) -> None:
    """A slot whose lease ran out frees itself; renew_slots keeps a live holder's slot."""
    store = await PostgresResilienceStore.open(postgres_url)
    try:
        dead = await store.acquire_slot("bulk", 2, "dead", 30.0)
        live = await store.acquire_slot("bulk", 2, "live", 30.0)
        assert dead is not None
        assert live is not None
        _sql(postgres_url, "UPDATE limit_slots SET expires_at = now() - interval '1 second'")
        await store.renew_slots([live], 30.0)
        assert await store.acquire_slot("bulk", 2, "next", 30.0) is not None
        assert await store.acquire_slot("bulk", 2, "next", 30.0) is None
        holders = _sql(postgres_url, "SELECT holder FROM limit_slots ORDER BY holder")
        assert holders == [("live",), ("next",)]
    finally:
        await store.aclose()


async def test_a_bucket_starts_full_and_then_refuses_until_it_refills(postgres_url: str) -> None:
    """The first take creates the bucket holding `burst`; takes beyond it are refused."""
    store = await PostgresResilienceStore.open(postgres_url)
    decide = functools.partial(_decide, rate=0.001, burst=3)
    try:
        takes = [await store.take_token("rl", 3, decide) for _ in range(5)]
        assert [take.taken for take in takes] == [True, True, True, False, False]
        assert takes[-1].wait > 900
    finally:
        await store.aclose()


@settings(max_examples=10, deadline=None)
@given(
    rate=st.floats(min_value=50.0, max_value=2000.0),
    burst=st.integers(min_value=1, max_value=5),
    takers=st.integers(min_value=1, max_value=4),
)
def test_takes_across_connections_never_beat_burst_plus_rate_times_elapsed(
    postgres_server: PostgresServer, rate: float, burst: int, takers: int
) -> None:
    """However takes interleave, tokens granted <= burst + rate x database time elapsed."""
    url = postgres_server.create_database()

    async def main() -> None:
        stores = [await PostgresResilienceStore.open(url) for _ in range(takers)]
        decide = functools.partial(_decide, rate=rate, burst=burst)
        granted = 0
        try:
            (start,) = _sql(url, "SELECT clock_timestamp()")[0]

            async def take(store: PostgresResilienceStore) -> None:
                nonlocal granted
                for _ in range(10):
                    if (await store.take_token("rl", burst, decide)).taken:
                        granted += 1

            async with trio.open_nursery() as nursery:
                for store in stores:
                    nursery.start_soon(take, store)
            ((elapsed,),) = _sql(
                url, "SELECT EXTRACT(EPOCH FROM clock_timestamp() - %s)::float8", start
            )
        finally:
            for store in stores:
                await store.aclose()
        assert granted <= burst + rate * elapsed + 1e-6
        assert granted >= min(burst, 10 * takers)

    trio.run(main)


async def test_a_closed_store_reconnects_and_a_bad_url_is_a_journal_error(
    postgres_url: str,
) -> None:
    """aclose drops the connection and the next call opens another; a bad URL is named."""
    store = await PostgresResilienceStore.open(postgres_url)
    await store.aclose()
    assert await store.breakers() == []
    await store.aclose()
    with pytest.raises(JournalError, match="malformed"):
        await PostgresResilienceStore.open("postgresql://user@127.0.0.1:99999/db")


async def test_a_connection_killed_by_the_server_is_replaced(postgres_url: str) -> None:
    """A broken connection fails one call with a storage error; the next call reconnects."""
    store = await PostgresResilienceStore.open(postgres_url)
    try:
        _sql(
            postgres_url,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'orchestr8 resilience'",
        )
        with pytest.raises(store.errors):
            await store.breakers()
        assert await store.breakers() == []
        assert store._connection is not None
        store._connection.close()
        assert await store.breakers() == []
    finally:
        await store.aclose()


async def test_the_store_connection_has_a_statement_timeout(postgres_url: str) -> None:
    """No statement of the store waits longer than STATEMENT_TIMEOUT (a lock wait included)."""
    store = await PostgresResilienceStore.open(postgres_url)
    try:

        def timeout(connection: Any) -> str:
            return str(connection.execute("SHOW statement_timeout").fetchone()[0])

        assert await store._run(timeout) == f"{int(STATEMENT_TIMEOUT)}s"
    finally:
        await store.aclose()

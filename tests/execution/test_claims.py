"""Claims: fcntl locks behind `ExecutionClaims` on SQLite, leases with a heartbeat on PostgreSQL."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
import trio
import trio.testing
from link_proxy import link_proxy
from postgres_server import PostgresServer

from orchestr8._errors import JournalError
from orchestr8._execution._claims import (
    FileLockClaims,
    LeaseClaims,
    PostgresParts,
    held,
    open_claims,
    postgres_parts,
    submit_execution,
)
from orchestr8._journal import _postgres_leases as leases
from orchestr8._journal._events import Event
from orchestr8._journal._journal import ExecutionRecord, open_journal
from orchestr8._journal._postgres_schema import connect

WORKFLOW = {"schema_version": "1.0", "name": "w", "steps": [{"id": "a", "agent": "echo"}]}


async def test_a_sqlite_journal_is_claimed_by_its_execution_locks(tmp_path: Path) -> None:
    """On SQLite, claims are the fcntl locks: one holder at a time, seen by `held`."""
    async with open_journal(tmp_path / "journal.db") as journal:
        assert postgres_parts(journal) is None
        async with open_claims(journal) as claims, open_claims(journal) as other:
            assert isinstance(claims, FileLockClaims)
            assert await claims.acquire("e1")
            assert not await other.acquire("e1")
            assert await held(journal, ["e1", "e2"]) == frozenset({"e1"})
            await claims.release("e1")
            assert await other.acquire("e1")
        assert await held(journal, ["e1"]) == frozenset()


async def test_a_memory_journal_cannot_tell_what_other_processes_hold() -> None:
    """`held` on a memory journal is None (no other process can run its executions)."""
    async with open_journal(None) as journal:
        assert await held(journal, ["e1"]) is None


async def test_only_a_postgresql_journal_takes_submissions(tmp_path: Path) -> None:
    """Submitting to SQLite is refused, naming the PostgreSQL journal workers need."""
    async with open_journal(tmp_path / "journal.db") as journal:
        with pytest.raises(JournalError, match="needs a PostgreSQL journal"):
            await submit_execution(journal, "e1")


def _record(url: str, *execution_ids: str) -> None:
    """Bare execution records for leases to refer to."""
    with psycopg.connect(url, autocommit=True, options="-c search_path=orchestr8") as connection:
        for execution_id in execution_ids:
            connection.execute(
                "INSERT INTO executions (execution_id, workflow_name, workflow, inputs, status,"
                " created_at) VALUES (%s, 'w', '{}', '{}', 'running', '2026-01-01T00:00:00Z')",
                (execution_id,),
            )


def _sql(url: str, statement: str, *arguments: Any) -> list[Any]:
    """Run one statement on a connection of its own; its rows (none for an UPDATE)."""
    connection = connect(url, purpose="orchestr8 test")
    try:
        cursor = connection.execute(statement, arguments or None)
        return cursor.fetchall() if cursor.description else []
    finally:
        connection.close()


async def test_leases_exclude_other_runtimes_and_fence_the_journal(postgres_url: str) -> None:
    """A lease claims for one runtime at a time and sets the epoch its journal writes at."""
    _record(postgres_url, "e1")
    first = LeaseClaims(PostgresParts(postgres_url, leases.Fencing()), name="one", ttl=30)
    second = LeaseClaims(PostgresParts(postgres_url, leases.Fencing()), name="two", ttl=30)
    await first.open()
    await second.open()
    try:
        assert first.holder.startswith("one/")
        assert await first.acquire("e1")
        assert not await first.acquire("e1")
        assert not await second.acquire("e1")
        assert first.parts.fencing.epochs == {"e1": 1}
        assert first.held_here == {"e1"}
        await first.release("e1")
        await first.release("e1")
        assert first.parts.fencing.epochs == {}
        assert await second.acquire("e1")
        assert second.parts.fencing.epochs == {"e1": 2}
    finally:
        await first.close()
        await second.close()
        await second.close()
    with pytest.raises(RuntimeError, match="closed"):
        await first.acquire("e1")


async def test_one_journal_object_serves_one_lease_holder(postgres_url: str) -> None:
    """A second `LeaseClaims` on the same fencing is refused while the first is open."""
    parts = PostgresParts(postgres_url, leases.Fencing())
    first = LeaseClaims(parts)
    await first.open()
    try:
        with pytest.raises(JournalError, match="in use by another runtime"):
            await LeaseClaims(parts).open()
    finally:
        await first.close()
    assert parts.fencing.holder is None
    with pytest.raises(ValueError, match="positive number of seconds"):
        LeaseClaims(parts, ttl=0)


async def test_a_claimed_queued_execution_is_acquired_without_another_claim(
    postgres_url: str,
) -> None:
    """`claim_queued` takes queued executions; acquiring one then raises no epoch again."""
    _record(postgres_url, "e1", "e2")
    claims = LeaseClaims(PostgresParts(postgres_url, leases.Fencing()), ttl=30)
    await claims.open()
    try:
        connection = connect(postgres_url, purpose="orchestr8 test")
        for execution_id in ("e1", "e2"):
            leases.submit(connection, execution_id)
        connection.close()
        claimed = await claims.claim_queued(5)
        assert [claim.execution_id for claim in claimed] == ["e1", "e2"]
        assert await claims.acquire("e1")
        assert claims.parts.fencing.epochs == {"e1": 1, "e2": 1}
        # Released still queued (not ended): a worker runs it again.
        await claims.release("e2")
        assert _sql(
            postgres_url, "SELECT queued, holder FROM leases WHERE execution_id = 'e2'"
        ) == [(True, None)]
    finally:
        await claims.close()
    # Closing marks the holder stopped and lets every lease go.
    assert _sql(postgres_url, "SELECT count(*) FROM leases WHERE holder IS NOT NULL") == [(0,)]


async def test_a_lease_not_renewed_in_time_is_lost_and_unfenced(postgres_url: str) -> None:
    """Renewal drops the leases it could not renew from the fencing and sets `lost`."""
    _record(postgres_url, "e1", "e2")
    claims = LeaseClaims(PostgresParts(postgres_url, leases.Fencing()), ttl=30)
    await claims.open()
    try:
        assert await claims.acquire("e1")
        assert await claims.acquire("e2")
        _sql(
            postgres_url,
            "UPDATE leases SET expires_at = now() - interval '1 second' WHERE execution_id = 'e1'",
        )
        await claims.renew()
        assert claims.lost.is_set()
        assert claims.parts.fencing.epochs == {"e2": 1}
    finally:
        await claims.close()


async def test_renewal_survives_a_lost_connection_by_registering_again(postgres_url: str) -> None:
    """A lease connection the database ended is reopened by whichever call comes next, which
    is asked again there (not failed), its new session registered at once: the leases live on."""
    _record(postgres_url, "e1", "e2")
    claims = LeaseClaims(PostgresParts(postgres_url, leases.Fencing()), ttl=30)
    await claims.open()
    terminate = (
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE application_name = 'orchestr8 leases'"
    )
    try:
        assert await claims.acquire("e1")
        _sql(postgres_url, terminate)
        await claims.renew()  # a new session, registered again: the lease lives on
        assert not claims.lost.is_set()
        async with open_journal(postgres_url) as journal:
            assert await held(journal, ["e1"]) == frozenset({"e1"})
            _sql(postgres_url, terminate)
            assert await claims.acquire("e2")  # reconnected by an acquire, not a renewal
            assert await held(journal, ["e1", "e2"]) == frozenset({"e1", "e2"})
    finally:
        await claims.close()


async def test_the_heartbeat_renews_every_fifth_of_the_ttl(
    postgres_url: str, autojump_clock: trio.testing.MockClock
) -> None:
    """`open_claims` runs the heartbeat: the lease is renewed while the runtime lives."""
    _record(postgres_url, "e1")
    async with (
        open_journal(postgres_url) as journal,
        open_claims(journal, name="beat", ttl=0.5) as claims,
    ):
        assert isinstance(claims, LeaseClaims)
        assert await claims.acquire("e1")
        renewed = _sql(postgres_url, "SELECT expires_at FROM leases")[0][0]
        for _ in range(10_000):
            await trio.sleep(0.1)
            if _sql(postgres_url, "SELECT expires_at FROM leases")[0][0] != renewed:
                break
        else:
            raise AssertionError("the heartbeat never renewed the lease")
        assert not claims.lost.is_set()
        await claims.release("e1")
        assert await held(journal, ["e1"]) == frozenset()


async def test_a_lease_lapsed_by_this_process_clock_fails_the_journal_at_append(
    postgres_url: str,
) -> None:
    """Past the last renewal plus the TTL (a frozen process), an append fails the journal
    before the event is queued, so nothing starts on a lease another worker may hold."""

    async def scenario() -> None:
        async with open_journal(postgres_url) as journal:
            await journal.create_execution(
                ExecutionRecord(execution_id="e1", workflow_name="w", workflow=WORKFLOW)
            )
            async with open_claims(journal, ttl=30) as claims:
                assert isinstance(claims, LeaseClaims)
                assert await claims.acquire("e1")
                await journal.append(Event("e1", 1, "2026-01-01T00:00:00.000Z", 0.0, "x.y"))
                await journal.flush()
                # Frozen past the TTL of its last renewal and of its claim.
                claims.parts.fencing.deadline = time.monotonic() - 1
                claims.parts.fencing.claimed_until["e1"] = time.monotonic() - 1
                with pytest.raises(JournalError, match="not renewed in time"):
                    journal.append_nowait(Event("e1", 2, "2026-01-01T00:00:00.000Z", 0.0, "x.y"))
                assert journal.statistics().failed
                assert await journal.last_seq("e1") == 1

    # Leaving the journal raises its failure, as a failed SQLite write does.
    with pytest.raises(JournalError, match="not renewed in time"):
        await scenario()


async def test_events_of_an_execution_leased_elsewhere_are_refused_at_commit(
    postgres_url: str,
) -> None:
    """The writer's fence refuses a batch of an execution whose lease this journal lacks."""

    async def scenario() -> None:
        async with open_journal(postgres_url) as journal:
            await journal.create_execution(
                ExecutionRecord(execution_id="e1", workflow_name="w", workflow=WORKFLOW)
            )
            async with open_claims(journal, ttl=30):
                connection = connect(postgres_url, purpose="orchestr8 test")
                leases.submit(connection, "e1")
                connection.close()
                await journal.append(Event("e1", 1, "2026-01-01T00:00:00.000Z", 0.0, "x.y"))
                with pytest.raises(JournalError, match="holds no lease on it"):
                    await journal.flush()

    with pytest.raises(JournalError, match="holds no lease on it"):
        await scenario()


async def test_reclaiming_an_execution_running_here_keeps_or_loses_it(postgres_url: str) -> None:
    """A queued execution this runtime runs, its lease lapsed: claimed again at the next epoch it
    goes on here; claimed by another holder in between, it is lost."""
    _record(postgres_url, "e1", "e2")
    claims = LeaseClaims(PostgresParts(postgres_url, leases.Fencing()), ttl=30)
    await claims.open()
    try:
        for execution_id in ("e1", "e2"):
            assert await claims.acquire(execution_id)
        _sql(postgres_url, "UPDATE leases SET queued = true, submitted_at = now()")
        _sql(postgres_url, "UPDATE leases SET expires_at = now() - interval '1 second'")
        _sql(postgres_url, "UPDATE leases SET epoch = 5 WHERE execution_id = 'e2'")
        assert await claims.claim_queued(5) == []
        assert claims.parts.fencing.epochs == {"e1": 2}
        assert claims.lost.is_set()
    finally:
        await claims.close()


async def test_closing_with_the_database_out_of_reach_leaves_the_leases_to_expire(
    postgres_url: str, postgres_server: PostgresServer
) -> None:
    """Closing while the database is away gives up after the first failed release: the leases
    expire on their own, and closing does not wait a connect timeout per lease."""
    _record(postgres_url, "e1", "e2")
    database = postgres_url.rsplit("/", 1)[1]
    with link_proxy(postgres_server.port) as proxy:
        proxied = f"postgresql://postgres@127.0.0.1:{proxy.port}/{database}"
        claims = LeaseClaims(PostgresParts(proxied, leases.Fencing()), ttl=30)
        await claims.open()
        assert await claims.acquire("e1")
        assert await claims.acquire("e2")
        proxy.cut()
        await claims.close()
    assert claims.parts.fencing.epochs == {}
    assert claims.parts.fencing.claimed_until == {}
    assert _sql(postgres_url, "SELECT count(*) FROM leases WHERE holder IS NOT NULL") == [(2,)]


def _hand_over_elsewhere(url: str, execution_id: str) -> None:
    """The lease as another worker left it at the outage: epoch 1, expired, still queued."""
    _sql(
        url,
        "INSERT INTO leases (execution_id, epoch, holder, expires_at, queued, submitted_at)"
        " VALUES (%s, 1, 'w2/h/1/x', now() - interval '1 second', true, now())",
        execution_id,
    )


async def _claimed_after_an_outage(url: str, claim: Any) -> None:
    """Renewals fail through an outage longer than the TTL; the claim made once the database
    is back (`claim(claims)`) holds the execution at epoch 2, and its events are written."""
    async with open_journal(url) as journal:
        await journal.create_execution(
            ExecutionRecord(execution_id="e1", workflow_name="w", workflow=WORKFLOW)
        )
        _hand_over_elsewhere(url, "e1")
        async with open_claims(journal, ttl=30) as claims:
            assert isinstance(claims, LeaseClaims)
            # The last renewal was before the outage, longer ago than the TTL.
            claims.parts.fencing.deadline = time.monotonic() - 1
            await claim(claims)
            assert claims.parts.fencing.epochs == {"e1": 2}
            await journal.append(Event("e1", 1, "2026-01-01T00:00:00.000Z", 0.0, "x.y"))
            await journal.flush()
            assert not journal.statistics().failed
            assert await journal.last_seq("e1") == 1
            assert not claims.lost.is_set()


async def test_a_lease_claimed_after_an_outage_is_judged_by_its_claim(postgres_url: str) -> None:
    """A queued execution claimed once the database is back is written at its new epoch: the
    claim set a fresh expiry, the stale renewal time does not refuse it (no second handover)."""

    async def claim(claims: LeaseClaims) -> None:
        assert [claimed.epoch for claimed in await claims.claim_queued(5)] == [2]

    await _claimed_after_an_outage(postgres_url, claim)


async def test_a_lease_acquired_after_an_outage_is_judged_by_its_acquire(postgres_url: str) -> None:
    """A resume, fork or cancel acquiring an expired lease once the database is back writes at
    its new epoch, whenever the last renewal was."""

    async def claim(claims: LeaseClaims) -> None:
        assert await claims.acquire("e1")

    await _claimed_after_an_outage(postgres_url, claim)


async def test_an_execution_reclaimed_here_after_an_outage_goes_on_at_the_new_epoch(
    postgres_url: str, postgres_server: PostgresServer
) -> None:
    """Renewals fail while the database is out of reach and the lease expires; claimed again
    here at the next epoch, the execution keeps writing. Another lease held here and not
    claimed again since is still refused by the stale renewal time."""
    database = postgres_url.rsplit("/", 1)[1]
    with link_proxy(postgres_server.port) as proxy:
        proxied = f"postgresql://postgres@127.0.0.1:{proxy.port}/{database}"
        async with open_journal(postgres_url) as writer:
            for execution_id in ("e1", "e2"):
                await writer.create_execution(
                    ExecutionRecord(execution_id=execution_id, workflow_name="w", workflow=WORKFLOW)
                )
        with pytest.raises(JournalError, match="e2: its lease"):
            await _reclaim_after_an_outage(postgres_url, proxied, proxy)


async def _reclaim_after_an_outage(url: str, proxied: str, proxy: Any) -> None:
    """The outage and reclaim of the test above; e2's refusal fails the journal at the end."""
    async with open_journal(proxied) as journal, open_claims(journal, ttl=30) as claims:
        assert isinstance(claims, LeaseClaims)
        fencing = claims.parts.fencing
        assert await claims.acquire("e1")
        assert await claims.acquire("e2")
        _sql(url, "UPDATE leases SET queued = true, submitted_at = now()")
        proxy.cut()
        await claims.renew()  # fails: the database is out of reach (logged)
        _sql(url, "UPDATE leases SET expires_at = now() - interval '1 second'")
        _sql(url, "UPDATE leases SET queued = false WHERE execution_id = 'e2'")
        fencing.deadline = time.monotonic() - 1
        fencing.claimed_until["e2"] = time.monotonic() - 1
        proxy.restore()
        assert await claims.claim_queued(5) == []
        assert fencing.epochs == {"e1": 2, "e2": 1}
        assert not claims.lost.is_set()
        await journal.append(Event("e1", 1, "2026-01-01T00:00:00.000Z", 0.0, "x.y"))
        await journal.flush()
        assert await journal.last_seq("e1") == 1
        with pytest.raises(JournalError, match=r"lease \(epoch 1\) was not renewed"):
            journal.append_nowait(Event("e2", 1, "2026-01-01T00:00:00.000Z", 0.0, "x.y"))
        with pytest.raises(JournalError, match="not renewed in time"):
            await journal.flush()


async def test_a_handed_over_worker_writes_nothing_even_under_a_fresh_claim(
    postgres_url: str,
) -> None:
    """Once the worker hands its runs over (`deadline = -inf`), a fresh claim is refused too."""

    async def scenario() -> None:
        async with open_journal(postgres_url) as journal:
            await journal.create_execution(
                ExecutionRecord(execution_id="e1", workflow_name="w", workflow=WORKFLOW)
            )
            async with open_claims(journal, ttl=30) as claims:
                assert isinstance(claims, LeaseClaims)
                assert await claims.acquire("e1")
                claims.parts.fencing.deadline = -math.inf
                with pytest.raises(JournalError, match="not renewed in time"):
                    await journal.append(Event("e1", 1, "2026-01-01T00:00:00.000Z", 0.0, "x.y"))

    with pytest.raises(JournalError, match="not renewed in time"):
        await scenario()

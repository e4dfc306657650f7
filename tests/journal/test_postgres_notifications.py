"""Specifications of the PostgreSQL journal's wake-ups: one NOTIFY per transaction, one LISTEN.

The waits that need the database use `within=math.inf` under the autojump clock: nothing but a
notification (or a reconnect's wake-up) can end them, so a test that passes proves no polling.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st
from postgres_server import PostgresServer

from orchestr8._errors import JournalError
from orchestr8._journal._events import Event
from orchestr8._journal._journal import ExecutionRecord, open_journal
from orchestr8._journal._postgres_notifications import (
    EVERYTHING,
    NOTIFY_CHANNEL,
    PAYLOAD_LIMIT,
    EventNotifications,
    ListeningJournal,
    notification_payload,
    notify_in_transaction,
)

psycopg = pytest.importorskip("psycopg")


def test_payload_names_each_execution_once_in_order() -> None:
    """The payload is the distinct execution ids, first seen first, joined by a space."""
    assert notification_payload(["b", "a", "b", "c", "a"]) == "b a c"


def test_payload_of_no_execution_is_empty() -> None:
    """A batch without executions notifies nothing."""
    assert notification_payload([]) == ""


def test_payload_over_the_limit_wakes_everyone() -> None:
    """Ids that would take more than PAYLOAD_LIMIT bytes become `*`."""
    ids = [f"{number:032x}" for number in range(PAYLOAD_LIMIT // 32 + 1)]
    assert notification_payload(ids) == EVERYTHING


def test_payload_of_ids_that_cannot_be_split_wakes_everyone() -> None:
    """An id holding a space (or an empty one) could not be told apart: `*`."""
    assert notification_payload(["a", "b c"]) == EVERYTHING
    assert notification_payload(["a", ""]) == EVERYTHING


@given(st.lists(st.text(min_size=1, max_size=40), max_size=300))
def test_payload_is_either_everything_or_the_ids(ids: list[str]) -> None:
    """Any batch: `*`, or exactly its distinct ids within the byte limit."""
    payload = notification_payload(ids)
    if payload == EVERYTHING:
        return
    assert len(payload.encode("utf-8", "surrogatepass")) <= PAYLOAD_LIMIT
    assert payload.split(" ") == list(dict.fromkeys(ids)) if ids else payload == ""


async def test_a_notification_wakes_only_the_waiters_of_its_executions(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """`deliver` ends the waits of the executions it names, and no other."""
    notifications = EventNotifications("postgresql://nobody@127.0.0.1:1/none")
    woken: list[str] = []

    async def waiter(execution_id: str) -> None:
        await notifications.wait(execution_id, math.inf, arrived=_never)
        woken.append(execution_id)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter, "a")
        nursery.start_soon(waiter, "a")
        nursery.start_soon(waiter, "b")
        await trio.testing.wait_all_tasks_blocked()
        notifications.deliver("b c")
        await trio.testing.wait_all_tasks_blocked()
        assert woken == ["b"]
        notifications.deliver("a")
    assert sorted(woken) == ["a", "a", "b"]
    assert notifications._signals == {}
    assert not notifications._waiters


async def test_everything_wakes_every_waiter(autojump_clock: trio.testing.MockClock) -> None:
    """A `*` payload ends every wait."""
    notifications = EventNotifications("postgresql://nobody@127.0.0.1:1/none")
    async with trio.open_nursery() as nursery:
        for execution_id in ("a", "b", "c"):
            nursery.start_soon(
                lambda name: notifications.wait(name, math.inf, arrived=_never), execution_id
            )
        await trio.testing.wait_all_tasks_blocked()
        notifications.deliver(EVERYTHING)


async def test_a_wait_ends_after_within(autojump_clock: trio.testing.MockClock) -> None:
    """Without a wake-up a wait lasts `within` seconds, no more (followers then poll)."""
    notifications = EventNotifications("postgresql://nobody@127.0.0.1:1/none")
    started = trio.current_time()
    await notifications.wait("a", 7.0, arrived=_never)
    assert trio.current_time() - started == pytest.approx(7.0)
    assert notifications._signals == {}


async def test_a_wait_returns_at_once_when_the_events_are_there(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """`arrived` is read after registering: True ends the wait without a notification."""
    notifications = EventNotifications("postgresql://nobody@127.0.0.1:1/none")

    async def arrived() -> bool:
        assert notifications._waiters["a"] == 1
        return True

    started = trio.current_time()
    await notifications.wait("a", math.inf, arrived=arrived)
    assert trio.current_time() == started


async def test_a_commit_by_another_connection_wakes_the_waiter(
    postgres_url: str, autojump_clock: trio.testing.MockClock
) -> None:
    """A transaction that notifies wakes a waiter at once: `within` is infinite here."""
    async with _listening(postgres_url) as notifications:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: notifications.wait("run-1", math.inf, arrived=_never))
            await trio.testing.wait_all_tasks_blocked()
            with _connect(postgres_url) as other, other.transaction():
                notify_in_transaction(other, ["run-2", "run-1"])
        assert notifications.connections == 1


async def test_a_rolled_back_transaction_wakes_nobody(
    postgres_url: str, autojump_clock: trio.testing.MockClock
) -> None:
    """The notification goes with the transaction: one that rolled back is never delivered."""
    woken: list[str] = []

    async def waiter(execution_id: str) -> None:
        await notifications.wait(execution_id, math.inf, arrived=_never)
        woken.append(execution_id)

    async with _listening(postgres_url) as notifications:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiter, "run-1")
            nursery.start_soon(waiter, "run-2")
            await trio.testing.wait_all_tasks_blocked()
            with _connect(postgres_url) as other:
                with other.transaction():
                    notify_in_transaction(other, ["run-1"])
                    raise psycopg.Rollback
                with other.transaction():
                    notify_in_transaction(other, ["run-2"])
                # Notifications arrive in commit order: once run-2's is in, run-1's never is.
                await _until(lambda: woken)
                assert woken == ["run-2"]
                with other.transaction():
                    notify_in_transaction(other, ["run-1"])
        assert woken == ["run-2", "run-1"]


def test_one_notification_per_transaction(postgres_url: str) -> None:
    """However many executions a batch holds, its transaction sends one notification."""
    with _connect(postgres_url) as listener, _connect(postgres_url) as writer:
        listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
        with writer.transaction():
            notify_in_transaction(writer, [f"run-{number}" for number in range(50)])
        with writer.transaction():
            notify_in_transaction(writer, [])
        with writer.transaction():
            notify_in_transaction(writer, ["run-1", "run-1"])
        received = [item.payload for item in listener.notifies(timeout=0.5)]
    assert received == [" ".join(f"run-{number}" for number in range(50)), "run-1"]


async def test_reconnects_after_the_server_restarts_and_wakes_everyone(
    postgres_server: PostgresServer,
    postgres_url: str,
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The LISTEN connection comes back after a restart; the reconnect wakes every waiter once."""
    async with _listening(postgres_url) as notifications:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: notifications.wait("run-1", math.inf, arrived=_never))
            await trio.testing.wait_all_tasks_blocked()
            postgres_server.stop("fast")
            postgres_server.start()
            # Woken by the reconnect: what was committed meanwhile was never notified.
        assert notifications.connections == 2
        assert notifications.trouble is None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: notifications.wait("run-1", math.inf, arrived=_never))
            await trio.testing.wait_all_tasks_blocked()
            with _connect(postgres_url) as other, other.transaction():
                notify_in_transaction(other, ["run-1"])


async def test_an_unreachable_database_is_retried_and_reported(
    postgres_server: PostgresServer, autojump_clock: trio.testing.MockClock
) -> None:
    """While the database cannot be reached, `trouble` says why and waits fall back to `within`."""
    from postgres_server import free_port

    url = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    async with _listening(url) as notifications:
        await notifications.wait("run-1", 1.0, arrived=_never)
        await _until(lambda: notifications.trouble is not None)
        assert notifications.trouble is not None
        assert "cannot reach the journal database" in notifications.trouble
        await trio.sleep(10)
        assert not notifications.listening
        assert notifications.connections == 0


async def test_a_malformed_url_is_reported_not_raised(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A URL libpq cannot parse is trouble to report; the waits still end after `within`."""
    async with _listening("postgresql://u@127.0.0.1:99999/x") as notifications:
        await notifications.wait("run-1", 1.0, arrived=_never)
        await _until(lambda: notifications.trouble is not None)
        assert "malformed" in str(notifications.trouble)


def test_the_listen_connection_refuses_a_missing_database(postgres_server: PostgresServer) -> None:
    """Connecting names the database that does not exist (the journal's own wording)."""
    notifications = EventNotifications(postgres_server.url("no_such_database"))
    with pytest.raises(JournalError, match="does not exist"):
        notifications._connect()


async def _never() -> bool:
    await trio.lowlevel.checkpoint()
    return False


async def _until(condition: Any) -> None:
    """Wait until `condition()` holds (on the autojump clock: as long as a thread needs)."""
    for _ in range(1_000_000):
        if condition():
            return
        await trio.sleep(0.01)
    raise AssertionError("the condition never held")


@asynccontextmanager
async def _listening(url: str) -> AsyncIterator[EventNotifications]:
    notifications = EventNotifications(url)
    async with trio.open_nursery() as nursery:
        await nursery.start(notifications.run)
        notifications.listen_now()
        await _until(lambda: notifications.listening or notifications.trouble)
        yield notifications
        nursery.cancel_scope.cancel()


def _connect(url: str) -> Any:
    return closing(psycopg.connect(url, autocommit=True))


async def test_a_commit_by_another_journal_object_wakes_a_follower(
    postgres_url: str, autojump_clock: trio.testing.MockClock
) -> None:
    """A batch another journal object (process) commits wakes `wait_for_events` at once."""
    async with open_journal(postgres_url) as follower, open_journal(postgres_url) as writer:
        await writer.create_execution(_record("run-1"))
        await writer.append(_event("run-1", 1))
        await writer.flush()
        assert isinstance(follower, ListeningJournal)
        # Committed already: no wait at all.
        started = trio.current_time()
        await follower.wait_for_events("run-1", 0, math.inf)
        assert trio.current_time() == started
        # The first wait opened the LISTEN connection; once it listens, only a NOTIFY wakes.
        await _until(lambda: follower.notifications.listening)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(follower.wait_for_events, "run-1", 1, math.inf)
            await trio.testing.wait_all_tasks_blocked()
            await writer.append(_event("run-1", 2))
            await writer.flush()
        assert follower.wakeup_trouble is None
        assert [event.seq for event in await follower.events("run-1", after=1)] == [2]


async def test_each_committed_batch_sends_one_notification(
    postgres_url: str, autojump_clock: trio.testing.MockClock
) -> None:
    """However many events and executions a batch holds, its commit sends one NOTIFY."""
    with _connect(postgres_url) as listener:
        listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
        async with open_journal(postgres_url) as journal:
            for name in ("run-1", "run-2"):
                await journal.create_execution(_record(name))
            for seq in range(1, 40):
                journal.append_nowait(_event("run-1", seq))
                journal.append_nowait(_event("run-2", seq))
            await journal.flush()
            batches = journal.statistics().batches_committed
        received = [item.payload for item in listener.notifies(timeout=0.5)]
    assert len(received) == batches
    assert received[:2] == ["run-1", "run-2"]
    assert received[2:] == ["run-1 run-2"] * (batches - 2)


async def test_a_journal_that_never_follows_opens_no_listen_connection(
    postgres_url: str, postgres_server: PostgresServer
) -> None:
    """The LISTEN connection is opened by the first follower: a writer alone has none."""
    async with open_journal(postgres_url) as journal:
        await journal.create_execution(_record("run-1"))
        assert isinstance(journal, ListeningJournal)
        assert journal.notifications.connections == 0
        with _connect(postgres_url) as probe:
            listening = probe.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'orchestr8 listen'"
            ).fetchone()
        assert listening == (0,)


def _record(execution_id: str) -> ExecutionRecord:
    return ExecutionRecord(
        execution_id=execution_id,
        workflow_name="wf",
        workflow={"schema_version": "1.0", "name": "wf", "steps": []},
    )


def _event(execution_id: str, seq: int) -> Event:
    return Event(execution_id, seq, "2025-01-01T00:00:00.000Z", float(seq), "step.progress", "s")


async def test_a_wait_for_an_unknown_execution_returns_at_once(
    postgres_url: str, autojump_clock: trio.testing.MockClock
) -> None:
    """Nothing to wait for: the follower's next read reports the missing execution."""
    async with open_journal(postgres_url) as journal:
        started = trio.current_time()
        await journal.wait_for_events("nobody", 0, math.inf)
        assert trio.current_time() == started

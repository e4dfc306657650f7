"""Specifications of the journal's write side (`_writer`): the lag cap and who waits on it."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import trio
import trio.testing

from orchestr8._errors import JournalError
from orchestr8._journal._events import Event, EventType
from orchestr8._journal._journal import ExecutionRecord, Journal, open_journal

TS = "2025-01-01T00:00:00.000Z"


def record(execution_id: str = "run-1") -> ExecutionRecord:
    return ExecutionRecord(execution_id, "wf", {"schema_version": "1.0", "name": "wf", "steps": []})


def event(seq: int, execution_id: str = "run-1", **data: Any) -> Event:
    return Event(execution_id, seq, TS, seq / 10, EventType.STEP_PROGRESS, "step", 1, data)


class WakeUpCounter(trio.abc.Instrument):
    """Counts how often the watched tasks are scheduled (woken) by trio."""

    def __init__(self) -> None:
        self.watched: set[trio.lowlevel.Task] = set()
        self.wake_ups = 0

    def task_scheduled(self, task: trio.lowlevel.Task) -> None:
        if task in self.watched:
            self.wake_ups += 1


@pytest.mark.parametrize("limit", [0, 8, 32])
async def test_steps_waiting_behind_the_journal_are_each_woken_a_bounded_number_of_times(
    limit: int,
) -> None:
    """N waiters on `caught_up` cost O(N) wake-ups in all, not O(N) per committed batch.

    Each waiter appends an event, waits for the journal, then appends another (as a step does
    around its agent), so the journal keeps lagging while the waiters drain in many batches.
    """
    waiters = 600
    counter = WakeUpCounter()
    numbers = itertools.count(1)
    async with open_journal(None, queue_size=4 * waiters) as journal:
        await journal.create_execution(record())

        async def step() -> None:
            counter.watched.add(trio.lowlevel.current_task())
            journal.append_nowait(event(next(numbers)))
            await journal.caught_up(limit)
            journal.append_nowait(event(next(numbers)))

        trio.lowlevel.add_instrument(counter)
        try:
            async with trio.open_nursery() as nursery:
                for _ in range(waiters):
                    nursery.start_soon(step)
        finally:
            trio.lowlevel.remove_instrument(counter)
        await journal.flush()
        assert journal.unwritten == 0
        assert journal.statistics().events_written == 2 * waiters
    # Started once, woken at most once: a waiter that is woken never waits again.
    assert counter.wake_ups <= 2 * waiters


async def test_caught_up_waits_for_the_events_appended_before_it_not_after(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A waiter returns once at most `limit` of the events before it are unwritten.

    Events appended after the call, by others, do not hold it back.
    """
    async with open_journal(None) as journal:
        await journal.create_execution(record())
        for seq in range(1, 6):
            journal.append_nowait(event(seq))
        assert journal.unwritten == 5
        await journal.caught_up(5)  # already within the limit: returns at once
        returned = trio.Event()

        async def wait_for_two() -> None:
            await journal.caught_up(2)
            returned.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(wait_for_two)
            await trio.testing.wait_all_tasks_blocked()
            for seq in range(6, 100):
                journal.append_nowait(event(seq))
            await returned.wait()
        await journal.flush()
        assert journal.unwritten == 0


async def test_a_failing_journal_releases_everyone_waiting_to_catch_up() -> None:
    """Once the journal fails, `caught_up` returns: nothing it waits for will ever be written."""
    released: list[int] = []

    async def wait_then_fail() -> None:
        async with open_journal(None) as journal:
            journal.append_nowait(event(1, execution_id="ghost"))
            async with trio.open_nursery() as nursery:
                for limit in range(3):
                    nursery.start_soon(wait_for, journal, limit)
                await trio.testing.wait_all_tasks_blocked()

    async def wait_for(journal: Journal, limit: int) -> None:
        await journal.caught_up(limit)
        released.append(limit)

    with pytest.raises(JournalError, match="'ghost'"):
        await wait_then_fail()
    assert sorted(released) == [0, 1, 2]


async def test_only_a_journal_with_something_durable_to_lose_makes_steps_wait() -> None:
    """A file or database journal caps the lag at `UNWRITTEN_LIMIT`; memory has no cap."""
    from orchestr8._journal._memory import MemoryJournal
    from orchestr8._journal._postgres import PostgresJournal
    from orchestr8._journal._sqlite import SQLiteJournal
    from orchestr8._journal._writer import UNWRITTEN_LIMIT

    assert SQLiteJournal.lag_limit == PostgresJournal.lag_limit == UNWRITTEN_LIMIT
    assert MemoryJournal.lag_limit is None

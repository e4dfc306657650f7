"""`_replay_cache`: an execution's events replayed once while unchanged, never after a prune."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

from orchestr8._errors import ExecutionNotFoundError
from orchestr8._journal._events import Event, EventType
from orchestr8._journal._journal import ExecutionRecord, open_journal
from orchestr8._journal._retention import prune_journal_file
from orchestr8._web._replay_cache import ReplayCache

OLD = "2026-01-01T00:00:00.000Z"
CUTOFF = "2026-06-01T00:00:00.000Z"


async def add(journal: Any, execution_id: str, *, steps: int = 1, ended: bool = True) -> None:
    """Record an execution whose `steps` steps succeeded, finished unless `ended` is False."""
    workflow = {
        "schema_version": "1.0",
        "name": "wf",
        "steps": [{"id": f"s{index}", "agent": "echo"} for index in range(steps)],
    }
    await journal.create_execution(ExecutionRecord(execution_id, "wf", workflow, created_at=OLD))
    events = [Event(execution_id, 1, OLD, 0.0, EventType.EXECUTION_STARTED)]
    for index in range(steps):
        events.append(
            Event(execution_id, len(events) + 1, OLD, 0.1, EventType.STEP_STARTED, f"s{index}")
        )
        events.append(
            Event(
                execution_id,
                len(events) + 1,
                OLD,
                0.2,
                EventType.STEP_SUCCEEDED,
                f"s{index}",
                1,
                {"output": index},
            )
        )
    if ended:
        events.append(Event(execution_id, len(events) + 1, OLD, 1.0, EventType.EXECUTION_SUCCEEDED))
    for event in events:
        await journal.append(event)
    await journal.flush()


async def test_an_unchanged_execution_is_replayed_once() -> None:
    """A second read with no new event is the first one's events and state, not a new replay."""
    async with open_journal(None) as journal:
        await add(journal, "a", steps=3)
        cache = ReplayCache(lambda: journal)
        first = await cache.read("a")
        second = await cache.read("a")
    assert second is first
    assert (cache.misses, cache.hits) == (1, 1)
    assert first.last_seq == 8
    assert [event.seq for event in first.events] == list(range(1, 9))
    assert first.state.status == "succeeded"


async def test_a_new_event_is_read_and_replayed_again() -> None:
    """A running execution's next event changes its last seq, so the next read replays anew."""
    async with open_journal(None) as journal:
        await add(journal, "a", steps=1, ended=False)
        cache = ReplayCache(lambda: journal)
        before = await cache.read("a")
        await journal.append(Event("a", 4, OLD, 1.0, EventType.EXECUTION_SUCCEEDED))
        await journal.flush()
        after = await cache.read("a")
    assert (before.last_seq, after.last_seq) == (3, 4)
    assert (before.state.status, after.state.status) == ("running", "succeeded")
    assert cache.misses == 2


async def test_panels_reading_together_share_one_replay() -> None:
    """Reads of one execution that arrive together wait for one another: one replay for all."""
    async with open_journal(None) as journal:
        await add(journal, "a", steps=20)
        cache = ReplayCache(lambda: journal)
        results = []

        async def read() -> None:
            results.append(await cache.read("a"))

        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(read)
    assert cache.misses == 1
    assert all(result is results[0] for result in results)


async def test_the_least_recently_read_executions_go_first() -> None:
    """Past its bounds (entries, then events held) the executions read longest ago go."""
    async with open_journal(None) as journal:
        for execution_id in "abc":
            await add(journal, execution_id, steps=2)
        by_entries = ReplayCache(lambda: journal, entries=2)
        for execution_id in "abac":  # b is read longest ago when c comes
            await by_entries.read(execution_id)
        await by_entries.read("a")
        await by_entries.read("b")
        by_events = ReplayCache(lambda: journal, events=8)
        await by_events.read("a")
        await by_events.read("b")
        await by_events.read("b")
        await by_events.read("a")
    assert (by_entries.misses, by_entries.hits) == (4, 2)
    assert (by_events.misses, by_events.hits) == (3, 1)


async def test_an_execution_bigger_than_the_bound_is_still_kept_alone() -> None:
    """The newest read always stays, even when it alone holds more events than the bound."""
    async with open_journal(None) as journal:
        await add(journal, "a", steps=5)
        cache = ReplayCache(lambda: journal, events=2)
        await cache.read("a")
        await cache.read("a")
    assert cache.hits == 1


async def test_a_pruned_execution_is_not_served_from_the_cache(tmp_path: Path) -> None:
    """After a prune deleted it, reading the execution says it is not found, as the journal does."""
    path = tmp_path / "journal.db"
    async with open_journal(path) as journal:
        await add(journal, "old")
        cache = ReplayCache(lambda: journal)
        await cache.read("old")
        await trio.to_thread.run_sync(
            lambda: prune_journal_file(path, cutoff=CUTOFF, held=lambda ids: ())
        )
        with pytest.raises(ExecutionNotFoundError, match="old"):
            await cache.read("old")

"""The derived status `interrupted`: unfinished in the journal, while no process holds its lock."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestr8._execution._liveness import (
    INTERRUPTED,
    SHOWN_STATUSES,
    interrupted_executions,
    list_shown_executions,
    shown_status,
)
from orchestr8._execution._lock import ExecutionLocks
from orchestr8._journal._events import Event, EventType, ExecutionStatus
from orchestr8._journal._journal import ExecutionRecord, Journal, open_journal

WORKFLOW = {"schema_version": "1.0", "name": "w", "steps": [{"id": "a", "agent": "echo"}]}


async def record(journal: Journal, execution_id: str, *types: EventType) -> None:
    """Record an execution with these events, as a run in some process would have."""
    await journal.create_execution(
        ExecutionRecord(execution_id=execution_id, workflow_name="w", workflow=WORKFLOW)
    )
    for seq, kind in enumerate(types, start=1):
        await journal.append(Event(execution_id, seq, "2025-01-01T00:00:00.000Z", 0.0, kind))
    await journal.flush()


async def test_an_unfinished_execution_nobody_locks_is_interrupted(tmp_path: Path) -> None:
    """Running or pending and unlocked: interrupted; locked or finished: as the journal says."""
    path = tmp_path / "journal.db"
    async with open_journal(path) as journal:
        await record(journal, "dead", EventType.EXECUTION_STARTED)
        await record(journal, "never-started")
        await record(journal, "live", EventType.EXECUTION_STARTED)
        await record(journal, "done", EventType.EXECUTION_STARTED, EventType.EXECUTION_SUCCEEDED)
        locks = ExecutionLocks(path)
        try:
            assert locks.acquire("live")
            statuses = {
                execution_id: (await journal.get_execution(execution_id)).status
                for execution_id in ("dead", "never-started", "live", "done")
            }
            assert await interrupted_executions(journal, statuses.items()) == {
                "dead",
                "never-started",
            }
            assert await shown_status(journal, "live", ExecutionStatus.RUNNING) == "running"
            assert await shown_status(journal, "dead", ExecutionStatus.RUNNING) == INTERRUPTED
        finally:
            locks.close()
        # The run let go of its lock without recording an ending: its process is gone.
        assert await shown_status(journal, "live", ExecutionStatus.RUNNING) == INTERRUPTED


async def test_a_run_that_ended_since_the_status_was_read_is_not_interrupted(
    tmp_path: Path,
) -> None:
    """A stale `running` whose run has ended and unlocked is read again: it shows its ending."""
    async with open_journal(tmp_path / "journal.db") as journal:
        await record(journal, "ended", EventType.EXECUTION_STARTED, EventType.EXECUTION_FAILED)
        stale = [("ended", ExecutionStatus.RUNNING)]
        assert await interrupted_executions(journal, stale) == frozenset()


async def test_memory_journals_never_have_interrupted_executions() -> None:
    """A memory journal dies with the only process that could run its executions."""
    async with open_journal() as journal:
        await record(journal, "orphan", EventType.EXECUTION_STARTED)
        assert await shown_status(journal, "orphan", ExecutionStatus.RUNNING) == "running"


async def test_listing_filters_by_the_shown_status_and_pages_on(tmp_path: Path) -> None:
    """`interrupted` and `running` split the journal's running ones; cursors continue a list."""
    path = tmp_path / "journal.db"
    async with open_journal(path) as journal:
        for index in range(5):
            await record(journal, f"dead-{index}", EventType.EXECUTION_STARTED)
        await record(journal, "live", EventType.EXECUTION_STARTED)
        await record(journal, "done", EventType.EXECUTION_STARTED, EventType.EXECUTION_SUCCEEDED)
        locks = ExecutionLocks(path)
        try:
            assert locks.acquire("live")
            everything = await list_shown_executions(journal)
            shown = {item.record.execution_id: item.status for item in everything.items}
            assert shown == {
                "done": "succeeded",
                "live": "running",
                **{f"dead-{index}": INTERRUPTED for index in range(5)},
            }
            running = await list_shown_executions(journal, status="running")
            assert [item.record.execution_id for item in running.items] == ["live"]
            seen: list[str] = []
            cursor = None
            while True:
                page = await list_shown_executions(
                    journal, status=INTERRUPTED, limit=2, before=cursor
                )
                assert len(page.items) <= 2
                seen += [item.record.execution_id for item in page.items]
                cursor = page.next_cursor
                if cursor is None:
                    break
            newest_first = [item.record.execution_id for item in everything.items]
            assert seen == [
                execution_id for execution_id in newest_first if execution_id.startswith("dead-")
            ]
        finally:
            locks.close()
        with pytest.raises(ValueError, match="unknown status 'done'"):
            await list_shown_executions(journal, status="done")
    assert SHOWN_STATUSES[-1] == INTERRUPTED


async def test_a_waiting_execution_nobody_runs_is_waiting_not_interrupted(tmp_path: Path) -> None:
    """A run that stopped with gates open waits for a person: it never shows as interrupted."""
    async with open_journal(tmp_path / "journal.db") as journal:
        await record(journal, "paused", EventType.EXECUTION_STARTED, EventType.EXECUTION_WAITING)
        status = (await journal.get_execution("paused")).status
        assert status is ExecutionStatus.WAITING
        assert await shown_status(journal, "paused", status) == "waiting"
        page = await list_shown_executions(journal, status="waiting")
        assert [shown.status for shown in page.items] == ["waiting"]
        assert (await list_shown_executions(journal, status=INTERRUPTED)).items == ()


async def test_workflow_and_id_prefix_filters_hold_for_interrupted(tmp_path: Path) -> None:
    """The journal-level filters narrow the derived status too: interrupted of one workflow."""
    async with open_journal(tmp_path / "journal.db") as journal:
        await record(journal, "a1", EventType.EXECUTION_STARTED)
        await record(journal, "a2", EventType.EXECUTION_STARTED, EventType.EXECUTION_SUCCEEDED)
        await record(journal, "b1", EventType.EXECUTION_STARTED)
        await journal.create_execution(
            ExecutionRecord(execution_id="a3", workflow_name="other", workflow=WORKFLOW)
        )
        by_prefix = await list_shown_executions(journal, status=INTERRUPTED, id_prefix="a")
        assert [item.record.execution_id for item in by_prefix.items] == ["a3", "a1"]
        by_workflow = await list_shown_executions(
            journal, status=INTERRUPTED, workflow="w", id_prefix="a"
        )
        assert [item.record.execution_id for item in by_workflow.items] == ["a1"]
        with pytest.raises(ValueError, match="id_prefix"):
            await list_shown_executions(journal, id_prefix="A")

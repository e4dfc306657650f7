"""`_retention`: prune deletes old finished execution trees, never live ones, then compacts."""

from __future__ import annotations

import sqlite3
from collections.abc import Collection
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestr8._errors import JournalError
from orchestr8._journal._events import Event, EventType
from orchestr8._journal._journal import ExecutionRecord, open_journal
from orchestr8._journal._retention import (
    DURATION_UNITS,
    describe_duration,
    parse_duration,
    prune_journal_file,
)

OLD = "2026-01-01T00:00:00.000Z"
NEW = "2026-12-01T00:00:00.000Z"
CUTOFF = "2026-06-01T00:00:00.000Z"


def document(name: str = "wf") -> dict[str, Any]:
    return {"schema_version": "1.0", "name": name, "steps": [{"id": "a", "agent": "echo"}]}


def nobody(ids: Collection[str]) -> Collection[str]:
    return ()


async def add(
    journal: Any,
    execution_id: str,
    *,
    ended: str | None = OLD,
    status: str = EventType.EXECUTION_SUCCEEDED,
    parent: str | None = None,
    name: str = "wf",
    padding: int = 0,
) -> None:
    """Record an execution that started at OLD and (unless `ended` is None) ended then."""
    await journal.create_execution(
        ExecutionRecord(
            execution_id,
            name,
            document(name),
            created_at=OLD,
            parent_id=parent,
            parent_step=None if parent is None else "step",
        )
    )
    events = [Event(execution_id, 1, OLD, 0.0, EventType.EXECUTION_STARTED)]
    events += [
        Event(execution_id, 2 + index, OLD, 0.1, EventType.STEP_PROGRESS, "a", 1, {"x": "y" * 900})
        for index in range(padding)
    ]
    if ended is not None:
        events.append(Event(execution_id, len(events) + 1, ended, 1.0, status))
    for one in events:
        await journal.append(one)
    await journal.flush()


def ids(path: Path) -> set[str]:
    with closing(sqlite3.connect(path)) as connection:
        return {row[0] for row in connection.execute("SELECT execution_id FROM executions")}


def count(path: Path, table: str) -> int:
    with closing(sqlite3.connect(path)) as connection:
        found: int = connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        return found


def set_status(path: Path, execution_id: str, status: str) -> None:
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.execute(
            "UPDATE executions SET status = ? WHERE execution_id = ?", (status, execution_id)
        )


@pytest.mark.parametrize("text", ["30d", "12h", "90m", "3600s", "2w", "0s", " 7d "])
def test_a_duration_is_a_whole_number_and_a_unit(text: str) -> None:
    """Each unit counts its seconds."""
    number, unit = text.strip()[:-1], text.strip()[-1]
    assert parse_duration(text) == int(number) * DURATION_UNITS[unit]


@pytest.mark.parametrize("text", ["", "30", "d", "1.5h", "-1d", "30 days", "1y", "1d2h", "٣d"])
def test_anything_else_is_refused_with_the_forms_it_takes(text: str) -> None:
    """The message shows what a duration looks like."""
    with pytest.raises(ValueError, match="like 30d, 12h, 90m, 3600s or 2w"):
        parse_duration(text)


@given(st.integers(min_value=0, max_value=10**9 - 1), st.sampled_from(sorted(DURATION_UNITS)))
def test_durations_round_trip_through_their_description(number: int, unit: str) -> None:
    """Describing a parsed duration gives text that parses to the same seconds."""
    seconds = parse_duration(f"{number}{unit}")
    assert seconds == number * DURATION_UNITS[unit]
    assert parse_duration(describe_duration(seconds)) == seconds


async def test_prune_deletes_old_finished_executions_and_never_unfinished_ones(
    tmp_path: Path,
) -> None:
    """Old succeeded, failed and cancelled executions go; recent, running and waiting ones stay."""
    path = tmp_path / "journal.db"
    async with open_journal(path) as journal:
        await add(journal, "ok")
        await add(journal, "failed", status=EventType.EXECUTION_FAILED)
        await add(journal, "cancelled", status=EventType.EXECUTION_CANCELLED)
        await add(journal, "recent", ended=NEW)
        await add(journal, "running", ended=None)
        await add(journal, "waiting", status=EventType.EXECUTION_WAITING)
        await add(journal, "pending", ended=None)
        for execution_id in ("failed", "running"):
            await journal.submit_request(execution_id, "cancel", {"reason": "r", "force": False})
    set_status(path, "pending", "pending")
    report = prune_journal_file(path, cutoff=CUTOFF, held=nobody)
    assert ids(path) == {"recent", "running", "waiting", "pending"}
    assert set(report.pruned) == {"ok", "failed", "cancelled"}
    assert (report.executions, report.events, report.requests) == (3, 6, 1)
    assert count(path, "requests") == 1
    assert report.bytes_after is not None


async def test_status_narrows_what_goes_and_unfinished_statuses_are_refused(
    tmp_path: Path,
) -> None:
    """Only the statuses asked for go; asking for an unfinished status is an error."""
    path = tmp_path / "journal.db"
    async with open_journal(path) as journal:
        await add(journal, "ok")
        await add(journal, "failed", status=EventType.EXECUTION_FAILED)
    report = prune_journal_file(path, cutoff=CUTOFF, statuses=["failed"], held=nobody)
    assert report.pruned == ("failed",)
    assert ids(path) == {"ok"}
    with pytest.raises(ValueError, match="not running"):
        prune_journal_file(path, cutoff=CUTOFF, statuses=["running", "failed"], held=nobody)


async def test_a_parent_goes_with_its_whole_tree_and_a_child_never_alone(tmp_path: Path) -> None:
    """Children and grandchildren go with their root; a tree with a live member stays whole."""
    path = tmp_path / "journal.db"
    async with open_journal(path) as journal:
        await add(journal, "p")
        await add(journal, "p.s", parent="p", name="child")
        await add(journal, "p.s.t", parent="p.s", name="child")
        await add(journal, "p.x", name="not-a-child")
        await add(journal, "live", ended=None)
        await add(journal, "live.s", parent="live", name="child")
        await add(journal, "q")
        await add(journal, "q.s", parent="q", ended=None, name="child")
    report = prune_journal_file(path, cutoff=CUTOFF, held=nobody)
    assert ids(path) == {"live", "live.s", "q", "q.s"}
    assert (report.executions, report.children) == (4, 2)
    assert [(item.execution_id, item.reason) for item in report.skipped] == [
        ("q", "its child q.s is not finished")
    ]


async def test_executions_a_live_process_holds_are_kept(tmp_path: Path) -> None:
    """A finished execution some process holds the lock of (it resumes it) is skipped."""
    path = tmp_path / "journal.db"
    async with open_journal(path) as journal:
        await add(journal, "held")
        await add(journal, "held.s", parent="held", name="child")
        await add(journal, "free")

    def held(execution_ids: Collection[str]) -> Collection[str]:
        return [execution_id for execution_id in execution_ids if execution_id == "held.s"]

    report = prune_journal_file(path, cutoff=CUTOFF, held=held)
    assert ids(path) == {"held", "held.s"}
    assert report.skipped[0].execution_id == "held"
    assert "a live process holds held.s" in report.skipped[0].reason


async def test_documents_go_once_no_execution_refers_to_them(tmp_path: Path) -> None:
    """A document shared with a kept execution stays; one nothing refers to any more goes."""
    path = tmp_path / "journal.db"
    async with open_journal(path) as journal:
        await add(journal, "a1", name="a")
        await add(journal, "a2", name="a", ended=NEW)
        await add(journal, "b1", name="b")
        await add(journal, "b2", name="b")
    assert count(path, "workflow_documents") == 2
    dry = prune_journal_file(path, cutoff=CUTOFF, held=nobody, dry_run=True)
    report = prune_journal_file(path, cutoff=CUTOFF, held=nobody)
    assert dry.documents == report.documents == 1
    assert count(path, "workflow_documents") == 1
    async with open_journal(path) as journal:
        assert (await journal.get_execution("a2")).workflow == document("a")


async def test_a_dry_run_counts_the_same_and_writes_nothing(tmp_path: Path) -> None:
    """The dry run reports what the prune then does, and leaves every row where it was."""
    path = tmp_path / "journal.db"
    async with open_journal(path) as journal:
        await add(journal, "p", padding=3)
        await add(journal, "p.s", parent="p", name="child")
        await add(journal, "recent", ended=NEW)
        await journal.submit_request("p", "cancel", {"reason": "r", "force": False})

    def dump() -> list[Any]:
        with closing(sqlite3.connect(path)) as connection:
            return list(connection.iterdump())

    before = dump()
    dry = prune_journal_file(path, cutoff=CUTOFF, held=nobody, dry_run=True)
    assert dump() == before
    assert (dry.bytes_after, dry.compacted, dry.compaction_note) == (None, False, None)
    real = prune_journal_file(path, cutoff=CUTOFF, held=nobody)
    counted = ("executions", "children", "events", "requests", "documents", "pruned")
    assert [getattr(dry, name) for name in counted] == [getattr(real, name) for name in counted]
    assert dry.to_json()["dry_run"] is True


async def test_the_file_shrinks_when_compacted(tmp_path: Path) -> None:
    """Many pruned events free pages; compaction gives them back to the file system."""
    path = tmp_path / "journal.db"
    async with open_journal(path) as journal:
        for number in range(20):
            await add(journal, f"run-{number}", padding=20)
        await add(journal, "recent", ended=NEW)
    report = prune_journal_file(path, cutoff=CUTOFF, held=nobody, batch_executions=3)
    assert report.compacted
    assert report.compaction_note is None
    assert report.executions == 20
    assert report.bytes_after is not None
    assert report.bytes_after < report.bytes_before / 2
    again = prune_journal_file(path, cutoff=CUTOFF, held=nobody)
    assert (again.executions, again.compacted) == (0, False)
    assert again.compaction_note == (
        "not compacted: nothing was deleted and the file has no free pages"
    )


async def test_compaction_waits_for_live_runs_and_never_fails_the_prune(tmp_path: Path) -> None:
    """While a live process runs an execution, or holds the write lock, the file is left as is."""
    path = tmp_path / "journal.db"
    async with open_journal(path) as journal:
        await add(journal, "old", padding=5)
        await add(journal, "old-2", padding=5)
        await add(journal, "running", ended=None)

    def running_is_held(execution_ids: Collection[str]) -> Collection[str]:
        return [execution_id for execution_id in execution_ids if execution_id == "running"]

    report = prune_journal_file(
        path, cutoff=CUTOFF, statuses=["succeeded"], held=running_is_held, batch_executions=1
    )
    assert report.executions == 2
    assert not report.compacted
    assert report.compaction_note is not None
    assert "another process runs 1 execution" in report.compaction_note

    async with open_journal(path) as journal:
        await add(journal, "old-3", padding=5)
    blocker = sqlite3.connect(path, isolation_level=None)

    def lock_the_file(execution_ids: Collection[str]) -> Collection[str]:
        if "running" in execution_ids and not blocker.in_transaction:
            blocker.execute("BEGIN IMMEDIATE")
        return ()

    try:
        report = prune_journal_file(path, cutoff=CUTOFF, held=lock_the_file)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert report.executions == 1
    assert not report.compacted
    assert report.compaction_note is not None
    assert "database is locked" in report.compaction_note


def test_a_missing_file_or_another_database_is_refused(tmp_path: Path) -> None:
    """Prune only works on a journal file."""
    with pytest.raises(JournalError, match="there is no journal"):
        prune_journal_file(tmp_path / "none.db", cutoff=CUTOFF, held=nobody)
    other = tmp_path / "other.db"
    with closing(sqlite3.connect(other)) as connection, connection:
        connection.execute("CREATE TABLE t (x)")
    with pytest.raises(JournalError, match="not an orchestr8 journal"):
        prune_journal_file(other, cutoff=CUTOFF, held=nobody)
    text = tmp_path / "text.db"
    text.write_text("not a database, but long enough to be read as one" * 40)
    with pytest.raises(JournalError, match="not a SQLite database"):
        prune_journal_file(text, cutoff=CUTOFF, held=nobody)


async def test_a_failing_lock_check_rolls_its_batch_back(tmp_path: Path) -> None:
    """When the locks cannot be read, the prune stops with the error and deletes nothing."""
    path = tmp_path / "journal.db"
    async with open_journal(path) as journal:
        await add(journal, "old")

    def unreadable(execution_ids: Collection[str]) -> Collection[str]:
        raise JournalError("cannot read the locks")

    with pytest.raises(JournalError, match="cannot read the locks"):
        prune_journal_file(path, cutoff=CUTOFF, held=unreadable)
    assert ids(path) == {"old"}


async def test_a_later_prune_compacts_the_pages_an_earlier_one_freed(tmp_path: Path) -> None:
    """Nothing to delete, but free pages left by a prune that could not compact: it compacts."""
    path = tmp_path / "journal.db"
    async with open_journal(path) as journal:
        for number in range(5):
            await add(journal, f"old-{number}", padding=10)
        await add(journal, "running", ended=None)

    def running_is_held(execution_ids: Collection[str]) -> Collection[str]:
        return [execution_id for execution_id in execution_ids if execution_id == "running"]

    first = prune_journal_file(path, cutoff=CUTOFF, held=running_is_held)
    assert (first.executions, first.compacted) == (5, False)
    later = prune_journal_file(path, cutoff=CUTOFF, held=nobody)
    assert (later.executions, later.compacted) == (0, True)
    assert later.bytes_after is not None
    assert later.bytes_after < later.bytes_before

"""`_postgres_retention`: prune on a real PostgreSQL, with the SQLite prune's rules and report."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

import psycopg
import pytest

from orchestr8._errors import JournalError
from orchestr8._journal._events import Event, EventType
from orchestr8._journal._journal import ExecutionRecord, Journal, open_journal
from orchestr8._journal._journal_copy import copy_journal
from orchestr8._journal._postgres_retention import VACUUMED_NOTE, prune_journal_database
from orchestr8._journal._retention import prune_journal_file

OLD = "2026-01-01T00:00:00.000Z"
NEW = "2026-12-01T00:00:00.000Z"
CUTOFF = "2026-06-01T00:00:00.000Z"


def nobody(ids: Collection[str]) -> Collection[str]:
    return ()


async def add(
    journal: Journal,
    execution_id: str,
    *,
    ended: str | None = OLD,
    status: str = EventType.EXECUTION_SUCCEEDED,
    parent: str | None = None,
    name: str = "wf",
    padding: int = 0,
) -> None:
    """Record an execution of the workflow `name` that started at OLD and (unless None) ended."""
    document = {"schema_version": "1.0", "name": name, "steps": [{"id": "a", "agent": "echo"}]}
    await journal.create_execution(
        ExecutionRecord(
            execution_id,
            name,
            document,
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


async def _journal(tmp_path: Path, url: str) -> Path:
    """A journal of old trees, one unfinished, one with an unfinished child; copied to `url`."""
    path = tmp_path / "journal.db"
    async with open_journal(path) as journal:
        await add(journal, "done", padding=3)
        await add(journal, "done.a", parent="done")
        await add(journal, "done.a.b", parent="done.a", name="deep")
        await add(journal, "broke", status=EventType.EXECUTION_FAILED)
        await add(journal, "going", ended=None)
        await add(journal, "fresh", ended=NEW)
        await add(journal, "mixed")
        await add(journal, "mixed.c", parent="mixed", ended=None)
        await add(journal, "leased", name="other")
        await add(journal, "expired", name="other")
    copy_journal(path, url, held=nobody)
    return path


def _rows(url: str, query: str, *parameters: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, options="-c search_path=orchestr8", autocommit=True) as connection:
        cursor = connection.execute(query, parameters)
        return [tuple(row) for row in cursor] if cursor.description else []


def _lease(url: str, execution_id: str, seconds: int) -> None:
    """A lease held by another runtime, live for `seconds` (negative: expired)."""
    _rows(
        url,
        "INSERT INTO leases (execution_id, epoch, holder, expires_at)"
        " VALUES (%s, 1, 'worker/host/1/abcd', now() + make_interval(secs => %s))",
        execution_id,
        seconds,
    )


def _ids(url: str) -> set[str]:
    return {row[0] for row in _rows(url, "SELECT execution_id FROM executions")}


async def test_prune_keeps_the_rules_of_the_sqlite_prune_and_live_leases(
    tmp_path: Path, postgres_url: str
) -> None:
    """Same deletions and report as SQLite; a live lease keeps its tree, an expired one not."""
    path = await _journal(tmp_path, postgres_url)
    _lease(postgres_url, "leased", 60)
    _lease(postgres_url, "expired", -60)
    report = prune_journal_database(postgres_url, cutoff=CUTOFF)
    sqlite_report = prune_journal_file(
        path, cutoff=CUTOFF, held=lambda ids: {one for one in ids if one == "leased"}
    )
    assert report.pruned == sqlite_report.pruned == ("broke", "done", "expired")
    assert (report.executions, report.children, report.events, report.documents) == (
        sqlite_report.executions,
        sqlite_report.children,
        sqlite_report.events,
        sqlite_report.documents,
    )
    assert report.skipped == sqlite_report.skipped
    assert [one.reason for one in report.skipped] == [
        "its child mixed.c is not finished",
        "a live process holds leased (it runs it)",
    ]
    assert _ids(postgres_url) == {"going", "fresh", "mixed", "mixed.c", "leased"}
    assert _rows(postgres_url, "SELECT execution_id FROM leases") == [("leased",)]
    assert report.compaction_note == VACUUMED_NOTE
    assert report.bytes_after is not None
    assert report.bytes_before > 0


async def test_a_dry_run_counts_what_a_prune_deletes_and_writes_nothing(
    tmp_path: Path, postgres_url: str
) -> None:
    """The counts match the real prune's, documents included; nothing is deleted."""
    await _journal(tmp_path, postgres_url)
    before = _ids(postgres_url)
    dry = prune_journal_database(postgres_url, cutoff=CUTOFF, dry_run=True, batch_executions=2)
    assert _ids(postgres_url) == before
    assert dry.bytes_after is None
    assert dry.compaction_note is None
    real = prune_journal_database(postgres_url, cutoff=CUTOFF, batch_executions=2)
    assert (dry.pruned, dry.executions, dry.events, dry.documents) == (
        real.pruned,
        real.executions,
        real.events,
        real.documents,
    )
    assert real.documents == 2  # "deep" and "other": only pruned executions referred to them
    nothing = prune_journal_database(postgres_url, cutoff=CUTOFF, statuses=["failed"])
    assert nothing.pruned == ()
    assert nothing.compaction_note == "not vacuumed: nothing was deleted"


async def test_only_finished_statuses_and_a_journal_are_accepted(
    postgres_server: Any, postgres_url: str
) -> None:
    """A status that may go on is a ValueError; a database without a journal names the fix."""
    with pytest.raises(ValueError, match="only finished executions are pruned"):
        prune_journal_database(postgres_url, cutoff=CUTOFF, statuses=["running"])
    empty = postgres_server.create_empty_database()
    with pytest.raises(JournalError, match="orchestr8 journal migrate"):
        prune_journal_database(empty, cutoff=CUTOFF)


async def test_a_dry_run_with_nothing_to_prune_counts_only_orphans_and_a_failed_vacuum_is_a_note(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing cancelled: no documents go; a VACUUM that fails leaves the prune done."""
    await _journal(tmp_path, postgres_url)
    dry = prune_journal_database(postgres_url, cutoff=CUTOFF, statuses=["cancelled"], dry_run=True)
    assert (dry.pruned, dry.documents) == ((), 0)
    monkeypatch.setattr(
        "orchestr8._journal._postgres_retention.JOURNAL_TABLES", ("events", "no_such_table")
    )
    done = prune_journal_database(postgres_url, cutoff=CUTOFF, statuses=["failed"])
    assert done.pruned == ("broke",)
    assert done.compaction_note is not None
    assert done.compaction_note.startswith("not vacuumed: ")
    assert "no_such_table" in done.compaction_note

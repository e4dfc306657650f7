"""`_journal_copy`: a journal copied to another store, a page at a time, verified, or refused."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestr8._errors import JournalError
from orchestr8._journal._events import Event, EventType
from orchestr8._journal._journal import ExecutionRecord, open_journal
from orchestr8._journal._journal_copy import copy_journal

STAMP = "2026-01-01T00:00:00.000Z"
DOCUMENT = {"schema_version": "1.0", "name": "wf", "steps": [{"id": "a", "agent": "echo"}]}


async def _record(
    path: Path, execution_id: str, events: int, *, key: str | None = None, step: str = "a"
) -> None:
    """An execution with `events` events (the later ones of the step `step`), unfinished."""
    async with open_journal(path) as journal:
        await journal.create_execution(
            ExecutionRecord(execution_id, "wf", DOCUMENT, idempotency_key=key)
        )
        await journal.append(Event(execution_id, 1, STAMP, 0.0, EventType.EXECUTION_STARTED))
        for seq in range(2, events + 1):
            await journal.append(
                Event(
                    execution_id, seq, STAMP, seq / 3, EventType.STEP_PROGRESS, step, 1, {"n": seq}
                )
            )


def _events(path: Path) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(path)) as connection:
        return connection.execute("SELECT * FROM events ORDER BY execution_id, seq").fetchall()


def _nobody(ids: Any) -> set[str]:
    return set()


@settings(max_examples=15, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    sizes=st.lists(st.integers(min_value=1, max_value=12), min_size=1, max_size=6),
    page_executions=st.integers(min_value=1, max_value=4),
    page_events=st.integers(min_value=1, max_value=5),
)
async def test_any_paging_copies_every_event_unchanged(
    tmp_path_factory: pytest.TempPathFactory,
    sizes: list[int],
    page_executions: int,
    page_events: int,
) -> None:
    """Whatever the page sizes, SQLite → SQLite holds the same event rows, and progress adds up."""
    root = tmp_path_factory.mktemp("copy")
    source = root / "source.db"
    for index, size in enumerate(sizes):
        await _record(source, f"run{index}", size)
    told: list[tuple[int, int, int]] = []
    report = copy_journal(
        source,
        root / "copy.db",
        held=_nobody,
        progress=lambda *numbers: told.append(numbers),
        page_executions=page_executions,
        page_events=page_events,
    )
    assert _events(root / "copy.db") == _events(source)
    assert (report.executions, report.events, report.verified) == (
        len(sizes),
        sum(sizes),
        len(sizes),
    )
    assert told[-1] == (len(sizes), len(sizes), sum(sizes))


async def test_a_source_with_a_running_execution_is_refused(tmp_path: Path) -> None:
    """The live process's executions are named; nothing is written."""
    await _record(tmp_path / "source.db", "busy", 2)
    with pytest.raises(JournalError, match=r"a live process runs 1 execution\(s\) of .*: busy"):
        copy_journal(tmp_path / "source.db", tmp_path / "copy.db", held=lambda ids: set(ids))
    with closing(sqlite3.connect(tmp_path / "copy.db")) as connection:
        assert connection.execute("SELECT count(*) FROM executions").fetchone() == (0,)


async def test_a_postgresql_source_refuses_executions_a_live_lease_holds(
    tmp_path: Path, postgres_url: str
) -> None:
    """PostgreSQL → SQLite: a live lease is a running execution; an expired one is not."""
    await _record(tmp_path / "source.db", "leased", 2)
    copy_journal(tmp_path / "source.db", postgres_url, held=_nobody)
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO orchestr8.leases (execution_id, holder, expires_at)"
            " VALUES ('leased', 'w/h/1/x', now() + interval '1 minute')"
        )
    with pytest.raises(JournalError, match="a live process runs 1 execution"):
        copy_journal(postgres_url, tmp_path / "back.db")
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute("UPDATE orchestr8.leases SET expires_at = now() - interval '1 second'")
    assert copy_journal(postgres_url, tmp_path / "back.db").executions == 1
    assert _events(tmp_path / "back.db") == _events(tmp_path / "source.db")


async def test_text_postgresql_cannot_hold_is_refused_naming_the_execution(
    tmp_path: Path, postgres_url: str
) -> None:
    """A NUL character in a step id (data is JSON: escaped there): refused; earlier pages stay."""
    await _record(tmp_path / "source.db", "a-fine", 2)
    await _record(tmp_path / "source.db", "b-nul", 2, step="a\x00b")
    with pytest.raises(JournalError, match=r"execution b-nul cannot be copied .* NUL character"):
        copy_journal(tmp_path / "source.db", postgres_url, held=_nobody, page_executions=1)
    with psycopg.connect(postgres_url) as connection:
        rows = connection.execute("SELECT execution_id FROM orchestr8.executions").fetchall()
    assert rows == [("a-fine",)]


async def test_an_idempotency_key_held_under_another_id_is_refused(tmp_path: Path) -> None:
    """Two journals that both started `nightly`: the copy names both executions."""
    await _record(tmp_path / "source.db", "mine", 1, key="nightly")
    await _record(tmp_path / "copy.db", "theirs", 1, key="nightly")
    with pytest.raises(JournalError, match="key 'nightly' is held by execution theirs"):
        copy_journal(tmp_path / "source.db", tmp_path / "copy.db", held=_nobody)


def test_a_missing_source_or_an_unusable_destination_is_refused(tmp_path: Path) -> None:
    """Each names the file and what is wrong with it."""
    with pytest.raises(JournalError, match="there is no journal at"):
        copy_journal(tmp_path / "none.db", tmp_path / "copy.db")
    (tmp_path / "source.db").write_bytes(b"")
    (tmp_path / "text.db").write_text("not a database, only text " * 100)
    with pytest.raises(JournalError, match="is not a SQLite database"):
        copy_journal(tmp_path / "source.db", tmp_path / "text.db")


async def test_unusable_destinations_and_sources_are_refused(
    tmp_path: Path, postgres_server: Any
) -> None:
    """Another SQLite database, a path under a file, a database without a journal: each named."""
    await _record(tmp_path / "source.db", "one", 1)
    with closing(sqlite3.connect(tmp_path / "other.db")) as connection:
        connection.execute("CREATE TABLE mine (x)")
    with pytest.raises(JournalError, match="is a SQLite database but not an orchestr8 journal"):
        copy_journal(tmp_path / "source.db", tmp_path / "other.db", held=_nobody)
    (tmp_path / "file").touch()
    with pytest.raises(JournalError, match=r"cannot create .*file/j.db"):
        copy_journal(tmp_path / "source.db", tmp_path / "file" / "j.db", held=_nobody)
    with pytest.raises(JournalError, match="holds no orchestr8 journal"):
        copy_journal(postgres_server.create_empty_database(), tmp_path / "copy.db")


async def test_a_write_the_destination_refuses_names_the_destination(tmp_path: Path) -> None:
    """A failing insert (here a trigger) rolls the page back and says where it failed."""
    await _record(tmp_path / "source.db", "one", 2)
    await _record(tmp_path / "copy.db", "unrelated", 1)
    with closing(sqlite3.connect(tmp_path / "copy.db")) as connection:
        connection.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON events BEGIN"
            " SELECT RAISE(ABORT, 'the disk says no'); END"
        )
    with pytest.raises(
        JournalError, match=r"copying failed on the destination \(.*copy.db\): the disk says no"
    ):
        copy_journal(tmp_path / "source.db", tmp_path / "copy.db", held=_nobody)
    with closing(sqlite3.connect(tmp_path / "copy.db")) as connection:
        assert connection.execute("SELECT execution_id FROM executions").fetchall() == [
            ("unrelated",)
        ]


async def test_a_skipped_execution_that_differs_fails_the_verification(tmp_path: Path) -> None:
    """--skip-existing leaves it, but a shorter history than the source's is reported."""
    await _record(tmp_path / "source.db", "run", 3)
    await _record(tmp_path / "copy.db", "run", 1)
    with pytest.raises(JournalError, match="3 event\\(s\\) to seq 3 in the source, 1 to seq 1"):
        copy_journal(tmp_path / "source.db", tmp_path / "copy.db", held=_nobody, skip_existing=True)


async def test_postgresql_to_postgresql_keeps_the_rows(
    tmp_path: Path, postgres_server: Any, postgres_url: str
) -> None:
    """One database into another (an empty one gets the schema): the same event rows."""
    await _record(tmp_path / "source.db", "one", 4)
    copy_journal(tmp_path / "source.db", postgres_url, held=_nobody)
    other = postgres_server.create_empty_database()
    report = copy_journal(postgres_url, other)
    assert (report.executions, report.events, report.documents) == (1, 4, 1)
    query = "SELECT * FROM orchestr8.events ORDER BY seq"
    with psycopg.connect(postgres_url) as first, psycopg.connect(other) as second:
        assert first.execute(query).fetchall() == second.execute(query).fetchall()

"""`_page_filter`: the execution list narrowed by workflow name and id prefix, in both stores."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, closing
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestr8._journal._events import Event
from orchestr8._journal._journal import ExecutionRecord, Journal, open_journal
from orchestr8._journal._page_filter import PageFilter
from orchestr8._journal._sqlite_schema import _MIGRATIONS

Opener = Callable[..., AbstractAsyncContextManager[Journal]]
HEX = "0123456789abcdef"


@pytest.fixture(params=["sqlite", "memory", "postgresql"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    """Open journals of one kind: a SQLite file in tmp_path, memory, or a PostgreSQL database."""
    path: Path | str | None = tmp_path / "journal.db" if request.param == "sqlite" else None
    if request.param == "postgresql":
        path = request.getfixturevalue("postgres_url")

    def open_one(**options: Any) -> AbstractAsyncContextManager[Journal]:
        return open_journal(path, **options)

    return open_one


async def create(journal: Journal, execution_id: str, workflow: str, second: int) -> None:
    """Record an execution of `workflow` created at `second`."""
    document = {"schema_version": "1.0", "name": workflow, "steps": []}
    await journal.create_execution(
        ExecutionRecord(
            execution_id=execution_id,
            workflow_name=workflow,
            workflow=document,
            created_at=f"2025-01-01T00:00:{second:02d}.000Z",
        )
    )


async def ids(journal: Journal, **filters: Any) -> list[str]:
    """Every execution id the journal lists with these filters, page after page."""
    seen: list[str] = []
    cursor = None
    while True:
        page = await journal.list_executions(limit=2, before=cursor, **filters)
        seen += [item.execution_id for item in page.items]
        cursor = page.next_cursor
        if cursor is None:
            return seen


async def test_workflow_and_id_prefix_filters_combine_with_status_and_paging(
    opener: Opener,
) -> None:
    """Each filter keeps only what it names, newest first, across pages, with the status too."""
    async with opener() as journal:
        await create(journal, "aa01", "build", 1)
        await create(journal, "ab02", "deploy", 2)
        await create(journal, "aa03", "build", 3)
        await create(journal, "b004", "build", 4)
        await create(journal, "aa05", "buildx", 5)
        await journal.append(Event("aa03", 1, "2025-01-01T00:00:03.000Z", 0.0, "execution.started"))
        await journal.flush()
        assert await ids(journal, workflow="build") == ["b004", "aa03", "aa01"]
        assert await ids(journal, id_prefix="aa") == ["aa05", "aa03", "aa01"]
        assert await ids(journal, id_prefix="a") == ["aa05", "aa03", "ab02", "aa01"]
        assert await ids(journal, workflow="build", id_prefix="aa") == ["aa03", "aa01"]
        assert await ids(journal, workflow="build", status="running") == ["aa03"]
        assert await ids(journal, workflow="build", id_prefix="c") == []
        assert await ids(journal, workflow="nothing") == []
        assert await ids(journal, workflow="bu\udc80ild") == []


async def test_a_malformed_id_prefix_is_refused(opener: Opener) -> None:
    """Upper case, non-hex, empty or over-long prefixes are a ValueError naming id_prefix."""
    async with opener() as journal:
        for bad in ("AB", "xyz", "", "a" * 33, "a%"):
            with pytest.raises(ValueError, match="id_prefix must be 1 to 32 lowercase hex"):
                await journal.list_executions(id_prefix=bad)


@given(
    prefix=st.text(HEX, min_size=1, max_size=4),
    execution_id=st.text(HEX + ".[]#-xyz\u00e9\U0001f600", max_size=8),
)
def test_the_id_range_holds_exactly_the_ids_with_the_prefix(prefix: str, execution_id: str) -> None:
    """SQLite's range [low, high) and `matches` agree with `startswith` for any id."""
    only = PageFilter(id_prefix=prefix)
    id_range = only.id_range()
    assert id_range is not None
    low, high = id_range
    expected = execution_id.startswith(prefix)
    assert (low <= execution_id < high) == expected
    assert only.matches(execution_id, "any") == expected


def test_no_filter_keeps_everything() -> None:
    """The default filter has no id range and matches every execution."""
    assert PageFilter().id_range() is None
    assert PageFilter().matches("anything", "any")
    assert not PageFilter().nothing_matches()


def test_sqlite_reads_a_workflow_through_an_index_and_a_prefix_as_a_key_range() -> None:
    """The page queries search an index instead of scanning the executions table."""
    with closing(sqlite3.connect(":memory:")) as connection:
        for statements in _MIGRATIONS:
            for statement in statements:
                connection.execute(statement)
        order = "ORDER BY created_at DESC, execution_id DESC LIMIT 51"
        by_workflow = connection.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM executions WHERE workflow_name = ?"
            f" AND (created_at, execution_id) < (?, ?) {order}",
            ["w", "t", "i"],
        ).fetchall()
        by_prefix = connection.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM executions"
            f" WHERE execution_id >= ? AND execution_id < ? {order}",
            ["ab", "ac"],
        ).fetchall()
    assert "USING INDEX executions_by_workflow" in str(by_workflow)
    assert "SEARCH executions USING INDEX sqlite_autoindex_executions_1" in str(by_prefix)

"""`_sqlite_schema`: journals of an older schema are migrated in place, keeping what they hold."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from orchestr8._journal._journal import ExecutionRecord, open_journal
from orchestr8._journal._sqlite_schema import _MIGRATIONS, APPLICATION_ID, SCHEMA_VERSION


def test_the_schema_version_counts_the_migrations() -> None:
    """Version 2 added the parent links of child executions, version 3 the steering tables, 4
    the index the dashboard lists one workflow's executions by."""
    assert SCHEMA_VERSION == len(_MIGRATIONS) == 4


async def test_a_version_1_journal_gains_the_parent_columns_and_keeps_its_executions(
    tmp_path: Path,
) -> None:
    """Opening a version 1 journal migrates it: old executions read back with no parent."""
    path = tmp_path / "old.db"
    with closing(sqlite3.connect(path)) as connection, connection:
        for statement in _MIGRATIONS[0]:
            connection.execute(statement)
        connection.execute(
            "INSERT INTO executions (execution_id, workflow_name, workflow, inputs, status,"
            " created_at) VALUES ('old', 'w', '{}', '{}', 'succeeded', '2026-01-01T00:00:00.000Z')"
        )
        connection.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        connection.execute("PRAGMA user_version = 1")
    async with open_journal(path) as journal:
        old = await journal.get_execution("old")
        child = ExecutionRecord("old.s", "c", {}, parent_id="old", parent_step="s")
        await journal.create_execution(child)
        stored = await journal.get_execution("old.s")
    assert (old.parent_id, old.parent_step) == (None, None)
    assert old.workflow_name == "w"
    assert (stored.parent_id, stored.parent_step) == ("old", "s")
    with closing(sqlite3.connect(path)) as connection:
        assert connection.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)


async def test_a_version_2_journal_keeps_its_full_documents_and_stores_new_ones_once(
    tmp_path: Path,
) -> None:
    """Rows written before content addressing read back whole; new ones refer to one copy."""
    from orchestr8._journal._retention import prune_journal_file

    path = tmp_path / "old.db"
    document = '{"schema_version":"1.0","name":"w","steps":[{"id":"a","agent":"echo"}]}'
    with closing(sqlite3.connect(path)) as connection, connection:
        for statements in _MIGRATIONS[:2]:
            for statement in statements:
                connection.execute(statement)
        connection.execute(
            "INSERT INTO executions (execution_id, workflow_name, workflow, inputs, status,"
            " created_at, finished_at) VALUES ('old', 'w', ?, '{}', 'succeeded',"
            " '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:01.000Z')",
            (document,),
        )
        connection.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        connection.execute("PRAGMA user_version = 2")
    async with open_journal(path) as journal:
        old = await journal.get_execution("old")
        await journal.create_execution(ExecutionRecord("new", "w", old.workflow))
        assert (await journal.get_execution("new")).workflow == old.workflow
        assert [item.workflow for item in (await journal.list_executions()).items] == [
            old.workflow,
            old.workflow,
        ]
        assert await journal.step_hashes("old") is None
    assert old.workflow["steps"] == [{"id": "a", "agent": "echo"}]
    with closing(sqlite3.connect(path)) as connection:
        assert connection.execute("SELECT count(*) FROM workflow_documents").fetchone() == (1,)
    report = prune_journal_file(path, cutoff="2026-06-01T00:00:00.000Z", held=lambda ids: ())
    assert report.pruned == ("old",)
    assert report.documents == 0


async def test_a_version_3_journal_gains_the_workflow_index(tmp_path: Path) -> None:
    """Opening a version 3 journal adds the index on (workflow_name, created_at, execution_id)."""
    path = tmp_path / "old.db"
    with closing(sqlite3.connect(path)) as connection, connection:
        for statements in _MIGRATIONS[:3]:
            for statement in statements:
                connection.execute(statement)
        connection.execute(
            "INSERT INTO executions (execution_id, workflow_name, workflow, inputs, status,"
            " created_at) VALUES ('0ld', 'w', '{}', '{}', 'succeeded', '2026-01-01T00:00:00.000Z')"
        )
        connection.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        connection.execute("PRAGMA user_version = 3")
    async with open_journal(path) as journal:
        page = await journal.list_executions(workflow="w")
    assert [item.execution_id for item in page.items] == ["0ld"]
    with closing(sqlite3.connect(path)) as connection:
        indexes = connection.execute(
            "SELECT name FROM sqlite_master"
            " WHERE type = 'index' AND name = 'executions_by_workflow'"
        ).fetchall()
    assert indexes == [("executions_by_workflow",)]

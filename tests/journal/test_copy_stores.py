"""`_copy_stores`: either store's journal behind one connection, and which locations are one."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestr8._errors import JournalError
from orchestr8._journal._copy_stores import JournalDatabase, same_journal


def test_the_same_journal_is_recognised_under_two_names(tmp_path: Path) -> None:
    """A file by two paths, a database by two URLs; a file and a database never."""
    (tmp_path / "j.db").touch()
    assert same_journal(tmp_path / "j.db", tmp_path / "sub" / ".." / "j.db")
    assert not same_journal(tmp_path / "j.db", tmp_path / "other.db")
    assert same_journal(
        "postgresql://app:one@127.0.0.1:5432/jobs", "postgres://app:two@127.0.0.1/jobs"
    )
    assert not same_journal("postgresql://app@127.0.0.1/jobs", "postgresql://app@127.0.0.1/other")
    assert not same_journal("postgresql://app@127.0.0.1/jobs", tmp_path / "j.db")


def test_a_database_opens_with_its_own_dialect(tmp_path: Path, postgres_url: str) -> None:
    """The same query, written once with `?`, runs on both stores; a snapshot writes nothing."""
    for location in (tmp_path / "j.db", postgres_url):
        database = JournalDatabase(location, create=True)
        try:
            with database.transaction(read_only=True):
                assert database.rows(
                    f"SELECT count(*) FROM executions WHERE {database.among('execution_id')}"
                    " AND status = ?",
                    (database.ids(["a", "b"]), "running"),
                ) == [(0,)]
        finally:
            database.close()
    with pytest.raises(JournalError, match="there is no journal at"):
        JournalDatabase(tmp_path / "none.db", create=False)

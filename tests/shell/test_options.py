"""`_options`: where the journal is, a SQLite file or a PostgreSQL URL, and how it is shown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestr8._errors import JournalError
from orchestr8._shell._options import (
    CommandError,
    describe_journal,
    journal_exists,
    journal_location,
)


def test_a_url_is_a_postgresql_location_and_anything_else_a_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--journal` first, then ORCHESTR8_JOURNAL; a URL stays text, a path becomes a Path."""
    monkeypatch.delenv("ORCHESTR8_JOURNAL", raising=False)
    url = "postgresql://app@127.0.0.1:5432/jobs"
    assert journal_location(url) == url
    assert journal_location(str(tmp_path / "j.db")) == tmp_path / "j.db"
    monkeypatch.setenv("ORCHESTR8_JOURNAL", "postgres://app@127.0.0.1/jobs")
    assert journal_location(None) == "postgres://app@127.0.0.1/jobs"
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ORCHESTR8_JOURNAL")
    assert journal_location(None) == tmp_path / ".orchestr8" / "journal.db"


def test_bad_values_are_refused_naming_the_problem(tmp_path: Path) -> None:
    """An empty option, a missing file, a malformed URL: each a clear error."""
    with pytest.raises(CommandError, match="--journal: the path is empty"):
        journal_location("  ")
    with pytest.raises(CommandError, match="there is no journal at"):
        journal_location(str(tmp_path / "none.db"), must_exist=True)
    with pytest.raises(JournalError, match=r"is malformed: Port out of range"):
        journal_location("postgresql://app@127.0.0.1:99999/jobs")


def test_a_database_must_hold_a_journal_when_one_must_exist(postgres_server: Any) -> None:
    """An empty database names the command that creates the journal, without the password."""
    empty = postgres_server.create_empty_database().replace("postgres@", "postgres:pw@", 1)
    assert not journal_exists(empty)
    with pytest.raises(CommandError) as refused:
        journal_location(empty, must_exist=True)
    assert "holds no orchestr8 journal; create one with: orchestr8 journal migrate" in str(
        refused.value
    )
    assert ":pw@" not in str(refused.value)
    made = postgres_server.create_database()
    assert journal_location(made, must_exist=True) == made


def test_a_location_is_shown_without_its_password() -> None:
    """The path as it is; the URL with `***` for the password."""
    assert describe_journal(Path("/tmp/j.db")) == "/tmp/j.db"
    assert (
        describe_journal("postgresql://app:secret@db.internal:5433/jobs")
        == "postgresql://app:***@db.internal:5433/jobs"
    )


def test_a_hint_repeats_the_journal_with_a_password_placeholder() -> None:
    """A hint's `--journal` keeps the URL but not its password; without one it adds nothing."""
    from orchestr8._shell._options import journal_hint

    url = "postgresql://ada:s3cret@db.internal:5432/jobs"
    assert journal_hint(url) == " --journal postgresql://ada:PASSWORD@db.internal:5432/jobs"
    assert journal_hint("postgresql://ada@db/jobs") == " --journal postgresql://ada@db/jobs"
    assert journal_hint("my journal.db") == " --journal 'my journal.db'"
    assert journal_hint(None) == ""

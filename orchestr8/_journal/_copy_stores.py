"""One connection to either store's journal, with its SQL dialect: for tools that copy journals.

`JournalDatabase` opens a SQLite file or a PostgreSQL database as a plain (blocking) connection
and hides how the two differ: parameter marks (`?` or `%s`), a list parameter (`json_each` or
`ANY`), how a snapshot or a write transaction begins. `same_journal` says whether two locations
name one journal. Only `_journal_copy` uses them; the journals' own stores stay as they are.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .._errors import JournalError
from ._postgres_schema import is_postgres_url, redact_url
from ._sqlite_schema import connect as connect_sqlite
from ._sqlite_schema import explain as explain_sqlite
from ._sqlite_schema import migrate as migrate_sqlite

__all__ = ["JournalDatabase", "same_journal"]


class JournalDatabase:
    """One connection to a SQLite file or a PostgreSQL database, with each one's SQL dialect.

    Opening refuses (`JournalError`) a missing file or a database without a journal (unless
    `create`), a file that is not a journal, an unreachable database and an older schema.
    """

    def __init__(self, location: Path | str, *, create: bool) -> None:
        self.location = location
        self.postgres = is_postgres_url(location)
        self.name = redact_url(str(location)) if self.postgres else str(location)
        self._sqlite_opened: list[sqlite3.Connection] = []
        self.connection: Any
        if self.postgres:
            from ._postgres_schema import check_version, connect

            self.connection = connect(str(location), purpose="orchestr8 copy")
            try:
                check_version(self.connection, str(location), create=create)
            except BaseException:
                self.connection.close()
                raise
            return
        path = Path(location)
        if not create and not path.is_file():
            raise JournalError(f"there is no journal at {path}")
        try:
            if create:
                path.parent.mkdir(parents=True, exist_ok=True)
            self.connection = connect_sqlite(path, self._sqlite_opened)
            self.connection.execute("PRAGMA journal_mode = WAL").fetchone()
            migrate_sqlite(self.connection, str(path))
        except OSError as error:
            self.close()
            raise JournalError(f"cannot create {path}: {error.strerror or error}") from None
        except sqlite3.Error as error:
            self.close()
            raise JournalError(explain_sqlite(path, error)) from None
        except BaseException:
            self.close()
            raise

    @property
    def errors(self) -> tuple[type[Exception], ...]:
        """The driver's errors."""
        if self.postgres:
            from ._postgres_schema import import_psycopg

            return (import_psycopg().Error,)
        return (sqlite3.Error,)

    def sql(self, statement: str) -> str:
        """The statement in this driver's parameter style (written with `?`)."""
        return statement.replace("?", "%s") if self.postgres else statement

    def among(self, column: str) -> str:
        """A condition: `column` is one of the ids of a list parameter (`ids`)."""
        if self.postgres:
            return f"{column} = ANY(%s)"
        return f"{column} IN (SELECT value FROM json_each(?))"

    def ids(self, values: Sequence[str]) -> Any:
        """The list parameter `among` takes."""
        if self.postgres:
            return list(values)
        import json

        return json.dumps(list(values))

    def rows(self, statement: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a query and return all its rows, as tuples."""
        return [tuple(row) for row in self.connection.execute(self.sql(statement), parameters)]

    def run_many(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run a statement once per row."""
        if not rows:
            return
        if self.postgres:
            with self.connection.cursor() as cursor:
                cursor.executemany(self.sql(statement), rows)
        else:
            self.connection.executemany(statement, rows)

    @contextmanager
    def transaction(self, *, read_only: bool = False) -> Iterator[None]:
        """One transaction: a snapshot to read from, or a write committed at the end."""
        if self.postgres:
            begin = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY" if read_only else "BEGIN"
        else:
            begin = "BEGIN" if read_only else "BEGIN IMMEDIATE"
        self.connection.execute(begin)
        try:
            if read_only and not self.postgres:
                # SQLite takes its snapshot at the first read, not at BEGIN.
                self.connection.execute("SELECT count(*) FROM executions").fetchone()
            yield
        except BaseException:
            self.connection.execute("ROLLBACK")
            raise
        self.connection.execute("ROLLBACK" if read_only else "COMMIT")

    def close(self) -> None:
        """Close the connection."""
        if self.postgres:
            self.connection.close()
        for connection in self._sqlite_opened:
            connection.close()


def same_journal(first: Path | str, second: Path | str) -> bool:
    """Whether two locations name one journal: the same file, or the same database."""
    if is_postgres_url(first) != is_postgres_url(second):
        return False
    if is_postgres_url(first):
        from ._postgres_schema import import_psycopg

        conninfo = import_psycopg().conninfo.conninfo_to_dict

        def identity(url: str) -> tuple[str, str, str, str]:
            parts = conninfo(url)
            return (
                str(parts.get("host") or "localhost"),
                str(parts.get("port") or "5432"),
                str(parts.get("dbname") or parts.get("user") or ""),
                str(parts.get("user") or ""),
            )

        return identity(str(first)) == identity(str(second))
    one, other = Path(first).expanduser(), Path(second).expanduser()
    if one.exists() and other.exists():
        return one.samefile(other)
    return one.resolve() == other.resolve()

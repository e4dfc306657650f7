"""The SQLite journal's file format: its schema and migrations, identity, and how it is opened.

A journal file carries `PRAGMA application_id` = `APPLICATION_ID` and `PRAGMA user_version` =
the schema version; `migrate` brings an older journal up to `SCHEMA_VERSION` in one transaction
and refuses other databases and newer journals. Every connection is opened by `connect`, with the
busy timeout the journal's stall report is set against. The store's queries are in `_sqlite`.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from .._errors import JournalError

_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE executions (
            execution_id TEXT PRIMARY KEY,
            workflow_name TEXT NOT NULL,
            workflow TEXT NOT NULL,
            inputs TEXT NOT NULL,
            status TEXT NOT NULL,
            created_at TEXT NOT NULL,
            correlation_id TEXT,
            idempotency_key TEXT,
            started_at TEXT,
            finished_at TEXT,
            output TEXT,
            error TEXT
        )""",
        """CREATE TABLE events (
            execution_id TEXT NOT NULL REFERENCES executions (execution_id),
            seq INTEGER NOT NULL,
            ts TEXT NOT NULL,
            elapsed REAL NOT NULL,
            type TEXT NOT NULL,
            step_id TEXT,
            attempt INTEGER,
            data TEXT NOT NULL,
            PRIMARY KEY (execution_id, seq)
        ) WITHOUT ROWID""",
        "CREATE INDEX executions_by_time ON executions (created_at, execution_id)",
        "CREATE INDEX executions_by_status ON executions (status, created_at, execution_id)",
        "CREATE UNIQUE INDEX executions_by_idempotency_key ON executions (idempotency_key)"
        " WHERE idempotency_key IS NOT NULL",
    ),
    (
        # Sub-workflows (issue 14): a child execution names its parent execution and step.
        "ALTER TABLE executions ADD COLUMN parent_id TEXT",
        "ALTER TABLE executions ADD COLUMN parent_step TEXT",
    ),
    (
        # Steering (issue 15): control requests other processes leave for an execution's owner
        # (cancels, gate answers), workflow documents stored once by content, and fork lineage.
        """CREATE TABLE requests (
            request_id INTEGER PRIMARY KEY AUTOINCREMENT,
            execution_id TEXT NOT NULL REFERENCES executions (execution_id),
            kind TEXT NOT NULL,
            target TEXT,
            body TEXT NOT NULL,
            created_at TEXT NOT NULL,
            outcome TEXT,
            detail TEXT,
            settled_at TEXT
        )""",
        # A refused answer (it came too late, or no longer fits) leaves the gate free to answer.
        "CREATE UNIQUE INDEX one_answer_per_gate ON requests (execution_id, target)"
        " WHERE kind = 'answer' AND (outcome IS NULL OR outcome = 'applied')",
        "CREATE INDEX pending_requests ON requests (execution_id, request_id)"
        " WHERE outcome IS NULL",
        """CREATE TABLE workflow_documents (
            digest TEXT PRIMARY KEY,
            document TEXT NOT NULL,
            step_hashes TEXT NOT NULL
        )""",
        "ALTER TABLE executions ADD COLUMN workflow_digest TEXT",
        "ALTER TABLE executions ADD COLUMN forked_from TEXT",
        "ALTER TABLE executions ADD COLUMN fork_seq INTEGER",
        # `inspect` and `GET /executions/{id}` list an execution's forks.
        "CREATE INDEX executions_by_fork ON executions (forked_from, created_at, execution_id)"
        " WHERE forked_from IS NOT NULL",
    ),
    (
        # The dashboard (issue 16) lists one workflow's executions, newest first, a page at a time.
        "CREATE INDEX executions_by_workflow"
        " ON executions (workflow_name, created_at, execution_id)",
    ),
)
"""Migration N (0-based) takes a journal from `user_version` N to N + 1."""

SCHEMA_VERSION = len(_MIGRATIONS)
"""The journal schema version this code writes, kept in `PRAGMA user_version`."""

APPLICATION_ID = 0x6F72386A
"""`PRAGMA application_id` of every orchestr8 journal ("or8j"), so other databases are refused."""

BUSY_TIMEOUT = 5.0
"""Seconds a write waits for another connection's lock before SQLite fails it (and the journal).

`STALLED_AFTER` is well below it, so a write held up by a lock shows as stalled on `/health`
seconds before it fails.
"""

_IDENTITY = "SELECT * FROM pragma_application_id, pragma_user_version"
_ANY_TABLE = "SELECT 1 FROM sqlite_master LIMIT 1"


def connect(path: Path | str, opened: list[sqlite3.Connection]) -> sqlite3.Connection:
    """Open one connection in autocommit mode (transactions are explicit) and remember it."""
    connection = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT
    )
    opened.append(connection)
    connection.execute("PRAGMA foreign_keys = ON")
    return connection


def migrate(connection: sqlite3.Connection, where: str) -> None:
    """Bring the schema to `SCHEMA_VERSION`, refusing other databases and newer journals."""

    def version() -> int:
        identity: tuple[int, int] = connection.execute(_IDENTITY).fetchone()
        application, found = identity
        if application not in (APPLICATION_ID, 0) or (application == 0 and found > 0):
            raise JournalError(f"{where} is a SQLite database but not an orchestr8 journal")
        if found > SCHEMA_VERSION:
            raise JournalError(
                f"{where} has journal schema version {found}, newer than this orchestr8 knows "
                f"({SCHEMA_VERSION}); upgrade orchestr8 to use it"
            )
        if found == 0 and connection.execute(_ANY_TABLE).fetchone() is not None:
            raise JournalError(f"{where} is a SQLite database but not an orchestr8 journal")
        return found

    if version() == SCHEMA_VERSION:
        return
    connection.execute("BEGIN IMMEDIATE")
    try:
        # Read again inside the write lock: another process may have migrated meanwhile.
        for statements in _MIGRATIONS[version() :]:
            for statement in statements:
                connection.execute(statement)
        connection.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        connection.execute("COMMIT")
    except Exception:
        connection.execute("ROLLBACK")
        raise


def explain(path: Path, error: sqlite3.Error) -> str:
    """Say in words why the journal file could not be used."""
    message = str(error)
    if "file is not a database" in message:
        return f"{path} is not a SQLite database, so it cannot be a journal"
    if "unable to open database file" in message:
        return f"cannot open the journal {path} (check the path and its permissions)"
    return f"cannot use the journal {path}: {message}"

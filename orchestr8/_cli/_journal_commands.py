"""`orchestr8 journal`: look after a journal itself, `migrate` its schema and `copy` it elsewhere.

`migrate` creates or upgrades a journal's schema (a PostgreSQL database's, or a SQLite file's)
and says from which version to which; `--check` only says whether one is needed (exit code 1),
for deploy scripts. `copy` moves every execution of one journal into another (SQLite to
PostgreSQL, and back), a page at a time, verified as it goes (`_journal/_journal_copy`). The work
is the journal's; these commands read the options, run it on a worker thread and report. Heavy
imports wait until a command runs.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import asyncclick as click

from ._group import journal_option

__all__ = ["journal_group"]


@click.group("journal")
def journal_group() -> None:
    """Look after a journal: migrate its schema, copy it to another database."""


@journal_group.command("migrate")
@click.option(
    "--check",
    is_flag=True,
    help="Change nothing: exit 1 when the journal needs migrating (or is missing), 0 when not.",
)
@journal_option
async def migrate(check: bool, journal: str | None) -> int:
    """Create or upgrade the journal's schema to this orchestr8's version.

    A PostgreSQL database gets the journal's tables (in the schema orchestr8) if it has none,
    or its older schema upgraded, in one transaction; a SQLite file likewise. Prints `schema N →
    M` or `already at M`. Safe to run again, and from several processes at once. Run it before
    starting workers and servers of a new orchestr8 version: they refuse an older schema.
    """
    from ._support import EXIT_OK, guard, journal_hint, journal_location

    async def action() -> int:
        import trio

        location = journal_location(journal)
        before, after = await trio.to_thread.run_sync(
            lambda: _migrate(location, check=check), limiter=trio.CapacityLimiter(1)
        )
        where = _describe(location)
        if before == after:
            click.echo(f"journal {where}: already at schema {after}")
            return EXIT_OK
        shown = "none" if before is None else str(before)
        if check:
            click.echo(
                f"journal {where}: schema {shown}, this orchestr8 needs {after}; run: "
                f"orchestr8 journal migrate{journal_hint(str(location))}"
            )
            return 1
        click.echo(f"journal {where}: schema {shown} → {after}")
        return EXIT_OK

    return await guard(action)


def _describe(location: Path | str) -> str:
    """The journal for people (no password)."""
    from ._support import describe_journal

    return describe_journal(location)


def _migrate(location: Path | str, *, check: bool) -> tuple[int | None, int]:
    """The schema version before and after: migrated, or (with `check`) only read.

    Raises:
        JournalError: the database cannot be reached, or its schema is newer than this code's,
            or the file is not a journal.
    """
    from .._journal import _postgres_schema as postgres

    if isinstance(location, str) and postgres.is_postgres_url(location):
        if not check:
            return postgres.prepare_database(location)
        connection = postgres.connect(location, purpose="orchestr8 migrate")
        try:
            found = postgres.found_version(connection)
        finally:
            connection.close()
        _refuse_newer(location, found, postgres.SCHEMA_VERSION)
        return found, postgres.SCHEMA_VERSION
    return _migrate_file(Path(location), check=check)


def _migrate_file(path: Path, *, check: bool) -> tuple[int | None, int]:
    """Migrate (or, with `check`, read) the SQLite journal file's schema version."""
    import sqlite3

    from .._errors import JournalError
    from .._journal import _sqlite_schema as sqlite_schema

    if path.is_dir():
        raise JournalError(f"{path} is a directory; the journal must be a file")
    exists = path.exists()
    if check and not exists:
        return None, sqlite_schema.SCHEMA_VERSION
    opened: list[sqlite3.Connection] = []
    try:
        if not exists:
            path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite_schema.connect(path, opened)
        (found,) = connection.execute("PRAGMA user_version").fetchone()
        before = found if exists else None
        _refuse_newer(str(path), before, sqlite_schema.SCHEMA_VERSION)
        if not check:
            connection.execute("PRAGMA journal_mode = WAL").fetchone()
            sqlite_schema.migrate(connection, str(path))
    except OSError as error:
        raise JournalError(f"cannot create {path}: {error.strerror or error}") from None
    except sqlite3.Error as error:
        raise JournalError(sqlite_schema.explain(path, error)) from None
    finally:
        for one in opened:
            one.close()
    return before, sqlite_schema.SCHEMA_VERSION


def _refuse_newer(where: str, found: int | None, known: int) -> None:
    """Refuse a journal whose schema is newer than this code's: upgrade orchestr8 instead."""
    from .._errors import JournalError
    from .._journal._postgres_schema import is_postgres_url, redact_url

    if found is not None and found > known:
        shown = redact_url(where) if is_postgres_url(where) else where
        raise JournalError(
            f"{shown} has journal schema version {found}, newer than this orchestr8 knows "
            f"({known}); upgrade orchestr8 to use it"
        )


@journal_group.command("copy")
@click.argument("source", metavar="SRC")
@click.argument("destination", metavar="DST")
@click.option(
    "--skip-existing",
    is_flag=True,
    help="Leave executions DST holds already as they are (re-running a copy that stopped).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
async def copy(source: str, destination: str, skip_existing: bool, as_json: bool) -> int:
    """Copy every execution of the journal SRC into the journal DST.

    SRC and DST are SQLite files or PostgreSQL URLs (postgresql://...): SQLite to PostgreSQL
    moves a journal to a shared database, and back. Executions, their events (ids, seqs,
    times and data unchanged), control requests and workflow documents are copied a page at a
    time, each page one transaction, verified as it goes; DST is created (or its schema) when
    missing. Refuses when SRC is DST, when SRC is missing, when a live process runs one of
    SRC's executions (let it end, or stop it: interrupted executions are copied and resume on
    DST), and when DST holds any of SRC's execution ids unless --skip-existing. Progress goes
    to stderr, the summary to stdout.
    """
    from ._support import EXIT_OK, guard

    async def action() -> int:
        import trio

        from .._execution._lock import held_executions
        from .._journal._journal_copy import HeldExecutions, copy_journal
        from ._views import dump_json

        source_location = _copy_location("SRC", source)
        destination_location = _copy_location("DST", destination)

        held: HeldExecutions | None = None
        if isinstance(source_location, Path):
            path = source_location

            def held(ids: Collection[str]) -> frozenset[str]:
                return held_executions(path, ids)

        def progress(done: int, total: int, events: int) -> None:
            trio.from_thread.run_sync(
                lambda: click.echo(
                    f"copied {done:,} of {total:,} executions ({events:,} events)", err=True
                )
            )

        report = await trio.to_thread.run_sync(
            lambda: copy_journal(
                source_location,
                destination_location,
                held=held,
                skip_existing=skip_existing,
                progress=progress,
            ),
            limiter=trio.CapacityLimiter(1),
        )
        if as_json:
            click.echo(dump_json(report.to_json()))
            return EXIT_OK
        skipped = f"; {report.skipped:,} already there, left as they were" if report.skipped else ""
        click.echo(
            f"copied {_count(report.executions, 'execution')} "
            f"({_count(report.children, 'child', 'children')}), "
            f"{_count(report.events, 'event')}, {_count(report.requests, 'control request')} "
            f"and {_count(report.documents, 'workflow document')} from {report.source} to "
            f"{report.destination}{skipped}; verified {_count(report.verified, 'execution')}"
        )
        return EXIT_OK

    return await guard(action)


def _count(number: int, noun: str, plural: str | None = None) -> str:
    """`1 event`, `3 events`, with thousands separated."""
    return f"{number:,} {noun if number == 1 else plural or noun + 's'}"


def _copy_location(name: str, given: str) -> Path | str:
    """`SRC` or `DST`: a PostgreSQL URL (checked), else a path; SRC must be a journal there.

    Raises:
        CommandError: the argument is empty, or SRC names a file that does not exist.
        JournalError: the URL is malformed (or psycopg is not installed).
    """
    from .._journal._postgres_schema import check_url, is_postgres_url
    from ._support import CommandError, no_journal_message

    if not given.strip():
        raise CommandError(f"{name}: the path is empty")
    if is_postgres_url(given):
        check_url(given)
        return given
    path = Path(given).expanduser()
    if name == "SRC" and not path.is_file():
        raise CommandError(f"SRC: {no_journal_message(path)}")
    return path

"""Copying a journal to another: SQLite to PostgreSQL, PostgreSQL to SQLite, SQLite to SQLite.

`copy_journal` copies every execution of the source (every column: parent and fork lineage,
idempotency keys), the workflow documents they refer to (by digest, with their step hashes),
their events (ids, seqs, timestamps, elapsed times and data text byte for byte) and their
control requests (each gets the destination's next request id; created and settled fields are
kept). Nothing is loaded whole: executions are read a page at a time in id order and each
execution's events a page at a time, and one destination transaction holds one page of whole
executions, so a copy that stops half-way leaves no execution half-copied. Every page is
verified after its commit: for each execution, the destination holds as many events as the
source, up to the same last seq.

The source is read in one snapshot (a read transaction), so a copy is consistent even while the
source is used; but an execution a live process runs is refused up front (the caller says which
ones, `held`, or for a PostgreSQL source the live leases do), since its events would go on
without the copy. A destination that already holds any of the source's execution ids is refused,
naming them, unless `skip_existing`: then those are left as they are (and still verified), which
makes re-running an interrupted copy safe.

Blocking (sqlite3 and psycopg's sync API): run it on a worker thread from async code.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any, Final

import attrs

from .._errors import JournalError
from ._copy_stores import JournalDatabase, same_journal
from ._postgres_schema import is_postgres_url, redact_url

__all__ = [
    "EXECUTION_COLUMNS",
    "PAGE_EVENTS",
    "PAGE_EXECUTIONS",
    "CopyProgress",
    "CopyReport",
    "copy_journal",
    "same_journal",
]

_EXECUTION_LIST: Final = (
    "execution_id, workflow_name, workflow, inputs, status, created_at, correlation_id,"
    " idempotency_key, started_at, finished_at, output, error, parent_id, parent_step,"
    " workflow_digest, forked_from, fork_seq"
)
EXECUTION_COLUMNS: Final = tuple(_EXECUTION_LIST.replace(",", " ").split())
"""Every column of a stored execution, as both stores keep it (the workflow text stays "" when
its document is stored by digest)."""

_EVENT_LIST: Final = "execution_id, seq, ts, elapsed, type, step_id, attempt, data"
_EVENT_COLUMNS: Final = tuple(_EVENT_LIST.replace(",", " ").split())
_REQUEST_LIST: Final = "execution_id, kind, target, body, created_at, outcome, detail, settled_at"
_REQUEST_COLUMNS: Final = tuple(_REQUEST_LIST.replace(",", " ").split())

PAGE_EXECUTIONS: Final = 200
"""How many executions one page (one destination transaction) holds at most."""

PAGE_EVENTS: Final = 5_000
"""How many events of an execution are read (and held in memory) at once."""

_UNFINISHED: Final = ("pending", "running", "waiting")
_NAMED: Final = 5
"""How many conflicting or mismatched execution ids an error names."""

HeldExecutions = Callable[[Collection[str]], Collection[str]]
"""Given execution ids, say which of them a live process holds (runs) now."""

CopyProgress = Callable[[int, int, int], None]
"""Told after each page: executions done (copied or skipped), executions in all, events copied."""


@attrs.frozen
class CopyReport:
    """What a copy did: counts of what it copied, what it skipped, and where from and to."""

    source: str
    destination: str
    executions: int = 0
    children: int = 0
    events: int = 0
    requests: int = 0
    documents: int = 0
    skipped: int = 0
    verified: int = 0

    def to_json(self) -> dict[str, Any]:
        """The report as a JSON object (what `orchestr8 journal copy --json` prints)."""
        return attrs.asdict(self)


def copy_journal(
    source: Path | str,
    destination: Path | str,
    *,
    held: HeldExecutions | None = None,
    skip_existing: bool = False,
    progress: CopyProgress | None = None,
    page_executions: int = PAGE_EXECUTIONS,
    page_events: int = PAGE_EVENTS,
) -> CopyReport:
    """Copy every execution of the journal at `source` into the journal at `destination`.

    `destination` is created when missing (a file, or the schema in an empty database).
    `held` says which executions of a SQLite source a live process runs (a PostgreSQL source's
    live leases say it themselves).

    Raises:
        JournalError: the two are one journal; the source is missing, not a journal, or a
            live process runs some of its executions; the destination holds some of its
            execution ids (without `skip_existing`), or an idempotency key of one under another
            id; a value cannot be stored there (PostgreSQL text holds no NUL character); the
            copy does not verify; or either database cannot be read or written.
    """
    if same_journal(source, destination):
        raise JournalError(
            f"the source and the destination are the same journal ({_name(source)}); "
            "copy to another file or database"
        )
    reader = JournalDatabase(source, create=False)
    try:
        writer = JournalDatabase(destination, create=True)
        try:
            return _copy(
                reader,
                writer,
                held=held,
                skip_existing=skip_existing,
                progress=progress,
                page_executions=page_executions,
                page_events=page_events,
            )
        finally:
            writer.close()
    finally:
        reader.close()


def _name(location: Path | str) -> str:
    """The location for people (no password)."""
    return redact_url(str(location)) if is_postgres_url(location) else str(location)


@attrs.define
class _Tally:
    """What the pages have copied so far."""

    executions: int = 0
    children: int = 0
    events: int = 0
    requests: int = 0
    documents: int = 0
    skipped: int = 0
    verified: int = 0


def _copy(
    reader: JournalDatabase,
    writer: JournalDatabase,
    *,
    held: HeldExecutions | None,
    skip_existing: bool,
    progress: CopyProgress | None,
    page_executions: int,
    page_events: int,
) -> CopyReport:
    """Check the source and destination, then copy the pages inside the source's snapshot."""
    tally = _Tally()
    side = "the source"
    try:
        with reader.transaction(read_only=True):
            total = reader.rows("SELECT count(*) FROM executions")[0][0]
            _refuse_running(reader, held, page_executions)
            existing = _existing(reader, writer, page_executions, skip_existing)
            after = ""
            done = 0
            while True:
                side = "the source"
                page = reader.rows(
                    f"SELECT {', '.join(EXECUTION_COLUMNS)} FROM executions"
                    " WHERE execution_id > ? ORDER BY execution_id LIMIT ?",
                    (after, page_executions),
                )
                if not page:
                    break
                after = page[-1][0]
                side = "the destination"
                _copy_page(reader, writer, page, existing, page_events, tally)
                done += len(page)
                if progress is not None:
                    progress(done, total, tally.events)
    except JournalError:
        raise
    except (*reader.errors, *writer.errors) as error:
        where = reader.name if side == "the source" else writer.name
        raise JournalError(
            f"copying failed on {side} ({where}): {' '.join(str(error).split())}"
        ) from None
    return CopyReport(source=reader.name, destination=writer.name, **attrs.asdict(tally))


def _refuse_running(reader: JournalDatabase, held: HeldExecutions | None, page: int) -> None:
    """Refuse a source with executions a live process runs (their events would go on)."""
    unfinished = [
        row[0]
        for row in reader.rows(
            "SELECT execution_id FROM executions WHERE status IN (?, ?, ?) ORDER BY execution_id",
            _UNFINISHED,
        )
    ]
    if not unfinished:
        return
    running: list[str] = []
    for start in range(0, len(unfinished), page):
        chunk = unfinished[start : start + page]
        if reader.postgres:
            running += [
                row[0]
                for row in reader.rows(
                    "SELECT execution_id FROM leases WHERE holder IS NOT NULL"
                    f" AND expires_at > now() AND {reader.among('execution_id')}",
                    (reader.ids(chunk),),
                )
            ]
        elif held is not None:
            running += list(held(chunk))
    if running:
        shown = ", ".join(sorted(running)[:_NAMED])
        more = f" and {len(running) - _NAMED} more" if len(running) > _NAMED else ""
        raise JournalError(
            f"a live process runs {len(running)} execution(s) of {reader.name}: {shown}{more}; "
            "let them end (or stop that process: they stay resumable) and copy again"
        )


def _existing(
    reader: JournalDatabase, writer: JournalDatabase, page: int, skip_existing: bool
) -> set[str]:
    """The source's execution ids the destination holds already; refused unless skipped."""
    found: set[str] = set()
    after = ""
    while True:
        ids = [
            row[0]
            for row in reader.rows(
                "SELECT execution_id FROM executions WHERE execution_id > ?"
                " ORDER BY execution_id LIMIT ?",
                (after, page),
            )
        ]
        if not ids:
            break
        after = ids[-1]
        found.update(
            row[0]
            for row in writer.rows(
                f"SELECT execution_id FROM executions WHERE {writer.among('execution_id')}",
                (writer.ids(ids),),
            )
        )
        if found and not skip_existing and len(found) >= _NAMED:
            break
    if found and not skip_existing:
        shown = ", ".join(sorted(found)[:_NAMED])
        raise JournalError(
            f"{writer.name} already holds execution(s) of {reader.name}: {shown}"
            f"{' and maybe more' if len(found) >= _NAMED else ''}; nothing was copied "
            "(give --skip-existing to copy only the others)"
        )
    return found


def _copy_page(
    reader: JournalDatabase,
    writer: JournalDatabase,
    page: list[tuple[Any, ...]],
    existing: set[str],
    page_events: int,
    tally: _Tally,
) -> None:
    """Copy one page of executions in one destination transaction, then verify it."""
    fresh = [row for row in page if row[0] not in existing]
    tally.skipped += len(page) - len(fresh)
    copied: dict[str, tuple[int, int]] = {}
    with writer.transaction():
        tally.documents += _copy_documents(reader, writer, fresh)
        for row in fresh:
            _refuse_taken_key(writer, row)
        writer.run_many(
            f"INSERT INTO executions ({', '.join(EXECUTION_COLUMNS)})"
            f" VALUES ({', '.join('?' * len(EXECUTION_COLUMNS))})",
            fresh,
        )
        for row in fresh:
            execution_id = row[0]
            copied[execution_id] = _copy_events(reader, writer, execution_id, page_events, tally)
            tally.executions += 1
            tally.children += row[EXECUTION_COLUMNS.index("parent_id")] is not None
        ids = [row[0] for row in fresh]
        if ids:
            requests = reader.rows(
                f"SELECT {', '.join(_REQUEST_COLUMNS)} FROM requests"
                f" WHERE {reader.among('execution_id')} ORDER BY request_id",
                (reader.ids(ids),),
            )
            writer.run_many(
                f"INSERT INTO requests ({', '.join(_REQUEST_COLUMNS)})"
                f" VALUES ({', '.join('?' * len(_REQUEST_COLUMNS))})",
                requests,
            )
            tally.requests += len(requests)
    _verify(reader, writer, [row[0] for row in page], copied)
    tally.verified += len(page)


def _copy_documents(
    reader: JournalDatabase, writer: JournalDatabase, rows: list[tuple[Any, ...]]
) -> int:
    """Copy the workflow documents the executions refer to that the destination lacks."""
    column = EXECUTION_COLUMNS.index("workflow_digest")
    digests = sorted({row[column] for row in rows if row[column] is not None})
    if not digests:
        return 0
    have = {
        row[0]
        for row in writer.rows(
            f"SELECT digest FROM workflow_documents WHERE {writer.among('digest')}",
            (writer.ids(digests),),
        )
    }
    wanted = [digest for digest in digests if digest not in have]
    if not wanted:
        return 0
    documents = reader.rows(
        "SELECT digest, document, step_hashes FROM workflow_documents"
        f" WHERE {reader.among('digest')}",
        (reader.ids(wanted),),
    )
    writer.run_many(
        "INSERT INTO workflow_documents (digest, document, step_hashes) VALUES (?, ?, ?)"
        # A writer may store the same document meanwhile: the same content, so either will do.
        " ON CONFLICT (digest) DO NOTHING",
        documents,
    )
    return len(documents)


def _refuse_taken_key(writer: JournalDatabase, row: tuple[Any, ...]) -> None:
    """Refuse an execution whose idempotency key another execution holds in the destination."""
    key = row[EXECUTION_COLUMNS.index("idempotency_key")]
    if key is None:
        return
    holders = writer.rows("SELECT execution_id FROM executions WHERE idempotency_key = ?", (key,))
    if holders:
        raise JournalError(
            f"execution {row[0]} cannot be copied: its idempotency key {key!r} is held by "
            f"execution {holders[0][0]} in {writer.name}; nothing of this page was copied"
        )


def _copy_events(
    reader: JournalDatabase,
    writer: JournalDatabase,
    execution_id: str,
    page_events: int,
    tally: _Tally,
) -> tuple[int, int]:
    """Copy one execution's events a page at a time; return (how many, last seq)."""
    count = last = 0
    while True:
        events = reader.rows(
            f"SELECT {', '.join(_EVENT_COLUMNS)} FROM events"
            " WHERE execution_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (execution_id, last, page_events),
        )
        if not events:
            return count, last
        try:
            writer.run_many(
                f"INSERT INTO events ({', '.join(_EVENT_COLUMNS)})"
                f" VALUES ({', '.join('?' * len(_EVENT_COLUMNS))})",
                events,
            )
        except writer.errors as error:
            if writer.postgres and "0x00" in str(error):
                raise JournalError(
                    f"execution {execution_id} cannot be copied to {writer.name}: an event's "
                    "text holds a NUL character (\\u0000), which PostgreSQL text cannot hold; "
                    "nothing of this page was copied"
                ) from None
            raise
        count += len(events)
        last = events[-1][1]
        tally.events += len(events)


def _verify(
    reader: JournalDatabase,
    writer: JournalDatabase,
    ids: list[str],
    copied: dict[str, tuple[int, int]],
) -> None:
    """Check that the destination holds as many events as the source, to the same last seq."""
    count = "SELECT execution_id, count(*), max(seq) FROM events WHERE {} GROUP BY execution_id"
    source = {
        row[0]: (row[1], row[2] or 0)
        for row in reader.rows(count.format(reader.among("execution_id")), (reader.ids(ids),))
    }
    destination = {
        row[0]: (row[1], row[2] or 0)
        for row in writer.rows(count.format(writer.among("execution_id")), (writer.ids(ids),))
    }
    wrong = [
        execution_id
        for execution_id in ids
        if source.get(execution_id, (0, 0)) != destination.get(execution_id, (0, 0))
        or (execution_id in copied and copied[execution_id] != source.get(execution_id, (0, 0)))
    ]
    if wrong:
        details = "; ".join(
            f"{execution_id}: {source.get(execution_id, (0, 0))[0]} event(s) to seq "
            f"{source.get(execution_id, (0, 0))[1]} in the source, "
            f"{destination.get(execution_id, (0, 0))[0]} to seq "
            f"{destination.get(execution_id, (0, 0))[1]} in the destination"
            for execution_id in wrong[:_NAMED]
        )
        raise JournalError(
            f"the copy does not match the source for {len(wrong)} execution(s): {details}"
        )

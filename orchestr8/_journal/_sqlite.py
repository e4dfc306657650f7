"""The journal's SQLite store: its queries, the batch rules, and `SQLiteJournal`.

A file journal keeps two connections: the writer (one `BEGIN IMMEDIATE … COMMIT` per batch, on a
worker thread) and a read-only reader (queries on a worker thread, one at a time). WAL mode lets
them work side by side, and the reader only ever sees committed batches. The layout is described
in `docs/events.md`; the file format (schema, migrations, connections) is `_sqlite_schema`.

The journal's threads never come from trio's default thread limiter, which sync agents share: it
has a capacity limiter of its own for each connection, so however many agents block their worker
threads, the journal still writes and reads (and cancels can still be recorded).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import attrs
import trio

from .._errors import JournalError
from .._json import make_encoder
from ._event_query import EventQuery
from ._events import Event
from ._journal import (
    BatchOutcome,
    CreateRequest,
    ExecutionRecord,
    Journal,
    KeyHeld,
    ReadableStore,
)
from ._page_filter import PageFilter
from ._records import QUEUE_NEEDS_POSTGRES
from ._requests import RequestStore, SQLiteRequests
from ._rules import (
    EXECUTION_FIELDS,
    STATUS_EVENT_TYPES,
    decode_event,
    decode_execution,
    document_digest,
    encode_event,
    encode_execution,
    execution_update,
    from_json,
    not_json,
    refusal,
    to_json,
)
from ._sqlite_schema import SCHEMA_VERSION, connect, explain, migrate

_Result = TypeVar("_Result")

_EXECUTION_COLUMNS = ", ".join(EXECUTION_FIELDS)
_WORKFLOW = EXECUTION_FIELDS.index("workflow")
# An execution's workflow is its document's (content-addressed), or its own text before schema 3.
_SELECT_EXECUTIONS = (
    "SELECT "
    + ", ".join(
        "coalesce(d.document, e.workflow)" if name == "workflow" else f"e.{name}"
        for name in EXECUTION_FIELDS
    )
    + " FROM executions AS e LEFT JOIN workflow_documents AS d ON d.digest = e.workflow_digest"
)
_INSERT_EXECUTION = (
    f"INSERT INTO executions ({_EXECUTION_COLUMNS}, workflow_digest)"
    f" VALUES ({', '.join('?' * (len(EXECUTION_FIELDS) + 1))})"
)
_DOCUMENT_HASHES = "SELECT step_hashes FROM workflow_documents WHERE digest = ?"
_INSERT_DOCUMENT = "INSERT INTO workflow_documents (digest, document, step_hashes) VALUES (?, ?, ?)"
_FILL_HASHES = "UPDATE workflow_documents SET step_hashes = ? WHERE digest = ?"
_STEP_HASHES = (
    "SELECT d.step_hashes FROM executions AS e"
    " LEFT JOIN workflow_documents AS d ON d.digest = e.workflow_digest WHERE e.execution_id = ?"
)
_EVENT_COLUMNS = "execution_id, seq, ts, elapsed, type, step_id, attempt, data"
_LAST_SEQ = (
    "SELECT EXISTS (SELECT 1 FROM executions WHERE execution_id = ?1),"
    " (SELECT max(seq) FROM events WHERE execution_id = ?1)"
)
_UPDATE_EXECUTION = (
    "UPDATE executions SET status = ?, started_at = coalesce(started_at, ?), finished_at = ?,"
    " output = ?, error = ? WHERE execution_id = ?"
)


def _last_seq(connection: sqlite3.Connection, execution_id: str) -> int | None:
    """Return the execution's highest seq (0 without events), or None if it does not exist."""
    exists, last = connection.execute(_LAST_SEQ, (execution_id,)).fetchone()
    return (last or 0) if exists else None


@attrs.define
class _Batch:
    """What one batch has taken so far: last seqs, idempotency keys, event rows, finished runs."""

    seqs: dict[str, int] = attrs.Factory(dict)
    keys: dict[str, ExecutionRecord] = attrs.Factory(dict)
    rows: list[tuple[Any, ...]] = attrs.Factory(list)
    finished: set[str] = attrs.Factory(set)
    documents: set[str] = attrs.Factory(set)
    """Digests of the workflow documents this batch found stored or stored."""


class Store:
    """Every SQL statement of the journal, over a writer and a reader connection (one for memory).

    The writer side keeps each active execution's last seq, so checking an event's seq costs a
    query only for the first event of an execution in this process.
    """

    def __init__(self, writer: sqlite3.Connection, reader: sqlite3.Connection) -> None:
        self._writer = writer
        self._reader = reader
        self._known_seqs: dict[str, int] = {}
        # The event data's JSON encoder, kept: batches are written one at a time (the journal's
        # write limiter), so one encoder serves them all, at about half the cost per event.
        self._encode = make_encoder()

    @classmethod
    def open_file(cls, path: Path) -> Store:
        """Open (creating and migrating as needed) the journal file at `path`.

        Raises:
            JournalError: the path is a directory, cannot be created or opened, or holds something
                that is not a journal of a schema this code knows.
        """
        if path.is_dir():
            raise JournalError(f"{path} is a directory; the journal must be a file")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            reason = error.strerror or str(error)
            raise JournalError(
                f"cannot create the journal directory {path.parent}: {reason}"
            ) from error
        opened: list[sqlite3.Connection] = []
        try:
            writer = connect(path, opened)
            writer.execute("PRAGMA journal_mode = WAL").fetchone()
            writer.execute("PRAGMA synchronous = NORMAL")
            migrate(writer, str(path))
            reader = connect(path, opened)
            reader.execute("PRAGMA query_only = ON")
        except sqlite3.Error as error:
            for connection in opened:
                connection.close()
            raise JournalError(explain(path, error)) from error
        except JournalError:
            for connection in opened:
                connection.close()
            raise
        return cls(writer, reader)

    @classmethod
    def open_memory(cls) -> Store:
        """Open a fresh in-memory journal; one connection serves writes and reads."""
        connection = connect(":memory:", [])
        migrate(connection, ":memory:")
        return cls(connection, connection)

    def prove_writable(self) -> None:
        """Commit one harmless write (the schema version, rewritten), or raise why it fails.

        Raises:
            sqlite3.Error: the journal cannot be written (disk full, read-only, locked).
        """
        self._writer.execute("BEGIN IMMEDIATE")
        try:
            self._writer.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            self._writer.execute("COMMIT")
        except sqlite3.Error:
            if self._writer.in_transaction:
                self._writer.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Close the connections (the last close checkpoints the WAL into the file)."""
        self._reader.close()
        if self._writer is not self._reader:
            self._writer.close()

    def load_execution(self, execution_id: str) -> ExecutionRecord | None:
        """Return the execution, or None."""
        row = self._reader.execute(
            f"{_SELECT_EXECUTIONS} WHERE e.execution_id = ?", (execution_id,)
        ).fetchone()
        return None if row is None else decode_execution(row)

    def load_step_hashes(self, execution_id: str) -> dict[str, str] | None:
        """Return the step hashes kept with the execution's document (`{}`: none), or None."""
        row = self._reader.execute(_STEP_HASHES, (execution_id,)).fetchone()
        if row is None:
            return None
        hashes: dict[str, str] = from_json(row[0]) or {}
        return hashes

    def load_by_idempotency_key(self, key: str) -> ExecutionRecord | None:
        """Return the execution created with this idempotency key, or None."""
        return _by_idempotency_key(self._reader, key)

    def load_forks(self, execution_id: str) -> list[str]:
        """Return the ids of the executions forked from this one, oldest first."""
        rows = self._reader.execute(
            "SELECT execution_id FROM executions WHERE forked_from = ?"
            " ORDER BY created_at, execution_id",
            (execution_id,),
        ).fetchall()
        return [row[0] for row in rows]

    def load_last_seq(self, execution_id: str) -> int | None:
        """Return the highest seq (0 without events), or None for an unknown execution."""
        return _last_seq(self._reader, execution_id)

    def load_events(self, execution_id: str, after: int, limit: int | None) -> list[Event] | None:
        """Return events with seq > after in seq order, or None for an unknown execution."""
        query = (
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE execution_id = ? AND seq > ? ORDER BY seq"
        )
        parameters: list[Any] = [execution_id, after]
        if limit is not None:
            query += " LIMIT ?"
            parameters.append(limit)
        rows = self._reader.execute(query, parameters).fetchall()
        if not rows and _last_seq(self._reader, execution_id) is None:
            return None
        return [decode_event(row) for row in rows]

    def load_matching_events(self, execution_id: str, query: EventQuery) -> list[Event] | None:
        """Return the events `query` asks for, in its order, or None for an unknown execution."""
        conditions, parameters = query.sql()
        rows = self._reader.execute(
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE execution_id = ? AND {conditions}",
            [execution_id, *parameters],
        ).fetchall()
        if not rows and _last_seq(self._reader, execution_id) is None:
            return None
        return [decode_event(row) for row in rows]

    def load_page(
        self, status: str | None, before: tuple[str, str] | None, limit: int, only: PageFilter
    ) -> list[ExecutionRecord]:
        """Return up to `limit` executions ordered by (created_at, execution_id), newest first."""
        conditions: list[str] = []
        parameters: list[Any] = []
        if status is not None:
            conditions.append("e.status = ?")
            parameters.append(status)
        if only.workflow is not None:
            conditions.append("e.workflow_name = ?")
            parameters.append(only.workflow)
        id_range = only.id_range()
        if id_range is not None:
            conditions.append("e.execution_id >= ? AND e.execution_id < ?")
            parameters.extend(id_range)
        if before is not None:
            conditions.append("(e.created_at, e.execution_id) < (?, ?)")
            parameters.extend(before)
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        rows = self._reader.execute(
            f"{_SELECT_EXECUTIONS} {where} ORDER BY e.created_at DESC, e.execution_id DESC LIMIT ?",
            [*parameters, limit],
        ).fetchall()
        return [decode_execution(row) for row in rows]

    def write_batch(self, items: Sequence[Event | CreateRequest]) -> BatchOutcome:
        """Check and write one batch in one transaction, stopping at the first refused event.

        A refused event is reported as the outcome's failure after the events before it commit; a
        failed write rolls the whole batch back and is reported the same way.
        """
        outcome = BatchOutcome()
        batch = _Batch()
        try:
            self._writer.execute("BEGIN IMMEDIATE")
            for item in items:
                if isinstance(item, CreateRequest):
                    outcome.created.append((item, self._create(batch, item)))
                else:
                    outcome.failure = self._take_event(batch, item)
                    if outcome.failure is not None:
                        break
            self._writer.executemany(
                f"INSERT INTO events ({_EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", batch.rows
            )
            self._writer.execute("COMMIT")
        except (sqlite3.Error, UnicodeEncodeError) as error:
            # UnicodeEncodeError: a text column held a lone surrogate, which SQLite refuses.
            if self._writer.in_transaction:
                self._writer.execute("ROLLBACK")
            failure = JournalError(f"writing the journal failed: {error}")
            failure.__cause__ = error
            return BatchOutcome(failure=failure)
        self._known_seqs.update(batch.seqs)
        for execution_id in batch.finished:
            del self._known_seqs[execution_id]
        outcome.events_written = len(batch.rows)
        outcome.committed = 1
        return outcome

    def _last_written_seq(self, batch: _Batch, execution_id: str) -> int | None:
        """Return the execution's last seq as of this point of the batch, or None if unknown."""
        last = batch.seqs.get(execution_id)
        if last is None:
            last = self._known_seqs.get(execution_id)
        if last is None:
            last = _last_seq(self._writer, execution_id)
        return last

    def _create(
        self, batch: _Batch, request: CreateRequest
    ) -> ExecutionRecord | KeyHeld | JournalError:
        """Insert a new execution (and its first event), or return the key's holder, or an error.

        Both rows go into the batch's transaction or neither: the event is encoded before the
        execution is inserted, so nothing can refuse it afterwards.
        """
        if request.queue:
            return JournalError(QUEUE_NEEDS_POSTGRES)
        record = request.record
        key = record.idempotency_key
        if key is not None:
            existing = batch.keys.get(key) or _by_idempotency_key(self._writer, key)
            if existing is not None:
                return KeyHeld(existing)
        if self._last_written_seq(batch, record.execution_id) is not None:
            return JournalError(f"execution {record.execution_id!r} is already in the journal")
        try:
            row = encode_execution(record)
            if request.first_event is not None:
                encode_event(request.first_event, self._encode)
            digest = self._store_document(batch, request, row[_WORKFLOW])
        except (TypeError, ValueError) as error:
            return JournalError(f"execution {record.execution_id!r} cannot be stored: {error}")
        stored_row = row if digest is None else (*row[:_WORKFLOW], "", *row[_WORKFLOW + 1 :])
        self._writer.execute(_INSERT_EXECUTION, (*stored_row, digest))
        batch.seqs[record.execution_id] = 0
        stored = decode_execution(row)
        if key is not None:
            batch.keys[key] = stored
        if request.first_event is not None:
            self._take_event(batch, request.first_event)
        return stored

    def _store_document(
        self, batch: _Batch, request: CreateRequest, text: str | None
    ) -> str | None:
        """Store the workflow document's text once per content; return its digest (None: no text).

        A document stored before is found by its digest (once per batch), and gets its step
        hashes if it was stored without them.

        Raises:
            TypeError, ValueError: the step hashes cannot be made or stored.
        """
        if text is None:
            return None  # the executions row refuses it (NOT NULL), as before
        digest = document_digest(text)
        if digest in batch.documents:
            return digest
        found = self._writer.execute(_DOCUMENT_HASHES, (digest,)).fetchone()
        hasher = request.step_hashes
        if found is None:
            hashes = "{}" if hasher is None else to_json(dict(hasher(request.record.workflow)))
            self._writer.execute(_INSERT_DOCUMENT, (digest, text, hashes))
        elif found[0] == "{}" and hasher is not None:
            hashes = to_json(dict(hasher(request.record.workflow)))
            self._writer.execute(_FILL_HASHES, (hashes, digest))
        batch.documents.add(digest)
        return digest

    def _take_event(self, batch: _Batch, event: Event) -> JournalError | None:
        """Take one event into the batch, or say why the journal refuses it (the hot path)."""
        last = self._last_written_seq(batch, event.execution_id)
        if last is None or event.seq != last + 1:
            return refusal(event, last)
        try:
            row = encode_event(event, self._encode)
        except (TypeError, ValueError) as error:
            return not_json(event, error)
        batch.rows.append(row)
        batch.seqs[event.execution_id] = event.seq
        if event.type in STATUS_EVENT_TYPES:
            self._writer.execute(_UPDATE_EXECUTION, execution_update(event))
            if event.is_terminal:
                batch.finished.add(event.execution_id)
            else:
                batch.finished.discard(event.execution_id)
        return None


def _by_idempotency_key(connection: sqlite3.Connection, key: str) -> ExecutionRecord | None:
    """Return the execution created with this idempotency key, or None."""
    row = connection.execute(f"{_SELECT_EXECUTIONS} WHERE e.idempotency_key = ?", (key,)).fetchone()
    return None if row is None else decode_execution(row)


class SQLiteJournal(Journal):
    """The journal in a SQLite file: WAL, group commit on a worker thread, a separate reader."""

    storage_errors = (sqlite3.Error,)

    def __init__(self, store: Store, path: Path, *, queue_size: int, close_timeout: float) -> None:
        super().__init__(queue_size=queue_size, close_timeout=close_timeout)
        self._store = store
        self._path = path
        self._read_limiter = trio.CapacityLimiter(1)
        self._write_limiter = trio.CapacityLimiter(1)
        self._store_closed = False
        self._control_limiter = trio.CapacityLimiter(1)
        self._requests: SQLiteRequests | None = None

    @classmethod
    async def open(cls, path: Path, *, queue_size: int, close_timeout: float) -> SQLiteJournal:
        """Open the file on a worker thread; `open_journal` then runs the writer.

        Raises:
            JournalError: the file cannot be used as a journal.
        """
        # A limiter of its own: never wait behind sync agents for a worker thread.
        store = await trio.to_thread.run_sync(
            Store.open_file, path, limiter=trio.CapacityLimiter(1)
        )
        return cls(store, path, queue_size=queue_size, close_timeout=close_timeout)

    @property
    def path(self) -> Path:
        """The SQLite file behind this journal."""
        return self._path

    async def _write(self, items: list[Event | CreateRequest]) -> BatchOutcome:
        """Write one batch on a worker thread: one thread hop per batch, never per event."""
        return await trio.to_thread.run_sync(
            self._store.write_batch, items, limiter=self._write_limiter
        )

    async def _read(self, query: Callable[[ReadableStore], _Result]) -> _Result:
        """Run a query on a worker thread, one at a time on the read connection."""

        def run() -> _Result:
            if self._store_closed:
                raise JournalError("the journal is closed")
            return query(self._store)

        return await trio.to_thread.run_sync(run, limiter=self._read_limiter)

    async def _control(self, call: Callable[[RequestStore], _Result]) -> _Result:
        """Run a control-request call on its own connection and worker thread, one at a time.

        Its own connection: a request is its own small transaction, never part of a batch of
        events, so it commits at once whatever the event writer is doing.
        """

        def run() -> _Result:
            if self._store_closed:
                raise JournalError("the journal is closed")
            if self._requests is None:
                self._requests = SQLiteRequests(self._path)
            return call(self._requests)

        if self._closed:
            raise JournalError("the journal is closed")
        try:
            return await trio.to_thread.run_sync(run, limiter=self._control_limiter)
        except sqlite3.Error as error:
            raise JournalError(f"the journal's control requests failed: {error}") from error

    async def _reopen_storage(self) -> None:
        """Open fresh connections that have committed a write, then close the failed ones.

        Raises:
            JournalError: the file is gone or cannot be opened as a journal any more.
            sqlite3.Error: it opens but still cannot be written.
        """

        def open_writable() -> Store:
            if not self._path.exists():
                # Opening would make a new, empty journal there: not this journal working again.
                raise JournalError(f"{self._path} no longer exists")
            store = Store.open_file(self._path)
            try:
                store.prove_writable()
            except BaseException:
                store.close()
                raise
            return store

        fresh = await trio.to_thread.run_sync(open_writable, limiter=self._write_limiter)
        failed, self._store = self._store, fresh

        def close_failed() -> None:
            # The failed connections have nothing left to give: an error closing them is moot.
            with contextlib.suppress(sqlite3.Error):
                failed.close()

        # Under the read limiter: a query that began on the failed store finishes first.
        await trio.to_thread.run_sync(close_failed, limiter=self._read_limiter)

    async def _close_storage(self) -> None:
        """Close both connections on a worker thread, after any running query (closing checkpoints).

        The read limiter keeps the close from racing a query on the read connection.
        """

        def close() -> None:
            self._store_closed = True
            self._store.close()

        def close_requests() -> None:
            if self._requests is not None:
                self._requests.close()

        await trio.to_thread.run_sync(close, limiter=self._read_limiter)
        await trio.to_thread.run_sync(close_requests, limiter=self._control_limiter)

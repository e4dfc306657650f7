"""The PostgreSQL journal's store: its queries and the batch rules, as the SQLite `Store` has them.

`PostgresStore` is the SQLite `Store` (`_sqlite`) on PostgreSQL: the same batch rules (the
execution must exist, `seq` must be its last seq + 1, data must be strict JSON, the first refused
event stops the batch after what came before it commits), the same rows (`_rules` encodes them),
the same idempotency keys, documents stored once by digest, status updates and paging order, and
the same error messages, down to a row the schema refuses (`NOT NULL constraint failed: events.ts`,
as SQLite words it). One batch is one transaction on the writer connection; reads run on a reader
connection in autocommit mode, so each sees committed batches only.

PostgreSQL text cannot hold the NUL character, which SQLite text can: a record or event envelope
holding one is refused the way one holding a lone surrogate is (`cannot be stored: its step_id
...`); no stored id or key holds one, so looking one up finds nothing. JSON values escape it.

A lost connection is not the batch's fault: `write_batch` raises `ConnectionLost` (saying whether
COMMIT may have reached the server) and the journal (`_postgres`) retries the batch on a fresh
connection. Hooks (`add_batch_hook`) run first in each batch's transaction, before its rows: where
fencing (refusing a writer that lost its lease) and wake-up notifications plug in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

import attrs
import psycopg
import psycopg.errors

from .._errors import JournalError
from .._json import make_encoder
from ._event_query import EventQuery
from ._events import Event
from ._page_filter import PageFilter
from ._postgres_leases import queue
from ._postgres_schema import check_version, connect
from ._records import BatchOutcome, CreateRequest, ExecutionRecord, KeyHeld
from ._rules import (
    EXECUTION_FIELDS,
    STATUS_EVENT_TYPES,
    NotTextError,
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

__all__ = ["COPY_FROM", "BatchHook", "ConnectionLost", "PostgresStore", "lost", "nul_refusal"]

BatchHook = Callable[["psycopg.Connection[Any]", Sequence[str]], JournalError | None]
"""Called first in a batch's transaction with its execution ids; an error refuses it whole."""

_EXECUTION_COLUMNS = ", ".join(EXECUTION_FIELDS)
_WORKFLOW = EXECUTION_FIELDS.index("workflow")
_SELECT_EXECUTIONS = (
    "SELECT "
    + ", ".join(
        "coalesce(d.document, e.workflow)" if name == "workflow" else f"e.{name}"
        for name in EXECUTION_FIELDS
    )
    + " FROM executions AS e LEFT JOIN workflow_documents AS d ON d.digest = e.workflow_digest"
)
# Another journal object may record the same id or idempotency key at the same moment (two servers
# given one request): the later insert waits for the earlier commit, then inserts nothing, and the
# request is answered as the key's holder or a taken id, never by failing the whole batch.
_INSERT_EXECUTION = (
    f"INSERT INTO executions ({_EXECUTION_COLUMNS}, workflow_digest)"
    f" VALUES ({', '.join(['%s'] * (len(EXECUTION_FIELDS) + 1))})"
    " ON CONFLICT DO NOTHING RETURNING 1"
)
# Locked (key share) until the batch commits: a prune deleting unreferenced documents
# (`_postgres_retention`) waits for it, then sees the execution that now refers to the document.
_DOCUMENT_HASHES = "SELECT step_hashes FROM workflow_documents WHERE digest = %s FOR KEY SHARE"
# Another journal object (a worker, a server) may store the same new document at the same moment:
# the later insert waits for the earlier one's commit, then keeps its row (adding step hashes it
# was stored without), instead of failing the batch on the primary key.
_INSERT_DOCUMENT = (
    "INSERT INTO workflow_documents (digest, document, step_hashes) VALUES (%s, %s, %s)"
    " ON CONFLICT (digest) DO UPDATE SET step_hashes = EXCLUDED.step_hashes"
    " WHERE workflow_documents.step_hashes = '{}' AND EXCLUDED.step_hashes <> '{}'"
)
_FILL_HASHES = "UPDATE workflow_documents SET step_hashes = %s WHERE digest = %s"
_STEP_HASHES = (
    "SELECT d.step_hashes FROM executions AS e"
    " LEFT JOIN workflow_documents AS d ON d.digest = e.workflow_digest WHERE e.execution_id = %s"
)
_EVENT_COLUMNS = "execution_id, seq, ts, elapsed, type, step_id, attempt, data"
_INSERT_EVENTS = f"INSERT INTO events ({_EVENT_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
_COPY_EVENTS = f"COPY events ({_EVENT_COLUMNS}) FROM STDIN"
_LAST_SEQ = (
    "SELECT EXISTS (SELECT 1 FROM executions WHERE execution_id = %(id)s),"
    " (SELECT max(seq) FROM events WHERE execution_id = %(id)s)"
)
_UPDATE_EXECUTION = (
    "UPDATE executions SET status = %s, started_at = coalesce(started_at, %s), finished_at = %s,"
    " output = %s, error = %s WHERE execution_id = %s"
)
COPY_FROM: Final = 16
"""From how many event rows a batch inserts them with COPY instead of (pipelined) INSERTs.

Measured on loopback (docs/scale-out.md): COPY costs one more round trip, so 1 event takes
0.44 ms against 0.35 ms, 10 events cost the same (0.48 ms), and from there COPY wins: 100
events 1.07 ms against 1.59 ms, 1,000 events 7.2 ms against 11.1 ms.
"""
_PROVE_WRITABLE = "UPDATE schema_version SET version = version"
_NUL = "\x00"


class ConnectionLost(Exception):
    """The writer's connection broke during a batch: the journal retries it on a fresh one.

    `commit_unknown` is True when COMMIT was sent, so the batch may have committed; `marker` then
    says how to find out (`PostgresStore.committed`), and the rest is what the batch did.
    """

    def __init__(
        self,
        error: BaseException,
        *,
        commit_unknown: bool,
        marker: tuple[str, int] | None,
        outcome: BatchOutcome,
        seqs: dict[str, int],
        finished: set[str],
        written: int,
    ) -> None:
        super().__init__(f"lost the connection to the journal database: {_one_line(error)}")
        self.commit_unknown = commit_unknown
        self.marker = marker
        self.outcome = outcome
        self.seqs = seqs
        self.finished = finished
        self.written = written


def lost(connection: psycopg.Connection[Any], error: BaseException) -> bool:
    """Whether `error` means the connection is gone (not a statement the server refused)."""
    return isinstance(error, psycopg.OperationalError) and (connection.broken or connection.closed)


def nul_refusal(name: str, text: object) -> NotTextError | None:
    """The refusal of a text field holding NUL, which PostgreSQL text cannot hold, or None."""
    if isinstance(text, str) and _NUL in text:
        return NotTextError(
            f"its {name} {text!r} holds a NUL character, which PostgreSQL text cannot hold"
        )
    return None


def _one_line(error: BaseException) -> str:
    """An error's message on one line (the server's DETAIL lines folded in)."""
    return " ".join(str(error).split())


def _storage_message(error: BaseException) -> str:
    """Say why a batch's write failed, wording a refused NULL as SQLite does."""
    if isinstance(error, psycopg.errors.NotNullViolation):
        return f"NOT NULL constraint failed: {error.diag.table_name}.{error.diag.column_name}"
    return _one_line(error)


def _insert_events(connection: psycopg.Connection[Any], rows: list[tuple[Any, ...]]) -> None:
    """Insert a batch's event rows: COPY from `COPY_FROM` rows on, pipelined INSERTs below."""
    with connection.cursor() as cursor:
        if len(rows) < COPY_FROM:
            cursor.executemany(_INSERT_EVENTS, rows)
            return
        with cursor.copy(_COPY_EVENTS) as copy:
            for row in rows:
                copy.write_row(row)


def _last_seq(connection: psycopg.Connection[Any], execution_id: str) -> int | None:
    """Return the execution's highest seq (0 without events), or None if it does not exist."""
    if _NUL in execution_id:
        return None  # no stored id holds one
    row = connection.execute(_LAST_SEQ, {"id": execution_id}).fetchone()
    assert row is not None
    exists, last = row
    return int(last or 0) if exists else None


@attrs.define
class _Batch:
    """What one batch has taken so far: last seqs, keys, event rows, finished runs, documents."""

    seqs: dict[str, int] = attrs.Factory(dict)
    keys: dict[str, ExecutionRecord] = attrs.Factory(dict)
    rows: list[tuple[Any, ...]] = attrs.Factory(list)
    finished: set[str] = attrs.Factory(set)
    documents: set[str] = attrs.Factory(set)
    created: list[str] = attrs.Factory(list)
    """The executions this batch created, in order."""

    def marker(self) -> tuple[str, int] | None:
        """A row that exists once the batch committed: its first event, else a created run."""
        if self.rows:
            return self.rows[0][0], self.rows[0][1]
        return (self.created[0], 0) if self.created else None


class PostgresStore:
    """Every SQL statement of the PostgreSQL journal, over a writer and a reader connection.

    The writer side keeps each active execution's last seq, so checking an event's seq costs a
    query only for the first event of an execution in this process. Each connection is used by
    one thread at a time (the journal's limiters).
    """

    def __init__(
        self, url: str, writer: psycopg.Connection[Any], reader: psycopg.Connection[Any]
    ) -> None:
        self.url = url
        self._writer = writer
        self._reader = reader
        self._known_seqs: dict[str, int] = {}
        self._encode = make_encoder()
        self._hooks: list[BatchHook] = []

    @classmethod
    def open(cls, url: str) -> PostgresStore:
        """Connect the writer and the reader, creating the schema in an empty database.

        Raises:
            JournalError: the URL is malformed, the database cannot be reached or used, or
                holds an older or newer schema (the message names the fix).
        """
        writer = connect(url, purpose="orchestr8 writer", autocommit=True)
        try:
            check_version(writer, url, create=True)
            writer.autocommit = False
            reader = connect(url, purpose="orchestr8 reader")
        except BaseException:
            writer.close()
            raise
        return cls(url, writer, reader)

    def add_batch_hook(self, hook: BatchHook) -> None:
        """Run `hook` first in every batch's transaction (see `BatchHook`)."""
        self._hooks.append(hook)

    def close(self) -> None:
        """Close both connections."""
        self._reader.close()
        self._writer.close()

    def replace_writer(self) -> None:
        """Swap the writer for a fresh connection that has committed a write (after a loss).

        Raises:
            JournalError: the database cannot be reached, or its schema is not this code's.
            psycopg.Error: it connects but cannot be written.
        """
        fresh = connect(self.url, purpose="orchestr8 writer", autocommit=True)
        try:
            check_version(fresh, self.url, create=False)
            fresh.autocommit = False
            with fresh.transaction():
                fresh.execute(_PROVE_WRITABLE)
        except BaseException:
            fresh.close()
            raise
        failed, self._writer = self._writer, fresh
        failed.close()

    def committed(self, marker: tuple[str, int]) -> bool:
        """Whether the batch whose `ConnectionLost.marker` this is committed (on the writer)."""
        execution_id, seq = marker
        last = _last_seq(self._writer, execution_id)
        self._writer.rollback()
        return last is not None and last >= seq

    def finish_batch(self, seqs: dict[str, int], finished: set[str]) -> None:
        """Remember a committed batch's last seqs; forget executions that finished."""
        self._known_seqs.update(seqs)
        for execution_id in finished:
            self._known_seqs.pop(execution_id, None)

    def read(self, query: Callable[[PostgresStore], Any]) -> Any:
        """Run a read, reconnecting the reader once if its connection turns out to be gone."""
        try:
            return query(self)
        except psycopg.OperationalError as error:
            if not lost(self._reader, error):
                raise
        self._reader.close()
        self._reader = connect(self.url, purpose="orchestr8 reader")
        return query(self)

    def ping(self) -> None:
        """Run `SELECT 1` on the reader: the database answers (`Journal.unreachable`)."""
        self._reader.execute("SELECT 1").fetchone()

    def load_execution(self, execution_id: str) -> ExecutionRecord | None:
        """Return the execution, or None."""
        return self._one_execution(self._reader, "execution_id", execution_id)

    def load_step_hashes(self, execution_id: str) -> dict[str, str] | None:
        """Return the step hashes kept with the execution's document (`{}`: none), or None."""
        if _NUL in execution_id:
            return None
        row = self._reader.execute(_STEP_HASHES, (execution_id,)).fetchone()
        if row is None:
            return None
        hashes: dict[str, str] = from_json(row[0]) or {}
        return hashes

    def load_by_idempotency_key(self, key: str) -> ExecutionRecord | None:
        """Return the execution created with this idempotency key, or None."""
        return self._one_execution(self._reader, "idempotency_key", key)

    def load_forks(self, execution_id: str) -> list[str]:
        """Return the ids of the executions forked from this one, oldest first."""
        if _NUL in execution_id:
            return []
        rows = self._reader.execute(
            "SELECT execution_id FROM executions WHERE forked_from = %s"
            " ORDER BY created_at, execution_id",
            (execution_id,),
        ).fetchall()
        return [row[0] for row in rows]

    def load_last_seq(self, execution_id: str) -> int | None:
        """Return the highest seq (0 without events), or None for an unknown execution."""
        return _last_seq(self._reader, execution_id)

    def load_events(self, execution_id: str, after: int, limit: int | None) -> list[Event] | None:
        """Return events with seq > after in seq order, or None for an unknown execution."""
        if _NUL in execution_id:
            return None
        query = (
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE execution_id = %s AND seq > %s ORDER BY seq"
        )
        parameters: list[Any] = [execution_id, after]
        if limit is not None:
            query += " LIMIT %s"
            parameters.append(limit)
        rows = self._reader.execute(query, parameters).fetchall()
        if not rows and _last_seq(self._reader, execution_id) is None:
            return None
        return [decode_event(row) for row in rows]

    def load_matching_events(self, execution_id: str, query: EventQuery) -> list[Event] | None:
        """Return the events `query` asks for, in its order, or None for an unknown execution."""
        if _NUL in execution_id:
            return None
        conditions, parameters = query.sql("postgresql")
        rows = self._reader.execute(
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE execution_id = %s AND {conditions}",
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
            conditions.append("e.status = %s")
            parameters.append(status)
        if only.workflow is not None:
            if _NUL in only.workflow:
                return []
            conditions.append("e.workflow_name = %s")
            parameters.append(only.workflow)
        id_range = only.id_range()
        if id_range is not None:
            conditions.append("e.execution_id >= %s AND e.execution_id < %s")
            parameters.extend(id_range)
        if before is not None:
            if any(_NUL in part for part in before):
                raise ValueError(f"not a cursor from a previous page: {before!r}")
            conditions.append("(e.created_at, e.execution_id) < (%s, %s)")
            parameters.extend(before)
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        rows = self._reader.execute(
            f"{_SELECT_EXECUTIONS} {where} ORDER BY e.created_at DESC, e.execution_id DESC"
            " LIMIT %s",
            [*parameters, limit],
        ).fetchall()
        return [decode_execution(row) for row in rows]

    def write_batch(self, items: Sequence[Event | CreateRequest]) -> BatchOutcome:
        """Check and write one batch in one transaction, stopping at the first refused event.

        A refused event is reported as the outcome's failure after the events before it commit; a
        failed write rolls the whole batch back and is reported the same way.

        Raises:
            ConnectionLost: the connection broke; the journal retries the batch on a fresh one.
        """
        outcome = BatchOutcome()
        batch = _Batch()
        connection = self._writer
        commit_sent = False
        try:
            # The hooks first: a fencing hook locks the batch's lease rows before anything is
            # written, so a stale writer is refused by its lease, not by whichever row it meets.
            refused = self._run_hooks(connection, items)
            if refused is not None:
                connection.rollback()
                return BatchOutcome(failure=refused)
            for item in items:
                if isinstance(item, CreateRequest):
                    outcome.created.append((item, self._create(batch, item)))
                else:
                    outcome.failure = self._take_event(batch, item)
                    if outcome.failure is not None:
                        break
            if batch.rows:
                _insert_events(connection, batch.rows)
            commit_sent = True
            connection.commit()
        except (psycopg.Error, UnicodeEncodeError) as error:
            # UnicodeEncodeError: a text column held a lone surrogate, which UTF-8 cannot encode.
            if lost(connection, error):
                raise ConnectionLost(
                    error,
                    commit_unknown=commit_sent,
                    marker=batch.marker(),
                    outcome=outcome,
                    seqs=batch.seqs,
                    finished=batch.finished,
                    written=len(batch.rows),
                ) from error
            if not connection.closed:
                connection.rollback()
            failure = JournalError(f"writing the journal failed: {_storage_message(error)}")
            failure.__cause__ = error
            return BatchOutcome(failure=failure)
        except BaseException:
            # Anything else (a data value that raises while encoded) fails the journal: end the
            # transaction first, so its rows hold no locks while the journal waits to reopen.
            if not connection.closed and not connection.broken:
                connection.rollback()
            raise
        self.finish_batch(batch.seqs, batch.finished)
        outcome.events_written = len(batch.rows)
        outcome.committed = 1
        return outcome

    def _run_hooks(
        self, connection: psycopg.Connection[Any], items: Sequence[Event | CreateRequest]
    ) -> JournalError | None:
        """Run the batch hooks at its transaction's start; the first refusal refuses it whole."""
        if not self._hooks:
            return None
        # An id holding NUL names no execution (the batch refuses its event): hooks never see it.
        execution_ids = [
            execution_id
            for execution_id in dict.fromkeys(
                item.record.execution_id if isinstance(item, CreateRequest) else item.execution_id
                for item in items
            )
            if _NUL not in execution_id
        ]
        for hook in self._hooks:
            refused = hook(connection, execution_ids)
            if refused is not None:
                return refused
        return None

    def _one_execution(
        self, connection: psycopg.Connection[Any], column: str, value: str
    ) -> ExecutionRecord | None:
        """Return the execution whose `column` (its id or idempotency key) is `value`, or None."""
        if _NUL in value:
            return None
        row = connection.execute(f"{_SELECT_EXECUTIONS} WHERE e.{column} = %s", (value,)).fetchone()
        return None if row is None else decode_execution(row)

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
        record = request.record
        key = record.idempotency_key
        if key is not None:
            existing = batch.keys.get(key) or self._one_execution(
                self._writer, "idempotency_key", key
            )
            if existing is not None:
                return KeyHeld(existing)
        if self._last_written_seq(batch, record.execution_id) is not None:
            return JournalError(f"execution {record.execution_id!r} is already in the journal")
        try:
            row = encode_execution(record)
            for name, value in zip(EXECUTION_FIELDS, row, strict=True):
                nul = nul_refusal(name, value)
                if nul is not None:
                    raise nul
            if request.first_event is not None:
                self._encode_event(request.first_event)
            digest = self._store_document(batch, request, row[_WORKFLOW])
        except (TypeError, ValueError) as error:
            return JournalError(f"execution {record.execution_id!r} cannot be stored: {error}")
        stored_row = row if digest is None else (*row[:_WORKFLOW], "", *row[_WORKFLOW + 1 :])
        if self._writer.execute(_INSERT_EXECUTION, (*stored_row, digest)).fetchone() is None:
            holder = None
            if key is not None:
                holder = self._one_execution(self._writer, "idempotency_key", key)
            if holder is not None:
                return KeyHeld(holder)
            return JournalError(f"execution {record.execution_id!r} is already in the journal")
        if request.queue:
            queue(self._writer, record.execution_id)
        batch.seqs[record.execution_id] = 0
        batch.created.append(record.execution_id)
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

        Raises:
            TypeError, ValueError: the step hashes cannot be made or stored.
        """
        if text is None:
            return None  # the executions row refuses it (NOT NULL), as in SQLite
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

    def _encode_event(self, event: Event) -> tuple[Any, ...]:
        """Encode an event's row, refusing envelope text PostgreSQL cannot hold (NUL).

        Raises:
            TypeError, ValueError: as `encode_event`, or a text field holds NUL.
        """
        row = encode_event(event, self._encode)
        for name, index in (("ts", 2), ("type", 4), ("step_id", 5)):
            nul = nul_refusal(name, row[index])
            if nul is not None:
                raise nul
        return row

    def _take_event(self, batch: _Batch, event: Event) -> JournalError | None:
        """Take one event into the batch, or say why the journal refuses it (the hot path)."""
        last = self._last_written_seq(batch, event.execution_id)
        if last is None or event.seq != last + 1:
            return refusal(event, last)
        try:
            row = self._encode_event(event)
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

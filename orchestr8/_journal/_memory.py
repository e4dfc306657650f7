"""`MemoryJournal`: the journal without a file, for tests and embedding programs.

A pure-Python store (dicts and lists, no SQLite) run inline on the trio thread, behaving exactly
like `SQLiteJournal`'s store: the same batch rules (the execution must exist, `seq` must be its last
seq + 1, data must be strict JSON, the first refused event fails the journal), the same status-row
updates, idempotency keys and paging order, the same error messages. The shared pieces live in
`_rules`; `tests/journal/test_journal.py` runs every specification against both journals and
compares the two stores batch by batch.

Everything is stored as SQLite would hold it: records and event data as JSON text, encoded once
when written and decoded on every read, so callers never share a mutable object with the journal
(nor with each other). A batch is applied in one synchronous call, so readers only ever see whole
batches. The contents vanish when the journal closes.
"""

from __future__ import annotations

import bisect
import json
import math
from collections.abc import Callable, Sequence
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
from ._requests import MemoryRequests, RequestStore
from ._rules import (
    EXECUTION_FIELDS,
    STATUS_EVENT_TYPES,
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

_Result = TypeVar("_Result")

_COLUMN = {name: index for index, name in enumerate(EXECUTION_FIELDS)}
_STATUS = _COLUMN["status"]
_EXECUTION_ID = _COLUMN["execution_id"]
_WORKFLOW_NAME = _COLUMN["workflow_name"]
_FORKED_FROM = _COLUMN["forked_from"]
_STARTED_AT = _COLUMN["started_at"]
_FINISHED_AT = _COLUMN["finished_at"]
_OUTPUT = _COLUMN["output"]
_ERROR = _COLUMN["error"]
_CREATED_AT = _COLUMN["created_at"]
_IDEMPOTENCY_KEY = _COLUMN["idempotency_key"]
_WORKFLOW = _COLUMN["workflow"]

REQUIRED_FIELDS = ("workflow_name", "workflow", "inputs", "status", "created_at")
"""The `NOT NULL` columns of the SQLite `executions` table, in column order (a test checks it)."""

_REQUIRED = tuple((_COLUMN[name], name) for name in REQUIRED_FIELDS)
_EVENT_TS = 2
"""Where `ts` sits in an event row; it is the only event column a valid event can leave empty."""


class _ConstraintError(Exception):
    """A row SQLite would refuse with a constraint error: the whole batch is rolled back."""


@attrs.define(eq=False)
class _Execution:
    """One stored execution: its row (the record's fields, JSON as text) and its event rows.

    The event with seq n is `events[n - 1]`: seq is gap-free from 1, so the list is the index.
    """

    row: list[Any]
    events: list[tuple[Any, ...]] = attrs.Factory(list)
    digest: str | None = None
    """The digest of its workflow document, whose one text its row shares."""


@attrs.define(eq=False)
class _Document:
    """One stored workflow document: its JSON text and its step hashes (JSON text)."""

    text: str
    step_hashes: str


class MemoryStore:
    """The memory journal's storage: a `ReadableStore`, as the SQLite `Store` is."""

    def __init__(self) -> None:
        self._executions: dict[str, _Execution] = {}
        self._by_time: list[tuple[str, str]] = []
        """(created_at, execution_id) of every execution, ascending: the paging order."""
        self._by_key: dict[str, str] = {}
        """Idempotency key → execution id."""
        self._documents: dict[str, _Document] = {}
        """Digest → workflow document: every execution of one document shares its text."""
        self._encode = make_encoder()

    def close(self) -> None:
        """Drop everything."""
        self._executions.clear()
        self._by_time.clear()
        self._by_key.clear()
        self._documents.clear()

    def load_step_hashes(self, execution_id: str) -> dict[str, str] | None:
        """Return the step hashes kept with the execution's document (`{}`: none), or None."""
        stored = self._executions.get(execution_id)
        if stored is None:
            return None
        document = None if stored.digest is None else self._documents.get(stored.digest)
        hashes: dict[str, str] = {} if document is None else from_json(document.step_hashes)
        return hashes

    def load_execution(self, execution_id: str) -> ExecutionRecord | None:
        """Return the execution, or None."""
        stored = self._executions.get(execution_id)
        return None if stored is None else decode_execution(stored.row)

    def load_by_idempotency_key(self, key: str) -> ExecutionRecord | None:
        """Return the execution created with this idempotency key, or None."""
        owner = self._by_key.get(key)
        return None if owner is None else decode_execution(self._executions[owner].row)

    def load_forks(self, execution_id: str) -> list[str]:
        """Return the ids of the executions forked from this one, oldest first."""
        return [
            forked
            for _, forked in self._by_time
            if self._executions[forked].row[_FORKED_FROM] == execution_id
        ]

    def load_last_seq(self, execution_id: str) -> int | None:
        """Return the highest seq (0 without events), or None for an unknown execution."""
        stored = self._executions.get(execution_id)
        return None if stored is None else len(stored.events)

    def load_events(self, execution_id: str, after: int, limit: int | None) -> list[Event] | None:
        """Return events with seq > after in seq order, or None for an unknown execution."""
        stored = self._executions.get(execution_id)
        if stored is None:
            return None
        rows = stored.events
        # The first index with seq > after (SQLite compares numbers, so a float `after` works too).
        if after <= 0:
            start = 0
        elif after >= len(rows):
            start = len(rows)
        else:
            start = math.floor(after)
        stop = len(rows) if limit is None else start + limit
        # seq is the position (an int, as SQLite's INTEGER column returns it); data is decoded anew.
        return [
            Event(row[0], seq, row[2], row[3], row[4], row[5], row[6], json.loads(row[7]))
            for seq, row in enumerate(rows[start:stop], start + 1)
        ]

    def load_matching_events(self, execution_id: str, query: EventQuery) -> list[Event] | None:
        """Return the events `query` asks for, in its order, or None for an unknown execution."""
        found = self.load_events(execution_id, 0, None)
        if found is None:
            return None
        matching = [event for event in found if query.matches(event)]
        if query.descending:
            matching.reverse()
        return matching if query.limit is None else matching[: query.limit]

    def load_page(
        self, status: str | None, before: tuple[str, str] | None, limit: int, only: PageFilter
    ) -> list[ExecutionRecord]:
        """Return up to `limit` executions ordered by (created_at, execution_id), newest first."""
        order = self._by_time
        # Python compares str by code point, which is the UTF-8 byte order SQLite's BINARY uses.
        end = len(order) if before is None else bisect.bisect_left(order, before)
        found: list[ExecutionRecord] = []
        for index in range(end - 1, -1, -1):
            row = self._executions[order[index][1]].row
            if (status is None or row[_STATUS] == status) and only.matches(
                row[_EXECUTION_ID], row[_WORKFLOW_NAME]
            ):
                found.append(decode_execution(row))
                if len(found) >= limit:
                    break
        return found

    def write_batch(self, items: Sequence[Event | CreateRequest]) -> BatchOutcome:
        """Check and apply one batch in one call, stopping at the first refused event.

        A refused event is reported as the outcome's failure after the events before it are
        applied. A row SQLite's constraints would refuse (a record or event missing a `NOT NULL`
        value) undoes the whole batch and is reported as a failed write, as SQLite's rollback does.
        """
        outcome = BatchOutcome()
        executions = self._executions
        encode = self._encode
        created: list[str] = []
        created_keys: dict[str, tuple[Any, ...]] = {}
        saved_rows: list[tuple[_Execution, list[Any]]] = []
        broken: str | None = None
        written = 0
        stop = len(items)
        for index, item in enumerate(items):
            if isinstance(item, CreateRequest):
                try:
                    result = self._create(item, created, created_keys)
                except _ConstraintError as error:
                    return self._undo(items[:index], created, saved_rows, str(error))
                outcome.created.append((item, result))
                if item.first_event is not None and isinstance(result, ExecutionRecord):
                    written += 1
                    if item.first_event.ts is None and broken is None:
                        # Like any event's: SQLite refuses it when it inserts the batch's events.
                        broken = "NOT NULL constraint failed: events.ts"
                continue
            # The hot path: one dict lookup, one seq check, one JSON encoding, one append.
            stored = executions.get(item.execution_id)
            if stored is None:
                outcome.failure = refusal(item, None)
                stop = index
                break
            events = stored.events
            if item.seq != len(events) + 1:
                outcome.failure = refusal(item, len(events))
                stop = index
                break
            try:
                row = encode_event(item, encode)
            except (TypeError, ValueError) as error:
                outcome.failure = not_json(item, error)
                stop = index
                break
            if row[_EVENT_TS] is None and broken is None:
                # SQLite refuses such a row only when it inserts the batch's events, at the end.
                broken = "NOT NULL constraint failed: events.ts"
            events.append(row)
            written += 1
            if item.type in STATUS_EVENT_TYPES:
                saved_rows.append((stored, stored.row.copy()))
                _apply_update(stored.row, item)
        if broken is not None:
            return self._undo(items[:stop], created, saved_rows, broken)
        outcome.events_written = written
        outcome.committed = 1
        return outcome

    def _create(
        self,
        request: CreateRequest,
        created: list[str],
        created_keys: dict[str, tuple[Any, ...]],
    ) -> ExecutionRecord | KeyHeld | JournalError:
        """Store a new execution (and its first event), or return the key's holder, or an error.

        `created` and `created_keys` collect this batch's new executions and their rows as
        created: like the SQLite store, a key created earlier in the same batch returns the
        execution as it was created, even if a status event of the batch has changed it since.
        The first event is encoded before anything is stored, so both are stored or neither.

        Raises:
            _ConstraintError: a field SQLite keeps `NOT NULL` is None.
        """
        if request.queue:
            return JournalError(QUEUE_NEEDS_POSTGRES)
        record = request.record
        key = record.idempotency_key
        if key is not None:
            if key in created_keys:
                return KeyHeld(decode_execution(created_keys[key]))
            owner = self._by_key.get(key)
            if owner is not None:
                return KeyHeld(decode_execution(self._executions[owner].row))
        if record.execution_id in self._executions:
            return JournalError(f"execution {record.execution_id!r} is already in the journal")
        first = request.first_event
        try:
            row = list(encode_execution(record))
            first_row = None if first is None else encode_event(first, self._encode)
            for index, name in _REQUIRED:
                if row[index] is None:
                    raise _ConstraintError(f"NOT NULL constraint failed: executions.{name}")
            digest = self._store_document(request, row)
        except (TypeError, ValueError) as error:
            return JournalError(f"execution {record.execution_id!r} cannot be stored: {error}")
        stored = self._executions[record.execution_id] = _Execution(row, digest=digest)
        bisect.insort(self._by_time, (row[_CREATED_AT], record.execution_id))
        if key is not None:
            self._by_key[key] = record.execution_id
            created_keys[key] = tuple(row)
        created.append(record.execution_id)
        result = decode_execution(row)
        if first is not None and first_row is not None:
            stored.events.append(first_row)
            if first.type in STATUS_EVENT_TYPES:
                _apply_update(stored.row, first)
        return result

    def _store_document(self, request: CreateRequest, row: list[Any]) -> str:
        """Keep the row's workflow text once per content: the row then shares the kept text.

        A document kept without step hashes gets them when a request can make them.

        Raises:
            TypeError, ValueError: the step hashes cannot be made or stored.
        """
        text = row[_WORKFLOW]
        digest = document_digest(text)
        document = self._documents.get(digest)
        hasher = request.step_hashes
        if document is None:
            hashes = "{}" if hasher is None else to_json(dict(hasher(request.record.workflow)))
            self._documents[digest] = _Document(text, hashes or "{}")
        else:
            if document.step_hashes == "{}" and hasher is not None:
                document.step_hashes = to_json(dict(hasher(request.record.workflow))) or "{}"
            row[_WORKFLOW] = document.text
        return digest

    def _undo(
        self,
        applied: Sequence[Event | CreateRequest],
        created: list[str],
        saved_rows: list[tuple[_Execution, list[Any]]],
        reason: str,
    ) -> BatchOutcome:
        """Undo a batch whose `applied` items were applied, and report it as a failed write."""
        appended: dict[str, int] = {}
        for item in applied:
            if isinstance(item, Event):
                appended[item.execution_id] = appended.get(item.execution_id, 0) + 1
        for execution_id, count in appended.items():
            del self._executions[execution_id].events[-count:]
        for stored, row in reversed(saved_rows):
            stored.row = row
        for execution_id in reversed(created):
            stored = self._executions.pop(execution_id)
            position = bisect.bisect_left(self._by_time, (stored.row[_CREATED_AT], execution_id))
            del self._by_time[position]
            key = stored.row[_IDEMPOTENCY_KEY]
            if key is not None:
                del self._by_key[key]
        return BatchOutcome(failure=JournalError(f"writing the journal failed: {reason}"))


def _apply_update(row: list[Any], event: Event) -> None:
    """Apply a status event to its execution's row, as SQLite's `UPDATE executions` does."""
    status, started_at, finished_at, output, error, _ = execution_update(event)
    row[_STATUS] = status
    if row[_STARTED_AT] is None:
        row[_STARTED_AT] = started_at
    row[_FINISHED_AT] = finished_at
    row[_OUTPUT] = output
    row[_ERROR] = error


class MemoryJournal(Journal):
    """The journal in memory: a pure-Python store with the SQLite store's rules, inline."""

    lag_limit = None

    def __init__(self, *, queue_size: int = 1024, close_timeout: float = 5.0) -> None:
        super().__init__(queue_size=queue_size, close_timeout=close_timeout)
        self._store = MemoryStore()
        self._requests = MemoryRequests(
            has_execution=lambda execution_id: self._store.load_last_seq(execution_id) is not None
        )

    @property
    def path(self) -> None:
        """Always None: a memory journal has no file."""
        return None

    async def _write(self, items: list[Event | CreateRequest]) -> BatchOutcome:
        """Write one batch inline, in one synchronous call (so readers see whole batches).

        No extra checkpoint: the writer has just passed one receiving the batch, and a second
        would cost about as much as writing a small batch.
        """
        return self._store.write_batch(items)

    async def _read(self, query: Callable[[ReadableStore], _Result]) -> _Result:
        """Run a query inline; batches are written inline too, so it sees whole batches only."""
        await trio.lowlevel.checkpoint()
        return query(self._store)

    async def _control(self, call: Callable[[RequestStore], _Result]) -> _Result:
        """Run a control-request call inline, on the journal's list of requests."""
        if self._closed:
            raise JournalError("the journal is closed")
        await trio.lowlevel.checkpoint()
        return call(self._requests)

    async def _close_storage(self) -> None:
        """Drop the stored executions, events and requests."""
        self._store.close()
        self._requests.close()
        await trio.lowlevel.checkpoint()

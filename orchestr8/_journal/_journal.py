"""The durable journal: the source of truth for executions and their events.

`Journal` is the interface every journal offers: recording executions and events (its write side,
group commit and failure state, is `JournalWriter` in `_writer`) and reading them back, as
functions of a `ReadableStore`. `SQLiteJournal` (`_sqlite`) keeps a file and works on threads;
`MemoryJournal` (`_memory`) keeps pure-Python rows that obey the same rules (`_rules`), inline on
the trio thread; `PostgresJournal` (`_postgres`) keeps them in a PostgreSQL database, on threads
like SQLite's. Open any of them with `open_journal` (a path, None for memory, or a URL).

Control requests (`_requests`: cancels and gate answers other processes leave for an execution's
owner) are kept beside the events, each in a transaction of its own: `submit_request`,
`pending_requests`, `requests`, `settle_request`, and `wait_for_request` to hear of one submitted
in this process at once.

`trouble` says in words what keeps the journal from taking work: it failed, or it is stalled (one
batch has been on its way to disk for more than `STALLED_AFTER` seconds, so everything appended
since waits behind it).
"""

from __future__ import annotations

import abc
import os
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, ClassVar, Final, Protocol, TypeVar

import trio

from .._errors import ExecutionNotFoundError, JournalError, unwrap_single_error
from .._json import has_lone_surrogate
from ._event_query import EventQuery
from ._events import Event, ExecutionStatus
from ._page_filter import PageFilter
from ._postgres_schema import import_psycopg, is_postgres_url, refuse_mistyped_url

# Re-exported: the journal's interface hands these out and takes them in.
from ._records import BatchOutcome as BatchOutcome
from ._records import CreateRequest as CreateRequest
from ._records import ExecutionPage as ExecutionPage
from ._records import ExecutionRecord as ExecutionRecord
from ._records import FlushMarker as FlushMarker
from ._records import JournalStatistics as JournalStatistics
from ._records import KeyHeld as KeyHeld
from ._records import StepHasher as StepHasher
from ._records import decode_cursor, encode_cursor
from ._requests import ControlRequest, RequestKind, RequestOutcome, RequestStore
from ._writer import JournalWriter

_Result = TypeVar("_Result")


FILE_QUEUE_SIZE: Final = 1024
"""How many events may wait for a SQLite journal's writer before emitting waits (backpressure)."""

MEMORY_QUEUE_SIZE: Final = 65_536
"""How many events may wait for a memory journal's writer before emitting waits.

The memory journal keeps every event anyway, so its queue bounds only how far the writer lags,
and the writer runs once per trio scheduling pass: a fan-out of 1,000 steps emits 3,000 events in
one pass, and a small queue made every step wait a pass for room (about a fifth of its cost).
"""

STALLED_AFTER: Final = 1.0
"""Seconds (trio clock) one batch may take to reach the disk before the journal is stalled.

A commit takes milliseconds; one second means the disk or a lock holds the writer up. It is well
below SQLite's busy timeout (`BUSY_TIMEOUT`, 5 s), so a write blocked on a lock is reported
stalled for seconds before it fails, long enough for a health probe to see it.
"""


def default_journal_path() -> Path:
    """Return `$ORCHESTR8_JOURNAL` or `./.orchestr8/journal.db`, creating its directory.

    Raises:
        JournalError: the directory cannot be created, or the variable looks like a URL but
            is not a PostgreSQL one.
    """
    configured = os.environ.get("ORCHESTR8_JOURNAL")
    if configured:
        refuse_mistyped_url(configured)
    path = Path(configured).expanduser() if configured else Path.cwd() / ".orchestr8" / "journal.db"
    if str(path) != ":memory:":
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise JournalError(
                f"cannot create the journal directory {path.parent}: {error.strerror or error}"
            ) from None
    return path


@asynccontextmanager
async def open_journal(
    path: str | os.PathLike[str] | None = None,
    *,
    queue_size: int | None = None,
    close_timeout: float = 5.0,
    reconnect_within: float | None = None,
) -> AsyncIterator[Journal]:
    """Open a journal (memory, a SQLite file or a PostgreSQL database) and run its writer.

    None or ":memory:" is memory, a `postgresql://` URL a PostgreSQL database
    (`PostgresJournal`), anything else the path of a SQLite file.

    `queue_size` bounds the events waiting for the writer (None: the store's own default,
    `MEMORY_QUEUE_SIZE` or `FILE_QUEUE_SIZE`). `reconnect_within` is how long a PostgreSQL
    journal's writer retries after losing its connection (None: `RECONNECT_WITHIN`, 30 s).

    Leaving the block flushes every appended event, even while the surrounding scope is being
    cancelled (shielded, for at most `close_timeout` seconds), then closes the storage.

    Raises:
        JournalError: the file cannot be opened or is not a journal, the database cannot be
            reached or used (or psycopg is not installed), or the journal failed.
    """
    if queue_size is not None and queue_size < 1:
        raise ValueError(f"queue_size must be at least 1, got {queue_size}")
    journal: Journal
    # Imported here because both implementations build on this module.
    if path is None or os.fspath(path) == ":memory:":
        from ._memory import MemoryJournal

        journal = MemoryJournal(
            queue_size=queue_size or MEMORY_QUEUE_SIZE, close_timeout=close_timeout
        )
    elif is_postgres_url(path):
        journal = await _open_postgres(
            str(path), queue_size or FILE_QUEUE_SIZE, close_timeout, reconnect_within
        )
    else:
        from ._sqlite import SQLiteJournal

        refuse_mistyped_url(os.fspath(path))
        journal = await SQLiteJournal.open(
            Path(path), queue_size=queue_size or FILE_QUEUE_SIZE, close_timeout=close_timeout
        )
    # The nursery only holds the writer, which never raises: unwrap the body's error from its group.
    async with unwrap_single_error(), trio.open_nursery() as nursery:
        await nursery.start(journal._run_writer)
        try:
            yield journal
        finally:
            await journal._close()
        journal._raise_if_failed()


async def _open_postgres(
    url: str, queue_size: int, close_timeout: float, reconnect_within: float | None
) -> Journal:
    """Open a `PostgresJournal`, saying which package to install when psycopg is missing."""
    import_psycopg()
    from ._postgres import RECONNECT_WITHIN, PostgresJournal

    return await PostgresJournal.open(
        url,
        queue_size=queue_size,
        close_timeout=close_timeout,
        reconnect_within=RECONNECT_WITHIN if reconnect_within is None else reconnect_within,
    )


class ReadableStore(Protocol):
    """The read side both stores offer (SQLite's `Store`, the memory `MemoryStore`).

    `Journal` runs its reads as functions of a `ReadableStore`, so it never depends on how a store
    keeps its rows. Each read returns None for an unknown execution; stored text never holds a
    lone surrogate, so callers answer such ids themselves without asking the store.
    """

    def load_execution(self, execution_id: str) -> ExecutionRecord | None:
        """Return the execution, or None."""
        ...

    def load_by_idempotency_key(self, key: str) -> ExecutionRecord | None:
        """Return the execution created with this idempotency key, or None."""
        ...

    def load_last_seq(self, execution_id: str) -> int | None:
        """Return the highest seq (0 without events), or None for an unknown execution."""
        ...

    def load_forks(self, execution_id: str) -> list[str]:
        """Return the ids of the executions forked from this one, oldest first."""
        ...

    def load_events(self, execution_id: str, after: int, limit: int | None) -> list[Event] | None:
        """Return events with seq > after in seq order, or None for an unknown execution."""
        ...

    def load_matching_events(self, execution_id: str, query: EventQuery) -> list[Event] | None:
        """Return the events `query` asks for, in its order, or None for an unknown execution."""
        ...

    def load_page(
        self, status: str | None, before: tuple[str, str] | None, limit: int, only: PageFilter
    ) -> list[ExecutionRecord]:
        """Return up to `limit` executions ordered by (created_at, execution_id), newest first."""
        ...

    def load_step_hashes(self, execution_id: str) -> dict[str, str] | None:
        """Return the step hashes kept with the execution's document (`{}`: none), or None."""
        ...


class Journal(JournalWriter):
    """The journal interface of `SQLiteJournal`, `MemoryJournal` and `PostgresJournal`."""

    @property
    @abc.abstractmethod
    def path(self) -> Path | None:
        """The SQLite file behind this journal, or None for memory and PostgreSQL."""

    @property
    def location(self) -> str:
        """Where the journal is, for messages and views: its file, ":memory:", or redacted URL."""
        path = self.path
        return ":memory:" if path is None else str(path)

    @property
    def shared(self) -> bool:
        """Whether other processes may use this journal too (a file or a database; not memory).

        A view that finds an unfinished execution its own runtime does not run follows it
        through a shared journal (another process may run it); in memory, nobody else can.
        """
        return self.path is not None

    event_wakeups: ClassVar[bool] = False
    """Whether `wait_for_events` returns as soon as events commit (PostgreSQL's NOTIFY).

    False: it just sleeps, so a follower polls; True: a follower may wait longer between the
    checks it makes anyway (that the execution still runs), since events wake it at once.
    """

    @property
    def wakeup_trouble(self) -> str | None:
        """Why followers are not woken as events commit right now (they poll), or None.

        Always None where followers always poll (SQLite, memory); on PostgreSQL, why its
        LISTEN connection is down while it is being reopened.
        """
        return None

    async def unreachable(self, within: float) -> str | None:
        """Why the journal's database does not answer a trivial query within `within` s, or None.

        For `/health` of a journal on a database server (a process writing nothing meanwhile
        would not notice it is gone). A local journal (SQLite, memory) is always reachable.
        """
        return None

    async def wait_for_events(self, execution_id: str, after: int, within: float) -> None:
        """Return once an event with `seq > after` may be committed, or after `within` seconds.

        A follower reads the journal again then. This journal cannot tell when another process
        commits, so it sleeps `within` (the follower polls); a PostgreSQL journal returns as
        soon as such a batch commits.
        """
        await trio.sleep(within)

    @property
    def database_url(self) -> str | None:
        """The PostgreSQL URL of this journal's database, password included; None otherwise.

        The runtime opens connections of its own with it (the resilience state it shares with
        other processes); never show it: messages and views use the redacted form.
        """
        return None

    async def create_execution(self, record: ExecutionRecord) -> ExecutionRecord:
        """Record a new execution durably, before any of its events, and return it as stored.

        When `record.idempotency_key` is already recorded, nothing is written and the execution
        recorded under that key is returned instead (`create_or_find` says which happened).

        Raises:
            JournalError: an execution with that id exists, or the journal failed or is closed.
        """
        stored, _ = await self.create_or_find(record)
        return stored

    async def create_or_find(
        self,
        record: ExecutionRecord,
        *,
        first_event: Event | None = None,
        step_hashes: StepHasher | None = None,
        queue: bool = False,
    ) -> tuple[ExecutionRecord, bool]:
        """Like `create_execution`, also saying whether this call recorded it (True) or not.

        False means the idempotency key was recorded already, by the returned execution, even
        when that one has the same id (two starts racing with one id and key). `first_event`
        (the execution's seq 1, `execution.started`) is committed in the same transaction as the
        record: no crash can leave the execution recorded without it.

        The workflow document is stored once per content (`workflow_documents`, by its digest):
        an execution of a document stored before refers to that copy. `step_hashes` makes the
        document's step hashes when it is stored for the first time (`Journal.step_hashes`).
        `queue` queues a newly recorded execution for the workers in the same transaction
        (PostgreSQL only).

        Raises:
            ValueError: `first_event` is not seq 1 of this execution.
            JournalError: an execution with that id exists, `first_event` cannot be stored,
                `queue` is asked of a journal that is not PostgreSQL, or the journal failed or
                is closed.
        """
        if first_event is not None and (
            first_event.execution_id != record.execution_id or first_event.seq != 1
        ):
            raise ValueError(
                f"the first event must be seq 1 of execution {record.execution_id!r}, got seq "
                f"{first_event.seq} of {first_event.execution_id!r}"
            )
        request = CreateRequest(
            record, first_event=first_event, step_hashes=step_hashes, queue=queue
        )
        await self._enqueue(request)
        await request.done.wait()
        if request.error is not None:
            raise JournalError(str(request.error)) from request.error
        assert request.result is not None
        return request.result, not request.existed

    async def get_execution(self, execution_id: str) -> ExecutionRecord:
        """Return the recorded execution.

        Raises:
            ExecutionNotFoundError: no execution has that id.
        """
        record = None
        if not has_lone_surrogate(execution_id):  # which no stored id holds
            record = await self._query(lambda storage: storage.load_execution(execution_id))
        if record is None:
            raise ExecutionNotFoundError(f"no execution {execution_id!r} in the journal")
        return record

    async def find_by_idempotency_key(self, key: str) -> ExecutionRecord | None:
        """Return the execution created with this idempotency key, or None."""
        if has_lone_surrogate(key):  # which no stored key holds
            return None
        return await self._query(lambda storage: storage.load_by_idempotency_key(key))

    async def forks_of(self, execution_id: str) -> list[str]:
        """Return the ids of the executions forked from this one (`Runtime.fork`), oldest first."""
        if has_lone_surrogate(execution_id):  # which no stored id holds
            return []
        return await self._query(lambda storage: storage.load_forks(execution_id))

    async def list_executions(
        self,
        *,
        status: ExecutionStatus | str | None = None,
        limit: int = 50,
        before: str | None = None,
        workflow: str | None = None,
        id_prefix: str | None = None,
    ) -> ExecutionPage:
        """Return a page of executions, newest first, optionally only those with `status`.

        Pages are ordered by (`created_at`, `execution_id`) so the cursor stays valid while new
        executions are recorded. `workflow` keeps the executions of the workflow of that exact
        name, `id_prefix` those whose id starts with it (see `PageFilter`).

        Raises:
            ValueError: `limit` is below 1, `before` is not a cursor from a previous page, or
                `id_prefix` is not 1 to 32 lowercase hex characters.
        """
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        position = None if before is None else decode_cursor(before)
        wanted = None if status is None else str(ExecutionStatus(status))
        only = PageFilter(workflow=workflow, id_prefix=id_prefix)
        if only.nothing_matches():
            return ExecutionPage(items=(), next_cursor=None)
        rows = await self._query(
            lambda storage: storage.load_page(wanted, position, limit + 1, only)
        )
        items = tuple(rows[:limit])
        more = len(rows) > limit
        cursor = encode_cursor(items[-1].created_at, items[-1].execution_id) if more else None
        return ExecutionPage(items=items, next_cursor=cursor)

    async def events(
        self, execution_id: str, *, after: int = 0, limit: int | None = None
    ) -> list[Event]:
        """Return the execution's events with `seq > after`, in seq order, at most `limit` of them.

        Raises:
            ExecutionNotFoundError: no execution has that id.
        """
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        found = None
        if not has_lone_surrogate(execution_id):
            found = await self._query(
                lambda storage: storage.load_events(execution_id, after, limit)
            )
        if found is None:
            raise ExecutionNotFoundError(f"no execution {execution_id!r} in the journal")
        return found

    async def matching_events(self, execution_id: str, query: EventQuery) -> list[Event]:
        """Return the execution's events that `query` asks for (types, step, seq window, order).

        Raises:
            ExecutionNotFoundError: no execution has that id.
        """
        found = None
        if not has_lone_surrogate(execution_id):
            found = await self._query(
                lambda storage: storage.load_matching_events(execution_id, query)
            )
        if found is None:
            raise ExecutionNotFoundError(f"no execution {execution_id!r} in the journal")
        return found

    async def step_hashes(self, execution_id: str) -> dict[str, str] | None:
        """Return the step hashes kept with the execution's workflow document, by step id.

        None when none were kept: the execution was recorded before journal schema 3, or by a
        caller that gave no `step_hashes` (then hash `get_execution(...).workflow` instead).

        Raises:
            ExecutionNotFoundError: no execution has that id.
        """
        found = None
        if not has_lone_surrogate(execution_id):
            found = await self._query(lambda storage: storage.load_step_hashes(execution_id))
        if found is None:
            raise ExecutionNotFoundError(f"no execution {execution_id!r} in the journal")
        return found or None

    async def last_seq(self, execution_id: str) -> int:
        """Return the highest committed seq of the execution (0 when it has no events yet).

        Raises:
            ExecutionNotFoundError: no execution has that id.
        """
        seq = None
        if not has_lone_surrogate(execution_id):
            seq = await self._query(lambda storage: storage.load_last_seq(execution_id))
        if seq is None:
            raise ExecutionNotFoundError(f"no execution {execution_id!r} in the journal")
        return seq

    def trouble(self, *, stalled_after: float = STALLED_AFTER) -> str | None:
        """Say what keeps the journal from taking work (failed, stalled or closed), or None."""
        if self._failure is not None:
            return f"the journal failed: {self._failure}"
        if self._closed:
            return "the journal is closed"
        since = self._writing_since
        if since is not None and trio.current_time() - since > stalled_after:
            return (
                f"the journal is stalled: a batch has been writing for "
                f"{trio.current_time() - since:.1f} s"
            )
        return None

    async def submit_request(
        self,
        execution_id: str,
        kind: RequestKind | str,
        body: dict[str, Any],
        *,
        target: str | None = None,
    ) -> ControlRequest:
        """Record a control request for the execution's owner, durably, and return it as stored.

        Raises:
            ExecutionNotFoundError: no execution has that id.
            GateAlreadyAnsweredError: `kind` is an answer and the gate `target` has one already
                (`existing` is that one).
            ValueError: `body` is not a JSON object, or an answer has no `target`.
            JournalError: the journal cannot be written or is closed.
        """
        kind = RequestKind(kind)
        if kind is RequestKind.ANSWER and not target:
            raise ValueError("an answer needs the gate id as its target")
        if not isinstance(body, dict):
            raise ValueError(f"a request body must be a JSON object, not {type(body).__name__}")
        if has_lone_surrogate(execution_id):
            raise ExecutionNotFoundError(f"no execution {execution_id!r} in the journal")
        request = await self._control(lambda store: store.submit(execution_id, kind, body, target))
        signal = self._request_signal()
        self._request_submitted = trio.Event()
        signal.set()
        return request

    async def pending_requests(
        self, execution_ids: Iterable[str], *, after: int = 0
    ) -> list[ControlRequest]:
        """The requests of these executions nobody settled yet with id > `after`, in id order."""
        wanted = [
            execution_id for execution_id in execution_ids if not has_lone_surrogate(execution_id)
        ]
        if not wanted:
            await trio.lowlevel.checkpoint()
            return []
        return await self._control(lambda store: store.pending(wanted, after))

    async def requests(self, execution_id: str) -> list[ControlRequest]:
        """Every control request of the execution, settled or not, in id order."""
        if has_lone_surrogate(execution_id):
            await trio.lowlevel.checkpoint()
            return []
        return await self._control(lambda store: store.of_execution(execution_id))

    async def settle_request(
        self, request_id: int, outcome: RequestOutcome | str, detail: str | None = None
    ) -> None:
        """Mark a pending request applied or refused (with why); a settled one stays as it was."""
        settled = RequestOutcome(outcome)
        await self._control(lambda store: store.settle(request_id, settled, detail))

    async def wait_for_request(self, within: float) -> None:
        """Return once a request is submitted through this journal object, or after `within` s."""
        with trio.move_on_after(within):
            await self._request_signal().wait()

    def _request_signal(self) -> trio.Event:
        """The event the next `submit_request` of this journal object sets."""
        signal: trio.Event | None = getattr(self, "_request_submitted", None)
        if signal is None:
            signal = self._request_submitted = trio.Event()
        return signal

    @abc.abstractmethod
    async def _control(self, call: Callable[[RequestStore], _Result]) -> _Result:
        """Run a short call against the store's control requests (its own transaction)."""

    @abc.abstractmethod
    async def _read(self, query: Callable[[ReadableStore], _Result]) -> _Result:
        """Run a read-only query against committed state."""

    async def _query(self, query: Callable[[ReadableStore], _Result]) -> _Result:
        """Run a read-only query, refusing once the journal is closed."""
        if self._closed:
            raise JournalError("the journal is closed")
        try:
            return await self._read(query)
        except self.storage_errors as error:
            raise JournalError(f"reading the journal failed: {error}") from error

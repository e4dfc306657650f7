"""The durable journal: the source of truth for executions and their events.

Appends go through a bounded trio memory channel to one writer task, which drains everything queued
and commits it as one batch (group commit), so events become durable strictly in append order.
`SQLiteJournal` (`_journal_sqlite`) keeps a file and works on threads; `MemoryJournal`
(`_journal_memory`) keeps pure-Python rows that obey the same rules (`_journal_rules`), inline on
the trio thread. Open either with `open_journal`.

An event the journal refuses (its `seq` is not the next one of its execution, its execution does not
exist, its data is not JSON) or a failed write puts the journal in a failed state: that event and
everything appended after it is not written, and `append`, `flush` and closing raise `JournalError`.
Readers keep working, so what was written stays inspectable. Every execution watching the journal
(`on_failure`) stops at once. `reopen` leaves the failed state once the storage can write again
(a long-running service retries it with back-off: `_journal_recovery`); the executions the failure
stopped stay stopped, and resumable.

`trouble` says in words what keeps the journal from taking work: it failed, or it is stalled (one
batch has been on its way to disk for more than `STALLED_AFTER` seconds, so everything appended
since waits behind it).
"""

from __future__ import annotations

import abc
import heapq
import itertools
import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import ClassVar, Final, Protocol, TypeVar

import trio

from .._errors import ExecutionNotFoundError, JournalError, unwrap_single_error
from .._json import has_lone_surrogate
from ._events import Event, ExecutionStatus

# Re-exported: the journal's interface hands these out and takes them in.
from ._records import BatchOutcome as BatchOutcome
from ._records import CreateRequest as CreateRequest
from ._records import ExecutionPage as ExecutionPage
from ._records import ExecutionRecord as ExecutionRecord
from ._records import FlushMarker as FlushMarker
from ._records import JournalStatistics as JournalStatistics
from ._records import KeyHeld as KeyHeld
from ._records import (
    WorkItem,
    decode_cursor,
    encode_cursor,
)

_Result = TypeVar("_Result")

_logger = logging.getLogger("orchestr8.journal")

UNWRITTEN_LIMIT: Final = 32
"""How many appended events may still be on their way to disk when an agent is called.

Steps wait (`caught_up`) while more are: a failing disk can then leave at most this many events'
worth of side effects unrecorded, instead of everything that ran while the journal fell behind.
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
        JournalError: the directory cannot be created.
    """
    configured = os.environ.get("ORCHESTR8_JOURNAL")
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
    queue_size: int = 1024,
    close_timeout: float = 5.0,
) -> AsyncIterator[Journal]:
    """Open a journal (None or ":memory:" for memory, else a SQLite file) and run its writer.

    Leaving the block flushes every appended event, even while the surrounding scope is being
    cancelled (shielded, for at most `close_timeout` seconds), then closes the storage.

    Raises:
        JournalError: the file cannot be opened or is not a journal, or the journal failed.
    """
    if queue_size < 1:
        raise ValueError(f"queue_size must be at least 1, got {queue_size}")
    journal: Journal
    # Imported here because both implementations build on this module.
    if path is None or os.fspath(path) == ":memory:":
        from ._memory import MemoryJournal

        journal = MemoryJournal(queue_size=queue_size, close_timeout=close_timeout)
    else:
        from ._sqlite import SQLiteJournal

        journal = await SQLiteJournal.open(
            Path(path), queue_size=queue_size, close_timeout=close_timeout
        )
    # The nursery only holds the writer, which never raises: unwrap the body's error from its group.
    async with unwrap_single_error(), trio.open_nursery() as nursery:
        await nursery.start(journal._run_writer)
        try:
            yield journal
        finally:
            await journal._close()
        journal._raise_if_failed()


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

    def load_events(self, execution_id: str, after: int, limit: int | None) -> list[Event] | None:
        """Return events with seq > after in seq order, or None for an unknown execution."""
        ...

    def load_page(
        self, status: str | None, before: tuple[str, str] | None, limit: int
    ) -> list[ExecutionRecord]:
        """Return up to `limit` executions ordered by (created_at, execution_id), newest first."""
        ...


class Journal(abc.ABC):
    """The journal interface shared by `SQLiteJournal` and `MemoryJournal`; see the module doc."""

    storage_errors: ClassVar[tuple[type[Exception], ...]] = ()
    """The errors the store raises when its storage fails (SQLite's `sqlite3.Error`): a read
    failing with one is a `JournalError`, and `reopen` reports one as storage that cannot write."""

    def __init__(self, *, queue_size: int, close_timeout: float) -> None:
        self._send, self._receive = trio.open_memory_channel[WorkItem](queue_size)
        self._queue_size = queue_size
        self._close_timeout = close_timeout
        self._failure: JournalError | None = None
        self._failure_callbacks: dict[int, Callable[[JournalError], None]] = {}
        self._callback_keys = itertools.count()
        self._closed = False
        self._events_written = 0
        self._batches_committed = 0
        self._writer_scope: trio.CancelScope | None = None
        self._writer_done = trio.Event()
        self._events_in_flight = 0
        self._writing_since: float | None = None
        self._reopened = trio.Event()
        self._reopening = trio.Lock()
        self._appended = 0
        self._settled = 0
        self._catching_up: list[tuple[int, int, trio.Event]] = []
        self._ticket_numbers = itertools.count()

    @property
    @abc.abstractmethod
    def path(self) -> Path | None:
        """The SQLite file behind this journal, or None for memory."""

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
        self, record: ExecutionRecord, *, first_event: Event | None = None
    ) -> tuple[ExecutionRecord, bool]:
        """Like `create_execution`, also saying whether this call recorded it (True) or not.

        False means the idempotency key was recorded already, by the returned execution, even
        when that one has the same id (two starts racing with one id and key). `first_event`
        (the execution's seq 1, `execution.started`) is committed in the same transaction as the
        record: no crash can leave the execution recorded without it.

        Raises:
            ValueError: `first_event` is not seq 1 of this execution.
            JournalError: an execution with that id exists, `first_event` cannot be stored, or
                the journal failed or is closed.
        """
        if first_event is not None and (
            first_event.execution_id != record.execution_id or first_event.seq != 1
        ):
            raise ValueError(
                f"the first event must be seq 1 of execution {record.execution_id!r}, got seq "
                f"{first_event.seq} of {first_event.execution_id!r}"
            )
        request = CreateRequest(record, first_event=first_event)
        await self._enqueue(request)
        await request.done.wait()
        if request.error is not None:
            raise JournalError(str(request.error)) from request.error
        assert request.result is not None
        return request.result, not request.existed

    async def append(self, event: Event) -> None:
        """Queue an event for writing, waiting while the queue is full (backpressure, never loss).

        Raises:
            JournalError: the journal failed or is closed.
        """
        self._appended += 1
        try:
            await self._enqueue(event)
        except BaseException:
            # Never queued, so never on its way to disk: settled, as a dropped event is.
            self._settled += 1
            self._wake_catching_up()
            raise

    def append_nowait(self, event: Event) -> None:
        """Queue an event for writing without waiting, for synchronous callers.

        Raises:
            trio.WouldBlock: the queue is full.
            JournalError: the journal failed or is closed.
        """
        self._raise_if_unusable()
        try:
            self._send.send_nowait(event)
        except trio.ClosedResourceError:
            raise JournalError("the journal is closed") from None
        self._appended += 1

    @property
    def unwritten(self) -> int:
        """How many appended events are not yet committed (queued, or in the batch in flight)."""
        return self._appended - self._settled

    async def caught_up(self, limit: int = UNWRITTEN_LIMIT) -> None:
        """Return once at most `limit` of the events appended before this call are uncommitted.

        Also returns once the journal failed or closed. Steps call it before their agent runs
        (when `unwritten` is above the limit), so what runs is never far ahead of what the journal
        holds. Events appended after the call do not hold the caller back: each caller waits
        for its own ticket (the events settled must reach the events appended before it, less
        `limit`) and the commit that reaches it wakes that caller alone, once. So N steps waiting
        behind a lagging journal cost O(N) wake-ups, not O(N) per committed batch.
        """
        ticket = self._appended - limit
        if self._settled >= ticket or self._failure is not None or self._closed:
            return
        reached = trio.Event()
        heapq.heappush(self._catching_up, (ticket, next(self._ticket_numbers), reached))
        # A cancelled caller leaves its ticket queued; the commit that reaches it sets a dead event.
        await reached.wait()

    async def flush(self) -> None:
        """Return once everything appended before this call is committed.

        Raises:
            JournalError: the journal failed (some of it was not written) or is closed.
        """
        marker = FlushMarker()
        await self._enqueue(marker)
        await marker.done.wait()
        self._raise_if_failed()

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

    async def list_executions(
        self,
        *,
        status: ExecutionStatus | str | None = None,
        limit: int = 50,
        before: str | None = None,
    ) -> ExecutionPage:
        """Return a page of executions, newest first, optionally only those with `status`.

        Pages are ordered by (`created_at`, `execution_id`) so the cursor stays valid while new
        executions are recorded.

        Raises:
            ValueError: `limit` is below 1 or `before` is not a cursor from a previous page.
        """
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        position = None if before is None else decode_cursor(before)
        wanted = None if status is None else str(ExecutionStatus(status))
        rows = await self._query(lambda storage: storage.load_page(wanted, position, limit + 1))
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

    def statistics(self) -> JournalStatistics:
        """Return the journal's counters: events written, batches committed, queue use, failure."""
        since = self._writing_since
        return JournalStatistics(
            events_written=self._events_written,
            batches_committed=self._batches_committed,
            items_queued=self._send.statistics().current_buffer_used,
            queue_size=self._queue_size,
            failed=self._failure is not None,
            failure=None if self._failure is None else str(self._failure),
            writing_for=0.0 if since is None else trio.current_time() - since,
        )

    @property
    def closed(self) -> bool:
        """Whether the journal was closed: it takes no more work, and cannot be reopened."""
        return self._closed

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

    async def reopen(self) -> None:
        """Leave the failed state on fresh storage that can write; nothing if it has not failed.

        Whatever was queued before the failure is dropped first, as it always is; what was
        committed stays. Executions the failure stopped stay stopped (and resumable): only
        executions started or resumed from now on write again.

        Raises:
            JournalError: the journal is closed, or its storage still cannot write (the journal
                stays failed, with its first failure).
        """
        async with self._reopening:
            await self._reopen_once()

    async def _reopen_once(self) -> None:
        """The body of `reopen`, one caller at a time (two must not both swap the storage)."""
        if self._closed:
            raise JournalError("the journal is closed")
        if self._failure is None:
            return
        # Every item queued before the failure (or by a sender blocked on a full queue then) is
        # dropped by the writer before storage is swapped: wait until the queue is clear.
        while True:
            marker = FlushMarker()
            try:
                await self._send.send(marker)
            except trio.ClosedResourceError:
                raise JournalError("the journal is closed") from None
            await marker.done.wait()
            if self._queue_is_clear():
                break
        unwritable: tuple[type[Exception], ...] = (*self.storage_errors, OSError)
        try:
            await self._reopen_storage()
        except unwritable as error:
            raise JournalError(f"the journal still cannot write: {error}") from error
        except JournalError as error:
            raise JournalError(f"the journal still cannot write: {error}") from error
        if not self._queue_is_clear():
            raise JournalError("the journal is still dropping events from before its failure")
        _logger.warning("the journal works again after its failure: %s", self._failure)
        self._failure = None
        self._reopened.set()

    async def working(self) -> None:
        """Return once the journal takes work: at once unless it failed, else once reopened."""
        if self._failure is None:
            await trio.lowlevel.checkpoint()
            return
        await self._reopened.wait()

    def _queue_is_clear(self) -> bool:
        """Whether nothing waits in, or to get into, the writer's queue."""
        statistics = self._send.statistics()
        return statistics.current_buffer_used == 0 and statistics.tasks_waiting_send == 0

    @abc.abstractmethod
    async def _write(self, items: list[Event | CreateRequest]) -> BatchOutcome:
        """Write one batch in one transaction (the writer task calls this, one batch at a time)."""

    @abc.abstractmethod
    async def _read(self, query: Callable[[ReadableStore], _Result]) -> _Result:
        """Run a read-only query against committed state."""

    @abc.abstractmethod
    async def _close_storage(self) -> None:
        """Release the storage once the writer has finished."""

    async def _reopen_storage(self) -> None:
        """Replace the storage with a fresh one that has shown it can write (for `reopen`).

        The base keeps the storage: a store whose batches are all-or-nothing is consistent after
        a refused batch. File stores override it.
        """
        await trio.lowlevel.checkpoint()

    async def _query(self, query: Callable[[ReadableStore], _Result]) -> _Result:
        """Run a read-only query, refusing once the journal is closed."""
        if self._closed:
            raise JournalError("the journal is closed")
        try:
            return await self._read(query)
        except self.storage_errors as error:
            raise JournalError(f"reading the journal failed: {error}") from error

    async def _enqueue(self, item: WorkItem) -> None:
        """Put one item on the writer's queue, translating a closed queue to `JournalError`."""
        self._raise_if_unusable()
        try:
            await self._send.send(item)
        except trio.ClosedResourceError:
            raise JournalError("the journal is closed") from None

    def on_failure(self, callback: Callable[[JournalError], None]) -> Callable[[], None]:
        """Have `callback(error)` called once when the journal fails; returns its remover.

        Called at once if the journal has failed already. Executions use it to stop the moment
        nothing more they do can be recorded, instead of at their next event.
        """
        if self._failure is not None:
            callback(self._failure_error())
            return lambda: None
        key = next(self._callback_keys)
        self._failure_callbacks[key] = callback

        def remove() -> None:
            self._failure_callbacks.pop(key, None)

        return remove

    def _fail(self, failure: JournalError) -> None:
        """Enter the failed state (the first failure sticks) and tell whoever asked to know."""
        if self._failure is not None:
            return
        self._failure = failure
        self._reopened = trio.Event()
        self._release_catching_up()
        callbacks, self._failure_callbacks = self._failure_callbacks, {}
        error = self._failure_error()
        for callback in callbacks.values():
            try:
                callback(error)
            except Exception:
                # The writer must go on (and the other watchers hear of it): log, never raise.
                _logger.exception("a journal on_failure callback raised")

    def _failure_error(self) -> JournalError:
        """A fresh `JournalError` chained to the failure, as every refused call raises."""
        assert self._failure is not None
        error = JournalError(f"the journal failed: {self._failure}")
        error.__cause__ = self._failure
        return error

    def _raise_if_unusable(self) -> None:
        """Refuse new work once the journal is closed or has failed."""
        if self._closed:
            raise JournalError("the journal is closed")
        self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        """Raise a fresh `JournalError` chained to the failure, if the journal has failed."""
        if self._failure is not None:
            raise self._failure_error()

    async def _run_writer(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Write queued items in batches until the queue is closed and drained.

        Shielded, so cancelling the surrounding scope does not lose queued events; closing sets a
        deadline on this scope so a stuck write cannot hold the caller forever.
        """
        with trio.CancelScope(shield=True) as scope:
            self._writer_scope = scope
            task_status.started()
            try:
                async for item in self._receive:
                    batch = [item]
                    while True:
                        try:
                            batch.append(self._receive.receive_nowait())
                        except (trio.WouldBlock, trio.EndOfChannel):
                            break
                    await self._write_batch(batch)
            finally:
                self._writer_done.set()

    async def _write_batch(self, batch: list[WorkItem]) -> None:
        """Commit one drained batch, then wake the callers waiting on its requests and markers."""
        try:
            work = [item for item in batch if isinstance(item, (Event, CreateRequest))]
            if work and self._failure is None:
                self._events_in_flight = sum(isinstance(item, Event) for item in work)
                self._writing_since = trio.current_time()
                try:
                    outcome = await self._write(work)
                except Exception as error:
                    # A store that raises instead of reporting would kill the writer, and every
                    # later flush would wait for it forever: the journal fails instead.
                    failure = JournalError(
                        f"writing the journal failed: {type(error).__name__}: {error}"
                    )
                    failure.__cause__ = error
                    outcome = BatchOutcome(failure=failure)
                self._writing_since = None
                self._events_in_flight = 0
                self._events_written += outcome.events_written
                self._batches_committed += outcome.committed
                for request, result in outcome.created:
                    if isinstance(result, JournalError):
                        request.error = result
                    elif isinstance(result, KeyHeld):
                        request.result, request.existed = result.record, True
                    else:
                        request.result = result
                if outcome.failure is not None:
                    self._fail(outcome.failure)
        finally:
            self._settle(batch)

    def _settle(self, items: list[WorkItem]) -> None:
        """Wake everyone waiting on these items; requests left without a result get an error."""
        settled = 0
        for item in items:
            if isinstance(item, Event):
                settled += 1
            elif isinstance(item, CreateRequest):
                if item.result is None and item.error is None:
                    item.error = self._failure or JournalError(
                        "the journal closed before the execution was recorded"
                    )
                item.done.set()
            elif isinstance(item, FlushMarker):
                item.done.set()
        self._settled += settled
        self._wake_catching_up()

    def _wake_catching_up(self) -> None:
        """Wake exactly the `caught_up` callers whose ticket the settled events now reach."""
        waiting = self._catching_up
        settled = self._settled
        while waiting and waiting[0][0] <= settled:
            heapq.heappop(waiting)[2].set()

    def _release_catching_up(self) -> None:
        """Wake every `caught_up` caller: the journal failed or closed, so none waits on it."""
        waiting, self._catching_up = self._catching_up, []
        for _, _, reached in waiting:
            reached.set()

    async def _close(self) -> None:
        """Stop taking appends, let the writer finish (shielded, bounded), then close storage."""
        self._closed = True
        self._send.close()
        with trio.CancelScope(shield=True):
            if self._writer_scope is not None:
                self._writer_scope.deadline = trio.current_time() + self._close_timeout
                await self._writer_done.wait()
            left = []
            while True:
                try:
                    left.append(self._receive.receive_nowait())
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
            unwritten = self._events_in_flight + sum(isinstance(item, Event) for item in left)
            if self._writer_scope is not None and self._writer_scope.cancelled_caught:
                self._fail(
                    JournalError(
                        f"closing the journal took longer than {self._close_timeout} s; "
                        f"{unwritten} events were not written"
                    )
                )
            self._settle(left)
            self._release_catching_up()
            self._receive.close()
            await self._close_storage()

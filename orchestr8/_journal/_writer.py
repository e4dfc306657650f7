"""The journal's write side: one writer task, group commit, the lag cap, failure and reopening.

Appends go through a bounded trio memory channel to one writer task, which drains everything queued
and commits it as one batch (group commit), so events become durable strictly in append order.
`JournalWriter` is the base of `Journal` (`_journal`), which adds the read side and the interface;
each store (`_sqlite`, `_memory`) supplies how one batch is written.

An event the journal refuses (its `seq` is not the next one of its execution, its execution does not
exist, its data is not JSON) or a failed write puts the journal in a failed state: that event and
everything appended after it is not written, and `append`, `flush` and closing raise `JournalError`.
Readers keep working, so what was written stays inspectable. Every execution watching the journal
(`on_failure`) stops at once. `reopen` leaves the failed state once the storage can write again
(a long-running service retries it with back-off: `_recovery`); the executions the failure
stopped stay stopped, and resumable.

The lag cap: steps wait (`caught_up`) before their agent while more than `UNWRITTEN_LIMIT` events
are on their way to disk. The journal counts events appended and settled (committed or dropped),
both monotonic totals; each waiter holds a ticket (the events appended before it, less the limit)
in a heap, and the batch whose settled total reaches a ticket wakes that waiter alone, once.
"""

from __future__ import annotations

import abc
import heapq
import itertools
import logging
from collections.abc import Callable
from typing import ClassVar, Final

import trio

from .._errors import JournalError
from ._events import Event
from ._records import BatchOutcome, CreateRequest, FlushMarker, JournalStatistics, KeyHeld, WorkItem

_logger = logging.getLogger("orchestr8.journal")

UNWRITTEN_LIMIT: Final = 256
"""How many appended events may still be on their way to disk when an agent is called.

Steps wait (`caught_up`) while more are: a failing disk can then leave at most this many events'
worth of side effects unrecorded, instead of everything that ran while the journal fell behind.
"""


class JournalWriter(abc.ABC):
    """The write side every journal shares: queue, writer task, group commit, failure state."""

    lag_limit: ClassVar[int | None] = UNWRITTEN_LIMIT
    """How many events may be unwritten when an agent is called (`caught_up`); None: no cap.

    A journal with nothing durable to lose (the memory journal) has no cap: making steps wait for
    it would cost a scheduling round per step and bound nothing.
    """

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
        if self._closed or self._failure is not None:
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
    async def _close_storage(self) -> None:
        """Release the storage once the writer has finished."""

    async def _reopen_storage(self) -> None:
        """Replace the storage with a fresh one that has shown it can write (for `reopen`).

        The base keeps the storage: a store whose batches are all-or-nothing is consistent after
        a refused batch. File stores override it.
        """
        await trio.lowlevel.checkpoint()

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

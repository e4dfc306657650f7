"""`PostgresJournal`: the journal in a PostgreSQL database, with the SQLite journal's contract.

Three connections, each on worker threads under a `trio.CapacityLimiter(1)` of its own (never
trio's default limiter, which sync agents share): the writer (one transaction per batch, group
commit), the reader (autocommit queries: each sees committed batches only) and the control
connection (control requests, each its own transaction). The store's SQL and batch rules are in
`_postgres_store`, the requests' in `_postgres_requests`, the schema and URL in
`_postgres_schema`.

A lost connection does not fail the journal at once. The writer retries the same batch on a
fresh connection with exponential backoff (`FIRST_RETRY_DELAY` doubling to `LONGEST_RETRY_DELAY`)
for at most `reconnect_within` seconds (`RECONNECT_WITHIN` unless the opener says otherwise);
`trouble` reports the journal stalled meanwhile and appends wait behind the batch (backpressure,
never loss). A batch is retried only when it certainly did not commit: when the connection broke
after COMMIT was sent, the fresh connection first reads whether the batch's first event (or
created execution) is there, and a batch that committed is not written again. Past the bound the
journal fails exactly as a failed SQLite write fails it; `reopen` recovers once the database is
back. Readers reconnect on their own at their next query.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Final, TypeVar

import psycopg
import trio

from .._errors import JournalError
from ._events import Event
from ._journal import STALLED_AFTER, BatchOutcome, CreateRequest, ReadableStore
from ._postgres_notifications import ListeningJournal, notify_in_transaction
from ._postgres_requests import PostgresRequests
from ._postgres_schema import explain, redact_url
from ._postgres_store import BatchHook, ConnectionLost, PostgresStore
from ._requests import RequestStore

__all__ = [
    "FIRST_RETRY_DELAY",
    "LONGEST_RETRY_DELAY",
    "RECONNECT_WITHIN",
    "PostgresJournal",
]

_Result = TypeVar("_Result")

RECONNECT_WITHIN: Final = 30.0
"""Seconds (trio clock) the writer keeps retrying a batch after losing its connection.

Long enough to ride out a database restart or a failover of its host (seconds), short enough
that an execution whose journal is gone stops within half a minute, as a failed SQLite write
stops it at once.
"""

FIRST_RETRY_DELAY: Final = 0.1
"""Seconds before the writer's first reconnection attempt; each later wait doubles."""

LONGEST_RETRY_DELAY: Final = 2.0
"""The longest wait between two reconnection attempts."""


class PostgresJournal(ListeningJournal):
    """The journal in a PostgreSQL database: a writer, a reader and a control connection."""

    storage_errors = (psycopg.Error,)

    def __init__(
        self,
        store: PostgresStore,
        *,
        queue_size: int,
        close_timeout: float,
        reconnect_within: float = RECONNECT_WITHIN,
    ) -> None:
        super().__init__(queue_size=queue_size, close_timeout=close_timeout)
        self._store = store
        self._url = store.url
        self._reconnect_within = reconnect_within
        self._write_limiter = trio.CapacityLimiter(1)
        self._read_limiter = trio.CapacityLimiter(1)
        self._control_limiter = trio.CapacityLimiter(1)
        self._requests: PostgresRequests | None = None
        self._lost: str | None = None
        """Why the writer is reconnecting (None: it is not)."""
        self._append_guard: Callable[[str], JournalError | None] | None = None
        self._store_closed = False
        # Followers (in any process) are woken by one NOTIFY per committed batch (`open`).
        self._listen_to(store.url)

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        queue_size: int,
        close_timeout: float,
        reconnect_within: float = RECONNECT_WITHIN,
    ) -> PostgresJournal:
        """Connect on a worker thread (creating the schema in an empty database).

        Raises:
            JournalError: the URL is malformed, the database cannot be reached or used, or its
                schema is older (run `orchestr8 journal migrate`) or newer than this code's.
            ValueError: `reconnect_within` is negative.
        """
        if reconnect_within < 0:
            raise ValueError(f"reconnect_within must not be negative, got {reconnect_within}")
        store = await trio.to_thread.run_sync(
            PostgresStore.open, url, limiter=trio.CapacityLimiter(1)
        )
        store.add_batch_hook(notify_in_transaction)
        return cls(
            store,
            queue_size=queue_size,
            close_timeout=close_timeout,
            reconnect_within=reconnect_within,
        )

    @property
    def path(self) -> Path | None:
        """Always None: a PostgreSQL journal has no file."""
        return None

    @property
    def location(self) -> str:
        """The database's URL, its password replaced by `***`."""
        return redact_url(self._url)

    @property
    def url(self) -> str:
        """The database's URL as given (with its password: never print it; see `location`)."""
        return self._url

    @property
    def database_url(self) -> str:
        """The database's URL as given: the runtime shares resilience state through it."""
        return self._url

    def add_batch_hook(self, hook: BatchHook) -> None:
        """Run `hook` first in every batch's transaction (fencing, wake-ups)."""
        self._store.add_batch_hook(hook)

    def set_append_guard(self, guard: Callable[[str], JournalError | None] | None) -> None:
        """Check every appended event's execution id with `guard` before it is queued.

        A refusal fails the journal at once, before the event is queued: the lease side
        (`_execution/_claims`) refuses events of a lease that lapsed by this process's clock
        (it froze, or could not renew), so no step starts after its result could be refused.
        """
        self._append_guard = guard

    def append_nowait(self, event: Event) -> None:
        """Queue an event without waiting, once the append guard lets it (see `JournalWriter`)."""
        if self._append_guard is not None:
            self._guard(event)
        super().append_nowait(event)

    async def append(self, event: Event) -> None:
        """Queue an event, once the append guard lets it (see `JournalWriter`)."""
        if self._append_guard is not None:
            self._guard(event)
        await super().append(event)

    def _guard(self, event: Event) -> None:
        """Fail the journal (and raise) if the append guard refuses the event."""
        assert self._append_guard is not None
        refusal = self._append_guard(event.execution_id)
        if refusal is not None:
            self._fail(refusal)
            self._raise_if_failed()

    async def _write(self, items: list[Event | CreateRequest]) -> BatchOutcome:
        """Write one batch on the writer's thread; ride out a lost connection for a bounded time."""
        deadline = trio.current_time() + self._reconnect_within
        delay = FIRST_RETRY_DELAY
        while True:
            try:
                return await trio.to_thread.run_sync(
                    self._store.write_batch, items, limiter=self._write_limiter
                )
            except ConnectionLost as lost:
                self._lost = str(lost)
                try:
                    outcome = await self._recover(lost, deadline, delay)
                finally:
                    self._lost = None
            if outcome is not None:
                return outcome
            delay = min(delay * 2, LONGEST_RETRY_DELAY)

    def trouble(self, *, stalled_after: float = STALLED_AFTER) -> str | None:
        """Say what keeps the journal from taking work; a stall names the lost connection."""
        trouble = super().trouble(stalled_after=stalled_after)
        lost = self._lost
        if trouble is None or lost is None or self._failure is not None:
            return trouble
        return f"{trouble} ({lost}; reconnecting to {self.location})"

    async def _recover(
        self, lost: ConnectionLost, deadline: float, delay: float
    ) -> BatchOutcome | None:
        """Reconnect the writer after `lost`; return the batch's outcome, or None to write it again.

        Waits `delay` before each attempt and gives up at `deadline`: the outcome is then the
        journal's failure.
        """
        reason: BaseException = lost
        while True:
            if trio.current_time() + delay > deadline:
                failure = JournalError(
                    f"writing the journal failed: {lost}; the journal database "
                    f"{self.location} did not come back within {self._reconnect_within:g} s "
                    f"({reason})"
                )
                failure.__cause__ = lost.__cause__
                return BatchOutcome(failure=failure)
            await trio.sleep(delay)
            delay = min(delay * 2, LONGEST_RETRY_DELAY)
            try:
                await trio.to_thread.run_sync(
                    self._store.replace_writer, limiter=self._write_limiter
                )
                if not lost.commit_unknown:
                    return None
                if lost.marker is not None and not await trio.to_thread.run_sync(
                    self._store.committed, lost.marker, limiter=self._write_limiter
                ):
                    return None
            except (JournalError, psycopg.Error) as error:
                reason = error
                continue
            # COMMIT reached the server before the connection broke: the batch is written.
            self._store.finish_batch(lost.seqs, lost.finished)
            outcome = lost.outcome
            outcome.events_written = lost.written
            outcome.committed = 1
            return outcome

    async def _read(self, query: Callable[[ReadableStore], _Result]) -> _Result:
        """Run a query on the reader's thread, one at a time (reconnecting once if it was lost)."""

        def run() -> _Result:
            if self._store_closed:
                raise JournalError("the journal is closed")
            result: _Result = self._store.read(query)
            return result

        return await trio.to_thread.run_sync(run, limiter=self._read_limiter)

    async def unreachable(self, within: float) -> str | None:
        """Why `SELECT 1` on the reader fails or takes over `within` s, or None (see `Journal`).

        The reason never holds the URL's password (`explain` redacts it).
        """

        def ping() -> None:
            if self._store_closed:
                raise JournalError("the journal is closed")
            self._store.read(lambda store: store.ping())

        with trio.move_on_after(within):
            try:
                await trio.to_thread.run_sync(
                    ping, limiter=self._read_limiter, abandon_on_cancel=True
                )
            except JournalError as error:
                return str(error)
            except psycopg.Error as error:
                return explain(self._url, error)
            return None
        return f"the journal database {self.location} did not answer within {within:g} s"

    async def _control(self, call: Callable[[RequestStore], _Result]) -> _Result:
        """Run a control-request call on its own connection and thread, one at a time."""

        def run() -> _Result:
            if self._store_closed:
                raise JournalError("the journal is closed")
            if self._requests is None:
                self._requests = PostgresRequests(self._url)
            return call(self._requests)

        if self._closed:
            raise JournalError("the journal is closed")
        try:
            return await trio.to_thread.run_sync(run, limiter=self._control_limiter)
        except psycopg.Error as error:
            raise JournalError(f"the journal's control requests failed: {error}") from error

    async def _reopen_storage(self) -> None:
        """Replace the writer by a fresh connection that has committed a write.

        Raises:
            JournalError: the database cannot be reached, or its schema is not this code's.
            psycopg.Error: it connects but cannot be written.
        """
        await trio.to_thread.run_sync(self._store.replace_writer, limiter=self._write_limiter)

    async def _close_storage(self) -> None:
        """Close the connections on worker threads, each after any call running on it."""

        def close() -> None:
            self._store_closed = True
            self._store.close()

        def close_requests() -> None:
            if self._requests is not None:
                self._requests.close()

        await trio.to_thread.run_sync(close, limiter=self._read_limiter)
        await trio.to_thread.run_sync(close_requests, limiter=self._control_limiter)

"""Wake-ups for a PostgreSQL journal's readers: one NOTIFY per committed batch, one LISTEN each.

A process that follows an execution another process runs (a server's event WebSocket, `orchestr8
follow`) reads the journal when events may have arrived. On SQLite it can only poll; on
PostgreSQL the writer of every batch adds one `pg_notify(NOTIFY_CHANNEL, payload)` to the batch's
own transaction (`notify_in_transaction`), so the notification is delivered exactly when the
batch commits, never for a batch that rolled back, and at most once per transaction whatever the
batch holds. The payload is the batch's execution ids joined by a space, or `EVERYTHING` (`*`)
when that would be over `PAYLOAD_LIMIT` bytes (PostgreSQL refuses payloads of 8,000 bytes).

`EventNotifications` is the reading side, one per journal object: one LISTEN connection, opened
the first time somebody waits (a worker that never follows executions never opens it). Its socket
is watched by trio itself (`wait_readable`, then libpq's non-blocking `consume_input`), so no
thread blocks on it and cancelling is immediate; connecting, the one blocking call, runs on a
thread behind the object's own `CapacityLimiter(1)`, never trio's default pool. A dropped
connection (the server restarted, the link was cut) is reopened with back-off (`RECONNECT_FIRST`
to `RECONNECT_MOST` seconds), and every waiter is woken once on each (re)connect, since a
notification sent while nobody listened is lost.

A waiter registers first and then reads whether its event is already committed
(`wait(..., arrived=...)`), so a commit between the caller's last read and its wait is never
missed: either the read sees it or the notification, sent after the read, wakes the waiter.
`within` bounds every wait, so a lost connection only slows followers down to polling.

`ListeningJournal` is the base of the PostgreSQL journal: it runs the LISTEN connection beside
the journal's writer and answers `Journal.wait_for_events` with it.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar, Final

import trio

from .._errors import ExecutionNotFoundError, JournalError
from ._journal import Journal
from ._postgres_schema import CONNECT_TIMEOUT, SCHEMA, check_url, explain, import_psycopg

if TYPE_CHECKING:
    import psycopg

__all__ = [
    "EVERYTHING",
    "NOTIFY_CHANNEL",
    "PAYLOAD_LIMIT",
    "EventNotifications",
    "ListeningJournal",
    "notification_payload",
    "notify_in_transaction",
]

NOTIFY_CHANNEL: Final = "orchestr8_events"
"""The channel every PostgreSQL journal notifies committed events on."""

EVERYTHING: Final = "*"
"""The payload that wakes every follower: the batch's ids did not fit (or cannot be split)."""

PAYLOAD_LIMIT: Final = 7_000
"""The largest payload sent, in UTF-8 bytes; PostgreSQL's own limit is 8,000."""

RECONNECT_FIRST: Final = 0.1
"""Seconds before the first attempt to reopen a lost LISTEN connection."""

RECONNECT_MOST: Final = 2.0
"""The longest pause between two attempts to reopen it (the pause doubles up to this)."""

_KEEPALIVE: Final = {
    # A link cut without a FIN (a dead host, a dropped route) is noticed in about 15 s
    # instead of never: the LISTEN connection only reads, so nothing else would notice.
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
}

_logger = logging.getLogger("orchestr8.journal")


def notification_payload(execution_ids: Iterable[str]) -> str:
    """The payload that names these executions: distinct ids joined by a space, or `*`.

    `*` (wake every follower) when the ids would take more than `PAYLOAD_LIMIT` bytes, or when
    one of them holds a space or is empty (it could not be told apart). "" for no ids: no
    notification is sent then.
    """
    distinct = list(dict.fromkeys(execution_ids))
    if not distinct:
        return ""
    if any(not execution_id or " " in execution_id for execution_id in distinct):
        return EVERYTHING
    payload = " ".join(distinct)
    if len(payload.encode("utf-8", "surrogatepass")) > PAYLOAD_LIMIT:
        return EVERYTHING
    return payload


def notify_in_transaction(
    connection: psycopg.Connection[Any], execution_ids: Iterable[str]
) -> None:
    """Queue the one notification of the current transaction: delivered when it commits.

    Call it once per batch, inside the batch's transaction, with the ids of every execution
    the batch recorded or appended to (it is the PostgreSQL journal's batch hook, and never
    refuses a batch). Nothing is sent for an empty batch.
    """
    payload = notification_payload(execution_ids)
    if payload:
        connection.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, payload))


class EventNotifications:
    """One journal object's LISTEN connection, and the trio tasks waiting for its wake-ups."""

    def __init__(self, url: str) -> None:
        """Listen to the database at `url` (once `run` runs and somebody first waits)."""
        self._url = url
        self._limiter = trio.CapacityLimiter(1)
        self._wanted = trio.Event()
        self._signals: dict[str, trio.Event] = {}
        self._waiters: Counter[str] = Counter()
        self.listening = False
        """Whether the LISTEN connection is open now (wake-ups arrive as batches commit)."""
        self.trouble: str | None = None
        """Why the LISTEN connection is not open, while it is being reopened; else None."""
        self.connections = 0
        """How many times the LISTEN connection was opened (1 + the reconnects)."""

    @property
    def wanted(self) -> bool:
        """Whether the LISTEN connection is wanted (somebody waited, or `listen_now`)."""
        return self._wanted.is_set()

    def listen_now(self) -> None:
        """Open the LISTEN connection without waiting for the first follower (a server does)."""
        self._wanted.set()

    async def wait(
        self, execution_id: str, within: float, *, arrived: Callable[[], Awaitable[bool]]
    ) -> None:
        """Return once the execution's events may be there, or after `within` seconds.

        That is: `arrived()` says so, a notification names the execution, or everyone is woken,
        whichever is first. `arrived` is read after this waiter is registered, so nothing
        committed in between is missed.
        """
        self._wanted.set()
        signal = self._signals.get(execution_id)
        if signal is None:
            signal = self._signals[execution_id] = trio.Event()
        self._waiters[execution_id] += 1
        try:
            with trio.move_on_after(within):
                if await arrived():
                    return
                # Set by a notification naming it, or by `wake_everyone`: every registered
                # signal is in `_signals` until it is set.
                await signal.wait()
        finally:
            self._waiters[execution_id] -= 1
            if self._waiters[execution_id] <= 0:
                del self._waiters[execution_id]
                if self._signals.get(execution_id) is signal:
                    del self._signals[execution_id]

    def deliver(self, payload: str) -> None:
        """Wake the waiters of the executions a payload names (all of them for `*`)."""
        if payload == EVERYTHING:
            self.wake_everyone()
            return
        for execution_id in payload.split(" "):
            signal = self._signals.pop(execution_id, None)
            if signal is not None:
                signal.set()

    def wake_everyone(self) -> None:
        """Wake every waiter once (after a (re)connect, or for a `*` payload)."""
        signals, self._signals = self._signals, {}
        for signal in signals.values():
            signal.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen until cancelled: connect once somebody waits, reconnect whenever it drops."""
        task_status.started()
        await self._wanted.wait()
        pause = RECONNECT_FIRST
        while True:
            try:
                connection = await trio.to_thread.run_sync(self._connect, limiter=self._limiter)
            except (JournalError, import_psycopg().Error) as error:
                self._lost(" ".join(str(error).split()))
                await trio.sleep(pause)
                pause = min(pause * 2, RECONNECT_MOST)
                continue
            pause = RECONNECT_FIRST
            try:
                self.listening, self.trouble = True, None
                self.connections += 1
                # Whatever was committed while nobody listened: every follower reads again.
                self.wake_everyone()
                await self._listen(connection)
            except (import_psycopg().Error, OSError) as error:
                self._lost(
                    f"the journal's LISTEN connection was lost: {' '.join(str(error).split())}"
                )
            finally:
                self.listening = False
                connection.close()

    def _lost(self, trouble: str) -> None:
        """Note (and log once) that wake-ups stopped; followers fall back to polling."""
        if self.trouble is None:
            _logger.warning("%s; followers poll until it is back", trouble)
        self.trouble = trouble

    def _connect(self) -> psycopg.Connection[Any]:
        """Open the LISTEN connection (on a thread: libpq connects blocking)."""
        driver = import_psycopg()
        check_url(self._url)
        try:
            connection: psycopg.Connection[Any] = driver.connect(
                self._url,
                autocommit=True,
                connect_timeout=CONNECT_TIMEOUT,
                application_name="orchestr8 listen",
                options=f"-c search_path={SCHEMA}",
                **_KEEPALIVE,
            )
        except driver.Error as error:
            raise JournalError(explain(self._url, error)) from None
        try:
            connection.execute(f"LISTEN {NOTIFY_CHANNEL}")
        except BaseException:
            # Only where no session may listen (a standby in recovery): `run` tries again.
            connection.close()
            raise
        return connection

    async def _listen(self, connection: psycopg.Connection[Any]) -> None:
        """Deliver the notifications arriving on the connection until it fails (raises)."""
        driver = import_psycopg()
        source = connection.pgconn
        while True:
            await trio.lowlevel.wait_readable(source.socket)
            source.consume_input()
            if source.status != driver.pq.ConnStatus.OK:
                raise driver.OperationalError("the connection is closed")
            while (notification := source.notifies()) is not None:
                self.deliver(notification.extra.decode("utf-8", "surrogatepass"))


class ListeningJournal(Journal):
    """A journal whose followers are woken by its writers' NOTIFY (the PostgreSQL journal)."""

    event_wakeups: ClassVar[bool] = True

    @property
    def shared(self) -> bool:
        """Always True: every process with the URL uses the same database."""
        return True

    def _listen_to(self, url: str) -> None:
        """Follow the database at `url` (the subclass calls it once, when it is built)."""
        self._notifications = EventNotifications(url)

    @property
    def notifications(self) -> EventNotifications:
        """The LISTEN connection of the journal object, and the tasks waiting on it."""
        return self._notifications

    @property
    def wakeup_trouble(self) -> str | None:
        """Why the LISTEN connection is down while it is (re)opened (followers poll), or None.

        None too while nobody followed an execution yet (the connection is not wanted).
        """
        notifications = self._notifications
        if notifications.listening or not notifications.wanted:
            return None
        return notifications.trouble or "the LISTEN connection is being opened"

    async def wait_for_events(self, execution_id: str, after: int, within: float) -> None:
        """Return once a batch with an event of the execution past `after` may have committed.

        At the latest after `within` seconds; at once when such an event is committed already.
        """

        async def arrived() -> bool:
            try:
                return await self.last_seq(execution_id) > after
            except ExecutionNotFoundError:
                # Not for this wait to report: the follower's next read says so.
                return True

        await self._notifications.wait(execution_id, within, arrived=arrived)

    async def _run_writer(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Run the writer (`JournalWriter._run_writer`) and, beside it, the LISTEN connection."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._notifications.run)
            await super()._run_writer(task_status=task_status)
            nursery.cancel_scope.cancel()

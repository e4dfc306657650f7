"""The emitter: numbers an execution's events, writes them to the journal first, then to the bus.

The journal's queue gets every event, in `seq` order, before any view does: a later event is never
durable before an earlier one. A view may show an event whose batch is not yet committed (a crash
or a failing batch can still lose it); `flush` waits for the commit. Synchronous callers
(pipeline callbacks, agents' progress) cannot wait for a full journal queue, so their events wait
in a small outbox, ahead of everything emitted after them; the next asynchronous `emit` drains it.
The outbox holds at most the events of one step's pipeline between two awaits, so it stays small.

Many step actors share one emitter. An event that cannot be queued at once joins the outbox before
its emitter waits, and one task at a time drains the outbox, so under backpressure events still
reach the journal exactly once and in `seq` order; an emitter cancelled while waiting leaves its
event in the outbox for the next `emit` or `flush` (its `seq` is taken, so it must be written).
The other emitters wait for that drain to end, all woken together (not handed a lock one at a
time, which cost a scheduling round per waiting step in a wide fan-out); the outbox is empty by
then, their own events included.

A journal that fails (a disk full, a lock held too long) takes no more events, ever. Emitting never
raises for that: the emitter records the failure, calls `on_failure` once (the execution then
stops), and drops every later event, publishing none of them, so no view shows what the journal
does not hold. `flush` raises the failure.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from contextlib import suppress
from typing import Any

import trio

from .._errors import JournalError
from .._journal._events import Event, EventFactory, EventType
from .._journal._journal import Journal
from .._observability._redaction import redact
from .._supervision._bus import EventBus


class Emitter:
    """Stamps, journals and publishes the events of one execution, in order."""

    def __init__(self, factory: EventFactory, journal: Journal, bus: EventBus) -> None:
        """Emit through `factory` (numbering), into `journal` (truth) and onto `bus` (views)."""
        self._factory = factory
        self._journal = journal
        self._lag_limit = journal.lag_limit
        self._bus = bus
        self._outbox: deque[Event] = deque()
        self._drain_ended: trio.Event | None = None
        self.failure: JournalError | None = None
        """Why the journal took no more events, once it failed; later events are dropped."""
        self.on_failure: Callable[[JournalError], None] | None = None
        """Called once, with the failure, when the journal first refuses an event."""

    @property
    def execution_id(self) -> str:
        """The execution whose events this emitter writes."""
        return self._factory.execution_id

    @property
    def journal(self) -> Journal:
        """The journal the events go to (a gate board settles its requests there too)."""
        return self._journal

    async def emit(
        self,
        type: str,
        *,
        step_id: str | None = None,
        attempt: int | None = None,
        data: dict[str, Any] | None = None,
        trusted: bool = False,
    ) -> Event:
        """Record one event, waiting while the journal's queue is full; returns the event."""
        event = self.emit_nowait(type, step_id=step_id, attempt=attempt, data=data, trusted=trusted)
        if self._outbox:
            await self._drain()
        return event

    def emit_nowait(
        self,
        type: str,
        *,
        step_id: str | None = None,
        attempt: int | None = None,
        data: dict[str, Any] | None = None,
        trusted: bool = False,
    ) -> Event:
        """Record one event without waiting; it queues in the outbox if the journal is full.

        Secret-looking values in `data` are redacted first (`_redaction`): no view and no journal
        row ever holds them. `trusted` skips that for data the engine made from names alone
        (an agent id, a reason), which holds no values from config, inputs or outputs. A
        `step.succeeded` whose output lost a value that way says so (`output_redacted`), as its
        recorded output is then not the one its dependents got: a resume runs that step again.
        """
        if data and not trusted:
            data = _redacted(type, data)
        event = self._factory.create(type, step_id=step_id, attempt=attempt, data=data)
        if self.failure is not None:
            return event
        if not self._outbox:
            try:
                self._journal.append_nowait(event)
            except trio.WouldBlock:
                self._outbox.append(event)
            except JournalError as error:
                self._failed(error)
            else:
                self._publish(event)
        else:
            self._outbox.append(event)
        return event

    def prepare(self, type: str, *, data: dict[str, Any] | None = None) -> Event:
        """Stamp (numbered, redacted) an event the caller journals itself, without queueing it.

        For `execution.started`, which the journal commits with the execution's record
        (`Journal.create_or_find`); `announce` it once that is committed.
        """
        return self._factory.create(type, data=redact(data) if data else data)

    def announce(self, event: Event) -> None:
        """Publish an event `prepare`d and committed by the caller; the bus sees it in order."""
        if self.failure is None:
            self._publish(event)

    @property
    def may_call_agents(self) -> bool:
        """Whether a step may call its agent now: the journal works and does not lag behind.

        Not lagging means at most the journal's `lag_limit` (`UNWRITTEN_LIMIT` for a file)
        events on their way to disk. A cheap check, made before every step's first attempt.
        """
        limit = self._lag_limit
        return self.failure is None and (limit is None or self._journal.unwritten <= limit)

    async def until_agents_may_run(self) -> None:
        """Wait until `may_call_agents`; once the journal failed, never return (the run cancels).

        What an agent does is recorded only through the journal: while it lags, agents wait for
        it, and once it failed, no agent starts at all.
        """
        if self._lag_limit is not None:
            await self._journal.caught_up(self._lag_limit)
        if self.failure is not None:
            # The run cancels its steps the moment the journal fails (`on_failure`).
            await trio.sleep_forever()

    async def flush(self) -> None:
        """Return once every event emitted so far is committed to the journal.

        Raises:
            JournalError: the journal failed or is closed (also before this call).
        """
        await self._drain()
        if self.failure is not None:
            raise self.failure
        try:
            await self._journal.flush()
        except JournalError as error:
            self._failed(error)
            raise

    async def _drain(self) -> None:
        """Return once the outbox is written to the journal in order; one task drains at a time.

        The others wait for that drain to end (it empties the outbox, their events included);
        a drain cut short (its task cancelled) leaves the rest to the next waiter to look.
        """
        while self._outbox and self.failure is None:
            ended = self._drain_ended
            if ended is not None:
                await ended.wait()
                continue
            self._drain_ended = ended = trio.Event()
            try:
                await self._write_outbox()
            finally:
                self._drain_ended = None
                ended.set()

    async def _write_outbox(self) -> None:
        """Append the outbox to the journal until it is empty (or the journal failed)."""
        outbox, journal = self._outbox, self._journal
        while outbox and self.failure is None:
            # Popped only once queued: a cancelled wait leaves the event first in line. What
            # fits goes without waiting, so a drain awaits once per full queue, not per event.
            try:
                try:
                    journal.append_nowait(outbox[0])
                except trio.WouldBlock:
                    await journal.append(outbox[0])
            except JournalError as error:
                self._failed(error)
                return
            if self.failure is not None:
                # The journal failed during the wait, and the outbox went with it.
                return
            self._publish(outbox.popleft())

    def watch_journal(self) -> Callable[[], None]:
        """Fail this emitter the moment its journal fails, not at its next event; returns the undo.

        An execution watches while it runs, so a failure met by another execution's events, or
        while its own steps run quietly, stops it at once.
        """
        return self._journal.on_failure(self._failed)

    def _failed(self, error: JournalError) -> None:
        """Stop emitting for good: record why, drop what waits, and tell `on_failure` once."""
        if self.failure is not None:
            return
        self.failure = error
        self._outbox.clear()
        if self.on_failure is not None:
            self.on_failure(error)

    def _publish(self, event: Event) -> None:
        if self._bus.has_subscribers:
            # Only a lossless subscriber can refuse; the journal already has the event.
            with suppress(trio.WouldBlock):
                self._bus.publish_nowait(event)


def _redacted(type: str, data: dict[str, Any]) -> dict[str, Any]:
    """`data` redacted, marked `output_redacted` when it is a step's output that lost a value.

    Redaction shares what it leaves unchanged, so an identity check tells whether it changed the
    output: nothing is compared or copied for the outputs it keeps as they are.
    """
    redacted: dict[str, Any] = redact(data)
    if (
        redacted is not data
        and type == EventType.STEP_SUCCEEDED
        and redacted.get("output") is not data.get("output")
    ):
        return {**redacted, "output_redacted": True}
    return redacted

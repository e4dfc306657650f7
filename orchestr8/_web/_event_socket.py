"""The live event stream of one execution over a WebSocket: past events, then live ones, no gaps.

The relay sends the journal's events after the client's `after` first, then subscribes to the bus
(a lossy subscription: a slow client never slows the engine), flushes the journal and reads it
again, so that no event falls between the two sources; live events are deduplicated by `seq`.
The terminal event goes out only once the journal has committed it, so a client that saw the end
reads the same from the REST API. An execution that another process on the same journal runs (or
that waits for approval with no process running it) is streamed from the journal alone: it is
read again whenever the journal says events may have been committed (`Journal.wait_for_events`:
at once on PostgreSQL, woken by the writer's NOTIFY; every `TAIL_INTERVAL` seconds on SQLite),
until its terminal event, or until it is interrupted. The
socket closes with a code that tells the client what to do:

- 1000 after the terminal event (`execution.succeeded`, `.failed` or `.cancelled`);
- 1001 when the server shuts down (after sending the events already queued for the socket), and
  1013 when the client fell so far behind that the socket's buffer filled up (the bus would drop
  its oldest events): both say `reconnect with after=N`, where N is the last seq sent, so a client
  that reconnects so loses nothing;
- 4409 when the execution is not finished and no process runs it: the reason starts with
  `interrupted` (the process that ran it died; reconnecting will not help until it is resumed,
  the status REST shows too); on a memory journal, also when this server does not run it;
- 1013 also when the journal cannot be read right now (a `JournalError`: its database restarts,
  its disk failed), with the reason `the journal is unavailable; reconnect with after=N`: the
  client tries again later (a handshake meanwhile gets `503 journal-unavailable`, retry that too);
- 1011 when the server failed otherwise (logged).
"""

from __future__ import annotations

import json
import logging
from typing import Any, Final, Protocol

import trio

from .._errors import JournalError, Orchestr8Error
from .._execution._liveness import INTERRUPTED, shown_status
from .._execution._runtime import Runtime
from .._journal._events import Event, ExecutionStatus

CLOSE_FINISHED: Final = 1000
CLOSE_GOING_AWAY: Final = 1001
CLOSE_SERVER_ERROR: Final = 1011
CLOSE_TOO_SLOW: Final = 1013
CLOSE_TRY_AGAIN_LATER: Final = 1013
"""The journal cannot be read right now (e.g. its database restarts): reconnect later."""
CLOSE_NOT_RUNNING: Final = 4409
CLOSE_MESSAGE_TOO_BIG: Final = 1009
"""Sent by the WebSocket layer when a client's message is over `MAX_CLIENT_MESSAGE`."""
MAX_CLIENT_MESSAGE: Final = 64 * 1024
"""The largest message a client may send on an event socket, in bytes (they are ignored)."""

#: Events read from the journal per query while catching up.
HISTORY_PAGE: Final = 500

#: How long a stream waits for a live event before checking that its run still runs.
_IDLE_CHECK: Final = 0.25

TAIL_INTERVAL: Final = 0.25
"""Seconds between two reads of the journal for an execution another process runs."""

TAIL_CHECK_INTERVAL: Final = 1.0
"""On a journal that wakes followers (PostgreSQL), seconds between two checks that the
execution still runs while no event arrives (its events themselves wake the stream at once)."""

_logger = logging.getLogger("orchestr8.web")


class EventSocket(Protocol):
    """What the relay needs of a WebSocket (Quart's `websocket` object has it)."""

    async def send(self, data: str) -> None:
        """Send one text message."""

    async def receive(self) -> str | bytes:
        """Receive one message."""

    async def close(self, code: int, reason: str = "") -> None:
        """Close the connection with a code and a reason."""


async def stream_events(
    socket: EventSocket,
    runtime: Runtime,
    execution_id: str,
    *,
    after: int,
    buffer: int,
    closing: trio.Event,
) -> None:
    """Send the execution's events with `seq > after` to an accepted socket, then close it.

    Args:
        socket: an accepted WebSocket.
        runtime: the runtime whose journal and bus hold the events.
        execution_id: an execution that exists in the journal.
        after: the last seq the client has; 0 for everything.
        buffer: how many bus events the socket may fall behind before it is closed with 1013.
        closing: set when the server shuts down; the socket is then closed with 1001.
    """
    relay = _Relay(socket, runtime, execution_id, after, closing)
    async with trio.open_nursery() as nursery:
        # Read (and ignore) what the client sends, so that its close is noticed promptly.
        nursery.start_soon(_discard_incoming, socket)
        nursery.start_soon(relay.watch_closing)
        try:
            code, reason = await relay.run(buffer)
        except JournalError as error:
            # The journal cannot be read now (a database restart, a failed disk): the client
            # tries again later and resumes after the last seq it got, as after 1001.
            _logger.error("event stream of execution %s stopped: %s", execution_id, error)
            code, reason = CLOSE_TRY_AGAIN_LATER, "the journal is unavailable"
        except Orchestr8Error as error:
            # A condition to report, not a bug to trace.
            _logger.error("event stream of execution %s stopped: %s", execution_id, error)
            code, reason = CLOSE_SERVER_ERROR, "server error"
        except Exception:
            _logger.exception("event stream of execution %s failed", execution_id)
            code, reason = CLOSE_SERVER_ERROR, "server error"
        if code in (CLOSE_GOING_AWAY, CLOSE_TOO_SLOW, CLOSE_TRY_AGAIN_LATER):
            reason = f"{reason}; reconnect with after={relay.last}"
        with trio.move_on_after(5):
            await socket.close(code, reason)
        nursery.cancel_scope.cancel()


class _Relay:
    """One stream: the last seq sent, whether the run has ended, and how to stop waiting."""

    def __init__(
        self,
        socket: EventSocket,
        runtime: Runtime,
        execution_id: str,
        after: int,
        closing: trio.Event,
    ) -> None:
        self.socket = socket
        self.runtime = runtime
        self.execution_id = execution_id
        self.closing = closing
        self.last = after
        self.finished = False
        self.ending = ""
        self.lost = False
        # Only waiting for the next live event is interrupted on shutdown, never a send.
        self.waiting = trio.CancelScope()

    async def run(self, buffer: int) -> tuple[int, str]:
        """Relay history then live events; return the close code and reason."""
        journal = self.runtime.journal
        # Most of the history goes out before subscribing, so a long catch-up cannot fill the
        # live buffer; what was appended meanwhile is read again below.
        await self.send_history()
        if not self.is_running() and await self.runs_elsewhere():
            return await self.tail()
        async with self.runtime.bus.subscribe(buffer=buffer) as live:
            # Subscribed first, then everything published before is committed and read back: an
            # event is either in the journal read or on the subscription (or both: deduplicated).
            await journal.flush()
            await self.send_history()
            while True:
                statistics = live.statistics()
                if statistics.current_buffer_used >= statistics.max_buffer_size:
                    # A full lossy buffer is where the bus starts dropping: stop before a gap.
                    return CLOSE_TOO_SLOW, "client too slow"
                if self.closing.is_set():
                    await self.send_queued(live)
                    if self.finished:
                        return CLOSE_FINISHED, self.ending
                    return CLOSE_GOING_AWAY, "server shutting down"
                if not self.is_running():
                    ending = await self.wind_up(live)
                    if ending is not None:
                        return ending
                    break
                # Waiting is bounded so that a run whose end this stream cannot see (it came
                # before `after`, or just before the subscription) is noticed all the same.
                item: Any = None
                with trio.move_on_after(_IDLE_CHECK) as self.waiting:
                    item = await live.receive()
                if self.waiting.cancelled_caught:
                    continue
                sent = await self.offer(item)
                if self.lost:
                    return CLOSE_TOO_SLOW, "client too slow"
                if sent and self.finished:
                    return CLOSE_FINISHED, self.ending
        return await self.tail()

    async def watch_closing(self) -> None:
        """On shutdown, stop waiting for live events (`run` then closes with 1001)."""
        await self.closing.wait()
        self.waiting.cancel()

    async def wind_up(self, live: trio.MemoryReceiveChannel[Any]) -> tuple[int, str] | None:
        """The run is over (or died, or runs elsewhere): send what is queued, then say so.

        None: another process runs it (or it waits for approval), so `tail` follows it.
        """
        await self.send_queued(live)
        if self.lost:
            return CLOSE_TOO_SLOW, "client too slow"
        journal = self.runtime.journal
        status = (await journal.get_execution(self.execution_id)).status
        if status.is_terminal:
            return CLOSE_FINISHED, f"execution.{status}"
        if await shown_status(journal, self.execution_id, status) == INTERRUPTED:
            return self.interrupted(status)
        if not journal.shared:
            # A memory journal: only a runtime of this process can run its executions.
            return CLOSE_NOT_RUNNING, (
                f"{status}, but not in this server's runtime: its events reach this socket "
                f"only through the journal (GET /executions/{self.execution_id}/journal"
                f"?after={self.last})"
            )
        return None

    def interrupted(self, status: ExecutionStatus) -> tuple[int, str]:
        """The 4409 for an execution no process runs, with how to continue."""
        return CLOSE_NOT_RUNNING, (
            f"{INTERRUPTED}: the journal says {status}, but no process runs it; resume it, "
            f"then reconnect with after={self.last}"
        )

    async def runs_elsewhere(self) -> bool:
        """Whether the execution is unfinished and not interrupted (another process runs it)."""
        journal = self.runtime.journal
        status = (await journal.get_execution(self.execution_id)).status
        if status.is_terminal or not journal.shared:
            return False
        return await shown_status(journal, self.execution_id, status) != INTERRUPTED

    async def tail(self) -> tuple[int, str]:
        """Follow an execution another process runs through the journal, until it ends.

        Closes 1000 after its terminal event, 4409 once it is interrupted (its process died),
        1001 when the server shuts down.
        """
        journal = self.runtime.journal
        while True:
            await self.send_history()
            if self.finished:
                return CLOSE_FINISHED, self.ending
            if self.closing.is_set():
                return CLOSE_GOING_AWAY, "server shutting down"
            status = (await journal.get_execution(self.execution_id)).status
            if not status.is_terminal:
                if await shown_status(journal, self.execution_id, status) == INTERRUPTED:
                    # Committed before its lock was dropped: what it wrote last is sent first.
                    await self.send_history()
                    return self.interrupted(status)
            elif not await journal.events(self.execution_id, after=self.last, limit=1):
                # Finished, and its terminal event came before `after`.
                return CLOSE_FINISHED, f"execution.{status}"
            interval = TAIL_CHECK_INTERVAL if journal.event_wakeups else TAIL_INTERVAL
            with trio.CancelScope() as self.waiting:
                await journal.wait_for_events(self.execution_id, self.last, interval)

    async def send_queued(self, live: trio.MemoryReceiveChannel[Any]) -> None:
        """Send this execution's events already on the subscription, without waiting for more."""
        while True:
            try:
                item = live.receive_nowait()
            except trio.WouldBlock:
                return
            await self.offer(item)

    async def send_history(self) -> None:
        """Send the journal's events after `last`, page by page, until caught up or closing."""
        while not self.closing.is_set():
            page = await self.runtime.journal.events(
                self.execution_id, after=self.last, limit=HISTORY_PAGE
            )
            for event in page:
                await self.send(event)
            if len(page) < HISTORY_PAGE:
                return

    async def offer(self, item: Any) -> bool:
        """Send a bus item if it is this execution's next event (True); note a gap as `lost`."""
        if not isinstance(item, Event) or item.execution_id != self.execution_id:
            return False
        if item.seq <= self.last:
            return False
        if item.seq != self.last + 1:
            self.lost = True
            return False
        await self.send(item)
        return True

    async def send(self, event: Event) -> None:
        """Send one event as a JSON text message and advance `last`."""
        if event.is_terminal:
            # A client told that the execution ended reads the same from the REST API.
            await self.runtime.journal.flush()
        await self.socket.send(json.dumps(event.to_json(), separators=(",", ":")))
        self.last = event.seq
        self.finished = event.is_terminal
        self.ending = str(event.type)

    def is_running(self) -> bool:
        """Whether the execution runs in this runtime and has not finished yet."""
        handle = self.runtime.find(self.execution_id)
        return handle is not None and not handle.done


async def _discard_incoming(socket: EventSocket) -> None:
    while True:
        await socket.receive()

"""Actors, their mailboxes and the refs that reach them.

An actor is an object with a `receive` method, run by one task that takes messages one at a time
from a bounded mailbox (a trio memory channel). The mailbox belongs to the actor's *cell*, not to
the actor object: when a supervisor restarts a crashed actor it builds a fresh object from the
factory, and the new incarnation reads on from the same mailbox, so an `ActorRef` stays valid and
messages sent during the restart wait for it.

Stopping travels outside the mailbox: the stopper drains what is queued (asks fail with
`ActorStoppedError`, tells become dead letters) and closes the mailbox, which wakes an idle actor at
once and refuses new messages. So a full mailbox never delays a stop.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal

import attrs
import outcome
import trio

from .._errors import ActorStoppedError, AskTimeoutError, MailboxFullError

if TYPE_CHECKING:
    from ._bus import EventBus
    from ._supervisor import Supervisor

Overflow = Literal["block", "fail", "drop"]
Restart = Literal["permanent", "transient", "temporary"]
ActorState = Literal["starting", "running", "restarting", "stopping", "stopped"]


class Actor(abc.ABC):
    """Base class of actors: override `receive`, and the lifecycle hooks you need.

    The supervisor sets `ref` before `on_start`, so an actor can hand out its own ref or stop itself
    with `await self.ref.stop()` from a handler (an exit by the actor's own decision).
    """

    ref: ActorRef

    async def on_start(self) -> None:  # noqa: B027 - optional hook, empty on purpose
        """Prepare the actor before its first message; an error here is raised from `spawn`."""

    @abc.abstractmethod
    async def receive(self, message: Any) -> Any:
        """Handle one message; the return value answers an `ask`, an exception crashes the actor."""

    async def on_stop(self) -> None:  # noqa: B027 - optional hook, empty on purpose
        """Release resources when the actor stops or crashes; runs shielded within the grace."""

    async def on_restart(self, error: BaseException) -> None:  # noqa: B027 - optional hook
        """Run on a fresh incarnation, before `on_start`, with the error that caused the restart."""


@attrs.frozen
class ActorEvent:
    """A lifecycle change of an actor or supervisor, published on the bus with the actor's name.

    `type` is one of `actor.started`, `actor.crashed`, `actor.restarted`, `actor.stopped`,
    `actor.dead_letter`, `actor.stop_failed`, `supervisor.gave_up`.
    """

    type: str
    name: str
    supervisor: str
    time: float
    error: BaseException | None = None
    message: Any = None


@attrs.frozen
class ActorStatistics:
    """A snapshot of one actor: its state, mailbox fill, and counts of messages, restarts, drops."""

    name: str
    state: ActorState
    mailbox_size: int
    mailbox_used: int
    overflow: Overflow
    messages_handled: int
    restarts: int
    dead_letters: int


class _Ask:
    """An ask in flight: the message, the asking task, and how to answer it exactly once."""

    __slots__ = ("abandoned", "answered", "handler_scope", "message", "result", "task", "waiting")

    def __init__(self, message: Any, task: trio.lowlevel.Task) -> None:
        self.message = message
        self.task = task
        self.abandoned = False
        self.answered = False
        self.waiting = False
        self.result: outcome.Outcome[Any] | None = None
        self.handler_scope: trio.CancelScope | None = None

    def abort(self, raise_cancel: trio.lowlevel.RaiseCancelT) -> trio.lowlevel.Abort:
        """Give up waiting (timeout or the asker's own cancellation) and cancel the handler."""
        self.abandoned = True
        if self.handler_scope is not None:
            self.handler_scope.cancel()
        return trio.lowlevel.Abort.SUCCEEDED

    def answer(self, result: outcome.Outcome[Any]) -> None:
        """Wake the asker with `result` unless it already gave up or was answered.

        An asker still on its way to waiting (its send yielded and the actor answered at once)
        finds the result stored instead.
        """
        if not self.answered and not self.abandoned:
            self.answered = True
            if self.waiting:
                trio.lowlevel.reschedule(self.task, result)
            else:
                self.result = result


@attrs.define(eq=False)
class _Cell:
    """Everything about one supervised actor that outlives its incarnations."""

    name: str
    factory: Callable[[], Actor]
    restart: Restart
    overflow: Overflow
    mailbox_size: int
    supervisor: Supervisor
    send: trio.MemorySendChannel[Any]
    receive: trio.MemoryReceiveChannel[Any]
    grace: float | None
    ref: ActorRef = attrs.field(init=False)
    state: ActorState = "starting"
    incarnation: int = 0
    inbox: trio.MemoryReceiveChannel[Any] | None = None
    scope: trio.CancelScope = attrs.Factory(trio.CancelScope)
    task: trio.lowlevel.Task | None = None
    done: trio.Event = attrs.Factory(trio.Event)
    stop_requested: bool = False
    stop_deadline: float = math.inf
    restart_cause: BaseException | None = None
    start_errors_crash: bool = False
    runner: Callable[[_Cell, trio.TaskStatus[None]], Awaitable[None]] | None = None
    self_stopped: bool = False
    messages_handled: int = 0
    restarts: int = 0
    dead_letters: int = 0

    def close_mailbox(self, bus: EventBus) -> None:
        """Refuse new messages, fail queued asks and turn queued tells into dead letters."""
        while True:
            try:
                message = self.receive.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                break
            if type(message) is _Ask:
                message.answer(outcome.Error(ActorStoppedError(f"actor {self.name!r} stopped")))
            else:
                self.dead_letter(bus, message)
        if self.inbox is not None:
            self.inbox.close()
        self.receive.close()
        self.send.close()

    def dead_letter(self, bus: EventBus, message: Any) -> None:
        """Publish an undeliverable message on the bus so it is never lost silently."""
        self.dead_letters += 1
        event = ActorEvent(
            "actor.dead_letter",
            self.name,
            self.supervisor.name,
            trio.current_time(),
            message=message,
        )
        try:
            bus.publish_nowait(event)
        except trio.WouldBlock:
            self.supervisor.count_unpublished()


class ActorRef:
    """The address of a supervised actor: send it messages, ask it questions, stop it.

    A ref stays valid across restarts of its actor. Sending to a stopped actor raises
    `ActorStoppedError` at once.
    """

    __slots__ = ("_cell",)

    def __init__(self, cell: _Cell) -> None:
        """Wrap a supervisor's cell; users get refs from `Supervisor.spawn`, never build them."""
        self._cell = cell

    def __repr__(self) -> str:
        """Show the actor's name and state, for logs and debugging."""
        return f"<ActorRef {self._cell.name!r} {self._cell.state}>"

    @property
    def name(self) -> str:
        """The actor's name, unique within its supervisor."""
        return self._cell.name

    async def tell(self, message: Any) -> None:
        """Send a message without waiting for it to be handled (waits for room under `block`)."""
        cell = self._cell
        if cell.overflow == "block":
            try:
                await cell.send.send(message)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                raise ActorStoppedError(f"actor {cell.name!r} is stopped") from None
        else:
            self.tell_nowait(message)
            await trio.lowlevel.checkpoint()

    def tell_nowait(self, message: Any) -> None:
        """Send a message now or not at all: a full mailbox raises or drops per its overflow policy.

        Raises:
            MailboxFullError: the mailbox is full and its policy is `block` or `fail`.
            ActorStoppedError: the actor is stopped.
        """
        cell = self._cell
        try:
            cell.send.send_nowait(message)
        except trio.WouldBlock:
            if cell.overflow == "drop":
                cell.dead_letter(cell.supervisor.bus, message)
                return
            raise MailboxFullError(
                f"mailbox of actor {cell.name!r} is full ({cell.mailbox_size} messages)"
            ) from None
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise ActorStoppedError(f"actor {cell.name!r} is stopped") from None

    async def ask(self, message: Any, timeout: float = 5.0) -> Any:  # noqa: ASYNC109 - contract
        """Send a message and wait for the handler's return value (or its exception).

        Raises:
            AskTimeoutError: no answer within `timeout` seconds; the handler is cancelled.
            ActorStoppedError: the actor is stopped, or stopped before answering.
            MailboxFullError: the mailbox is full and its policy is `fail` or `drop`.
        """
        cell = self._cell
        request = _Ask(message, trio.lowlevel.current_task())
        with trio.move_on_after(timeout):
            if cell.overflow == "block":
                try:
                    await cell.send.send(request)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    raise ActorStoppedError(f"actor {cell.name!r} is stopped") from None
            else:
                try:
                    cell.send.send_nowait(request)
                except trio.WouldBlock:
                    if cell.overflow == "drop":
                        cell.dead_letter(cell.supervisor.bus, message)
                    raise MailboxFullError(
                        f"mailbox of actor {cell.name!r} is full ({cell.mailbox_size} messages)"
                    ) from None
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    raise ActorStoppedError(f"actor {cell.name!r} is stopped") from None
            if request.result is not None:
                return request.result.unwrap()
            request.waiting = True
            return await trio.lowlevel.wait_task_rescheduled(request.abort)
        request.abandoned = True
        raise AskTimeoutError(f"actor {cell.name!r} did not answer within {timeout} s")

    async def stop(self) -> None:
        """Stop the actor and wait until it has stopped (its `on_stop` ran or the grace ran out).

        Called by the actor on itself, from a handler, it only requests the stop and returns: the
        actor stops after the handler, as an exit by its own decision (a `permanent` actor is then
        restarted, as in OTP).
        """
        cell = self._cell
        if cell.task is not None and trio.lowlevel.current_task() is cell.task:
            cell.self_stopped = True
            if cell.inbox is not None:
                cell.inbox.close()
            return
        await cell.supervisor.stop_child(cell)

    def cancel(self) -> None:
        """Stop the actor at once, without grace: its handler is cancelled now; does not wait.

        For callers that already gave cooperative notice (the engine cancelling the steps of an
        execution together); queued asks fail and queued tells become dead letters, as with `stop`.
        """
        cell = self._cell
        if cell.state == "stopped":
            return
        if not cell.stop_requested:
            cell.stop_requested = True
            cell.state = "stopping"
            cell.close_mailbox(cell.supervisor.bus)
        cell.stop_deadline = trio.current_time()
        cell.scope.cancel()

    def statistics(self) -> ActorStatistics:
        """A snapshot of the actor's state, mailbox fill and counters."""
        cell = self._cell
        return ActorStatistics(
            name=cell.name,
            state=cell.state,
            mailbox_size=cell.mailbox_size,
            mailbox_used=cell.send.statistics().current_buffer_used
            if cell.state != "stopped"
            else 0,
            overflow=cell.overflow,
            messages_handled=cell.messages_handled,
            restarts=cell.restarts,
            dead_letters=cell.dead_letters,
        )


async def run_messages(actor: Actor, cell: _Cell, receive: trio.MemoryReceiveChannel[Any]) -> None:
    """Handle messages one at a time until `receive` closes; a handler's error crashes the actor.

    `receive` is this incarnation's own handle on the cell's mailbox: closing it ends this
    incarnation (for a restart) without closing the mailbox. The answer to an ask is delivered
    before a crash propagates, so the asker sees the handler's exception; an asker that times out
    cancels only its own handler, which is not a crash.
    """
    while True:
        try:
            message = await receive.receive()
        except (trio.ClosedResourceError, trio.EndOfChannel):
            return
        if type(message) is not _Ask:
            await actor.receive(message)
            cell.messages_handled += 1
            continue
        request: _Ask = message
        if request.abandoned:
            continue
        with trio.CancelScope() as handler_scope:
            request.handler_scope = handler_scope
            try:
                result = await actor.receive(request.message)
            except Exception as error:
                request.answer(outcome.Error(error))
                raise
            except BaseException:
                # Forced stop (or the whole tree cancelled): the asker must not hang.
                request.answer(outcome.Error(ActorStoppedError(f"actor {cell.name!r} stopped")))
                raise
            request.answer(outcome.Value(result))
        cell.messages_handled += 1

"""Cancelling an execution from outside the process that runs it, or one that no process runs.

`cancel_execution` is what `orchestr8 cancel` and `POST /executions/{id}/cancel` do for an
execution that does not run in their own runtime. When some process holds the execution's lock
(`_lock`), the cancel is recorded as a control request in the journal, and that process's control
loop (`_control`) acts on it within `REQUEST_POLL_INTERVAL`. When no process holds it (the run
was interrupted, or waits for approval gates, or never started), nobody would act on a request:
the execution is cancelled here, durably, under its lock. Its units left running get
`step.cancelled`, its unfinished child executions are cancelled the same way (first), then
`execution.cancelled` records the reason; the events are numbered on from the journal's last,
their elapsed time carries on from the last event's by the wall-clock time since it (so the
units cut short and the execution get their real durations), and pending cancel requests of the
execution are settled `applied`.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

import attrs

from .._errors import ExecutionStateError
from .._journal._events import EventFactory, EventType, ExecutionStatus, StepStatus
from .._journal._journal import Journal
from .._journal._replay import replay
from .._journal._requests import ControlRequest, RequestKind
from .._supervision._bus import EventBus
from ._claims import ExecutionClaims
from ._emitter import Emitter
from ._handle import ExecutionHandle

__all__ = ["CancelOutcome", "cancel_execution", "cancel_unowned"]

_UNFINISHED_STEPS = frozenset({StepStatus.RUNNING, StepStatus.WAITING, StepStatus.RETRYING})


@attrs.frozen
class CancelOutcome:
    """What a cancel did: cancelled the execution here, or recorded a request for its owner."""

    execution_id: str
    status: ExecutionStatus
    """The journal's status after the cancel: `cancelled` when cancelled here."""
    request: ControlRequest | None = None
    """The request recorded for the process that runs the execution; None when cancelled here."""
    in_process: bool = False
    """Whether a runtime of this process runs it, and was asked to cancel it directly."""

    @property
    def requested(self) -> bool:
        """Whether another process runs it and was sent a request (202, not yet cancelled)."""
        return self.request is not None


async def cancel_execution(
    journal: Journal,
    locks: ExecutionClaims,
    execution_id: str,
    *,
    reason: str,
    force: bool = False,
    by: str,
    find: Callable[[str], ExecutionHandle | None] | None = None,
    bus: EventBus | None = None,
) -> CancelOutcome:
    """Cancel the execution wherever it runs: here (`find`), in another process, or nowhere.

    Raises:
        ExecutionNotFoundError: no such execution.
        ExecutionStateError: it has already finished.
        JournalError: the journal cannot be read or written.
    """
    record = await journal.get_execution(execution_id)
    handle = None if find is None else find(execution_id)
    if handle is not None and not handle.done and handle.run is not None:
        handle.cancel(reason, force=force)
        return CancelOutcome(execution_id, record.status, in_process=True)
    _refuse_finished(execution_id, record.status)
    if not await locks.acquire(execution_id):
        request = await journal.submit_request(
            execution_id, RequestKind.CANCEL, {"reason": reason, "force": force, "by": by}
        )
        return CancelOutcome(execution_id, record.status, request)
    try:
        status = await cancel_unowned(journal, locks, execution_id, reason, bus=bus)
    finally:
        await locks.release(execution_id)
    return CancelOutcome(execution_id, status)


async def cancel_unowned(
    journal: Journal,
    locks: ExecutionClaims,
    execution_id: str,
    reason: str,
    *,
    bus: EventBus | None = None,
) -> ExecutionStatus:
    """Write the end of an execution whose lock the caller holds: cancelled, with `reason`.

    Read again under the lock: an execution that finished meanwhile is refused. Its unfinished
    child executions are cancelled first (each under its own lock; one another process holds is
    left to that process).

    Raises:
        ExecutionStateError: it has already finished.
        JournalError: the journal cannot be read or written.
    """
    await journal.flush()
    record = await journal.get_execution(execution_id)
    _refuse_finished(execution_id, record.status)
    events = await journal.events(execution_id)
    state = replay(events)
    for step in state.steps.values():
        if step.child is None:
            continue
        child = await journal.get_execution(step.child)
        if not child.status.is_terminal and await locks.acquire(step.child):
            try:
                await cancel_unowned(journal, locks, step.child, reason, bus=bus)
            finally:
                await locks.release(step.child)
    offset = state.elapsed + (_seconds_since(events[-1].ts) if events else 0.0)
    factory = EventFactory(execution_id, next_seq=state.last_seq + 1, elapsed_offset=offset)
    emitter = Emitter(factory, journal, bus if bus is not None else EventBus())
    for step_id, step in state.steps.items():
        if step.status in _UNFINISHED_STEPS:
            await emitter.emit(EventType.STEP_CANCELLED, step_id=step_id, data={"reason": reason})
    data: dict[str, Any] = {
        "reason": reason,
        "error": {"type": "Cancelled", "message": reason},
    }
    if state.usage:
        data["usage"] = dict(state.usage)
    await emitter.emit(EventType.EXECUTION_CANCELLED, data=data)
    await emitter.flush()
    for request in await journal.pending_requests([execution_id]):
        if request.kind == RequestKind.CANCEL:
            await journal.settle_request(
                request.request_id, "applied", "cancelled while no process ran it"
            )
    return ExecutionStatus.CANCELLED


def _seconds_since(timestamp: str) -> float:
    """Wall-clock seconds from an event's `ts` to now (0 for a bad or future one).

    The cancel's events carry on the elapsed time of the last event by this much, as its
    process would have: a step left running then lasted until the cancel.
    """
    try:
        moment = datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    return max(0.0, (datetime.datetime.now(datetime.UTC) - moment).total_seconds())


def _refuse_finished(execution_id: str, status: ExecutionStatus) -> None:
    if status.is_terminal:
        raise ExecutionStateError(f"execution {execution_id} already {status}; nothing to cancel")

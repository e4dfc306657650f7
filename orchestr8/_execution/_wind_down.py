"""Winding an execution down: ending its running steps, and recording how each unfinished one ended.

When a cancel, the execution's timeout or a failure under `fail_fast` ends a run early, the
scheduler stops starting steps and hands over to `WindDown`. Running steps get until a deadline
to finish (the cancel's grace, or none), then are cancelled; a step whose agent ignores the
cancel (it shields itself, or swallows `Cancelled`) is given up on `FORCED_STOP_WAIT` seconds
later and recorded as cancelled, so the execution still ends on time. Every step that did not
run to its end is then journaled `cancelled` or `skipped`.

Step actors report their outcomes to the scheduler task as `Report`s over a memory channel; the
wind-down reads the same channel.
"""

from __future__ import annotations

import logging

import attrs
import trio

from .._journal._events import EventType, StepStatus
from ._emitter import Emitter
from ._results import StepResult
from ._state import RunState
from ._step_run import StepRunner

_logger = logging.getLogger("orchestr8.engine")


@attrs.frozen
class Finished:
    """A step's outcome left for the scheduler task to settle."""

    step_id: str
    result: StepResult


Report = Finished | Exception | None
"""What the scheduler task receives: an outcome to settle, an error raised while settling one on
a step actor's task (a bug, which ends the run loudly), or None: look again (the run may have
ended, or must end early)."""

FORCED_STOP_WAIT = 0.5
"""How long a forced cancel may take before the engine gives up on a step: its agent ignores
cancellation, and the execution ends without it (`WindDown.give_up_running`)."""


class WindDown:
    """Ends the running steps of one execution and records how its unfinished steps ended."""

    def __init__(
        self,
        *,
        execution_id: str,
        state: RunState,
        steps: StepRunner,
        emitter: Emitter,
        reports: trio.MemoryReceiveChannel[Report],
    ) -> None:
        """Act on the run's `state`, reading step outcomes from `reports`."""
        self._execution_id = execution_id
        self._state = state
        self._steps = steps
        self._emitter = emitter
        self._reports = reports
        self.stragglers: list[str] = []
        """Steps given up on: their agents still run, and the runtime waits for them to return."""

    async def wind_down(self, deadline: float) -> None:
        """End the running steps: let them finish until `deadline`, then cancel what still runs.

        A step whose agent ignores the cancel (it shields itself, or swallows `Cancelled`) is
        given up on `FORCED_STOP_WAIT` seconds later, so the execution still ends on time.
        """
        running = self._state.running
        with trio.CancelScope(shield=True):
            with trio.move_on_at(deadline):
                await self.collect_running()
            if not running:
                return
            for slot in running.values():
                slot.ref.cancel()
            with trio.move_on_after(FORCED_STOP_WAIT):
                await self.collect_running()
            self.give_up_running()

    def give_up_running(self) -> None:
        """Record the steps still running as cancelled, and make sure they record nothing more.

        Their tasks go on in the execution's supervisor until their agents return; the run has
        concluded the execution by then, and leaving the supervisor (so the runtime's shutdown)
        waits for them.
        """
        for step_id in list(self._state.running):
            listener = self._steps.listeners.get(step_id)
            attempts = 0
            if listener is not None:
                listener.silenced = True
                attempts = listener.attempts
            self._state.give_up(step_id, attempts)
            self.stragglers.append(step_id)
            _logger.warning(
                "execution %s: step %s did not stop when cancelled (its agent shields itself "
                "from cancellation or swallows it); the execution ends without it, and the "
                "runtime waits for it to return before it closes",
                self._execution_id,
                step_id,
            )

    async def collect_running(self) -> None:
        """Wait for the outcome of every running step, and settle each (nothing new starts)."""
        state = self._state
        while state.running:
            message = await self._reports.receive()
            if isinstance(message, BaseException):
                raise message
            if message is not None:
                # A failure that lands while winding down still skips its dependents.
                state.settle(message.step_id, message.result)

    async def close_pending(self) -> None:
        """Record how each step that did not run to its end finished: cancelled or skipped."""
        listeners = self._steps.listeners

        def attempts_of(step_id: str) -> int | None:
            listener = listeners.get(step_id)
            return None if listener is None else listener.attempts

        reason = self._state.ending.value
        for step_id, status in self._state.close_pending(attempts_of):
            if status is StepStatus.SKIPPED:
                await self._emitter.emit(
                    EventType.STEP_SKIPPED, step_id=step_id, data={"reason": "not reached"}
                )
            else:
                await self._emitter.emit(
                    EventType.STEP_CANCELLED, step_id=step_id, data={"reason": reason}
                )

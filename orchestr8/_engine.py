"""The engine: one execution of a workflow, scheduled step by step onto supervised step actors.

An execution is an actor subtree. Its scheduler opens a supervisor for the execution and gives
each step to a temporary *step actor* the moment the step is ready (all its dependencies
finished) and a concurrency slot is free: no lock-step rounds. A step actor runs its agent through
the resilience pipeline (`_step_run`), records the step's events and settles the outcome with the
execution's scheduling state, which decides what runs next, what is skipped and how the execution
ends. Idle step actors are reused, and a step actor that finishes a step usually runs the next
ready one itself, so a chain of steps costs one trio scheduling round per step.

Ending early comes in three kinds, all recorded in the journal:

- a user cancel is cooperative first (agents see `context.cancel_requested`), then forced when
  the grace period runs out, and ends in `execution.cancelled`;
- the execution's `timeout` forces the running steps at once and fails the execution;
- with `fail_fast`, the first step that fails for good forces the running steps at once.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
from collections import deque
from collections.abc import Mapping
from functools import partial
from typing import Any

import attrs
import trio

from ._agent_registry import AgentRegistry
from ._agents import Agent
from ._bus import EventBus
from ._conclusion import Conclusion
from ._emitter import Emitter
from ._errors import ExecutionStateError, JournalError
from ._events import Event, EventType, StepStatus
from ._metrics import engine_metrics
from ._results import ExecutionResult, StepResult
from ._step_resilience import SharedResilience
from ._step_run import StepActor, StepRunner, StepSlot
from ._supervisor import open_supervisor
from ._telemetry import execution_span, record_execution_result
from ._workflow import Workflow

_logger = logging.getLogger("orchestr8.engine")


@attrs.frozen
class _Finished:
    """A step's outcome left for the scheduler task to settle."""

    step_id: str
    result: StepResult


#: Tells the scheduler task to look again: the run may have ended, or must end early.
_WAKE = object()

#: How long a forced cancel may take before the engine gives up on a step: its agent ignores
#: cancellation, and the execution ends without it (`ExecutionRun._give_up_running`).
FORCED_STOP_WAIT = 0.5


class ExecutionRun:
    """One execution of a workflow: the scheduler, its step actors and its events.

    The scheduling state (what finished, what waits, what runs) changes only in synchronous code,
    so the scheduler task and the step actors can both settle outcomes without locks. While the
    run is going normally, step actors settle their own outcomes and start the steps that became
    ready; the scheduler task sleeps until the run ends, is cancelled or times out. From then on
    (`_dispatching` is False) every outcome goes to the scheduler task, which winds the run down.
    """

    def __init__(
        self,
        *,
        execution_id: str,
        workflow: Workflow,
        inputs: Mapping[str, Any],
        emitter: Emitter,
        registry: AgentRegistry,
        agents: Mapping[str, Agent] | None = None,
        resilience: SharedResilience,
        bus: EventBus,
        cancel_grace: float = 5.0,
        timeout: float | None = None,
        completed: Mapping[str, Any] | None = None,
        resumed: bool = False,
        correlation_id: str | None = None,
        usage: Mapping[str, int] | None = None,
        step_usage: Mapping[str, Mapping[str, int]] | None = None,
        random_source: random.Random | None = None,
        sync_limiter: trio.CapacityLimiter | None = None,
    ) -> None:
        """Prepare an execution; `completed` holds the outputs of steps reused by a resume.

        `sync_limiter` is the runtime's pool of threads for blocking agent code; `agents` holds
        the agents admission built, by step id (a step not in it has its agent built when it runs).
        """
        self.execution_id = execution_id
        self.correlation_id = correlation_id or execution_id
        self.workflow = workflow
        self.inputs = inputs
        self._emitter = emitter
        emitter.on_failure = self._journal_failed
        self._bus = bus
        self._grace = cancel_grace
        self._timeout = timeout
        self._resumed = resumed
        self._outputs: dict[str, Any] = dict(completed or {})
        self._results: dict[str, StepResult] = {
            step_id: StepResult(StepStatus.SUCCEEDED, output=output)
            for step_id, output in self._outputs.items()
        }
        self._cancel_event = trio.Event()
        # Set on a cancel and when a timeout or a failure winds the run down: no step starts
        # another attempt or backoff from then on.
        self._stop_event = trio.Event()
        self._cancel_reason = ""
        # Room for one report per step, the cancel request and the wake-ups: never blocks.
        self._report_send, self._report_receive = trio.open_memory_channel[Any](
            len(workflow.steps) + 4
        )
        self._supervisor: Any = None
        self._dispatching = False
        self._deadline = math.inf
        self._ending = "completed"
        self._running: dict[str, StepSlot] = {}
        self._slots: list[StepSlot] = []
        self._idle: list[StepSlot] = []
        self._ready: deque[str] = deque()
        self._limit = workflow.max_concurrency or math.inf
        self._waiting: dict[str, int] = {}
        self._usage: dict[str, int] = dict(usage or {})
        self._step_usage: dict[str, dict[str, int]] = {
            step_id: dict(counts)
            for step_id, counts in (step_usage or {}).items()
            if step_id in self._outputs
        }
        self.steps = StepRunner(
            execution_id=execution_id,
            workflow=workflow,
            inputs=inputs,
            outputs=self._outputs,
            emitter=emitter,
            registry=registry,
            agents=agents,
            resilience=resilience,
            cancel_event=self._cancel_event,
            stop_event=self._stop_event,
            random_source=random_source,
            sync_limiter=sync_limiter,
            usage=self._usage,
            step_usage=self._step_usage,
        )
        """Runs each step's agent; the step actors call it."""
        self._done = trio.Event()
        self._stragglers: list[str] = []
        self._cut_short_by = "nothing"
        self._recorded_start: Event | None = None
        self.result: ExecutionResult | None = None

    # -- control ------------------------------------------------------------------------------

    def cancel(self, reason: str = "cancelled by request") -> bool:
        """Ask the execution to stop: cooperative first, forced after the grace period.

        Returns False when the execution had already finished or was already being cancelled.
        """
        if self._done.is_set() or self._cancel_event.is_set():
            return False
        self._cancel_reason = reason
        self._cancel_event.set()
        self._stop_event.set()
        # Nothing starts after a cancel request; the scheduler task settles what still runs.
        self._dispatching = False
        self._report_send.send_nowait(None)
        return True

    def start_event(self) -> Event:
        """Stamp this run's `execution.started` for the journal to commit with its record.

        The runtime creates the execution and this event in one transaction; `run` then only
        publishes it, so no execution is ever recorded without its start.
        """
        self._recorded_start = self._emitter.prepare(
            EventType.EXECUTION_STARTED, data=self._start_data()
        )
        return self._recorded_start

    @property
    def cancel_requested(self) -> bool:
        """Whether a cancel was requested."""
        return self._cancel_event.is_set()

    async def wait(self) -> ExecutionResult:
        """Wait until the execution has finished, and return its result.

        Raises:
            JournalError: the journal failed while the execution ran, so how it ended (and what
                happened after the failure) is not recorded; the run stopped at the failure.
            ExecutionStateError: the run itself raised, so there is no result.
        """
        await self._done.wait()
        failure = self._emitter.failure
        if failure is not None:
            raise JournalError(
                f"execution {self.execution_id} stopped: {failure}; what happened after that "
                "is not recorded"
            ) from failure
        if self.result is None:
            # The run itself raised (a bug, or Ctrl-C reaching it): the runtime re-raises that.
            raise ExecutionStateError(
                f"execution {self.execution_id} has no result: its run was cut short by "
                f"{self._cut_short_by}"
            )
        return self.result

    async def finished(self) -> None:
        """Wait until the execution has ended, however it ended; never raises."""
        await self._done.wait()

    def _journal_failed(self, failure: JournalError) -> None:
        """Stop at once when the journal fails: nothing the run does now could be recorded.

        Nothing starts after this (the cancel request), and running steps are cancelled now.
        """
        _logger.error("execution %s stops: %s", self.execution_id, failure)
        self.cancel(str(failure))
        # No grace: nothing a running step does now can be recorded, so its side effects stop
        # now (also when a cancel was already winding the run down).
        for slot in self._running.values():
            slot.ref.cancel()

    def step_finished(self, step_id: str, result: StepResult, slot: StepSlot) -> None:
        """Called by a step actor with its step's outcome; never blocks and never raises.

        While the run goes normally the outcome is settled here, on the step actor's task, and
        the steps it made ready start at once, the first on this actor (`slot.step` is set, and
        no message sent); otherwise the outcome is left to the scheduler task.
        """
        if not self._dispatching or result.status is StepStatus.CANCELLED:
            self._report_send.send_nowait(_Finished(step_id, result))
            return
        try:
            self._settle(step_id, result)
            self._dispatch_ready(slot)
        except Exception as error:
            # A bug in the scheduling code must end the run loudly, not leave it waiting.
            self._dispatching = False
            self._report_send.send_nowait(error)
            return
        if self._ending != "completed" or not self._running:
            self._dispatching = False
            self._report_send.send_nowait(_WAKE)

    # -- the scheduler ------------------------------------------------------------------------

    async def run(self) -> ExecutionResult | None:
        """Run the execution to its end and return the result; every ending is journaled.

        None when the journal failed meanwhile: then nothing more was journaled, and `wait`
        raises that failure.
        """
        metrics = engine_metrics()
        metrics.execution_started(self.workflow.name)
        stop_watching = self._emitter.watch_journal()
        try:
            # The span encloses the supervisor, so every step actor's task inherits it.
            with execution_span(
                self.workflow.name, self.execution_id, self.correlation_id, resumed=self._resumed
            ) as span:
                if self._recorded_start is not None:
                    self._emitter.announce(self._recorded_start)
                else:
                    start = (
                        EventType.EXECUTION_RESUMED
                        if self._resumed
                        else EventType.EXECUTION_STARTED
                    )
                    await self._emitter.emit(start, data=self._start_data())
                    # Committed before any step starts: on a journal that cannot write, no agent
                    # runs (a failure here cancels the run through `_journal_failed`).
                    with contextlib.suppress(JournalError):
                        await self._emitter.flush()
                _logger.info(
                    "execution %s of workflow %r %s",
                    self.execution_id,
                    self.workflow.name,
                    "resumed" if self._resumed else "started",
                )
                deadline = (
                    math.inf if self._timeout is None else trio.current_time() + self._timeout
                )
                # Step actors are independent: at the end they are all stopped in one go.
                async with open_supervisor(
                    name=f"execution:{self.execution_id}",
                    shutdown_grace=self._grace,
                    bus=self._bus,
                    shutdown_order="together",
                ) as supervisor:
                    ending = await self._schedule(supervisor, deadline)
                    if self._stragglers:
                        # Leaving the supervisor waits for steps that ignore cancellation: the
                        # execution ends first, on time, and whoever waits for it is told.
                        await self._conclude(ending, span)
                        self._done.set()
                if not self._done.is_set():
                    await self._conclude(ending, span)
        except BaseException as error:
            self._cut_short_by = type(error).__name__
            raise
        finally:
            stop_watching()
            # The span has them now: do not keep the failures' tracebacks (and their frames).
            self.steps.failures.clear()
            metrics.execution_finished(self.workflow.name)
            self._done.set()
        return self.result

    async def _conclude(self, ending: str, span: Any) -> None:
        """Journal and log how the execution ended, and keep the result once it is durable."""
        conclusion = self._conclusion()
        result = await conclusion.record(ending)
        record_execution_result(span, result.status, conclusion.exception or result.error)
        _logger.log(
            logging.INFO if result.succeeded else logging.WARNING,
            "execution %s %s%s",
            self.execution_id,
            result.status,
            f": {result.error.get('type')}: {result.error.get('message')}" if result.error else "",
        )
        # Finished means durable: whoever waits for the result can read it in the journal.
        # A journal that failed is the emitter's to report: `wait` raises it, and there is
        # no result, as the journal (still saying `running`) holds none.
        with contextlib.suppress(JournalError):
            await self._emitter.flush()
        if self._emitter.failure is None:
            self.result = result

    def _start_data(self) -> dict[str, Any]:
        if self._resumed:
            return {"reused_steps": sorted(self._outputs), "correlation_id": self.correlation_id}
        return {
            "workflow": self.workflow.name,
            "inputs": dict(self.inputs),
            "correlation_id": self.correlation_id,
        }

    async def _schedule(self, supervisor: Any, deadline: float) -> str:
        """Start steps as they become ready until all finished; return how the run ended."""
        workflow = self.workflow
        self._supervisor = supervisor
        waiting = self._waiting = {
            step_id: sum(1 for dependency in dependencies if dependency not in self._results)
            for step_id, dependencies in workflow.dependencies.items()
            if step_id not in self._results
        }
        self._ready.extend(step_id for step_id in workflow.order if waiting.get(step_id) == 0)
        self._deadline = deadline
        with trio.move_on_at(deadline) as timeout_scope:
            if not self._cancel_event.is_set():
                self._dispatching = True
                self._dispatch_ready()
            while self._dispatching and self._ending == "completed" and self._running:
                message = await self._report_receive.receive()
                if isinstance(message, BaseException):
                    raise message
                if isinstance(message, _Finished):
                    # An outcome a step actor left to this task (its step was cut short).
                    self._settle(message.step_id, message.result)
                    self._dispatch_ready()
                # Otherwise a wake-up or a cancel request: the loop's condition says which.
        self._dispatching = False
        ending = self._ending
        if self._cancel_event.is_set():
            # Even a cancel requested before the run began: it ends cancelled.
            ending = "cancelled"
        if timeout_scope.cancelled_caught or (
            self._past_deadline() and len(self._results) < len(workflow.steps)
        ):
            # Steps left unstarted because the timeout passed (before the scheduler woke): the
            # execution timed out just the same.
            ending = "timed_out"
        self._stop_event.set()
        if ending == "cancelled":
            # The grace never stretches the execution past its own timeout.
            await self._wind_down(min(trio.current_time() + self._grace, deadline))
        elif ending in ("failed", "timed_out"):
            await self._wind_down(trio.current_time())
        await self._close_pending(ending)
        return ending

    def _settle(self, step_id: str, result: StepResult) -> None:
        """Record a step's outcome: its dependents get closer to ready, or are skipped."""
        slot = self._running.pop(step_id, None)
        if slot is not None:
            self._idle.append(slot)
        self._results[step_id] = result
        ok = result.status is StepStatus.SUCCEEDED
        step = self.workflow.steps_by_id[step_id]
        if ok or (step.on_error == "continue" and result.status is StepStatus.FAILED):
            self._outputs[step_id] = result.output if ok else None
            waiting = self._waiting
            for dependent in self.workflow.dependents[step_id]:
                if dependent in waiting:
                    waiting[dependent] -= 1
                    if waiting[dependent] == 0:
                        self._ready.append(dependent)
        elif result.status is StepStatus.FAILED:
            self._skip_dependents(step_id)
            if self.workflow.fail_fast:
                self._ending = "failed"

    def _dispatch_ready(self, reporting: StepSlot | None = None) -> None:
        """Give ready steps to step actors while concurrency allows and the run goes on.

        `reporting` is the idle step actor calling (if one is): a step given to it is not sent,
        as it runs the step as soon as this returns.
        """
        if self._past_deadline():
            # Past the execution's timeout nothing starts, though the scheduler may not know yet.
            return
        ready, running = self._ready, self._running
        while ready and len(running) < self._limit and self._ending == "completed":
            if not self._dispatching:
                return
            step = self.workflow.steps_by_id[ready.popleft()]
            if self._idle:
                slot = self._idle.pop()
            else:
                slot = StepSlot()
                slot.ref = self._supervisor.spawn_nowait(
                    partial(StepActor, self, slot),
                    name=f"step-actor-{len(self._slots)}",
                    restart="temporary",
                    mailbox_size=1,
                )
                self._slots.append(slot)
            slot.step = step
            running[step.id] = slot
            if slot is not reporting:
                slot.ref.tell_nowait(step)

    def _past_deadline(self) -> bool:
        """Whether the execution's timeout has passed (looked up only when there is one)."""
        return self._deadline != math.inf and trio.current_time() >= self._deadline

    def _skip_dependents(self, failed: str) -> None:
        """Skip every step that (transitively) depends on `failed`; they can never run."""
        waiting = self._waiting
        stack = list(self.workflow.dependents[failed])
        while stack:
            step_id = stack.pop()
            if step_id in self._results or step_id not in waiting:
                continue
            del waiting[step_id]
            self._results[step_id] = StepResult(StepStatus.SKIPPED)
            self._emitter.emit_nowait(
                EventType.STEP_SKIPPED,
                step_id=step_id,
                data={"reason": f"a dependency failed: {failed}"},
                trusted=True,
            )
            stack.extend(self.workflow.dependents[step_id])

    async def _wind_down(self, deadline: float) -> None:
        """End the running steps: let them finish until `deadline`, then cancel what still runs.

        A step whose agent ignores the cancel (it shields itself, or swallows `Cancelled`) is
        given up on `FORCED_STOP_WAIT` seconds later, so the execution still ends on time.
        """
        with trio.CancelScope(shield=True):
            with trio.move_on_at(deadline):
                await self._collect_running()
            if not self._running:
                return
            for slot in self._running.values():
                slot.ref.cancel()
            with trio.move_on_after(FORCED_STOP_WAIT):
                await self._collect_running()
            self._give_up_running()

    def _give_up_running(self) -> None:
        """Record the steps still running as cancelled, and make sure they record nothing more.

        Their tasks go on in the execution's supervisor until their agents return; `run` has
        concluded the execution by then, and leaving the supervisor (so the runtime's shutdown)
        waits for them.
        """
        for step_id, slot in list(self._running.items()):
            # The actor's late report finds no step to report.
            slot.step = None
            listener = self.steps.listeners.get(step_id)
            attempts = 0
            if listener is not None:
                listener.silenced = True
                attempts = listener.attempts
            del self._running[step_id]
            self._results[step_id] = StepResult(StepStatus.CANCELLED, attempts=attempts)
            self._stragglers.append(step_id)
            _logger.warning(
                "execution %s: step %s did not stop when cancelled (its agent shields itself "
                "from cancellation or swallows it); the execution ends without it, and the "
                "runtime waits for it to return before it closes",
                self.execution_id,
                step_id,
            )

    async def _collect_running(self) -> None:
        """Wait for the outcome of every running step, and settle each (nothing new starts)."""
        while self._running:
            message = await self._report_receive.receive()
            if isinstance(message, BaseException):
                raise message
            if isinstance(message, _Finished):
                # A failure that lands while winding down still skips its dependents.
                self._settle(message.step_id, message.result)

    async def _close_pending(self, ending: str) -> None:
        """Record how each step that did not run to its end finished: cancelled or skipped."""
        for step_id in self.workflow.order:
            result = self._results.get(step_id)
            if result is not None and result.status is not StepStatus.CANCELLED:
                continue
            if result is None:
                status = StepStatus.SKIPPED if ending == "completed" else StepStatus.CANCELLED
                self._results[step_id] = StepResult(status)
            else:
                status = StepStatus.CANCELLED
                # Cut short mid-run: keep the attempts it made, as the journal shows them.
                listener = self.steps.listeners.get(step_id)
                if listener is not None:
                    self._results[step_id] = attrs.evolve(result, attempts=listener.attempts)
            if status is StepStatus.SKIPPED:
                await self._emitter.emit(
                    EventType.STEP_SKIPPED, step_id=step_id, data={"reason": "not reached"}
                )
            else:
                await self._emitter.emit(
                    EventType.STEP_CANCELLED, step_id=step_id, data={"reason": ending}
                )

    def _conclusion(self) -> Conclusion:
        """What decides and journals the execution's ending from its steps' results."""
        return Conclusion(
            execution_id=self.execution_id,
            workflow=self.workflow,
            inputs=self.inputs,
            emitter=self._emitter,
            results=self._results,
            outputs=self._outputs,
            usage=self._usage,
            step_usage=self._step_usage,
            cancel_reason=self._cancel_reason,
            timeout=self._timeout,
            failures=self.steps.failures,
        )

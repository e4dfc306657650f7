"""The engine: one execution of a workflow, scheduled step by step onto supervised step actors.

An execution is an actor subtree. Its scheduler opens a supervisor for the execution and gives
each step to a temporary *step actor* the moment the step is ready (all its dependencies
finished) and a concurrency slot is free: no lock-step rounds. A step actor runs its agent through
the resilience pipeline (`_step_run`), records the step's events and settles the outcome with the
execution's `RunState` (`_state`), which decides what runs next, what is skipped and how
the execution ends. Idle step actors are reused, and a step actor that finishes a step usually
runs the next ready one itself, so a chain of steps costs one trio scheduling round per step.
At most `SPAWNS_PER_PASS` step actors are spawned per scheduling pass: the ready steps left over
go to actors that finish a step meanwhile, or to the ones spawned on the scheduler's next pass,
so a wide fan-out of quick steps runs on a few dozen actors instead of one actor per step.

Ending early comes in three kinds, all recorded in the journal:

- a user cancel is cooperative first (agents see `context.cancel_requested`), then forced when
  the grace period runs out, and ends in `execution.cancelled`;
- the execution's `timeout` forces the running steps at once and fails the execution;
- with `fail_fast`, the first step that fails for good forces the running steps at once.

This module is the scheduler; ending the running steps early, and recording the steps that did
not run to their end, is `_wind_down`'s; deciding and recording how the execution ended is
`_conclusion`'s.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from .._agents._contract import Agent
from .._agents._registry import AgentRegistry
from .._errors import ExecutionStateError, JournalError
from .._journal._events import Event, EventType, StepStatus
from .._llm._catalog import ProviderCatalog
from .._observability._metrics import engine_metrics
from .._observability._telemetry import execution_span
from .._supervision._bus import EventBus
from .._supervision._supervisor import Supervisor, open_supervisor
from ._conclusion import Conclusion
from ._emitter import Emitter
from ._gates import GateBoard, has_gates
from ._map import unit_capacity
from ._results import ExecutionResult, StepResult
from ._spending import ExecutionBudget, JournalSpend, ParentBudget
from ._state import Ending, RunState, StepSlot
from ._step_resilience import SharedResilience
from ._step_run import StepActor, StepRunner
from ._wind_down import Finished, Report, WindDown

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from .._journal._replay import GateState
    from ._children import ChildRunner

_logger = logging.getLogger("orchestr8.engine")

SPAWNS_PER_PASS = 32
"""How many step actors the engine spawns in one scheduling pass before it lets them run.

Steps that are still ready then start on the next pass (no time passes in between), on an actor
that finished its step meanwhile or a fresh one: the bound changes how many actors a fan-out
needs, never how many steps may run at once (`max_concurrency` does that).
"""


class ExecutionRun:
    """One execution of a workflow: the scheduler, its step actors and its events.

    The run's `state` (what finished, what waits, what runs) changes only in synchronous code,
    so the scheduler task and the step actors can both settle outcomes without locks. While the
    run is going normally, step actors settle their own outcomes and start the steps that became
    ready; the scheduler task sleeps until the run ends, is cancelled or times out. From then on
    (`_dispatching` is False) every outcome goes to the scheduler task, which winds the run down.
    """

    def __init__(
        self,
        *,
        execution_id: str,
        state: RunState,
        emitter: Emitter,
        registry: AgentRegistry,
        agents: Mapping[str, Agent] | None = None,
        resilience: SharedResilience,
        bus: EventBus,
        cancel_grace: float = 5.0,
        timeout: float | None = None,
        resumed: bool = False,
        correlation_id: str | None = None,
        random_source: random.Random | None = None,
        sync_limiter: trio.CapacityLimiter | None = None,
        children: ChildRunner | None = None,
        gates_before: Mapping[str, GateState] | None = None,
        providers: ProviderCatalog | None = None,
        budget_spent: JournalSpend | None = None,
        parent_budget: ParentBudget | None = None,
        directory: Path | None = None,
    ) -> None:
        """Prepare an execution from its `state` (`RunState.begin`: a resume's reused outputs too).

        `sync_limiter` is the runtime's pool of threads for blocking agent code; `agents` holds
        the agents admission built, by step id (a step not in it has its agent built when it runs).
        `gates_before` holds the gates of the run a resume continues (`ExecutionState.gates`);
        `budget_spent` what its journal says its budgets spent (`journal_spend`);
        `parent_budget` the parent step's budgets a child execution's calls count against too.
        `providers` is the runtime's provider catalog (None: the steps' model calls use the
        built-in providers, without breakers or journaled calls). `directory` is the workflow
        file's (None: it has no file), recorded in `execution.started` for resume and fork.
        """
        self.execution_id = execution_id
        self._directory = directory
        self.correlation_id = correlation_id or execution_id
        self.workflow = workflow = state.workflow
        self.inputs = state.inputs
        self._emitter = emitter
        emitter.on_failure = self._journal_failed
        self._bus = bus
        self._grace = cancel_grace
        self._timeout = timeout
        self._resumed = resumed
        self.state = state
        """The execution's live state: the engine, its step actors and its conclusion share it."""
        self.state.on_skipped = self._skipped
        self.state.on_units_ready = self._dispatch_ready
        self._cancel_event = trio.Event()
        # Set on a cancel and when a timeout or a failure winds the run down: no step starts
        # another attempt or backoff from then on.
        self._stop_event = trio.Event()
        self._cancel_reason = ""
        self._forced = False
        # Set once the scheduler has settled how the run ends: a cancel after it changes nothing.
        self._ending_settled = False
        # Room for one report per step (and map item that may run at once), the cancel request
        # and the wake-ups: never blocks.
        self._report_send, self._report_receive = trio.open_memory_channel[Report](
            unit_capacity(workflow) + 5
        )
        self._supervisor: Supervisor | None = None
        self._dispatching = False
        self._deadline = math.inf
        self._spawned = 0
        # Step actors that may still be spawned in this scheduling pass, and whether the
        # scheduler task has been woken to spawn more on its next one.
        self._spawn_budget = SPAWNS_PER_PASS
        self._spawn_wake_up = False
        self.gates: GateBoard | None = None
        """The execution's approval gates (`_gates`); None without an approval step."""
        if has_gates(workflow):
            self.gates = GateBoard(
                execution_id=execution_id,
                state=state,
                emitter=emitter,
                journal=emitter.journal,
                stop_event=self._stop_event,
                before=gates_before,
            )
        self._waiting_gates: list[str] = []
        budget = ExecutionBudget.for_workflow(workflow, emitter, self.gates, parent_budget)
        if budget is not None and budget_spent is not None:
            budget.restore(budget_spent)
        self.steps = StepRunner(
            execution_id=execution_id,
            state=self.state,
            emitter=emitter,
            registry=registry,
            agents=agents,
            resilience=resilience,
            cancel_event=self._cancel_event,
            stop_event=self._stop_event,
            random_source=random_source,
            sync_limiter=sync_limiter,
            children=children,
            correlation_id=self.correlation_id,
            gates=self.gates,
            providers=providers,
            budget=budget,
            directory=directory,
        )
        """Runs each step's agent; the step actors call it."""
        self._done = trio.Event()
        self._winding = WindDown(
            execution_id=execution_id,
            state=self.state,
            steps=self.steps,
            emitter=emitter,
            reports=self._report_receive,
        )
        """Ends the running steps when the run ends early, and records the unfinished ones."""
        self._cut_short_by = "nothing"
        self._recorded_start: Event | None = None
        self.result: ExecutionResult | None = None

    # -- control ------------------------------------------------------------------------------

    def cancel(self, reason: str = "cancelled by request", *, force: bool = False) -> bool:
        """Ask the execution to stop: cooperative first, forced after the grace period.

        `force` skips the grace: running steps are cancelled at once, also when a cancel
        without it is already winding the run down. Returns False when the execution had
        already finished, or was already being cancelled and `force` changes nothing.
        """
        if self._done.is_set() or self.ending_settled:
            return False
        if force and not self._forced:
            self._forced = True
            # No grace: what still runs is cancelled now (as when the journal fails).
            for slot in self.state.running.values():
                slot.ref.cancel()
            if self._cancel_event.is_set():
                return True
        if self._cancel_event.is_set():
            return False
        self._cancel_reason = reason
        self._cancel_event.set()
        self._stop_event.set()
        # Nothing starts after a cancel request; the scheduler task settles what still runs.
        self._dispatching = False
        self._report_send.send_nowait(None)
        return True

    def blocked_on_gates(self) -> bool:
        """Whether the run waits only for answers: a gate waits, and nothing else may run now.

        Every running unit is a waiting gate (a map's coordinator waits for its items; a loop's
        step for its gate iteration), and no step or item is ready: a waiting gate holds no
        concurrency slot, so a ready one would start.
        """
        gates, state = self.gates, self.state
        if gates is None or not self._dispatching or state.ending is not Ending.COMPLETED:
            return False
        waiting = gates.waiting_count
        if not waiting or len(state.running) - state.coordinating > waiting:
            return False
        return not (state.ready or state.items_ready)

    async def wait_blocked_on_gates(self) -> None:
        """Return once the run is blocked on its gates (`blocked_on_gates`), or has ended."""
        gates = self.gates
        if gates is None:
            await self._done.wait()
            return
        while not self._done.is_set() and not self.blocked_on_gates():
            await gates.changed()

    def suspend(self) -> bool:
        """End the run while it is blocked on its gates: it records `execution.waiting`.

        The waiting gates end without a trace but `execution.waiting` (with their ids), the
        result's status is `waiting`, and the runtime releases the execution's lock: `resume`
        re-opens the gates with their deadlines. False (nothing done) when it is not blocked.
        """
        if self.gates is None or not self.blocked_on_gates():
            return False
        self._waiting_gates = self.gates.waiting_ids()
        self.state.end(Ending.WAITING)
        self._stop_event.set()
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

    @property
    def ending_settled(self) -> bool:
        """Whether how the run ends is settled (its ending is being recorded), not by a cancel.

        From then on a cancel changes nothing, though the run is not done until its ending
        event is durable: `cancel` returns False, and a cancel request is refused with the end.
        """
        return self._ending_settled and not self._cancel_event.is_set()

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
        for slot in self.state.running.values():
            slot.ref.cancel()

    def step_finished(self, step_id: str, result: StepResult, slot: StepSlot) -> None:
        """Called by a step actor with its step's outcome; never blocks and never raises.

        While the run goes normally the outcome is settled here, on the step actor's task, and
        the steps it made ready start at once, the first on this actor (`slot.step` is set, and
        no message sent); otherwise the outcome is left to the scheduler task.
        """
        if not self._dispatching or result.status is StepStatus.CANCELLED:
            self._report_send.send_nowait(Finished(step_id, result))
            return
        state = self.state
        try:
            state.settle(step_id, result)
            self._dispatch_ready(slot)
            if self.gates is not None:
                self.gates.notify()
        except Exception as error:
            # A bug in the scheduling code must end the run loudly, not leave it waiting.
            self._dispatching = False
            self._report_send.send_nowait(error)
            return
        if state.ending is not Ending.COMPLETED or not state.running:
            self._dispatching = False
            self._report_send.send_nowait(None)

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
                    await self._schedule(supervisor, deadline)
                    if self._winding.stragglers:
                        # Leaving the supervisor waits for steps that ignore cancellation: the
                        # execution ends first, on time, and whoever waits for it is told.
                        await self._conclude(span)
                        self._done.set()
                if not self._done.is_set():
                    await self._conclude(span)
        except BaseException as error:
            self._cut_short_by = type(error).__name__
            raise
        finally:
            stop_watching()
            # The span has them now: do not keep the failures' tracebacks (and their frames).
            self.state.failures.clear()
            metrics.execution_finished(self.workflow.name)
            self._done.set()
            if self.gates is not None:
                self.gates.notify()
        return self.result

    async def _conclude(self, span: Span) -> None:
        """Journal and log how the execution ended, and keep the result once it is durable."""
        conclusion = Conclusion(
            execution_id=self.execution_id,
            state=self.state,
            emitter=self._emitter,
            cancel_reason=self._cancel_reason,
            timeout=self._timeout,
            waiting_gates=self._waiting_gates,
        )
        self.result = await conclusion.conclude(span)

    def _start_data(self) -> dict[str, Any]:
        if self._resumed:
            data: dict[str, Any] = {
                "reused_steps": sorted(self.state.outputs),
                "correlation_id": self.correlation_id,
            }
            if self.state.completed_items:
                data["reused_items"] = {
                    step_id: len(items) for step_id, items in self.state.completed_items.items()
                }
            return data
        data = {
            "workflow": self.workflow.name,
            "inputs": dict(self.inputs),
            "correlation_id": self.correlation_id,
        }
        if self._directory is not None:
            data["directory"] = str(self._directory)
        return data

    async def _schedule(self, supervisor: Supervisor, deadline: float) -> None:
        """Start steps as they become ready until all finished; settle how the run ended."""
        state = self.state
        self._supervisor = supervisor
        self._deadline = deadline
        with trio.move_on_at(deadline) as timeout_scope:
            if not self._cancel_event.is_set():
                self._dispatching = True
                self._dispatch_ready()
            while self._dispatching and state.ending is Ending.COMPLETED and state.running:
                message = await self._report_receive.receive()
                if isinstance(message, BaseException):
                    raise message
                if message is not None:
                    # An outcome a step actor left to this task (its step was cut short).
                    state.settle(message.step_id, message.result)
                    self._dispatch_ready()
                    if self.gates is not None:
                        self.gates.notify()
                elif self._spawn_wake_up:
                    # A new pass: spawn step actors for the steps still ready.
                    self._spawn_wake_up = False
                    self._spawn_budget = SPAWNS_PER_PASS
                    self._dispatch_ready()
                # Otherwise a wake-up or a cancel request: the loop's condition says which.
        self._dispatching = False
        if self._cancel_event.is_set():
            # Even a cancel requested before the run began: it ends cancelled.
            state.end(Ending.CANCELLED)
        if timeout_scope.cancelled_caught or (self._past_deadline() and not state.all_settled):
            # Steps left unstarted because the timeout passed (before the scheduler woke): the
            # execution timed out just the same.
            state.end(Ending.TIMED_OUT)
        self._ending_settled = True
        self._stop_event.set()
        if state.ending is Ending.WAITING:
            # Suspended: the waiting gates end at once (the stop), and nothing is closed, as
            # every unfinished step waits for the resume.
            await self._winding.wind_down(min(trio.current_time() + self._grace, deadline))
            return
        if state.ending is Ending.CANCELLED:
            # The grace never stretches the execution past its own timeout.
            grace = 0.0 if self._forced else self._grace
            await self._winding.wind_down(min(trio.current_time() + grace, deadline))
        elif state.ending is not Ending.COMPLETED:
            await self._winding.wind_down(trio.current_time())
        await self._winding.close_pending()

    def _dispatch_ready(self, reporting: StepSlot | None = None) -> None:
        """Give ready steps to step actors while concurrency allows and the run goes on.

        `reporting` is the idle step actor calling (if one is): a step given to it is not sent,
        as it runs the step as soon as this returns.
        """
        if self._past_deadline():
            # Past the execution's timeout nothing starts, though the scheduler may not know yet.
            return
        state = self.state
        while self._dispatching:
            if not state.idle and self._spawn_budget <= 0:
                if (state.ready or state.items_ready) and not self._spawn_wake_up:
                    # This pass spawned its share: the scheduler task spawns more on its next.
                    self._spawn_wake_up = True
                    self._report_send.send_nowait(None)
                return
            step = state.next_step()
            if step is None:
                return
            slot = state.take_idle() or self._spawn_step_actor()
            state.start(step, slot)
            if slot is not reporting:
                slot.ref.tell_nowait(step)

    def _spawn_step_actor(self) -> StepSlot:
        """A new step actor in the execution's supervisor, as its slot (all others are busy)."""
        supervisor = self._supervisor
        assert supervisor is not None, "step actors are spawned only while the run schedules"
        slot = StepSlot()
        slot.ref = supervisor.spawn_nowait(
            partial(StepActor, self, slot),
            name=f"step-actor-{self._spawned}",
            restart="temporary",
            mailbox_size=1,
        )
        self._spawned += 1
        self._spawn_budget -= 1
        return slot

    def _past_deadline(self) -> bool:
        """Whether the execution's timeout has passed (looked up only when there is one)."""
        return self._deadline != math.inf and trio.current_time() >= self._deadline

    def _skipped(self, step_id: str, reason: str) -> None:
        """Journal a step skipped because a dependency failed or a step it reads was skipped."""
        self._emitter.emit_nowait(
            EventType.STEP_SKIPPED, step_id=step_id, data={"reason": reason}, trusted=True
        )

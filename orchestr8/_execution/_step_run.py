"""Running steps: render a step's input, build its agent, call it under its policy, journal it all.

`StepRunner` runs one step. It never raises an error (a failure is a `StepResult`), only
cancellation, and every path records the step's events in order: `step.started`, the pipeline's
attempt events, then `step.succeeded` or `step.failed`; a step that its execution stopped
between attempts (a cancel or timeout in progress) ends `cancelled`, recorded by the engine.
`StepActor` is the supervised actor that runs steps one at a time and reports each outcome to the
execution's scheduler.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import trio

from .._agents._contract import Agent, AgentContext
from .._agents._registry import AgentRegistry
from .._agents._workflow_directory import agents_built_in
from .._errors import (
    AgentExitError,
    CallStoppedError,
    ExecutionStateError,
    OutputNotSerialisableError,
    exception_leaves,
    message_of,
)
from .._journal._events import EventType, StepStatus, describe_error
from .._json import json_value
from .._llm._catalog import ProviderCatalog
from .._observability._logging import bind_log_context, log_context, reset_log_context
from .._observability._metrics import ALL_STEPS, STEP_ID_SERIES_LIMIT, engine_metrics
from .._observability._telemetry import attempt_span
from .._resilience._pipeline import call_with_policy
from .._supervision._actor import Actor
from .._workflow._approvals import APPROVAL_AGENT_ID
from .._workflow._document import Step
from .._workflow._plan_fragments import plan_workflow_name
from .._workflow._step_conditions import filters_items
from ._children import ParentLink, agent_id_of
from ._emitter import Emitter
from ._llm_session import ExecutionLLMSession
from ._loop import run_loop
from ._map import MapCoordinator, MapItem
from ._planning import PlanAgent, Replanner
from ._results import StepResult
from ._skipping import check_condition
from ._state import Ending, RunState, StepSlot
from ._step_resilience import SharedResilience, StepListener, current_step

if TYPE_CHECKING:
    from ._children import ChildRunner
    from ._gates import GateBoard
    from ._spending import ExecutionBudget

_logger = logging.getLogger("orchestr8.engine")


class StepRunner:
    """Runs the steps of one execution: each step's agent through the resilience pipeline."""

    def __init__(
        self,
        *,
        execution_id: str,
        state: RunState,
        emitter: Emitter,
        registry: AgentRegistry,
        agents: Mapping[str, Agent] | None = None,
        resilience: SharedResilience,
        cancel_event: trio.Event,
        stop_event: trio.Event,
        random_source: random.Random | None = None,
        sync_limiter: trio.CapacityLimiter | None = None,
        children: ChildRunner | None = None,
        correlation_id: str | None = None,
        gates: GateBoard | None = None,
        providers: ProviderCatalog | None = None,
        budget: ExecutionBudget | None = None,
        directory: Path | None = None,
    ) -> None:
        """Run the steps of `state`'s workflow, rendering inputs from its finished steps' outputs.

        `cancel_event` is what agents see as a cancel request; `stop_event` (set on a cancel and
        when a timeout or a failure winds the run down) stops every step's retries. `gates` runs
        the approval steps (an execution without them has none). `providers` (the runtime's
        catalog) gives the execution its LLM session, which every attempt's context carries;
        `budget` holds the execution's budgets, which that session reserves and settles on.
        `directory` (the workflow file's) is where an agent built at run time is built.
        """
        self.execution_id = execution_id
        self._directory = directory
        self.workflow = state.workflow
        self._state = state
        self._emitter = emitter
        self._registry = registry
        self._agents: Mapping[str, Agent] = agents if agents is not None else {}
        self._resilience = resilience
        self._cancel_event = cancel_event
        self._stop_event = stop_event
        self._random = random_source
        self._sync_limiter = sync_limiter
        self._children = children
        self._correlation_id = correlation_id or execution_id
        self.listeners: dict[str, StepListener] = {}
        """The attempt counters of the steps (and running map items) that started, by id."""
        self._series_per_step = len(state.workflow.steps) <= STEP_ID_SERIES_LIMIT
        """Whether step metrics carry the step's id, or `ALL_STEPS` (a very wide workflow)."""
        self._maps = MapCoordinator(state=state, emitter=emitter, stop_event=stop_event)
        self._gates = gates
        self.llm: ExecutionLLMSession | None = None
        """The execution's LLM session (`AgentContext.llm`); None without a runtime's catalog."""
        if providers is not None:
            self.llm = ExecutionLLMSession(
                catalog=providers.overlay(state.workflow.providers),
                resilience=resilience,
                emitter=emitter,
                listeners=self.listeners,
                budget=budget,
            )

    @property
    def suspending(self) -> bool:
        """Whether the run is being suspended with gates open: its cut units record nothing."""
        return self._state.ending is Ending.WAITING

    async def run(
        self,
        unit: Step | MapItem,
        unit_id: str | None = None,
        local_values: Mapping[str, Any] | None = None,
    ) -> StepResult:
        """Run one step (or map item) to its end under its policy; never raises errors.

        Every attempt is journaled. A step whose execution stopped before it began never
        starts, and one stopped between attempts starts no more of them: either is
        `cancelled`. A step whose `when` is false never starts either: it is `skipped`
        (`_skipping`). A repeat step runs as a loop (`_loop`), which calls this once per
        iteration with the iteration's `unit_id` (`ID#k`, the step id its events carry) and the
        `${...}` locals its input reads. A map step (`for_each`) coordinates its items (`_map`),
        which the engine gives to step actors as `MapItem`s, each run here under its id `ID[i]`;
        a map's `when` that reads `item` or `index` is checked per item, not for the step.
        """
        if self._stop_event.is_set():
            return StepResult(StepStatus.CANCELLED)
        if isinstance(unit, MapItem):
            item, step, step_id, local_values = True, unit.step, unit.id, unit.local_values
            if step.when is not None and filters_items(step):
                series = step.id if self._series_per_step else ALL_STEPS
                ended = await self._maps.check_item(unit, series)
                if ended is not None:
                    return ended
        else:
            item, step = False, unit
            if step.when is not None and unit_id is None and not filters_items(step):
                ended = await check_condition(
                    step, step.when, self._state, self._emitter, self.workflow.name
                )
                if ended is not None:
                    return ended
            if step.repeat is not None and unit_id is None:
                return await run_loop(self, step, self._state, self._emitter)
            if step.for_each is not None:
                return await self._maps.run(step)
            step_id = unit_id or step.id
        if step.approval is not None:
            return await self._run_gate(step, step_id, local_values, item)
        emitter, spec = self._emitter, step.agent
        agent_id = spec.id if spec is not None else agent_id_of(step)
        await emitter.emit(
            EventType.STEP_STARTED, step_id=step_id, data={"agent": agent_id}, trusted=True
        )
        listener = self.listeners[step_id] = StepListener(
            emitter,
            step_id,
            self.workflow.name,
            agent_id,
            step.id if self._series_per_step else ALL_STEPS,
            stop=self._stop_event,
        )
        if unit_id is not None and not item:
            # The engine knows the step, not its units: giving up on it silences this unit.
            self.listeners[step.id] = listener
        started = trio.current_time()
        current_step.set((listener, 1))
        log_token = bind_log_context({"step_id": step_id, "agent_id": agent_id})
        rendered_input: Any = None
        try:
            rendered_input = step.input.render(
                self._state.inputs, self._state.outputs, local_values
            )
            # Built once at admission and reused; built here only for a step admission could
            # not build for (its config takes `${secrets.NAME}` values known only now).
            agent = self._agents.get(step.id)
            if agent is None:
                if spec is None:
                    agent = self._child_agent(step, local_values)
                else:
                    with agents_built_in(self._directory):
                        agent = self._registry.create(agent_id, spec.config)
            policy = self.workflow.policy_for(step.id)
            breaker, bulkhead, rate_limiter = self._resilience.layers(
                policy.key or agent.resilience_key or agent_id, policy
            )

            attempt = partial(self._run_attempt, agent, step_id, agent_id, rendered_input)

            if not emitter.may_call_agents:
                # The journal lags (or failed): wait for it before any attempt and its timeout.
                await emitter.until_agents_may_run()
            output = as_json_value(
                await call_with_policy(
                    attempt,
                    policy,
                    breaker=breaker,
                    bulkhead=bulkhead,
                    rate_limiter=rate_limiter,
                    listener=listener,
                    random=self._random,
                    stop=self._stop_event,
                )
            )
        except Exception as error:
            failure: Exception | None = error
        else:
            failure = None
        finally:
            current_step.set(None)
            reset_log_context(log_token)
            if item:
                # A map's items are many: only the running ones keep their counters.
                del self.listeners[step_id]
        if listener.silenced:
            # The engine gave up on this step and the execution ended without it.
            return StepResult(StepStatus.CANCELLED, attempts=listener.attempts)
        if failure is not None and not isinstance(step.on_error, str) and not item:
            # A map step is replanned as a whole (its `on_error`), never one item at a time.
            output, failure = await self._replan(step, rendered_input, failure, listener)
            if listener.silenced:
                return StepResult(StepStatus.CANCELLED, attempts=listener.attempts)
        if failure is not None:
            if isinstance(failure, CallStoppedError) and self._stop_event.is_set():
                _logger.info("step %s stopped: %s", step_id, failure)
                self._metrics(step, StepStatus.CANCELLED, started)
                return StepResult(StepStatus.CANCELLED, attempts=listener.attempts)
            return await self._failed(step, listener, failure, started)
        await emitter.emit(
            EventType.STEP_SUCCEEDED,
            step_id=step_id,
            attempt=listener.attempts,
            data={"output": output},
        )
        self._metrics(step, StepStatus.SUCCEEDED, started)
        return StepResult(StepStatus.SUCCEEDED, attempts=listener.attempts, output=output)

    async def _run_gate(
        self,
        step: Step,
        gate_id: str,
        local_values: Mapping[str, Any] | None,
        item: bool,
    ) -> StepResult:
        """Run one approval unit: its gate opens, waits and resolves on the board (`_gates`).

        Journaled as any step (`step.started`, then `step.succeeded` with the answer or
        `step.failed`), with no attempts: a gate makes no call, so nothing is retried.
        """
        emitter, agent_id = self._emitter, APPROVAL_AGENT_ID
        await emitter.emit(
            EventType.STEP_STARTED, step_id=gate_id, data={"agent": agent_id}, trusted=True
        )
        listener = self.listeners[gate_id] = StepListener(
            emitter,
            gate_id,
            self.workflow.name,
            agent_id,
            step.id if self._series_per_step else ALL_STEPS,
            stop=self._stop_event,
        )
        if gate_id != step.id and not item:
            self.listeners[step.id] = listener
        started = trio.current_time()
        assert self._gates is not None, "a run whose workflow has gates has a gate board"
        try:
            output = await self._gates.hold(step, gate_id, local_values)
        except Exception as error:
            failure: Exception | None = error
        else:
            failure = None
        finally:
            if item:
                del self.listeners[gate_id]
        if listener.silenced or (
            isinstance(failure, CallStoppedError) and self._stop_event.is_set()
        ):
            self._metrics(step, StepStatus.CANCELLED, started)
            return StepResult(StepStatus.CANCELLED)
        if failure is not None:
            return await self._failed(step, listener, failure, started)
        await emitter.emit(EventType.STEP_SUCCEEDED, step_id=gate_id, data={"output": output})
        self._metrics(step, StepStatus.SUCCEEDED, started)
        return StepResult(StepStatus.SUCCEEDED, output=output)

    async def _failed(
        self, step: Step, listener: StepListener, error: Exception, started: float
    ) -> StepResult:
        """Journal and log a step that failed for good, and return its result."""
        result = StepResult(
            StepStatus.FAILED, attempts=listener.attempts, error=describe_error(error)
        )
        if step.on_error != "continue" and not listener.step_id.endswith("]"):
            # A map item's failure is its map's to record (`_map`).
            self._state.record_failure(step.id, error)
        await self._emitter.emit(
            EventType.STEP_FAILED,
            step_id=listener.step_id,
            attempt=listener.attempts or None,
            data={"error": result.error},
        )
        with log_context(step_id=step.id, agent_id=agent_id_of(step)):
            _logger.warning(
                "step %s failed after %d attempt(s): %s: %s",
                listener.step_id,
                listener.attempts,
                result.error["type"] if result.error else "",
                result.error["message"] if result.error else "",
            )
        self._metrics(step, result.status, started)
        return result

    def _metrics(self, step: Step, status: StepStatus, started: float) -> None:
        engine_metrics().step_finished(
            self.workflow.name,
            step.id if self._series_per_step else ALL_STEPS,
            agent_id_of(step),
            status,
            trio.current_time() - started,
        )

    def _child_agent(self, step: Step, local_values: Mapping[str, Any] | None = None) -> Agent:
        """The agent running a sub-workflow or plan step's child execution (built for each run).

        `local_values` are the run's `${...}` locals (a loop iteration's), for a planner's task.
        """
        if self._children is None:
            kind = "a sub-workflow" if step.plan is None else "a plan"
            raise ExecutionStateError(
                f"step {step.id} runs {kind}, which needs a runtime (open_runtime)"
            )
        parent = ParentLink(self.execution_id, self._emitter, self._correlation_id)
        if step.plan is not None:
            return PlanAgent(
                spec=step.plan,
                task=step.plan.input.render(self._state.inputs, self._state.outputs, local_values),
                registry=self._registry,
                children=self._children,
                parent=parent,
                name=plan_workflow_name(self.workflow.name, step.id),
            )
        return self._children.agent_for(step, parent)

    async def _replan(
        self, step: Step, rendered_input: Any, error: Exception, listener: StepListener
    ) -> tuple[Any, Exception | None]:
        """Hand a step that failed for good to its replanning planner (`_planning`).

        Returns (output, None) when a replacement succeeded, else (None, the error it fails with).
        """
        replanning = step.on_error
        assert not isinstance(replanning, str), "only a replanning step is replanned"
        if self._children is None or self._stop_event.is_set():
            return None, error
        current_step.set((listener, 1))
        log_token = bind_log_context({"step_id": step.id, "agent_id": listener.agent_id})
        try:
            replanner = Replanner(
                registry=self._registry,
                children=self._children,
                parent=ParentLink(self.execution_id, self._emitter, self._correlation_id),
                workflow_name=self.workflow.name,
                resilience=self._resilience,
                run_attempt=self._run_attempt,
                random_source=self._random,
                stop_event=self._stop_event,
            )
            output = await replanner.replan(
                step,
                replanning,
                task=replanning.replan.input.render(self._state.inputs, self._state.outputs),
                input=rendered_input,
                error=error,
                policy=self.workflow.policy_for(step.id),
                listener=listener,
            )
        except Exception as replan_error:
            return None, replan_error
        finally:
            current_step.set(None)
            reset_log_context(log_token)
        return output, None

    async def _run_attempt(
        self, agent: Agent, step_id: str, agent_id: str, input: Any, number: int
    ) -> Any:
        """One attempt of `agent` at the step (or unit) `step_id`, for `run` or a replanned step."""
        if self._emitter.failure is not None:
            # The journal failed: nothing this attempt did could be recorded. The run cancels
            # its steps at once (`ExecutionRun._journal_failed`); start nothing.
            await trio.sleep_forever()
        # The pipeline runs each attempt under a scope whose deadline is the earlier of the
        # attempt timeout and the step's total deadline: tell the agent.
        deadline = trio.current_effective_deadline()
        context = AgentContext(
            execution_id=self.execution_id,
            step_id=step_id,
            workflow_name=self.workflow.name,
            agent_id=agent_id,
            attempt=number,
            deadline=deadline,
            progress_callback=self._on_progress,
            usage_callback=self._on_usage,
            cancel_event=self._cancel_event,
            sync_limiter=self._sync_limiter,
            llm=self.llm,
        )
        with attempt_span(step_id, agent_id, number, deadline=deadline):
            try:
                return await agent.run(input, context)
            except BaseException as error:
                failure = step_failure_for_exit(error)
                if failure is None:
                    raise
                raise failure from error

    def _on_usage(self, context: AgentContext, counts: Mapping[str, int]) -> None:
        listener = self.listeners.get(context.step_id)
        if listener is None or listener.silenced:
            # Silenced, or a map item that ended (an agent's late report): not recorded.
            return
        self._state.add_usage(context.step_id, counts)
        self._emitter.emit_nowait(
            EventType.STEP_USAGE,
            step_id=context.step_id,
            attempt=context.attempt,
            data=dict(counts),
        )

    def _on_progress(self, context: AgentContext, data: Mapping[str, Any]) -> None:
        listener = self.listeners.get(context.step_id)
        if listener is None or listener.silenced:
            return
        self._emitter.emit_nowait(
            EventType.STEP_PROGRESS,
            step_id=context.step_id,
            attempt=context.attempt,
            data=dict(data),
        )


class StepScheduler(Protocol):
    """What a step actor works for: the execution that runs its steps and settles their outcomes."""

    steps: StepRunner

    def step_finished(self, step_id: str, result: StepResult, slot: StepSlot) -> None:
        """Settle a step's outcome; a step given back to `slot` is left in `slot.step`."""


#: How many steps a step actor runs in a row, each made ready by the one before, before it lets
#: the other tasks run (a chain of instant steps must not hold up everything else).
STEPS_PER_TURN = 32


class StepActor(Actor):
    """Runs steps one at a time: each step's agent under its policy; reports every outcome.

    Idle step actors are kept and given the next ready step (another is spawned only when all are
    busy), so a step costs one message, not a spawn and a stop. The report is settled on this
    actor's own task, and a step it makes ready is usually given to this same actor, which runs
    it at once: a chain of steps needs no round trip through the scheduler task, and no trip
    through the mailbox either for up to `STEPS_PER_TURN` steps in a row.
    """

    def __init__(self, execution: StepScheduler, slot: StepSlot) -> None:
        """Run the steps `execution` gives to `slot`, and report each to it."""
        self._execution = execution
        self._slot = slot

    async def receive(self, message: Step | MapItem) -> None:
        """Run the step, then each step its report gives back to this actor, a turn's worth."""
        step: Step | MapItem | None = message
        for _ in range(STEPS_PER_TURN):
            assert step is not None
            result: StepResult | None = None
            try:
                result = await self._execution.steps.run(step)
            finally:
                # A forced stop cancels the step mid-run: the scheduler must still hear of it.
                self._report(result or StepResult(StepStatus.CANCELLED))
            step = self._slot.step
            if step is None:
                return
        # Given another step after a full turn: queue it, so other tasks get their turn first.
        self._slot.ref.tell_nowait(step)

    async def on_stop(self) -> None:
        """Report a step this actor was given but never ran (a forced stop dropped it)."""
        # Stopped before its input was handled (a forced stop drops the queued message): the
        # scheduler waits for exactly one report per started step, so it must still get one.
        self._report(StepResult(StepStatus.CANCELLED))

    def _report(self, result: StepResult) -> None:
        step = self._slot.step
        if step is not None:
            self._slot.step = None
            self._execution.step_finished(step.id, result, self._slot)


def step_failure_for_exit(error: BaseException) -> BaseException | None:
    """The step failure for what an agent raised that is no error, or None to let it through.

    `SystemExit`, `KeyboardInterrupt`, `GeneratorExit` and other BaseExceptions raised by agent
    code fail its step rather than ending the process: they become `AgentExitError`. Cancellation
    (`trio.Cancelled`) and a real Ctrl-C go on untouched, as do errors: without a signal receiver
    trio's SIGINT handler raises `KeyboardInterrupt` in whatever code runs, an agent's included,
    and that one (`_is_ctrl_c`) must still interrupt the program. In a group (an agent's nursery),
    the cancellations and errors stay as they are and the rest is replaced by one
    `AgentExitError`, so a cancel scope still takes back its own `Cancelled` and what remains is
    an error.
    """
    if isinstance(error, (Exception, trio.Cancelled)) or _is_ctrl_c(error):
        return None
    if not isinstance(error, BaseExceptionGroup):
        return _exit_error(type(error).__name__, error)
    if any(_is_ctrl_c(leaf) for leaf in exception_leaves(error)):
        return None
    exits = error.subgroup(
        lambda leaf: not isinstance(leaf, (BaseExceptionGroup, Exception, trio.Cancelled))
    )
    if exits is None:
        return None
    kept = error.subgroup(lambda leaf: isinstance(leaf, (Exception, trio.Cancelled)))
    names = ", ".join(sorted({type(leaf).__name__ for leaf in exception_leaves(exits)}))
    failure = _exit_error(names, exits)
    if kept is None:
        return failure
    return BaseExceptionGroup(str(error.message), [*kept.exceptions, failure])


#: Where trio's own code lives: a `KeyboardInterrupt` raised from there is a real SIGINT.
_TRIO_CORE = os.path.dirname(trio._core.__file__) + os.sep


def _is_ctrl_c(error: BaseException) -> bool:
    """Whether `error` is a `KeyboardInterrupt` that trio raised for a real SIGINT.

    Trio's signal handler (or its delivery of a pending Ctrl-C) raises it, so the innermost
    frame of its traceback is trio's; one that agent code raised ends in the agent's frame.
    Signals reach only the main thread, so one from a sync agent's worker thread is never real.
    """
    if not isinstance(error, KeyboardInterrupt):
        return False
    traceback = error.__traceback__
    if traceback is None:
        return False
    while traceback.tb_next is not None:
        traceback = traceback.tb_next
    return traceback.tb_frame.f_code.co_filename.startswith(_TRIO_CORE)


def _exit_error(names: str, raised: BaseException) -> AgentExitError:
    detail = "" if isinstance(raised, BaseExceptionGroup) else message_of(raised)
    shown = f"{names}({detail})" if detail else names
    failure = AgentExitError(
        f"the agent raised {shown}, which would end the process; its step fails instead"
    )
    failure.__cause__ = raised
    return failure


def as_json_value(value: Any) -> Any:
    """An agent's output as the journal will record it (`json_value`), or raise.

    Raises:
        OutputNotSerialisableError: the output is not JSON.
    """
    try:
        return json_value(value)
    except (TypeError, ValueError) as error:
        raise OutputNotSerialisableError(
            f"the agent returned a value that is not JSON: {error}"
        ) from None

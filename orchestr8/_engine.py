"""The engine: one execution of a workflow, scheduled step by step onto supervised step actors.

An execution is an actor subtree. Its scheduler opens a supervisor for the execution and spawns
one temporary *step actor* per running step, the moment the step is ready (all its dependencies
finished) and a concurrency slot is free: no lock-step rounds. A step actor renders nothing and
decides nothing; it runs its agent through the resilience pipeline, records the step's events and
reports the outcome to the scheduler, which alone decides what runs next, what is skipped and how
the execution ends.

Ending early comes in three kinds, all recorded in the journal:

- a user cancel is cooperative first (agents see `context.cancel_requested`), then forced when
  the grace period runs out, and ends in `execution.cancelled`;
- the execution's `timeout` forces the running steps at once and fails the execution;
- with `fail_fast`, the first step that fails for good forces the running steps at once.
"""

from __future__ import annotations

import json
import logging
import math
import random
from collections import deque
from collections.abc import Mapping
from functools import partial
from typing import Any

import attrs
import trio

from ._actor import Actor
from ._agent_registry import AgentRegistry
from ._agents import AgentContext
from ._bus import EventBus
from ._emitter import Emitter
from ._errors import ExecutionTimeoutError, Orchestr8Error, OutputNotSerialisableError
from ._events import EventType, ExecutionStatus, StepStatus, describe_error
from ._logging import log_context
from ._metrics import engine_metrics
from ._pipeline import call_with_policy
from ._redaction import redact
from ._results import ExecutionResult, StepResult
from ._step_resilience import SharedResilience, StepListener, current_step
from ._supervisor import open_supervisor
from ._telemetry import (
    attempt_span,
    execution_span,
    record_execution_result,
)
from ._workflow import Step, Workflow

_logger = logging.getLogger("orchestr8.engine")

@attrs.frozen
class _Finished:
    step_id: str
    result: StepResult


@attrs.define(eq=False)
class _Slot:
    """A step actor as the scheduler sees it: its ref and the step it was last given, if any."""

    ref: Any = None
    step: Step | None = None


class _StepActor(Actor):
    """Runs steps one at a time: each step's agent under its policy; reports every outcome.

    The scheduler keeps idle step actors and hands a ready step to one of them (spawning another
    only when all are busy), so a step costs one message and one report, not a spawn and a stop.
    """

    def __init__(self, execution: ExecutionRun, slot: _Slot) -> None:
        self._execution = execution
        self._slot = slot

    async def receive(self, message: tuple[Step, Any]) -> None:
        step, rendered_input = message
        result: StepResult | None = None
        try:
            result = await self._execution.run_step(step, rendered_input)
        finally:
            # A forced stop cancels the step mid-run: the scheduler must still hear of it.
            self._report(result or StepResult(StepStatus.CANCELLED))

    async def on_stop(self) -> None:
        # Stopped before its input was handled (a forced stop drops the queued message): the
        # scheduler waits for exactly one report per started step, so it must still get one.
        self._report(StepResult(StepStatus.CANCELLED))

    def _report(self, result: StepResult) -> None:
        step = self._slot.step
        if step is not None:
            self._slot.step = None
            self._execution.report(_Finished(step.id, result))


class ExecutionRun:
    """One execution of a workflow: the scheduler, its step actors and its events."""

    def __init__(
        self,
        *,
        execution_id: str,
        workflow: Workflow,
        inputs: Mapping[str, Any],
        emitter: Emitter,
        registry: AgentRegistry,
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
    ) -> None:
        """Prepare an execution; `completed` holds the outputs of steps reused by a resume."""
        self.execution_id = execution_id
        self.correlation_id = correlation_id or execution_id
        self.workflow = workflow
        self.inputs = inputs
        self._emitter = emitter
        self._registry = registry
        self._resilience = resilience
        self._bus = bus
        self._grace = cancel_grace
        self._timeout = timeout
        self._resumed = resumed
        self._random = random_source
        self._outputs: dict[str, Any] = dict(completed or {})
        self._results: dict[str, StepResult] = {
            step_id: StepResult(StepStatus.SUCCEEDED, output=output)
            for step_id, output in self._outputs.items()
        }
        self._cancel_event = trio.Event()
        self._cancel_reason = ""
        self._report_send, self._report_receive = trio.open_memory_channel[_Finished | None](
            len(workflow.steps) + 1
        )
        self._running: dict[str, _Slot | None] = {}
        self._slots: list[_Slot] = []
        self._idle: list[_Slot] = []
        self._waiting: dict[str, int] = {}
        self._listeners: dict[str, StepListener] = {}
        self._usage: dict[str, int] = dict(usage or {})
        self._step_usage: dict[str, dict[str, int]] = {
            step_id: dict(counts) for step_id, counts in (step_usage or {}).items()
            if step_id in self._outputs
        }
        self._done = trio.Event()
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
        self._report_send.send_nowait(None)
        return True

    @property
    def cancel_requested(self) -> bool:
        """Whether a cancel was requested."""
        return self._cancel_event.is_set()

    async def wait(self) -> ExecutionResult:
        """Wait until the execution has finished, and return its result."""
        await self._done.wait()
        assert self.result is not None
        return self.result

    def report(self, finished: _Finished) -> None:
        """Called by a step actor with its outcome (never blocks: one slot per step)."""
        self._report_send.send_nowait(finished)

    # -- the scheduler ------------------------------------------------------------------------

    async def run(self) -> ExecutionResult:
        """Run the execution to its end and return the result; every ending is journaled."""
        metrics = engine_metrics()
        metrics.execution_started(self.workflow.name)
        try:
            # The span encloses the supervisor, so every step actor's task inherits it.
            with execution_span(
                self.workflow.name, self.execution_id, self.correlation_id, resumed=self._resumed
            ) as span:
                start = (
                    EventType.EXECUTION_RESUMED if self._resumed else EventType.EXECUTION_STARTED
                )
                await self._emitter.emit(start, data=self._start_data())
                _logger.info(
                    "execution %s of workflow %r %s", self.execution_id, self.workflow.name,
                    "resumed" if self._resumed else "started",
                )
                deadline = (
                    math.inf if self._timeout is None else trio.current_time() + self._timeout
                )
                async with open_supervisor(
                    name=f"execution:{self.execution_id}", shutdown_grace=self._grace,
                    bus=self._bus,
                ) as supervisor:
                    ending = await self._schedule(supervisor, deadline)
                result = await self._finish(ending)
                record_execution_result(span, result.status, result.error)
                _logger.log(
                    logging.INFO if result.succeeded else logging.WARNING,
                    "execution %s %s%s", self.execution_id, result.status,
                    f": {result.error.get('type')}: {result.error.get('message')}"
                    if result.error else "",
                )
                # Finished means durable: whoever waits for the result can read it in the journal.
                await self._emitter.flush()
                self.result = result
        finally:
            metrics.execution_finished(self.workflow.name)
            self._done.set()
        return self.result

    def _start_data(self) -> dict[str, Any]:
        if self._resumed:
            return {"reused_steps": sorted(self._outputs), "correlation_id": self.correlation_id}
        return {
            "workflow": self.workflow.name, "inputs": dict(self.inputs),
            "correlation_id": self.correlation_id,
        }

    async def _schedule(self, supervisor: Any, deadline: float) -> str:
        """Start steps as they become ready until all finished; return how the run ended."""
        workflow = self.workflow
        waiting = self._waiting = {
            step_id: sum(1 for dependency in dependencies if dependency not in self._results)
            for step_id, dependencies in workflow.dependencies.items()
            if step_id not in self._results
        }
        ready = deque(step_id for step_id in workflow.order if waiting.get(step_id) == 0)
        limit = workflow.max_concurrency or math.inf
        ending = "completed"
        with trio.move_on_at(deadline) as timeout_scope:
            while True:
                if self._cancel_event.is_set():
                    # Nothing starts after a cancel request, even one made before the run began.
                    ending = "cancelled"
                    break
                while ready and len(self._running) < limit and ending == "completed":
                    await self._start(supervisor, ready.popleft())
                if not self._running:
                    break
                finished = await self._report_receive.receive()
                if finished is None:
                    ending = "cancelled"
                    break
                slot = self._running.pop(finished.step_id, None)
                if slot is not None:
                    self._idle.append(slot)
                result = finished.result
                self._results[finished.step_id] = result
                ok = result.status is StepStatus.SUCCEEDED
                step = workflow.steps_by_id[finished.step_id]
                if ok or step.on_error == "continue":
                    self._outputs[finished.step_id] = result.output if ok else None
                    for dependent in workflow.dependents[finished.step_id]:
                        if dependent in waiting:
                            waiting[dependent] -= 1
                            if waiting[dependent] == 0:
                                ready.append(dependent)
                elif result.status is StepStatus.FAILED:
                    await self._skip_dependents(finished.step_id, waiting)
                    if workflow.fail_fast:
                        ending = "failed"
                        break
        if timeout_scope.cancelled_caught:
            ending = "timed_out"
        if ending == "cancelled":
            # The grace never stretches the execution past its own timeout.
            await self._wind_down(min(trio.current_time() + self._grace, deadline))
        elif ending in ("failed", "timed_out"):
            await self._wind_down(trio.current_time())
        await self._close_pending(ending)
        return ending

    async def _start(self, supervisor: Any, step_id: str) -> None:
        step = self.workflow.steps_by_id[step_id]
        try:
            rendered = step.input.render(self.inputs, self._outputs)
        except Orchestr8Error as error:
            await self._emitter.emit(
                EventType.STEP_STARTED, step_id=step_id, data={"agent": step.agent.id}
            )
            failure = StepResult(StepStatus.FAILED, error=describe_error(error))
            await self._emitter.emit(
                EventType.STEP_FAILED, step_id=step_id, data={"error": failure.error}
            )
            self.report(_Finished(step_id, failure))
            self._running[step_id] = None
            return
        if self._idle:
            slot = self._idle.pop()
        else:
            slot = _Slot()
            slot.ref = supervisor.spawn_nowait(
                partial(_StepActor, self, slot), name=f"step-actor-{len(self._slots)}",
                restart="temporary", mailbox_size=1,
            )
            self._slots.append(slot)
        slot.step = step
        self._running[step_id] = slot
        slot.ref.tell_nowait((step, rendered))

    async def run_step(self, step: Step, rendered_input: Any) -> StepResult:
        """Run one step's agent under its policy, journaling every attempt; never raises errors."""
        if self._cancel_event.is_set():
            # Cancelled before it began (a step spawned as the cancel came): it never starts.
            return StepResult(StepStatus.CANCELLED)
        emitter, step_id = self._emitter, step.id
        await emitter.emit(EventType.STEP_STARTED, step_id=step_id, data={"agent": step.agent.id})
        listener = self._listeners[step_id] = StepListener(
            emitter, step_id, self.workflow.name, step.agent.id
        )
        started = trio.current_time()
        current_step.set((emitter, step_id, 1))
        try:
            agent = self._registry.create(step.agent.id, step.agent.config)
            policy = self.workflow.policy_for(step_id)
            breaker, bulkhead, rate_limiter = self._resilience.layers(
                policy.key or step.agent.id, policy
            )
            contexts = partial(
                AgentContext,
                execution_id=self.execution_id,
                step_id=step_id,
                workflow_name=self.workflow.name,
                agent_id=step.agent.id,
                progress_callback=self._on_progress,
                usage_callback=self._on_usage,
                cancel_event=self._cancel_event,
            )

            async def attempt(number: int) -> Any:
                # The pipeline runs each attempt under a scope whose deadline is the earlier of
                # the attempt timeout and the step's total deadline: tell the agent.
                deadline = trio.current_effective_deadline()
                context = contexts(attempt=number, deadline=deadline)
                with attempt_span(step_id, step.agent.id, number, deadline=deadline):
                    return await agent.run(rendered_input, context)

            with log_context(step_id=step_id, agent_id=step.agent.id):
                output = as_json_value(
                    await call_with_policy(
                        attempt, policy, breaker=breaker, bulkhead=bulkhead,
                        rate_limiter=rate_limiter, listener=listener, random=self._random,
                    )
                )
        except Exception as error:
            result = StepResult(
                StepStatus.FAILED, attempts=listener.attempts, error=describe_error(error)
            )
            await emitter.emit(
                EventType.STEP_FAILED, step_id=step_id, attempt=listener.attempts or None,
                data={"error": result.error},
            )
            with log_context(step_id=step_id, agent_id=step.agent.id):
                _logger.warning(
                    "step %s failed after %d attempt(s): %s: %s", step_id, listener.attempts,
                    result.error["type"] if result.error else "",
                    result.error["message"] if result.error else "",
                )
            self._step_metrics(step, result.status, started)
            return result
        finally:
            current_step.set(None)
        await emitter.emit(
            EventType.STEP_SUCCEEDED, step_id=step_id, attempt=listener.attempts,
            data={"output": output},
        )
        self._step_metrics(step, StepStatus.SUCCEEDED, started)
        return StepResult(StepStatus.SUCCEEDED, attempts=listener.attempts, output=output)

    def _step_metrics(self, step: Step, status: StepStatus, started: float) -> None:
        engine_metrics().step_finished(
            self.workflow.name, step.id, step.agent.id, status, trio.current_time() - started
        )

    def _on_usage(self, context: AgentContext, counts: Mapping[str, int]) -> None:
        step_usage = self._step_usage.setdefault(context.step_id, {})
        for name, value in counts.items():
            step_usage[name] = step_usage.get(name, 0) + value
            self._usage[name] = self._usage.get(name, 0) + value
        self._emitter.emit_nowait(
            EventType.STEP_USAGE, step_id=context.step_id, attempt=context.attempt,
            data=dict(counts),
        )

    def _on_progress(self, context: AgentContext, data: Mapping[str, Any]) -> None:
        self._emitter.emit_nowait(
            EventType.STEP_PROGRESS, step_id=context.step_id, attempt=context.attempt,
            data=dict(data),
        )

    async def _skip_dependents(self, failed: str, waiting: dict[str, int]) -> None:
        """Skip every step that (transitively) depends on `failed`; they can never run."""
        stack = list(self.workflow.dependents[failed])
        while stack:
            step_id = stack.pop()
            if step_id in self._results or step_id not in waiting:
                continue
            del waiting[step_id]
            self._results[step_id] = StepResult(StepStatus.SKIPPED)
            await self._emitter.emit(
                EventType.STEP_SKIPPED, step_id=step_id,
                data={"reason": f"a dependency failed: {failed}"},
            )
            stack.extend(self.workflow.dependents[step_id])

    async def _wind_down(self, deadline: float) -> None:
        """End the running steps: let them finish until `deadline`, then cancel what still runs."""
        with trio.CancelScope(shield=True):
            with trio.move_on_at(deadline):
                await self._collect_running()
            for slot in self._running.values():
                if slot is not None:
                    slot.ref.cancel()
            await self._collect_running()

    async def _collect_running(self) -> None:
        while self._running:
            finished = await self._report_receive.receive()
            if finished is None:
                continue
            self._running.pop(finished.step_id, None)
            self._results[finished.step_id] = finished.result
            if finished.result.status is StepStatus.SUCCEEDED:
                self._outputs[finished.step_id] = finished.result.output
            elif (
                finished.result.status is StepStatus.FAILED
                and self.workflow.steps_by_id[finished.step_id].on_error == "fail"
            ):
                # A failure that lands while winding down still skips its dependents.
                await self._skip_dependents(finished.step_id, self._waiting)

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
                listener = self._listeners.get(step_id)
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

    async def _finish(self, ending: str) -> ExecutionResult:
        """Decide and journal the execution's ending from its steps' results."""
        emitter = self._emitter
        steps = {step_id: self._results[step_id] for step_id in self.workflow.order}
        if ending == "cancelled":
            error = {"type": "Cancelled", "message": self._cancel_reason}
            # The error too, so the journal replays to the very result returned here.
            await emitter.emit(
                EventType.EXECUTION_CANCELLED,
                data=self._with_usage({"reason": self._cancel_reason, "error": error}),
            )
            return self._result(ExecutionStatus.CANCELLED, None, error, steps)
        if ending == "timed_out":
            timeout_error = ExecutionTimeoutError(
                f"the execution ran past its timeout of {self._timeout} s"
            )
            error = describe_error(timeout_error)
            await emitter.emit(EventType.EXECUTION_FAILED, data=self._with_usage({"error": error}))
            return self._result(ExecutionStatus.FAILED, None, error, steps)
        failed = [
            step_id for step_id, result in steps.items()
            if result.status is StepStatus.FAILED
            and self.workflow.steps_by_id[step_id].on_error == "fail"
        ]
        if failed:
            first = steps[failed[0]].error or {}
            error = {**first, "step_id": failed[0]}
            await emitter.emit(EventType.EXECUTION_FAILED, data=self._with_usage({"error": error}))
            return self._result(ExecutionStatus.FAILED, None, error, steps)
        try:
            output = self._render_output()
        except Orchestr8Error as render_error:
            error = describe_error(render_error)
            await emitter.emit(EventType.EXECUTION_FAILED, data=self._with_usage({"error": error}))
            return self._result(ExecutionStatus.FAILED, None, error, steps)
        await emitter.emit(
            EventType.EXECUTION_SUCCEEDED, data=self._with_usage({"output": output})
        )
        return self._result(ExecutionStatus.SUCCEEDED, output, None, steps)

    def _render_output(self) -> Any:
        if self.workflow.output is None:
            # In document order, not completion order, so the same workflow gives the same JSON.
            return {
                step_id: self._outputs[step_id]
                for step_id in self.workflow.order
                if step_id in self._outputs
            }
        return self.workflow.output.render(self.inputs, self._outputs)

    def _result(
        self,
        status: ExecutionStatus,
        output: Any,
        error: dict[str, Any] | None,
        steps: dict[str, StepResult],
    ) -> ExecutionResult:
        # What leaves the engine is redacted exactly as the journal is, so the result equals its
        # replay; dependents got the real outputs (kept in memory only) while the run lasted.
        steps = {
            step_id: attrs.evolve(
                result, output=redact(result.output), usage=self._step_usage.get(step_id, {})
            )
            for step_id, result in steps.items()
        }
        return ExecutionResult(
            self.execution_id, status, redact(output), error, steps, usage=dict(self._usage)
        )

    def _with_usage(self, data: dict[str, Any]) -> dict[str, Any]:
        if self._usage:
            data["usage"] = dict(self._usage)
        return data


def as_json_value(value: Any) -> Any:
    """`value` as the journal will record it (tuples become lists, keys strings), or raise."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as error:
        raise OutputNotSerialisableError(
            f"the agent returned a value that is not JSON: {error}"
        ) from None

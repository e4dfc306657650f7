"""Loops: a step with `repeat` runs its agent again and again until `until` holds.

`run_loop` runs one repeat step. Each iteration is a unit of its own in the journal, `ID#k`
(1-based), with the events of any step (`step.started`, its attempts, `step.succeeded` or
`step.failed`) and its own attempt budget under the step's policy. After an iteration succeeds,
`until` is evaluated over `output` (that iteration's output), `iteration` (k), `inputs` and the
outputs of the step's dependencies, and `iteration.finished` records the answer. True: the step
succeeds with that output. False: the next iteration runs with `${previous}` set to it, at most
`max_iterations` times in all; reaching the bound fails the step with `IterationLimitError`
unless `on_max_iterations` is `succeed` (then the last output is the step's).

The step itself keeps its own `step.started` and `step.succeeded | failed` with `step_id` ID.
A resume continues after the last iteration the journal holds as succeeded (`RunState.units`):
those iterations never run again, the last one's output is `${previous}`, and the counter goes on.
`until` is evaluated anew on that output (recorded as `iteration.finished` with `reused`), so a
loop cut after its last iteration but before its end finishes without a call.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._errors import ExpressionError, IterationLimitError
from .._journal._events import EventType, StepStatus, describe_error
from .._workflow._conditions import expression_scope
from .._workflow._document import Step
from .._workflow._loops import Repeat
from ._children import agent_id_of
from ._results import StepResult
from ._step_resilience import StepListener

if TYPE_CHECKING:
    from ._emitter import Emitter
    from ._state import RunState
    from ._step_run import StepRunner

_logger = logging.getLogger("orchestr8.engine")


def iteration_id(step_id: str, iteration: int) -> str:
    """The journal's unit id of one iteration of a repeat step: `ID#k`, k counted from 1."""
    return f"{step_id}#{iteration}"


def resumed_iterations(units: Mapping[str, Any], step_id: str) -> list[Any]:
    """The outputs of the iterations a resume reuses: #1, #2, ... up to the first one missing."""
    outputs: list[Any] = []
    while (unit := iteration_id(step_id, len(outputs) + 1)) in units:
        outputs.append(units[unit])
    return outputs


def _until_holds(repeat: Repeat, state: RunState, output: Any, iteration: int) -> bool:
    """Whether `until` holds for this iteration's output; raises `ExpressionError`."""
    scope = expression_scope(state.inputs, state.outputs, output=output, iteration=iteration)
    return repeat.until.holds(scope)


async def run_loop(runner: StepRunner, step: Step, state: RunState, emitter: Emitter) -> StepResult:
    """Run a repeat step to its end: iterations until `until` holds or the bound; never raises.

    Only cancellation goes through; an iteration left unfinished by it is journaled cancelled.
    The step's own result counts no attempts (as its replay does): its iterations count them.
    """
    repeat = step.repeat
    assert repeat is not None, "run_loop runs repeat steps only"
    step_id = step.id
    await emitter.emit(
        EventType.STEP_STARTED,
        step_id=step_id,
        data={"agent": agent_id_of(step), "max_iterations": repeat.max_iterations},
        trusted=True,
    )
    previous: Any = None
    iteration = 0
    try:
        reused = resumed_iterations(state.units, step_id)
        for output in reused[: repeat.max_iterations]:
            iteration += 1
            previous = output
        if iteration:
            # Evaluated anew on the last reused iteration: its run may have ended before it was.
            held = _until_holds(repeat, state, previous, iteration)
            emitter.emit_nowait(
                EventType.ITERATION_FINISHED,
                step_id=step_id,
                data={"iteration": iteration, "until": held, "reused": True},
                trusted=True,
            )
            if held:
                return await _succeeded(emitter, step, previous)
        while iteration < repeat.max_iterations:
            iteration += 1
            unit = iteration_id(step_id, iteration)
            local_values = {"previous": previous, "iteration": iteration}
            stopped = True
            try:
                result = await runner.run(step, unit, local_values)
                stopped = False
            finally:
                # Only a cancel gets out of `run`, maybe in a group (a sub-workflow's nursery).
                if stopped:
                    _cancelled(runner, emitter, step_id, unit)
            if result.status is StepStatus.CANCELLED:
                _cancelled(runner, emitter, step_id, unit)
                return StepResult(StepStatus.CANCELLED)
            if result.status is not StepStatus.SUCCEEDED:
                return await _failed(emitter, step, state, result.error, None)
            held = _until_holds(repeat, state, result.output, iteration)
            emitter.emit_nowait(
                EventType.ITERATION_FINISHED,
                step_id=step_id,
                data={"iteration": iteration, "until": held},
                trusted=True,
            )
            if held:
                return await _succeeded(emitter, step, result.output)
            previous = result.output
    except ExpressionError as error:
        return await _failed(emitter, step, state, describe_error(error), error)
    if step.on_max_iterations == "succeed":
        return await _succeeded(emitter, step, previous)
    limit = IterationLimitError(
        f"loop ended after {iteration} iterations without until holding: {repeat.until.text}"
    )
    return await _failed(emitter, step, state, describe_error(limit), limit)


async def _succeeded(emitter: Emitter, step: Step, output: Any) -> StepResult:
    await emitter.emit(EventType.STEP_SUCCEEDED, step_id=step.id, data={"output": output})
    return StepResult(StepStatus.SUCCEEDED, output=output)


async def _failed(
    emitter: Emitter,
    step: Step,
    state: RunState,
    error: dict[str, Any] | None,
    exception: Exception | None,
) -> StepResult:
    """Journal and log the loop step failing for good: an iteration failed, or the loop did."""
    if step.on_error != "continue" and exception is not None:
        state.record_failure(step.id, exception)
    await emitter.emit(EventType.STEP_FAILED, step_id=step.id, data={"error": error})
    _logger.warning(
        "loop step %s failed: %s: %s",
        step.id,
        error["type"] if error else "",
        error["message"] if error else "",
    )
    return StepResult(StepStatus.FAILED, error=error)


def _cancelled(runner: StepRunner, emitter: Emitter, step_id: str, unit: str) -> None:
    """Journal an iteration cut short, unless the engine gave up on it (silenced).

    The loop step gets a listener of its own back (an iteration's stood in for it, so that
    giving up on the step silences the iteration): the engine records the cancelled step with
    that listener's attempts, none, as the journal has them.
    """
    listener = runner.listeners.get(unit)
    if (listener is not None and listener.silenced) or runner.suspending:
        # Given up on, or suspended at its gate: a resume runs this iteration again.
        return
    if listener is not None:
        emitter.emit_nowait(
            EventType.STEP_CANCELLED, step_id=unit, data={"reason": "the loop was stopped"}
        )
    runner.listeners[step_id] = StepListener(emitter, step_id)

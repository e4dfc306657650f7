"""Skipping steps: a step's `when` condition at run time, and the reasons a step is skipped.

A step with `when` evaluates it as it is about to start, against the execution inputs and the
outputs of the steps that finished (`expression_scope`); the step runner asks `check_condition`
before `step.started`, so a step without `when` pays one attribute test. False skips the step
(`step.skipped` with `when was false: TEXT`); an expression that fails (a JMESPath type error)
fails the step, as a reference without a value does, and its `on_error` applies. How a skip
reaches the steps after it is `RunState.pass_over_skipped`'s rule: a dependent that reads the
skipped step's output is skipped too, unless it sets `accept_skipped`. A map step's `when` that
reads its item is not checked here but per item, by the map (`_map`).

A resume evaluates a `when` again rather than reusing the skip: the condition reads only
inputs and the outputs of its dependencies, which a resume reuses, so it decides the same way.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import trio

from .._errors import ExpressionError
from .._journal._events import EventType, StepStatus, describe_error
from .._observability._logging import log_context
from .._observability._metrics import engine_metrics
from .._workflow._conditions import expression_scope
from ._children import agent_id_of
from ._results import StepResult

if TYPE_CHECKING:
    from .._workflow._conditions import Expression
    from .._workflow._document import Step
    from ._emitter import Emitter
    from ._state import RunState

_logger = logging.getLogger("orchestr8.engine")


def dependency_failed(step_id: str) -> str:
    """The reason a step is skipped because `step_id`, a step it depends on, failed for good."""
    return f"a dependency failed: {step_id}"


def read_was_skipped(step_id: str) -> str:
    """The reason a step is skipped because it reads the output of `step_id`, which was skipped."""
    return f"a step it reads was skipped: {step_id}"


def when_was_false(text: str) -> str:
    """The reason a step is skipped because its `when` (written `text`) was false."""
    return f"when was false: {text}"


async def check_condition(
    step: Step, condition: Expression, state: RunState, emitter: Emitter, workflow_name: str
) -> StepResult | None:
    """Evaluate a step's `when`: None when it holds, else the step's journaled end.

    False journals `step.skipped` with the reason and returns a skipped result; an
    `ExpressionError` journals `step.failed` with its message and returns a failed result
    (kept for the execution's error unless the step's `on_error` is `continue`; a replanning
    `on_error` does not replan it: a plan cannot change the condition that failed).
    """
    started = trio.current_time()
    try:
        holds = condition.holds(expression_scope(state.inputs, state.outputs))
    except ExpressionError as error:
        result = StepResult(StepStatus.FAILED, error=describe_error(error))
        if step.on_error != "continue":
            state.record_failure(step.id, error)
        await emitter.emit(EventType.STEP_FAILED, step_id=step.id, data={"error": result.error})
        agent_id = agent_id_of(step)
        with log_context(step_id=step.id, agent_id=agent_id):
            _logger.warning("step %s failed before it started: %s", step.id, error)
        engine_metrics().step_finished(
            workflow_name, step.id, agent_id, result.status, trio.current_time() - started
        )
        return result
    if holds:
        return None
    # Not `trusted`: the expression is the workflow's text, which may hold a literal secret.
    await emitter.emit(
        EventType.STEP_SKIPPED, step_id=step.id, data={"reason": when_was_false(condition.text)}
    )
    return StepResult(StepStatus.SKIPPED)

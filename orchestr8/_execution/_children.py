"""Child executions: a sub-workflow step runs its child workflow as an execution of its own.

A step with `"workflow"` instead of `"agent"` runs, for each attempt, a `ChildWorkflowAgent`: it
starts (or resumes) the child workflow as a *child execution*, with its own journal record linked
to the parent (`parent_id`, `parent_step`), and returns the child's output as the step's output.
The child runs inside the parent: in the step actor's task (so under the parent's supervisor), in
the same runtime and journal. What that gives, and the decisions behind it:

- **One child per step, found by its id.** The child's id is `PARENT_ID.STEP_ID`
  (`child_execution_id`; a loop iteration's unit id `ID#k` takes the step id's place), so a
  retry of the step, and a resume of the parent, find the child the journal holds and *resume*
  it: its finished steps are reused, never paid for twice. A child that already succeeded gives
  its recorded output without running anything. While it runs, the child is locked and live in
  the runtime like any execution (`Starter.hold_child`): views show it running, and can follow or
  cancel it (which fails the step); a resume of it goes through its parent only.
- **Inputs.** The rendered step input is the child's inputs: it must be an object and fit the
  child's `inputs` schema; otherwise the step fails with the problems (not retried).
- **Cancel, timeout, failure.** A cancel of the parent is relayed to the child at once (its agents
  see `cancel_requested`, with the runtime's grace); when the parent stops the step by force (the
  grace ran out, the parent's timeout, `fail_fast`) the child is stopped by force too, and still
  records how it ended. The attempt's deadline (the step's attempt timeout or total deadline) is
  the child's timeout, when it is earlier than the child's own. A child that does not succeed
  fails the attempt with `ChildExecutionError`, which the step's policy may retry (a child that
  ran out of budget fails it with `BudgetExhaustedError`, which no retry can help); one cancelled
  with its parent ends the step `cancelled`. When the child's error is a layer's rejection
  (`CircuitOpenError` after earlier attempts opened the breaker), the message adds the last real
  error the child's journal holds (`... (after RuntimeError: boom)`), so the root is not lost.
- **Parent events.** The parent journals `child.started` {"child_id", "workflow", "resumed"} for
  the step each time a child execution starts or resumes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import attrs
import trio

from .._agents._contract import Agent, AgentContext
from .._errors import (
    BudgetExhaustedError,
    CallStoppedError,
    ChildExecutionError,
    ExecutionNotFoundError,
    InputValidationError,
    Problem,
)
from .._journal._events import EventType, ExecutionStatus
from .._journal._journal import ExecutionRecord, Journal
from .._workflow._approvals import APPROVAL_AGENT_ID
from .._workflow._document import Step, Workflow
from .._workflow._inputs import validate_inputs
from .._workflow._references import json_type_name
from .._workflow._sub_workflows import SubWorkflow
from ._emitter import Emitter
from ._results import ExecutionResult
from ._secrets import redacted_inputs
from ._spending import link_to_parent

if TYPE_CHECKING:
    from ._engine import ExecutionRun
    from ._starting import Starter

#: The errors of a layer refusing a call (the breaker opened by earlier failures, say): a child
#: failing with one is reported with the last real error its journal holds too.
_REJECTIONS: Final = frozenset({"CircuitOpenError", "BulkheadFullError", "RateLimitedError"})

#: Joins a parent's execution id and a step id into the id of the step's child execution.
CHILD_ID_SEPARATOR: Final = "."


def child_execution_id(parent_id: str, step_id: str) -> str:
    """The id of the child execution a sub-workflow step of `parent_id` runs."""
    return f"{parent_id}{CHILD_ID_SEPARATOR}{step_id}"


def agent_id_of(step: Step) -> str:
    """What events, logs and metrics call the runner of a step: its agent id, or `workflow:NAME`.

    NAME is the child workflow's own name, not the path or name the document wrote: a resumed
    parent holds its children inline, and the label must not change across a resume.
    """
    if step.agent is not None:
        return step.agent.id
    if step.plan is not None:
        return f"plan:{step.plan.agent.id}"
    if step.approval is not None:
        return APPROVAL_AGENT_ID
    assert step.workflow is not None, "a step has an agent, a workflow or a plan"
    child = step.workflow.workflow
    assert child is not None, "a loaded workflow has every child loaded"
    return f"workflow:{child.name}"


@attrs.frozen
class ParentLink:
    """The parent execution a child belongs to: its id, its events, its correlation id."""

    execution_id: str
    emitter: Emitter
    correlation_id: str


class ChildWorkflowAgent(Agent):
    """The agent of a sub-workflow step: each attempt runs (or resumes) its child execution."""

    def __init__(
        self, children: ChildRunner, sub_workflow: SubWorkflow, parent: ParentLink
    ) -> None:
        """Run `sub_workflow` as a child of `parent` through `children`."""
        super().__init__({})
        self._children = children
        self._sub_workflow = sub_workflow
        self._parent = parent

    async def run(self, input: Any, context: AgentContext) -> Any:
        """Run the child execution with `input` as its inputs and return its output."""
        return await self._children.run_child(self._sub_workflow, self._parent, input, context)


class ChildRunner:
    """Starts, resumes and drives the child executions of one runtime's sub-workflow steps."""

    def __init__(self, starter: Starter, journal: Journal) -> None:
        """Record and build child runs through `starter`, reading children from `journal`."""
        self._starter = starter
        self._journal = journal

    def agent_for(self, step: Step, parent: ParentLink) -> Agent:
        """The agent that runs `step`'s child workflow, as a child of `parent`."""
        assert step.workflow is not None, "only a sub-workflow step has a child"
        return ChildWorkflowAgent(self, step.workflow, parent)

    async def run_child(
        self,
        sub_workflow: SubWorkflow,
        parent: ParentLink,
        input: Any,
        context: AgentContext,
        *,
        child_id: str | None = None,
    ) -> Any:
        """Start or resume the step's child execution, wait for it, and return its output.

        `child_id` names a child other than the step's own (a replacement plan's, `_planning`).

        Raises:
            InputValidationError: `input` is not an object, or does not fit the child's inputs.
            ChildExecutionError: the child execution failed or was cancelled.
        """
        child = sub_workflow.workflow
        assert child is not None, "a loaded workflow has every child loaded"
        child_id = child_id or child_execution_id(parent.execution_id, context.step_id)
        record = await self._find(child_id)
        if record is not None and record.status is ExecutionStatus.SUCCEEDED:
            return record.output
        timeout = _child_timeout(context.deadline, child.timeout)
        parent_budget = link_to_parent(
            getattr(context.llm, "budget", None), context.step_id, context.attempt
        )
        if record is None:
            inputs = _child_inputs(child, input)
            run, lease = await self._starter.child_run(
                child,
                inputs,
                execution_id=child_id,
                parent_id=parent.execution_id,
                parent_step=context.step_id,
                correlation_id=parent.correlation_id,
                child_timeout=timeout,
                parent_budget=parent_budget,
            )
        else:
            run, lease = await self._starter.resumed_run(
                record,
                timeout,
                _resupplied(record, input),
                workflow=child,
                parent_budget=parent_budget,
            )
        try:
            release = await self._starter.hold_child(run)
        except BaseException:
            lease.release()
            raise
        try:
            await parent.emitter.emit(
                EventType.CHILD_STARTED,
                step_id=context.step_id,
                attempt=context.attempt,
                data={
                    "child_id": child_id,
                    "workflow": sub_workflow.label,
                    "resumed": record is not None,
                },
                trusted=True,
            )
            result = await _drive(run, context)
        finally:
            await release()
            lease.release()
        if result.status is ExecutionStatus.SUCCEEDED:
            return result.output
        if result.status is ExecutionStatus.CANCELLED and context.cancel_requested:
            # Cancelled with its parent: the step ends cancelled too, not failed.
            raise CallStoppedError(f"child execution {child_id} was cancelled with its parent")
        message = await self._failure_message(child_id, result)
        if (result.error or {}).get("type") == BudgetExhaustedError.__name__:
            # No retry of the step can find money the budget does not have.
            raise BudgetExhaustedError(message)
        raise ChildExecutionError(message)

    async def _failure_message(self, child_id: str, result: ExecutionResult) -> str:
        """Why the child failed, with its root error when a layer's rejection hides it."""
        message = _failure_message(child_id, result)
        error = result.error or {}
        if error.get("type") not in _REJECTIONS:
            return message
        for event in reversed(await self._journal.events(child_id)):
            cause = event.data.get("error") if event.type == EventType.ATTEMPT_FAILED else None
            if isinstance(cause, Mapping) and cause.get("type") not in _REJECTIONS:
                return f"{message} (after {cause.get('type')}: {cause.get('message')})"
        return message

    async def recorded(self, child_id: str) -> ExecutionRecord | None:
        """The journal record of the child execution `child_id`, or None when it never started."""
        return await self._find(child_id)

    async def _find(self, child_id: str) -> ExecutionRecord | None:
        try:
            return await self._journal.get_execution(child_id)
        except ExecutionNotFoundError:
            return None


async def _drive(run: ExecutionRun, context: AgentContext) -> ExecutionResult:
    """Run the child to its end inside the calling task; relay the parent's cancel and stop.

    The run itself is shielded so that it always records how it ended; a cancel of the parent
    reaches it as a cancel request, and a forced stop of the step as a forced stop of the child.
    """

    async def run_shielded() -> None:
        with trio.CancelScope(shield=True):
            await run.run()

    async def relay_cancel() -> None:
        await context.wait_cancel_requested()
        run.cancel("its parent execution was cancelled")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_shielded)
        nursery.start_soon(relay_cancel)
        try:
            await run.finished()
        except trio.Cancelled:
            _stop_now(run, "its parent step was stopped")
            raise
        nursery.cancel_scope.cancel()
    return await run.wait()


def _stop_now(run: ExecutionRun, reason: str) -> None:
    """Cancel the child and force its running steps at once, without the grace."""
    run.cancel(reason)
    for slot in run.state.running.values():
        slot.ref.cancel()


def _child_timeout(deadline: float, own: float | None) -> float | None:
    """The child's timeout: its own, or the time left in the parent's attempt if that is less."""
    left = deadline - trio.current_time() if deadline != math.inf else None
    if left is None:
        return own
    left = max(left, 0.0)
    return left if own is None else min(own, left)


def _child_inputs(child: Workflow, input: Any) -> dict[str, Any]:
    """The step input checked as the child's inputs (null or absent: `{}`, as for plans).

    Raises:
        InputValidationError: it is not an object, or does not fit the child's `inputs` schema.
    """
    if input is None:
        input = {}
    if not isinstance(input, Mapping):
        kind = json_type_name(input)
        message = f"a sub-workflow step's input is its child's inputs: an object, not {kind}"
        raise InputValidationError([Problem("$", message)])
    return validate_inputs(child, input)


def _resupplied(record: ExecutionRecord, input: Any) -> Mapping[str, Any] | None:
    """The inputs the child's journal record holds redacted, taken again from the step input."""
    if not isinstance(input, Mapping):
        return None
    names = redacted_inputs(record.inputs)
    return {name: input[name] for name in names if name in input} or None


def _failure_message(child_id: str, result: ExecutionResult) -> str:
    error = result.error or {}
    detail = f": {error.get('type', 'Error')}: {error.get('message', '')}" if error else ""
    return f"child execution {child_id} {result.status}{detail}"

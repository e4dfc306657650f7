"""Resume planning: what a resume takes from the journal, and what it must run again.

A resume replays the execution's events (`_replay`) and reuses the recorded output of every step
that succeeded, so an agent call that answered is never paid for twice. Only an output recorded
as it was can be reused: a `step.succeeded` whose output redaction changed (`output_redacted`)
holds `***` where the step's dependents got a secret, so that step runs again, and its
dependents get the real value (docs/execution.md, Resume). Inputs the journal keeps redacted are
supplied again by the caller (`_secrets`); literal secrets in the journaled workflow cannot be,
and a warning names where they are.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from .._agents._contract import Agent
from .._errors import ExecutionStateError
from .._journal._events import Event, ExecutionStatus, StepStatus
from .._journal._journal import ExecutionRecord
from .._journal._replay import ExecutionState, replay
from .._workflow._document import Workflow
from .._workflow._inputs import validate_inputs
from ._admission import WorkflowLike
from ._map import reusable_items
from ._secrets import redacted_inputs, redacted_literals, resupply_inputs

# The runtime's logger: what a resume warns of is the runtime's to say.
_logger = logging.getLogger("orchestr8.runtime")


@attrs.frozen
class ResumePlan:
    """What a resume continues from: the replayed state, the workflow, inputs and reused outputs."""

    execution_id: str
    state: ExecutionState
    """The execution as its events tell it, up to the resume."""
    workflow: Workflow
    """The journaled workflow, admitted again (its `${secrets.NAME}` references unbound)."""
    agents: Mapping[str, Agent]
    """The agents admission built for its steps, by step id."""
    inputs: Mapping[str, Any]
    """The recorded inputs, with those the journal redacted supplied again."""
    completed: Mapping[str, Any]
    """The outputs reused, by step id: every step that succeeded with its output intact."""
    redacted_outputs: tuple[str, ...]
    """The steps that succeeded but run again, as their journaled output was redacted."""
    units: Mapping[str, Any] = attrs.field(factory=dict)
    """The outputs reused of units that are not steps (a loop's iterations, `ID#k`), by unit id:
    every one that succeeded with its output intact."""
    completed_items: Mapping[str, Mapping[int, Any]] = attrs.field(factory=dict)
    """The item outputs reused, by map step id and index: every item of a map step that runs
    again which succeeded with its output intact (`_map`)."""

    def warn(self) -> None:
        """Log what this resume cannot take from the journal as it was, naming where and why."""
        if self.redacted_outputs:
            # The CLI shows warnings on stderr: `orchestr8 resume` says this too.
            _logger.warning(
                "execution %s runs %s again: the journal holds %s redacted (it held a secret), "
                "and a resume reuses only outputs recorded as they were",
                self.execution_id,
                ", ".join(self.redacted_outputs),
                "its output" if len(self.redacted_outputs) == 1 else "their outputs",
            )
        rerun = [step.id for step in self.workflow.steps if step.id not in self.completed]
        if literals := redacted_literals(self.workflow, rerun):
            _logger.warning(
                "execution %s resumes with '***' in place of %s (the journal keeps literal "
                "secrets redacted); write ${secrets.NAME} for the values a resume needs",
                self.execution_id,
                ", ".join(literals),
            )


def plan_resume(
    record: ExecutionRecord,
    events: Iterable[Event],
    admit: Callable[[WorkflowLike], tuple[Workflow, Mapping[str, Agent]]],
    supplied: Mapping[str, Any] | None,
) -> ResumePlan:
    """Replay an execution's events and decide what its resume reuses and what it runs.

    `admit` loads the journaled workflow (the runtime's admission, built once per workflow);
    `supplied` gives again the inputs the journal redacted.

    Raises:
        ExecutionStateError: the execution already succeeded.
        InputValidationError: a redacted input is not supplied again, or a supplied one was not
            redacted, or does not fit the workflow's `inputs` schema.
    """
    execution_id = record.execution_id
    state = replay(events)
    if state.status is ExecutionStatus.SUCCEEDED:
        raise ExecutionStateError(
            f"execution {execution_id} already succeeded; there is nothing to resume"
        )
    loaded, agents = admit(record.workflow)
    inputs = record.inputs
    if supplied or redacted_inputs(inputs):
        # Supplied again only in place of what the journal redacted, then checked as new.
        inputs = validate_inputs(loaded, resupply_inputs(inputs, supplied))
    completed = {
        step_id: step.output
        for step_id, step in state.steps.items()
        if step.reusable and step_id in loaded.steps_by_id
    }
    redacted_outputs = tuple(
        step_id
        for step_id, step in state.steps.items()
        if step.output_redacted and step.status is StepStatus.SUCCEEDED
    )
    units = {
        unit_id: unit.output
        for unit_id, unit in state.steps.items()
        if unit.reusable and unit_id not in loaded.steps_by_id
    }
    return ResumePlan(
        execution_id,
        state,
        loaded,
        agents,
        inputs,
        completed,
        redacted_outputs,
        units,
        reusable_items(state, loaded, completed),
    )

"""What an execution returns: its status, output or error, and every step's result.

The records are frozen values, built by the engine as an execution ends and by
`replayed_result` from the journal's replay; the two are equal for the same execution.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from .._journal._events import ExecutionStatus, StepStatus
from .._journal._replay import ExecutionState


@attrs.frozen
class StepResult:
    """How one step ended: status, attempts made, output (if it succeeded) or error."""

    status: StepStatus
    attempts: int = 0
    output: Any = None
    error: dict[str, Any] | None = None
    usage: Mapping[str, int] = attrs.field(factory=dict)


@attrs.frozen
class ExecutionResult:
    """How an execution ended: its status, output or error, and every step's result."""

    execution_id: str
    status: ExecutionStatus
    output: Any = None
    error: dict[str, Any] | None = None
    steps: Mapping[str, StepResult] = attrs.field(factory=dict)
    usage: Mapping[str, int] = attrs.field(factory=dict)
    """Resource counts agents recorded (e.g. `input_tokens`), summed over every attempt."""

    @property
    def succeeded(self) -> bool:
        """Whether the execution succeeded."""
        return self.status is ExecutionStatus.SUCCEEDED


def replayed_result(execution_id: str, state: ExecutionState) -> ExecutionResult:
    """The result of an execution as its journal tells it (`replay`), for `Runtime.result`.

    Its steps are the workflow's, as the engine's result has them: a loop's iterations (`ID#k`,
    units the journal keeps apart) are left out.
    """
    steps = {
        step_id: StepResult(
            step.status,
            attempts=step.attempts,
            output=step.output,
            error=step.error,
            usage=step.usage,
        )
        for step_id, step in state.steps.items()
        # A map's items (`ID[3]`) and a loop's iterations (`ID#2`) are in the journal and
        # `inspect`; the result holds the steps.
        if not step_id.endswith("]") and "#" not in step_id
    }
    return ExecutionResult(
        execution_id, state.status, state.output, state.error, steps, usage=state.usage
    )

"""How an execution ended: the result decided from its steps' outcomes, and its final event.

`Conclusion` is the last thing an execution does: from how the run ended (completed, cancelled,
timed out, failed fast) and what each step did, it decides the status, output or error, records
the terminal event (`execution.succeeded`, `execution.failed` or `execution.cancelled`, with the
usage totals) and returns the `ExecutionResult`, redacted exactly as the journal is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from ._emitter import Emitter
from ._errors import ExecutionTimeoutError, Orchestr8Error
from ._events import EventType, ExecutionStatus, StepStatus, describe_error
from ._redaction import redact
from ._results import ExecutionResult, StepResult
from ._workflow import Workflow


@attrs.define(kw_only=True)
class Conclusion:
    """What an execution knows as it ends, and the rules that turn it into its result."""

    execution_id: str
    workflow: Workflow
    inputs: Mapping[str, Any]
    emitter: Emitter
    results: Mapping[str, StepResult]
    """Every step's result, in any order (each step of the workflow has one by now)."""
    outputs: Mapping[str, Any]
    """The real (unredacted) outputs of the steps that succeeded or continued."""
    usage: Mapping[str, int]
    step_usage: Mapping[str, Mapping[str, int]]
    cancel_reason: str
    timeout: float | None
    failures: Mapping[str, Exception] = attrs.field(factory=dict)
    """The exceptions that failed steps, by step id (`StepRunner.failures`)."""
    exception: Exception | None = attrs.field(default=None, init=False)
    """The exception behind the failed result `record` decided on, when it knows it: for the
    execution span, which records its stacktrace and fully qualified type."""

    async def record(self, ending: str) -> ExecutionResult:
        """Decide the result from `ending` and the steps' results, journal it, and return it."""
        emitter = self.emitter
        steps = {step_id: self.results[step_id] for step_id in self.workflow.order}
        if ending == "cancelled":
            error = {"type": "Cancelled", "message": self.cancel_reason}
            # The error too, so the journal replays to the very result returned here.
            await emitter.emit(
                EventType.EXECUTION_CANCELLED,
                data=self._with_usage({"reason": self.cancel_reason, "error": error}),
            )
            return self._result(ExecutionStatus.CANCELLED, None, error, steps)
        if ending == "timed_out":
            timeout_error = ExecutionTimeoutError(
                f"the execution ran past its timeout of {self.timeout} s"
            )
            error = describe_error(timeout_error)
            self.exception = timeout_error
            await emitter.emit(EventType.EXECUTION_FAILED, data=self._with_usage({"error": error}))
            return self._result(ExecutionStatus.FAILED, None, error, steps)
        failed = [
            step_id
            for step_id, result in steps.items()
            if result.status is StepStatus.FAILED
            and self.workflow.steps_by_id[step_id].on_error == "fail"
        ]
        if failed:
            first = steps[failed[0]].error or {}
            error = {**first, "step_id": failed[0]}
            self.exception = self.failures.get(failed[0])
            await emitter.emit(EventType.EXECUTION_FAILED, data=self._with_usage({"error": error}))
            return self._result(ExecutionStatus.FAILED, None, error, steps)
        try:
            output = self._render_output()
        except Orchestr8Error as render_error:
            error = describe_error(render_error)
            self.exception = render_error
            await emitter.emit(EventType.EXECUTION_FAILED, data=self._with_usage({"error": error}))
            return self._result(ExecutionStatus.FAILED, None, error, steps)
        await emitter.emit(EventType.EXECUTION_SUCCEEDED, data=self._with_usage({"output": output}))
        return self._result(ExecutionStatus.SUCCEEDED, output, None, steps)

    def _render_output(self) -> Any:
        if self.workflow.output is None:
            # In document order, not completion order, so the same workflow gives the same JSON.
            return {
                step_id: self.outputs[step_id]
                for step_id in self.workflow.order
                if step_id in self.outputs
            }
        return self.workflow.output.render(self.inputs, self.outputs)

    def _result(
        self,
        status: ExecutionStatus,
        output: Any,
        error: dict[str, Any] | None,
        steps: dict[str, StepResult],
    ) -> ExecutionResult:
        # What leaves the engine is redacted exactly as the journal is, so the result equals its
        # replay; dependents got the real outputs (kept in memory only) while the run lasted.
        step_usage = self.step_usage
        steps = {
            step_id: StepResult(
                result.status,
                result.attempts,
                redact(result.output),
                result.error,
                step_usage.get(step_id, {}),
            )
            for step_id, result in steps.items()
        }
        return ExecutionResult(
            self.execution_id, status, redact(output), error, steps, usage=dict(self.usage)
        )

    def _with_usage(self, data: dict[str, Any]) -> dict[str, Any]:
        if self.usage:
            data["usage"] = dict(self.usage)
        return data

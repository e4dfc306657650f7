"""How an execution ended: the result decided from its steps' outcomes, and its final event.

`Conclusion` is the last thing an execution does: from how the run ended (its `RunState`'s
`Ending`: completed, cancelled, timed out, failed fast) and what each step did, it decides the
status, output or error, records the terminal event (`execution.succeeded`, `execution.failed`
or `execution.cancelled`, with the usage totals) and returns the `ExecutionResult`, redacted
exactly as the journal is. `conclude` also traces and logs it, and makes it durable.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any

import attrs

from .._errors import ExecutionTimeoutError, JournalError, Orchestr8Error
from .._journal._events import EventType, ExecutionStatus, StepStatus, describe_error
from .._observability._redaction import redact
from .._observability._telemetry import record_execution_result
from ._emitter import Emitter
from ._results import ExecutionResult, StepResult
from ._state import Ending, RunState

if TYPE_CHECKING:
    from opentelemetry.trace import Span

# The engine's logger: how an execution ended is the engine's to say.
_logger = logging.getLogger("orchestr8.engine")


@attrs.define(kw_only=True)
class Conclusion:
    """What an execution knows as it ends, and the rules that turn it into its result."""

    execution_id: str
    state: RunState
    """The ended run: its ending, and a result for every step of the workflow by now."""
    emitter: Emitter
    cancel_reason: str
    timeout: float | None
    waiting_gates: list[str] = attrs.field(factory=list)
    """The gates open when the run was suspended (`Ending.WAITING`), in the order they opened."""
    exception: Exception | None = attrs.field(default=None, init=False)
    """The exception behind the failed result `record` decided on, when it knows it: for the
    execution span, which records its stacktrace and fully qualified type."""

    async def conclude(self, span: Span) -> ExecutionResult | None:
        """Record, trace and log how the execution ended; the result once durable, else None.

        None when the journal failed: `ExecutionRun.wait` raises that failure, and there is no
        result, as the journal (still saying `running`) holds none.
        """
        result = await self.record()
        record_execution_result(span, result.status, self.exception or result.error)
        _logger.log(
            logging.INFO
            if result.succeeded or result.status is ExecutionStatus.WAITING
            else logging.WARNING,
            "execution %s %s%s",
            self.execution_id,
            result.status,
            f": {result.error.get('type')}: {result.error.get('message')}" if result.error else "",
        )
        # Finished means durable: whoever waits for the result can read it in the journal.
        with contextlib.suppress(JournalError):
            await self.emitter.flush()
        return result if self.emitter.failure is None else None

    async def record(self) -> ExecutionResult:
        """Decide the result from the run's ending and steps' results, journal it, return it."""
        emitter, state = self.emitter, self.state
        workflow, ending = state.workflow, state.ending
        if ending is Ending.WAITING:
            # Suspended at its gates: the steps that finished, the rest wait for the resume.
            await emitter.emit(EventType.EXECUTION_WAITING, data={"gates": self.waiting_gates})
            finished = {
                step_id: result
                for step_id in workflow.order
                if (result := state.results.get(step_id)) is not None
                and result.status is not StepStatus.CANCELLED
            }
            return self._result(ExecutionStatus.WAITING, None, None, finished)
        steps = {step_id: state.results[step_id] for step_id in workflow.order}
        if ending is Ending.CANCELLED:
            error = {"type": "Cancelled", "message": self.cancel_reason}
            # The error too, so the journal replays to the very result returned here.
            await emitter.emit(
                EventType.EXECUTION_CANCELLED,
                data=self._with_usage({"reason": self.cancel_reason, "error": error}),
            )
            return self._result(ExecutionStatus.CANCELLED, None, error, steps)
        if ending is Ending.TIMED_OUT:
            timeout_error = ExecutionTimeoutError(
                # Rounded: a child's timeout is derived from its parent's deadline, a long float.
                f"the execution ran past its timeout of {round(self.timeout or 0.0, 3)} s"
            )
            error = describe_error(timeout_error)
            self.exception = timeout_error
            await emitter.emit(EventType.EXECUTION_FAILED, data=self._with_usage({"error": error}))
            return self._result(ExecutionStatus.FAILED, None, error, steps)
        failed = [
            step_id
            for step_id, result in steps.items()
            if result.status is StepStatus.FAILED
            and workflow.steps_by_id[step_id].on_error != "continue"
        ]
        if failed:
            first = steps[failed[0]].error or {}
            error = {**first, "step_id": failed[0]}
            self.exception = state.failures.get(failed[0])
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
        workflow, outputs = self.state.workflow, self.state.outputs
        if workflow.output is None:
            # In document order, not completion order, so the same workflow gives the same JSON.
            return {step_id: outputs[step_id] for step_id in workflow.order if step_id in outputs}
        return workflow.output.render(self.state.inputs, outputs)

    def _result(
        self,
        status: ExecutionStatus,
        output: Any,
        error: dict[str, Any] | None,
        steps: dict[str, StepResult],
    ) -> ExecutionResult:
        # What leaves the engine is redacted exactly as the journal is, so the result equals its
        # replay; dependents got the real outputs (kept in memory only) while the run lasted.
        step_usage = self.state.step_usage
        returned: dict[str, StepResult] = {}
        for step_id, result in steps.items():
            step_output, usage = redact(result.output), step_usage.get(step_id)
            if step_output is result.output and not usage and not result.usage:
                # Already what the journal holds (nothing redacted, no usage): kept, not copied.
                returned[step_id] = result
            else:
                returned[step_id] = StepResult(
                    result.status, result.attempts, step_output, result.error, usage or {}
                )
        return ExecutionResult(
            self.execution_id, status, redact(output), error, returned, usage=dict(self.state.usage)
        )

    def _with_usage(self, data: dict[str, Any]) -> dict[str, Any]:
        usage = self.state.usage
        if usage:
            data["usage"] = dict(usage)
        return data

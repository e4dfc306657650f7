"""The handle of one execution: what `Runtime.start`, `resume` and `get` give back.

A handle wraps the live run when the execution runs in this runtime, or a result read back from the
journal when it finished elsewhere or earlier. Waiting on an execution that has not finished and
runs in no runtime here is an error, not a wait that never ends.
"""

from __future__ import annotations

import trio

from .._errors import ExecutionStateError
from .._journal._replay import GateState
from ._engine import ExecutionRun
from ._gates import GateBoard
from ._results import ExecutionResult


class ExecutionHandle:
    """A running (or finished) execution: wait for it, cancel it, read its status."""

    def __init__(
        self, execution_id: str, run: ExecutionRun | None, result: ExecutionResult | None = None
    ) -> None:
        """Wrap a live run, or a result read back from the journal; get handles from the runtime."""
        self.execution_id = execution_id
        self._run = run
        self._result = result

    @property
    def result(self) -> ExecutionResult | None:
        """The result once the execution has finished, else None."""
        if self._result is None and self._run is not None:
            self._result = self._run.result
        return self._result

    @property
    def done(self) -> bool:
        """Whether the execution has finished."""
        return self.result is not None

    async def wait(self) -> ExecutionResult:
        """Wait for the execution to finish and return its result.

        Raises:
            JournalError: the journal failed while it ran (see `ExecutionRun.wait`).
            ExecutionStateError: it has not finished and runs in no runtime of this process.
        """
        if self._result is not None:
            await trio.lowlevel.checkpoint()
            return self._result
        if self._run is None:
            raise ExecutionStateError(
                f"execution {self.execution_id} has not finished and does not run in this "
                "runtime (another runtime or process runs it, or its process died): resume it, "
                "or read its result from the journal"
            )
        self._result = await self._run.wait()
        return self._result

    async def finished(self) -> None:
        """Wait for the execution to end, however it ended; unlike `wait`, never raises."""
        if self._run is None:
            await trio.lowlevel.checkpoint()
        else:
            await self._run.finished()

    @property
    def run(self) -> ExecutionRun | None:
        """The live run, or None when this handle wraps a result read back from the journal."""
        return self._run

    @property
    def gates(self) -> GateBoard | None:
        """The gate board of the live run (None: no approval step, or it runs elsewhere)."""
        return None if self._run is None else self._run.gates

    def open_gates(self) -> list[GateState]:
        """The approval gates open now in the live run, in the order they opened."""
        gates = self.gates
        return [] if gates is None else gates.open_gates()

    async def wait_blocked_on_gates(self) -> None:
        """Return once the run has a gate open and nothing else may run, or once it ended."""
        if self._run is None:
            await trio.lowlevel.checkpoint()
        else:
            await self._run.wait_blocked_on_gates()

    def suspend(self) -> bool:
        """End the run while it is blocked on gates, as `waiting`; False when it is not."""
        return self._run is not None and self._run.suspend()

    def cancel(self, reason: str = "cancelled by request", *, force: bool = False) -> bool:
        """Cancel the execution: cooperative first, forced after the grace period (`force`: now).

        Returns False if it had already finished or was already being cancelled (and `force`
        changed nothing).
        """
        if self._run is None:
            return False
        return self._run.cancel(reason, force=force)

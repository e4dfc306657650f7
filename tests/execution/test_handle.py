"""Execution handles with no live run: a result read back, or an execution running elsewhere."""

from __future__ import annotations

import pytest

from orchestr8._errors import ExecutionStateError
from orchestr8._execution._handle import ExecutionHandle
from orchestr8._execution._results import ExecutionResult
from orchestr8._journal._events import ExecutionStatus


async def test_a_handle_of_a_finished_execution_gives_its_result_at_once() -> None:
    """A result read back from the journal is the handle's result; there is nothing to cancel."""
    result = ExecutionResult("e1", ExecutionStatus.SUCCEEDED, output={"a": 1})
    handle = ExecutionHandle("e1", None, result)
    assert handle.done
    assert await handle.wait() is result
    await handle.finished()
    assert handle.cancel() is False


async def test_waiting_on_an_execution_that_runs_elsewhere_is_an_error_not_a_hang() -> None:
    """Unfinished and not running here: `wait` says so and how to go on; `finished` returns."""
    handle = ExecutionHandle("e1", None)
    assert not handle.done
    with pytest.raises(
        ExecutionStateError,
        match=r"execution e1 has not finished and does not run"
        r" in this runtime .*resume it",
    ):
        await handle.wait()
    await handle.finished()
    assert handle.cancel() is False

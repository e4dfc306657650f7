"""A server adopting waiting executions: resumed when nobody runs them, left waiting on shutdown."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import trio
from gate_scripts import append

from orchestr8 import open_runtime
from orchestr8._execution._adoption import adopt, adopt_waiting, leave_executions, root_execution
from orchestr8._execution._lock import ExecutionLocks
from orchestr8._journal._events import EventType
from orchestr8._journal._journal import ExecutionRecord, Journal

PLAIN = {"schema_version": "1.1", "name": "p", "steps": [{"id": "a", "agent": "echo", "input": 1}]}
NAP = {
    "schema_version": "1.0",
    "name": "nap",
    "steps": [{"id": "nap", "agent": "sleep", "input": {"seconds": 30}}],
}


async def waiting(journal: Journal, execution_id: str, **record: object) -> None:
    """Record an execution that stopped with a gate open: `waiting`, its lock free."""
    await journal.create_execution(
        ExecutionRecord(execution_id=execution_id, workflow_name="p", workflow=PLAIN, **record)  # type: ignore[arg-type]
    )
    await append(
        journal,
        execution_id,
        (EventType.EXECUTION_STARTED, None, {}),
        (EventType.EXECUTION_WAITING, None, {"gates": ["sign"]}),
    )


async def test_waiting_executions_nobody_runs_are_resumed_here(tmp_path: Path) -> None:
    """Waiting and unlocked: resumed (oldest first); locked, running or a child: left alone."""
    path = tmp_path / "journal.db"
    async with open_runtime(journal=path, cancel_grace=0.1) as runtime:
        journal = runtime.journal
        await waiting(journal, "w1")
        await waiting(journal, "w2")
        await waiting(journal, "held")
        await waiting(journal, "w1.child", parent_id="w1", parent_step="a")
        await journal.create_execution(
            ExecutionRecord(execution_id="r", workflow_name="p", workflow=PLAIN)
        )
        locks = ExecutionLocks(path)
        try:
            assert locks.acquire("held")
            assert await adopt_waiting(runtime) == ["w1", "w2"]
        finally:
            locks.close()
        with trio.fail_after(5):
            await runtime.wait_all()
        for execution_id in ("w1", "w2"):
            assert str((await runtime.journal.get_execution(execution_id)).status) == "succeeded"
        assert str((await runtime.journal.get_execution("held")).status) == "waiting"
        assert await adopt(runtime, "w1") is None  # not waiting any more
        assert await adopt(runtime, "r") is None


async def test_an_answer_for_a_child_adopts_its_top_level_execution(tmp_path: Path) -> None:
    """A gate in a sub-workflow: the parent is what resumes (it resumes the child)."""
    async with open_runtime(journal=tmp_path / "journal.db", cancel_grace=0.1) as runtime:
        await waiting(runtime.journal, "p1")
        await waiting(runtime.journal, "p1.sub", parent_id="p1", parent_step="a")
        assert await root_execution(runtime, "p1.sub") == "p1"
        handle = await adopt(runtime, "p1.sub")
        assert handle is not None
        assert handle.execution_id == "p1"
        with trio.fail_after(5):
            await handle.wait()


async def test_a_waiting_execution_that_cannot_resume_here_is_logged_and_stays(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A redacted input to supply again: not adopted, a warning says why."""
    secret = {
        **PLAIN,
        "inputs": {"type": "object", "properties": {"api_key": {"type": "string"}}},
    }
    async with open_runtime(journal=tmp_path / "journal.db", cancel_grace=0.1) as runtime:
        await runtime.journal.create_execution(
            ExecutionRecord(
                execution_id="s1", workflow_name="p", workflow=secret, inputs={"api_key": "***"}
            )
        )
        await append(
            runtime.journal,
            "s1",
            (EventType.EXECUTION_STARTED, None, {}),
            (EventType.EXECUTION_WAITING, None, {"gates": ["sign"]}),
        )
        with caplog.at_level(logging.WARNING, "orchestr8.engine"):
            assert await adopt_waiting(runtime) == []
        assert "waiting execution s1 was not resumed here" in caplog.text
        assert str((await runtime.journal.get_execution("s1")).status) == "waiting"


async def test_leaving_cancels_what_is_not_blocked_on_gates() -> None:
    """On shutdown a run with steps still going is cancelled as before, its child with it."""
    parent = {
        "schema_version": "1.1",
        "name": "parent",
        "steps": [{"id": "sub", "workflow": NAP, "input": {}}],
    }
    async with open_runtime(cancel_grace=0.1) as runtime:
        handle = await runtime.start(NAP)
        async with runtime.bus.subscribe() as events:
            nested = await runtime.start(parent)
            with trio.fail_after(5):
                async for event in events:
                    if event.type == EventType.STEP_STARTED and "." in event.execution_id:
                        break
        assert runtime.find(f"{nested.execution_id}.sub") is not None
        assert await leave_executions(runtime, runtime.handles(), "shutting down") == []
        with trio.fail_after(5):
            result = await handle.wait()
            assert str((await nested.wait()).status) == "cancelled"
        assert str(result.status) == "cancelled"

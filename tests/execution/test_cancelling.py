"""Cancelling an execution another process runs (a request), or that none runs (durably, here)."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from orchestr8 import Event, ExecutionRecord, ExecutionStatus, Runtime, open_runtime
from orchestr8._errors import ExecutionNotFoundError, ExecutionStateError
from orchestr8._execution._cancelling import _seconds_since, cancel_execution, cancel_unowned
from orchestr8._execution._claims import FileLockClaims
from orchestr8._execution._lock import ExecutionLocks, held_executions
from orchestr8._journal._journal import Journal
from orchestr8._journal._replay import replay
from orchestr8._journal._requests import RequestKind

WORKFLOW = {"schema_version": "1.0", "name": "ghost", "steps": [{"id": "a", "agent": "echo"}]}
NAP = {
    "schema_version": "1.0",
    "name": "nap",
    "steps": [{"id": "nap", "agent": "sleep", "input": {"seconds": 1000}}],
}


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    async with open_runtime(journal=tmp_path / "journal.db", cancel_grace=0.1) as opened:
        yield opened


async def record(
    journal: Journal,
    execution_id: str,
    events: list[tuple[str, str | None, dict[str, Any]]],
    *,
    parent_id: str | None = None,
) -> None:
    """Record an execution some other process ran, with `events` after its start."""
    await journal.create_execution(
        ExecutionRecord(
            execution_id=execution_id,
            workflow_name="ghost",
            workflow=WORKFLOW,
            parent_id=parent_id,
            parent_step=None if parent_id is None else "sub",
        )
    )
    stamp = "2025-01-01T00:00:00.000Z"
    for seq, (kind, step_id, data) in enumerate(
        [("execution.started", None, {}), *events], start=1
    ):
        await journal.append(Event(execution_id, seq, stamp, float(seq), kind, step_id, None, data))
    await journal.flush()


async def test_an_interrupted_execution_is_cancelled_here_with_its_running_units(
    runtime: Runtime,
) -> None:
    """No process runs it: its running steps and items end cancelled, then the execution."""
    journal = runtime.journal
    await record(
        journal,
        "dead",
        [
            ("step.started", "a", {}),
            ("step.succeeded", "a", {"output": 1}),
            ("step.started", "b", {}),
            ("step.started", "m", {}),
            ("map.started", "m", {"count": 2}),
            ("step.started", "m[0]", {}),
            ("step.started", "m[1]", {}),
            ("step.succeeded", "m[1]", {"output": 2}),
            ("step.usage", "b", {"input_tokens": 3}),
        ],
    )
    outcome = await runtime.cancel("dead", reason="nobody needs it", by="me")
    assert (outcome.status, outcome.requested, outcome.in_process) == (
        ExecutionStatus.CANCELLED,
        False,
        False,
    )
    events = await journal.events("dead")
    tail = [(event.type, event.step_id, event.data) for event in events[10:]]
    assert tail == [
        ("step.cancelled", "b", {"reason": "nobody needs it"}),
        ("step.cancelled", "m", {"reason": "nobody needs it"}),
        ("step.cancelled", "m[0]", {"reason": "nobody needs it"}),
        (
            "execution.cancelled",
            None,
            {
                "reason": "nobody needs it",
                "error": {"type": "Cancelled", "message": "nobody needs it"},
                "usage": {"input_tokens": 3},
            },
        ),
    ]
    assert [event.seq for event in events] == list(range(1, len(events) + 1))
    assert (await journal.get_execution("dead")).status is ExecutionStatus.CANCELLED
    assert replay(events).steps["a"].output == 1
    path = journal.path
    assert path is not None
    assert held_executions(path, ["dead"]) == frozenset()


async def test_its_unfinished_children_are_cancelled_first(runtime: Runtime) -> None:
    """A step running a child execution: the child is cancelled too (before its parent)."""
    journal = runtime.journal
    await record(
        journal,
        "parent",
        [("step.started", "sub", {}), ("child.started", "sub", {"child_id": "parent.sub"})],
    )
    await record(journal, "parent.sub", [("step.started", "a", {})], parent_id="parent")
    await runtime.cancel("parent", reason="stop", by="me")
    child = await journal.events("parent.sub")
    assert [event.type for event in child[-2:]] == ["step.cancelled", "execution.cancelled"]
    assert (await journal.get_execution("parent.sub")).status is ExecutionStatus.CANCELLED
    assert (await journal.get_execution("parent")).status is ExecutionStatus.CANCELLED


async def test_a_finished_execution_has_nothing_to_cancel(runtime: Runtime) -> None:
    """Succeeded already: ExecutionStateError saying so; unknown: ExecutionNotFoundError."""
    handle = await runtime.start(WORKFLOW)
    await handle.wait()
    with pytest.raises(
        ExecutionStateError,
        match=f"^execution {handle.execution_id} already succeeded; nothing to cancel$",
    ):
        await runtime.cancel(handle.execution_id, reason="late")
    with pytest.raises(ExecutionNotFoundError):
        await runtime.cancel("nope", reason="late")


async def test_an_execution_another_process_holds_gets_a_request(runtime: Runtime) -> None:
    """Its lock is held elsewhere: a cancel request is recorded for that process; nothing else."""
    journal = runtime.journal
    await record(journal, "elsewhere", [("step.started", "a", {})])
    other = ExecutionLocks(journal.path)
    try:
        assert other.acquire("elsewhere")
        outcome = await runtime.cancel("elsewhere", reason="stop", force=True, by="me@host")
    finally:
        other.close()
    assert outcome.requested
    assert outcome.request is not None
    assert outcome.request.kind == RequestKind.CANCEL
    assert outcome.request.body == {"reason": "stop", "force": True, "by": "me@host"}
    assert (await journal.get_execution("elsewhere")).status is ExecutionStatus.RUNNING
    [pending] = await journal.pending_requests(["elsewhere"])
    assert pending.request_id == outcome.request.request_id


async def test_cancelling_here_settles_pending_cancel_requests_applied(runtime: Runtime) -> None:
    """A request its process died before acting on is settled when the cancel is done here."""
    journal = runtime.journal
    await record(journal, "dead", [("step.started", "a", {})])
    request = await journal.submit_request(
        "dead", RequestKind.CANCEL, {"reason": "x", "force": False, "by": "me"}
    )
    await runtime.cancel("dead", reason="x")
    [settled] = await journal.requests("dead")
    assert settled.request_id == request.request_id
    assert (settled.outcome, settled.detail) == ("applied", "cancelled while no process ran it")


async def test_an_execution_this_runtime_runs_is_cancelled_in_process(runtime: Runtime) -> None:
    """Live here: cancelled through its handle, no request recorded."""
    handle = await runtime.start(NAP)
    outcome = await runtime.cancel(handle.execution_id, reason="here", force=True)
    assert outcome.in_process
    assert not outcome.requested
    with trio.fail_after(5):
        result = await handle.wait()
    assert result.status is ExecutionStatus.CANCELLED
    assert await runtime.journal.requests(handle.execution_id) == []


async def test_writing_the_end_refuses_a_finished_execution(runtime: Runtime) -> None:
    """`cancel_unowned` reads the status again under the lock: one that ended is refused."""
    journal = runtime.journal
    await record(journal, "done", [("execution.succeeded", None, {"output": 1})])
    locks = FileLockClaims(ExecutionLocks(journal.path))
    try:
        assert await locks.acquire("done")
        with pytest.raises(ExecutionStateError, match="already succeeded"):
            await cancel_unowned(journal, locks, "done", "x")
        with pytest.raises(ExecutionStateError, match="already succeeded"):
            await cancel_execution(journal, locks, "done", reason="x", by="me")
    finally:
        await locks.close()


def _moment(timestamp: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))


async def test_the_cancel_events_count_the_time_since_the_last_event(runtime: Runtime) -> None:
    """Elapsed carries on from the last event by the wall clock since it: durations stay right."""
    journal = runtime.journal
    await record(journal, "dead", [("step.started", "a", {})])
    await runtime.cancel("dead", reason="gone", by="me")
    events = await journal.events("dead")
    last, cancelled = events[1], events[-1]
    since = (_moment(cancelled.ts) - _moment(last.ts)).total_seconds()
    assert since > 3600
    assert cancelled.elapsed == pytest.approx(last.elapsed + since, abs=1.0)
    assert replay(events).steps["a"].duration == pytest.approx(since, abs=1.0)


async def test_the_cancel_events_of_an_execution_without_events_start_at_zero(
    runtime: Runtime,
) -> None:
    """Nothing recorded yet (it never started): the cancel's events start the clock at zero."""
    journal = runtime.journal
    await journal.create_execution(ExecutionRecord("never", "ghost", WORKFLOW))
    await runtime.cancel("never", reason="gone", by="me")
    [cancelled] = await journal.events("never")
    assert cancelled.elapsed == pytest.approx(0.0, abs=1.0)


def test_a_timestamp_that_does_not_parse_counts_no_time() -> None:
    """A bad or future `ts` adds nothing to the elapsed time (never a negative duration)."""
    assert _seconds_since("yesterday") == 0.0
    assert _seconds_since("2999-01-01T00:00:00.000Z") == 0.0


async def test_runtime_cancel_defaults_its_reason_and_who_asked(runtime: Runtime) -> None:
    """Without `reason`, the handle's default is recorded; without `by`, a request says `api`."""
    await record(runtime.journal, "dead", [])
    await runtime.cancel("dead")
    [*_, cancelled] = await runtime.journal.events("dead")
    assert cancelled.data["reason"] == "cancelled by request"
    await record(runtime.journal, "held", [])
    path = runtime.journal.path
    assert path is not None
    owner = ExecutionLocks(path)
    try:
        assert owner.acquire("held")
        outcome = await runtime.cancel("held")
    finally:
        owner.close()
    assert outcome.request is not None
    assert outcome.request.body == {"reason": "cancelled by request", "force": False, "by": "api"}

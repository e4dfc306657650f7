"""The runtime: starting, reading, cancelling and resuming executions; validation; agent lookup.

Time-dependent tests run on pytest-trio's `autojump_clock`, so virtual times are asserted exactly.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import sqlite3
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from orchestr8._agents._contract import Agent, AgentContext
from orchestr8._errors import (
    ExecutionNotFoundError,
    ExecutionStateError,
    InputValidationError,
    JournalError,
    NonRetryableError,
    WorkflowValidationError,
)
from orchestr8._execution._results import ExecutionResult
from orchestr8._execution._runtime import open_runtime, run_workflow
from orchestr8._journal import _rules as journal_rules
from orchestr8._journal._events import Event, EventType, ExecutionStatus, StepStatus
from orchestr8._journal._journal import open_journal
from orchestr8._journal._replay import replay
from orchestr8._workflow._codec import load_workflow

NO_RETRY: dict[str, Any] = {"retry": {"max_attempts": 1}, "circuit_breaker": None}

CALLS: Counter[str] = Counter()
"""Calls of the `python` agent callables below, by step id (reset for every test)."""


async def counted(input: Any, context: AgentContext) -> Any:
    """Count the call and return the input: proves which steps ran."""
    CALLS[context.step_id] += 1
    return {"input": input, "call": CALLS[context.step_id]}


async def fails_first_time(input: Any, context: AgentContext) -> Any:
    """Fail the first call of the test, succeed afterwards (a fault fixed before a resume)."""
    CALLS[context.step_id] += 1
    if CALLS[context.step_id] == 1:
        raise NonRetryableError("the service was down")
    return {"fixed": input}


@pytest.fixture(autouse=True)
def reset_calls() -> Iterator[None]:
    """Each test counts its own calls."""
    CALLS.clear()
    yield
    CALLS.clear()


def workflow(*steps: dict[str, Any], **options: Any) -> dict[str, Any]:
    """A workflow document with these steps; `options` are top-level keys."""
    document: dict[str, Any] = {
        "schema_version": "1.0",
        "name": "test",
        "steps": list(steps),
        "defaults": {"policy": NO_RETRY},
    }
    document.update(options)
    return document


def sleep(step_id: str, seconds: float, *depends_on: str) -> dict[str, Any]:
    """A step that sleeps on the trio clock."""
    return {
        "id": step_id,
        "agent": {"id": "sleep", "config": {"seconds": seconds}},
        "depends_on": list(depends_on),
    }


def python(step_id: str, function: str, *depends_on: str, **extra: Any) -> dict[str, Any]:
    """A `python` step calling a function of this module."""
    agent = {"id": "python", "config": {"callable": f"{__name__}:{function}"}}
    return {"id": step_id, "agent": agent, "depends_on": list(depends_on), **extra}


def of_type(events: list[Event], type: str, step_id: str | None = None) -> list[Event]:
    """The events of one type, optionally of one step."""
    return [e for e in events if e.type == type and (step_id is None or e.step_id == step_id)]


def assert_replays_to(result: ExecutionResult, events: list[Event]) -> None:
    """The journal folds back into the result the runtime returned, with gap-free seqs."""
    state = replay(events)
    assert state.status is result.status
    assert state.output == result.output
    assert {k: s.status for k, s in state.steps.items()} == {
        k: s.status for k, s in result.steps.items()
    }
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


# -- running and reading ---------------------------------------------------------------------


async def test_run_workflow_runs_to_the_end_and_returns_the_result() -> None:
    """`run_workflow` runs one workflow in a runtime of its own."""
    result = await run_workflow(
        workflow({"id": "a", "agent": "echo", "input": "${inputs.x}"}), {"x": [1, 2]}
    )
    assert result.status is ExecutionStatus.SUCCEEDED
    assert result.succeeded
    assert result.output == {"a": [1, 2]}
    assert result.steps["a"].attempts == 1


async def test_run_workflow_with_a_journal_path_leaves_a_readable_journal(tmp_path: Path) -> None:
    """A SQLite journal path given to `run_workflow` holds the whole execution afterwards."""
    path = tmp_path / "journal.db"
    result = await run_workflow(workflow({"id": "a", "agent": "echo", "input": 7}), journal=path)
    async with open_journal(path) as journal:
        events = await journal.events(result.execution_id)
        record = await journal.get_execution(result.execution_id)
    assert record.status is ExecutionStatus.SUCCEEDED
    assert record.workflow_name == "test"
    assert events[-1].type == EventType.EXECUTION_SUCCEEDED
    assert_replays_to(result, events)


async def test_run_workflow_with_a_postgresql_url_leaves_the_execution_there(
    postgres_url: str,
) -> None:
    """A `postgresql://` URL given as the journal is a PostgreSQL journal, not a file's name."""
    result = await run_workflow(
        workflow({"id": "a", "agent": "echo", "input": 7}), journal=postgres_url
    )
    async with open_journal(postgres_url) as journal:
        events = await journal.events(result.execution_id)
        assert journal.path is None
    assert events[-1].type == EventType.EXECUTION_SUCCEEDED
    assert_replays_to(result, events)


async def test_workflows_load_from_a_path_json_text_a_dict_or_a_workflow(tmp_path: Path) -> None:
    """The runtime accepts every form of workflow."""
    document = workflow({"id": "a", "agent": "echo", "input": "hi"})
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(document))
    async with open_runtime() as rt:
        for form in (document, json.dumps(document), path, str(path), load_workflow(document)):
            handle = await rt.start(form)
            result = await handle.wait()
            assert result.output == {"a": "hi"}, form


async def test_a_handle_tracks_its_execution_and_get_finds_live_ones(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """While running, `get(id)` returns the handle and `done` is False; afterwards the result."""
    async with open_runtime() as rt:
        handle = await rt.start(workflow(sleep("a", 2)), execution_id="exec-1")
        assert handle.execution_id == "exec-1"
        assert rt.get("exec-1") is handle
        assert handle.done is False
        assert handle.result is None
        result = await handle.wait()
        assert handle.done is True
        assert handle.result is result
        assert await handle.wait() is result
        with pytest.raises(ExecutionNotFoundError):
            rt.get("exec-1")
        with pytest.raises(ExecutionNotFoundError):
            rt.get("no-such-execution")
        from_journal = await rt.result("exec-1")
    assert from_journal.status is ExecutionStatus.SUCCEEDED
    assert from_journal.output == result.output == {"a": None}
    assert trio.current_time() == 2.0


async def test_result_of_an_unknown_execution_raises() -> None:
    """`result` and `resume` of an id the journal does not know raise ExecutionNotFoundError."""
    async with open_runtime() as rt:
        with pytest.raises(ExecutionNotFoundError):
            await rt.result("nope")
        with pytest.raises(ExecutionNotFoundError):
            await rt.resume("nope")


async def test_an_idempotency_key_seen_before_returns_the_same_execution() -> None:
    """Starting twice with one idempotency key runs the workflow once."""
    document = workflow(python("a", "counted"))
    async with open_runtime() as rt:
        first = await rt.start(document, idempotency_key="key-1")
        await first.wait()
        again = await rt.start(document, idempotency_key="key-1")
        assert again.execution_id == first.execution_id
        result = await again.wait()
        assert result.status is ExecutionStatus.SUCCEEDED
        page = await rt.journal.list_executions()
    assert len(page.items) == 1
    assert CALLS == {"a": 1}


async def test_concurrent_starts_with_one_idempotency_key_run_it_once() -> None:
    """Two starts racing with one key in one runtime get one execution, run once."""
    document = workflow(python("a", "counted"))
    handles = []
    async with open_runtime() as rt:

        async def start() -> None:
            handles.append(await rt.start(document, idempotency_key="key-1"))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(start)
            nursery.start_soon(start)
        assert handles[0].execution_id == handles[1].execution_id
        for handle in handles:
            assert (await handle.wait()).status is ExecutionStatus.SUCCEEDED
        page = await rt.journal.list_executions()
        assert not rt.journal.statistics().failed
    assert len(page.items) == 1
    assert CALLS == {"a": 1}


async def test_racing_starts_with_one_id_and_key_on_one_journal_run_it_once() -> None:
    """Given the same id and key, the losing runtime hands back the winner's execution too."""
    document = workflow(sleep("a", 0.01))
    handles = []
    async with open_journal(None) as journal:
        async with open_runtime(journal=journal) as one, open_runtime(journal=journal) as two:

            async def start(runtime: Any) -> None:
                handles.append(
                    await runtime.start(document, execution_id="run-x", idempotency_key="key-1")
                )

            async with trio.open_nursery() as nursery:
                nursery.start_soon(start, one)
                nursery.start_soon(start, two)
            assert [handle.execution_id for handle in handles] == ["run-x", "run-x"]
            live = [handle for handle in handles if handle.result is None]
            for handle in handles:
                await handle.finished()
        assert not journal.statistics().failed
        events = await journal.events("run-x")
    assert len(live) >= 1
    assert [e.type for e in events].count(EventType.EXECUTION_STARTED) == 1


async def test_a_key_another_runtime_recorded_first_gives_that_execution() -> None:
    """Racing runtimes on one journal: the loser hands back the winner's execution, unrun."""
    document = workflow(sleep("a", 0.01))
    handles = []
    async with open_journal(None) as journal:
        async with open_runtime(journal=journal) as one, open_runtime(journal=journal) as two:

            async def start(runtime: Any) -> None:
                handles.append(await runtime.start(document, idempotency_key="key-1"))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(start, one)
                nursery.start_soon(start, two)
            assert handles[0].execution_id == handles[1].execution_id
            outcomes: list[str] = []
            for handle in handles:
                try:
                    outcomes.append((await handle.wait()).status)
                except ExecutionStateError as error:
                    outcomes.append(str(error).split(" (")[0])
            assert sorted(outcomes) == [
                f"execution {handles[0].execution_id} has not finished and does not run in this "
                "runtime",
                ExecutionStatus.SUCCEEDED,
            ]
        page = await journal.list_executions()
        assert not journal.statistics().failed
    assert len(page.items) == 1


# -- validation before anything runs ---------------------------------------------------------


async def test_unknown_agents_are_validation_errors_before_anything_runs() -> None:
    """An unknown agent fails `start` with its JSON path; no execution is recorded."""
    async with open_runtime() as rt:
        with pytest.raises(WorkflowValidationError) as caught:
            await rt.start(workflow(python("a", "counted"), {"id": "b", "agent": "no-such"}))
        assert [p.path for p in caught.value.problems] == ["$.steps[1].agent"]
        assert "unknown agent 'no-such'" in caught.value.problems[0].message
        assert (await rt.journal.list_executions()).items == ()
    assert CALLS == {}


async def test_bad_agent_configs_are_validation_errors_reported_together() -> None:
    """Every bad config is reported at once, each under `$.steps[N].agent`."""
    async with open_runtime() as rt:
        with pytest.raises(WorkflowValidationError) as caught:
            await rt.start(
                workflow(
                    {"id": "a", "agent": {"id": "sleep", "config": {"seconds": -1}}},
                    {"id": "b", "agent": "echo"},
                    {"id": "c", "agent": {"id": "python", "config": {"callable": "nowhere:x"}}},
                    {"id": "d", "agent": {"id": "fail", "config": {"times": "two"}}},
                )
            )
        problems = {p.path: p.message for p in caught.value.problems}
        assert list(problems) == ["$.steps[0].agent", "$.steps[2].agent", "$.steps[3].agent"]
        assert "seconds must be 0 or more" in problems["$.steps[0].agent"]
        assert "nowhere" in problems["$.steps[2].agent"]
        assert (await rt.journal.list_executions()).items == ()


async def test_a_loaded_workflow_with_an_unknown_agent_is_rejected_too() -> None:
    """A `Workflow` object loaded elsewhere is checked against this runtime's agents."""
    loaded = load_workflow(workflow({"id": "a", "agent": "only-elsewhere"}))
    async with open_runtime() as rt:
        with pytest.raises(WorkflowValidationError) as caught:
            await rt.start(loaded)
        assert [p.path for p in caught.value.problems] == ["$.steps[0].agent"]


async def test_invalid_inputs_are_rejected_and_nothing_is_recorded() -> None:
    """Inputs that do not fit the schema raise InputValidationError with paths."""
    document = workflow(
        {"id": "a", "agent": "echo", "input": "${inputs.n}"},
        inputs={"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]},
    )
    async with open_runtime() as rt:
        with pytest.raises(InputValidationError) as caught:
            await rt.start(document, {"n": "three"})
        assert [p.path for p in caught.value.problems] == ["$.inputs.n"]
        with pytest.raises(InputValidationError):
            await rt.start(document, {})
        assert (await rt.journal.list_executions()).items == ()


# -- agents of the embedding program ---------------------------------------------------------


async def test_agents_given_by_the_embedder_shadow_built_ins() -> None:
    """`agents={"echo": ...}` replaces the built-in echo, as a class or an async function."""

    class LoudEcho(Agent):
        async def run(self, input: Any, context: AgentContext) -> Any:
            return f"{input}!".upper()

    async def quiet_echo(input: Any) -> Any:
        return f"({input})"

    document = workflow({"id": "a", "agent": "echo", "input": "hi"})
    assert (await run_workflow(document, agents={"echo": LoudEcho})).output == {"a": "HI!"}
    assert (await run_workflow(document, agents={"echo": quiet_echo})).output == {"a": "(hi)"}
    assert (await run_workflow(document)).output == {"a": "hi"}


async def test_async_function_agents_get_the_context_when_they_take_it() -> None:
    """An async function with (input, context) sees the execution's ids and its attempt."""
    seen: list[AgentContext] = []

    async def spy(input: Any, context: AgentContext) -> Any:
        seen.append(context)
        return input

    async with open_runtime(agents={"spy": spy}) as rt:
        handle = await rt.start(workflow({"id": "s", "agent": "spy", "input": 1}))
        await handle.wait()
    [context] = seen
    assert (context.execution_id, context.step_id, context.attempt) == (handle.execution_id, "s", 1)
    assert context.workflow_name == "test"
    assert context.idempotency_key == f"{handle.execution_id}:s"


async def test_embedder_agent_configs_are_validated_by_their_factory() -> None:
    """A factory that rejects its config makes `start` fail at validation."""

    class Strict(Agent):
        config_keys = frozenset({"level"})

        async def run(self, input: Any, context: AgentContext) -> Any:
            return input

    async with open_runtime(agents={"strict": Strict}) as rt:
        with pytest.raises(WorkflowValidationError) as caught:
            await rt.start(
                workflow({"id": "a", "agent": {"id": "strict", "config": {"colour": "red"}}})
            )
    assert [p.path for p in caught.value.problems] == ["$.steps[0].agent"]
    assert "colour" in caught.value.problems[0].message


# -- leaving the runtime ---------------------------------------------------------------------


async def test_leaving_open_runtime_cancels_running_executions_within_the_grace(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Leaving the block cancels running executions, forced after the grace, recorded."""
    async with open_journal(None) as journal:
        async with open_runtime(journal=journal, cancel_grace=2.0) as rt:
            handle = await rt.start(workflow(sleep("long", 100), sleep("next", 1, "long")))
            await trio.sleep(1)
        assert trio.current_time() == 3.0
        events = await journal.events(handle.execution_id)
        result = await handle.wait()
    assert result.status is ExecutionStatus.CANCELLED
    assert result.steps["long"].status is StepStatus.CANCELLED
    cancelled = of_type(events, EventType.EXECUTION_CANCELLED)
    assert [(e.elapsed, e.data["reason"]) for e in cancelled] == [
        (3.0, "the runtime is shutting down")
    ]
    assert [(e.step_id, e.elapsed) for e in of_type(events, EventType.STEP_CANCELLED)] == [
        ("long", 3.0),
        ("next", 3.0),
    ]
    assert_replays_to(result, events)


async def test_leaving_open_runtime_lets_cooperative_agents_finish(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A cooperative agent still gets to finish its step when the runtime closes."""

    async def polite(input: Any, context: AgentContext) -> Any:
        await context.wait_cancel_requested()
        await trio.sleep(0.5)
        return "saved"

    async with open_journal(None) as journal:
        async with open_runtime(journal=journal, agents={"polite": polite}) as rt:
            handle = await rt.start(workflow({"id": "p", "agent": "polite"}))
            await trio.sleep(1)
        events = await journal.events(handle.execution_id)
    assert trio.current_time() == 1.5
    assert of_type(events, EventType.STEP_SUCCEEDED, "p")[0].data["output"] == "saved"
    assert events[-1].type == EventType.EXECUTION_CANCELLED


async def test_leaving_open_runtime_says_when_only_agents_ignoring_cancel_remain(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """`wait_only_stragglers` returns once the end is journaled, while a shielded agent runs on."""

    async def stubborn(input: Any) -> Any:
        with trio.CancelScope(shield=True):
            await trio.sleep(100)
        return "late"

    seen: list[tuple[float, str]] = []
    async with open_journal(None) as journal, trio.open_nursery() as nursery:

        async def watch(runtime: Any) -> None:
            await runtime.wait_only_stragglers()
            events = await journal.events(handle.execution_id)
            seen.append((trio.current_time(), events[-1].type))

        async with open_runtime(journal=journal, agents={"stubborn": stubborn}) as rt:
            handle = await rt.start(workflow({"id": "s", "agent": "stubborn"}), execution_timeout=1)
            nursery.start_soon(watch, rt)
            await handle.wait()
        seen.append((trio.current_time(), "closed"))
    assert [what for _, what in seen] == [EventType.EXECUTION_FAILED, "closed"]
    assert seen[0][0] < 100 <= seen[1][0]


async def test_an_error_leaving_open_runtime_still_records_the_cancellation(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An exception out of the block propagates after running executions were recorded."""
    started: list[str] = []

    async def embedder(journal: Any) -> None:
        async with open_runtime(journal=journal, cancel_grace=1.0) as rt:
            started.append((await rt.start(workflow(sleep("long", 100)))).execution_id)
            await trio.sleep(1)
            raise RuntimeError("embedder crashed")

    async with open_journal(None) as journal:
        with pytest.raises(RuntimeError, match="embedder crashed"):
            await embedder(journal)
        events = await journal.events(started[0])
    assert (events[-1].type, events[-1].elapsed) == (EventType.EXECUTION_CANCELLED, 2.0)


async def test_a_cancellation_from_outside_the_runtime_is_recorded(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A cancel scope around `open_runtime` still ends executions recorded as cancelled."""
    async with open_journal(None) as journal:
        with trio.move_on_after(1):
            async with open_runtime(journal=journal, cancel_grace=2.0) as rt:
                handle = await rt.start(workflow(sleep("long", 100)))
                await trio.sleep(50)
        assert trio.current_time() == 3.0
        events = await journal.events(handle.execution_id)
        result = await handle.wait()
    assert result.status is ExecutionStatus.CANCELLED
    assert (events[-1].type, events[-1].elapsed) == (EventType.EXECUTION_CANCELLED, 3.0)
    assert_replays_to(result, events)


# -- resume ----------------------------------------------------------------------------------


RESUMABLE = workflow(
    python("prepare", "counted", input="data"),
    python("call_service", "fails_first_time", "prepare", input="${steps.prepare.output.input}"),
    python("report", "counted", "call_service", input="${steps.call_service.output.fixed}"),
    output={"prepared": "${steps.prepare.output}", "reported": "${steps.report.output}"},
)


async def test_resume_after_a_failure_reruns_only_the_unfinished_steps_across_runtimes(
    tmp_path: Path,
) -> None:
    """Resume in a new runtime reruns only unfinished steps, reusing outputs and seq."""
    path = tmp_path / "journal.db"
    async with open_runtime(journal=path) as rt:
        handle = await rt.start(RESUMABLE)
        failed = await handle.wait()
    assert failed.status is ExecutionStatus.FAILED
    assert failed.steps["report"].status is StepStatus.SKIPPED
    assert CALLS == {"prepare": 1, "call_service": 1}

    async with open_runtime(journal=path) as rt:
        before = await rt.journal.events(handle.execution_id)
        resumed = await rt.resume(handle.execution_id)
        assert resumed.execution_id == handle.execution_id
        result = await resumed.wait()
        events = await rt.journal.events(handle.execution_id)
        from_journal = await rt.result(handle.execution_id)

    assert CALLS == {"prepare": 1, "call_service": 2, "report": 1}
    assert result.status is ExecutionStatus.SUCCEEDED
    assert result.output == {
        "prepared": {"input": "data", "call": 1},
        "reported": {"input": "data", "call": 1},
    }
    assert events[: len(before)] == before
    marker = events[len(before)]
    assert marker.type == EventType.EXECUTION_RESUMED
    assert marker.seq == before[-1].seq + 1
    assert marker.data["reused_steps"] == ["prepare"]
    assert marker.elapsed >= before[-1].elapsed
    rerun = {e.step_id for e in events[len(before) :] if e.type == EventType.STEP_STARTED}
    assert rerun == {"call_service", "report"}
    assert_replays_to(result, events)
    assert from_journal.status is ExecutionStatus.SUCCEEDED
    assert from_journal.output == result.output


async def test_resume_after_a_cancel_reruns_the_cancelled_steps(
    tmp_path: Path,
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A cancelled execution resumes in a new runtime; finished steps are not run again."""
    path = tmp_path / "journal.db"
    document = workflow(
        python("first", "counted", input=1),
        sleep("slow", 10, "first"),
        python("last", "counted", "slow", input=2),
    )
    async with open_runtime(journal=path, cancel_grace=0) as rt:
        handle = await rt.start(document)
        await trio.sleep(3)
        handle.cancel()
        cancelled = await handle.wait()
    assert cancelled.status is ExecutionStatus.CANCELLED
    assert cancelled.steps["slow"].status is StepStatus.CANCELLED

    async with open_runtime(journal=path) as rt:
        resumed = await rt.resume(handle.execution_id)
        result = await resumed.wait()
        events = await rt.journal.events(handle.execution_id)
    assert result.status is ExecutionStatus.SUCCEEDED
    assert CALLS == {"first": 1, "last": 1}
    assert result.output == {
        "first": {"input": 1, "call": 1},
        "slow": None,
        "last": {"input": 2, "call": 1},
    }
    resumed_at = of_type(events, EventType.EXECUTION_RESUMED)[0]
    assert resumed_at.data["reused_steps"] == ["first"]
    succeeded = of_type(events, EventType.STEP_SUCCEEDED, "slow")
    # From its start in the resumed run: the journal's flush of `execution.resumed` runs in a
    # thread, and the autojump clock may skip to the control loop's next poll meanwhile.
    started = of_type(events, EventType.STEP_STARTED, "slow")[-1]
    assert started.seq > resumed_at.seq
    assert [e.elapsed - started.elapsed for e in succeeded] == [10.0]
    assert_replays_to(result, events)


async def test_resuming_a_succeeded_execution_raises() -> None:
    """There is nothing to resume in a succeeded execution."""
    async with open_runtime() as rt:
        handle = await rt.start(workflow(python("a", "counted")))
        await handle.wait()
        with pytest.raises(ExecutionStateError, match="already succeeded"):
            await rt.resume(handle.execution_id)
    assert CALLS == {"a": 1}


async def test_resuming_a_running_execution_raises(autojump_clock: trio.testing.MockClock) -> None:
    """An execution live in this runtime cannot be resumed alongside itself."""
    async with open_runtime(cancel_grace=0) as rt:
        handle = await rt.start(workflow(sleep("a", 10)))
        await trio.sleep(1)
        with pytest.raises(ExecutionStateError, match="is running"):
            await rt.resume(handle.execution_id)
        handle.cancel()


async def test_a_resumed_execution_can_fail_and_be_resumed_again(tmp_path: Path) -> None:
    """Resume twice: still one run of each succeeded step, seq gap-free across all three runs."""
    path = tmp_path / "journal.db"
    document = workflow(
        python("a", "counted"),
        python("b", "fails_first_time", "a"),
        python("c", "fails_first_time", "b"),
    )
    async with open_runtime(journal=path) as rt:
        handle = await rt.start(document)
        assert (await handle.wait()).status is ExecutionStatus.FAILED
    async with open_runtime(journal=path) as rt:
        second = await (await rt.resume(handle.execution_id)).wait()
        assert second.status is ExecutionStatus.FAILED
        assert second.steps["b"].status is StepStatus.SUCCEEDED
        third = await (await rt.resume(handle.execution_id)).wait()
        events = await rt.journal.events(handle.execution_id)
    assert third.status is ExecutionStatus.SUCCEEDED
    assert CALLS == {"a": 1, "b": 2, "c": 2}
    assert [e.data["reused_steps"] for e in of_type(events, EventType.EXECUTION_RESUMED)] == [
        ["a"],
        ["a", "b"],
    ]
    assert_replays_to(third, events)


def test_the_python_callables_live_in_this_module() -> None:
    """The `python` steps above import this very module, so CALLS is the counter they bump."""
    assert importlib.import_module(__name__).CALLS is CALLS


async def test_a_started_execution_is_durable_with_its_started_event_when_start_returns(
    tmp_path: Path,
) -> None:
    """What a crash right after `start` returns leaves: the execution and its execution.started."""
    path = tmp_path / "journal.db"
    async with open_runtime(journal=path) as runtime:
        handles = [await runtime.start(workflow(sleep("wait", 0))) for _ in range(5)]
        # Read the file as another process would, with no await in between: what is committed.
        with contextlib.closing(sqlite3.connect(path)) as connection:
            rows = connection.execute(
                "SELECT e.execution_id, (SELECT type FROM events WHERE execution_id ="
                " e.execution_id AND seq = 1) FROM executions AS e"
            ).fetchall()
        for handle in handles:
            await handle.wait()
    assert sorted(rows) == sorted(
        (handle.execution_id, EventType.EXECUTION_STARTED) for handle in handles
    )


# -- a failing journal ----------------------------------------------------------------------------


async def test_a_journal_failure_stops_the_execution_and_wait_raises_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The journal failing stops the run at once, quiet steps too: no grace, nothing recordable."""
    stopped_at: list[float] = []

    async def scenario() -> None:
        async with open_journal(None) as journal:

            async def corrupt(input: Any) -> str:
                await trio.sleep(1)
                # Another writer's bad event: the journal refuses it and fails for good.
                await journal.append(
                    Event(
                        "ghost", 1, "2025-01-01T00:00:00.000Z", 0.0, "step.progress", None, None, {}
                    )
                )
                return "done"

            async with open_runtime(
                journal=journal, agents={"corrupt": corrupt}, cancel_grace=2.0
            ) as runtime:
                handle = await runtime.start(
                    workflow(
                        sleep("quiet", 3600),
                        {"id": "corrupt", "agent": "corrupt"},
                        sleep("later", 1, "corrupt"),
                    )
                )
                stopped = rf"execution {handle.execution_id} stopped: the journal failed: "
                with pytest.raises(JournalError, match=stopped + ".*no such execution"):
                    await handle.wait()
                assert (handle.done, handle.result) == (False, None)
                stopped_at.append(trio.current_time())
                events = await journal.events(handle.execution_id)
                assert replay(events).status is ExecutionStatus.RUNNING
                started = {e.step_id for e in of_type(events, EventType.STEP_STARTED)}
                assert started == {"quiet", "corrupt"}

    with pytest.raises(JournalError, match="no such execution"):
        await scenario()
    assert stopped_at == [1.0]


def _corrupting_agent(journal: Any) -> Any:
    """An agent that, after 1 s, makes the journal fail for good (another writer's bad event)."""

    async def corrupt(input: Any) -> str:
        await trio.sleep(1)
        await journal.append(
            Event("ghost", 1, "2025-01-01T00:00:00.000Z", 0.0, "step.progress", None, None, {})
        )
        return "done"

    return corrupt


async def test_the_blocks_own_error_wins_over_a_journal_failure_while_runs_wind_down(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Leaving with an error while runs still stop (the journal failed) raises that error."""

    async def scenario() -> None:
        async with (
            open_journal(None) as journal,
            open_runtime(
                journal=journal, agents={"corrupt": _corrupting_agent(journal)}, cancel_grace=2.0
            ) as runtime,
        ):
            for _ in range(2):
                await runtime.start(
                    workflow(sleep("quiet", 3600), {"id": "corrupt", "agent": "corrupt"})
                )
            await trio.sleep(1.5)
            raise RuntimeError("the block's own error")

    with pytest.raises(RuntimeError, match="the block's own error"):
        await scenario()


@pytest.mark.parametrize("in_a_nursery", [False, True])
async def test_a_cancelled_block_does_not_hide_a_journal_failure(
    autojump_clock: trio.testing.MockClock, in_a_nursery: bool
) -> None:
    """A block cancelled from outside (bare or grouped Cancelled) leaves with the journal error."""

    async def scenario() -> None:
        with trio.move_on_after(5):
            async with (
                open_journal(None) as journal,
                open_runtime(
                    journal=journal, agents={"corrupt": _corrupting_agent(journal)}
                ) as runtime,
            ):
                await runtime.start(workflow({"id": "corrupt", "agent": "corrupt"}))
                if in_a_nursery:
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(trio.sleep_forever)
                        await trio.sleep_forever()
                await trio.sleep_forever()

    with pytest.raises(JournalError, match="no such execution"):
        await scenario()


async def test_two_resumes_of_one_execution_racing_in_one_runtime_start_one_run() -> None:
    """Of two concurrent resumes of the same execution, one runs it and the other is refused."""
    outcomes: list[str] = []
    async with open_runtime() as runtime:
        failed = await (await runtime.start(workflow(python("a", "fails_first_time")))).wait()
        assert failed.status is ExecutionStatus.FAILED

        async def resume() -> None:
            try:
                handle = await runtime.resume(failed.execution_id)
            except ExecutionStateError as error:
                outcomes.append(str(error))
            else:
                outcomes.append((await handle.wait()).status)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(resume)
            nursery.start_soon(resume)
    assert sorted(outcomes) == [
        f"execution {failed.execution_id} is running; it cannot be resumed",
        ExecutionStatus.SUCCEEDED,
    ]
    assert CALLS["a"] == 2


@pytest.mark.parametrize("grace", [math.nan, math.inf, -1.0])
async def test_a_cancel_grace_that_is_no_number_of_seconds_is_refused(grace: float) -> None:
    """NaN, infinite or negative grace periods are a ValueError before anything opens."""
    with pytest.raises(ValueError, match="cancel_grace must be a finite number of seconds"):
        async with open_runtime(cancel_grace=grace):
            pass


async def test_a_workflow_started_again_is_encoded_for_the_journal_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Every start is recorded with the workflow, whose JSON text is made on the first only."""
    encoded: list[Any] = []
    to_json = journal_rules.to_json

    def counting(value: Any) -> str | None:
        if isinstance(value, dict) and "steps" in value:
            encoded.append(value)
        return to_json(value)

    monkeypatch.setattr(journal_rules, "to_json", counting)
    workflow = {
        "schema_version": "1.0",
        "name": "again",
        "steps": [{"id": "a", "agent": "echo", "input": 1}],
    }
    async with open_runtime(journal=tmp_path / "journal.db") as runtime:
        loaded = runtime.load(workflow)
        ids = [(await (await runtime.start(loaded)).wait()).execution_id for _ in range(3)]
        records = [await runtime.journal.get_execution(one) for one in ids]
    assert len(encoded) == 1
    assert all(record is not None and record.workflow["name"] == "again" for record in records)

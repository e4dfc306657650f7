"""`_children`: a sub-workflow step runs its child as an execution of its own, linked to the parent.

Time-dependent tests run on pytest-trio's `autojump_clock`, so virtual times are asserted exactly.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestr8._agents._contract import AgentContext
from orchestr8._agents._registry import AgentRegistry
from orchestr8._errors import ExecutionStateError, NonRetryableError, WorkflowValidationError
from orchestr8._execution._children import agent_id_of, child_execution_id
from orchestr8._execution._emitter import Emitter
from orchestr8._execution._engine import ExecutionRun
from orchestr8._execution._liveness import interrupted_executions
from orchestr8._execution._runtime import open_runtime
from orchestr8._execution._state import RunState
from orchestr8._execution._step_resilience import SharedResilience
from orchestr8._journal._events import Event, EventFactory, EventType, ExecutionStatus, StepStatus
from orchestr8._journal._journal import ExecutionRecord, open_journal
from orchestr8._journal._replay import replay
from orchestr8._supervision._bus import EventBus
from orchestr8._workflow._codec import load_workflow, workflow_to_json

CALLS: Counter[str] = Counter()
"""Calls of the agents below, by step id (reset for every test)."""


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


async def waits_for_cancel(input: Any, context: AgentContext) -> Any:
    """Run until a cancel is requested, then return what it saw (a cooperative agent)."""
    CALLS[context.step_id] += 1
    await context.wait_cancel_requested()
    return {"saw_cancel": context.cancel_requested}


SEEN: list[Any] = []
"""The inputs `remembers` was called with."""


async def remembers(input: Any, context: AgentContext) -> Any:
    """Remember the input (it may be a secret no journal shows), failing the first time."""
    SEEN.append(input)
    return await fails_first_time(input, context)


AGENTS = {
    "counted": counted,
    "fails_first_time": fails_first_time,
    "waits": waits_for_cancel,
    "remembers": remembers,
}
NO_RETRY: dict[str, Any] = {"retry": {"max_attempts": 1}, "circuit_breaker": None}


@pytest.fixture(autouse=True)
def reset_calls() -> Iterator[None]:
    """Each test counts its own calls."""
    CALLS.clear()
    SEEN.clear()
    yield
    CALLS.clear()


def child(*steps: dict[str, Any], **options: Any) -> dict[str, Any]:
    """A child workflow taking `text`, returning its last step's output."""
    return {
        "schema_version": "1.1",
        "name": "child",
        "inputs": {
            "type": "object",
            "properties": {"text": {"type": "string"}},
            "required": ["text"],
        },
        "defaults": {"policy": NO_RETRY},
        "steps": list(steps),
        "output": f"${{steps.{steps[-1]['id']}.output}}",
        **options,
    }


def parent(
    workflow: Any, *, policy: dict[str, Any] | None = None, **options: Any
) -> dict[str, Any]:
    """A parent: `before` (counted), then `sub` running `workflow` with `{"text": ...}`."""
    sub: dict[str, Any] = {
        "id": "sub",
        "workflow": workflow,
        "depends_on": ["before"],
        "input": {"text": "${steps.before.output.input}"},
    }
    if policy is not None:
        sub["policy"] = policy
    return {
        "schema_version": "1.1",
        "name": "parent",
        "defaults": {"policy": NO_RETRY},
        "steps": [{"id": "before", "agent": "counted", "input": "hello"}, sub],
        "output": {"child": "${steps.sub.output}"},
        **options,
    }


CHAIN = child(
    {"id": "a", "agent": "counted", "input": "${inputs.text}"},
    {
        "id": "b",
        "agent": "fails_first_time",
        "input": "${steps.a.output.input}",
        "depends_on": ["a"],
    },
)


def of_type(events: list[Event], type: str) -> list[Event]:
    return [event for event in events if event.type == type]


@pytest.mark.parametrize("kind", ["sqlite", "memory"])
async def test_a_child_runs_as_its_own_execution_linked_to_its_parent(
    kind: str, tmp_path: Path
) -> None:
    """The child gets a record naming its parent and step; its output is the step's output."""
    document = parent(child({"id": "a", "agent": "counted", "input": "${inputs.text}"}))
    journal = tmp_path / "journal.db" if kind == "sqlite" else None
    async with open_runtime(journal=journal, agents=AGENTS) as runtime:
        handle = await runtime.start(document)
        result = await handle.wait()
        child_id = child_execution_id(handle.execution_id, "sub")
        record = await runtime.journal.get_execution(child_id)
        events = await runtime.journal.events(handle.execution_id)
        child_events = await runtime.journal.events(child_id)
    assert result.status is ExecutionStatus.SUCCEEDED
    assert result.output == {"child": {"input": "hello", "call": 1}}
    assert child_id == f"{handle.execution_id}.sub"
    assert (record.parent_id, record.parent_step) == (handle.execution_id, "sub")
    assert record.status is ExecutionStatus.SUCCEEDED
    assert record.inputs == {"text": "hello"}
    assert record.workflow["name"] == "child"
    [started] = of_type(events, EventType.CHILD_STARTED)
    assert started.step_id == "sub"
    assert started.attempt == 1
    assert started.data == {"child_id": child_id, "workflow": "child", "resumed": False}
    assert replay(events).steps["sub"].child == child_id
    assert of_type(events, EventType.STEP_STARTED)[1].data == {"agent": "workflow:child"}
    assert [event.type for event in child_events][-1] == EventType.EXECUTION_SUCCEEDED


def test_a_file_childs_agent_label_is_its_name_before_and_after_a_resume(tmp_path: Path) -> None:
    """`workflow:NAME`, not the path: a resume reloads the child inline and must say the same."""
    (tmp_path / "kid.json").write_text(json.dumps(child({"id": "a", "agent": "counted"})))
    (tmp_path / "parent.json").write_text(json.dumps(parent("kid.json")))
    loaded = load_workflow(tmp_path / "parent.json")
    reloaded = load_workflow(workflow_to_json(loaded))
    assert agent_id_of(loaded.steps[1]) == agent_id_of(reloaded.steps[1]) == "workflow:child"


async def test_a_step_input_that_does_not_fit_the_child_fails_the_step_once() -> None:
    """Inputs the child's schema refuses, or that are no object, fail the step with the problems."""
    wrong = parent(child({"id": "a", "agent": "counted"}), policy={"retry": {"max_attempts": 3}})
    wrong["steps"][1]["input"] = {"text": 5}
    not_object = parent(child({"id": "a", "agent": "counted"}))
    not_object["steps"][1]["input"] = "${steps.before.output.input}"
    async with open_runtime(agents=AGENTS) as runtime:
        first = await (await runtime.start(wrong)).wait()
        second = await (await runtime.start(not_object)).wait()
    error = first.steps["sub"].error
    assert first.steps["sub"].attempts == 1
    assert error is not None
    assert error["type"] == "InputValidationError"
    assert "$.inputs.text: expected a string, got an integer" in error["message"]
    error = second.steps["sub"].error
    assert error is not None
    assert "its child's inputs: an object, not a string" in error["message"]
    assert "a" not in CALLS


@pytest.mark.parametrize("written", [None, "absent"])
async def test_a_null_or_absent_step_input_gives_the_child_no_inputs(written: Any) -> None:
    """Null or absent: the child's inputs are `{}` (its defaults apply), as a plan's are."""
    optional = child(
        {"id": "a", "agent": "counted", "input": "${inputs.text}"},
        inputs={"type": "object", "properties": {"text": {"default": "dflt"}}},
    )
    document = parent(optional)
    if written == "absent":
        del document["steps"][1]["input"]
    else:
        document["steps"][1]["input"] = written
    async with open_runtime(agents=AGENTS) as runtime:
        result = await (await runtime.start(document)).wait()
    assert result.status is ExecutionStatus.SUCCEEDED, result.error
    assert result.output == {"child": {"input": "dflt", "call": 1}}


async def test_a_child_failing_on_an_open_breaker_keeps_its_root_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Retries of the step open the child's breaker: the message still names the real error."""

    async def boom(input: Any, context: AgentContext) -> Any:
        CALLS[context.step_id] += 1
        raise RuntimeError("the real fault")

    breaker = {"failure_threshold": 2, "reset_timeout": 600}
    kid = child(
        {"id": "k", "agent": "boom", "input": "${inputs.text}"},
        defaults={"policy": {"retry": {"max_attempts": 1}, "circuit_breaker": breaker}},
    )
    document = parent(kid, policy={"retry": {"max_attempts": 3, "jitter": "none"}})
    async with open_runtime(agents={**AGENTS, "boom": boom}) as runtime:
        result = await (await runtime.start(document)).wait()
    error = result.steps["sub"].error
    assert error is not None
    assert error["message"].endswith(
        "failed: CircuitOpenError: circuit 'boom' is open (after RuntimeError: the real fault)"
    )
    assert CALLS["k"] == 2


async def test_a_child_refused_from_its_first_call_reports_the_refusal_alone() -> None:
    """A rate limit refusing the child's first call: there is no earlier error to add."""
    limited = {"retry": {"max_attempts": 1}, "rate_limit": {"rate": 0.001, "burst": 1}}
    kid = child(
        {"id": "a", "agent": "counted", "input": "${inputs.text}"},
        {"id": "b", "agent": "counted", "input": "${inputs.text}", "depends_on": ["a"]},
        defaults={"policy": limited},
    )
    async with open_runtime(agents=AGENTS) as runtime:
        result = await (await runtime.start(parent(kid))).wait()
    error = result.steps["sub"].error
    assert error is not None
    assert "failed: RateLimitedError: " in error["message"]
    assert "(after" not in error["message"]


async def test_a_failed_child_fails_the_step_and_the_parent(tmp_path: Path) -> None:
    """The child's failure is the step's error, naming the child and what failed in it."""
    async with open_runtime(journal=tmp_path / "j.db", agents=AGENTS) as runtime:
        handle = await runtime.start(parent(CHAIN))
        result = await handle.wait()
        record = await runtime.journal.get_execution(child_execution_id(handle.execution_id, "sub"))
    assert result.status is ExecutionStatus.FAILED
    error = result.steps["sub"].error
    assert error is not None
    assert error["type"] == "ChildExecutionError"
    assert error["message"].startswith(f"child execution {handle.execution_id}.sub failed")
    assert "the service was down" in error["message"]
    assert record.status is ExecutionStatus.FAILED


async def test_resuming_the_parent_resumes_the_child_rerunning_only_its_failed_step(
    tmp_path: Path,
) -> None:
    """After a child step failed, resume reruns that step only: finished work is not re-paid."""
    path = tmp_path / "journal.db"
    async with open_runtime(journal=path, agents=AGENTS) as runtime:
        handle = await runtime.start(parent(CHAIN))
        assert (await handle.wait()).status is ExecutionStatus.FAILED
    assert CALLS == {"before": 1, "a": 1, "b": 1}
    async with open_runtime(journal=path, agents=AGENTS) as runtime:
        result = await (await runtime.resume(handle.execution_id)).wait()
        child_id = child_execution_id(handle.execution_id, "sub")
        child_events = await runtime.journal.events(child_id)
        events = await runtime.journal.events(handle.execution_id)
        record = await runtime.journal.get_execution(child_id)
    assert CALLS == {"before": 1, "a": 1, "b": 2}
    assert result.status is ExecutionStatus.SUCCEEDED
    assert result.output == {"child": {"fixed": "hello"}}
    assert record.status is ExecutionStatus.SUCCEEDED
    resumed = of_type(child_events, EventType.EXECUTION_RESUMED)
    assert [event.data["reused_steps"] for event in resumed] == [["a"]]
    assert [event.data["resumed"] for event in of_type(events, EventType.CHILD_STARTED)] == [
        False,
        True,
    ]
    assert [event.seq for event in child_events] == list(range(1, len(child_events) + 1))


async def test_a_retry_of_the_step_resumes_its_child(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A retried sub-workflow step continues the same child: its finished steps are reused."""
    policy = {"retry": {"max_attempts": 2, "initial_delay": 0.5, "jitter": "none"}}
    async with open_runtime(agents=AGENTS) as runtime:
        handle = await runtime.start(parent(CHAIN, policy=policy))
        result = await handle.wait()
        events = await runtime.journal.events(handle.execution_id)
    assert result.status is ExecutionStatus.SUCCEEDED
    assert result.steps["sub"].attempts == 2
    assert CALLS == {"before": 1, "a": 1, "b": 2}
    started = of_type(events, EventType.CHILD_STARTED)
    assert [(event.attempt, event.data["resumed"]) for event in started] == [(1, False), (2, True)]
    assert len({event.data["child_id"] for event in started}) == 1


async def test_cancelling_the_parent_cancels_the_child_cooperatively_first(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The child's agents see the cancel request; both executions end cancelled, recorded."""
    document = parent(child({"id": "a", "agent": "waits"}))
    async with open_runtime(agents=AGENTS, cancel_grace=2) as runtime:
        handle = await runtime.start(document)
        await trio.sleep(1)
        handle.cancel()
        result = await handle.wait()
        child_id = child_execution_id(handle.execution_id, "sub")
        record = await runtime.journal.get_execution(child_id)
        child_events = await runtime.journal.events(child_id)
        events = await runtime.journal.events(handle.execution_id)
    assert result.status is ExecutionStatus.CANCELLED
    assert result.steps["sub"].status is StepStatus.CANCELLED
    # Stopped with its parent, not failed: no failed attempt is journaled for the step.
    assert of_type(events, EventType.ATTEMPT_FAILED) == []
    assert record.status is ExecutionStatus.CANCELLED
    assert record.error["message"] == "its parent execution was cancelled"
    # The cooperative agent returned at once when asked: the child step succeeded meanwhile.
    assert replay(child_events).steps["a"].output == {"saw_cancel": True}
    assert trio.current_time() == pytest.approx(1.0)


async def test_a_forced_stop_of_the_step_stops_the_child_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """With no grace left, the child's steps are cancelled at once and its end is recorded."""
    sleepy = child({"id": "a", "agent": {"id": "sleep", "config": {"seconds": 10}}})
    async with open_runtime(agents=AGENTS, cancel_grace=0) as runtime:
        handle = await runtime.start(parent(sleepy))
        await trio.sleep(1)
        handle.cancel()
        result = await handle.wait()
        child_id = child_execution_id(handle.execution_id, "sub")
        record = await runtime.journal.get_execution(child_id)
        child_result = await runtime.result(child_id)
    assert result.status is ExecutionStatus.CANCELLED
    assert record.status is ExecutionStatus.CANCELLED
    assert child_result.steps["a"].status is StepStatus.CANCELLED
    assert trio.current_time() == pytest.approx(1.0)


async def test_the_parent_timeout_reaches_the_child(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The parent's timeout stops the running child; the parent fails timed out at that moment."""
    sleepy = child({"id": "a", "agent": {"id": "sleep", "config": {"seconds": 10}}})
    async with open_runtime(agents=AGENTS) as runtime:
        handle = await runtime.start(parent(sleepy, timeout=2))
        result = await handle.wait()
        record = await runtime.journal.get_execution(child_execution_id(handle.execution_id, "sub"))
        finished = trio.current_time()
    assert result.status is ExecutionStatus.FAILED
    assert result.error is not None
    assert result.error["type"] == "ExecutionTimeoutError"
    assert record.status is ExecutionStatus.CANCELLED
    assert finished == pytest.approx(2.0)


async def test_the_attempt_timeout_is_the_childs_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The step's attempt timeout bounds the child: it fails timed out, and so does the step."""
    sleepy = child({"id": "a", "agent": {"id": "sleep", "config": {"seconds": 10}}})
    policy = {"timeout": 1.5}
    async with open_runtime(agents=AGENTS) as runtime:
        handle = await runtime.start(parent(sleepy, policy=policy))
        result = await handle.wait()
        record = await runtime.journal.get_execution(child_execution_id(handle.execution_id, "sub"))
    assert result.steps["sub"].status is StepStatus.FAILED
    assert record.status is ExecutionStatus.FAILED
    assert record.error["type"] == "ExecutionTimeoutError"
    assert trio.current_time() == pytest.approx(1.5)


async def test_a_derived_child_timeout_is_reported_rounded(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The time left of a deadline is a long float: the child's message shows it as 0.3 s."""
    sleepy = child({"id": "a", "agent": {"id": "sleep", "config": {"seconds": 10}}})
    async with open_runtime(agents=AGENTS) as runtime:
        handle = await runtime.start(parent(sleepy, policy={"timeout": 0.1 + 0.2}))
        await handle.wait()
        record = await runtime.journal.get_execution(child_execution_id(handle.execution_id, "sub"))
    assert record.error == {
        "type": "ExecutionTimeoutError",
        "message": "the execution ran past its timeout of 0.3 s",
    }


async def test_a_running_child_is_live_in_the_runtime_and_locked(tmp_path: Path) -> None:
    """While its parent's step runs it, a child is found live and shows running to other readers.

    Cancelling the child itself (not its parent) fails the step that runs it.
    """
    waiting = child({"id": "a", "agent": "waits"})
    async with open_runtime(journal=tmp_path / "journal.db", agents=AGENTS) as runtime:
        async with runtime.bus.subscribe() as events:
            handle = await runtime.start(parent(waiting))
            async for event in events:
                if event.type == EventType.CHILD_STARTED:
                    break
        child_id = child_execution_id(handle.execution_id, "sub")
        live = runtime.find(child_id)
        assert live is not None
        assert not live.done
        running = [(child_id, ExecutionStatus.RUNNING)]
        assert await interrupted_executions(runtime.journal, running) == frozenset()
        live.cancel("stopped by hand")
        result = await handle.wait()
        assert runtime.find(child_id) is None
    error = result.steps["sub"].error
    assert error is not None
    assert error["type"] == "ChildExecutionError"
    assert "cancelled: Cancelled: stopped by hand" in error["message"]


async def test_a_looped_sub_workflow_runs_one_child_per_iteration() -> None:
    """`repeat` on a sub-workflow step: iteration k runs child `PARENT.ID#k`; until reads it."""
    counter = child({"id": "a", "agent": "echo", "input": {"n": "${inputs.n}"}})
    counter["inputs"] = {"type": "object", "properties": {"n": {"type": "integer"}}}
    document: dict[str, Any] = {
        "schema_version": "1.1",
        "name": "looped",
        "steps": [
            {
                "id": "loop",
                "workflow": counter,
                "input": {"n": "${iteration}"},
                "repeat": {"until": "output.n >= `3`", "max_iterations": 5},
            }
        ],
        "output": "${steps.loop.output}",
    }
    async with open_runtime(agents=AGENTS) as runtime:
        handle = await runtime.start(document)
        result = await handle.wait()
        events = await runtime.journal.events(handle.execution_id)
        third = await runtime.journal.get_execution(f"{handle.execution_id}.loop#3")
    assert result.output == {"n": 3}
    started = of_type(events, EventType.CHILD_STARTED)
    assert [event.step_id for event in started] == ["loop#1", "loop#2", "loop#3"]
    assert (third.parent_step, third.inputs) == ("loop#3", {"n": 3})


async def test_a_resumed_child_gets_its_redacted_inputs_again_from_the_step_input(
    tmp_path: Path,
) -> None:
    """The journal keeps a child's `api_key` input as `***`; its resume takes it from the step."""
    keyed = child(
        {"id": "a", "agent": "counted", "input": "${inputs.text}"},
        {"id": "b", "agent": "remembers", "input": "${inputs.api_key}", "depends_on": ["a"]},
    )
    keyed["inputs"]["properties"]["api_key"] = {"type": "string"}
    document = parent(keyed)
    document["steps"][1]["input"] = {"text": "hi", "api_key": "${steps.before.output.input}"}
    path = tmp_path / "journal.db"
    async with open_runtime(journal=path, agents=AGENTS) as runtime:
        handle = await runtime.start(document)
        await handle.wait()
        child_id = child_execution_id(handle.execution_id, "sub")
        assert (await runtime.journal.get_execution(child_id)).inputs["api_key"] == "***"
        result = await (await runtime.resume(handle.execution_id)).wait()
    assert result.status is ExecutionStatus.SUCCEEDED
    assert SEEN == ["hello", "hello"]
    assert dict(CALLS) == {"before": 1, "a": 1, "b": 2}


async def test_a_child_whose_agents_refuse_their_config_is_refused_at_load() -> None:
    """A child's agent config problems are reported at load, located under its step."""
    bad = child({"id": "a", "agent": {"id": "sleep", "config": {"seconds": "soon"}}})
    async with open_runtime(agents=AGENTS) as runtime:
        with pytest.raises(WorkflowValidationError) as caught:
            runtime.load(parent(bad))
    [problem] = caught.value.problems
    assert problem.path == "$.steps[1].workflow.steps[0].agent"


async def test_a_child_is_resumed_only_through_its_parent(tmp_path: Path) -> None:
    """Resuming a child directly is refused, naming the parent to resume instead."""
    path = tmp_path / "journal.db"
    async with open_runtime(journal=path, agents=AGENTS) as runtime:
        handle = await runtime.start(parent(CHAIN))
        await handle.wait()
        child_id = child_execution_id(handle.execution_id, "sub")
        with pytest.raises(ExecutionStateError, match=f"resume {handle.execution_id}, which"):
            await runtime.resume(child_id)


async def test_a_child_that_already_succeeded_gives_its_output_without_running() -> None:
    """A step whose child execution succeeded before (a crash in between) reuses its output."""
    document = parent(child({"id": "a", "agent": "counted", "input": "${inputs.text}"}))
    child_document = document["steps"][1]["workflow"]
    async with open_runtime(agents=AGENTS) as runtime:
        first = await runtime.start(child_document, {"text": "earlier"}, execution_id="p.sub")
        await first.wait()
        result = await (await runtime.start(document, execution_id="p")).wait()
        events = await runtime.journal.events("p")
    assert result.output == {"child": {"input": "earlier", "call": 1}}
    assert CALLS == {"before": 1, "a": 1}
    assert of_type(events, EventType.CHILD_STARTED) == []


async def test_a_run_built_without_a_runtime_fails_a_sub_workflow_step() -> None:
    """Sub-workflows need a runtime's journal: an engine built alone fails the step, saying so."""
    workflow = load_workflow(parent(child({"id": "a", "agent": "counted"})))
    async with open_journal(None) as journal:
        emitter = Emitter(EventFactory("alone"), journal, EventBus())
        run = ExecutionRun(
            execution_id="alone",
            state=RunState.begin(workflow, {}),
            emitter=emitter,
            registry=AgentRegistry(AGENTS),
            resilience=SharedResilience(),
            bus=EventBus(),
        )
        record = ExecutionRecord("alone", "parent", {})
        await journal.create_or_find(record, first_event=run.start_event())
        result = await run.run()
    assert result is not None
    error = result.steps["sub"].error
    assert error is not None
    assert "needs a runtime" in error["message"]


@settings(max_examples=25, deadline=None)
@given(data=st.data(), length=st.integers(min_value=1, max_value=5))
def test_resume_runs_each_child_step_once_more_at_most(data: st.DataObject, length: int) -> None:
    """Whichever step of a child chain fails, a resume reruns that step and what it held up only."""
    failing = data.draw(st.integers(min_value=0, max_value=length - 1), label="failing")
    steps = [
        {
            "id": f"s{index}",
            "agent": "fails_first_time" if index == failing else "counted",
            "input": "${inputs.text}",
            "depends_on": [f"s{index - 1}"] if index else [],
        }
        for index in range(length)
    ]

    async def main() -> tuple[ExecutionStatus, ExecutionStatus]:
        async with open_runtime(agents=AGENTS) as runtime:
            handle = await runtime.start(parent(child(*steps)))
            first = await handle.wait()
            resumed = await (await runtime.resume(handle.execution_id)).wait()
        return first.status, resumed.status

    CALLS.clear()
    statuses = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert statuses == (ExecutionStatus.FAILED, ExecutionStatus.SUCCEEDED)
    expected = {f"s{index}": 2 if index == failing else 1 for index in range(length)}
    assert dict(CALLS) == {"before": 1, **expected}

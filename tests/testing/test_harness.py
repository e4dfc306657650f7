"""The test harness: `run_agent`, `run_workflow_for_test` and `capture_events`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pytest
import trio
import trio.testing

import orchestr8
import orchestr8.testing
from orchestr8 import Agent, AgentContext
from orchestr8._execution._runtime import open_runtime
from orchestr8._supervision._bus import EventBus
from orchestr8.testing import CapturedEvents, capture_events, run_agent, run_workflow_for_test

RETRY_TWICE: dict[str, Any] = {
    "retry": {"max_attempts": 3, "initial_delay": 1.0, "multiplier": 2.0, "jitter": "none"}
}


class Reporter(Agent):
    """Reports progress and usage, and returns what it knows about its call."""

    config_keys = frozenset({"suffix"})

    async def run(self, input: Any, context: AgentContext) -> Any:
        context.progress({"stage": "start"})
        context.record_usage(input_tokens=3)
        context.record_usage(input_tokens=2, output_tokens=1)
        return {
            "text": f"{input}{self.config.get('suffix', '')}",
            "step": context.step_id,
            "attempt": context.attempt,
            "agent": context.agent_id,
        }


async def shout(input: Any) -> str:
    """An agent as a plain async function."""
    return str(input).upper()


def workflow(*steps: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"schema_version": "1.0", "name": "harness", "steps": list(steps), **extra}


def test_testing_exports_are_sorted_and_resolve() -> None:
    """`orchestr8.testing.__all__` is sorted and every name in it can be imported."""
    assert list(orchestr8.testing.__all__) == sorted(orchestr8.testing.__all__)
    for name in orchestr8.testing.__all__:
        assert getattr(orchestr8.testing, name) is not None, name


async def test_run_agent_builds_the_class_and_captures_progress_and_usage() -> None:
    """An Agent subclass is built from the config; progress and usage are recorded in order."""
    run = await run_agent(Reporter, "hi", config={"suffix": "!"})
    assert run.output == {
        "text": "hi!",
        "step": "test-step",
        "attempt": 1,
        "agent": f"{__name__}:Reporter",
    }
    assert run.progress == [{"stage": "start"}]
    assert run.usage_records == [{"input_tokens": 3}, {"input_tokens": 2, "output_tokens": 1}]
    assert run.usage == {"input_tokens": 5, "output_tokens": 1}
    assert run.context.idempotency_key == "test-execution:test-step"
    assert run.context.deadline == math.inf
    assert not run.context.cancel_requested


async def test_run_agent_resolves_ids_like_a_workflow_step() -> None:
    """Ids go through the registry: the given agents first, then the built-ins."""
    assert (await run_agent("echo", {"a": [1]})).output == {"a": [1]}
    run = await run_agent("shout", "quiet", agents={"shout": shout})
    assert run.output == "QUIET"
    assert run.context.agent_id == "shout"
    assert (await run_agent(shout, "x")).output == "X"


async def test_run_agent_accepts_an_agent_instance_but_not_a_config_for_it() -> None:
    """An instance is called as is; a config for it is a mistake."""
    agent = Reporter({})
    assert (await run_agent(agent, "x")).output["text"] == "x"
    with pytest.raises(TypeError, match="config"):
        await run_agent(agent, "x", config={"suffix": "?"})


async def test_run_agent_reports_bad_configs_and_unknown_ids_as_the_engine_does() -> None:
    """Building errors are the registry's errors, naming the agent."""
    with pytest.raises(orchestr8.AgentConfigurationError, match="unknown config key 'sufix'"):
        await run_agent(Reporter, "x", config={"sufix": "!"})
    with pytest.raises(orchestr8.UnknownAgentError, match="no_such_agent"):
        await run_agent("no_such_agent", "x")


async def test_run_agent_applies_context_overrides() -> None:
    """A mapping overrides the default context's fields."""
    run = await run_agent(Reporter, "x", context={"step_id": "summarise", "attempt": 3})
    assert run.output["step"] == "summarise"
    assert run.output["attempt"] == 3
    assert run.context.idempotency_key == "test-execution:summarise"


async def test_run_agent_keeps_a_given_contexts_callbacks() -> None:
    """A full context is used as given, and its own progress callback still hears the agent."""
    heard: list[Mapping[str, Any]] = []
    given = AgentContext(
        execution_id="e1", step_id="s1", progress_callback=lambda _, data: heard.append(data)
    )
    run = await run_agent(Reporter, "x", context=given)
    assert run.context.execution_id == "e1"
    assert run.progress == [{"stage": "start"}]
    assert heard == [{"stage": "start"}]


async def test_run_agent_passes_the_cancel_signal() -> None:
    """A `cancel_event` override lets a test ask the agent to wind down."""

    async def patient(input: Any, context: AgentContext) -> str:
        await context.wait_cancel_requested()
        return "wound down"

    cancel = trio.Event()
    cancel.set()
    run = await run_agent(patient, None, context={"cancel_event": cancel})
    assert run.output == "wound down"


async def test_run_agent_checks_the_output_is_json() -> None:
    """The output is what the journal would record; a non-JSON output fails as in a workflow."""

    async def tuple_maker(input: Any) -> Any:
        return {"pair": (1, 2)}

    async def set_maker(input: Any) -> Any:
        return {1, 2}

    assert (await run_agent(tuple_maker)).output == {"pair": [1, 2]}
    with pytest.raises(orchestr8.OutputNotSerialisableError):
        await run_agent(set_maker)


async def test_run_agent_cancels_the_call_at_the_contexts_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A `deadline` override bounds the call on the trio clock, as an attempt timeout does."""

    async def slow(input: Any, context: AgentContext) -> None:
        await trio.sleep(10)

    with pytest.raises(trio.TooSlowError):
        await run_agent(slow, context={"deadline": trio.current_time() + 2.5})
    assert trio.current_time() == pytest.approx(2.5)


async def test_run_agent_lets_the_agents_errors_through() -> None:
    """Whatever the agent raises reaches the test unchanged."""
    with pytest.raises(orchestr8.RetryableError, match="attempt 1"):
        await run_agent("fail", "x", config={"message": "attempt 1"})


async def test_run_workflow_for_test_returns_the_result_and_the_journal_events() -> None:
    """The result and every event of the execution come back; the events are gap-free."""
    result, events = await run_workflow_for_test(
        workflow(
            {"id": "a", "agent": "shout", "input": "${inputs.word}"},
            {"id": "b", "agent": "echo", "input": "${steps.a.output}", "depends_on": ["a"]},
            inputs={"type": "object", "properties": {"word": {"type": "string"}}},
            output="${steps.b.output}",
        ),
        {"word": "hey"},
        agents={"shout": shout},
    )
    assert result.succeeded
    assert result.output == "HEY"
    assert [event.seq for event in events] == list(range(1, len(events) + 1))
    assert events[0].type == "execution.started"
    assert events[-1].type == "execution.succeeded"


async def test_workflow_run_selects_events_by_type_and_step() -> None:
    """`types()` and `of_type()` read the run's events."""
    run = await run_workflow_for_test(
        workflow({"id": "a", "agent": "echo", "input": 1}, {"id": "b", "agent": "echo", "input": 2})
    )
    assert run.types()[0] == "execution.started"
    # Independent steps run at once, so they may finish in either order.
    assert sorted(str(event.step_id) for event in run.of_type("step.succeeded")) == ["a", "b"]
    assert [event.type for event in run.of_type(step_id="b")] == [
        "step.started",
        "attempt.started",
        "step.succeeded",
    ]


async def test_run_workflow_for_test_runs_retries_on_the_mock_clock(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Under MockClock the backoff takes no real time, and `elapsed` is exact."""
    run = await run_workflow_for_test(
        workflow(
            {
                "id": "flaky",
                "agent": {"id": "fail", "config": {"times": 2}},
                "input": "ok",
                "policy": RETRY_TWICE,
            },
        )
    )
    assert run.result.output == {"flaky": "ok"}
    assert run.result.steps["flaky"].attempts == 3
    assert [event.data["delay"] for event in run.of_type("retry.scheduled")] == [1.0, 2.0]
    assert run.of_type("step.succeeded")[0].elapsed == pytest.approx(3.0)


async def test_run_workflow_for_test_seeds_the_jitter() -> None:
    """The default seed makes jittered backoff repeat exactly from run to run."""
    document = workflow(
        {
            "id": "flaky",
            "agent": {"id": "fail", "config": {"times": 2}},
            "input": "ok",
            "policy": {"retry": {"max_attempts": 3, "initial_delay": 0.001, "jitter": "full"}},
        }
    )
    first = await run_workflow_for_test(document)
    second = await run_workflow_for_test(document)
    delays = [event.data["delay"] for event in first.of_type("retry.scheduled")]
    assert delays == [event.data["delay"] for event in second.of_type("retry.scheduled")]


async def test_run_workflow_for_test_reports_failures_and_timeouts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A failing step and an execution timeout come back as results, not exceptions."""
    failed = await run_workflow_for_test(
        workflow(
            {"id": "broken", "agent": {"id": "fail", "config": {"retryable": False}}, "input": 1},
        )
    )
    assert failed.result.status is orchestr8.ExecutionStatus.FAILED
    assert failed.of_type("step.failed")[0].step_id == "broken"
    slow = await run_workflow_for_test(
        workflow({"id": "nap", "agent": {"id": "sleep", "config": {"seconds": 60}}, "input": 1}),
        execution_timeout=5.0,
    )
    assert slow.result.error is not None
    assert slow.result.error["type"] == "ExecutionTimeoutError"
    assert slow.events[-1].elapsed == pytest.approx(5.0)


async def test_run_workflow_for_test_raises_validation_errors() -> None:
    """An invalid workflow or input is raised, as `run_workflow` does."""
    with pytest.raises(orchestr8.WorkflowValidationError, match="unknown agent 'nope'"):
        await run_workflow_for_test(workflow({"id": "a", "agent": "nope", "input": 1}))


async def test_capture_events_records_what_the_runtime_publishes() -> None:
    """The captured events are the journal's, in order, and can be filtered by execution."""
    async with open_runtime() as runtime, capture_events(runtime) as captured:
        first = await runtime.start(workflow({"id": "a", "agent": "echo", "input": 1}))
        second = await runtime.start(workflow({"id": "b", "agent": "echo", "input": 2}))
        await first.wait()
        await second.wait()
        journal = await runtime.journal.events(first.execution_id)
    assert captured.of_type(execution_id=first.execution_id) == journal
    assert captured.types(second.execution_id)[-1] == "execution.succeeded"
    assert {event.execution_id for event in captured.of_type("execution.started")} == {
        first.execution_id,
        second.execution_id,
    }


async def test_capture_events_waits_for_an_event(autojump_clock: trio.testing.MockClock) -> None:
    """`wait_for` returns once the event arrives, so a test can act in the middle of a run."""
    async with open_runtime(cancel_grace=1.0) as runtime, capture_events(runtime) as captured:
        handle = await runtime.start(
            workflow({"id": "nap", "agent": {"id": "sleep", "config": {"seconds": 60}}, "input": 1})
        )
        started = await captured.wait_for("attempt.started", step_id="nap")
        assert started.attempt == 1
        handle.cancel("enough")
        result = await handle.wait()
        assert (await captured.wait_for("execution.cancelled")).elapsed == pytest.approx(1.0)
    assert result.status is orchestr8.ExecutionStatus.CANCELLED


async def test_capture_events_keeps_other_bus_traffic_apart() -> None:
    """Objects that are not execution events are in `published` only; errors pass unwrapped."""
    bus = EventBus()
    seen: list[CapturedEvents] = []

    async def publish_then_fail() -> None:
        async with capture_events(bus) as captured:
            seen.append(captured)
            await bus.publish("actor noise")
            raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        await publish_then_fail()
    assert seen[0].published == ["actor noise"]
    assert seen[0].events == []

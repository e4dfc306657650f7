"""`_planning`: a planner writes a step's workflow, checked and run as a child; replanning."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import hypothesis
import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestr8._agents._contract import Agent, AgentContext
from orchestr8._agents._registry import AgentRegistry
from orchestr8._errors import (
    AgentConfigurationError,
    BulkheadFullError,
    NonRetryableError,
    WorkflowValidationError,
)
from orchestr8._execution._children import child_execution_id
from orchestr8._execution._emitter import Emitter
from orchestr8._execution._engine import ExecutionRun
from orchestr8._execution._planning import _NumberedOn, replan_child_id
from orchestr8._execution._runtime import open_runtime
from orchestr8._execution._state import RunState
from orchestr8._execution._step_resilience import SharedResilience, StepListener
from orchestr8._journal._events import Event, EventFactory, EventType, ExecutionStatus, StepStatus
from orchestr8._journal._journal import ExecutionRecord, open_journal
from orchestr8._journal._replay import replay
from orchestr8._llm._model_uses import ModelUse
from orchestr8._supervision._bus import EventBus
from orchestr8._workflow._codec import load_workflow

CALLS: Counter[str] = Counter()
"""Calls of the agents below, by step id (reset for every test)."""
PLANS: list[Any] = []
"""What the scripted planner returns, one entry a call."""
REQUESTS: list[dict[str, Any]] = []
"""What the scripted planner was asked, one entry a call."""


async def planner(input: Any, context: AgentContext) -> Any:
    """A scripted planner: record the request, return the next scripted plan."""
    REQUESTS.append(input)
    return PLANS.pop(0)


async def shout(input: Any, context: AgentContext) -> Any:
    """An allowed agent: upper-case the text."""
    CALLS[context.step_id] += 1
    return str(input).upper()


async def broken(input: Any, context: AgentContext) -> Any:
    """An agent that always fails (the step to replan)."""
    CALLS[context.step_id] += 1
    raise NonRetryableError(f"cannot handle {input}")


async def fails_first_time(input: Any, context: AgentContext) -> Any:
    """Fail the first call of the test, succeed afterwards (a fault fixed before a resume)."""
    CALLS[context.step_id] += 1
    if CALLS[context.step_id] == 1:
        raise NonRetryableError("the service was down")
    return f"fixed {input}"


class Modelled(Agent):
    """An agent calling the model its config names (checked against the providers)."""

    config_keys = frozenset({"model"})

    def model_uses(self) -> list[ModelUse]:
        """The configured model."""
        return [ModelUse(self.config["model"])]

    async def run(self, input: Any, context: AgentContext) -> Any:
        """Not called: its plan is refused."""
        raise NotImplementedError


AGENTS: dict[str, Any] = {
    "modelled": Modelled,
    "planner": planner,
    "shout": shout,
    "broken": broken,
    "fails_first_time": fails_first_time,
}
NO_RETRY: dict[str, Any] = {"retry": {"max_attempts": 1}, "circuit_breaker": None}
RETRY = {"retry": {"max_attempts": 3, "initial_delay": 0.5, "jitter": "none"}}


@pytest.fixture(autouse=True)
def reset_script() -> Iterator[None]:
    """Each test scripts its own planner."""
    CALLS.clear()
    PLANS.clear()
    REQUESTS.clear()
    yield
    CALLS.clear()
    PLANS.clear()
    REQUESTS.clear()


def good_plan(agent: str = "shout") -> dict[str, Any]:
    """A valid plan: one step of `agent` on the text."""
    return {
        "steps": [{"id": "loud", "agent": agent, "input": "${inputs.text}"}],
        "output": "${steps.loud.output}",
    }


def planning(
    *, allowed: list[str] | None = None, fail_fast: bool = True, **plan: Any
) -> dict[str, Any]:
    """A workflow whose step `planned` has its plan written by the scripted planner."""
    return {
        "fail_fast": fail_fast,
        "schema_version": "1.1",
        "name": "planning",
        "defaults": {"policy": NO_RETRY},
        "steps": [
            {"id": "before", "agent": "shout", "input": "hi"},
            {
                "id": "planned",
                "plan": {
                    "agent": "planner",
                    "input": "say ${steps.before.output} loudly",
                    "allowed_agents": allowed or ["shout", "fails_first_time"],
                    **plan,
                },
                "input": {"text": "${steps.before.output}"},
                "depends_on": ["before"],
                "policy": {**NO_RETRY, **RETRY},
            },
        ],
        "output": "${steps.planned.output}",
    }


def of_type(events: list[Event], type: str) -> list[Event]:
    return [event for event in events if event.type == type]


@pytest.mark.parametrize("kind", ["sqlite", "memory"])
async def test_a_valid_plan_runs_as_a_child_and_its_output_is_the_steps(
    kind: str, tmp_path: Path
) -> None:
    """The planner gets the task, agents and inputs; its plan runs as a child of the step."""
    PLANS.append(good_plan())
    journal = tmp_path / "journal.db" if kind == "sqlite" else None
    async with open_runtime(journal=journal, agents=AGENTS) as runtime:
        handle = await runtime.start(planning())
        result = await handle.wait()
        events = await runtime.journal.events(handle.execution_id)
        record = await runtime.journal.get_execution(
            child_execution_id(handle.execution_id, "planned")
        )
    assert result.status is ExecutionStatus.SUCCEEDED
    assert result.output == "HI"
    assert REQUESTS == [
        {
            "task": "say HI loudly",
            "agents": ["shout", "fails_first_time"],
            "inputs": {"text": "HI"},
            "attempt": 1,
            "feedback": "",
        }
    ]
    [proposed] = of_type(events, EventType.PLAN_PROPOSED)
    assert proposed.data == {"attempt": 1, "plan": good_plan()}
    assert of_type(events, EventType.STEP_STARTED)[1].data == {"agent": "plan:planner"}
    assert (record.parent_id, record.parent_step) == (handle.execution_id, "planned")
    assert record.workflow["name"] == "planning/planned"
    assert record.inputs == {"text": "HI"}


INVALID_PLANS = {
    "not an object": (["steps"], "$: a plan is an object with steps and an output, not an array"),
    "unknown agent": (
        {"steps": [{"id": "a", "agent": "nobody"}]},
        "$.steps[0].agent: unknown agent 'nobody'",
    ),
    "disallowed agent": (
        {"steps": [{"id": "a", "agent": "broken"}]},
        "$.steps[0].agent: agent 'broken' is not allowed in this plan"
        " (allowed_agents: 'shout', 'fails_first_time')",
    ),
    "cycle": (
        {
            "steps": [
                {"id": "a", "agent": "shout", "depends_on": ["b"]},
                {"id": "b", "agent": "shout", "depends_on": ["a"]},
            ]
        },
        "dependency cycle",
    ),
    "bad reference": (
        {"steps": [{"id": "a", "agent": "shout", "input": "${steps.zzz.output}"}]},
        "$.steps[0].input: ${steps.zzz.output}",
    ),
    "too deep": (
        {"steps": [{"id": "a", "plan": {"agent": "shout", "allowed_agents": ["shout"]}}]},
        "$.steps[0].plan: plans nest deeper than 1 level",
    ),
    "sub-workflow": (
        {"steps": [{"id": "a", "workflow": "other.json"}]},
        "$.steps[0].workflow: a plan runs agents, not sub-workflows",
    ),
    "inputs declared": (
        {"inputs": {}, "steps": [{"id": "a", "agent": "shout"}]},
        "$.inputs: a plan declares no inputs",
    ),
    "agent config": (
        {"steps": [{"id": "a", "agent": {"id": "shout", "config": {"x": 1}}}]},
        "$.steps[0].agent: ",
    ),
}


@pytest.mark.parametrize("case", sorted(INVALID_PLANS))
async def test_an_invalid_plan_is_refused_fed_back_and_the_retry_succeeds(case: str) -> None:
    """Each kind of bad plan fails its attempt; the next attempt's planner reads the problems."""
    bad, problem = INVALID_PLANS[case]
    PLANS.extend([bad, good_plan()])
    async with open_runtime(agents=AGENTS) as runtime:
        handle = await runtime.start(planning(max_depth=1))
        result = await handle.wait()
        events = await runtime.journal.events(handle.execution_id)
    assert result.status is ExecutionStatus.SUCCEEDED, result.error
    assert result.output == "HI"
    assert result.steps["planned"].attempts == 2
    assert REQUESTS[0]["feedback"] == ""
    assert problem in REQUESTS[1]["feedback"]
    assert REQUESTS[1]["attempt"] == 2
    [rejected] = of_type(events, EventType.PLAN_REJECTED)
    assert rejected.attempt == 1
    assert any(problem in line for line in rejected.data["problems"])
    [failed] = of_type(events, EventType.ATTEMPT_FAILED)
    assert failed.data["error"]["type"] == "PlanRejectedError"


async def test_a_plan_calling_a_model_of_an_unknown_provider_is_refused() -> None:
    """The models a plan's agents call are checked as admission checks them, and fed back."""
    bad = {"steps": [{"id": "a", "agent": {"id": "modelled", "config": {"model": "nope:m"}}}]}
    PLANS.extend([bad, good_plan()])
    async with open_runtime(agents=AGENTS) as runtime:
        handle = await runtime.start(planning(max_depth=1, allowed=["shout", "modelled"]))
        result = await handle.wait()
    assert result.status is ExecutionStatus.SUCCEEDED, result.error
    assert (
        "$.steps[0].agent.config.model: unknown provider 'nope' (known: anthropic, local,"
        in (REQUESTS[1]["feedback"])
    )


async def test_a_planner_that_never_writes_a_valid_plan_fails_the_step() -> None:
    """Refused on every attempt: the step fails with the last refusal, after its attempts."""
    PLANS.extend([7, 8, 9])
    async with open_runtime(agents=AGENTS) as runtime:
        result = await (await runtime.start(planning())).wait()
    assert result.status is ExecutionStatus.FAILED
    error = result.steps["planned"].error
    assert error is not None
    assert error["type"] == "PlanRejectedError"
    assert result.steps["planned"].attempts == 3
    assert len(REQUESTS) == 3


async def test_a_plan_step_input_that_is_no_object_fails_before_any_planning() -> None:
    """The inputs of a plan must be an object: the planner is never asked (and never paid)."""
    document = planning()
    document["steps"][1]["input"] = "${steps.before.output}"
    async with open_runtime(agents=AGENTS) as runtime:
        result = await (await runtime.start(document)).wait()
    error = result.steps["planned"].error
    assert error is not None
    assert error["type"] == "InputValidationError"
    assert "an object, not a string" in error["message"]
    assert REQUESTS == []


async def test_resume_after_a_plan_ran_reuses_the_journaled_plan(tmp_path: Path) -> None:
    """Resume continues the plan's child; the planner is not asked again (no tokens paid twice)."""
    PLANS.append(good_plan("fails_first_time"))
    path = tmp_path / "journal.db"
    document = planning()
    document["steps"][1]["policy"] = NO_RETRY
    async with open_runtime(journal=path, agents=AGENTS) as runtime:
        handle = await runtime.start(document)
        assert (await handle.wait()).status is ExecutionStatus.FAILED
    assert len(REQUESTS) == 1
    async with open_runtime(journal=path, agents=AGENTS) as runtime:
        result = await (await runtime.resume(handle.execution_id)).wait()
        events = await runtime.journal.events(handle.execution_id)
    assert result.status is ExecutionStatus.SUCCEEDED
    assert result.output == "fixed HI"
    assert len(REQUESTS) == 1
    assert len(of_type(events, EventType.PLAN_PROPOSED)) == 1
    assert of_type(events, EventType.CHILD_STARTED)[-1].data["resumed"] is True


async def test_a_retry_after_the_plan_failed_resumes_the_same_plan() -> None:
    """A plan that passed is the step's plan: a retry resumes its child, not a new plan."""
    PLANS.append(good_plan("fails_first_time"))
    async with open_runtime(agents=AGENTS) as runtime:
        result = await (await runtime.start(planning())).wait()
    assert result.status is ExecutionStatus.SUCCEEDED
    assert result.output == "fixed HI"
    assert result.steps["planned"].attempts == 2
    assert len(REQUESTS) == 1


async def test_a_plan_may_hold_a_plan_within_its_depth() -> None:
    """A nested plan runs as a grandchild, its depth lowered to what the outer plan leaves."""
    inner = {
        "steps": [
            {
                "id": "deeper",
                "plan": {"agent": "planner", "allowed_agents": ["shout"], "max_depth": 9},
                "input": {"text": "${inputs.text}"},
            }
        ],
        "output": "${steps.deeper.output}",
    }
    PLANS.extend([inner, good_plan()])
    async with open_runtime(agents=AGENTS) as runtime:
        handle = await runtime.start(planning(allowed=["planner", "shout"], max_depth=2))
        result = await handle.wait()
        record = await runtime.journal.get_execution(
            child_execution_id(handle.execution_id, "planned")
        )
    assert result.status is ExecutionStatus.SUCCEEDED, result.error
    assert result.output == "HI"
    assert record.workflow["steps"][0]["plan"]["max_depth"] == 1
    assert REQUESTS[1]["agents"] == ["shout"]


def replanning(max_replans: int = 1) -> dict[str, Any]:
    """A workflow whose step `work` always fails and is replanned; `after` reads its output."""
    return {
        "schema_version": "1.1",
        "name": "replanning",
        "defaults": {"policy": NO_RETRY},
        "steps": [
            {
                "id": "work",
                "agent": "broken",
                "input": "payload",
                "on_error": {
                    "replan": {
                        "agent": "planner",
                        "input": "work around it",
                        "allowed_agents": ["shout", "broken"],
                    },
                    "max_replans": max_replans,
                },
            },
            {
                "id": "after",
                "agent": "shout",
                "input": "${steps.work.output}",
                "depends_on": ["work"],
            },
        ],
        "output": "${steps.after.output}",
    }


async def test_a_failed_step_is_replanned_and_the_replacement_output_is_its_output() -> None:
    """The planner sees the failure; the replacement runs as a child; dependents read its output."""
    PLANS.append(
        {
            "steps": [{"id": "fix", "agent": "shout", "input": "${inputs.input}"}],
            "output": "${steps.fix.output}",
        }
    )
    async with open_runtime(agents=AGENTS) as runtime:
        handle = await runtime.start(replanning())
        result = await handle.wait()
        events = await runtime.journal.events(handle.execution_id)
        record = await runtime.journal.get_execution(
            replan_child_id(handle.execution_id, "work", 1)
        )
    assert result.status is ExecutionStatus.SUCCEEDED, result.error
    assert result.steps["work"].output == "PAYLOAD"
    assert result.output == "PAYLOAD"
    [request] = REQUESTS
    assert request["task"] == "work around it"
    assert request["inputs"] == {"input": "payload"}
    assert request["failure"] == {
        "step": "work",
        "input": "payload",
        "error": {"type": "NonRetryableError", "message": "cannot handle payload"},
        "replan": 1,
    }
    [replanned] = of_type(events, EventType.STEP_REPLANNED)
    assert replanned.data == {
        "replan": 1,
        "error": {"type": "NonRetryableError", "message": "cannot handle payload"},
        "child_id": f"{handle.execution_id}.work~replan1",
    }
    assert of_type(events, EventType.PLAN_PROPOSED)[0].data["replan"] == 1
    started = of_type(events, EventType.ATTEMPT_STARTED)
    assert [event.attempt for event in started if event.step_id == "work"] == [1, 2]
    assert result.steps["work"].attempts == 2
    assert request["attempt"] == 2
    assert record.parent_step == "work"
    assert record.workflow["name"] == "replanning/work~replan1"


async def test_replanning_stops_after_max_replans_and_the_step_fails() -> None:
    """Each failed replacement is handed on, at most max_replans times; then the step fails."""
    failing = {"steps": [{"id": "again", "agent": "broken", "input": "x"}]}
    PLANS.extend([failing, failing])
    async with open_runtime(agents=AGENTS) as runtime:
        handle = await runtime.start(replanning(max_replans=2))
        result = await handle.wait()
        events = await runtime.journal.events(handle.execution_id)
    assert result.status is ExecutionStatus.FAILED
    assert result.steps["work"].status is StepStatus.FAILED
    assert result.steps["after"].status is StepStatus.SKIPPED
    error = result.steps["work"].error
    assert error is not None
    assert error["type"] == "ChildExecutionError"
    assert "work~replan2" in error["message"]
    assert [event.data["replan"] for event in of_type(events, EventType.STEP_REPLANNED)] == [1, 2]
    assert REQUESTS[1]["failure"]["error"]["type"] == "ChildExecutionError"
    assert len(REQUESTS) == 2


async def test_a_planner_with_a_bad_config_is_refused_at_admission() -> None:
    """Planners are built when the workflow is admitted: a bad config is a validation problem."""
    document = planning()
    document["steps"][1]["plan"]["agent"] = {"id": "planner", "config": {"x": 1}}
    async with open_runtime(agents=AGENTS) as runtime:
        with pytest.raises(WorkflowValidationError) as raised:
            await runtime.start(document)
    assert raised.value.problems[0].path == "$.steps[1].plan.agent"


async def test_a_run_built_without_a_runtime_fails_plan_and_replanning_steps() -> None:
    """Plans need a runtime's children: alone, a plan step fails saying so; no replan is tried."""
    document = planning(fail_fast=False)
    document["steps"].append(replanning()["steps"][0])
    workflow = load_workflow(document)
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
        await journal.create_or_find(
            ExecutionRecord("alone", "planning", {}), first_event=run.start_event()
        )
        result = await run.run()
    assert result is not None
    planned, work = result.steps["planned"].error, result.steps["work"].error
    assert planned is not None
    assert work is not None
    assert "step planned runs a plan, which needs a runtime (open_runtime)" in planned["message"]
    assert work["message"] == "cannot handle payload"
    assert REQUESTS == []


async def test_a_planner_output_that_is_not_json_fails_the_attempt() -> None:
    """A planner returning something JSON cannot hold fails like any agent's output would."""
    PLANS.extend([{"steps": {1, 2}}, good_plan()])
    async with open_runtime(agents=AGENTS) as runtime:
        result = await (await runtime.start(planning())).wait()
    assert result.status is ExecutionStatus.SUCCEEDED
    assert result.steps["planned"].attempts == 2


async def test_cancelling_while_the_planner_works_cancels_the_step(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A cancel reaches the planner like any agent: the step and execution end cancelled."""

    async def slow_planner(input: Any, context: AgentContext) -> Any:
        REQUESTS.append(input)
        await trio.sleep(100)
        return good_plan()

    async with open_runtime(agents={**AGENTS, "planner": slow_planner}) as runtime:
        handle = await runtime.start(planning())
        await trio.sleep(1)
        handle.cancel("changed my mind")
        result = await handle.wait()
    assert result.status is ExecutionStatus.CANCELLED
    assert result.steps["planned"].status is StepStatus.CANCELLED
    assert len(REQUESTS) == 1


OUTCOMES = st.sampled_from(["refused", "fails", "succeeds"])
"""What one planner call leads to: a refused plan, a plan whose child fails, or one that works."""


@settings(max_examples=30, deadline=None)
@given(
    outcomes=st.lists(OUTCOMES, min_size=1, max_size=8),
    max_attempts=st.integers(min_value=1, max_value=3),
    max_replans=st.integers(min_value=1, max_value=3),
)
def test_replanning_asks_at_most_its_budget_and_ends_as_the_first_working_plan(
    outcomes: list[str], max_attempts: int, max_replans: int
) -> None:
    """For any planner behaviour: each replacement gets at most max_attempts planner calls, at
    most max_replans replacements run, and the step succeeds exactly when a plan works in time."""
    plans = {
        "refused": {"steps": [{"id": "x", "agent": "nobody"}]},
        "fails": {"steps": [{"id": "x", "agent": "broken", "input": "x"}]},
        "succeeds": {
            "steps": [{"id": "x", "agent": "shout", "input": "${inputs.input}"}],
            "output": "${steps.x.output}",
        },
    }
    # The model: a refused plan is retried (a new planner call) while attempts are left; a plan
    # that passes is the replacement's plan (its retries resume it); past the script, plans are
    # refused.
    told = iter([*outcomes, *["refused"] * max_replans * max_attempts])
    expected_calls, succeeded = 0, False
    for _ in range(max_replans):
        for _ in range(max_attempts):
            outcome = next(told)
            expected_calls += 1
            if outcome != "refused":
                break
        if outcome == "succeeds":
            succeeded = True
            break
    script = [plans[outcome] for outcome in [*outcomes, *["refused"] * 20]]
    document = replanning(max_replans=max_replans)
    retry = {"retry": {"max_attempts": max_attempts, "initial_delay": 0.1, "jitter": "none"}}
    document["steps"][0]["policy"] = {**NO_RETRY, **retry}

    async def run() -> Any:
        PLANS.clear()
        REQUESTS.clear()
        PLANS.extend(script)
        async with open_runtime(agents=AGENTS) as runtime:
            return await (await runtime.start(document)).wait()

    result = trio.run(run, clock=trio.testing.MockClock(autojump_threshold=0))
    assert len(REQUESTS) == expected_calls
    assert (result.status is ExecutionStatus.SUCCEEDED) == succeeded
    if succeeded:
        assert result.output == "PAYLOAD"


async def test_a_cancel_during_a_replacement_cancels_the_step_and_replans_no_more() -> None:
    """Cancelling while a replacement runs cancels its child and the step; no next replan."""
    waiting = {"steps": [{"id": "wait", "agent": "waits_then_fails", "input": "x"}]}
    PLANS.extend([waiting, waiting])
    started = trio.Event()

    async def waits_then_fails(input: Any, context: AgentContext) -> Any:
        started.set()
        await context.wait_cancel_requested()
        raise NonRetryableError("gave up")

    document = replanning(max_replans=2)
    document["steps"][0]["on_error"]["replan"]["allowed_agents"].append("waits_then_fails")
    agents = {**AGENTS, "waits_then_fails": waits_then_fails}
    async with open_runtime(agents=agents) as runtime:
        handle = await runtime.start(document)
        await started.wait()
        handle.cancel("enough")
        result = await handle.wait()
        events = await runtime.journal.events(handle.execution_id)
    assert result.status is ExecutionStatus.CANCELLED
    assert result.steps["work"].status is StepStatus.CANCELLED
    assert len(of_type(events, EventType.STEP_REPLANNED)) == 1
    assert len(REQUESTS) == 1


async def test_a_replacement_failing_as_the_execution_stops_is_not_replanned_again() -> None:
    """Once the execution is stopping, a failed replacement ends the step: no next replan."""
    PLANS.extend([{"steps": [{"id": "stop", "agent": "stops_it", "input": "x"}]}] * 2)
    handles: list[Any] = []

    async def stops_it(input: Any, context: AgentContext) -> Any:
        handles[0].cancel("stopping")
        raise NonRetryableError("failed while stopping")

    document = replanning(max_replans=2)
    document["steps"][0]["on_error"]["replan"]["allowed_agents"].append("stops_it")
    async with open_runtime(agents={**AGENTS, "stops_it": stops_it}) as runtime:
        handles.append(await runtime.start(document))
        result = await handles[0].wait()
        events = await runtime.journal.events(handles[0].execution_id)
    assert result.status is ExecutionStatus.CANCELLED
    assert len(of_type(events, EventType.STEP_REPLANNED)) == 1
    assert len(REQUESTS) == 1


async def test_a_plan_step_in_a_loop_plans_each_iteration_as_its_own_child() -> None:
    """Each iteration asks for its plan and runs it as child PARENT.ID#k, with ${iteration}."""
    PLANS.extend([good_plan(), good_plan()])
    document = planning()
    planned = document["steps"][1]
    planned["plan"]["input"] = "round ${iteration}"
    planned["repeat"] = {"until": "iteration >= `2`", "max_iterations": 3}
    async with open_runtime(agents=AGENTS) as runtime:
        handle = await runtime.start(document)
        result = await handle.wait()
        second = await runtime.journal.get_execution(
            child_execution_id(handle.execution_id, "planned#2")
        )
    assert result.status is ExecutionStatus.SUCCEEDED, result.error
    assert [request["task"] for request in REQUESTS] == ["round 1", "round 2"]
    assert second.parent_step == "planned#2"


def test_a_replacements_attempts_are_told_numbered_after_the_steps_own() -> None:
    """Every listener call of a replacement's pipeline carries the step's attempt number."""
    calls: list[tuple[str, int]] = []

    class Recorder:
        def attempt_started(self, attempt: int) -> None:
            calls.append(("started", attempt))

        def attempt_failed(self, attempt: int, error: Exception) -> None:
            calls.append(("failed", attempt))

        def retry_scheduled(self, attempt: int, delay: float) -> None:
            calls.append(("retry", attempt))

        def rejected(self, attempt: int, error: Any) -> None:
            calls.append(("rejected", attempt))

    numbered = _NumberedOn(cast(StepListener, Recorder()), 3)
    numbered.attempt_started(1)
    numbered.attempt_failed(1, ValueError())
    numbered.retry_scheduled(1, 0.5)
    numbered.rejected(2, BulkheadFullError("full"))
    assert calls == [("started", 4), ("failed", 4), ("retry", 4), ("rejected", 5)]


@settings(max_examples=40, deadline=None)
@given(refused=st.integers(0, 2), cut=st.floats(0, 1))
def test_resume_after_a_cut_at_any_event_asks_for_a_plan_only_when_none_ran(
    refused: int, cut: float
) -> None:
    """Cut the parent's journal anywhere: a resume reuses the plan once its child was recorded,
    asks again only before that, re-runs no finished child step, and succeeds."""

    async def main() -> None:
        CALLS.clear()
        REQUESTS.clear()
        PLANS[:] = [7] * refused + [good_plan("fails_first_time")]
        document = planning()
        document["steps"][1]["policy"]["retry"]["max_attempts"] = 4
        async with open_journal(None) as journal:
            async with open_runtime(journal=journal, agents=AGENTS) as runtime:
                handle = await runtime.start(document)
                assert (await handle.wait()).status is ExecutionStatus.SUCCEEDED
            events = await journal.events(handle.execution_id)
            record = await journal.get_execution(handle.execution_id)
            child_id = child_execution_id(handle.execution_id, "planned")
            child_record = await journal.get_execution(child_id)
            child_events = await journal.events(child_id)
        assert len(REQUESTS) == refused + 1
        kept = events[: int(cut * (len(events) - 1)) + 1]
        if replay(kept).status is ExecutionStatus.SUCCEEDED:
            return
        child_ran = any(event.type == EventType.CHILD_STARTED for event in kept)
        hypothesis.event("cut after the plan's child started" if child_ran else "cut before it")
        finished_in_child = {
            event.step_id for event in child_events if event.type == EventType.STEP_SUCCEEDED
        }
        CALLS.clear()
        REQUESTS.clear()
        PLANS[:] = [good_plan("fails_first_time")]
        CALLS["loud"] = 1  # fixed: the resumed child step succeeds at once
        fixed = dict(CALLS)
        async with open_journal(None) as journal:
            await journal.create_execution(record)
            for event in kept:
                await journal.append(event)
            if child_ran:
                await journal.create_execution(child_record)
                for event in child_events:
                    await journal.append(event)
            await journal.flush()
            async with open_runtime(journal=journal, agents=AGENTS) as runtime:
                again = await (await runtime.resume(record.execution_id)).wait()
        assert again.status is ExecutionStatus.SUCCEEDED, again.error
        assert again.output == "fixed HI"
        assert len(REQUESTS) == (0 if child_ran else 1)
        if child_ran:
            rerun = {step_id for step_id, count in CALLS.items() if count > fixed.get(step_id, 0)}
            assert not rerun & finished_in_child

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


async def test_a_replanning_planner_that_raises_system_exit_fails_the_step_only() -> None:
    """A planner raising SystemExit fails its step (AgentExitError), as any agent's would."""

    async def exits(input: Any, context: AgentContext) -> Any:
        REQUESTS.append(input)
        raise SystemExit(3)

    async with open_runtime(agents={**AGENTS, "planner": exits}) as runtime:
        result = await (await runtime.start(replanning())).wait()
    error = result.steps["work"].error
    assert error is not None
    assert error["type"] == "AgentExitError"
    assert len(REQUESTS) == 1


class NoKeyError(AgentConfigurationError, NonRetryableError):
    """Like the llm agent's MissingAPIKeyError: a ValueError that no retry can fix."""


@pytest.mark.parametrize(
    ("raised", "retried"), [(NoKeyError("no API key"), False), (ValueError("bad"), True)]
)
async def test_a_planners_own_error_keeps_its_type_and_retry_class(
    raised: Exception, retried: bool, autojump_clock: trio.testing.MockClock
) -> None:
    """Only a non-JSON plan is OutputNotSerialisableError: a planner's error is itself."""

    async def failing(input: Any, context: AgentContext) -> Any:
        REQUESTS.append(input)
        raise raised

    async with open_runtime(agents={**AGENTS, "planner": failing}) as runtime:
        result = await (await runtime.start(planning())).wait()
    error = result.steps["planned"].error
    assert error is not None
    assert (error["type"], error["message"]) == (type(raised).__name__, str(raised))
    assert result.steps["planned"].attempts == len(REQUESTS)
    assert (len(REQUESTS) > 1) is retried


async def test_a_failing_replanning_planner_fails_the_step_saying_so() -> None:
    """A planner that fails is no failed replacement: the step fails at once, naming the planner."""

    async def boom(input: Any, context: AgentContext) -> Any:
        REQUESTS.append(input)
        raise RuntimeError("planner down")

    async with open_runtime(agents={**AGENTS, "planner": boom}) as runtime:
        handle = await runtime.start(replanning(max_replans=3))
        result = await handle.wait()
        events = await runtime.journal.events(handle.execution_id)
    assert result.steps["work"].error == {
        "type": "PlannerFailedError",
        "message": "the replanning planner failed: RuntimeError: planner down",
    }
    assert len(REQUESTS) == 1
    assert [event.data["replan"] for event in of_type(events, EventType.STEP_REPLANNED)] == [1]

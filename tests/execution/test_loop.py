"""`_loop`: a repeat step runs its agent until `until` holds, each iteration journaled as `ID#k`.

Time-dependent tests run on pytest-trio's `autojump_clock`, so virtual times are asserted exactly.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestr8._agents._contract import AgentContext
from orchestr8._errors import NonRetryableError, RetryableError
from orchestr8._execution._loop import iteration_id, resumed_iterations
from orchestr8._execution._results import ExecutionResult
from orchestr8._execution._runtime import open_runtime
from orchestr8._journal._events import Event, EventType, ExecutionStatus, StepStatus
from orchestr8._journal._iterations import LoopProgress, loop_progress
from orchestr8._journal._journal import ExecutionRecord, open_journal
from orchestr8._journal._replay import replay

NO_RETRY: dict[str, Any] = {"retry": {"max_attempts": 1}, "circuit_breaker": None}

CALLS: Counter[str] = Counter()
"""Calls of the agents below, by unit id (reset for every test)."""


@pytest.fixture(autouse=True)
def reset_calls() -> Iterator[None]:
    """Each test counts its own calls."""
    CALLS.clear()
    yield
    CALLS.clear()


async def count_up(input: Any, context: AgentContext) -> Any:
    """Return the iteration number and what it was given as `previous`."""
    CALLS[context.step_id] += 1
    return {"n": input["iteration"], "previous": input["previous"]}


def loop_step(until: str, max_iterations: int, **more: Any) -> dict[str, Any]:
    """A repeat step `draft` running `count_up` with `${previous}` and `${iteration}`."""
    return {
        "id": "draft",
        "agent": "count_up",
        "input": {"previous": "${previous}", "iteration": "${iteration}"},
        "repeat": {"until": until, "max_iterations": max_iterations},
        **more,
    }


def workflow(*steps: dict[str, Any], **options: Any) -> dict[str, Any]:
    """A "1.1" workflow document with these steps, no retries by default."""
    return {
        "schema_version": "1.1",
        "name": "loops",
        "steps": list(steps),
        "defaults": {"policy": NO_RETRY},
        **options,
    }


async def execute(
    document: Mapping[str, Any],
    agents: Mapping[str, Any] | None = None,
    inputs: Mapping[str, Any] | None = None,
) -> tuple[ExecutionResult, list[Event]]:
    """Run a document in a fresh runtime on a memory journal; the result and every event."""
    async with open_journal(None) as journal:
        async with open_runtime(
            journal=journal, agents={"count_up": count_up, **(agents or {})}
        ) as rt:
            handle = await rt.start(dict(document), inputs)
            result = await handle.wait()
        return result, await journal.events(handle.execution_id)


def of_type(events: list[Event], type: str, step_id: str | None = None) -> list[Event]:
    """The events of one type, optionally of one step or unit."""
    return [e for e in events if e.type == type and (step_id is None or e.step_id == step_id)]


def assert_replays_to(result: ExecutionResult, events: list[Event]) -> None:
    """Replay gives the result's status, output and step statuses; units are the journal's own."""
    state = replay(events)
    assert state.status is result.status
    assert state.output == result.output
    for step_id, step in result.steps.items():
        assert (state.steps[step_id].status, state.steps[step_id].output) == (
            step.status,
            step.output,
        )
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


# -- running until until holds -----------------------------------------------------------------


async def test_the_loop_runs_until_until_holds_and_returns_that_output() -> None:
    """Iterations 1..3 run, each given the previous output; the third's output is the step's."""
    result, events = await execute(workflow(loop_step("output.n >= `3`", 5)))
    assert result.status is ExecutionStatus.SUCCEEDED
    assert result.steps["draft"].output == {
        "n": 3,
        "previous": {"n": 2, "previous": {"n": 1, "previous": None}},
    }
    assert dict(CALLS) == {"draft#1": 1, "draft#2": 1, "draft#3": 1}
    finished = of_type(events, EventType.ITERATION_FINISHED, "draft")
    assert [(e.data["iteration"], e.data["until"]) for e in finished] == [
        (1, False),
        (2, False),
        (3, True),
    ]
    assert_replays_to(result, events)


async def test_the_step_and_each_iteration_have_their_own_events_in_order() -> None:
    """The step starts, each iteration starts and succeeds as `draft#k`, then the step succeeds."""
    _, events = await execute(workflow(loop_step("iteration == `2`", 5)))
    shown = [
        (e.type, e.step_id)
        for e in events
        if e.step_id is not None and e.type != EventType.ATTEMPT_STARTED
    ]
    assert shown == [
        ("step.started", "draft"),
        ("step.started", "draft#1"),
        ("step.succeeded", "draft#1"),
        ("iteration.finished", "draft"),
        ("step.started", "draft#2"),
        ("step.succeeded", "draft#2"),
        ("iteration.finished", "draft"),
        ("step.succeeded", "draft"),
    ]
    assert of_type(events, EventType.STEP_STARTED, "draft")[0].data == {
        "agent": "count_up",
        "max_iterations": 5,
    }


async def test_until_holding_at_once_runs_one_iteration() -> None:
    """An until true after the first iteration runs the agent once, with `${previous}` null."""
    result, _ = await execute(workflow(loop_step("`true`", 3)))
    assert result.output == {"draft": {"n": 1, "previous": None}}
    assert dict(CALLS) == {"draft#1": 1}


async def test_until_reads_inputs_and_the_outputs_of_dependencies() -> None:
    """`inputs` and `steps.ID.output` of a dependency are in until's scope."""
    target = {"id": "target", "agent": "echo", "input": 2}
    document = workflow(
        target,
        loop_step(
            "output.n >= steps.target.output && inputs.go",
            5,
            depends_on=["target"],
        ),
    )
    result, _ = await execute(document, inputs={"go": True})
    assert result.steps["draft"].output["n"] == 2


async def test_the_output_of_a_loop_feeds_its_dependents() -> None:
    """A dependent reads the loop's output: the last iteration's."""
    after = {
        "id": "after",
        "agent": "echo",
        "input": "${steps.draft.output.n}",
        "depends_on": ["draft"],
    }
    result, _ = await execute(workflow(loop_step("output.n == `2`", 4), after))
    assert result.steps["after"].output == 2


# -- the bound -----------------------------------------------------------------------------------


async def test_reaching_the_bound_fails_the_step_and_the_execution() -> None:
    """max_iterations iterations without until holding: the step fails with IterationLimitError."""
    result, events = await execute(workflow(loop_step("`false`", 3)))
    assert result.status is ExecutionStatus.FAILED
    assert dict(CALLS) == {"draft#1": 1, "draft#2": 1, "draft#3": 1}
    error = result.steps["draft"].error
    assert error == {
        "type": "IterationLimitError",
        "message": "loop ended after 3 iterations without until holding: `false`",
    }
    assert result.error == {**error, "step_id": "draft"}
    assert_replays_to(result, events)


async def test_on_max_iterations_succeed_keeps_the_last_output() -> None:
    """With on_max_iterations succeed, reaching the bound succeeds with the last output."""
    result, _ = await execute(workflow(loop_step("`false`", 2, on_max_iterations="succeed")))
    assert result.status is ExecutionStatus.SUCCEEDED
    assert result.steps["draft"].output == {"n": 2, "previous": {"n": 1, "previous": None}}


async def test_on_error_continue_lets_a_loop_that_hit_its_bound_go_on_as_null() -> None:
    """A loop that failed with on_error continue gives its dependents null."""
    after = {
        "id": "after",
        "agent": "echo",
        "input": "${steps.draft.output}",
        "depends_on": ["draft"],
    }
    result, _ = await execute(workflow(loop_step("`false`", 1, on_error="continue"), after))
    assert result.status is ExecutionStatus.SUCCEEDED
    assert result.steps["draft"].status is StepStatus.FAILED
    assert result.steps["after"].output is None


# -- failures ------------------------------------------------------------------------------------


async def test_retries_apply_to_each_iteration() -> None:
    """An iteration's failed attempt is retried under the step's policy, as its own unit."""

    async def flaky(input: Any, context: AgentContext) -> Any:
        CALLS[context.step_id] += 1
        if CALLS[context.step_id] == 1 and input["iteration"] == 2:
            raise RetryableError("try again")
        return {"n": input["iteration"]}

    step = loop_step("output.n == `3`", 3, agent="flaky")
    step["policy"] = {"retry": {"max_attempts": 2, "initial_delay": 0.0, "jitter": "none"}}
    result, events = await execute(workflow(step), {"flaky": flaky})
    assert result.status is ExecutionStatus.SUCCEEDED
    assert dict(CALLS) == {"draft#1": 1, "draft#2": 2, "draft#3": 1}
    assert replay(events).steps["draft#2"].attempts == 2
    assert result.steps["draft"].attempts == 0
    assert [e.step_id for e in of_type(events, EventType.ATTEMPT_FAILED)] == ["draft#2"]


async def test_an_iteration_failing_for_good_fails_the_step_with_its_error() -> None:
    """The failed iteration is journaled as `draft#2`; the step fails with the same error."""

    async def breaks(input: Any, context: AgentContext) -> Any:
        CALLS[context.step_id] += 1
        if input["iteration"] == 2:
            raise NonRetryableError("the writer gave up")
        return {"n": input["iteration"]}

    result, events = await execute(
        workflow(loop_step("`false`", 5, agent="breaks")), {"breaks": breaks}
    )
    assert result.status is ExecutionStatus.FAILED
    error = {"type": "NonRetryableError", "message": "the writer gave up"}
    assert result.steps["draft"].error == error
    assert replay(events).steps["draft#2"].status is StepStatus.FAILED
    assert dict(CALLS) == {"draft#1": 1, "draft#2": 1}
    assert_replays_to(result, events)


async def test_an_until_that_fails_at_run_time_fails_the_step_with_its_message() -> None:
    """A JMESPath type error in until fails the step with an ExpressionError, no traceback."""
    result, events = await execute(workflow(loop_step("length(output.n) > `1`", 3)))
    assert result.status is ExecutionStatus.FAILED
    error = result.steps["draft"].error
    assert error is not None
    assert error["type"] == "ExpressionError"
    assert "length(output.n) > `1`" in error["message"]
    assert of_type(events, EventType.ITERATION_FINISHED) == []


# -- cancel and timeout --------------------------------------------------------------------------


async def slow(input: Any, context: AgentContext) -> Any:
    """Take a second per iteration."""
    CALLS[context.step_id] += 1
    await trio.sleep(1)
    return {"n": input["iteration"]}


async def test_a_timeout_stops_the_loop_mid_iteration(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The execution's timeout cancels the running iteration; no further iteration starts."""
    document = workflow(loop_step("`false`", 10, agent="slow"), timeout=2.5)
    result, events = await execute(document, {"slow": slow})
    assert result.status is ExecutionStatus.FAILED
    assert result.steps["draft"].status is StepStatus.CANCELLED
    assert dict(CALLS) == {"draft#1": 1, "draft#2": 1, "draft#3": 1}
    state = replay(events)
    assert state.steps["draft#3"].status is StepStatus.CANCELLED
    assert [e.step_id for e in of_type(events, EventType.STEP_CANCELLED)] == ["draft#3", "draft"]
    assert result.steps["draft"].attempts == state.steps["draft"].attempts == 0


async def test_a_cancel_stops_the_loop(autojump_clock: trio.testing.MockClock) -> None:
    """A cancel during iteration 2 ends the loop there: cancelled, and nothing after it runs."""
    async with open_journal(None) as journal:
        async with open_runtime(journal=journal, agents={"slow": slow}, cancel_grace=0.1) as rt:
            handle = await rt.start(workflow(loop_step("`false`", 10, agent="slow")))
            await trio.sleep(1.5)
            handle.cancel()
            result = await handle.wait()
        events = await journal.events(handle.execution_id)
    assert result.status is ExecutionStatus.CANCELLED
    assert dict(CALLS) == {"draft#1": 1, "draft#2": 1}
    assert replay(events).steps["draft#2"].status is StepStatus.CANCELLED
    assert result.steps["draft"].attempts == replay(events).steps["draft"].attempts == 0
    assert_replays_to(result, events)


async def test_a_cooperative_agent_ends_its_iteration_and_no_further_one_starts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An agent that finishes when asked to cancel: its iteration succeeds, and the loop stops."""

    async def polite(input: Any, context: AgentContext) -> Any:
        CALLS[context.step_id] += 1
        await context.wait_cancel_requested()
        return {"n": input["iteration"]}

    async with open_journal(None) as journal:
        async with open_runtime(journal=journal, agents={"polite": polite}) as rt:
            handle = await rt.start(workflow(loop_step("`false`", 5, agent="polite")))
            await trio.sleep(1)
            handle.cancel()
            result = await handle.wait()
        events = await journal.events(handle.execution_id)
    assert result.status is ExecutionStatus.CANCELLED
    assert result.steps["draft"].status is StepStatus.CANCELLED
    assert dict(CALLS) == {"draft#1": 1}
    assert replay(events).steps["draft#1"].status is StepStatus.SUCCEEDED
    assert "draft#2" not in replay(events).steps
    assert_replays_to(result, events)


async def test_an_iteration_that_ignores_its_cancel_is_given_up_and_records_nothing_late(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A loop whose iteration shields itself is given up on; its late end is not journaled."""

    async def stubborn(input: Any, context: AgentContext) -> Any:
        CALLS[context.step_id] += 1
        with trio.CancelScope(shield=True):
            await trio.sleep(100)
        return {"n": input["iteration"]}

    async with open_journal(None) as journal:
        async with open_runtime(journal=journal, agents={"stubborn": stubborn}) as rt:
            step = loop_step("`false`", 3, agent="stubborn")
            handle = await rt.start(workflow(step), execution_timeout=1)
            result = await handle.wait()
        events = await journal.events(handle.execution_id)
    assert trio.current_time() >= 100
    assert result.status is ExecutionStatus.FAILED
    assert result.steps["draft"].status is StepStatus.CANCELLED
    assert dict(CALLS) == {"draft#1": 1}
    assert events[-1].type == EventType.EXECUTION_FAILED
    assert of_type(events, EventType.STEP_SUCCEEDED) == []


async def pause(input: Any, context: AgentContext) -> Any:
    """Take 0.6 s: three of them in a row make a child that is still running when cancelled."""
    await trio.sleep(0.6)
    return {"done": context.step_id}


SLOW_CHILD: dict[str, Any] = {
    "schema_version": "1.1",
    "name": "slow_child",
    "steps": [
        {"id": "c1", "agent": "pause"},
        {"id": "c2", "agent": "pause", "depends_on": ["c1"]},
        {"id": "c3", "agent": "pause", "depends_on": ["c2"]},
    ],
    "output": "${steps.c3.output}",
}


@pytest.mark.parametrize(("cancel_at", "grace"), [(0.3, 0), (1.35, 0.2), (1.5, 0.5), (2.0, 1.0)])
async def test_a_cancelled_loop_over_a_sub_workflow_ends_every_unit_cancelled(
    cancel_at: float, grace: float, autojump_clock: trio.testing.MockClock
) -> None:
    """Forced or cooperative, a cancel ends the running iteration `cancelled`, never failed."""
    step = {
        "id": "lc",
        "workflow": SLOW_CHILD,
        "input": {},
        "repeat": {"until": "iteration >= `3`", "max_iterations": 4},
    }
    async with open_journal(None) as journal:
        async with open_runtime(journal=journal, agents={"pause": pause}, cancel_grace=grace) as rt:
            handle = await rt.start(workflow(step))
            await trio.sleep(cancel_at)
            handle.cancel()
            result = await handle.wait()
        events = await journal.events(handle.execution_id)
    assert result.status is ExecutionStatus.CANCELLED
    state = replay(events)
    last = max(unit for unit in state.steps if unit.startswith("lc#"))
    assert state.steps[last].status is StepStatus.CANCELLED
    assert {unit.status for unit in state.steps.values()} <= {
        StepStatus.SUCCEEDED,
        StepStatus.CANCELLED,
    }
    assert of_type(events, EventType.ATTEMPT_FAILED) == []
    assert_replays_to(result, events)


# -- resume --------------------------------------------------------------------------------------


async def test_resume_continues_after_the_last_finished_iteration(tmp_path: Path) -> None:
    """Iteration 3 failing for good, then a resume: 1 and 2 are reused, 3 on runs with previous."""
    broken = True

    async def writer(input: Any, context: AgentContext) -> Any:
        CALLS[context.step_id] += 1
        if broken and input["iteration"] == 3:
            raise NonRetryableError("the model is down")
        return {"n": input["iteration"], "previous": input["previous"]}

    document = workflow(loop_step("output.n == `4`", 5, agent="writer"))
    path = tmp_path / "journal.db"
    async with open_runtime(journal=path, agents={"writer": writer}) as rt:
        handle = await rt.start(document)
        first = await handle.wait()
    assert first.status is ExecutionStatus.FAILED
    broken = False
    async with open_runtime(journal=path, agents={"writer": writer}) as rt:
        resumed = await rt.resume(handle.execution_id)
        result = await resumed.wait()
        events = await rt.journal.events(handle.execution_id)
    assert result.status is ExecutionStatus.SUCCEEDED
    assert dict(CALLS) == {"draft#1": 1, "draft#2": 1, "draft#3": 2, "draft#4": 1}
    assert result.steps["draft"].output["n"] == 4
    assert result.steps["draft"].output["previous"]["previous"]["n"] == 2
    after_resume = events[[e.type for e in events].index(EventType.EXECUTION_RESUMED) :]
    finished = of_type(after_resume, EventType.ITERATION_FINISHED)
    assert [(e.data["iteration"], e.data["until"], "reused" in e.data) for e in finished] == [
        (2, False, True),
        (3, False, False),
        (4, True, False),
    ]
    async with open_runtime(journal=path) as rt:
        replayed = await rt.result(handle.execution_id)
    assert list(replayed.steps) == ["draft"]
    assert replayed.steps["draft"].output == result.steps["draft"].output


async def test_a_resumed_loop_whose_last_iteration_satisfies_until_runs_nothing() -> None:
    """Reused iterations whose last one satisfies until: the step succeeds without a call."""
    async with open_journal(None) as journal:
        async with open_runtime(journal=journal, agents={"count_up": count_up}) as rt:
            handle = await rt.start(workflow(loop_step("output.n == `2`", 3)))
            await handle.wait()
        events = await journal.events(handle.execution_id)
        record = await journal.get_execution(handle.execution_id)
    # Cut after draft#2 succeeded, before its iteration.finished: until is evaluated again.
    cut = next(
        index
        for index, e in enumerate(events)
        if e.type == EventType.STEP_SUCCEEDED and e.step_id == "draft#2"
    )
    CALLS.clear()
    result, resumed = await resume_from(record, events[: cut + 1])
    assert result.status is ExecutionStatus.SUCCEEDED
    assert result.steps["draft"].output["n"] == 2
    assert not CALLS
    assert loop_progress(resumed)["draft"] == LoopProgress(3, 2, True)


def test_resumed_iterations_stop_at_the_first_missing_one() -> None:
    """Only an unbroken run of iterations from #1 is reused."""
    units = {"a#1": 1, "a#2": 2, "a#4": 4, "b#1": 0}
    assert resumed_iterations(units, "a") == [1, 2]
    assert resumed_iterations(units, "c") == []
    assert iteration_id("a", 3) == "a#3"


async def resume_from(
    record: ExecutionRecord, events: list[Event]
) -> tuple[ExecutionResult, list[Event]]:
    """Resume an execution from a journal holding only `events`, in a fresh runtime."""
    async with open_journal(None) as journal:
        await journal.create_execution(record)
        for event in events:
            await journal.append(event)
        await journal.flush()
        async with open_runtime(journal=journal, agents={"count_up": count_up}) as rt:
            handle = await rt.resume(record.execution_id)
            result = await handle.wait()
        return result, await journal.events(record.execution_id)


# -- properties ----------------------------------------------------------------------------------


@st.composite
def loop_cases(draw: st.DrawFn) -> dict[str, Any]:
    """A loop's bound, where until first holds (maybe never), failed attempts, and a cut."""
    bound = draw(st.integers(1, 6))
    stop = draw(st.integers(1, bound + 1))
    failures = draw(st.dictionaries(st.integers(1, bound), st.integers(0, 2), max_size=bound))
    return {
        "bound": bound,
        "stop": stop,
        "failures": failures,
        "max_attempts": draw(st.integers(1, 3)),
        "succeed": draw(st.booleans()),
        "cut": draw(st.floats(0, 1)),
    }


def case_workflow(case: Mapping[str, Any]) -> dict[str, Any]:
    """The loop a case describes: until holds at iteration `stop` (never, past the bound)."""
    step = loop_step(f"output.n >= `{case['stop']}`", case["bound"], agent="scripted")
    step["policy"] = {
        "retry": {"max_attempts": case["max_attempts"], "initial_delay": 0.0, "jitter": "none"}
    }
    if case["succeed"]:
        step["on_max_iterations"] = "succeed"
    return workflow(step)


def scripted_agent(case: Mapping[str, Any]) -> Any:
    """Iteration k fails its first `failures[k]` attempts (retryable), then answers."""

    async def scripted(input: Any, context: AgentContext) -> Any:
        CALLS[context.step_id] += 1
        if CALLS[context.step_id] <= case["failures"].get(input["iteration"], 0):
            raise RetryableError("not yet")
        return {"n": input["iteration"], "previous": input["previous"]}

    return scripted


def check_loop(case: Mapping[str, Any], result: ExecutionResult, events: list[Event]) -> None:
    """Every loop property: attempts per iteration, where it stopped, the outcome, the journal."""
    bound, stop, budget = case["bound"], case["stop"], case["max_attempts"]
    failures = case["failures"]
    ran: list[int] = []
    for k in range(1, bound + 1):
        unit = iteration_id("draft", k)
        if unit not in CALLS:
            break
        ran.append(k)
        assert CALLS[unit] <= budget, (unit, CALLS[unit])
    gave_up = next((k for k in ran if failures.get(k, 0) >= budget), None)
    expected_last = gave_up or min(stop, bound)
    assert ran == list(range(1, expected_last + 1))
    draft = result.steps["draft"]
    if gave_up is not None:
        assert draft.status is StepStatus.FAILED
    elif stop <= bound or case["succeed"]:
        assert draft.status is StepStatus.SUCCEEDED
        assert draft.output["n"] == expected_last
    else:
        assert draft.status is StepStatus.FAILED
        assert draft.error is not None
        assert draft.error["type"] == "IterationLimitError"
    finished = of_type(events, EventType.ITERATION_FINISHED, "draft")
    holds = [e.data["until"] for e in finished]
    assert holds == [k >= stop for k in range(1, len(holds) + 1)]
    assert_replays_to(result, events)


@settings(max_examples=60, deadline=None)
@given(case=loop_cases())
def test_loops_with_random_stops_and_failures_resume_after_a_cut_at_any_event(
    case: dict[str, Any],
) -> None:
    """Random bounds, stop points and failures; then a resume from a cut at any event."""

    async def main() -> None:
        CALLS.clear()
        agents = {"scripted": scripted_agent(case)}
        async with open_journal(None) as journal:
            async with open_runtime(journal=journal, agents=agents) as rt:
                handle = await rt.start(case_workflow(case))
                result = await handle.wait()
            events = await journal.events(handle.execution_id)
            record = await journal.get_execution(handle.execution_id)
        check_loop(case, result, events)
        cut = int(case["cut"] * (len(events) - 1)) + 1
        kept = events[:cut]
        finished_before = {
            e.step_id for e in kept if e.type == EventType.STEP_SUCCEEDED and e.step_id
        }
        if replay(kept).status is ExecutionStatus.SUCCEEDED:
            return
        CALLS.clear()
        # The resumed agent never fails: every unit it calls must be one not finished before.
        healthy = {**case, "failures": {}}
        async with open_journal(None) as journal:
            await journal.create_execution(record)
            for event in kept:
                await journal.append(event)
            await journal.flush()
            agents = {"scripted": scripted_agent(healthy)}
            async with open_runtime(journal=journal, agents=agents) as rt:
                resumed = await rt.resume(record.execution_id)
                again = await resumed.wait()
        assert not set(CALLS) & finished_before
        assert again.status in (ExecutionStatus.SUCCEEDED, ExecutionStatus.FAILED)
        if case["stop"] <= case["bound"] or case["succeed"]:
            assert again.status is ExecutionStatus.SUCCEEDED

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))

"""Maps (`for_each`): one agent call per item, each item journaled as `ID[i]`, outputs in order.

Everything with time runs on pytest-trio's `autojump_clock`, so virtual times are exact.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestr8._agents._contract import AgentContext
from orchestr8._errors import NonRetryableError, RetryableError
from orchestr8._execution._engine import SPAWNS_PER_PASS
from orchestr8._execution._map import (
    DEFAULT_MAP_CONCURRENCY,
    MapItem,
    MapRun,
    item_id,
    map_concurrency,
)
from orchestr8._execution._results import ExecutionResult, StepResult
from orchestr8._execution._runtime import open_runtime
from orchestr8._execution._wind_down import FORCED_STOP_WAIT
from orchestr8._journal._events import Event, EventType, ExecutionStatus, StepStatus
from orchestr8._journal._journal import ExecutionRecord
from orchestr8._journal._map_items import item_counts, split_item_id
from orchestr8._journal._replay import replay
from orchestr8._workflow._codec import journal_document, load_workflow

NO_RETRY: dict[str, Any] = {"retry": {"max_attempts": 1}, "circuit_breaker": None}
ENDINGS = frozenset(
    {
        EventType.STEP_SUCCEEDED,
        EventType.STEP_FAILED,
        EventType.STEP_SKIPPED,
        EventType.STEP_CANCELLED,
    }
)


def workflow(*steps: dict[str, Any], **options: Any) -> dict[str, Any]:
    """A schema 1.1 workflow with these steps, taking a `docs` array input."""
    document: dict[str, Any] = {
        "schema_version": "1.1",
        "name": "maps",
        "inputs": {"type": "object", "properties": {"docs": {"type": "array"}}},
        "defaults": {"policy": NO_RETRY},
        "steps": list(steps),
    }
    document.update(options)
    return document


def mapped(step_id: str = "each", agent: Any = "echo", **extra: Any) -> dict[str, Any]:
    """A map step over `inputs.docs` whose input is the item and its index."""
    return {
        "id": step_id,
        "agent": agent,
        "for_each": "inputs.docs",
        "input": {"doc": "${item}", "at": "${index}"},
        **extra,
    }


async def execute(
    document: dict[str, Any], inputs: Mapping[str, Any], **runtime: Any
) -> tuple[ExecutionResult, list[Event]]:
    """Run one workflow in a fresh runtime; its result and journaled events."""
    async with open_runtime(**runtime) as rt:
        handle = await rt.start(document, inputs)
        result = await handle.wait()
        events = await rt.journal.events(handle.execution_id)
    return result, events


def of_type(events: Iterable[Event], type: str, step_id: str | None = None) -> list[Event]:
    """The events of one type (and step or item), in seq order."""
    return [e for e in events if e.type == type and (step_id is None or e.step_id == step_id)]


def peak_items(events: Iterable[Event], step_id: str) -> int:
    """The most items of `step_id` running at once, walking the journal in seq order."""
    running: set[str] = set()
    peak = 0
    for event in events:
        if event.step_id is None or not event.step_id.startswith(f"{step_id}["):
            continue
        if event.type == EventType.STEP_STARTED:
            running.add(event.step_id)
            peak = max(peak, len(running))
        elif event.type in ENDINGS:
            running.discard(event.step_id)
    return peak


async def sleepy(input: Any) -> Any:
    """Sleep `input["doc"]` virtual seconds, then return it."""
    await trio.sleep(input["doc"])
    return input["doc"]


async def picky(input: Any) -> Any:
    """Fail for good on a document named `bad...`, echo every other one upper-cased."""
    if str(input["doc"]).startswith("bad"):
        raise NonRetryableError(f"cannot read {input['doc']}")
    return str(input["doc"]).upper()


# -- identifiers and the map's bookkeeping -----------------------------------------------------


def test_item_ids_name_the_map_step_and_the_index() -> None:
    """`ID[i]` round-trips; step ids and malformed ids are not item ids."""
    assert item_id("summarise", 3) == "summarise[3]"
    assert split_item_id("summarise[3]") == ("summarise", 3)
    assert split_item_id("summarise") is None
    assert split_item_id("[3]") is None
    assert split_item_id("s[x]") is None


def test_the_default_concurrency_of_a_map_is_the_workflows_capped() -> None:
    """0 on the step: the workflow's limit up to `DEFAULT_MAP_CONCURRENCY`; a step's own wins."""
    loaded = load_workflow(workflow(mapped(), mapped("own", max_concurrency=7)))
    plain, own = loaded.steps
    assert map_concurrency(plain, 0) == DEFAULT_MAP_CONCURRENCY
    assert map_concurrency(plain, 3) == 3
    assert map_concurrency(plain, 10_000) == DEFAULT_MAP_CONCURRENCY
    assert map_concurrency(own, 3) == 7


def test_a_map_of_100000_items_holds_only_its_limit_of_live_items() -> None:
    """Items are built as slots free up: never more than `limit` are queued or running."""
    step = load_workflow(workflow(mapped())).steps[0]
    run = MapRun(step, list(range(100_000)), limit=10)
    ready: deque[MapItem] = deque()
    run.refill(ready)
    assert [unit.id for unit in ready] == [f"each[{i}]" for i in range(10)]
    finished = 0
    while ready:
        unit = ready.popleft()
        run.settle(unit.index, StepResult(StepStatus.SUCCEEDED, output=unit.index), ready)
        finished += 1
        assert len(ready) <= 10
    assert finished == 100_000
    assert run.done
    assert run.result().output == list(range(100_000))


def test_reused_items_are_not_run_again() -> None:
    """A resume's reused outputs fill their places without an item being queued."""
    step = load_workflow(workflow(mapped())).steps[0]
    run = MapRun(step, ["a", "b", "c"], limit=5, reused={0: "A", 2: "C"})
    ready: deque[MapItem] = deque()
    run.refill(ready)
    assert [unit.id for unit in ready] == ["each[1]"]
    run.settle(1, StepResult(StepStatus.SUCCEEDED, output="B"), ready)
    assert run.result().output == ["A", "B", "C"]
    assert run.summary() == {"count": 3, "succeeded": 3, "reused": 2}


# -- running maps ------------------------------------------------------------------------------


async def test_a_map_runs_its_agent_once_per_item_and_returns_the_outputs_in_order() -> None:
    """Each item is its own unit `each[i]`; the map's output lists the item outputs in order."""
    document = workflow(
        mapped(),
        {"id": "count", "agent": "echo", "input": "${steps.each.output}", "depends_on": ["each"]},
        output="${steps.count.output}",
    )
    result, events = await execute(document, {"docs": ["a", "b", "c"]})
    assert result.status is ExecutionStatus.SUCCEEDED
    assert result.output == [{"doc": "a", "at": 0}, {"doc": "b", "at": 1}, {"doc": "c", "at": 2}]
    assert [e.data for e in of_type(events, EventType.MAP_STARTED, "each")] == [{"count": 3}]
    for index in range(3):
        assert len(of_type(events, EventType.STEP_STARTED, f"each[{index}]")) == 1
        assert len(of_type(events, EventType.STEP_SUCCEEDED, f"each[{index}]")) == 1
    (done,) = of_type(events, EventType.STEP_SUCCEEDED, "each")
    assert done.data == {"output": result.output, "count": 3, "succeeded": 3}
    assert set(result.steps) == {"each", "count"}
    state = replay(events)
    assert state.steps["each[1]"].output == {"doc": "b", "at": 1}


async def test_an_empty_list_succeeds_with_an_empty_array_and_no_items() -> None:
    """`for_each` yielding `[]`: the step succeeds with `[]`, no agent call."""
    result, events = await execute(workflow(mapped(), output="${steps.each.output}"), {"docs": []})
    assert result.status is ExecutionStatus.SUCCEEDED
    assert result.output == []
    assert [e.step_id for e in of_type(events, EventType.STEP_STARTED)] == ["each"]


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("inputs.docs", "for_each yielded an object, not an array (for_each: inputs.docs)"),
        ("inputs.missing", "for_each yielded null, not an array (for_each: inputs.missing)"),
        ("length(inputs.docs.a)", "$.steps[0].for_each: 'length(inputs.docs.a)' failed"),
    ],
)
async def test_a_for_each_that_yields_no_array_fails_the_step_with_the_type(
    expression: str, message: str
) -> None:
    """Not an array (or an expression that fails) fails the step with a message, no item runs."""
    document = workflow(mapped(for_each=expression))
    document["inputs"] = {"type": "object"}
    result, events = await execute(document, {"docs": {"a": 1}})
    assert result.status is ExecutionStatus.FAILED
    error = result.steps["each"].error
    assert error is not None
    assert message in error["message"]
    assert of_type(events, EventType.MAP_STARTED) == []


async def test_items_run_at_most_max_concurrency_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """`max_concurrency` 2 runs six 1 s items two at a time, refilling a slot at once."""
    document = workflow(mapped(agent="sleepy", max_concurrency=2))
    result, events = await execute(document, {"docs": [1] * 6}, agents={"sleepy": sleepy})
    assert result.status is ExecutionStatus.SUCCEEDED
    assert peak_items(events, "each") == 2
    assert trio.current_time() == 3.0


async def test_the_default_limit_bounds_a_large_map(autojump_clock: trio.testing.MockClock) -> None:
    """Without a limit, a map runs `DEFAULT_MAP_CONCURRENCY` items at once, never more."""
    count = DEFAULT_MAP_CONCURRENCY * 2 + 5
    document = workflow(mapped(agent="sleepy"))
    result, events = await execute(document, {"docs": [1] * count}, agents={"sleepy": sleepy})
    assert result.status is ExecutionStatus.SUCCEEDED
    assert peak_items(events, "each") == DEFAULT_MAP_CONCURRENCY
    assert trio.current_time() == 3.0


async def test_a_workflow_limit_of_one_still_runs_a_map(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The waiting map step holds no concurrency slot: with a limit of 1 its items still run."""
    document = workflow(mapped(agent="sleepy"), {"id": "other", "agent": "echo"}, max_concurrency=1)
    result, events = await execute(document, {"docs": [1, 1, 1]}, agents={"sleepy": sleepy})
    assert result.status is ExecutionStatus.SUCCEEDED
    assert peak_items(events, "each") == 1
    assert result.steps["each"].output == [1, 1, 1]


async def test_each_item_has_its_own_attempts() -> None:
    """An item's retries are its own: every item of a failing-once agent takes two attempts."""
    attempts: dict[str, int] = {}

    async def flaky(input: Any, context: AgentContext) -> Any:
        attempts[context.step_id] = context.attempt
        if context.attempt == 1:
            raise RetryableError("not yet")
        return input["doc"]

    retry = {"retry": {"max_attempts": 3, "initial_delay": 0.001, "jitter": "none"}}
    document = workflow(mapped(agent="flaky", policy=retry))
    result, events = await execute(document, {"docs": ["a", "b"]}, agents={"flaky": flaky})
    assert result.status is ExecutionStatus.SUCCEEDED
    assert result.steps["each"].output == ["a", "b"]
    assert attempts == {"each[0]": 2, "each[1]": 2}
    assert replay(events).steps["each[1]"].attempts == 2


async def test_a_failing_item_fails_the_map_and_cancels_the_rest_under_fail_fast(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """`on_item_error` fail: the first item failing for good fails the step; running items are
    cancelled and no further item starts."""

    async def slow_or_bad(input: Any) -> Any:
        if input["doc"] == "bad":
            await trio.sleep(1)
            raise NonRetryableError("bad document")
        await trio.sleep(10)
        return input["doc"]

    document = workflow(mapped(agent="agent", max_concurrency=2))
    docs = ["bad", "slow", "never", "never"]
    result, events = await execute(document, {"docs": docs}, agents={"agent": slow_or_bad})
    assert result.status is ExecutionStatus.FAILED
    error = result.steps["each"].error
    assert error == {
        "type": "MapItemFailedError",
        "message": "item 0 failed: NonRetryableError: bad document",
    }
    assert trio.current_time() == 1.0
    state = replay(events)
    assert state.steps["each[0]"].status is StepStatus.FAILED
    assert state.steps["each[1]"].status is StepStatus.CANCELLED
    assert "each[2]" not in state.steps


async def test_without_fail_fast_running_items_finish_before_the_map_fails(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Without `fail_fast` a failed item stops new items; the running ones finish first."""
    document = workflow(mapped(agent="agent", max_concurrency=2), fail_fast=False)
    docs = [2, "bad", 1, 1]

    async def agent(input: Any) -> Any:
        if input["doc"] == "bad":
            await trio.sleep(0.5)
            raise NonRetryableError("bad document")
        await trio.sleep(input["doc"])
        return input["doc"]

    result, events = await execute(document, {"docs": docs}, agents={"agent": agent})
    assert result.status is ExecutionStatus.FAILED
    state = replay(events)
    assert state.steps["each[0]"].status is StepStatus.SUCCEEDED
    assert state.steps["each[1]"].status is StepStatus.FAILED
    assert "each[2]" not in state.steps
    assert trio.current_time() == 2.0


async def test_on_item_error_continue_leaves_null_for_failed_items() -> None:
    """`on_item_error` continue: failed items read `null`, are recorded, and the map succeeds."""
    document = workflow(mapped(agent="picky", on_item_error="continue"))
    docs = ["a", "bad-1", "c", "bad-2"]
    result, events = await execute(document, {"docs": docs}, agents={"picky": picky})
    assert result.status is ExecutionStatus.SUCCEEDED
    assert result.steps["each"].output == ["A", None, "C", None]
    (done,) = of_type(events, EventType.STEP_SUCCEEDED, "each")
    assert done.data["failed_items"] == [1, 3]
    assert replay(events).steps["each[3]"].error == {
        "type": "NonRetryableError",
        "message": "cannot read bad-2",
    }


async def test_on_error_continue_on_a_failed_map_lets_dependents_run() -> None:
    """A map step that failed with `on_error` continue reads as `null`, like any step."""
    document = workflow(
        mapped(agent="picky", on_error="continue"),
        {"id": "after", "agent": "echo", "input": "${steps.each.output}", "depends_on": ["each"]},
    )
    result, _ = await execute(document, {"docs": ["bad"]}, agents={"picky": picky})
    assert result.steps["each"].status is StepStatus.FAILED
    assert result.steps["after"].output is None


async def test_a_cancel_reaches_the_running_items(autojump_clock: trio.testing.MockClock) -> None:
    """Cancelling the execution cancels running items; the map and execution end cancelled."""
    document = workflow(mapped(agent="sleepy", max_concurrency=2))
    async with open_runtime(agents={"sleepy": sleepy}, cancel_grace=0) as rt:
        handle = await rt.start(document, {"docs": [5, 5, 5]})
        await trio.sleep(1)
        assert handle.cancel("stop") is True
        result = await handle.wait()
        events = await rt.journal.events(handle.execution_id)
    assert result.status is ExecutionStatus.CANCELLED
    assert result.steps["each"].status is StepStatus.CANCELLED
    state = replay(events)
    assert state.steps["each[0]"].status is StepStatus.CANCELLED
    assert state.steps["each[1]"].status is StepStatus.CANCELLED
    assert "each[2]" not in state.steps
    assert trio.current_time() == 1.0


async def test_the_execution_timeout_reaches_the_running_items(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The execution's timeout forces running items at once; the execution fails timed out."""
    document = workflow(mapped(agent="sleepy"), timeout=2)
    result, events = await execute(document, {"docs": [5, 1]}, agents={"sleepy": sleepy})
    assert result.status is ExecutionStatus.FAILED
    assert result.error is not None
    assert result.error["type"] == "ExecutionTimeoutError"
    state = replay(events)
    assert state.steps["each[0]"].status is StepStatus.CANCELLED
    assert state.steps["each[1]"].status is StepStatus.SUCCEEDED
    assert trio.current_time() == 2.0


# -- per-item filters (a map's `when` that reads item or index) --------------------------------


async def test_a_when_over_the_item_filters_items_in_order_with_null_for_the_skipped() -> None:
    """False for an item: `step.skipped` for `ID[i]` with the reason, no start, no agent call,
    `null` in its place; the map succeeds and counts its skipped items."""
    calls: list[Any] = []

    async def counted(input: Any) -> Any:
        calls.append(input["doc"])
        return str(input["doc"]).upper()

    document = workflow(mapped(agent="agent", when="item != 'b' && index != `3`"))
    result, events = await execute(document, {"docs": list("abcde")}, agents={"agent": counted})
    assert result.status is ExecutionStatus.SUCCEEDED
    assert result.steps["each"].output == ["A", None, "C", None, "E"]
    assert sorted(calls) == ["a", "c", "e"]
    assert [e.data for e in of_type(events, EventType.STEP_SKIPPED, "each[1]")] == [
        {"reason": "when was false: item != 'b' && index != `3`"}
    ]
    assert of_type(events, EventType.STEP_STARTED, "each[1]") == []
    assert of_type(events, EventType.STEP_STARTED, "each[3]") == []
    assert of_type(events, EventType.STEP_SKIPPED, "each") == []
    (done,) = of_type(events, EventType.STEP_SUCCEEDED, "each")
    output = result.steps["each"].output
    assert done.data == {"output": output, "count": 5, "succeeded": 3, "skipped": 2}
    counts = item_counts(replay(events))["each"]
    assert counts.describe() == "map 5: 3 succeeded, 2 skipped"


def declared(name: str) -> dict[str, Any]:
    """The inputs schema of `workflow` with one more input, `name`."""
    return {"type": "object", "properties": {"docs": {"type": "array"}, name: {}}}


async def test_a_when_over_inputs_and_the_item_is_a_per_item_filter_too() -> None:
    """A `when` reading inputs and item is checked per item: the map step itself is not skipped."""
    document = workflow(mapped(when="inputs.keep == item"), inputs=declared("keep"))
    inputs = {"docs": ["a", "b", "a"], "keep": "a"}
    result, events = await execute(document, inputs)
    assert result.status is ExecutionStatus.SUCCEEDED
    assert result.steps["each"].output == [{"doc": "a", "at": 0}, None, {"doc": "a", "at": 2}]
    assert [e.step_id for e in of_type(events, EventType.STEP_SKIPPED)] == ["each[1]"]


async def test_a_map_when_over_inputs_alone_skips_the_whole_step() -> None:
    """A map's `when` that reads no item is checked once, before `for_each`, as on any step."""
    document = workflow(mapped(when="inputs.go"), inputs=declared("go"))
    result, events = await execute(document, {"docs": [1], "go": False})
    assert result.steps["each"].status is StepStatus.SKIPPED
    assert [e.step_id for e in of_type(events, EventType.STEP_SKIPPED)] == ["each"]
    assert of_type(events, EventType.MAP_STARTED) == []


async def test_a_filter_that_fails_for_an_item_fails_that_item_under_on_item_error() -> None:
    """An `ExpressionError` for one item fails that item with its message: `continue` leaves
    `null` and records it, `fail` fails the map naming the item."""
    docs: list[Any] = ["ab", 5, "abc"]
    kept = workflow(mapped(when="length(item) > `1`", on_item_error="continue"))
    result, events = await execute(kept, {"docs": docs})
    assert result.status is ExecutionStatus.SUCCEEDED
    assert result.steps["each"].output == [{"doc": "ab", "at": 0}, None, {"doc": "abc", "at": 2}]
    (failed,) = of_type(events, EventType.STEP_FAILED, "each[1]")
    assert failed.data["error"]["type"] == "ExpressionError"
    assert "length(item) > `1`" in failed.data["error"]["message"]
    assert of_type(events, EventType.STEP_STARTED, "each[1]") == []
    (done,) = of_type(events, EventType.STEP_SUCCEEDED, "each")
    assert done.data["failed_items"] == [1]
    assert item_counts(replay(events))["each"].describe() == "map 3: 2 succeeded, 1 failed"

    result, events = await execute(workflow(mapped(when="length(item) > `1`")), {"docs": docs})
    assert result.status is ExecutionStatus.FAILED
    error = result.steps["each"].error
    assert error is not None
    assert error["type"] == "MapItemFailedError"
    assert error["message"].startswith("item 1 failed: ExpressionError: ")


# -- resume ------------------------------------------------------------------------------------


async def test_resume_runs_only_the_failed_items_again(tmp_path: Path) -> None:
    """SQLite journal: items that failed (or never started) run again on resume; succeeded ones
    are reused. (With `on_item_error` continue the map succeeds, so a resume reuses it whole.)"""
    calls: list[Any] = []

    async def counted(input: Any) -> Any:
        calls.append(input["doc"])
        return await picky(input)

    path = tmp_path / "journal.db"
    document = workflow(mapped(agent="agent", max_concurrency=3), fail_fast=False)
    document["steps"].append(
        {"id": "check", "agent": "echo", "input": "${steps.each.output}", "depends_on": ["each"]}
    )
    document["output"] = "${steps.check.output}"
    docs = ["a", "bad-b", "c", "bad-d", "e"]
    async with open_runtime(journal=path, agents={"agent": counted}) as rt:
        handle = await rt.start(document, {"docs": docs})
        failed = await handle.wait()
    assert failed.status is ExecutionStatus.FAILED
    # b failed, so the items not started by then never start.
    assert "bad-b" in calls
    assert len(calls) < len(docs)
    read = {doc for doc in calls if not doc.startswith("bad")}

    async def fixed(input: Any) -> Any:
        calls.append(input["doc"])
        return str(input["doc"]).upper()

    calls.clear()
    async with open_runtime(journal=path, agents={"agent": fixed}) as rt:
        before = await rt.journal.events(handle.execution_id)
        resumed = await rt.resume(handle.execution_id)
        result = await resumed.wait()
        events = await rt.journal.events(handle.execution_id)
    assert result.status is ExecutionStatus.SUCCEEDED
    assert sorted(calls) == sorted(set(docs) - read)
    assert result.output == ["A", "BAD-B", "C", "BAD-D", "E"]
    marker = events[len(before)]
    assert marker.type == EventType.EXECUTION_RESUMED
    assert marker.data["reused_items"] == {"each": len(read)}
    rerun = {e.step_id for e in events[len(before) :] if e.type == EventType.STEP_STARTED}
    assert rerun == {"each", "check"} | {f"each[{docs.index(doc)}]" for doc in calls}
    state = replay(events)
    assert all(state.steps[f"each[{i}]"].status is StepStatus.SUCCEEDED for i in range(5))


async def test_resume_reuses_succeeded_items_and_evaluates_skipped_ones_again(
    tmp_path: Path,
) -> None:
    """SQLite journal: on resume a filtered map reuses its succeeded items, runs the failed one
    again, and checks its `when` again for the skipped ones (which stay skipped, no agent call)."""
    calls: list[Any] = []

    async def counted(input: Any) -> Any:
        calls.append(input["doc"])
        return await picky(input)

    path = tmp_path / "journal.db"
    document = workflow(mapped(agent="agent", when="item != 'skip'", max_concurrency=1))
    document["output"] = "${steps.each.output}"
    docs = ["a", "skip", "bad", "skip"]
    async with open_runtime(journal=path, agents={"agent": counted}) as rt:
        handle = await rt.start(document, {"docs": docs})
        failed = await handle.wait()
    assert failed.status is ExecutionStatus.FAILED
    assert calls == ["a", "bad"]

    async def fixed(input: Any) -> Any:
        calls.append(input["doc"])
        return str(input["doc"]).upper()

    calls.clear()
    async with open_runtime(journal=path, agents={"agent": fixed}) as rt:
        before = await rt.journal.events(handle.execution_id)
        resumed = await rt.resume(handle.execution_id)
        result = await resumed.wait()
        events = await rt.journal.events(handle.execution_id)
    assert result.status is ExecutionStatus.SUCCEEDED
    assert calls == ["bad"]
    assert result.output == ["A", None, "BAD", None]
    after = events[len(before) :]
    assert after[0].data["reused_items"] == {"each": 1}
    assert [e.step_id for e in of_type(after, EventType.STEP_SKIPPED)] == ["each[1]", "each[3]"]
    counts = item_counts(replay(events))["each"]
    assert counts.describe() == "map 4: 2 succeeded, 2 skipped"


# -- properties --------------------------------------------------------------------------------


@st.composite
def map_cases(draw: st.DrawFn) -> dict[str, Any]:
    """A random map: its size, limits, item durations, how often each item fails, error modes,
    and the items a per-item `when` filters out (None: the map has no `when`)."""
    count = draw(st.integers(0, 12))
    filtered = st.sets(st.integers(0, max(count - 1, 0)), max_size=count)
    return {
        "count": count,
        "skipped": draw(st.none() | filtered.map(sorted)),
        "durations": draw(st.lists(st.integers(0, 2), min_size=count, max_size=count)),
        "failures": draw(st.lists(st.integers(0, 3), min_size=count, max_size=count)),
        "max_attempts": draw(st.integers(1, 3)),
        "max_concurrency": draw(st.integers(0, 4)),
        "on_item_error": draw(st.sampled_from(["fail", "continue"])),
        "fail_fast": draw(st.booleans()),
        "cut": draw(st.integers(1, 10_000)),
    }


def map_case_document(case: dict[str, Any]) -> dict[str, Any]:
    """The workflow of a random map case, its agent named `flaky`."""
    retry = {"max_attempts": case["max_attempts"], "initial_delay": 0.5, "jitter": "none"}
    step = mapped(
        agent="flaky",
        on_item_error=case["on_item_error"],
        max_concurrency=case["max_concurrency"],
        policy={"retry": retry, "circuit_breaker": None},
    )
    if case["skipped"] is not None:
        step["when"] = f"!contains(`{json.dumps(case['skipped'])}`, item)"
    return workflow(step, fail_fast=case["fail_fast"], output="${steps.each.output}")


def flaky_agent(case: dict[str, Any], calls: dict[int, int]) -> Any:
    """An agent that sleeps each item's duration and fails its first `failures[i]` attempts."""

    async def flaky(input: Any, context: AgentContext) -> Any:
        index = input["at"]
        calls[index] = calls.get(index, 0) + 1
        await trio.sleep(case["durations"][index])
        if context.attempt <= case["failures"][index]:
            raise RetryableError(f"item {index} attempt {context.attempt}")
        return index * 10

    return flaky


def check_map_run(
    case: dict[str, Any], result: ExecutionResult, events: list[Event], calls: dict[int, int]
) -> None:
    """Every item ran at most its attempt budget, the journal agrees, the output is in order."""
    count, budget = case["count"], case["max_attempts"]
    skipped = set(case["skipped"] or ())
    fails_for_good = {i for i in range(count) if case["failures"][i] >= budget} - skipped
    assert skipped.isdisjoint(calls)
    for index in skipped:
        assert of_type(events, EventType.STEP_STARTED, f"each[{index}]") == []
        assert len(of_type(events, EventType.STEP_SKIPPED, f"each[{index}]")) <= 1
    for index, made in calls.items():
        assert made <= budget
        assert len(of_type(events, EventType.ATTEMPT_STARTED, f"each[{index}]")) == made
    limit = case["max_concurrency"] or DEFAULT_MAP_CONCURRENCY
    assert peak_items(events, "each") <= limit
    map_result = result.steps["each"]
    if fails_for_good and case["on_item_error"] == "fail":
        assert map_result.status is StepStatus.FAILED
        assert result.status is ExecutionStatus.FAILED
        return
    assert calls.keys() == set(range(count)) - skipped
    expected = [None if i in fails_for_good | skipped else i * 10 for i in range(count)]
    assert map_result.status is StepStatus.SUCCEEDED
    assert result.output == expected


async def resume_from_a_cut(
    case: dict[str, Any], events: list[Event], document: dict[str, Any]
) -> tuple[ExecutionResult, dict[int, int], set[int]]:
    """Journal a prefix of `events` as an execution that died, and resume it with a fixed agent.

    Returns the result, the calls the resume made, and the items the prefix recorded succeeded.
    """
    prefix = events[: min(case["cut"], len(events) - 1)]
    finished = {
        int(event.step_id[5:-1])
        for event in prefix
        if event.type == EventType.STEP_SUCCEEDED and event.step_id and event.step_id != "each"
    }
    calls: dict[int, int] = {}
    fixed = {**case, "failures": [0] * case["count"]}
    async with open_runtime(agents={"flaky": flaky_agent(fixed, calls)}) as rt:
        record = ExecutionRecord(
            "cut", "maps", journal_document(load_workflow(document)), {"docs": case["docs"]}
        )
        await rt.journal.create_execution(record)
        for event in prefix:
            await rt.journal.append(attrs.evolve(event, execution_id="cut"))
        await rt.journal.flush()
        resumed = await rt.resume("cut")
        result = await resumed.wait()
    return result, calls, finished


@settings(max_examples=150)
@given(case=map_cases())
def test_map_properties_with_random_sizes_failures_and_cuts(case: dict[str, Any]) -> None:
    """Random maps, with or without a random per-item filter, keep every property, and resuming
    after a cut at any event runs only the unfiltered items the journal does not record as
    succeeded, each once, with the outputs in order (`null` for filtered items)."""
    case["docs"] = list(range(case["count"]))
    document = map_case_document(case)
    calls: dict[int, int] = {}

    async def main() -> tuple[ExecutionResult, list[Event]]:
        return await execute(
            document, {"docs": case["docs"]}, agents={"flaky": flaky_agent(case, calls)}
        )

    result, events = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    check_map_run(case, result, events, calls)

    async def resume() -> tuple[ExecutionResult, dict[int, int], set[int]]:
        return await resume_from_a_cut(case, events, document)

    resumed, rerun, finished = trio.run(resume, clock=trio.testing.MockClock(autojump_threshold=0))
    map_done = any(
        e.type == EventType.STEP_SUCCEEDED and e.step_id == "each"
        for e in events[: min(case["cut"], len(events) - 1)]
    )
    if map_done:
        assert rerun == {}
    else:
        skipped = set(case["skipped"] or ())
        assert set(rerun) == set(range(case["count"])) - finished - skipped
        assert all(made == 1 for made in rerun.values())
    assert resumed.status is ExecutionStatus.SUCCEEDED
    if not map_done:
        assert resumed.output == [None if i in skipped else i * 10 for i in range(case["count"])]


async def test_the_usage_of_items_counts_for_their_map_step() -> None:
    """Items' `step.usage` adds up on the map step, in the result and in the replayed journal."""

    async def costly(input: Any, context: AgentContext) -> Any:
        context.record_usage(input_tokens=10 + input["at"])
        return input["doc"]

    async with open_runtime(agents={"costly": costly}) as rt:
        handle = await rt.start(workflow(mapped(agent="costly")), {"docs": ["a", "b", "c"]})
        result = await handle.wait()
        replayed = await rt.result(handle.execution_id)
    assert result.steps["each"].usage == {"input_tokens": 33}
    assert result.usage == {"input_tokens": 33}
    assert replayed.steps["each"].usage == {"input_tokens": 33}
    assert replayed.usage == {"input_tokens": 33}


async def test_a_cancel_lets_running_items_finish_within_the_grace_and_starts_no_more(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Within the cancel's grace running items finish; queued items never start; the map ends
    cancelled."""
    document = workflow(mapped(agent="sleepy", max_concurrency=2))
    async with open_runtime(agents={"sleepy": sleepy}, cancel_grace=5) as rt:
        handle = await rt.start(document, {"docs": [1, 1, 1, 1]})
        await trio.sleep(0.5)
        assert handle.cancel("stop") is True
        result = await handle.wait()
        events = await rt.journal.events(handle.execution_id)
    assert result.status is ExecutionStatus.CANCELLED
    assert result.steps["each"].status is StepStatus.CANCELLED
    state = replay(events)
    assert state.steps["each[0]"].status is StepStatus.SUCCEEDED
    assert state.steps["each[1]"].status is StepStatus.SUCCEEDED
    assert "each[2]" not in state.steps
    assert trio.current_time() == 1.0


async def test_an_item_that_ignores_its_cancel_is_given_up_on(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An item whose agent shields itself is recorded cancelled; the execution ends on time."""

    async def stubborn(input: Any) -> Any:
        with trio.CancelScope(shield=True):
            await trio.sleep(10)
        return input["doc"]

    document = workflow(mapped(agent="stubborn"))
    async with open_runtime(agents={"stubborn": stubborn}, cancel_grace=0) as rt:
        handle = await rt.start(document, {"docs": ["a"]})
        await trio.sleep(1)
        handle.cancel("stop")
        result = await handle.wait()
        ended = trio.current_time()
        events = await rt.journal.events(handle.execution_id)
    assert result.status is ExecutionStatus.CANCELLED
    assert ended == 1.0 + FORCED_STOP_WAIT
    assert replay(events).steps["each[0]"].status is StepStatus.CANCELLED


async def test_another_step_failing_under_fail_fast_cancels_a_running_map(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Under `fail_fast` a failure elsewhere cancels the map's running items and the map."""
    document = workflow(
        mapped(agent="sleepy", max_concurrency=2),
        {"id": "wait", "agent": {"id": "sleep", "config": {"seconds": 1}}},
        {
            "id": "broken",
            "agent": {"id": "fail", "config": {"message": "no"}},
            "depends_on": ["wait"],
        },
    )
    result, events = await execute(document, {"docs": [5, 5, 5]}, agents={"sleepy": sleepy})
    assert result.status is ExecutionStatus.FAILED
    assert result.steps["broken"].status is StepStatus.FAILED
    assert result.steps["each"].status is StepStatus.CANCELLED
    state = replay(events)
    assert [state.steps[f"each[{i}]"].status for i in range(2)] == [StepStatus.CANCELLED] * 2
    assert "each[2]" not in state.steps
    assert trio.current_time() == 1.0


async def test_a_map_over_a_sub_workflow_runs_one_child_execution_per_item() -> None:
    """`for_each` on a `workflow` step: each item runs its own child execution, `ID[i]`'s."""
    inner = {
        "schema_version": "1.1",
        "name": "inner",
        "steps": [{"id": "shout", "agent": "echo", "input": "${inputs.doc}"}],
        "output": "${steps.shout.output}",
    }
    document = workflow(
        {"id": "each", "for_each": "inputs.docs", "input": {"doc": "${item}"}, "workflow": inner},
        output="${steps.each.output}",
    )
    result, events = await execute(document, {"docs": ["a", "b"]})
    assert result.status is ExecutionStatus.SUCCEEDED
    assert result.output == ["a", "b"]
    children = {e.step_id: e.data["child_id"] for e in of_type(events, EventType.CHILD_STARTED)}
    assert children == {
        "each[0]": f"{result.execution_id}.each[0]",
        "each[1]": f"{result.execution_id}.each[1]",
    }


@pytest.mark.parametrize(("cancel_at", "grace"), [(0.3, 0), (0.3, 0.5), (0.9, 0.2), (0.7, 0.3)])
async def test_a_cancelled_map_over_a_sub_workflow_ends_its_items_cancelled_not_failed(
    cancel_at: float, grace: float, autojump_clock: trio.testing.MockClock
) -> None:
    """Forced or cooperative, a cancel ends the running items `cancelled`, no attempt failed."""
    inner = {
        "schema_version": "1.1",
        "name": "inner",
        "steps": [
            {"id": "first", "agent": "sleepy", "input": {"doc": 0.6}},
            {"id": "second", "agent": "sleepy", "input": {"doc": 0.6}, "depends_on": ["first"]},
        ],
        "output": "${steps.second.output}",
    }
    document = workflow({"id": "each", "for_each": "inputs.docs", "input": {}, "workflow": inner})
    async with open_runtime(agents={"sleepy": sleepy}, cancel_grace=grace) as rt:
        handle = await rt.start(document, {"docs": [1, 2]})
        await trio.sleep(cancel_at)
        handle.cancel("stop")
        result = await handle.wait()
        events = await rt.journal.events(handle.execution_id)
    assert result.status is ExecutionStatus.CANCELLED
    state = replay(events)
    assert [state.steps[f"each[{i}]"].status for i in range(2)] == [StepStatus.CANCELLED] * 2
    assert of_type(events, EventType.ATTEMPT_FAILED) == []


async def test_maps_whose_coordinators_use_a_whole_spawn_pass_still_start_their_items(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """`SPAWNS_PER_PASS` maps at once: their waiting coordinators hold every actor the first pass
    spawned, and the items still get actors of their own on the next pass."""
    steps = [mapped(f"each{n}") for n in range(SPAWNS_PER_PASS)]
    document = workflow(*steps)
    with trio.fail_after(10):
        result, _ = await execute(document, {"docs": ["a", "b"]})
    assert result.status is ExecutionStatus.SUCCEEDED
    assert result.steps["each0"].output == [{"doc": "a", "at": 0}, {"doc": "b", "at": 1}]


async def test_a_resume_whose_for_each_yields_another_count_reuses_nothing_and_says_why(
    tmp_path: Path,
) -> None:
    """Items are matched by position: with another number of items the map fails, naming both."""
    path = tmp_path / "journal.db"
    document = workflow(
        {
            "id": "each",
            "agent": "agent",
            "for_each": "inputs.api_key",
            "max_concurrency": 1,
            "input": {"doc": "${item}"},
            "policy": {"retry": {"max_attempts": 1}, "circuit_breaker": None},
        },
        inputs={"type": "object", "properties": {"api_key": {"type": "array"}}},
    )
    async with open_runtime(journal=path, agents={"agent": picky}) as rt:
        handle = await rt.start(document, {"api_key": ["k0", "k1", "bad-k2", "k3"]})
        assert (await handle.wait()).status is ExecutionStatus.FAILED
    async with open_runtime(journal=path, agents={"agent": picky}) as rt:
        resumed = await rt.resume(handle.execution_id, inputs={"api_key": ["x"]})
        result = await resumed.wait()
    assert result.status is ExecutionStatus.FAILED
    error = result.steps["each"].error
    assert error is not None
    assert error["type"] == "MapItemsError"
    assert error["message"] == (
        "for_each yielded 1 items, but the run being resumed had 4: its 2 finished items cannot"
        " be matched to these (resume with the inputs it ran with)"
    )

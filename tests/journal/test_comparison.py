"""Two executions side by side: steps lined up in workflow order, differences and diffs."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
from event_scripts import Script
from hypothesis import given
from hypothesis import strategies as st
from time_travel_runs import CHAIN, run, runtime_on

from orchestr8._journal._comparison import (
    MAX_DIFF_LINES,
    MAX_DIFFED_LINES,
    ComparedExecution,
    compare_executions,
    json_diff,
    step_order,
)
from orchestr8._journal._records import ExecutionRecord


def test_equal_values_have_no_diff() -> None:
    """`json_diff` is None for equal values, whatever their key order; `true` is not `1`."""
    assert json_diff({"a": 1, "b": [1]}, {"b": [1], "a": 1}) is None
    assert json_diff(True, 1) == "--- a\n+++ b\n@@ -1 +1 @@\n-true\n+1"


def test_a_changed_value_is_a_unified_diff_of_pretty_json() -> None:
    """The diff names both sides and marks the changed lines."""
    diff = json_diff({"a": 1, "b": 2}, {"a": 1, "b": 3}, labels=("x", "y"))
    assert diff == '--- x\n+++ y\n@@ -1,4 +1,4 @@\n {\n   "a": 1,\n-  "b": 2\n+  "b": 3\n }'


def test_a_huge_diff_is_cut_and_says_how_much_it_left_out() -> None:
    """At most MAX_DIFF_LINES lines, then a line counting the rest."""
    diff = json_diff([f"a{n}" for n in range(1000)], [f"b{n}" for n in range(1000)])
    assert diff is not None
    lines = diff.splitlines()
    assert len(lines) == MAX_DIFF_LINES + 1
    assert lines[-1].startswith("... ")
    assert lines[-1].endswith(" more diff lines")


def test_huge_values_are_compared_only_so_far() -> None:
    """Values longer than MAX_DIFFED_LINES are diffed on their start, which the diff says."""
    long = list(range(MAX_DIFFED_LINES + 10))
    diff = json_diff(long, [*long[:-1], -1])
    assert diff is not None
    assert diff == f"... they differ after line {MAX_DIFFED_LINES} of their pretty JSON"
    changed = json_diff(long, [-1, *long[1:]])
    assert changed is not None
    assert "-  0," in changed
    assert changed.endswith("were compared")


def test_step_orders_are_merged_keeping_each_workflows_order() -> None:
    """Steps of the second side only go right after the step they follow there."""
    assert step_order(["a", "b", "c"], ["a", "x", "c", "y"]) == ["a", "x", "b", "c", "y"]
    assert step_order([], ["p", "q"]) == ["p", "q"]
    assert step_order(["a"], ["z", "a"]) == ["z", "a"]


@given(
    st.lists(st.sampled_from("abcdefg"), unique=True),
    st.lists(st.sampled_from("abcdefg"), unique=True),
)
def test_the_merged_order_holds_every_step_once(first: list[str], second: list[str]) -> None:
    """The union of both sides, each id once, the first side's order kept."""
    merged = step_order(first, second)
    assert sorted(merged) == sorted(set(first) | set(second))
    assert [step for step in merged if step in first] == first


def execution(execution_id: str, steps: list[str], outputs: dict[str, Any]) -> ComparedExecution:
    """A finished execution of `steps` whose steps return `outputs` (absent: never started)."""
    workflow = {"name": "w", "steps": [{"id": step, "agent": "echo"} for step in steps]}
    record = ExecutionRecord(execution_id, "w", workflow, {"topic": "x"})
    script = Script().add("execution.started")
    for step, output in outputs.items():
        script.add("step.started", step).add("attempt.started", step, 1)
        script.add("step.succeeded", step, 1, output=output)
    script.add("execution.succeeded", output=outputs)
    events = [attrs.evolve(event, execution_id=execution_id) for event in script.events]
    return ComparedExecution(record, events)


def test_an_execution_compared_with_itself_shows_no_difference() -> None:
    """Same workflow, same inputs, every step equal."""
    one = execution("one", ["a", "b"], {"a": 1, "b": {"k": [1, 2]}})
    document = compare_executions(one, one)
    assert document["same"] is True
    assert (document["same_workflow"], document["workflow_diff"]) == (True, None)
    assert (document["same_inputs"], document["inputs_diff"]) == (True, None)
    assert document["differing_steps"] == 0
    assert [step["output"] for step in document["steps"]] == ["equal", "equal"]
    assert document["a"] == document["b"]


def test_a_changed_output_is_diffed_and_steps_of_one_side_are_marked() -> None:
    """Across different workflows: a changed output has its diff; a lone step names its side."""
    one = execution("one", ["a", "b"], {"a": 1, "b": 2})
    two = execution("two", ["a", "c"], {"a": 5, "c": 3})
    document = compare_executions(one, two)
    assert document["same"] is False
    assert [step["step_id"] for step in document["steps"]] == ["a", "c", "b"]
    a, c, b = document["steps"]
    assert (a["in"], a["output"], a["differs"]) == ("both", "changed", True)
    assert a["output_diff"] == "--- a a\n+++ b a\n@@ -1 +1 @@\n-1\n+5"
    assert (c["in"], c["a"], c["output"]) == ("b", None, "only in b")
    assert c["b"]["status"] == "succeeded"
    assert (b["in"], b["b"], b["output"]) == ("a", None, "only in a")
    assert document["differing_steps"] == 3
    assert document["same_workflow"] is False
    assert '-      "id": "b"' in document["workflow_diff"]
    assert document["same_inputs"] is True
    assert document["output_diff"] is not None


def test_a_declared_step_that_never_ran_is_pending_not_absent() -> None:
    """A step both workflows declare, run on one side only, is `pending` on the other."""
    one = execution("one", ["a", "b"], {"a": 1})
    two = execution("two", ["a", "b"], {"a": 1, "b": 2})
    [_, b] = compare_executions(one, two)["steps"]
    assert (b["in"], b["a"]["status"], b["b"]["status"], b["differs"]) == (
        "both",
        "pending",
        "succeeded",
        True,
    )


def test_a_step_one_side_has_not_finished_is_not_called_changed() -> None:
    """Its output is not there yet: the verdict names the side, with no diff to read."""
    one = execution("one", ["a", "b"], {"a": 1})
    two = execution("two", ["a", "b"], {"a": 1, "b": 2})
    [_, b] = compare_executions(one, two)["steps"]
    assert (b["output"], b["output_diff"], b["differs"]) == ("not finished in a", None, True)
    [_, b] = compare_executions(two, one)["steps"]
    assert b["output"] == "not finished in b"
    [a, _] = compare_executions(one, one)["steps"]
    assert a["output"] == "equal"


def test_the_status_to_show_overrides_the_replayed_one() -> None:
    """A side given a status (`interrupted`) shows it instead of its replayed one."""
    one = execution("one", ["a"], {})
    shown = ComparedExecution(one.record, one.events, "interrupted")
    document = compare_executions(one, shown)
    assert (document["a"]["status"], document["b"]["status"]) == ("succeeded", "interrupted")
    assert document["same"] is False


@pytest.mark.parametrize("store", ["memory", "sqlite", "postgresql"])
async def test_two_real_runs_differ_where_their_inputs_made_them(
    store: str,
    tmp_path: Path,
    autojump_clock: trio.testing.MockClock,
    request: pytest.FixtureRequest,
) -> None:
    """On every journal: other inputs change the outputs they reach; itself, nothing."""
    if store == "postgresql":
        store = request.getfixturevalue("postgres_url")
    changed = copy.deepcopy(CHAIN)
    changed["steps"][2]["input"] = {"item": "${item}"}
    async with runtime_on(store, tmp_path) as runtime:
        first_id = await run(runtime, CHAIN, {"n": 1, "items": [1, 2]})
        second_id = await run(runtime, changed, {"n": 2, "items": [1, 2, 3]})
        sides = [
            ComparedExecution(
                await runtime.journal.get_execution(execution_id),
                await runtime.journal.events(execution_id),
            )
            for execution_id in (first_id, second_id)
        ]
    assert compare_executions(sides[0], sides[0])["same"] is True
    document = compare_executions(*sides)
    steps = {step["step_id"]: step for step in document["steps"]}
    assert list(steps) == ["flaky", "ask", "each", "done"]
    assert steps["flaky"]["output"] == "changed"
    assert (steps["flaky"]["a"]["attempts"], steps["flaky"]["b"]["attempts"]) == (2, 2)
    assert steps["ask"]["a"]["usage"] == {"input_tokens": 3, "output_tokens": 2}
    assert (steps["each"]["a"]["items"]["count"], steps["each"]["b"]["items"]["count"]) == (2, 3)
    assert steps["done"]["output"] == "equal"
    assert not steps["done"]["differs"]
    assert document["inputs_diff"] is not None
    assert document["workflow_diff"] is not None
    assert document["a"]["usage"] == document["b"]["usage"]


def test_a_loop_step_shows_its_iterations_on_each_side() -> None:
    """A loop's progress is under its step; its iterations (`ID#k`) are not rows."""
    record = ExecutionRecord("one", "w", {"steps": [{"id": "loop"}]})
    script = Script().add("execution.started").add("step.started", "loop", max_iterations=3)
    script.add("step.started", "loop#1").add("step.succeeded", "loop#1", output=1)
    script.add("iteration.finished", "loop", iteration=1, until=True)
    script.add("step.succeeded", "loop", output=1)
    one = ComparedExecution(record, script.events)
    [row] = compare_executions(one, one)["steps"]
    assert row["step_id"] == "loop"
    assert row["a"]["loop"] == {"iterations": 1, "max_iterations": 3, "until_held": True}


def _mapped(retried: int | None, outputs: list[int]) -> ComparedExecution:
    """A map `each` of len(outputs) items; item `retried` (if any) took two attempts."""
    record = ExecutionRecord("run-1", "w", {"steps": [{"id": "each"}]})
    script = Script().add("execution.started").add("step.started", "each")
    script.add("map.started", "each", count=len(outputs))
    for index, output in enumerate(outputs):
        unit = f"each[{index}]"
        script.add("step.started", unit).add("attempt.started", unit, 1)
        if index == retried:
            script.add("attempt.failed", unit, 1, error={"type": "E"}).add(
                "attempt.started", unit, 2
            )
        script.add("step.succeeded", unit, 2 if index == retried else 1, output=output)
    script.add("step.succeeded", "each", output=outputs)
    return ComparedExecution(record, script.events)


def test_a_map_differs_by_the_items_that_differ_even_with_equal_outputs() -> None:
    """A retried item, or another item output, is named by index and marks its map step."""
    plain = _mapped(None, [1, 2, 3])
    [row] = compare_executions(plain, _mapped(1, [1, 2, 3]))["steps"]
    assert (row["output"], row["items_differ"], row["differs"]) == ("equal", [1], True)
    [row] = compare_executions(plain, _mapped(None, [1, 5, 3, 4]))["steps"]
    assert (row["items_differ"], row["differs"]) == ([1, 3], True)
    [same] = compare_executions(plain, plain)["steps"]
    assert (same["items_differ"], same["differs"]) == ([], False)


def test_a_loop_counts_its_iterations_tokens_and_names_the_iterations_that_differ() -> None:
    """A loop step's tokens are its iterations'; iterations are compared by number."""
    record = ExecutionRecord("run-1", "w", {"steps": [{"id": "loop"}]})

    def looped(outputs: list[int]) -> ComparedExecution:
        script = Script().add("execution.started").add("step.started", "loop", max_iterations=5)
        for number, output in enumerate(outputs, start=1):
            unit = f"loop#{number}"
            script.add("step.started", unit).add("step.usage", unit, 1, output_tokens=output)
            script.add("step.succeeded", unit, output=output)
            script.add("iteration.finished", "loop", iteration=number, until=False)
        script.add("step.succeeded", "loop", output=outputs[-1])
        return ComparedExecution(record, script.events)

    [row] = compare_executions(looped([1, 2, 3]), looped([1, 4]))["steps"]
    assert (row["a"]["usage"], row["b"]["usage"]) == ({"output_tokens": 6}, {"output_tokens": 5})
    assert (row["iterations_differ"], row["differs"]) == ([2, 3], True)
    assert "items_differ" not in row


def test_a_result_a_fork_copied_from_the_other_side_is_no_difference() -> None:
    """A fork's copied step (and item) did not run: its missing attempts do not count as one.

    Compared with another execution than its source, the same copy differs as usual.
    """
    workflow = {"steps": [{"id": "fetch"}, {"id": "each"}]}
    source = Script().add("execution.started")
    source.add("step.started", "fetch").add("attempt.started", "fetch", 1)
    source.add("step.succeeded", "fetch", 1, output=7)
    source.add("step.started", "each").add("map.started", "each", count=1)
    source.add("step.started", "each[0]").add("attempt.started", "each[0]", 1)
    source.add("step.succeeded", "each[0]", 1, output=1).add("step.succeeded", "each", output=[1])
    copied = {"execution_id": "source", "seq": 4}
    fork = Script().add("execution.started")
    fork.add("step.succeeded", "fetch", output=7, reused_from=copied)
    fork.add("step.started", "each").add("map.started", "each", count=1)
    fork.add("step.succeeded", "each[0]", output=1, reused_from=copied)
    fork.add("step.succeeded", "each", output=[1])
    first = ComparedExecution(ExecutionRecord("source", "w", workflow), source.events)
    second = ComparedExecution(ExecutionRecord("fork", "w", workflow), fork.events)
    fetch, each = compare_executions(first, second)["steps"]
    assert (fetch["reused_by"], fetch["differs"]) == ("b", False)
    assert (fetch["a"]["attempts"], fetch["b"]["attempts"]) == (1, 0)
    assert (each["items_differ"], each["differs"]) == ([], False)
    assert compare_executions(second, first)["steps"][0]["reused_by"] == "a"
    other = ComparedExecution(ExecutionRecord("other", "w", workflow), source.events)
    fetch, each = compare_executions(other, second)["steps"]
    assert (fetch["reused_by"], fetch["differs"], each["items_differ"]) == (None, True, [0])


def test_a_sub_workflow_step_names_its_child_on_each_side() -> None:
    """The child executions are named, so they can be compared in turn."""
    record = ExecutionRecord("one", "w", {"steps": [{"id": "sub"}]})
    script = Script().add("execution.started").add("step.started", "sub")
    script.add("child.started", "sub", child_id="one.sub").add("step.succeeded", "sub", output=1)
    one = ComparedExecution(record, script.events)
    [row] = compare_executions(one, one)["steps"]
    assert row["a"]["child"] == row["b"]["child"] == {"execution_id": "one.sub"}

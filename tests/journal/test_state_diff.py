"""What changed between two events: each unit that changed, the gates, tokens and events between."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import trio
from event_scripts import Script
from hypothesis import given
from hypothesis import strategies as st
from time_travel_runs import CHAIN, run, runtime_on

from orchestr8._errors import EventOutOfRangeError
from orchestr8._journal._records import ExecutionRecord
from orchestr8._journal._replay import replay
from orchestr8._journal._state_at import state_document
from orchestr8._journal._state_diff import state_diff, unit_order

RECORD = ExecutionRecord("run-1", "w", {"steps": [{"id": "a"}, {"id": "b"}]})


def scripted() -> Script:
    script = Script().add("execution.started").add("step.started", "a")
    script.add("attempt.started", "a", 1).add("attempt.failed", "a", 1, error={"type": "E"})
    script.add("retry.scheduled", "a", 1).add("attempt.started", "a", 2)
    script.add("step.usage", "a", 2, input_tokens=4).add("step.succeeded", "a", 2, output=[1])
    script.add("step.started", "b").add("execution.succeeded", output=[1])
    return script


def test_a_unit_that_changed_lists_its_old_and_new_fields() -> None:
    """From the first attempt to the success: status, attempts, output and error, old → new."""
    diff = state_diff(RECORD, scripted().events, 3, 8)
    [change] = diff.units
    assert change.unit_id == "a"
    assert change.changed == ("status", "attempts", "output")
    assert change.before == {"status": "running", "attempts": 1, "output": None, "error": None}
    assert change.after == {"status": "succeeded", "attempts": 2, "output": [1], "error": None}
    assert diff.usage == {"input_tokens": 4}
    assert diff.event_count == 5
    assert dict(diff.event_types) == {
        "attempt.failed": 1,
        "retry.scheduled": 1,
        "attempt.started": 1,
        "step.usage": 1,
        "step.succeeded": 1,
    }
    assert diff.status == ("running", "running")


def test_a_unit_new_since_the_earlier_event_has_no_old_fields() -> None:
    """A step that had not started has `before` None and every field counted as changed."""
    diff = state_diff(RECORD, scripted().events, 8, 10)
    [change] = diff.units
    assert (change.unit_id, change.before, change.changed) == (
        "b",
        None,
        ("status", "attempts", "output", "error"),
    )
    assert diff.status == ("running", "succeeded")
    document = diff.to_json()
    assert document["from"] == 8
    assert document["to"] == 10
    assert document["status"] == {"before": "running", "after": "succeeded"}
    assert document["units"] == [
        {
            "unit": "b",
            "changed": ["status", "attempts", "output", "error"],
            "before": None,
            "after": {"status": "running", "attempts": 0, "output": None, "error": None},
        }
    ]
    assert document["events"] == {
        "count": 2,
        "types": {"step.started": 1, "execution.succeeded": 1},
    }
    assert document["gates"] == {"opened": [], "resolved": {}, "answers": {}}


def test_the_same_event_twice_changes_nothing() -> None:
    """The diff of an event with itself is empty: no unit, no tokens, no events."""
    diff = state_diff(RECORD, scripted().events, 4, 4)
    assert (diff.units, dict(diff.usage), diff.event_count) == ((), {}, 0)


@pytest.mark.parametrize(
    ("first", "second", "message"),
    [
        (0, 3, r"execution run-1 has events 1\.\.10"),
        (3, 11, r"execution run-1 has events 1\.\.10"),
        (5, 3, "the earlier event comes first: 5 is after 3"),
    ],
)
def test_seqs_out_of_range_or_out_of_order_are_refused(
    first: int, second: int, message: str
) -> None:
    """Either seq outside the events, or the later one first, is an error saying which."""
    with pytest.raises(EventOutOfRangeError, match=message):
        state_diff(RECORD, scripted().events, first, second)


@pytest.mark.parametrize(("first", "second"), [(-1, 5), (0, 5), (-5, 2), (3, 20)])
def test_out_of_range_names_the_executions_whole_range_whatever_was_read(
    first: int, second: int
) -> None:
    """With only the events up to SEQ_B read, the error still names 1..the last seq."""
    events = scripted().events[: max(first, second, 1)]
    with pytest.raises(EventOutOfRangeError, match=r"^execution run-1 has events 1\.\.10$"):
        state_diff(RECORD, events, first, second, last_seq=10)


def test_items_and_iterations_are_listed_by_index_whatever_order_they_finished_in() -> None:
    """Steps in workflow order, each followed by its items by index and iterations by number."""
    record = ExecutionRecord("run-1", "w", {"steps": [{"id": "loop"}, {"id": "each"}]})
    script = Script().add("execution.started")
    for unit in ["each", "each[10]", "extra", "each[2]", "loop", "loop#10", "each[0]", "loop#2"]:
        script.add("step.started", unit)
    for unit in ["loop#2", "each[2]", "each[0]", "loop#10", "each[10]"]:
        script.add("step.succeeded", unit, output=unit)
    units = [change.unit_id for change in state_diff(record, script.events, 9, 14).units]
    assert units == ["loop#2", "loop#10", "each[0]", "each[2]", "each[10]"]
    everything = state_diff(record, script.events, 1, 14).to_json()["units"]
    assert [change["unit"] for change in everything] == [
        "loop",
        "loop#2",
        "loop#10",
        "each",
        "each[0]",
        "each[2]",
        "each[10]",
        "extra",
    ]


@given(indices=st.permutations(range(12)), iterations=st.permutations(range(1, 12)))
def test_any_finish_order_is_listed_in_index_order(
    indices: list[int], iterations: list[int]
) -> None:
    """Whatever order items and iterations come in, `unit_order` puts them by number."""
    units = [f"m[{index}]" for index in indices] + [f"r#{number}" for number in iterations]
    assert unit_order(["r", "m"], [*units, "m", "r"]) == [
        "r",
        *(f"r#{number}" for number in range(1, 12)),
        "m",
        *(f"m[{index}]" for index in range(12)),
    ]


STEP_EVENTS = [
    "step.started",
    "attempt.started",
    "attempt.failed",
    "retry.scheduled",
    "step.succeeded",
    "step.failed",
    "step.skipped",
    "step.cancelled",
]
EXECUTION_EVENTS = [
    "execution.resumed",
    "execution.waiting",
    "execution.failed",
    "execution.succeeded",
]


@st.composite
def event_scripts(draw: st.DrawFn) -> Script:
    """Random, not always sensible, event sequences over a few steps, items and resumes."""
    script = Script().add("execution.started")
    units = st.sampled_from(["a", "b", "each", "each[0]", "each[1]", "loop#1"])
    for _ in range(draw(st.integers(0, 30))):
        if draw(st.integers(0, 9)) == 0:
            script.add(draw(st.sampled_from(EXECUTION_EVENTS)))
            continue
        if draw(st.integers(0, 5)) == 0:
            gate = draw(st.sampled_from(["g", "each[0]"]))
            if draw(st.booleans()):
                script.add("gate.opened", gate, prompt="?", reopened=draw(st.booleans()))
            else:
                script.add("gate.resolved", gate, approved=draw(st.booleans()), by="ann")
            continue
        kind, unit = draw(st.sampled_from(STEP_EVENTS)), draw(units)
        data: dict[str, Any] = {}
        if kind == "step.succeeded":
            data["output"] = draw(st.integers(0, 2))
        elif kind in ("step.failed", "attempt.failed"):
            data["error"] = {"type": "E", "message": str(draw(st.integers(0, 2)))}
        attempt = draw(st.integers(1, 3)) if kind.startswith("attempt") else None
        script.add(kind, unit, attempt, **data)
    return script


@given(script=event_scripts(), data=st.data())
def test_the_changes_applied_to_the_earlier_state_give_the_later_one(
    script: Script, data: st.DataObject
) -> None:
    """For any two events n <= m: the statuses at n, updated by the diff, are those at m."""
    events = script.events
    first = data.draw(st.integers(1, len(events)))
    second = data.draw(st.integers(first, len(events)))
    diff = state_diff(RECORD, events, first, second)
    statuses = {unit: str(step.status) for unit, step in replay(events[:first]).steps.items()}
    for change in diff.units:
        assert change.before is None or change.before["status"] == statuses[change.unit_id]
        statuses[change.unit_id] = change.after["status"]
    later = replay(events[:second])
    assert statuses == {unit: str(step.status) for unit, step in later.steps.items()}
    assert diff.status == (str(replay(events[:first]).status), str(later.status))
    assert sum(diff.event_types.values()) == diff.event_count == second - first
    earlier = replay(events[:first]).gates
    open_gates = {gate_id for gate_id, gate in earlier.items() if gate.is_open}
    open_gates = (open_gates - set(diff.gates_resolved)) | set(diff.gates_opened)
    assert open_gates == {gate_id for gate_id, gate in later.gates.items() if gate.is_open}


def test_gates_opened_and_resolved_in_between_are_named() -> None:
    """A gate that opened is listed as opened; one answered or closed, with its new status."""
    script = Script().add("execution.started").add("gate.opened", "early", prompt="?")
    script.add("gate.opened", "late", prompt="?").add("gate.resolved", "early", approved=False)
    script.add("gate.opened", "quick", prompt="?").add("gate.resolved", "quick", approved=True)
    script.add("execution.failed", error={"type": "E"})
    diff = state_diff(RECORD, script.events, 2, 4)
    assert (diff.gates_opened, dict(diff.gates_resolved)) == (("late",), {"early": "rejected"})
    diff = state_diff(RECORD, script.events, 4, 7)
    assert (diff.gates_opened, dict(diff.gates_resolved)) == (
        (),
        {"late": "closed", "quick": "approved"},
    )
    assert diff.to_json()["gates"] == {
        "opened": [],
        "resolved": {"late": "closed", "quick": "approved"},
        "answers": {"quick": {"approved": True}},
    }


@pytest.mark.parametrize("store", ["memory", "sqlite", "postgresql"])
async def test_the_whole_of_a_real_run_is_one_diff(
    store: str,
    tmp_path: Path,
    autojump_clock: trio.testing.MockClock,
    request: pytest.FixtureRequest,
) -> None:
    """On every journal, from the first event to the last every unit appears, tokens counted."""
    if store == "postgresql":
        store = request.getfixturevalue("postgres_url")
    async with runtime_on(store, tmp_path) as runtime:
        execution_id = await run(runtime, CHAIN, {"n": 1, "items": [1, 2]})
        record = await runtime.journal.get_execution(execution_id)
        events = await runtime.journal.events(execution_id)
    diff = state_diff(record, events, 1, len(events))
    assert sorted(change.unit_id for change in diff.units) == [
        "ask",
        "done",
        "each",
        "each[0]",
        "each[1]",
        "flaky",
    ]
    assert all(change.before is None for change in diff.units)
    assert diff.status == ("running", "succeeded")
    assert diff.usage == {"input_tokens": 3, "output_tokens": 2}


@pytest.mark.parametrize("store", ["memory", "sqlite", "postgresql"])
async def test_a_real_gate_is_open_at_its_opening_and_answered_in_the_diff_after(
    store: str,
    tmp_path: Path,
    autojump_clock: trio.testing.MockClock,
    request: pytest.FixtureRequest,
) -> None:
    """examples/approval.json answered: open right after gate.opened, approved by the end."""
    if store == "postgresql":
        store = request.getfixturevalue("postgres_url")
    workflow = json.loads((Path(__file__).parents[2] / "examples" / "approval.json").read_text())
    # No timeout: the autojump clock would jump past it while SQLite writes in its thread.
    del workflow["steps"][1]["approval"]["timeout"]
    async with runtime_on(store, tmp_path) as runtime:
        handle = await runtime.start(workflow, {})
        await handle.wait_blocked_on_gates()
        assert handle.gates is not None
        answer = {"approve": True, "input": {"amount": 20}, "reason": None, "by": "ann"}
        await handle.gates.answer("review", answer)
        await handle.wait()
        await runtime.journal.flush()
        record = await runtime.journal.get_execution(handle.execution_id)
        events = await runtime.journal.events(handle.execution_id)
    opened = next(event.seq for event in events if event.type == "gate.opened")
    at_opening = state_document(record, events[:opened], last_seq=len(events))
    assert at_opening["gates"]["review"]["status"] == "open"
    assert at_opening["gates"]["review"]["prompt"] == "Refund ada? Proposed amount: 25"
    assert at_opening["steps"]["pay"]["status"] == "pending"
    diff = state_diff(record, events, opened, len(events))
    assert (diff.gates_opened, dict(diff.gates_resolved)) == ((), {"review": "approved"})
    assert diff.status == ("running", "succeeded")
    assert {change.unit_id for change in diff.units} == {"review", "pay"}

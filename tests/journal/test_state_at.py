"""Time travel: the state right after one event is a replay of the events up to it."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
import trio
from event_scripts import Script
from time_travel_runs import CHAIN, run, runtime_on

from orchestr8._errors import EventOutOfRangeError
from orchestr8._journal._records import ExecutionRecord
from orchestr8._journal._replay import replay
from orchestr8._journal._state_at import (
    check_seq,
    parse_moment,
    seq_at_time,
    shown_step_ids,
    state_document,
)

UTC = datetime.UTC


def test_a_seq_in_range_is_returned_as_is() -> None:
    """`check_seq` accepts 1 through the last seq."""
    assert check_seq("abc", 412, 1) == 1
    assert check_seq("abc", 412, 412) == 412


@pytest.mark.parametrize("seq", [0, -1, 413, 900])
def test_a_seq_out_of_range_names_the_range_the_execution_has(seq: int) -> None:
    """Outside 1..last the error names the execution and its range, and keeps them."""
    with pytest.raises(EventOutOfRangeError, match=r"^execution abc has events 1\.\.412$") as e:
        check_seq("abc", 412, seq)
    assert (e.value.execution_id, e.value.last_seq) == ("abc", 412)


def test_an_execution_without_events_says_so() -> None:
    """An execution recorded but not started yet has no event to travel to."""
    with pytest.raises(EventOutOfRangeError, match="execution abc has no events yet"):
        check_seq("abc", 0, 1)


def test_moments_are_read_as_iso_times_and_naive_ones_as_local() -> None:
    """`Z` and offsets are kept; a time without one is local; anything else is None."""
    assert parse_moment("2025-01-01T00:00:05Z") == datetime.datetime(
        2025, 1, 1, 0, 0, 5, tzinfo=UTC
    )
    local = parse_moment("2025-01-01 10:00:00")
    assert local is not None
    assert local.tzinfo is not None
    assert local == datetime.datetime(2025, 1, 1, 10).astimezone()
    assert parse_moment("soon") is None


def test_a_moment_picks_the_last_event_recorded_by_then() -> None:
    """Between two events the state is after the earlier one; at an event, after that one."""
    script = Script().add("execution.started").add("step.started", "a").add("step.succeeded", "a")
    events = script.events  # recorded at :01, :02 and :03
    at = datetime.datetime(2025, 1, 1, 0, 0, 2, 500_000, tzinfo=UTC)
    assert seq_at_time("run-1", events, at) == 2
    assert seq_at_time("run-1", events, at.replace(second=3, microsecond=0)) == 3
    assert seq_at_time("run-1", events, at.replace(year=2030)) == 3


def test_a_moment_before_the_first_event_names_when_the_events_were_recorded() -> None:
    """Too early (or no events at all) is an error naming the first and last event's times."""
    events = Script().add("execution.started").add("execution.succeeded").events
    early = datetime.datetime(2024, 1, 1, tzinfo=UTC)
    with pytest.raises(EventOutOfRangeError) as caught:
        seq_at_time("run-1", events, early)
    assert str(caught.value) == (
        "execution run-1 has events from 2025-01-01T00:00:01.000Z (seq 1) "
        "to 2025-01-01T00:00:02.000Z (seq 2)"
    )
    with pytest.raises(EventOutOfRangeError, match="has no events yet"):
        seq_at_time("run-1", [], early)


def test_the_state_after_an_event_is_what_the_events_up_to_it_say() -> None:
    """Statuses, attempts, outputs and tokens are those of the prefix; later steps are pending."""
    record = ExecutionRecord("run-1", "w", {"steps": [{"id": "a"}, {"id": "b"}]}, {"x": 1})
    script = Script().add("execution.started").add("step.started", "a")
    script.add("attempt.started", "a", 1).add("step.usage", "a", 1, input_tokens=5)
    script.add("step.succeeded", "a", 1, output={"y": 2}).add("step.started", "b")
    script.add("attempt.started", "b", 1).add("execution.succeeded", output=1)
    document = state_document(record, script.events[:5], last_seq=8)
    assert document["at"] == 5
    assert document["at_type"] == "step.succeeded"
    assert document["at_time"] == "2025-01-01T00:00:05.000Z"
    assert document["last_seq"] == 8
    assert document["status"] == "running"
    assert document["duration"] == 4.0
    assert document["usage"] == {"input_tokens": 5}
    assert document["inputs"] == {"x": 1}
    assert document["steps"]["a"] == {
        "status": "succeeded",
        "attempts": 1,
        "duration": 3.0,
        "output": {"y": 2},
        "error": None,
        "reason": None,
        "usage": {"input_tokens": 5},
    }
    assert document["steps"]["b"]["status"] == "pending"
    assert document["gates"] == {}
    assert state_document(record, script.events, last_seq=8)["status"] == "succeeded"


def test_before_any_event_the_state_is_empty() -> None:
    """With no events yet the document is at seq 0, pending, every declared step pending."""
    record = ExecutionRecord("run-1", "w", {"steps": [{"id": "a"}]})
    document = state_document(record, [], last_seq=0)
    assert (document["at"], document["at_time"], document["at_type"]) == (0, None, None)
    assert (document["status"], document["duration"]) == ("pending", None)
    assert document["steps"]["a"]["status"] == "pending"


def test_loops_maps_children_and_parents_are_shown_as_inspect_shows_them() -> None:
    """Iterations follow their loop, items are counted under their map, a child is named."""
    workflow = {"steps": [{"id": "loop"}, {"id": "each"}, {"id": "sub"}]}
    record = ExecutionRecord("run-1", "w", workflow, parent_id="up", parent_step="s")
    script = Script().add("execution.started").add("step.started", "loop", max_iterations=3)
    script.add("step.started", "loop#1").add("step.succeeded", "loop#1", output=1)
    script.add("iteration.finished", "loop", iteration=1, until=False)
    script.add("step.started", "each").add("map.started", "each", count=2)
    script.add("step.started", "each[0]").add("step.succeeded", "each[0]", output=0)
    script.add("step.started", "sub").add("child.started", "sub", child_id="run-1.sub")
    document = state_document(record, script.events, last_seq=11)
    assert list(document["steps"]) == ["loop", "loop#1", "each", "sub"]
    assert document["steps"]["loop"]["loop"] == {
        "iterations": 1,
        "max_iterations": 3,
        "until_held": False,
    }
    assert document["steps"]["each"]["items"]["succeeded"] == 1
    assert document["steps"]["each"]["items"]["count"] == 2
    assert document["steps"]["sub"]["child"] == {"execution_id": "run-1.sub"}
    assert document["parent"] == {"execution_id": "up", "step_id": "s"}


def test_steps_not_in_the_workflow_come_after_the_declared_ones() -> None:
    """A unit the document does not declare (a replacement's) is shown after the declared."""
    record = ExecutionRecord("run-1", "w", {"steps": [{"id": "a"}, "not a step"]})
    script = Script().add("execution.started").add("step.started", "extra")
    assert shown_step_ids(record, replay(script.events), {}) == ["a", "extra"]


@pytest.mark.parametrize("store", ["memory", "sqlite"])
async def test_every_prefix_of_a_real_run_replays_to_its_state(
    store: str, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """On both journals: a retried step, tokens and a map, seen at a few points of their run."""
    async with runtime_on(store, tmp_path) as runtime:
        execution_id = await run(runtime, CHAIN, {"n": 7, "items": ["x", "y"]})
        record = await runtime.journal.get_execution(execution_id)
        last = await runtime.journal.last_seq(execution_id)
        events = await runtime.journal.events(execution_id)
        first = state_document(
            record, await runtime.journal.events(execution_id, limit=1), last_seq=last
        )
        assert first["status"] == "running"
        assert {step["status"] for step in first["steps"].values()} == {"pending"}
        failed_once = next(event.seq for event in events if event.type == "attempt.failed")
        retrying = state_document(record, events[:failed_once], last_seq=last)
        assert retrying["steps"]["flaky"]["attempts"] == 1
        assert retrying["steps"]["flaky"]["error"]["type"] == "RetryableError"
        end = state_document(record, events, last_seq=last)
        assert end["at"] == last
        assert end["status"] == "succeeded"
        assert end["output"] == {"ask": {"n": 7}}
        assert end["steps"]["flaky"]["attempts"] == 2
        assert end["steps"]["ask"]["usage"] == {"input_tokens": 3, "output_tokens": 2}
        assert end["usage"] == {"input_tokens": 3, "output_tokens": 2}
        assert end["steps"]["each"]["items"]["succeeded"] == 2


def test_gates_are_shown_as_they_stood_at_that_event() -> None:
    """A gate open at one event is approved at a later one, with its answer and seqs."""
    record = ExecutionRecord("run-1", "w", {"steps": [{"id": "ok"}]})
    script = Script().add("execution.started").add("step.started", "ok")
    script.add(
        "gate.opened",
        "ok",
        prompt="Ship it?",
        schema=None,
        timeout=60,
        on_timeout="reject",
        deadline="2025-01-01T00:01:03.000Z",
    )
    script.add("gate.resolved", "ok", approved=True, input={}, by="ann", reason=None, how="answer")
    opened = state_document(record, script.events[:3], last_seq=4)["gates"]
    assert opened == {
        "ok": {
            "status": "open",
            "prompt": "Ship it?",
            "schema": None,
            "timeout": 60.0,
            "on_timeout": "reject",
            "deadline": "2025-01-01T00:01:03.000Z",
            "opened_seq": 3,
            "resolved_seq": None,
            "answer": None,
        }
    }
    resolved = state_document(record, script.events, last_seq=4)["gates"]["ok"]
    assert (resolved["status"], resolved["resolved_seq"]) == ("approved", 4)
    assert resolved["answer"]["by"] == "ann"

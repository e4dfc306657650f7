"""Time travel: the state right after one event is a replay of the events up to it."""

from __future__ import annotations

import datetime
from pathlib import Path

import attrs
import pytest
import trio
from event_scripts import Script
from hypothesis import given
from hypothesis import strategies as st
from time_travel_runs import CHAIN, run, runtime_on

from orchestr8._errors import EventOutOfRangeError
from orchestr8._journal._events import Event
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
    assert parse_moment("2025-01-01T02:00:05.000000+02:00") == datetime.datetime(
        2025, 1, 1, 0, 0, 5, tzinfo=UTC
    )
    local = parse_moment("2025-01-01 10:00:00.000000")
    assert local is not None
    assert local.tzinfo is not None
    assert local == datetime.datetime(2025, 1, 1, 10).astimezone()
    assert parse_moment("soon") is None


@pytest.mark.parametrize(
    ("text", "last_instant"),
    [
        ("2025-01-01T00:00:05Z", "2025-01-01T00:00:05.999999+00:00"),
        ("2025-01-01T00:00Z", "2025-01-01T00:00:59.999999+00:00"),
        ("2025-01-01T10Z", "2025-01-01T10:59:59.999999+00:00"),
        ("2025-01-01T00:00:05.466Z", "2025-01-01T00:00:05.466999+00:00"),
        ("2025-01-01T00:00:05.4+02:00", "2025-01-01T00:00:05.499999+02:00"),
        ("2025-01-01 00:00:05,466123Z", "2025-01-01T00:00:05.466123+00:00"),
        ("2025-01-01T00:00:05.4661239Z", "2025-01-01T00:00:05.466123+00:00"),
        ("20250101T0000Z", "2025-01-01T00:00:59.999999+00:00"),
        ("2025-01-01x00:00:05+01", "2025-01-01T00:00:05.999999+01:00"),
        ("2025-W01-3T10Z", "2025-01-01T10:59:59.999999+00:00"),
        ("2025W01T10:00Z", "2024-12-30T10:00:59.999999+00:00"),
    ],
)
def test_a_moment_is_the_last_instant_of_the_unit_it_is_written_to(
    text: str, last_instant: str
) -> None:
    """To the second is the end of that second, to the minute the end of that minute, and so on."""
    assert parse_moment(text) == datetime.datetime.fromisoformat(last_instant)


def test_a_day_is_the_end_of_that_local_day() -> None:
    """A date alone names the whole of that day, in local time."""
    assert (
        parse_moment("2025-01-01")
        == datetime.datetime(2025, 1, 1, 23, 59, 59, 999_999).astimezone()
    )


#: How a time is written to a unit: its strftime format, and the unit it names the whole of.
WRITTEN_TO = {
    "minute": ("%Y-%m-%dT%H:%M", datetime.timedelta(minutes=1)),
    "second": ("%Y-%m-%dT%H:%M:%S", datetime.timedelta(seconds=1)),
    "second as inspect prints it": ("%Y-%m-%d %H:%M:%S", datetime.timedelta(seconds=1)),
    "millisecond": ("%Y-%m-%dT%H:%M:%S.%f", datetime.timedelta(milliseconds=1)),
}

#: The zones a time is written in: the suffix written, and the zone it converts to.
ZONES = {
    "UTC": ("Z", UTC),
    "an offset": ("+05:30", datetime.timezone(datetime.timedelta(hours=5, minutes=30))),
    "local time": ("", None),
}


def _written(moment: datetime.datetime, precision: str, zone: str) -> str:
    """`moment` as a person writes it to `precision` in `zone` (milliseconds: three digits)."""
    layout, _ = WRITTEN_TO[precision]
    suffix, tz = ZONES[zone]
    text = moment.astimezone(tz).strftime(layout)
    return (text[:-3] if precision == "millisecond" else text) + suffix


def _truncated(moment: datetime.datetime, precision: str, zone: str) -> datetime.datetime:
    """`moment` cut down to the start of its `precision` unit in `zone`."""
    _, unit = WRITTEN_TO[precision]
    local = moment.astimezone(ZONES[zone][1])
    offset = local.utcoffset() or datetime.timedelta()
    naive = local.replace(tzinfo=None) + offset
    cut = naive - (naive - datetime.datetime(2000, 1, 1)) % unit
    return cut - offset


@given(
    milliseconds=st.lists(st.integers(0, 300_000), min_size=1, max_size=12),
    data=st.data(),
)
def test_the_time_of_any_event_written_to_any_unit_travels_to_the_last_event_of_that_unit(
    milliseconds: list[int], data: st.DataObject
) -> None:
    """Any event's time, written to the minute, second or millisecond in any zone, is found.

    The state is after the last event recorded within that unit: times `inspect` prints (to the
    second, local time) travel to the end of that second, never "before the first event".
    """
    start = datetime.datetime(2026, 12, 7, 15, 48, 9, 459_000, tzinfo=UTC)
    moments = [start + datetime.timedelta(milliseconds=n) for n in sorted(milliseconds)]
    events = [
        Event(
            "run-1", seq, moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z", 0.0, "step.progress"
        )
        for seq, moment in enumerate(moments, start=1)
    ]
    chosen = data.draw(st.sampled_from(moments))
    precision = data.draw(st.sampled_from(sorted(WRITTEN_TO)))
    zone = data.draw(st.sampled_from(sorted(ZONES)))
    text = _written(chosen, precision, zone)
    moment = parse_moment(text)
    assert moment is not None, text
    unit_start = _truncated(chosen, precision, zone)
    expected = max(
        seq
        for seq, recorded in enumerate(moments, start=1)
        if _truncated(recorded, precision, zone) <= unit_start
    )
    assert seq_at_time("run-1", events, moment) == expected, text


def test_a_moment_picks_the_last_event_recorded_by_then() -> None:
    """Between two events the state is after the earlier one; at an event, after that one."""
    script = Script().add("execution.started").add("step.started", "a").add("step.succeeded", "a")
    events = script.events  # recorded at :01, :02 and :03
    at = datetime.datetime(2025, 1, 1, 0, 0, 2, 500_000, tzinfo=UTC)
    assert seq_at_time("run-1", events, at) == 2
    assert seq_at_time("run-1", events, at.replace(second=3, microsecond=0)) == 3
    assert seq_at_time("run-1", events, at.replace(year=2030)) == 3


def test_time_travel_stops_at_an_event_whose_time_cannot_be_read() -> None:
    """An event without a readable time (not one the journal writes) ends the search there."""
    events = Script().add("execution.started").add("step.started", "a").events
    events[1] = attrs.evolve(events[1], ts="2025-01-01 noon")
    naive = attrs.evolve(events[0], ts="2025-01-01T00:00:01")
    later = datetime.datetime(2030, 1, 1, tzinfo=UTC)
    assert seq_at_time("run-1", events, later) == 1
    assert seq_at_time("run-1", [naive], datetime.datetime(2025, 1, 1, 0, 0, 1, tzinfo=UTC)) == 1


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


@pytest.mark.parametrize("store", ["memory", "sqlite", "postgresql"])
async def test_every_prefix_of_a_real_run_replays_to_its_state(
    store: str,
    tmp_path: Path,
    autojump_clock: trio.testing.MockClock,
    request: pytest.FixtureRequest,
) -> None:
    """On every journal: a retried step, tokens and a map, seen at a few points of their run."""
    if store == "postgresql":
        store = request.getfixturevalue("postgres_url")
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

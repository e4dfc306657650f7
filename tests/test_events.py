"""Specifications of the event envelope, the type and status vocabularies, and the reducer."""

from __future__ import annotations

import datetime
import json
import re
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from orchestr8._events import (
    TERMINAL_EVENT_TYPES,
    Event,
    EventFactory,
    EventType,
    ExecutionState,
    ExecutionStatus,
    StepState,
    StepStatus,
    describe_error,
    replay,
    utc_timestamp,
)

DESIGN_TYPES = {
    "execution.started",
    "step.started",
    "attempt.started",
    "attempt.failed",
    "retry.scheduled",
    "step.succeeded",
    "step.failed",
    "step.skipped",
    "step.cancelled",
    "breaker.opened",
    "breaker.half_opened",
    "breaker.closed",
    "breaker.rejected",
    "execution.succeeded",
    "execution.failed",
    "execution.cancelled",
    "execution.resumed",
    "step.progress",
    "attempt.rejected",
    "step.usage",
}


class Script:
    """Writes hand-made event sequences for one execution, numbering them from 1."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def add(
        self,
        type: str,
        step_id: str | None = None,
        attempt: int | None = None,
        elapsed: float | None = None,
        **data: Any,
    ) -> Script:
        seq = len(self.events) + 1
        stamp = f"2025-01-01T00:00:{seq:02d}.000Z"
        when = float(seq) if elapsed is None else elapsed
        self.events.append(Event("run-1", seq, stamp, when, type, step_id, attempt, data))
        return self


def test_event_types_cover_the_design_exactly() -> None:
    """Every type of DESIGN 3.3 (plus the extensions) has a constant, and nothing else does."""
    assert {member.value for member in EventType} == DESIGN_TYPES


def test_terminal_types_are_the_three_execution_endings() -> None:
    """Only execution.succeeded, failed and cancelled are terminal."""
    assert set(TERMINAL_EVENT_TYPES) == {
        "execution.succeeded",
        "execution.failed",
        "execution.cancelled",
    }
    assert [member for member in EventType if member.is_terminal] == [
        EventType.EXECUTION_SUCCEEDED,
        EventType.EXECUTION_FAILED,
        EventType.EXECUTION_CANCELLED,
    ]
    assert Script().add("execution.failed").events[0].is_terminal
    assert not Script().add("execution.resumed").events[0].is_terminal


def test_statuses_are_the_design_vocabulary() -> None:
    """Execution and step statuses carry exactly the values of DESIGN 3.3."""
    assert [status.value for status in ExecutionStatus] == [
        "pending",
        "running",
        "succeeded",
        "failed",
        "cancelled",
    ]
    assert [status.value for status in StepStatus] == [
        "pending",
        "running",
        "retrying",
        "succeeded",
        "failed",
        "skipped",
        "cancelled",
    ]
    assert [status for status in ExecutionStatus if status.is_terminal] == [
        ExecutionStatus.SUCCEEDED,
        ExecutionStatus.FAILED,
        ExecutionStatus.CANCELLED,
    ]


def test_to_json_leaves_out_absent_step_and_attempt() -> None:
    """An execution-level event has no step_id/attempt keys; a step event has both."""
    bare = Event("e", 1, "2025-01-01T00:00:00.000Z", 0.0, EventType.EXECUTION_STARTED)
    assert bare.to_json() == {
        "execution_id": "e",
        "seq": 1,
        "ts": "2025-01-01T00:00:00.000Z",
        "elapsed": 0.0,
        "type": "execution.started",
        "data": {},
    }
    step = Event("e", 2, "2025-01-01T00:00:00.500Z", 0.5, "attempt.failed", "s", 1, {"x": 1})
    assert step.to_json()["step_id"] == "s"
    assert step.to_json()["attempt"] == 1
    assert json.loads(json.dumps(step.to_json())) == step.to_json()


def test_from_json_round_trips_and_normalises_types() -> None:
    """from_json(to_json(e)) == e; known types become EventType members, unknown stay strings."""
    event = Event(
        "e", 3, "2025-01-01T00:00:00.000Z", 1.25, "step.succeeded", "s", 2, {"output": []}
    )
    back = Event.from_json(json.loads(json.dumps(event.to_json())))
    assert back == event
    assert back.type is EventType.STEP_SUCCEEDED
    custom = Event.from_json({**event.to_json(), "type": "vendor.thing", "extra": True})
    assert custom.type == "vendor.thing"
    assert not isinstance(custom.type, EventType)
    integral = Event.from_json({**event.to_json(), "elapsed": 2})
    assert isinstance(integral.elapsed, float)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"seq": None}, "missing required key 'seq'"),
        ({"seq": True}, "'seq' must be int"),
        ({"seq": "1"}, "'seq' must be int"),
        ({"elapsed": "0.5"}, "'elapsed' must be float"),
        ({"data": []}, "'data' must be dict"),
        ({"attempt": 1.5}, "'attempt' must be int"),
        ({"step_id": 7}, "'step_id' must be str"),
    ],
)
def test_from_json_rejects_malformed_envelopes(change: dict[str, Any], message: str) -> None:
    """Missing keys and wrongly typed values raise ValueError naming the key."""
    document = {
        "execution_id": "e",
        "seq": 1,
        "ts": "2025-01-01T00:00:00.000Z",
        "elapsed": 0.0,
        "type": "step.started",
        "data": {},
    }
    document.update(change)
    document = {key: value for key, value in document.items() if value is not None}
    with pytest.raises(ValueError, match=re.escape(message)):
        Event.from_json(document)


def test_utc_timestamp_has_milliseconds_and_z() -> None:
    """Timestamps read like 2025-01-02T03:04:05.678Z, converted to UTC."""
    moment = datetime.datetime(
        2025, 1, 2, 5, 4, 5, 678900, tzinfo=datetime.timezone(datetime.timedelta(hours=2))
    )
    assert utc_timestamp(moment) == "2025-01-02T03:04:05.678Z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", utc_timestamp())


def test_describe_error_gives_type_and_message() -> None:
    """Errors in event data are {type, message}."""
    assert describe_error(TimeoutError("too slow")) == {
        "type": "TimeoutError",
        "message": "too slow",
    }


async def test_event_factory_numbers_and_times_from_the_trio_clock(
    mock_clock: trio.testing.MockClock,
) -> None:
    """Seq counts up from 1 and elapsed is trio-clock time since the factory was made."""
    mock_clock.autojump_threshold = 0
    factory = EventFactory("run-1")
    first = factory.create(EventType.EXECUTION_STARTED)
    await trio.sleep(2.5)
    second = factory.create(EventType.STEP_STARTED, step_id="a", data={"agent": "echo"})
    assert (first.seq, first.elapsed) == (1, 0.0)
    assert (second.seq, second.elapsed, second.step_id) == (2, 2.5, "a")
    resumed = EventFactory("run-1", next_seq=3, elapsed_offset=second.elapsed)
    await trio.sleep(1.0)
    third = resumed.create(EventType.EXECUTION_RESUMED)
    assert (third.seq, third.elapsed) == (3, 3.5)


def test_replay_of_nothing_is_pending() -> None:
    """No events: the execution is pending with no steps."""
    assert replay([]) == ExecutionState()
    assert replay([]).status is ExecutionStatus.PENDING


def test_replay_of_a_successful_run_with_a_retry() -> None:
    """A failed attempt, a scheduled retry and a second attempt end in a succeeded step."""
    script = Script()
    script.add("execution.started", elapsed=0.0, workflow="wf", inputs={})
    script.add("step.started", "a", agent="echo")
    script.add("attempt.started", "a", 1)
    script.add("attempt.failed", "a", 1, error={"type": "Boom", "message": "no"})
    script.add("retry.scheduled", "a", 1, delay=1.0)
    retrying = replay(script.events).steps["a"]
    assert (retrying.status, retrying.attempts) == (StepStatus.RETRYING, 1)
    assert retrying.error == {"type": "Boom", "message": "no"}
    script.add("attempt.started", "a", 2)
    script.add("step.progress", "a", 2, message="half way")
    script.add("step.succeeded", "a", 2, output={"answer": 42})
    script.add("execution.succeeded", output={"result": 42})
    state = replay(script.events)
    assert state.status is ExecutionStatus.SUCCEEDED
    assert state.output == {"result": 42}
    assert state.error is None
    assert (state.started_at, state.finished_at) == (
        "2025-01-01T00:00:01.000Z",
        "2025-01-01T00:00:09.000Z",
    )
    assert (state.started, state.finished, state.elapsed, state.last_seq) == (0.0, 9.0, 9.0, 9)
    assert state.steps == {
        "a": StepState(StepStatus.SUCCEEDED, 2, {"answer": 42}, None, 2.0, 8.0),
    }


def test_replay_counts_rejected_attempts() -> None:
    """A call refused by a bulkhead or an open breaker uses up its attempt and records the error."""
    rejection = {"type": "CircuitOpenError", "message": "open"}
    script = Script().add("execution.started").add("step.started", "a")
    script.add("attempt.rejected", "a", 1, error={"type": "BulkheadFullError", "message": "full"})
    script.add("retry.scheduled", "a", 1, delay=0.5)
    script.add("breaker.rejected", "a", 2, error=rejection, retry_after=3.0)
    step = replay(script.events).steps["a"]
    assert (step.status, step.attempts, step.error) == (StepStatus.RETRYING, 2, rejection)


def test_replay_of_a_failed_run_with_skipped_and_cancelled_steps() -> None:
    """Failed, skipped and cancelled steps keep their statuses; the execution holds the error."""
    error = {"type": "AttemptTimeoutError", "message": "slow"}
    script = Script().add("execution.started")
    script.add("step.started", "a").add("step.started", "b")
    script.add("step.failed", "a", error=error)
    script.add("step.cancelled", "b", reason="fail_fast")
    script.add("step.skipped", "c", reason="dependency 'a' failed")
    script.add("execution.failed", error=error)
    state = replay(script.events)
    assert state.status is ExecutionStatus.FAILED
    assert (state.output, state.error) == (None, error)
    assert list(state.steps) == ["a", "b", "c"]
    assert [step.status for step in state.steps.values()] == [
        StepStatus.FAILED,
        StepStatus.CANCELLED,
        StepStatus.SKIPPED,
    ]
    assert state.steps["a"].error == error


def test_replay_of_a_cancelled_run() -> None:
    """execution.cancelled makes the execution cancelled with no output."""
    script = Script().add("execution.started").add("execution.cancelled", reason="user")
    state = replay(script.events)
    assert (state.status, state.output, state.error) == (ExecutionStatus.CANCELLED, None, None)


def test_replay_across_a_resume_keeps_succeeded_outputs() -> None:
    """A crashed run resumed: running again, succeeded steps keep output, the rest start over."""
    script = Script().add("execution.started")
    script.add("step.started", "a").add("step.succeeded", "a", output="A")
    script.add("step.started", "b").add("attempt.started", "b", 1)
    script.add("step.failed", "c", error={"type": "X", "message": "x"})
    crashed = replay(script.events)
    assert crashed.status is ExecutionStatus.RUNNING
    script.add("execution.resumed")
    resumed = replay(script.events)
    assert resumed.status is ExecutionStatus.RUNNING
    assert resumed.steps == {
        "a": StepState(StepStatus.SUCCEEDED, 0, "A", None, 2.0, 3.0),
        "b": StepState(),
        "c": StepState(),
    }
    script.add("step.started", "b").add("step.succeeded", "b", output="B")
    script.add("step.started", "c").add("step.succeeded", "c", output="C")
    script.add("execution.succeeded", output=["A", "B", "C"])
    final = replay(script.events)
    assert final.status is ExecutionStatus.SUCCEEDED
    assert final.output == ["A", "B", "C"]
    assert final.started_at == "2025-01-01T00:00:01.000Z"
    assert {step_id: step.output for step_id, step in final.steps.items()} == {
        "a": "A",
        "b": "B",
        "c": "C",
    }


def test_replay_after_resuming_a_failed_run_clears_the_error() -> None:
    """Resuming a failed execution drops its error and finish time until it ends again."""
    script = Script().add("execution.started").add("execution.failed", error={"type": "X"})
    script.add("execution.resumed")
    state = replay(script.events)
    assert (state.status, state.error, state.finished_at, state.finished) == (
        ExecutionStatus.RUNNING,
        None,
        None,
        None,
    )


def test_replay_ignores_breaker_and_unknown_events() -> None:
    """Breaker events and types from newer versions leave the state alone."""
    script = Script().add("execution.started")
    before = replay(script.events)
    script.add("breaker.opened", "a", key="echo").add("vendor.custom", "a", anything=1)
    after = replay(script.events)
    assert after == ExecutionState(
        status=before.status,
        started_at=before.started_at,
        started=before.started,
        elapsed=3.0,
        last_seq=3,
    )


def test_replay_refuses_events_of_two_executions() -> None:
    """Mixing executions is a ValueError, not a silently merged state."""
    one = Script().add("execution.started").events[0]
    other = Event("run-2", 2, one.ts, 0.0, "execution.started")
    with pytest.raises(ValueError, match="one execution"):
        replay([one, other])


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=6,
)
events = st.builds(
    Event,
    execution_id=st.just("run"),
    seq=st.integers(1, 10**6),
    ts=st.just("2025-01-01T00:00:00.000Z"),
    elapsed=st.floats(0, 1e6),
    type=st.sampled_from([*EventType, "vendor.custom"]),
    step_id=st.none() | st.sampled_from(["a", "b"]),
    attempt=st.none() | st.integers(1, 5),
    data=st.dictionaries(st.sampled_from(["output", "error", "reason"]), json_values, max_size=2),
)


@given(st.lists(events, max_size=20))
def test_replay_is_unchanged_by_a_json_round_trip(sequence: list[Event]) -> None:
    """Events sent as JSON and read back replay to the same state as the originals."""
    wire = json.loads(json.dumps([event.to_json() for event in sequence]))
    assert [Event.from_json(document) for document in wire] == sequence
    assert replay(Event.from_json(document) for document in wire) == replay(sequence)


class _BrokenMessage(Exception):
    """An exception whose message cannot be read."""

    def __str__(self) -> str:
        raise RuntimeError("no message")


def test_describe_error_survives_an_exception_whose_message_fails() -> None:
    """The type is kept and the message says it could not be read, instead of raising."""
    assert describe_error(_BrokenMessage()) == {
        "type": "_BrokenMessage",
        "message": "(its message could not be read: RuntimeError)",
    }


def test_describe_error_names_what_a_group_holds() -> None:
    """A group's message lists its first three leaves, nested ones too, and how many more."""
    group = ExceptionGroup(
        "several",
        [
            ValueError("a"),
            ExceptionGroup("inner", [KeyError("b"), TypeError("c")]),
            OSError("d"),
        ],
    )
    assert describe_error(group) == {
        "type": "ExceptionGroup",
        "message": "several (3 sub-exceptions): ValueError: a; KeyError: 'b'; TypeError: c; "
        "and 1 more",
    }

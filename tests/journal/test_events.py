"""Specifications of the event envelope and the type and status vocabularies."""

from __future__ import annotations

import datetime
import json
import re
from typing import Any

import pytest
import trio
import trio.testing
from event_scripts import Script

from orchestr8._journal._events import (
    TERMINAL_EVENT_TYPES,
    Event,
    EventFactory,
    EventType,
    ExecutionStatus,
    StepStatus,
    describe_error,
    utc_timestamp,
)

DOCUMENTED_EVENT_TYPES = {
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
    "map.started",
    "iteration.finished",
    "child.started",
    "plan.proposed",
    "plan.rejected",
    "step.replanned",
    "gate.opened",
    "gate.resolved",
    "execution.waiting",
    "llm.called",
    "step.scored",
    "budget.reserved",
    "budget.settled",
    "budget.exhausted",
}


def test_event_types_are_exactly_the_documented_vocabulary() -> None:
    """Every event type docs/events.md lists (extensions included) has a constant, and no other."""
    assert {member.value for member in EventType} == DOCUMENTED_EVENT_TYPES


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


def test_statuses_are_the_documented_vocabulary() -> None:
    """Execution and step statuses carry exactly the values docs/events.md lists."""
    assert [status.value for status in ExecutionStatus] == [
        "pending",
        "running",
        "waiting",
        "succeeded",
        "failed",
        "cancelled",
    ]
    assert [status.value for status in StepStatus] == [
        "pending",
        "running",
        "waiting",
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

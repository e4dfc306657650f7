"""Time travel: an execution's state right after one of its events, as a JSON document.

Replay over a prefix of the events is the state at that point (`replay(events[:seq])`), so the
state after event SEQ needs nothing the journal does not hold already. This module checks that
SEQ is one of the execution's events (`check_seq`, or `seq_at_time` for a moment given as a
timestamp) and renders the state the way `inspect ID --json` renders the present one: the
execution's status, times, output and error, every step in workflow order (status, attempts,
duration, output, error, skip reason, tokens; a map step's items counted, a loop step's
iterations after it), the approval gates and the tokens used. `inspect ID --at SEQ` and
`GET /executions/{id}/state?at=SEQ` both answer with `state_document`.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from .._errors import EventOutOfRangeError
from ._events import Event
from ._iterations import LoopProgress, is_iteration_of, loop_progress
from ._map_items import item_counts, split_item_id
from ._records import ExecutionRecord
from ._replay import ExecutionState, GateState, StepState, replay

__all__ = [
    "check_seq",
    "declared_step_ids",
    "gate_document",
    "parse_moment",
    "seq_at_time",
    "shown_step_ids",
    "state_document",
    "step_document",
]


def check_seq(execution_id: str, last_seq: int, seq: int) -> int:
    """Return `seq` when the execution has an event with it (1 to `last_seq`).

    Raises:
        EventOutOfRangeError: it has no such event; the message names the range it has.
    """
    if 1 <= seq <= last_seq:
        return seq
    raise EventOutOfRangeError(
        _range_text(execution_id, last_seq), execution_id=execution_id, last_seq=last_seq
    )


def _range_text(execution_id: str, last_seq: int) -> str:
    if last_seq == 0:
        return f"execution {execution_id} has no events yet"
    return f"execution {execution_id} has events 1..{last_seq}"


def parse_moment(text: str) -> datetime.datetime | None:
    """Read an ISO-8601 time as the last instant it names, or None if it is not a time.

    A time names the whole of its last unit, so the times `inspect` prints (to the second) work
    as `--at` values: `2026-12-07 15:03:05` is the end of that second, `2026-12-07T15:03Z` the
    end of that minute, `2026-12-07` the end of that day, and `15:03:05.466` that millisecond.
    A time without an offset is local time, as `inspect` shows times; the result is aware.
    """
    text = text.strip()
    try:
        start = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if start.tzinfo is None:
        start = start.astimezone()
    return start + _unit_of(text) - _MICROSECOND


_MICROSECOND: Final = datetime.timedelta(microseconds=1)

_TIME_OF_DAY: Final = re.compile(
    r"(?P<hour>\d\d)(?::?(?P<minute>\d\d)(?::?(?P<second>\d\d)(?:[.,](?P<fraction>\d+))?)?)?"
    r"(?:Z|[+-]\d\d(?::?\d\d(?::?\d\d(?:[.,]\d+)?)?)?)?"
)
"""The time of day of an ISO-8601 time and its offset, to find the unit it was written to."""


def _unit_of(text: str) -> datetime.timedelta:
    """The span the last unit of an ISO-8601 time covers: a day, an hour ... a microsecond.

    `text` is one `datetime.fromisoformat` read (with `Z` for UTC). The time of day follows
    the date (`YYYY-MM-DD`, `YYYYMMDD` or a week date) and one separator character.
    """
    try:
        datetime.date.fromisoformat(text)
    except ValueError:
        pass
    else:
        return datetime.timedelta(days=1)
    lengths = (10, 8) if text[4:5] == "-" else (8, 7)
    found = (_TIME_OF_DAY.fullmatch(text, length + 1) for length in lengths)
    time_of_day = next((match for match in found if match is not None), None)
    if time_of_day is None or time_of_day["fraction"] is not None:
        # A fraction names its last digit (at most microseconds); an unknown layout, the instant.
        digits = 6 if time_of_day is None else len(time_of_day["fraction"])
        return datetime.timedelta(microseconds=10 ** max(0, 6 - digits))
    if time_of_day["second"] is not None:
        return datetime.timedelta(seconds=1)
    if time_of_day["minute"] is not None:
        return datetime.timedelta(minutes=1)
    return datetime.timedelta(hours=1)


def seq_at_time(execution_id: str, events: Sequence[Event], moment: datetime.datetime) -> int:
    """The seq of the last event recorded at or before `moment`: the state then is after it.

    Raises:
        EventOutOfRangeError: `moment` is before the first event (or there is none); the message
            names when the execution's events were recorded.
    """
    chosen = 0
    for event in events:
        recorded = _recorded_at(event)
        if recorded is None or recorded > moment:
            break
        chosen = event.seq
    if chosen:
        return chosen
    last_seq = events[-1].seq if events else 0
    if not events:
        message = _range_text(execution_id, 0)
    else:
        message = (
            f"execution {execution_id} has events from {events[0].ts} "
            f"(seq 1) to {events[-1].ts} (seq {last_seq})"
        )
    raise EventOutOfRangeError(message, execution_id=execution_id, last_seq=last_seq)


def _recorded_at(event: Event) -> datetime.datetime | None:
    """When the event was recorded (its `ts`, UTC), or None if its time cannot be read."""
    try:
        recorded = datetime.datetime.fromisoformat(event.ts.replace("Z", "+00:00"))
    except ValueError:
        return None
    return recorded if recorded.tzinfo is not None else recorded.replace(tzinfo=datetime.UTC)


def declared_step_ids(record: ExecutionRecord) -> list[str]:
    """The ids of the steps the execution's workflow document declares, in its order."""
    return [
        step["id"]
        for step in record.workflow.get("steps", ())
        if isinstance(step, Mapping) and isinstance(step.get("id"), str)
    ]


def shown_step_ids(
    record: ExecutionRecord, state: ExecutionState, loops: Mapping[str, LoopProgress]
) -> list[str]:
    """The rows a view shows: declared steps, then others seen, each loop's iterations after it.

    A map's items (`ID[i]`) are not rows: they are counted under their map step.
    """
    declared = declared_step_ids(record)
    seen = [unit for unit in state.steps if unit not in declared and split_item_id(unit) is None]
    shown = [*declared, *seen]
    iterations = {loop: [unit for unit in shown if is_iteration_of(unit, loop)] for loop in loops}
    moved = {unit for units in iterations.values() for unit in units}
    ordered: list[str] = []
    for unit in shown:
        if unit not in moved:
            ordered.append(unit)
            ordered.extend(iterations.get(unit, ()))
    return ordered


def step_document(step: StepState | None) -> dict[str, Any]:
    """One step as time travel and compare show it (a step that never started is `pending`)."""
    if step is None:
        step = StepState()
    return {
        "status": str(step.status),
        "attempts": step.total_attempts,
        "duration": step.duration,
        "output": step.output,
        "error": step.error,
        "reason": step.reason,
        "usage": dict(step.usage),
    }


def gate_document(gate: GateState) -> dict[str, Any]:
    """One approval gate as the state shows it: what it asks, its deadline, how it was answered.

    `answer` is the `gate.resolved` event's data (`approved`, `input`, `by`, `reason`, `how`).
    """
    return {
        "status": gate.status,
        "prompt": gate.prompt,
        "schema": gate.schema,
        "timeout": gate.timeout,
        "on_timeout": gate.on_timeout,
        "deadline": gate.deadline,
        "opened_seq": gate.opened_seq,
        "resolved_seq": gate.resolved_seq,
        "answer": None if gate.answer is None else dict(gate.answer),
    }


def state_document(
    record: ExecutionRecord, events: Sequence[Event], *, last_seq: int
) -> dict[str, Any]:
    """The execution's state right after the last of `events` (a prefix of its events).

    `last_seq` is the execution's last seq now, so a reader knows how far the history goes.
    The shape is `inspect ID --json`'s without `events`, plus `at` (the seq), `at_time` and
    `at_type` (that event's time and type), `last_seq`, `usage`, each step's `usage`, and
    `gates`.
    """
    state = replay(events)
    loops = loop_progress(events)
    groups = item_counts(state)
    steps: dict[str, Any] = {}
    for step_id in shown_step_ids(record, state, loops):
        step = state.steps.get(step_id)
        steps[step_id] = document = step_document(step)
        if step_id in groups:
            document["items"] = groups[step_id].to_json()
        if step_id in loops:
            document["loop"] = loops[step_id].to_json()
        if step is not None and step.child is not None:
            document["child"] = {"execution_id": step.child}
    last = events[-1] if events else None
    parent = None
    if record.parent_id is not None:
        parent = {"execution_id": record.parent_id, "step_id": record.parent_step}
    return {
        "execution_id": record.execution_id,
        "workflow": record.workflow_name,
        "at": state.last_seq,
        "at_time": last.ts if last is not None else None,
        "at_type": last.type if last is not None else None,
        "last_seq": last_seq,
        "status": str(state.status),
        "created_at": record.created_at,
        "started_at": state.started_at,
        "finished_at": state.finished_at,
        "duration": _duration(state),
        "inputs": record.inputs,
        "output": state.output,
        "error": state.error,
        "parent": parent,
        "usage": dict(state.usage),
        "steps": steps,
        "gates": {gate_id: gate_document(gate) for gate_id, gate in state.gates.items()},
    }


def _duration(state: ExecutionState) -> float | None:
    """Seconds from the start to the end, or to this event while it runs (elapsed clock)."""
    if state.started is None:
        return None
    end = state.finished if state.finished is not None else state.elapsed
    return max(0.0, end - state.started)

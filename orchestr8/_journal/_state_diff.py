"""What changed in an execution between two of its events: `inspect ID --diff SEQ_A SEQ_B`.

The state after SEQ_A and the state after SEQ_B are both replays of a prefix of the events
(`_state_at`); `state_diff` compares them unit by unit (steps, map items `ID[i]`, loop
iterations `ID#k`): each unit whose status, attempts, output or error changed, with the old and
the new values (a unit that had not started at SEQ_A has no old values), the approval gates
that opened or were resolved, the execution's status, the tokens used in between, and the
events in between counted by type. Applying the changes to the state at SEQ_A gives the state
at SEQ_B (a property test holds it to that).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from .._errors import EventOutOfRangeError
from ._events import Event
from ._map_items import split_item_id
from ._records import ExecutionRecord
from ._replay import ExecutionState, StepState, replay
from ._state_at import check_seq, declared_step_ids

__all__ = [
    "UNIT_FIELDS",
    "StateDiff",
    "UnitChange",
    "state_diff",
    "unit_fields",
    "unit_order",
]

UNIT_FIELDS = ("status", "attempts", "output", "error")
"""The fields of a unit a diff compares, in the order it lists them."""


@attrs.frozen
class UnitChange:
    """One unit (step, map item, iteration) that changed: its fields before and after."""

    unit_id: str
    before: Mapping[str, Any] | None
    """`UNIT_FIELDS` at the earlier event, or None when the unit had not started then."""
    after: Mapping[str, Any]
    """`UNIT_FIELDS` at the later event."""
    changed: tuple[str, ...]
    """The names of the fields that differ (every field for a unit new since the earlier one)."""

    def to_json(self) -> dict[str, Any]:
        """The JSON form: `unit`, `changed`, `before`, `after`."""
        return {
            "unit": self.unit_id,
            "changed": list(self.changed),
            "before": None if self.before is None else dict(self.before),
            "after": dict(self.after),
        }


@attrs.frozen
class StateDiff:
    """What changed between the state after event `first` and the state after event `second`."""

    execution_id: str
    first: int
    second: int
    status: tuple[str, str]
    """The execution's status after each of the two events."""
    units: tuple[UnitChange, ...]
    gates_opened: tuple[str, ...]
    """Gates open after `second` that were not open after `first`."""
    gates_resolved: Mapping[str, str]
    """Gates resolved (or closed) in between, each with its new status."""
    usage: Mapping[str, int]
    """Tokens and other counts used in between (`step.usage`), by name."""
    event_types: Mapping[str, int]
    """The events in between, counted by type, in the order each type first came."""
    answers: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    """How each gate resolved in between was answered (`gate.resolved`'s data), by gate id."""

    @property
    def event_count(self) -> int:
        """How many events lie between the two (after `first`, up to `second`)."""
        return self.second - self.first

    def to_json(self) -> dict[str, Any]:
        """The `--json` and REST form of the difference."""
        return {
            "execution_id": self.execution_id,
            "from": self.first,
            "to": self.second,
            "status": {"before": self.status[0], "after": self.status[1]},
            "units": [change.to_json() for change in self.units],
            "gates": {
                "opened": list(self.gates_opened),
                "resolved": dict(self.gates_resolved),
                "answers": {gate_id: dict(answer) for gate_id, answer in self.answers.items()},
            },
            "usage": dict(self.usage),
            "events": {"count": self.event_count, "types": dict(self.event_types)},
        }


def state_diff(
    record: ExecutionRecord,
    events: Sequence[Event],
    first: int,
    second: int,
    *,
    last_seq: int | None = None,
) -> StateDiff:
    """Compare the execution's state after event `first` with the state after event `second`.

    `events` are the execution's events in seq order, at least up to `second`; `last_seq` is
    its last seq (by default the last of `events`), the range an error names.

    Raises:
        EventOutOfRangeError: a seq is not one of the execution's events, or `first` comes after
            `second`.
    """
    if last_seq is None:
        last_seq = events[-1].seq if events else 0
    for seq in (first, second):
        check_seq(record.execution_id, last_seq, seq)
    if first > second:
        raise EventOutOfRangeError(
            f"the earlier event comes first: {first} is after {second}",
            execution_id=record.execution_id,
            last_seq=last_seq,
        )
    before = replay(events[:first])
    after = replay(events[:second])
    between = events[first:second]
    types: dict[str, int] = {}
    for event in between:
        types[event.type] = types.get(event.type, 0) + 1
    opened, resolved = _gate_changes(before, after)
    return StateDiff(
        execution_id=record.execution_id,
        first=first,
        second=second,
        status=(str(before.status), str(after.status)),
        units=tuple(_unit_changes(record, before, after)),
        gates_opened=opened,
        gates_resolved=resolved,
        usage=_usage_between(before.usage, after.usage),
        event_types=types,
        answers=_answers(after, resolved),
    )


def unit_fields(step: StepState) -> dict[str, Any]:
    """The fields of a unit a diff compares (`UNIT_FIELDS`)."""
    return {
        "status": str(step.status),
        "attempts": step.total_attempts,
        "output": step.output,
        "error": step.error,
    }


def _unit_changes(
    record: ExecutionRecord, before: ExecutionState, after: ExecutionState
) -> list[UnitChange]:
    changes = []
    for unit_id in unit_order(declared_step_ids(record), after.steps):
        step = after.steps[unit_id]
        new = unit_fields(step)
        old_step = before.steps.get(unit_id)
        if old_step is None:
            changes.append(UnitChange(unit_id, None, new, UNIT_FIELDS))
            continue
        old = unit_fields(old_step)
        changed = tuple(name for name in UNIT_FIELDS if old[name] != new[name])
        if changed:
            changes.append(UnitChange(unit_id, old, new, changed))
    return changes


def unit_order(declared: Sequence[str], units: Iterable[str]) -> list[str]:
    """`units` in the order a person reads them, whatever order they started or finished in.

    Steps in workflow order (`declared`), then steps the workflow does not declare in the order
    seen; each step followed by its map items by index (`ID[2]` before `ID[10]`) and its loop
    iterations by number (`ID#2` before `ID#10`).
    """
    rank = {step_id: position for position, step_id in enumerate(declared)}

    def key(unit_id: str) -> tuple[int, int]:
        step_id, number = unit_id, 0
        item = split_item_id(unit_id)
        if item is not None:
            step_id, number = item[0], item[1] + 1
        else:
            loop, separator, iteration = unit_id.rpartition("#")
            if separator and loop and iteration.isdigit():
                step_id, number = loop, int(iteration)
        return (rank.setdefault(step_id, len(rank)), number)

    return sorted(units, key=key)


def _gate_changes(
    before: ExecutionState, after: ExecutionState
) -> tuple[tuple[str, ...], dict[str, str]]:
    """Gates opened in between (open now, not then), and gates resolved or closed in between."""
    opened = tuple(
        gate_id
        for gate_id, gate in after.gates.items()
        if gate.is_open and not (gate_id in before.gates and before.gates[gate_id].is_open)
    )
    resolved = {
        gate_id: gate.status
        for gate_id, gate in after.gates.items()
        if not gate.is_open and (gate_id not in before.gates or before.gates[gate_id].is_open)
    }
    return opened, resolved


def _answers(after: ExecutionState, resolved: Iterable[str]) -> dict[str, Mapping[str, Any]]:
    """The answers (`gate.resolved` data) of the gates resolved in between (closed: none)."""
    answers: dict[str, Mapping[str, Any]] = {}
    for gate_id in resolved:
        answer = after.gates[gate_id].answer
        if answer is not None:
            answers[gate_id] = answer
    return answers


def _usage_between(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    return {
        name: count - before.get(name, 0)
        for name, count in after.items()
        if count != before.get(name, 0)
    }

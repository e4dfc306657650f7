"""Two executions side by side, step by step: `orchestr8 compare` and `GET /executions/compare`.

Each execution is replayed from its events; `compare_executions` lines their steps up (the union
of the step ids, in workflow order, steps of one side only marked so) with, for each side, the
status, duration, attempts and tokens (`step.usage`), a map step's items counted and a loop
step's iterations (items and iterations are folded under their step, not rows of their own),
and whether the outputs are equal, with a unified diff of their pretty JSON when they are not
(a step one side has not finished yet, pending, running or waiting, has no output to compare:
its verdict is `not finished in a` or `b`, with no diff).
The workflow documents and the inputs are compared the same way. Huge outputs are cut before
they are diffed, and every diff is cut to `MAX_DIFF_LINES` lines, saying how much it left out.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Container, Mapping, Sequence
from typing import Any, Final

import attrs

from ._events import Event, EventType
from ._iterations import loop_progress
from ._map_items import item_counts, split_item_id
from ._records import ExecutionRecord
from ._replay import ExecutionState, StepState, replay
from ._state_at import declared_step_ids, step_document

__all__ = [
    "MAX_DIFF_LINES",
    "ComparedExecution",
    "compare_executions",
    "json_diff",
    "parts_differing",
    "step_order",
]

MAX_DIFF_LINES: Final = 200
"""The most lines a diff shows; the rest is counted on a last line."""

MAX_DIFFED_LINES: Final = 5_000
"""The most lines of each side's pretty JSON a diff reads (difflib is slow on huge texts)."""


@attrs.frozen
class ComparedExecution:
    """One side of a comparison: the execution's record, its events, the status to show."""

    record: ExecutionRecord
    events: Sequence[Event]
    status: str | None = None
    """The status to show (`interrupted`, say); the replayed one by default."""


def json_diff(before: Any, after: Any, *, labels: tuple[str, str] = ("a", "b")) -> str | None:
    """A unified diff of two JSON values as pretty JSON (sorted keys), None when they are equal.

    Equal means equal as JSON text: `1` and `true`, equal to Python, differ here. Each side is
    read up to `MAX_DIFFED_LINES` lines, and the diff cut to `MAX_DIFF_LINES`.
    """
    old_text, new_text = _pretty(before), _pretty(after)
    if old_text == new_text:
        return None
    old, new = old_text.splitlines(), new_text.splitlines()
    lines = list(
        difflib.unified_diff(
            old[:MAX_DIFFED_LINES], new[:MAX_DIFFED_LINES], labels[0], labels[1], lineterm=""
        )
    )
    if len(lines) > MAX_DIFF_LINES:
        left_out = len(lines) - MAX_DIFF_LINES
        lines = [*lines[:MAX_DIFF_LINES], f"... {left_out} more diff lines"]
    if max(len(old), len(new)) > MAX_DIFFED_LINES:
        lines.append(
            f"... only the first {MAX_DIFFED_LINES} lines of each side were compared"
            if lines
            else f"... they differ after line {MAX_DIFFED_LINES} of their pretty JSON"
        )
    return "\n".join(lines)


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


def step_order(first: Sequence[str], second: Sequence[str]) -> list[str]:
    """The union of two step orders: `first`'s, each id only in `second` after its predecessor."""
    order = list(first)
    placed = set(order)
    position = 0
    for step_id in second:
        if step_id in placed:
            position = order.index(step_id) + 1
            continue
        order.insert(position, step_id)
        placed.add(step_id)
        position += 1
    return order


def _units(record: ExecutionRecord, state: ExecutionState) -> list[str]:
    """The step rows of one execution: declared steps, then others seen (not items, iterations)."""
    declared = declared_step_ids(record)
    seen = [
        unit
        for unit in state.steps
        if unit not in declared and split_item_id(unit) is None and "#" not in unit
    ]
    return [*declared, *seen]


def _side(compared: ComparedExecution, state: ExecutionState) -> dict[str, Any]:
    record = compared.record
    duration = None
    if state.started is not None and state.finished is not None:
        duration = max(0.0, state.finished - state.started)
    return {
        "execution_id": record.execution_id,
        "workflow": record.workflow_name,
        "status": compared.status or str(state.status),
        "started_at": state.started_at,
        "finished_at": state.finished_at,
        "duration": duration,
        "usage": dict(state.usage),
        "last_seq": state.last_seq,
    }


@attrs.frozen
class _Replayed:
    """One side replayed once: its state, declared steps, map items, loops and their parts."""

    compared: ComparedExecution
    state: ExecutionState
    declared: frozenset[str]
    items: Mapping[str, Any]
    loops: Mapping[str, Any]
    parts: Mapping[str, Mapping[int, StepState]]
    """Each map step's items by index, each loop step's iterations by number."""
    reused: Mapping[str, str]
    """The units whose result a fork copied from another execution, with that execution's id."""

    def reused_from(self, other: _Replayed, unit_id: str) -> bool:
        """Whether this side's `unit_id` is `other`'s recorded result, copied by a fork."""
        return self.reused.get(unit_id) == other.compared.record.execution_id

    @classmethod
    def of(cls, compared: ComparedExecution) -> _Replayed:
        state = replay(compared.events)
        return cls(
            compared,
            state,
            frozenset(declared_step_ids(compared.record)),
            item_counts(state),
            loop_progress(compared.events),
            _parts(state),
            _reused(compared.events),
        )

    def step(self, step_id: str) -> dict[str, Any] | None:
        """The step's side of a row; None when this workflow neither declares nor ran it.

        A loop step's tokens are its iterations' (a map step's already count its items'); a
        sub-workflow step names its child execution (`child`), which has steps of its own.
        """
        step = self.state.steps.get(step_id)
        if step is None and step_id not in self.declared:
            return None
        document = step_document(step)
        if step_id in self.items:
            document["items"] = self.items[step_id].to_json()
        if step is not None and step.child is not None:
            document["child"] = {"execution_id": step.child}
        if step_id in self.loops:
            document["loop"] = self.loops[step_id].to_json()
            usage = document["usage"]
            for iteration in self.parts.get(step_id, {}).values():
                for name, count in iteration.usage.items():
                    usage[name] = usage.get(name, 0) + count
        return document


def _reused(events: Sequence[Event]) -> dict[str, str]:
    """The units a fork copied (`reused_from` on their `step.succeeded`), with the source's id."""
    reused: dict[str, str] = {}
    for event in events:
        source = event.data.get("reused_from")
        if event.type == EventType.STEP_SUCCEEDED and event.step_id and isinstance(source, dict):
            reused[event.step_id] = str(source.get("execution_id"))
    return reused


def _parts(state: ExecutionState) -> dict[str, dict[int, StepState]]:
    """The items (`ID[i]`) and iterations (`ID#k`) of `state`, by their step and number."""
    parts: dict[str, dict[int, StepState]] = {}
    for unit_id, unit in state.steps.items():
        item = split_item_id(unit_id)
        loop, separator, iteration = unit_id.rpartition("#")
        if item is not None:
            parts.setdefault(item[0], {})[item[1]] = unit
        elif separator and loop and iteration.isdigit():
            parts.setdefault(loop, {})[int(iteration)] = unit
    return parts


def parts_differing(
    first: Mapping[int, StepState],
    second: Mapping[int, StepState],
    reused: Container[int] = (),
) -> list[int]:
    """The numbers of the items or iterations whose status, attempts or output differ.

    For the numbers in `reused` (one side's copy of the other's result) attempts do not count.
    """

    def seen(part: StepState | None, attempts: bool) -> tuple[str, int, str] | None:
        if part is None:
            return None
        return (str(part.status), part.total_attempts if attempts else 0, _pretty(part.output))

    return [
        number
        for number in sorted(set(first) | set(second))
        if seen(first.get(number), number not in reused)
        != seen(second.get(number), number not in reused)
    ]


def compare_executions(first: ComparedExecution, second: ComparedExecution) -> dict[str, Any]:
    """Compare two executions step by step; the document `compare --json` and REST answer with.

    A step one workflow does not have is `null` on that side. A step `differs` when it is on one
    side only, or its status, attempts or output differ (durations and tokens are shown, not
    counted as differences); `same` is true when no step differs and the execution statuses,
    outputs, workflows and inputs are equal.
    """
    sides = (_Replayed.of(first), _Replayed.of(second))
    units = [_units(side.compared.record, side.state) for side in sides]
    steps = [
        _with_parts(
            _compare_step(
                step_id, sides[0].step(step_id), sides[1].step(step_id), _reused_by(sides, step_id)
            ),
            sides,
        )
        for step_id in step_order(*units)
    ]
    workflow_diff = json_diff(
        first.record.workflow,
        second.record.workflow,
        labels=(f"{first.record.execution_id} workflow", f"{second.record.execution_id} workflow"),
    )
    inputs_diff = json_diff(
        first.record.inputs,
        second.record.inputs,
        labels=(f"{first.record.execution_id} inputs", f"{second.record.execution_id} inputs"),
    )
    a, b = (_side(side.compared, side.state) for side in sides)
    output_diff = json_diff(
        sides[0].state.output,
        sides[1].state.output,
        labels=(f"{first.record.execution_id} output", f"{second.record.execution_id} output"),
    )
    same = (
        not any(step["differs"] for step in steps)
        and a["status"] == b["status"]
        and output_diff is None
        and workflow_diff is None
        and inputs_diff is None
    )
    return {
        "a": a,
        "b": b,
        "same": same,
        "same_workflow": workflow_diff is None,
        "workflow_diff": workflow_diff,
        "same_inputs": inputs_diff is None,
        "inputs_diff": inputs_diff,
        "output_diff": output_diff,
        "steps": steps,
        "differing_steps": sum(1 for step in steps if step["differs"]),
    }


def _with_parts(row: dict[str, Any], sides: tuple[_Replayed, _Replayed]) -> dict[str, Any]:
    """Add a map's `items_differ` (indices) or a loop's `iterations_differ` (numbers) to a row.

    A map or loop step differs when any of its items or iterations does (another status, attempt
    count or output), so a retried item shows though the map's own output is the same.
    """
    step_id = row["step_id"]
    if row["a"] is None or row["b"] is None:
        return row
    is_loop = any("loop" in side for side in (row["a"], row["b"]))
    is_map = any("items" in side for side in (row["a"], row["b"]))
    if not (is_loop or is_map):
        return row
    first, second = (side.parts.get(step_id, {}) for side in sides)
    reused = {
        number
        for number in {*first, *second}
        if _reused_by(sides, f"{step_id}[{number}]" if is_map else f"{step_id}#{number}")
    }
    differing = parts_differing(first, second, reused)
    row["iterations_differ" if is_loop else "items_differ"] = differing
    row["differs"] = row["differs"] or bool(differing)
    return row


def _reused_by(sides: tuple[_Replayed, _Replayed], unit_id: str) -> str | None:
    """`b` when b's unit is a's result copied by a fork (b forked from a), `a` the other way."""
    if sides[1].reused_from(sides[0], unit_id):
        return "b"
    if sides[0].reused_from(sides[1], unit_id):
        return "a"
    return None


def _compare_step(
    step_id: str,
    first: Mapping[str, Any] | None,
    second: Mapping[str, Any] | None,
    reused_by: str | None = None,
) -> dict[str, Any]:
    """One row of the comparison: both sides, where the step is, the output verdict and diff.

    `reused_by` names the side whose step is the other's result copied by a fork (`a` or `b`,
    in the row as `reused_by`): its attempts and duration (it did not run) are no difference.
    """
    if first is None or second is None:
        where = "a" if second is None else "b"
        return {
            "step_id": step_id,
            "in": where,
            "a": None if first is None else dict(first),
            "b": None if second is None else dict(second),
            "output": "only in " + where,
            "output_diff": None,
            "differs": True,
            "reused_by": None,
        }
    output_diff = json_diff(
        first["output"], second["output"], labels=(f"a {step_id}", f"b {step_id}")
    )
    differs = (
        output_diff is not None
        or first["status"] != second["status"]
        or (reused_by is None and first["attempts"] != second["attempts"])
    )
    unfinished = [name for name, side in (("a", first), ("b", second)) if _unfinished(side)]
    if output_diff is None:
        verdict = "equal"
    elif unfinished:
        # An output that is not there yet has not changed: say which side has not finished.
        verdict, output_diff = "not finished in " + " and ".join(unfinished), None
    else:
        verdict = "changed"
    return {
        "step_id": step_id,
        "in": "both",
        "a": dict(first),
        "b": dict(second),
        "output": verdict,
        "output_diff": output_diff,
        "differs": differs,
        "reused_by": reused_by,
    }


_UNFINISHED: frozenset[str] = frozenset({"pending", "running", "retrying", "waiting"})


def _unfinished(side: Mapping[str, Any]) -> bool:
    """Whether a step's side has no final status yet (so no output to compare)."""
    return str(side["status"]) in _UNFINISHED

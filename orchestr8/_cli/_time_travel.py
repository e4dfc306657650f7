"""`inspect ID --at SEQ`, `--diff SEQ_A SEQ_B` and `compare`: the past read, and runs compared.

`--at` shows the state right after one event as `inspect ID` shows the present (the header, the
steps table, the maps, the events up to that one), after a line naming the event and one
with the tokens used by then; `--at` also takes a time, meaning the last event recorded at or
before it. `--diff` lists what changed between two events: the execution's status, each step,
map item or iteration whose status, attempts, output or error changed (old → new), the gates
that opened or were resolved, the tokens used, and the events in between counted by type.
`render_comparison` is the text of `orchestr8 compare` (the command is `_compare`). The
documents come from the journal's read models (`_journal/_state_at`, `_state_diff`,
`_comparison`); this module reads the journal and renders them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from .._errors import EventOutOfRangeError
from .._journal._events import Event
from .._journal._journal import ExecutionRecord, Journal
from .._journal._state_at import check_seq, parse_moment, seq_at_time, state_document
from .._journal._state_diff import StateDiff, UnitChange, state_diff
from ._support import CommandError
from ._views import (
    STATUS_COLORS,
    Cell,
    describe,
    dump_json,
    format_duration,
    local_time,
    paint,
    render_execution_detail,
    render_table,
    shorten,
)

__all__ = [
    "MAX_DIFF_ROWS",
    "render_comparison",
    "render_diff",
    "render_state_at",
    "show_diff",
    "show_state_at",
    "token_count",
]

MAX_DIFF_ROWS: Final = 100
"""The most changed units `--diff` lists as text; `--json` lists every one."""


async def show_state_at(
    store: Journal,
    record: ExecutionRecord,
    at: str,
    *,
    as_json: bool,
    color: bool,
    events_limit: int | None,
    journal: str | None,
) -> str:
    """What `inspect ID --at AT` prints: AT is a seq, or a time (the last event by then).

    Raises:
        CommandError: AT is neither, or names no event of the execution (the message says which
            events it has).
    """
    execution_id = record.execution_id
    last_seq = await store.last_seq(execution_id)
    try:
        if re.fullmatch(r"[+-]?\d+", at.strip()):
            seq = check_seq(execution_id, last_seq, int(at))
            events = await store.events(execution_id, limit=seq)
        else:
            moment = parse_moment(at)
            if moment is None:
                first = await store.events(execution_id, limit=1)
                raise CommandError(f"--at {at}: {_expected_moment(execution_id, last_seq, first)}")
            every = await store.events(execution_id)
            try:
                events = every[: seq_at_time(execution_id, every, moment)]
            except EventOutOfRangeError as error:
                raise CommandError(f"--at {at}: {error}{_in_local_time(at, every)}") from None
    except EventOutOfRangeError as error:
        raise CommandError(f"--at {at}: {error}") from None
    document = state_document(record, events, last_seq=last_seq)
    if document["at"] == last_seq:
        # At the last event, the status every view shows (`interrupted` if its process died).
        from .._execution._liveness import shown_status
        from .._journal._events import ExecutionStatus

        status = ExecutionStatus(document["status"])
        document["status"] = await shown_status(store, execution_id, status)
    if as_json:
        return dump_json(document)
    children = {
        step["child"]["execution_id"]: await store.get_execution(step["child"]["execution_id"])
        for step in document["steps"].values()
        if "child" in step
    }
    statuses = {child_id: str(child.status) for child_id, child in children.items()}
    return render_state_at(
        document,
        [event.to_json() for event in events],
        color=color,
        events_limit=events_limit,
        journal=journal,
        children=statuses,
    )


def _in_local_time(text: str, events: Sequence[Event]) -> str:
    """For a time given without an offset (local time), the events' times in local time too.

    `text` is a time `parse_moment` read.
    """
    import datetime

    given = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if not events or given.tzinfo is not None:
        return ""
    return (
        f"; a time without an offset is local time: from {local_time(events[0].ts)} "
        f"to {local_time(events[-1].ts)}"
    )


def _expected_moment(execution_id: str, last_seq: int, first: Sequence[Event]) -> str:
    """What `--at` takes, with the execution's own first event as the example time.

    The example is given in UTC and in local time, to the second (a time to the second means
    the end of that second, so both name the first event); the journal writes an event's `ts`
    as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    """
    if not first:
        return f"expected an event's seq or a time, but execution {execution_id} has no events yet"
    utc = first[0].ts[:19] + "Z"
    return (
        f"expected an event's seq (1..{last_seq}) or a time "
        f"({utc}, or local time {local_time(first[0].ts)})"
    )


def render_state_at(
    document: Mapping[str, Any],
    events: Sequence[Mapping[str, Any]],
    *,
    color: bool,
    events_limit: int | None = None,
    journal: str | None = None,
    children: Mapping[str, str] | None = None,
) -> str:
    """The text of `inspect ID --at SEQ`: the event it stops at, the tokens, then the detail view.

    `children` gives a sub-workflow step's child execution its status now (the child has a
    history of its own: `inspect CHILD --at` travels in it).
    """
    children = children or {}
    steps = {
        step_id: (
            {
                **step,
                "child": {
                    **step["child"],
                    "status": "now " + children[step["child"]["execution_id"]],
                },
            }
            if "child" in step and step["child"]["execution_id"] in children
            else {key: value for key, value in step.items() if key != "child"}
        )
        for step_id, step in document["steps"].items()
    }
    detail = {**document, "steps": steps, "events": list(events)}
    moment = local_time(document["at_time"])
    lines = [
        f"{'at':<10} seq {document['at']} of {document['last_seq']}: "
        f"{document['at_type']} at {moment}"
    ]
    if document["usage"]:
        lines.append(f"{'usage':<10} {_counts(document['usage'])}")
    # The detail view draws the gates table too, from `gates`.
    detail_text = render_execution_detail(
        detail, color=color, events_limit=events_limit, journal=journal
    )
    return "\n".join(lines) + "\n" + detail_text


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in counts.items())


async def show_diff(
    store: Journal, record: ExecutionRecord, first: int, second: int, *, as_json: bool, color: bool
) -> str:
    """What `inspect ID --diff SEQ_A SEQ_B` prints: the changes from one event to the other.

    Raises:
        CommandError: a seq names no event of the execution, or SEQ_A comes after SEQ_B.
    """
    last_seq = await store.last_seq(record.execution_id)
    events = await store.events(record.execution_id, limit=max(first, second, 1))
    try:
        diff = state_diff(record, events, first, second, last_seq=last_seq)
    except EventOutOfRangeError as error:
        raise CommandError(f"--diff {first} {second}: {error}") from None
    return dump_json(diff.to_json()) if as_json else render_diff(diff, color=color)


def render_diff(diff: StateDiff, *, color: bool) -> str:
    """The text of `--diff`: the events between, the status, then one row per changed unit."""
    noun = "event" if diff.event_count == 1 else "events"
    kinds = ", ".join(f"{count} {kind}" for kind, count in diff.event_types.items())
    lines = [
        f"{'execution':<10} {diff.execution_id}",
        f"{'from':<10} seq {diff.first} to seq {diff.second}: {diff.event_count} {noun}"
        + (f" ({kinds})" if kinds else ""),
    ]
    before, after = diff.status
    status = paint(after, STATUS_COLORS.get(after), color)
    lines.append(
        f"{'status':<10} {before} → {status}"
        if before != after
        else f"{'status':<10} {status} (unchanged)"
    )
    if diff.usage:
        lines.append(f"{'usage':<10} {_counts(diff.usage)} more")
    if diff.gates_opened:
        lines.append(f"{'opened':<10} gates {', '.join(diff.gates_opened)}")
    if diff.gates_resolved:
        resolved = ", ".join(
            f"{gate} ({how}{_answered(diff.answers.get(gate))})"
            for gate, how in diff.gates_resolved.items()
        )
        lines.append(f"{'resolved':<10} gates {resolved}")
    if not diff.units:
        return "\n".join([*lines, "", "no step changed"])
    rows = [_unit_row(change, color=color) for change in diff.units[:MAX_DIFF_ROWS]]
    table = render_table(["UNIT", "STATUS", "ATTEMPTS", "CHANGE"], rows, color=color)
    left_out = len(diff.units) - MAX_DIFF_ROWS
    if left_out > 0:
        table += f"\n... and {left_out} more units changed; --json lists every one"
    return "\n".join([*lines, "", table])


def _answered(answer: Mapping[str, Any] | None) -> str:
    """Who answered a gate and why (` by ann: too early`), or how it timed out."""
    if not answer:
        return ""
    if answer.get("how") == "timeout":
        return " on timeout"
    text = f" by {answer['by']}" if answer.get("by") else ""
    return text + (f": {answer['reason']}" if answer.get("reason") else "")


def _unit_row(change: UnitChange, *, color: bool) -> list[Cell]:
    after = change.after
    before = change.before or {"status": "-", "attempts": "-"}
    status: Cell = str(after["status"])
    if "status" in change.changed:
        status = (
            f"{before['status']} → {after['status']}",
            STATUS_COLORS.get(str(after["status"])),
        )
    attempts = str(after["attempts"])
    if "attempts" in change.changed:
        attempts = f"{before['attempts']} → {after['attempts']}"
    notes = []
    if "output" in change.changed and after["output"] is not None:
        notes.append("output " + json.dumps(after["output"], ensure_ascii=False))
    if "error" in change.changed and after["error"] is not None:
        notes.append("error " + describe(after["error"]))
    return [change.unit_id, status, attempts, shorten("; ".join(notes), 80)]


def token_count(usage: Mapping[str, int] | None) -> str:
    """The tokens of a usage record, for a table cell: counts named `*tokens` summed, or `-`."""
    if not usage:
        return "-"
    tokens = [count for name, count in usage.items() if name.endswith("tokens")]
    return str(sum(tokens)) if tokens else "-"


def render_comparison(document: Mapping[str, Any], *, color: bool) -> str:
    """The text of `compare`: both executions, the steps table, then the diffs."""
    a, b = document["a"], document["b"]

    def status(text: str | None) -> Cell:
        return ("-", None) if text is None else (text, STATUS_COLORS.get(text))

    header_rows: list[list[Cell]] = [
        ["execution", a["execution_id"], b["execution_id"]],
        ["workflow", a["workflow"], b["workflow"]],
        ["status", status(a["status"]), status(b["status"])],
        ["started", local_time(a["started_at"]), local_time(b["started_at"])],
        ["duration", format_duration(a["duration"]), format_duration(b["duration"])],
        ["tokens", token_count(a["usage"]), token_count(b["usage"])],
    ]
    header = render_table(["", "A", "B"], header_rows, color=color)
    verdicts = [
        "same workflow" if document["same_workflow"] else "the workflows differ (diff below)",
        "same inputs" if document["same_inputs"] else "the inputs differ (diff below)",
    ]
    if document["output_diff"] is not None:
        verdicts.append("the outputs differ (diff below)")
    differing = document["differing_steps"]
    if not differing:
        verdicts.append("no step differs")
    else:
        verdicts.append("1 step differs" if differing == 1 else f"{differing} steps differ")
    rows: list[list[Cell]] = []
    for step in document["steps"]:
        sides = [step["a"] or {}, step["b"] or {}]
        rows.append(
            [
                ("* " if step["differs"] else "  ") + step["step_id"],
                *(status(side.get("status")) for side in sides),
                *(str(side["attempts"]) if side else "-" for side in sides),
                *(format_duration(side.get("duration")) for side in sides),
                *(token_count(side.get("usage")) for side in sides),
                _note(step),
            ]
        )
    headers = ["STEP", "A", "B", "A TRIES", "B TRIES", "A TIME", "B TIME", "A TOKENS", "B TOKENS"]
    table = render_table([*headers, "OUTPUT"], rows, color=color)
    parts = [header, "; ".join(verdicts), table]
    children = [
        f"  {step['step_id']}: orchestr8 compare {step['a']['child']['execution_id']} "
        f"{step['b']['child']['execution_id']}"
        for step in document["steps"]
        if "child" in (step["a"] or {}) and "child" in (step["b"] or {})
    ]
    if children:
        parts.append(
            "sub-workflows run as child executions; compare them with:\n" + "\n".join(children)
        )
    for step in document["steps"]:
        if step["output_diff"] is not None:
            parts.append(f"output of {step['step_id']}:\n{step['output_diff']}")
    for name in ("output", "workflow", "inputs"):
        diff = document[f"{name}_diff"]
        if diff is not None:
            parts.append(f"{paint(name, 'bold', color)} of the executions:\n{diff}")
    return "\n\n".join(parts)


def _note(step: Mapping[str, Any]) -> str:
    """A step row's last column: the output verdict, a fork's reuse, a map's or loop's progress."""
    notes = [step["output"]]
    reused_by = step.get("reused_by")
    if reused_by:
        notes.append(f"{reused_by} reused {'a' if reused_by == 'b' else 'b'}'s (forked)")
    for name in ("a", "b"):
        side = step[name] or {}
        if "items" in side:
            items = side["items"]
            notes.append(f"{name}: map {items['count']}, {items.get('succeeded', 0)} succeeded")
        if "loop" in side:
            notes.append(f"{name}: loop {side['loop']['iterations']} iterations")
    for key, noun in (("items_differ", "items"), ("iterations_differ", "iterations")):
        if step.get(key):
            notes.append(f"{noun} {_numbers(step[key])} differ")
    return "; ".join(notes)


def _numbers(numbers: Sequence[int], shown: int = 10) -> str:
    """Item indices or iteration numbers for a note: `0, 2, 4`, the first `shown` of many."""
    text = ", ".join(str(number) for number in numbers[:shown])
    return text if len(numbers) <= shown else f"{text} ... ({len(numbers)} in all)"

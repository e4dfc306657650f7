"""What the command line shows: results, the tables of `inspect`, and the helpers they share.

Only the commands import this module, when they run, so its imports do not slow down
`orchestr8 --help`. The live progress of a run is `_progress`.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TextIO

from .._execution._gates import gate_document
from .._execution._liveness import INTERRUPTED
from .._execution._results import ExecutionResult
from .._journal._budget_views import budget_spend
from .._journal._costs import add_cost
from .._journal._events import Event, ExecutionStatus, StepStatus
from .._journal._gate_views import expiry_outcome, refused_answer_line
from .._journal._iterations import LoopProgress, is_iteration_of, loop_progress
from .._journal._journal import ExecutionRecord
from .._journal._map_items import describe_items, item_counts, split_item_id
from .._journal._replay import replay
from .._shell._options import journal_hint

_COLORS: Mapping[str, str] = {
    "red": "31",
    "green": "32",
    "yellow": "33",
    "blue": "34",
    "dim": "2",
    "bold": "1",
}
STATUS_COLORS: Mapping[str, str] = {
    "succeeded": "green",
    "failed": "red",
    "cancelled": "yellow",
    "retrying": "yellow",
    "running": "blue",
    "skipped": "dim",
    "pending": "dim",
    "interrupted": "red",
    "waiting": "yellow",
}
"""The colour each execution or step status is shown in."""


def wants_color(stream: TextIO) -> bool:
    """Whether to colour `stream`: a terminal, `NO_COLOR` unset and `TERM` not `dumb`."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def paint(text: str, color: str | None, enabled: bool) -> str:
    """Wrap `text` in the ANSI colour `color` when `enabled`."""
    if not enabled or color is None:
        return text
    return f"\x1b[{_COLORS[color]}m{text}\x1b[0m"


def format_duration(seconds: float | None) -> str:
    """Render seconds for people: `0.42s`, `12.3s`, `4m05s`, `2h03m`; `-` when unknown."""
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def describe(error: Any) -> str:
    """Render an error object `{type, message, step_id?}` as one line."""
    if not isinstance(error, Mapping):
        return "" if error is None else str(error)
    text = ": ".join(str(error[key]) for key in ("type", "message") if error.get(key))
    if error.get("step_id"):
        text += f" (step {error['step_id']})"
    return text


def shorten(text: str, width: int) -> str:
    """Cut `text` to one line of at most `width` characters, marking the cut with `...`."""
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def dump_json(value: Any) -> str:
    """Pretty JSON as the CLI prints documents: 2-space indent, non-ASCII kept."""
    return json.dumps(value, indent=2, ensure_ascii=False)


def result_document(result: ExecutionResult) -> dict[str, Any]:
    """The `--json` document of a finished run: id, status, output, error and every step."""
    return {
        "execution_id": result.execution_id,
        "status": str(result.status),
        "output": result.output,
        "error": result.error,
        "steps": {
            step_id: {
                "status": str(step.status),
                "attempts": step.attempts,
                "output": step.output,
                "error": step.error,
            }
            for step_id, step in result.steps.items()
        },
    }


def render_result(result: ExecutionResult, *, color: bool) -> str:
    """The human form of a finished run: its status, then the output or the error."""
    status = str(result.status)
    lines = [f"status: {paint(status, STATUS_COLORS.get(status), color)}"]
    if result.status is ExecutionStatus.SUCCEEDED:
        lines.append("output: " + dump_json(result.output))
    elif result.status is ExecutionStatus.WAITING:
        # Not an error: the run stopped for answers (its gates are named on stderr).
        lines.append("waiting for approval: answer its gates, then resume it")
    else:
        lines.append(f"error: {describe(result.error)}")
        failed = [
            f"  {step_id}: {describe(step.error)}"
            for step_id, step in result.steps.items()
            if step.status is StepStatus.FAILED
        ]
        if len(failed) > 1:
            lines += ["failed steps:", *failed]
    return "\n".join(lines)


Cell = str | tuple[str, str | None]
"""A table cell: plain text, or (text, colour name)."""


def render_table(headers: Sequence[str], rows: Iterable[Sequence[Cell]], *, color: bool) -> str:
    """Align `rows` under `headers` in columns two spaces apart; the last column is not padded."""
    table = [[(cell, None) if isinstance(cell, str) else cell for cell in row] for row in rows]
    widths = [len(header) for header in headers]
    for row in table:
        for index, (text, _) in enumerate(row):
            widths[index] = max(widths[index], len(text))
    last = len(headers) - 1

    def line(cells: Sequence[tuple[str, str | None]]) -> str:
        parts = [
            paint(text if index == last else text.ljust(widths[index]), style, color)
            for index, (text, style) in enumerate(cells)
        ]
        return "  ".join(parts).rstrip()

    heading = line([(header, "bold") for header in headers])
    return "\n".join([heading, *(line(row) for row in table)])


def _parse_time(timestamp: str | None) -> datetime.datetime | None:
    if not timestamp:
        return None
    try:
        return datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return None


def wall_duration(started_at: str | None, finished_at: str | None) -> float | None:
    """Seconds of wall clock between two UTC ISO-8601 timestamps (None: either is unknown)."""
    started, finished = _parse_time(started_at), _parse_time(finished_at)
    if started is None or finished is None:
        return None
    return max(0.0, (finished - started).total_seconds())


def local_time(timestamp: str | None) -> str:
    """Render a UTC ISO-8601 timestamp in local time to the second, or `-`."""
    moment = _parse_time(timestamp)
    if moment is None:
        return "-"
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def execution_summary(record: ExecutionRecord, status: str | None = None) -> dict[str, Any]:
    """One row of `inspect`'s list, as JSON: id, workflow, status, times and wall duration.

    `status` is the one to show (`interrupted`, say); the journal's by default.
    """
    return {
        "execution_id": record.execution_id,
        "workflow": record.workflow_name,
        "status": str(record.status) if status is None else status,
        "created_at": record.created_at,
        "started_at": record.started_at,
        "finished_at": record.finished_at,
        "duration": wall_duration(record.started_at, record.finished_at),
        "parent_id": record.parent_id,
    }


def render_execution_list(summaries: Sequence[Mapping[str, Any]], *, color: bool) -> str:
    """The table of `inspect` without an id: newest first, one execution per row.

    A `waiting` execution whose open gates all expired (`gates_expired`) reads
    `waiting (gates expired)`: a resume applies their `on_timeout`, no answer is needed.
    """
    rows: list[list[Cell]] = [
        [
            summary["execution_id"],
            summary["workflow"],
            (
                summary["status"] + (" (gates expired)" if summary.get("gates_expired") else ""),
                STATUS_COLORS.get(summary["status"]),
            ),
            local_time(summary["started_at"] or summary["created_at"]),
            format_duration(summary["duration"]),
        ]
        for summary in summaries
    ]
    headers = ["ID", "WORKFLOW", "STATUS", "STARTED", "DURATION"]
    return render_table(headers, rows, color=color)


def execution_detail(
    record: ExecutionRecord,
    events: Sequence[Event],
    *,
    interrupted: bool = False,
    children: Mapping[str, ExecutionRecord] | None = None,
    forks: Sequence[str] = (),
    refused: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """Everything `inspect ID` shows, as JSON: the execution, its steps and its events.

    `refused` are the answers to its gates that were refused (`_gate_views.refused_answers`).

    `forks` are the executions forked from it; a fork also names its source, the source's seq
    it was forked at and the step it was forked from.
    With `interrupted` (its process died while it ran) the status is `interrupted`. A
    sub-workflow step names its child execution, with the status of its record in `children`
    (by child id; `unknown` when absent); a child execution names its parent.
    """
    state = replay(events)
    budgets = budget_spend(events)
    extra_usage: dict[str, int] = {}
    extra_cost: float | None = None
    children = children or {}
    declared = [
        step["id"]
        for step in record.workflow.get("steps", ())
        if isinstance(step, Mapping) and isinstance(step.get("id"), str)
    ]
    loops = loop_progress(events)
    steps: dict[str, Any] = {}
    # A map's items are counted under their map step (`items`), not listed one by one.
    groups = item_counts(state)
    shown = [
        *declared,
        *(s for s in state.steps if s not in declared and split_item_id(s) is None),
    ]
    for step_id in _iterations_after_their_loop(shown, loops):
        step = state.steps.get(step_id)
        if step is None:
            steps[step_id] = {
                "status": "pending",
                "attempts": 0,
                "duration": None,
                "output": None,
                "error": None,
                "reason": None,
            }
            continue
        steps[step_id] = {
            "status": str(step.status),
            "attempts": step.total_attempts,
            "duration": step.duration,
            "output": step.output,
            "error": step.error,
            "reason": step.reason,
        }
        if step.usage or step.cost_usd is not None:
            steps[step_id]["usage"] = dict(step.usage)
            steps[step_id]["cost_usd"] = step.cost_usd
        budget = budgets.steps.get(step_id)
        if budget is not None and budget.settled and "usage" not in steps[step_id]:
            # No call of its own in this journal: a fork's kept step, or a sub-workflow step
            # whose children's calls its budgets counted. Their settled spend stands in.
            usage = {
                name: int(budget.settled[name])
                for name in ("input_tokens", "output_tokens")
                if budget.settled.get(name)
            }
            cost = budget.settled.get("cost_usd")
            steps[step_id]["usage"] = usage
            steps[step_id]["cost_usd"] = cost
            for name, value in usage.items():
                extra_usage[name] = extra_usage.get(name, 0) + value
            extra_cost = add_cost(extra_cost, cost)
        if budget is not None and budget.held:
            steps[step_id]["unsettled"] = dict(budget.held)
        if step_id in groups:
            steps[step_id]["items"] = groups[step_id].to_json()
        if step_id in loops:
            steps[step_id]["loop"] = loops[step_id].to_json()
        if step.child is not None:
            child = children.get(step.child)
            status = str(child.status) if child is not None else "unknown"
            steps[step_id]["child"] = {"execution_id": step.child, "status": status}
        if step.llm is not None:
            steps[step_id]["llm"] = step.llm.to_json()
        if step.plans or step.replans:
            steps[step_id]["plans"] = {
                "proposed": step.plans,
                "rejected": step.rejected_plans,
                "replans": step.replans,
            }
    parent = None
    if record.parent_id is not None:
        parent = {"execution_id": record.parent_id, "step_id": record.parent_step}
    return {
        "execution_id": record.execution_id,
        "workflow": record.workflow_name,
        "status": INTERRUPTED if interrupted else str(state.status),
        "created_at": record.created_at,
        "started_at": state.started_at,
        "finished_at": state.finished_at,
        "duration": wall_duration(state.started_at, state.finished_at),
        "inputs": record.inputs,
        "output": state.output,
        "error": state.error,
        "parent": parent,
        **fork_lineage(record, events, forks),
        "usage": {
            name: state.usage.get(name, 0) + extra_usage.get(name, 0)
            for name in (*state.usage, *(n for n in extra_usage if n not in state.usage))
        },
        "cost_usd": add_cost(state.cost_usd, extra_cost),
        **({"unsettled": dict(budgets.held)} if budgets.held else {}),
        "steps": steps,
        "gates": {gate_id: gate_document(gate) for gate_id, gate in state.gates.items()},
        "refused_answers": [dict(answer) for answer in refused],
        "events": [event.to_json() for event in events],
    }


def fork_lineage(
    record: ExecutionRecord, events: Sequence[Event], forks: Sequence[str]
) -> dict[str, Any]:
    """Where a fork came from (`forked_from`, `fork_seq`, `from_step`), and its own `forks`."""
    first = events[0] if events else None
    from_step = None
    if first is not None and first.type == "execution.started":
        found = first.data.get("from_step")
        from_step = found if isinstance(found, str) else None
    return {
        "forked_from": record.forked_from,
        "fork_seq": record.fork_seq,
        "from_step": from_step,
        "forks": list(forks),
    }


def format_cost(cost: float | None) -> str:
    """US dollars as `inspect` shows them: six fixed decimals (`$0.000050`), `-` for none."""
    return "-" if cost is None else f"${cost:,.6f}"


def render_spend(detail: Mapping[str, Any], *, color: bool) -> str:
    """The tokens and cost of each step that called a model, and the total; "" when none did.

    Tokens are the steps' `step.usage` counts, the cost the sum of their `llm.called` costs
    (see docs/budgets.md); a map step counts its items.
    """
    rows: list[list[Cell]] = [
        [
            step_id,
            str((step.get("usage") or {}).get("input_tokens", 0)),
            str((step.get("usage") or {}).get("output_tokens", 0)),
            format_cost(step.get("cost_usd")),
        ]
        for step_id, step in detail["steps"].items()
        if step.get("usage") or step.get("cost_usd") is not None
    ]
    rows += [
        [
            f"{step_id} (held, unsettled)",
            str(int(step["unsettled"].get("input_tokens", 0))),
            str(int(step["unsettled"].get("output_tokens", 0))),
            format_cost(step["unsettled"].get("cost_usd")),
        ]
        for step_id, step in detail["steps"].items()
        if step.get("unsettled")
    ]
    if not rows:
        return ""
    usage = detail.get("usage") or {}
    total = [
        "total",
        str(usage.get("input_tokens", 0)),
        str(usage.get("output_tokens", 0)),
        format_cost(detail.get("cost_usd")),
    ]
    headers = ["SPEND", "INPUT TOKENS", "OUTPUT TOKENS", "COST"]
    return "\n\n" + render_table(headers, [*rows, total], color=color)


def render_gates(gates: Mapping[str, Mapping[str, Any]], *, color: bool) -> str:
    """The gates table of `inspect ID`: each approval gate, its status, deadline and answer.

    An open gate whose deadline passed (`expired`: no process applied its `on_timeout`) shows
    `expired`, and what a resume does with it.
    """
    rows: list[list[Cell]] = []
    for gate_id, gate in gates.items():
        answer = gate.get("answer") or {}
        status = gate["status"]
        if answer:
            by = f"by {answer.get('by')}" + (
                f": {answer['reason']}" if answer.get("reason") else ""
            )
        elif gate.get("expired"):
            status = "expired"
            by = f"timed out; {expiry_outcome(gate.get('on_timeout'))}"
        else:
            by = shorten(gate.get("prompt") or "", 60)
        rows.append(
            [
                gate_id,
                (status, GATE_COLORS.get(status)),
                local_time(gate.get("deadline")),
                by,
            ]
        )
    return render_table(["GATE", "STATUS", "DEADLINE", "ANSWER / PROMPT"], rows, color=color)


GATE_COLORS = {
    "open": "yellow",
    "expired": "red",
    "approved": "green",
    "rejected": "red",
    "closed": "red",
}
"""The colour of each gate status in `inspect`."""


def _plans_line(plans: Mapping[str, int]) -> str:
    """What `inspect` says of a step's plans: `plans: 2 proposed, 1 rejected; replanned 1 time`."""
    parts = []
    if plans["proposed"]:
        parts.append(f"plans: {plans['proposed']} proposed, {plans['rejected']} rejected")
    if plans["replans"]:
        times = "time" if plans["replans"] == 1 else "times"
        parts.append(f"replanned {plans['replans']} {times}")
    return "; ".join(parts)


def _iterations_after_their_loop(
    step_ids: Sequence[str], loops: Mapping[str, LoopProgress]
) -> list[str]:
    """`step_ids` with each loop's iterations (`ID#k`) moved to just after the loop step."""
    iterations = {
        loop: [unit for unit in step_ids if is_iteration_of(unit, loop)] for loop in loops
    }
    moved = {unit for units in iterations.values() for unit in units}
    ordered: list[str] = []
    for step_id in step_ids:
        if step_id not in moved:
            ordered.append(step_id)
            ordered.extend(iterations.get(step_id, ()))
    return ordered


def _step_note(step: Mapping[str, Any]) -> str:
    """A step row's last column: its error or skip reason, after a loop's progress or its models."""
    error = describe(step["error"]) or step.get("reason") or ""
    loop = step.get("loop")
    before = ""
    if loop is not None:
        progress = LoopProgress(loop["max_iterations"], loop["iterations"], loop["until_held"])
        before = progress.describe()
    elif step.get("llm") is not None:
        before = _model_calls(step["llm"])
    return shorten("; ".join(text for text in (before, error) if text), 80)


def _model_calls(llm: Mapping[str, Any]) -> str:
    """A step's model calls in a few words: `2 model calls (1 failed), answered by backup`."""
    calls, failed = llm["calls"], llm["failed"]
    text = f"{calls} model call{'s' if calls != 1 else ''}"
    if failed:
        text += f" ({failed} failed)"
    if llm["models"]:
        text += f", answered by {', '.join(llm['models'])}"
    skipped = llm.get("skipped") or ()
    return "; ".join((text, *skipped))


def render_execution_detail(
    detail: Mapping[str, Any],
    *,
    color: bool,
    events_limit: int | None = None,
    journal: str | None = None,
) -> str:
    """The human form of `inspect ID`: a header, the steps table and the events table.

    `events_limit` keeps the events table to the last N events (a map of 10,000 items has
    30,000), with a line saying how many were left out; None shows them all. `journal` is the
    `--journal` the command was given: the commands it suggests repeat it.
    """
    option = journal_hint(journal)
    status = detail["status"]
    fields: list[tuple[str, str]] = [
        ("execution", detail["execution_id"]),
        ("workflow", detail["workflow"]),
        ("status", paint(status, STATUS_COLORS.get(status), color)),
        ("started", local_time(detail["started_at"] or detail["created_at"])),
        ("finished", local_time(detail["finished_at"])),
        ("duration", format_duration(detail["duration"])),
        ("inputs", shorten(json.dumps(detail["inputs"], ensure_ascii=False), 100)),
    ]
    if status == INTERRUPTED:
        fields.append(
            (
                "note",
                f"its process ended while it ran; `orchestr8 resume{option} "
                f"{detail['execution_id']}` continues it",
            )
        )
    if detail.get("parent") is not None:
        parent = detail["parent"]
        fields.append(("parent", f"{parent['execution_id']} (step {parent['step_id']})"))
    if detail.get("forked_from") is not None:
        step = f" (from step {detail['from_step']})" if detail.get("from_step") else ""
        fields.append(
            ("lineage", f"forked from {detail['forked_from']} at seq {detail['fork_seq']}{step}")
        )
    if detail.get("forks"):
        fields.append(("forks", ", ".join(detail["forks"])))
    if detail["error"] is not None:
        fields.append(("error", describe(detail["error"])))
    if status == ExecutionStatus.SUCCEEDED:
        fields.append(("output", shorten(json.dumps(detail["output"], ensure_ascii=False), 100)))
    header = "\n".join(f"{name:<10} {value}" for name, value in fields)
    step_rows: list[list[Cell]] = [
        [
            step_id,
            (step["status"], STATUS_COLORS.get(step["status"])),
            str(step["attempts"]),
            format_duration(step["duration"]),
            _step_note(step),
        ]
        for step_id, step in detail["steps"].items()
    ]
    steps = render_table(
        ["STEP", "STATUS", "ATTEMPTS", "DURATION", "DETAIL"], step_rows, color=color
    )
    steps += "".join(
        f"\n  {step_id} runs child execution {step['child']['execution_id']}"
        f" ({step['child']['status']}): orchestr8 inspect{option}"
        f" {step['child']['execution_id']}"
        for step_id, step in detail["steps"].items()
        if "child" in step
    )
    steps += "".join(
        f"\n  {step_id} {_plans_line(step['plans'])}"
        for step_id, step in detail["steps"].items()
        if "plans" in step
    )
    steps += render_spend(detail, color=color)
    map_rows: list[list[Cell]] = [
        [step_id, describe_items(step["items"])]
        for step_id, step in detail["steps"].items()
        if "items" in step
    ]
    if map_rows:
        steps += "\n\n" + render_table(["MAP", "ITEMS"], map_rows, color=color)
    if detail.get("gates"):
        steps += "\n\n" + render_gates(detail["gates"], color=color)
    steps += "".join(
        f"\n  {refused_answer_line(refused)}" for refused in detail.get("refused_answers", ())
    )
    shown_events = detail["events"]
    left_out = events_limit is not None and len(shown_events) > events_limit
    if left_out:
        shown_events = shown_events[len(shown_events) - (events_limit or 0) :]
    event_rows: list[list[Cell]] = [
        [
            str(event["seq"]),
            f"{event['elapsed']:.3f}",
            event["type"],
            event.get("step_id", ""),
            str(event.get("attempt", "")),
            shorten(json.dumps(event["data"], ensure_ascii=False), 70) if event["data"] else "",
        ]
        for event in shown_events
    ]
    event_headers = ["SEQ", "ELAPSED", "TYPE", "STEP", "ATTEMPT", "DATA"]
    events = render_table(event_headers, event_rows, color=color)
    if left_out:
        events = (
            f"(the last {len(shown_events)} of {len(detail['events'])} events;"
            f" --events all shows every one)\n{events}"
        )
    return f"{header}\n\n{steps}\n\n{events}"

"""`orchestr8 compare ID_A ID_B`: two executions side by side, step by step.

The comparison itself is the journal's read model (`_journal/_comparison`); this module reads
both executions (ids or unique prefixes, as `inspect` takes them) and renders the comparison:
a header per execution, a table of the steps with each side's status, attempts, duration and
tokens and whether the outputs are equal, then a unified diff of each changed output, and of
the workflow documents and the inputs when they differ. `--json` prints the document
`GET /executions/compare` answers with. Heavy imports wait until the command runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncclick as click

from ._group import journal_option

__all__ = ["compare", "render_comparison", "token_count"]


@click.command()
@click.argument("first_id", metavar="ID_A")
@click.argument("second_id", metavar="ID_B")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
@journal_option
async def compare(first_id: str, second_id: str, as_json: bool, journal: str | None) -> int:
    """Compare two executions step by step: status, attempts, duration, tokens, outputs.

    ID_A and ID_B are execution ids or unique prefixes, of the same workflow or of different
    ones (a step of one side only is shown as such). Changed outputs, and the workflow documents
    and inputs when they differ, are shown as unified diffs of their pretty JSON.
    """
    from ._support import EXIT_OK, find_execution, guard, journal_path

    async def action() -> int:
        from .._execution._liveness import shown_status
        from .._journal._comparison import ComparedExecution, compare_executions
        from .._journal._journal import open_journal
        from .._journal._replay import replay
        from ._views import dump_json, wants_color

        path = journal_path(journal, must_exist=True)
        sides = []
        async with open_journal(path) as store:
            for text in (first_id, second_id):
                record = await find_execution(store, text)
                events = await store.events(record.execution_id)
                status = await shown_status(store, record.execution_id, replay(events).status)
                sides.append(ComparedExecution(record, events, status))
        document = compare_executions(sides[0], sides[1])
        if as_json:
            click.echo(dump_json(document))
        else:
            import sys

            click.echo(render_comparison(document, color=wants_color(sys.stdout)))
        return EXIT_OK

    return await guard(action)


def token_count(usage: Mapping[str, int] | None) -> str:
    """The tokens of a usage record, for a table cell: counts named `*tokens` summed, or `-`."""
    if not usage:
        return "-"
    tokens = [count for name, count in usage.items() if name.endswith("tokens")]
    return str(sum(tokens)) if tokens else "-"


def render_comparison(document: Mapping[str, Any], *, color: bool) -> str:
    """The text of `compare`: both executions, the steps table, then the diffs."""
    from ._views import STATUS_COLORS, Cell, format_duration, local_time, paint, render_table

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
    for step in document["steps"]:
        if step["output_diff"] is not None:
            parts.append(f"output of {step['step_id']}:\n{step['output_diff']}")
    for name in ("output", "workflow", "inputs"):
        diff = document[f"{name}_diff"]
        if diff is not None:
            parts.append(f"{paint(name, 'bold', color)} of the executions:\n{diff}")
    return "\n\n".join(parts)


def _note(step: Mapping[str, Any]) -> str:
    """A step row's last column: the output verdict, and a map's or a loop's progress."""
    notes = [step["output"]]
    for name in ("a", "b"):
        side = step[name] or {}
        if "items" in side:
            items = side["items"]
            notes.append(f"{name}: map {items['count']}, {items.get('succeeded', 0)} succeeded")
        if "loop" in side:
            notes.append(f"{name}: loop {side['loop']['iterations']} iterations")
    return "; ".join(notes)

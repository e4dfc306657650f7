"""`orchestr8 compare ID_A ID_B`: two executions side by side, step by step.

The comparison itself is the journal's read model (`_journal/_comparison`); this module reads
both executions (ids or unique prefixes, as `inspect` takes them) and prints the comparison as
`_time_travel.render_comparison` renders it, or with `--json` the document
`GET /executions/compare` answers with. Heavy imports wait until the command runs.
"""

from __future__ import annotations

import asyncclick as click

from ._group import journal_option

__all__ = ["compare"]


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
    from ._support import EXIT_OK, find_execution, guard, journal_location

    async def action() -> int:
        from .._execution._liveness import shown_status
        from .._journal._comparison import ComparedExecution, compare_executions
        from .._journal._journal import open_journal
        from .._journal._replay import replay
        from ._time_travel import render_comparison
        from ._views import dump_json, wants_color

        location = journal_location(journal, must_exist=True)
        sides = []
        async with open_journal(location) as store:
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

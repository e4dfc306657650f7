"""Commands that look without running: `validate` and `schema` (files), `inspect` (the journal).

Heavy imports wait until a command runs.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence

import asyncclick as click

from .._shell._options import providers_option
from ._group import journal_option

__all__ = ["inspect", "schema", "validate"]

_STATUSES = ("pending", "running", "waiting", "succeeded", "failed", "cancelled", "interrupted")
"""What `inspect --status` accepts: the journal's statuses and `interrupted` (see `_liveness`)."""


@click.command()
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@providers_option
async def validate(files: Sequence[str], providers_file: str | None = None) -> int:
    """Check workflow files without running them.

    Checks the JSON, the schema, the step graph and references, that every agent exists and that
    it accepts its config, and that every model a step calls has a provider that can serve it.
    Problems go to stderr as `JSON path: message`; the exit code is 1 if any file is invalid.
    """
    from .._errors import WorkflowValidationError
    from ._support import (
        EXIT_INVALID,
        EXIT_OK,
        admit_file,
        allow_local_imports,
        guard,
        load_providers,
        report_error,
    )

    async def action() -> int:
        from .._agents._registry import AgentRegistry

        providers = load_providers(providers_file)
        allow_local_imports()
        registry = AgentRegistry()
        code = EXIT_OK
        for file in files:
            try:
                workflow = admit_file(file, registry, providers=providers).workflow
            except WorkflowValidationError as error:
                report_error(str(error))
                code = EXIT_INVALID
            else:
                count = len(workflow.steps)
                noun = "step" if count == 1 else "steps"
                click.echo(f"{file}: valid workflow {workflow.name!r} ({count} {noun})")
        return code

    return await guard(action)


@click.command()
def schema() -> int:
    """Print the JSON Schema of workflow documents."""
    from .._workflow._document import workflow_schema
    from .._workflow._schema import render_schema
    from ._support import EXIT_OK

    click.echo(render_schema(workflow_schema()), nl=False)
    return EXIT_OK


@click.command()
@click.argument("execution_id", metavar="[ID]", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.option(
    "--limit",
    type=click.IntRange(min=1, max=100_000),
    default=None,
    metavar="N",
    help="List at most N executions.  [default: 20]",
)
@click.option(
    "--status",
    type=click.Choice(_STATUSES),
    default=None,
    help="List only executions with this status.",
)
@click.option(
    "--children",
    "include_children",
    is_flag=True,
    help="List child executions (sub-workflows, plans) too, not only top-level ones.",
)
@click.option(
    "--workflow",
    "workflow_name",
    default=None,
    metavar="NAME",
    help="List only executions of the workflow with exactly this name.",
)
@click.option(
    "--id-prefix",
    default=None,
    metavar="HEX",
    help="List only executions whose id starts with these hex characters.",
)
@click.option(
    "--timeline",
    is_flag=True,
    help="With ID: draw each step's attempts and retry waits on a time axis.",
)
@click.option(
    "--events",
    "events_shown",
    default="1000",
    metavar="N|all",
    help="With ID: show the last N events in the events table, or all.  [default: 1000]",
)
@click.option(
    "--at",
    "at",
    default=None,
    metavar="SEQ|TIME",
    help="With ID: the state right after event SEQ (or the last event by TIME).",
)
@click.option(
    "--diff",
    "diff",
    type=int,
    nargs=2,
    default=None,
    metavar="SEQ_A SEQ_B",
    help="With ID: what changed between event SEQ_A and event SEQ_B.",
)
@journal_option
async def inspect(
    execution_id: str | None,
    as_json: bool,
    limit: int | None,
    status: str | None,
    timeline: bool,
    include_children: bool,
    workflow_name: str | None,
    id_prefix: str | None,
    events_shown: str,
    journal: str | None,
    at: str | None,
    diff: tuple[int, int] | None,
) -> int:
    """List executions, or show one in detail.

    Without ID, lists the most recent executions, newest first. An execution whose process died
    while it ran shows as `interrupted` until it is resumed. With ID (or a unique prefix),
    shows the execution, its steps and its events; with --timeline, a Gantt-style chart of where
    the time went; with --at, its state right after one event; with --diff, what changed
    between two events.
    """
    from ._support import (
        EXIT_OK,
        CommandError,
        describe_journal,
        find_execution,
        guard,
        journal_exists,
        journal_location,
    )

    async def action() -> int:
        from .._execution._gates import utc_now
        from .._execution._liveness import interrupted_executions, list_shown_executions
        from .._journal._gate_views import all_gates_expired, refused_answers
        from .._journal._journal import open_journal
        from .._journal._page_filter import ID_PREFIX_PATTERN
        from .._journal._replay import replay
        from ._views import (
            dump_json,
            execution_detail,
            execution_summary,
            render_execution_detail,
            render_execution_list,
            wants_color,
        )

        events_limit = _events_limit(events_shown)
        if execution_id is not None and (
            limit is not None or status is not None or include_children
        ):
            raise CommandError(
                "--limit, --status and --children apply to the list, not to one execution"
            )
        if execution_id is not None and (workflow_name is not None or id_prefix is not None):
            raise CommandError("--workflow and --id-prefix apply to the list, not to one execution")
        if id_prefix is not None and re.fullmatch(ID_PREFIX_PATTERN, id_prefix) is None:
            raise CommandError(
                f"--id-prefix {id_prefix!r}: expected 1 to 32 lowercase hex characters"
            )
        if timeline and (execution_id is None or as_json):
            raise CommandError("--timeline needs an execution ID and draws text, not --json")
        _check_time_travel(execution_id, at, diff, timeline)
        location = journal_location(journal, must_exist=execution_id is not None)
        color = wants_color(sys.stdout)
        if execution_id is None and not journal_exists(location):
            where = describe_journal(location)
            click.echo("[]" if as_json else f"no executions: there is no journal at {where}")
            return EXIT_OK
        async with open_journal(location) as store:
            if execution_id is None:
                page = await list_shown_executions(
                    store,
                    status=status,
                    limit=limit or 20,
                    top_level=not include_children,
                    workflow=workflow_name,
                    id_prefix=id_prefix,
                )
                summaries = [execution_summary(item.record, item.status) for item in page.items]
                for summary in summaries:
                    if summary["status"] == "waiting":
                        gates = replay(await store.events(summary["execution_id"])).gates
                        summary["gates_expired"] = all_gates_expired(gates.values(), utc_now())
                if as_json:
                    click.echo(dump_json(summaries))
                elif summaries:
                    click.echo(render_execution_list(summaries, color=color))
                else:
                    named = [
                        f"with status {status}" if status else "",
                        f"of workflow {workflow_name!r}" if workflow_name else "",
                        f"with an id starting {id_prefix!r}" if id_prefix else "",
                    ]
                    click.echo(" ".join(["no executions", *filter(None, named)]))
                return EXIT_OK
            record = await find_execution(store, execution_id)
            if at is not None:
                from ._time_travel import show_state_at

                click.echo(
                    await show_state_at(
                        store,
                        record,
                        at,
                        as_json=as_json,
                        color=color,
                        events_limit=events_limit,
                        journal=journal,
                    )
                )
                return EXIT_OK
            if diff is not None:
                from ._time_travel import show_diff

                first, second = diff
                click.echo(
                    await show_diff(store, record, first, second, as_json=as_json, color=color)
                )
                return EXIT_OK
            events = await store.events(record.execution_id)
            state = replay(events)
            interrupted = await interrupted_executions(store, [(record.execution_id, state.status)])
            children = {
                step.child: await store.get_execution(step.child)
                for step in state.steps.values()
                if step.child is not None
            }
            forks = await store.forks_of(record.execution_id)
            refused = refused_answers(await store.requests(record.execution_id))
        if timeline:
            import shutil

            from .._journal._timeline import render_timeline

            width = shutil.get_terminal_size((100, 24)).columns
            click.echo(
                render_timeline(events, width=width, color=color, interrupted=bool(interrupted))
            )
            return EXIT_OK
        detail = execution_detail(
            record,
            events,
            interrupted=bool(interrupted),
            children=children,
            forks=forks,
            refused=refused,
        )
        click.echo(
            dump_json(detail)
            if as_json
            else render_execution_detail(
                detail, color=color, events_limit=events_limit, journal=journal
            )
        )
        return EXIT_OK

    return await guard(action)


def _events_limit(text: str) -> int | None:
    """`--events`: a positive count, or `all` (None: no limit)."""
    from ._support import CommandError

    if text == "all":
        return None
    if text.isdigit() and int(text) > 0:
        return int(text)
    raise CommandError(f"--events takes a positive number or 'all', not {text!r}")


def _check_time_travel(
    execution_id: str | None, at: str | None, diff: tuple[int, int] | None, timeline: bool
) -> None:
    """`--at` and `--diff` need an ID, and go neither together nor with `--timeline`."""
    from ._support import CommandError

    if at is None and diff is None:
        return
    if execution_id is None:
        raise CommandError("--at and --diff need an execution ID")
    if at is not None and diff is not None:
        raise CommandError("--at shows one moment and --diff two: give one of them")
    if timeline:
        raise CommandError("--timeline draws the whole execution: leave out --at and --diff")

"""`orchestr8 run` and `orchestr8 resume`: their options, and how each begins its execution.

Both hand the execution to the driver in `_run` (progress, signals, result); what differs is how
it begins: `run` admits a workflow file with its inputs, `resume` finds a journaled execution and
continues it. Heavy imports wait until a command runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import asyncclick as click

from .._shell._options import GraceSeconds, providers_option, sync_workers_option
from ._group import journal_option

if TYPE_CHECKING:
    from .._execution._runtime import ExecutionHandle, Runtime

__all__ = ["resume", "run", "run_options"]


def run_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """Add the options `run` and `resume` share: timeout, grace, journal, threads, JSON output."""
    decorators: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
        click.option(
            "--timeout",
            "timeout_seconds",
            type=float,
            default=None,
            metavar="SECONDS",
            help="Bound the whole execution (overrides the workflow's timeout).",
        ),
        click.option(
            "--cancel-grace",
            type=GraceSeconds(),
            default=5.0,
            show_default=True,
            metavar="SECONDS",
            help="After Ctrl-C, how long steps may finish before being forced.",
        ),
        journal_option,
        sync_workers_option,
        click.option(
            "--json",
            "as_json",
            is_flag=True,
            help="Print the result as one JSON document on stdout.",
        ),
        click.option(
            "--exit-when-waiting",
            is_flag=True,
            help="Once only approval gates wait for answers, stop (status waiting) and exit 5;"
            " answer them, then resume.",
        ),
        click.option(
            "--secrets-file",
            metavar="FILE",
            help="A JSON object of secrets by name for ${secrets.NAME}; "
            "over $ORCHESTR8_SECRET_NAME variables.",
        ),
        providers_option,
    ]
    for decorator in reversed(decorators):
        function = decorator(function)
    return function


@click.command()
@click.argument("file", metavar="FILE")
@click.option(
    "--input",
    "-i",
    "input_pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="An input; VALUE is parsed as JSON when it is valid JSON, else taken as text.",
)
@click.option(
    "--inputs-file",
    metavar="FILE",
    help="A JSON object of inputs ('-' for stdin); --input values override it.",
)
@click.option(
    "--max-cost",
    "max_cost",
    type=float,
    default=None,
    metavar="USD",
    help="Cap what the execution's model calls may cost, in US dollars (the lower of it and"
    " the workflow's budget.max_cost_usd wins).",
)
@click.option(
    "--submit",
    is_flag=True,
    help="Queue the execution for `orchestr8 worker` processes (a PostgreSQL journal) and"
    " print its id, instead of running it here.",
)
@click.option(
    "--wait",
    is_flag=True,
    help="With --submit: follow the execution until it ends, and exit as run does.",
)
@run_options
async def run(
    file: str,
    input_pairs: Sequence[str],
    inputs_file: str | None,
    timeout_seconds: float | None,
    cancel_grace: float,
    journal: str | None,
    sync_workers: int | None,
    as_json: bool,
    secrets_file: str | None,
    exit_when_waiting: bool = False,
    providers_file: str | None = None,
    max_cost: float | None = None,
    submit: bool = False,
    wait: bool = False,
) -> int:
    """Run a workflow file: progress on stderr, the result on stdout.

    The exit code tells how it ended: 0 succeeded, 1 invalid workflow, inputs or options, 2 a step
    failed, 3 timed out, 5 stopped with approval gates open (--exit-when-waiting), 130
    interrupted (Ctrl-C cancels the run; a second Ctrl-C stops at once). With --submit (a
    PostgreSQL journal) a worker runs it: the id is printed, exit 0; --wait follows it to its
    end and exits as above (Ctrl-C stops following, not the execution).
    """
    from ._run import drive
    from ._submitting import submit_location, submit_run
    from ._support import (
        CommandError,
        admit_file,
        allow_local_imports,
        check_max_cost,
        check_timeout,
        guard,
        journal_location,
        load_providers,
        load_secrets,
        parse_inputs,
    )

    async def action() -> int:
        from .._execution._admission import admit

        if submit:
            _refuse_with_submit(
                timeout=timeout_seconds,
                secrets_file=secrets_file,
                sync_workers=sync_workers,
                exit_when_waiting=exit_when_waiting or None,
            )
        checked_timeout = check_timeout(timeout_seconds)
        cost_cap = check_max_cost(max_cost)
        inputs = parse_inputs(input_pairs, inputs_file)
        secrets = load_secrets(secrets_file)
        providers = load_providers(providers_file)
        allow_local_imports()
        # Admitted before the journal opens (a bad file or input leaves none behind), once:
        # the runtime starts this admission as it is.
        if wait and not submit:
            raise CommandError("--wait follows a submitted execution: give --submit too")
        location = submit_location(journal) if submit else None
        admission = admit(admit_file(file, providers=providers, max_cost_usd=cost_cap), inputs)
        workflow = admission.workflow
        if location is not None:
            return await submit_run(
                admission,
                location,
                journal_given=journal,
                wait=wait,
                as_json=as_json,
                step_ids=[step.id for step in workflow.steps],
            )

        async def begin(runtime: Runtime) -> tuple[ExecutionHandle, list[str], str]:
            from .._observability._redaction import redact

            handle = await runtime.start(admission, execution_timeout=checked_timeout)
            count = len(workflow.steps)
            headline = (
                f"execution {handle.execution_id} started: workflow {redact(workflow.name)!r}, "
                f"{count} step{'s' if count != 1 else ''}"
            )
            return handle, [step.id for step in workflow.steps], headline

        return await drive(
            begin,
            journal_location(journal),
            journal,
            cancel_grace,
            as_json,
            secrets=secrets,
            sync_workers=sync_workers,
            exit_when_waiting=exit_when_waiting,
            providers=providers,
        )

    return await guard(action)


@click.command()
@click.argument("execution_id", metavar="ID")
@click.option(
    "--input",
    "-i",
    "input_pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="An input the journal keeps redacted (its key looks like a secret), "
    "supplied again; VALUE as for run.",
)
@click.option(
    "--inputs-file",
    metavar="FILE",
    help="A JSON object of such inputs ('-' for stdin); --input values override it.",
)
@run_options
async def resume(
    execution_id: str,
    input_pairs: Sequence[str],
    inputs_file: str | None,
    timeout_seconds: float | None,
    cancel_grace: float,
    journal: str | None,
    sync_workers: int | None,
    as_json: bool,
    secrets_file: str | None,
    exit_when_waiting: bool = False,
    providers_file: str | None = None,
) -> int:
    """Continue an execution that died, failed or was cancelled.

    ID may be a unique prefix. Steps that succeeded keep their recorded output; the others run
    again; approval gates that wait open again with their deadlines. Progress, output and exit
    codes are those of `run`. Inputs the journal keeps redacted
    (`api_key`, `password`...) must be given again with --input; ${secrets.NAME} references are
    read again from the environment or --secrets-file.
    """
    from ._run import drive
    from ._support import (
        CommandError,
        allow_local_imports,
        check_timeout,
        declared_steps,
        find_execution,
        guard,
        journal_location,
        load_providers,
        load_secrets,
        parse_inputs,
        resume_recorded,
    )

    async def action() -> int:
        checked_timeout = check_timeout(timeout_seconds)
        inputs = parse_inputs(input_pairs, inputs_file)
        secrets = load_secrets(secrets_file)
        providers = load_providers(providers_file)
        allow_local_imports()
        location = journal_location(journal, must_exist=True)

        async def begin(runtime: Runtime) -> tuple[ExecutionHandle, list[str], str]:
            from .._errors import InputValidationError
            from .._journal._events import ExecutionStatus
            from .._journal._map_items import split_item_id
            from .._journal._replay import replay

            record = await find_execution(runtime.journal, execution_id)
            events = await runtime.journal.events(record.execution_id)
            state = replay(events)
            try:
                handle = await runtime.resume(
                    record.execution_id, execution_timeout=checked_timeout, inputs=inputs
                )
            except InputValidationError as error:
                raise CommandError(
                    f"{error}\ngive redacted inputs again with --input NAME=VALUE "
                    "(or --inputs-file FILE)"
                ) from None
            last_seq = events[-1].seq if events else 0
            if not await resume_recorded(runtime.journal, handle, last_seq):
                # `handle.wait()` then reports why (the journal failed), with the resume command.
                return handle, declared_steps(record), ""
            step_ids = declared_steps(record)
            # Steps only: a map's items (`ID[3]`) and a loop's iterations (`ID#2`) are units.
            reused = sum(state.steps[s].reusable for s in step_ids if s in state.steps)
            items = sum(
                unit.reusable
                for unit_id, unit in state.steps.items()
                if (owner := split_item_id(unit_id)) is not None
                and not (owner[0] in state.steps and state.steps[owner[0]].reusable)
            )
            headline = (
                f"execution {record.execution_id} resumed: workflow "
                f"{record.workflow_name!r}, {reused} of {len(step_ids)} steps reused"
                + (f" (and {items} map item{'s' if items != 1 else ''})" if items else "")
            )
            if state.status is ExecutionStatus.RUNNING:
                headline = (
                    f"note: execution {record.execution_id} was interrupted (its process ended, "
                    f"or its journal failed, while it ran); it continues here\n{headline}"
                )
            return handle, step_ids, headline

        return await drive(
            begin,
            location,
            journal,
            cancel_grace,
            as_json,
            secrets=secrets,
            sync_workers=sync_workers,
            exit_when_waiting=exit_when_waiting,
            providers=providers,
        )

    return await guard(action)


_NOT_WITH_SUBMIT = {
    "timeout": 'the worker applies the workflow\'s own timeout (set "timeout" in the workflow)',
    "secrets_file": "a worker resolves ${secrets.NAME} from its own --secrets-file or "
    "ORCHESTR8_SECRET_* variables",
    "sync_workers": "the worker's --sync-workers applies",
    "exit_when_waiting": "add --wait to follow it; its gates wait on the worker for "
    "`orchestr8 approve`",
}
"""The `run` options a submitted execution cannot honour, and what applies instead."""


def _refuse_with_submit(**given: object) -> None:
    """Refuse an option of `run` that a worker, not this command, decides with --submit.

    Raises:
        CommandError: one was given; the message names it and what applies instead.
    """
    from ._support import CommandError

    for name, value in given.items():
        if value is not None:
            option = "--" + name.replace("_", "-")
            raise CommandError(f"{option} does not apply with --submit: {_NOT_WITH_SUBMIT[name]}")

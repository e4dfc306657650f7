"""`orchestr8 fork`: a new execution that reuses a finished one's outputs up to a step.

The plan (what is kept, what runs again and which paid calls that repeats) is
`_execution/_forking`'s; `--dry-run` prints it and writes nothing, otherwise the fork runs like
`run` (the driver in `_run`: progress, signals, result, exit codes). Heavy imports wait until the
command runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import asyncclick as click

from ._run_commands import run_options

if TYPE_CHECKING:
    from .._execution._runtime import ExecutionHandle, Runtime

__all__ = ["fork"]


@click.command()
@click.argument("execution_id", metavar="ID")
@click.option(
    "--from",
    "from_step",
    required=True,
    metavar="STEP",
    help="The step to run again with its dependents: STEP, a map item STEP[i] or a loop "
    "iteration STEP#k.",
)
@click.option(
    "--input",
    "-i",
    "input_pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="Change an input of the source (KEY may be dotted: a.b=1); VALUE as for run.",
)
@click.option(
    "--workflow",
    "workflow_file",
    metavar="FILE",
    help="Run this workflow document instead of the recorded one; kept steps must be unchanged.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Show what would be kept, what would run again and which paid calls; write nothing.",
)
@run_options
async def fork(
    execution_id: str,
    from_step: str,
    input_pairs: Sequence[str],
    workflow_file: str | None,
    dry_run: bool,
    timeout_seconds: float | None,
    cancel_grace: float,
    journal: str | None,
    sync_workers: int | None,
    as_json: bool,
    secrets_file: str | None,
    exit_when_waiting: bool = False,
    providers_file: str | None = None,
) -> int:
    """Re-run an execution from a step, reusing the outputs before it.

    ID may be a unique prefix. Every step not downstream of --from keeps the output the source
    recorded; --from and everything depending on it run again, with --input changes. A step the
    source did not finish runs again too. With --dry-run, prints the plan (--json: as JSON) and
    writes nothing. Progress, output, approval gates and exit codes are those of `run`; a
    refused fork (the source still runs, a kept step's spec changed in --workflow) exits 1.
    """
    from ._run import drive
    from ._support import (
        EXIT_OK,
        CommandError,
        admit_file,
        allow_local_imports,
        check_timeout,
        find_execution,
        guard,
        journal_location,
        load_providers,
        load_secrets,
        parse_inputs,
    )

    async def action() -> int:
        from .._errors import InputValidationError

        checked_timeout = check_timeout(timeout_seconds)
        overrides = parse_inputs(input_pairs, None)
        secrets = load_secrets(secrets_file)
        providers = load_providers(providers_file)
        allow_local_imports()
        if workflow_file is not None:
            # Checked now, before the journal opens; the runtime admits the file itself, so
            # its agents are built in the file's directory and the fork records that one.
            admit_file(workflow_file, providers=providers)
        workflow = Path(workflow_file) if workflow_file is not None else None
        location = journal_location(journal, must_exist=True)

        def refused_inputs(error: InputValidationError) -> CommandError:
            redacted = any("redacted" in problem.message for problem in error.problems)
            hint = (
                "give inputs the journal redacted again with --input NAME=VALUE"
                if redacted
                else "the fork's inputs (the source's, changed by --input) must fit the "
                "workflow's inputs schema"
            )
            return CommandError(f"{error}\n{hint}")

        if dry_run:
            from .._execution._runtime import open_runtime
            from ._views import dump_json

            async with open_runtime(
                journal=location, secrets=secrets, providers=providers
            ) as runtime:
                record = await find_execution(runtime.journal, execution_id)
                try:
                    prepared = await runtime.plan_fork(
                        record.execution_id, from_step, workflow=workflow, inputs=overrides
                    )
                except InputValidationError as error:
                    raise refused_inputs(error) from None
            plan = prepared.plan
            click.echo(dump_json(plan.to_json()) if as_json else plan.describe())
            return EXIT_OK

        async def begin(runtime: Runtime) -> tuple[ExecutionHandle, list[str], str]:
            record = await find_execution(runtime.journal, execution_id)
            try:
                prepared = await runtime.plan_fork(
                    record.execution_id, from_step, workflow=workflow, inputs=overrides
                )
                handle = await runtime.start_fork(prepared, execution_timeout=checked_timeout)
            except InputValidationError as error:
                raise refused_inputs(error) from None
            plan = prepared.plan
            steps = [step.id for step in prepared.workflow.steps]
            headline = (
                f"execution {handle.execution_id} forked from {plan.source_id} at seq "
                f"{plan.fork_seq} (from step {plan.point}): {len(plan.kept)} of {len(steps)} "
                f"steps reused, {len(plan.rerun)} run again"
            )
            return handle, steps, headline

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

"""The `orchestr8` command line: asyncclick on trio, with heavy imports deferred to the commands.

`orchestr8 --help` must answer fast, so this module imports only asyncclick at the top; each command
imports what it needs when it runs. Commands return their exit code (`ExitCode` of
`_process_shell`, see `docs/cli.md`): 0 success, 1 a configuration, validation or usage error, 2 a
step failed, 3 the execution timed out, 130 interrupted. Errors are printed as one clean message,
never as a traceback. Commands of other packages (`orchestr8 agent`, from `actors`) are found
through the `orchestr8.commands` entry-point group, so this package never imports them by name.

The commands' shared helpers live in `_cli_support` and the run/resume driver in `_cli_run`.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import asyncclick as click

from .._shell._options import GraceSeconds, sync_workers_option
from .._version import __version__

if TYPE_CHECKING:
    from .._execution._runtime import ExecutionHandle, Runtime

_STATUSES = ("pending", "running", "succeeded", "failed", "cancelled", "interrupted")
"""What `inspect --status` accepts: the journal's statuses and `interrupted` (see `_liveness`)."""


def journal_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """Add `--journal PATH` (default `$ORCHESTR8_JOURNAL`, else `./.orchestr8/journal.db`)."""
    return click.option(
        "--journal",
        "journal",
        metavar="PATH",
        default=None,
        help="The SQLite journal. [default: $ORCHESTR8_JOURNAL, else ./.orchestr8/journal.db]",
    )(function)


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
            "--secrets-file",
            metavar="FILE",
            help="A JSON object of secrets by name for ${secrets.NAME}; "
            "over $ORCHESTR8_SECRET_NAME variables.",
        ),
    ]
    for decorator in reversed(decorators):
        function = decorator(function)
    return function


COMMANDS_ENTRY_POINT_GROUP = "orchestr8.commands"
"""Where installed packages add commands to `orchestr8` (`orchestr8 agent` comes from `actors`)."""


class CommandLine(click.Group):
    """The `orchestr8` group: its own commands, then those installed packages register.

    Installed commands come from the `orchestr8.commands` entry points, read only when a name is
    not one of the group's own or when the commands are listed (`--help`): scanning the installed
    metadata costs tens of milliseconds `orchestr8 run` need not pay.
    """

    _installed_loaded = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command name, installed ones included, sorted."""
        self._load_installed()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command named `cmd_name`: the group's own first, else an installed one."""
        command = super().get_command(ctx, cmd_name)
        if command is None and not self._installed_loaded:
            self._load_installed()
            command = super().get_command(ctx, cmd_name)
        return command

    def _load_installed(self) -> None:
        """Add the commands of the `orchestr8.commands` entry points, once.

        A command that fails to load, or is not a click command, is reported on stderr and left
        out: one broken package must not stop `orchestr8 run`. A name already taken is skipped.
        """
        if self._installed_loaded:
            return
        self._installed_loaded = True
        from importlib.metadata import entry_points

        for entry_point in entry_points(group=COMMANDS_ENTRY_POINT_GROUP):
            if entry_point.name in self.commands:
                continue
            try:
                command = entry_point.load()
            except Exception as error:
                click.echo(
                    f"warning: cannot load command {entry_point.name!r} ({entry_point.value}): "
                    f"{type(error).__name__}: {error}",
                    err=True,
                )
                continue
            if not isinstance(command, click.Command):
                click.echo(
                    f"warning: command {entry_point.name!r} ({entry_point.value}) is not a "
                    "click command",
                    err=True,
                )
                continue
            _add_logging_options(command)
            self.add_command(command, entry_point.name)


@click.group(cls=CommandLine, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="orchestr8")
def cli() -> None:
    """orchestr8: run agent workflows as supervised trio actors, with a durable journal."""


@cli.command()
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
) -> int:
    """Run a workflow file: progress on stderr, the result on stdout.

    The exit code tells how it ended: 0 succeeded, 1 invalid workflow, inputs or options, 2 a step
    failed, 3 timed out, 130 interrupted (Ctrl-C cancels the run; a second Ctrl-C stops at once).
    """
    from ._run import drive
    from ._support import (
        admit_file,
        allow_local_imports,
        check_timeout,
        guard,
        journal_path,
        load_secrets,
        parse_inputs,
    )

    async def action() -> int:
        from .._execution._admission import admit

        checked_timeout = check_timeout(timeout_seconds)
        inputs = parse_inputs(input_pairs, inputs_file)
        secrets = load_secrets(secrets_file)
        allow_local_imports()
        # Admitted before the journal opens (a bad file or input leaves none behind), once:
        # the runtime starts this admission as it is.
        admission = admit(admit_file(file), inputs)
        workflow = admission.workflow

        async def begin(runtime: Runtime) -> tuple[ExecutionHandle, list[str], str]:
            handle = await runtime.start(admission, execution_timeout=checked_timeout)
            count = len(workflow.steps)
            headline = (
                f"execution {handle.execution_id} started: workflow {workflow.name!r}, "
                f"{count} step{'s' if count != 1 else ''}"
            )
            return handle, [step.id for step in workflow.steps], headline

        return await drive(
            begin,
            journal_path(journal),
            journal,
            cancel_grace,
            as_json,
            secrets=secrets,
            sync_workers=sync_workers,
        )

    return await guard(action)


@cli.command()
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
) -> int:
    """Continue an execution that died, failed or was cancelled.

    ID may be a unique prefix. Steps that succeeded keep their recorded output; the others run
    again. Progress, output and exit codes are those of `run`. Inputs the journal keeps redacted
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
        journal_path,
        load_secrets,
        parse_inputs,
        resume_recorded,
    )

    async def action() -> int:
        checked_timeout = check_timeout(timeout_seconds)
        inputs = parse_inputs(input_pairs, inputs_file)
        secrets = load_secrets(secrets_file)
        allow_local_imports()
        path = journal_path(journal, must_exist=True)

        async def begin(runtime: Runtime) -> tuple[ExecutionHandle, list[str], str]:
            from .._errors import InputValidationError
            from .._journal._events import ExecutionStatus, StepStatus
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
            reused = sum(step.status is StepStatus.SUCCEEDED for step in state.steps.values())
            headline = (
                f"execution {record.execution_id} resumed: workflow "
                f"{record.workflow_name!r}, {reused} of {len(step_ids)} steps reused"
            )
            if state.status is ExecutionStatus.RUNNING:
                headline = (
                    f"note: execution {record.execution_id} was interrupted (its process ended, "
                    f"or its journal failed, while it ran); it continues here\n{headline}"
                )
            return handle, step_ids, headline

        return await drive(
            begin, path, journal, cancel_grace, as_json, secrets=secrets, sync_workers=sync_workers
        )

    return await guard(action)


@cli.command()
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
async def validate(files: Sequence[str]) -> int:
    """Check workflow files without running them.

    Checks the JSON, the schema, the step graph and references, that every agent exists and that
    it accepts its config. Problems go to stderr as `JSON path: message`; the exit code is 1 if
    any file is invalid.
    """
    from .._errors import WorkflowValidationError
    from ._support import (
        EXIT_INVALID,
        EXIT_OK,
        admit_file,
        allow_local_imports,
        guard,
        report_error,
    )

    async def action() -> int:
        from .._agents._registry import AgentRegistry

        allow_local_imports()
        registry = AgentRegistry()
        code = EXIT_OK
        for file in files:
            try:
                workflow = admit_file(file, registry).workflow
            except WorkflowValidationError as error:
                report_error(str(error))
                code = EXIT_INVALID
            else:
                count = len(workflow.steps)
                noun = "step" if count == 1 else "steps"
                click.echo(f"{file}: valid workflow {workflow.name!r} ({count} {noun})")
        return code

    return await guard(action)


@cli.command()
def schema() -> int:
    """Print the JSON Schema of workflow documents."""
    from .._workflow._document import workflow_schema
    from .._workflow._schema import render_schema
    from ._support import EXIT_OK

    click.echo(render_schema(workflow_schema()), nl=False)
    return EXIT_OK


@cli.command()
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
    "--timeline",
    is_flag=True,
    help="With ID: draw each step's attempts and retry waits on a time axis.",
)
@journal_option
async def inspect(
    execution_id: str | None,
    as_json: bool,
    limit: int | None,
    status: str | None,
    timeline: bool,
    journal: str | None,
) -> int:
    """List executions, or show one in detail.

    Without ID, lists the most recent executions, newest first. An execution whose process died
    while it ran shows as `interrupted` until it is resumed. With ID (or a unique prefix),
    shows the execution, its steps and its events; with --timeline, a Gantt-style chart of where
    the time went.
    """
    from ._support import EXIT_OK, CommandError, find_execution, guard, journal_path

    async def action() -> int:
        from .._execution._liveness import interrupted_executions, list_shown_executions
        from .._journal._journal import open_journal
        from .._journal._replay import replay
        from ._views import (
            dump_json,
            execution_detail,
            execution_summary,
            render_execution_detail,
            render_execution_list,
            wants_color,
        )

        if execution_id is not None and (limit is not None or status is not None):
            raise CommandError("--limit and --status apply to the list, not to one execution")
        if timeline and (execution_id is None or as_json):
            raise CommandError("--timeline needs an execution ID and draws text, not --json")
        path = journal_path(journal, must_exist=execution_id is not None)
        color = wants_color(sys.stdout)
        if execution_id is None and not path.exists():
            click.echo("[]" if as_json else f"no executions: there is no journal at {path}")
            return EXIT_OK
        async with open_journal(path) as store:
            if execution_id is None:
                page = await list_shown_executions(store, status=status, limit=limit or 20)
                summaries = [execution_summary(item.record, item.status) for item in page.items]
                if as_json:
                    click.echo(dump_json(summaries))
                elif summaries:
                    click.echo(render_execution_list(summaries, color=color))
                else:
                    click.echo("no executions" + (f" with status {status}" if status else ""))
                return EXIT_OK
            record = await find_execution(store, execution_id)
            events = await store.events(record.execution_id)
            interrupted = await interrupted_executions(
                store, [(record.execution_id, replay(events).status)]
            )
        if timeline:
            import shutil

            from .._journal._timeline import render_timeline

            width = shutil.get_terminal_size((100, 24)).columns
            click.echo(
                render_timeline(events, width=width, color=color, interrupted=bool(interrupted))
            )
            return EXIT_OK
        detail = execution_detail(record, events, interrupted=bool(interrupted))
        click.echo(dump_json(detail) if as_json else render_execution_detail(detail, color=color))
        return EXIT_OK

    return await guard(action)


def _configure_logging(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """Set up logging as soon as either option is parsed; the last call has both values."""
    from .._observability._logging import configure_logging

    settings = ctx.find_root().meta.setdefault("orchestr8.logging", {})
    if value is not None:
        settings[param.name] = value
    try:
        configure_logging(settings.get("log_format"), settings.get("log_level"))
    except ValueError as error:
        raise click.BadParameter(str(error), ctx=ctx, param=param) from None


def _logging_options() -> list[click.Option]:
    return [
        click.Option(
            ["--log-format"],
            type=click.Choice(["text", "json"], case_sensitive=False),
            default=None,
            expose_value=False,
            callback=_configure_logging,
            metavar="text|json",
            help="Log lines as text or as JSON objects, on stderr.  [env: ORCHESTR8_LOG_FORMAT]",
        ),
        click.Option(
            ["--log-level"],
            default=None,
            expose_value=False,
            callback=_configure_logging,
            metavar="LEVEL",
            help="debug, info, warning (default), error or critical.  [env: ORCHESTR8_LOG_LEVEL]",
        ),
    ]


def _add_logging_options(command: click.Command) -> None:
    """Give the group and every command `--log-format` and `--log-level`.

    `orchestr8 test` is left out: its arguments belong to pytest, which has its own `--log-level`
    (use `orchestr8 --log-level … test` there).
    """
    if command.name == "test" or any(p.name == "log_format" for p in command.params):
        return
    command.params.extend(_logging_options())
    if isinstance(command, click.Group):
        for child in command.commands.values():
            _add_logging_options(child)


def _show_usage_error(error: click.ClickException) -> None:
    """Print a usage error as click does, or as one JSON log line when logs are JSON."""
    from .._observability._logging import installed_handler

    installed = installed_handler()
    if installed is None or installed[1] != "json":
        error.show()
        return
    import logging

    command = error.ctx.command_path if isinstance(error, click.UsageError) and error.ctx else None
    where = f"{command}: " if command else ""
    logging.getLogger("orchestr8.cli").error("%s%s", where, error.format_message())


def run_command_line(commands: Sequence[click.Command]) -> None:
    """Run `orchestr8` with `commands` added: the ones of other views, assembled by `_console`.

    Streams write text they cannot encode as escapes (agent output and undecodable arguments can
    hold lone surrogates), so a result is never lost to a UnicodeEncodeError.
    """
    from .._shell._process import run_command
    from ._scaffold import create_group, init_command, tests_command

    for command in (*commands, init_command, create_group, tests_command):
        cli.add_command(command)
    _add_logging_options(cli)
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    run_command(cli, show_usage_error=_show_usage_error)

"""The `orchestr8` command line: asyncclick on trio, with heavy imports deferred to the commands.

`orchestr8 --help` must answer fast, so this module imports only asyncclick at the top; each command
imports what it needs when it runs. Commands return their exit code (see `docs/cli.md`): 0 success,
1 a configuration, validation or usage error, 2 a step failed, 3 the execution timed out, 130
interrupted. Errors are printed as one clean message, never as a traceback.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncclick as click

from ._version import __version__

if TYPE_CHECKING:
    from ._cli_views import ProgressView
    from ._journal import ExecutionRecord, Journal
    from ._results import ExecutionResult
    from ._runtime import ExecutionHandle, Runtime
    from ._workflow import Workflow

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_STEP_FAILED = 2
EXIT_TIMEOUT = 3
EXIT_INTERRUPTED = 130

_STATUSES = ("pending", "running", "succeeded", "failed", "cancelled")
_PREFIX_PAGE = 500
_PREFIX_PAGES = 20

Begin = Callable[["Runtime"], Awaitable[tuple["ExecutionHandle", list[str], str]]]
"""Starts or resumes an execution; returns its handle, its step ids and the line announcing it."""


class CommandError(Exception):
    """A problem with what the user asked for; printed as `error: message`, exit code 1."""


def journal_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """Add `--journal PATH` (default `$ORCHESTR8_JOURNAL`, else `./.orchestr8/journal.db`)."""
    return click.option(
        "--journal", "journal", metavar="PATH", default=None,
        help="The SQLite journal. [default: $ORCHESTR8_JOURNAL, else ./.orchestr8/journal.db]",
    )(function)


def run_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """Add the options `run` and `resume` share: timeout, cancel grace, journal, JSON output."""
    decorators: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
        click.option("--timeout", "timeout_seconds", type=float, default=None, metavar="SECONDS",
                     help="Bound the whole execution (overrides the workflow's timeout)."),
        click.option("--cancel-grace", type=click.FloatRange(min=0.0), default=5.0,
                     show_default=True, metavar="SECONDS",
                     help="After Ctrl-C, how long steps may finish before being forced."),
        journal_option,
        click.option("--json", "as_json", is_flag=True,
                     help="Print the result as one JSON document on stdout."),
    ]
    for decorator in reversed(decorators):
        function = decorator(function)
    return function


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="orchestr8")
def cli() -> None:
    """orchestr8: run agent workflows as supervised trio actors, with a durable journal."""


@cli.command()
@click.argument("file", metavar="FILE")
@click.option("--input", "-i", "input_pairs", multiple=True, metavar="KEY=VALUE",
              help="An input; VALUE is parsed as JSON when it is valid JSON, else taken as text.")
@click.option("--inputs-file", metavar="FILE",
              help="A JSON object of inputs ('-' for stdin); --input values override it.")
@run_options
async def run(
    file: str, input_pairs: Sequence[str], inputs_file: str | None,
    timeout_seconds: float | None,
    cancel_grace: float, journal: str | None, as_json: bool,
) -> int:
    """Run a workflow file: progress on stderr, the result on stdout.

    The exit code tells how it ended: 0 succeeded, 1 invalid workflow, inputs or options, 2 a step
    failed, 3 timed out, 130 interrupted (Ctrl-C cancels the run; a second Ctrl-C stops at once).
    """

    async def action() -> int:
        from ._codec import validate_inputs

        checked_timeout = _check_timeout(timeout_seconds)
        inputs = parse_inputs(input_pairs, inputs_file)
        _allow_local_imports()
        workflow = load_checked(file)
        validate_inputs(workflow, inputs)

        async def begin(runtime: Runtime) -> tuple[ExecutionHandle, list[str], str]:
            handle = await runtime.start(workflow, inputs, execution_timeout=checked_timeout)
            count = len(workflow.steps)
            headline = (f"execution {handle.execution_id} started: workflow {workflow.name!r}, "
                        f"{count} step{'s' if count != 1 else ''}")
            return handle, [step.id for step in workflow.steps], headline

        return await _drive(begin, _journal_path(journal), journal, cancel_grace, as_json)

    return await _guard(action)


@cli.command()
@click.argument("execution_id", metavar="ID")
@run_options
async def resume(
    execution_id: str, timeout_seconds: float | None, cancel_grace: float, journal: str | None,
    as_json: bool,
) -> int:
    """Continue an execution that died, failed or was cancelled.

    ID may be a unique prefix. Steps that succeeded keep their recorded output; the others run
    again. Progress, output and exit codes are those of `run`.
    """

    async def action() -> int:
        checked_timeout = _check_timeout(timeout_seconds)
        _allow_local_imports()
        path = _journal_path(journal, must_exist=True)

        async def begin(runtime: Runtime) -> tuple[ExecutionHandle, list[str], str]:
            from ._events import ExecutionStatus, StepStatus, replay

            record = await find_execution(runtime.journal, execution_id)
            state = replay(await runtime.journal.events(record.execution_id))
            if state.status is ExecutionStatus.RUNNING:
                sys.stderr.write(
                    f"note: the journal says execution {record.execution_id} is still running; "
                    "resuming assumes the process that ran it is gone\n"
                )
            handle = await runtime.resume(record.execution_id, execution_timeout=checked_timeout)
            step_ids = _declared_steps(record)
            reused = sum(step.status is StepStatus.SUCCEEDED for step in state.steps.values())
            headline = (f"execution {record.execution_id} resumed: workflow "
                        f"{record.workflow_name!r}, {reused} of {len(step_ids)} steps reused")
            return handle, step_ids, headline

        return await _drive(begin, path, journal, cancel_grace, as_json)

    return await _guard(action)


@cli.command()
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
async def validate(files: Sequence[str]) -> int:
    """Check workflow files without running them.

    Checks the JSON, the schema, the step graph and references, that every agent exists and that
    it accepts its config. Problems go to stderr as `JSON path: message`; the exit code is 1 if
    any file is invalid.
    """
    from ._errors import WorkflowValidationError

    async def action() -> int:
        _allow_local_imports()
        code = EXIT_OK
        for file in files:
            try:
                workflow = load_checked(file)
            except WorkflowValidationError as error:
                click.echo(str(error), err=True)
                code = EXIT_INVALID
            else:
                count = len(workflow.steps)
                noun = "step" if count == 1 else "steps"
                click.echo(f"{file}: valid workflow {workflow.name!r} ({count} {noun})")
        return code

    return await _guard(action)


@cli.command()
def schema() -> int:
    """Print the JSON Schema of workflow documents."""
    from ._schema import render_schema
    from ._workflow import workflow_schema

    click.echo(render_schema(workflow_schema()), nl=False)
    return EXIT_OK


@cli.command()
@click.argument("execution_id", metavar="[ID]", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.option("--limit", type=click.IntRange(min=1), default=None, metavar="N",
              help="List at most N executions.  [default: 20]")
@click.option("--status", type=click.Choice(_STATUSES), default=None,
              help="List only executions with this status.")
@click.option("--timeline", is_flag=True,
              help="With ID: draw each step's attempts and retry waits on a time axis.")
@journal_option
async def inspect(
    execution_id: str | None, as_json: bool, limit: int | None, status: str | None,
    timeline: bool, journal: str | None,
) -> int:
    """List executions, or show one in detail.

    Without ID, lists the most recent executions, newest first. With ID (or a unique prefix),
    shows the execution, its steps and its events; with --timeline, a Gantt-style chart of where
    the time went.
    """

    async def action() -> int:
        from ._cli_views import (
            dump_json,
            execution_detail,
            execution_summary,
            render_execution_detail,
            render_execution_list,
            wants_color,
        )
        from ._journal import open_journal

        if execution_id is not None and (limit is not None or status is not None):
            raise CommandError("--limit and --status apply to the list, not to one execution")
        if timeline and (execution_id is None or as_json):
            raise CommandError("--timeline needs an execution ID and draws text, not --json")
        path = _journal_path(journal, must_exist=execution_id is not None)
        color = wants_color(sys.stdout)
        if execution_id is None and not path.exists():
            click.echo("[]" if as_json else f"no executions: there is no journal at {path}")
            return EXIT_OK
        async with open_journal(path) as store:
            if execution_id is None:
                page = await store.list_executions(status=status, limit=limit or 20)
                summaries = [execution_summary(record) for record in page.items]
                if as_json:
                    click.echo(dump_json(summaries))
                elif summaries:
                    click.echo(render_execution_list(summaries, color=color))
                else:
                    click.echo("no executions" + (f" with status {status}" if status else ""))
                return EXIT_OK
            record = await find_execution(store, execution_id)
            events = await store.events(record.execution_id)
        if timeline:
            import shutil

            from ._timeline import render_timeline

            width = shutil.get_terminal_size((100, 24)).columns
            click.echo(render_timeline(events, width=width, color=color))
            return EXIT_OK
        detail = execution_detail(record, events)
        click.echo(dump_json(detail) if as_json else render_execution_detail(detail, color=color))
        return EXIT_OK

    return await _guard(action)


def _configure_logging(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """Set up logging as soon as either option is parsed; the last call has both values."""
    from ._logging import configure_logging

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
            ["--log-format"], type=click.Choice(["text", "json"], case_sensitive=False),
            default=None, expose_value=False, callback=_configure_logging, metavar="text|json",
            help="Log lines as text or as JSON objects, on stderr.  [env: ORCHESTR8_LOG_FORMAT]",
        ),
        click.Option(
            ["--log-level"], default=None, expose_value=False, callback=_configure_logging,
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


def main() -> None:
    """Run the command line on trio (asyncclick would pick asyncio unless told)."""
    # Registered here rather than at import, so that importing this module stays minimal.
    from actors.research._command import agent_group

    from ._scaffold import create_group, init_command, tests_command
    from ._serve import serve_command

    for command in (serve_command, init_command, create_group, tests_command, agent_group):
        cli.add_command(command)
    _add_logging_options(cli)
    try:
        code = cli(_anyio_backend="trio", standalone_mode=False)
    except click.ClickException as error:
        # Usage errors are configuration errors here (exit 1), not click's default 2.
        error.show()
        code = EXIT_INVALID
    except (click.Abort, KeyboardInterrupt):
        code = EXIT_INTERRUPTED
    sys.exit(code if isinstance(code, int) else EXIT_OK)


def parse_inputs(pairs: Sequence[str], inputs_file: str | None) -> dict[str, Any]:
    """Build the inputs from `--inputs-file` then `--input KEY=VALUE` pairs (JSON, else text).

    Raises:
        CommandError: a pair has no `=` or no key, or the file is unreadable or not a JSON object.
    """
    import json

    inputs: dict[str, Any] = {}
    if inputs_file is not None:
        try:
            if inputs_file == "-":
                text = sys.stdin.read()
            else:
                text = Path(inputs_file).read_text(encoding="utf-8-sig")
            document = json.loads(text, parse_constant=_reject_constant)
        except OSError as error:
            raise CommandError(f"--inputs-file {inputs_file}: {error.strerror or error}") from None
        except (ValueError, UnicodeDecodeError) as error:
            raise CommandError(f"--inputs-file {inputs_file}: not JSON: {error}") from None
        if not isinstance(document, dict):
            raise CommandError(f"--inputs-file {inputs_file}: expected a JSON object of inputs, "
                               f"got {type(document).__name__}")
        inputs.update(document)
    for pair in pairs:
        key, equals, text = pair.partition("=")
        if not equals or not key:
            raise CommandError(f"--input {pair!r}: expected KEY=VALUE")
        try:
            inputs[key] = json.loads(text, parse_constant=_reject_constant)
        except ValueError:
            inputs[key] = text
    return inputs


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def load_checked(file: str) -> Workflow:
    """Load the workflow file and check that its agents exist and accept their configs.

    Raises:
        WorkflowValidationError: with every problem found.
    """
    from ._agent_registry import AgentRegistry
    from ._codec import load_workflow
    from ._errors import AgentError, Problem, WorkflowValidationError

    registry = AgentRegistry()
    workflow = load_workflow(Path(file), agent_exists=registry.exists)
    problems = []
    for index, step in enumerate(workflow.steps):
        try:
            registry.create(step.agent.id, step.agent.config)
        except AgentError as error:
            problems.append(Problem(f"$.steps[{index}].agent", str(error)))
    if problems:
        raise WorkflowValidationError(problems, source=file)
    return workflow


async def find_execution(journal: Journal, text: str) -> ExecutionRecord:
    """Find the execution whose id is `text` or, failing that, the one id starting with it.

    Raises:
        CommandError: no execution matches, or the prefix matches several.
    """
    from ._errors import ExecutionNotFoundError

    try:
        return await journal.get_execution(text)
    except ExecutionNotFoundError:
        pass
    matches: list[ExecutionRecord] = []
    cursor = None
    if text:
        for _ in range(_PREFIX_PAGES):
            page = await journal.list_executions(limit=_PREFIX_PAGE, before=cursor)
            matches += [item for item in page.items if item.execution_id.startswith(text)]
            cursor = page.next_cursor
            if len(matches) > 1 or cursor is None:
                break
    if not matches:
        raise CommandError(f"no execution {text!r} in the journal {journal.path}")
    if len(matches) > 1:
        shown = ", ".join(record.execution_id for record in matches[:2])
        raise CommandError(f"the id prefix {text!r} is ambiguous: it matches {shown} and maybe "
                           "more; give more characters")
    return matches[0]


async def _guard(action: Callable[[], Awaitable[int]]) -> int:
    """Run a command's body, turning expected errors into a message on stderr and exit code 1."""
    from ._errors import InputValidationError, Orchestr8Error, WorkflowValidationError

    try:
        return await action()
    except BaseExceptionGroup as group:
        error = _only_error(group)
        if not _expected(error):
            raise
    except (Orchestr8Error, CommandError, OSError) as caught:
        error = caught
        if not _expected(error):
            raise
    if isinstance(error, WorkflowValidationError | InputValidationError):
        click.echo(str(error), err=True)
    else:
        click.echo(f"error: {error}", err=True)
    return EXIT_INVALID


def _expected(error: BaseException) -> bool:
    """Whether `error` is one the CLI reports as a message (a broken pipe is left to click)."""
    import errno

    from ._errors import Orchestr8Error

    if isinstance(error, OSError):
        return error.errno != errno.EPIPE
    return isinstance(error, Orchestr8Error | CommandError)


def _only_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one error inside nested single-member groups (nurseries wrap what they propagate)."""
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


async def _drive(
    begin: Begin, path: Path, journal_given: str | None, cancel_grace: float, as_json: bool
) -> int:
    """Start or resume an execution, show its progress, print its result, return the exit code."""
    from ._runtime import tune_garbage_collection
    from ._telemetry_export import configure_from_environment, shutdown_telemetry

    tune_garbage_collection()
    configure_from_environment()
    try:
        return await _drive_runtime(begin, path, journal_given, cancel_grace, as_json)
    finally:
        shutdown_telemetry()


async def _drive_runtime(
    begin: Begin, path: Path, journal_given: str | None, cancel_grace: float, as_json: bool
) -> int:
    """The body of `_drive`: the runtime, the progress view and the signal handling."""
    import signal

    import trio

    from ._cli_views import ProgressView, dump_json, render_result, result_document, wants_color
    from ._runtime import open_runtime

    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with (
            open_runtime(journal=path, cancel_grace=cancel_grace) as runtime,
            runtime.bus.subscribe(buffer=4096) as events,
        ):
            handle, step_ids, headline = await begin(runtime)
            view = ProgressView(sys.stderr, step_ids)
            view.note(headline)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(view.follow, events, handle.execution_id)
                resume_hint = _command("resume", journal_given, handle.execution_id)
                nursery.start_soon(
                    _watch_signals, signals, handle, view, runtime.journal, cancel_grace,
                    resume_hint,
                )
                result = await handle.wait()
                nursery.cancel_scope.cancel()
            view.drain(events, handle.execution_id)
    if as_json:
        click.echo(dump_json(result_document(result)))
    else:
        click.echo(render_result(result, color=wants_color(sys.stdout)))
    code = exit_code(result)
    if code != EXIT_OK:
        sys.stderr.write(f"inspect it: {_command('inspect', journal_given, result.execution_id)}\n"
                         f"resume it:  {_command('resume', journal_given, result.execution_id)}\n")
    return code


def _command(name: str, journal_given: str | None, execution_id: str) -> str:
    """The command line that runs `name` on the execution, with the same `--journal`."""
    import shlex

    option = f" --journal {shlex.quote(journal_given)}" if journal_given else ""
    return f"orchestr8 {name}{option} {execution_id}"


async def _watch_signals(
    signals: AsyncIterator[int], handle: ExecutionHandle, view: ProgressView, journal: Journal,
    grace: float, resume_hint: str,
) -> None:
    """First SIGINT/SIGTERM: cancel cooperatively. Second: save the journal and exit at once."""
    import signal

    import trio

    from ._errors import Orchestr8Error

    interrupts = 0
    async for signum in signals:
        interrupts += 1
        name = signal.Signals(signum).name
        if interrupts == 1:
            handle.cancel(f"interrupted ({name})")
            view.note(f"interrupted: cancelling (steps get {grace:g}s to finish); "
                      "interrupt again to stop at once", "yellow")
            continue
        view.note(f"interrupted again: stopping now; the execution stays resumable "
                  f"({resume_hint})", "red")
        with trio.move_on_after(1.0), contextlib.suppress(Orchestr8Error):
            await journal.flush()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_INTERRUPTED)


def exit_code(result: ExecutionResult) -> int:
    """The exit code of a finished run: 0 succeeded, 2 failed, 3 timed out, 130 cancelled."""
    status = str(result.status)
    if status == "succeeded":
        return EXIT_OK
    if status == "cancelled":
        return EXIT_INTERRUPTED
    if (result.error or {}).get("type") == "ExecutionTimeoutError":
        return EXIT_TIMEOUT
    return EXIT_STEP_FAILED


def _check_timeout(timeout: float | None) -> float | None:
    if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
        raise CommandError(f"--timeout must be a number of seconds above 0, got {timeout}")
    return timeout


def _journal_path(option: str | None, *, must_exist: bool = False) -> Path:
    """The journal to use: `--journal`, else `$ORCHESTR8_JOURNAL`, else `./.orchestr8/journal.db`.

    Raises:
        CommandError: `must_exist` and there is no file there.
    """
    configured = option or os.environ.get("ORCHESTR8_JOURNAL")
    if configured:
        path = Path(configured).expanduser()
    elif must_exist:
        path = Path.cwd() / ".orchestr8" / "journal.db"
    else:
        from ._journal import default_journal_path

        path = default_journal_path()
    if must_exist and not path.exists():
        raise CommandError(f"there is no journal at {path}")
    return path


def _declared_steps(record: ExecutionRecord) -> list[str]:
    steps = record.workflow.get("steps", ())
    return [step["id"] for step in steps if isinstance(step, dict) and "id" in step]


def _allow_local_imports() -> None:
    """Let `module:attribute` agents and callables come from the current directory.

    Appended, not prepended, so that files there never shadow installed modules.
    """
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)


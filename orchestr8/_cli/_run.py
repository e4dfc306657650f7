"""The driver of `orchestr8 run` and `orchestr8 resume`: the runtime, progress, signals, result.

Imported by those commands when they run, never by `orchestr8._cli._run_commands` at import.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

import asyncclick as click

from ._support import EXIT_OK, exit_code, journal_hint

if TYPE_CHECKING:
    from .._execution._results import ExecutionResult
    from .._execution._runtime import ExecutionHandle, Runtime
    from .._execution._secrets import Secrets
    from .._journal._journal import Journal
    from .._shell._options import JournalLocation
    from .._workflow._provider_specs import ProviderSpec
    from ._progress import ProgressView

Begin = Callable[["Runtime"], Awaitable[tuple["ExecutionHandle", list[str], str]]]
"""Starts or resumes an execution; returns its handle, its step ids and the line announcing it."""


async def drive(
    begin: Begin,
    location: JournalLocation,
    journal_given: str | None,
    cancel_grace: float,
    as_json: bool,
    *,
    secrets: Secrets | None = None,
    sync_workers: int | None = None,
    exit_when_waiting: bool = False,
    providers: Mapping[str, ProviderSpec] | None = None,
) -> int:
    """Start or resume an execution, show its progress, print its result, return the exit code.

    `secrets` resolves `${secrets.NAME}` (default: `ORCHESTR8_SECRET_NAME` variables);
    `providers` are the provider config file's specs (`--providers`);
    `sync_workers` bounds the threads of blocking agent code (None: the runtime's default);
    `exit_when_waiting` suspends the execution once only approval gates wait (exit code 5).
    """
    from .._execution._runtime import tune_garbage_collection
    from .._observability._export import configure_from_environment, shutdown_telemetry

    tune_garbage_collection()
    configure_from_environment()
    try:
        return await _drive_runtime(
            begin,
            location,
            journal_given,
            cancel_grace,
            as_json,
            secrets,
            sync_workers,
            exit_when_waiting,
            providers,
        )
    finally:
        shutdown_telemetry()


async def _drive_runtime(
    begin: Begin,
    location: JournalLocation,
    journal_given: str | None,
    cancel_grace: float,
    as_json: bool,
    secrets: Secrets | None,
    sync_workers: int | None,
    exit_when_waiting: bool = False,
    providers: Mapping[str, ProviderSpec] | None = None,
) -> int:
    """The body of `drive`: the runtime, the progress view and the signal handling."""
    from functools import partial

    import trio

    from .._agents._sync_calls import DEFAULT_SYNC_WORKERS
    from .._errors import JournalError
    from .._execution._runtime import open_runtime
    from .._observability._logging import installed_handler
    from .._shell._process import (
        exit_despite_stragglers,
        open_shutdown_signals,
        watch_shutdown_signals,
    )
    from ._gate_prompt import prompter_for_run
    from ._progress import ProgressView, hold_back_narration
    from ._support import CommandError
    from ._views import dump_json, render_result, result_document, wants_color

    handler, log_format = installed_handler() or (None, "text")
    gates_waiting: list[str] = []

    def conclude(result: ExecutionResult) -> int:
        """Print the result, say how to inspect and resume a failure, return the exit code."""
        if as_json:
            click.echo(dump_json(result_document(result)))
        else:
            click.echo(render_result(result, color=wants_color(sys.stdout)))
        code = exit_code(result)
        if str(result.status) == "waiting":
            view.note(
                waiting_note(result.execution_id, gates_waiting, journal_given),
                level=logging.WARNING,
            )
        elif code != EXIT_OK:
            view.note(failure_note(result, journal_given), level=logging.WARNING)
        return code

    # Held back from before the run starts: the progress view tells what the engine would log.
    with (
        hold_back_narration(handler, log_format),
        open_shutdown_signals() as signals,
    ):
        # The shell's tasks (the signal watcher, the stragglers' deadline) outlive the runtime:
        # leaving it may wait for agents that ignored cancellation, and signals still count then.
        async with trio.open_nursery() as shell:
            async with (
                open_runtime(
                    journal=location,
                    cancel_grace=cancel_grace,
                    secrets=secrets,
                    sync_workers=sync_workers or DEFAULT_SYNC_WORKERS,
                    providers=providers,
                ) as runtime,
                runtime.bus.subscribe(buffer=4096) as events,
                runtime.bus.subscribe(buffer=4096) as gate_events,
            ):
                handle, step_ids, headline = await begin(runtime)
                # After a resume, the end's line gives the whole duration (from the first start).
                record = await runtime.journal.get_execution(handle.execution_id)
                view = ProgressView(
                    sys.stderr,
                    step_ids,
                    json_logs=log_format == "json",
                    log_handler=handler,
                    tell_gate_openings=False,
                    started_at=record.started_at,
                )
                if headline:
                    view.note(headline)
                resume_hint = _command("resume", journal_given, handle.execution_id)
                shell.start_soon(
                    partial(
                        watch_shutdown_signals,
                        signals,
                        graceful=partial(_cancel_gracefully, handle, view, cancel_grace),
                        forced=partial(_stop_now, view, runtime.journal, resume_hint),
                    )
                )
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(view.follow, events, handle.execution_id)
                    # JSON logs: stderr holds JSON lines only, so no questions, only the hints.
                    prompter = prompter_for_run(
                        view,
                        runtime,
                        handle.execution_id,
                        journal_given,
                        interactive=False if log_format == "json" else None,
                    )
                    nursery.start_soon(prompter.follow, gate_events)
                    if exit_when_waiting:
                        nursery.start_soon(_suspend_when_waiting, handle, gates_waiting)
                    try:
                        result = await handle.wait()
                    except JournalError as error:
                        raise CommandError(
                            f"{error}\nresume it once the journal works again: {resume_hint}"
                        ) from error
                    nursery.cancel_scope.cancel()
                view.drain(events, handle.execution_id)
                shell.start_soon(
                    partial(
                        exit_despite_stragglers,
                        runtime.wait_only_stragglers,
                        cancel_grace,
                        warn=partial(view.note, color="yellow", level=logging.WARNING),
                        conclude=partial(conclude, result),
                    )
                )
            shell.cancel_scope.cancel()
    return conclude(result)


async def _suspend_when_waiting(handle: ExecutionHandle, gates_waiting: list[str]) -> None:
    """Suspend the execution once it is blocked on approval gates; note which gates wait."""
    while not handle.done:
        await handle.wait_blocked_on_gates()
        gates = [gate.gate_id for gate in handle.open_gates()]
        if handle.suspend():
            gates_waiting.extend(gates)
            return


def waiting_note(execution_id: str, gates: list[str], journal_given: str | None) -> str:
    """What `run` says when it stops at approval gates: which wait, how to answer, how to go on."""
    import shlex

    option = journal_hint(journal_given)
    lines = [f"execution {execution_id} is waiting for approval: {', '.join(gates) or 'gates'}"]
    for gate in gates:
        quoted = shlex.quote(gate)
        lines.append(f"approve: orchestr8 approve{option} {execution_id} {quoted}")
        lines.append(f"reject:  orchestr8 reject{option} {execution_id} {quoted} --reason TEXT")
    lines.append(f"then continue it: {_command('resume', journal_given, execution_id)}")
    return "\n".join(lines)


def failure_note(result: ExecutionResult, journal_given: str | None) -> str:
    """What `run` says after a run that did not succeed: how to inspect it, how to go on.

    A resume re-runs what failed; but a gate that timed out with `on_timeout: fail` keeps its
    deadline across a resume and fails the same way at once, so for it the note points to `fork`
    instead, which asks the gate again with a fresh deadline. After another failed step, a fork
    from that step (with changed input) is offered beside the resume.
    """
    import shlex

    inspect = f"inspect it: {_command('inspect', journal_given, result.execution_id)}"
    error = result.error if isinstance(result.error, dict) else {}
    gate_id = error.get("step_id")
    if error.get("type") != "GateTimedOutError" or not isinstance(gate_id, str):
        return (
            f"{inspect}\nresume it:  {_command('resume', journal_given, result.execution_id)}"
            + _fork_hint(result, journal_given)
        )
    fork = _command("fork", journal_given, result.execution_id)
    return (
        f"{inspect}\n"
        f"gate {gate_id} timed out for good (on_timeout: fail): a resume keeps its deadline and"
        " fails the same way\n"
        f"ask it again with a fresh deadline: {fork} --from {shlex.quote(gate_id)}"
    )


def _fork_hint(result: ExecutionResult, journal_given: str | None) -> str:
    """After a failed step, the line that re-runs it (with changed input) as a fork, else ''."""
    import shlex

    from .._journal._map_items import split_item_id

    error = result.error
    step_id = error.get("step_id") if isinstance(error, dict) else None
    if str(result.status) != "failed" or not isinstance(step_id, str):
        return ""
    item = split_item_id(step_id)
    step = step_id if item is None else item[0]
    fork = _command("fork", journal_given, result.execution_id)
    return f"\nfork it:    {fork} --from {shlex.quote(step)}"


def _command(name: str, journal_given: str | None, execution_id: str) -> str:
    """The command line that runs `name` on the execution, with the same `--journal`."""
    option = journal_hint(journal_given)
    return f"orchestr8 {name}{option} {execution_id}"


def _cancel_gracefully(
    handle: ExecutionHandle, view: ProgressView, grace: float, signal_name: str
) -> None:
    """The first SIGINT/SIGTERM: cancel the execution cooperatively, steps get `grace` seconds."""
    handle.cancel(f"interrupted ({signal_name})")
    view.note(
        f"interrupted: cancelling (steps get {grace:g}s to finish); "
        "interrupt again to stop at once",
        "yellow",
        logging.WARNING,
    )


async def _stop_now(
    view: ProgressView, journal: Journal, resume_hint: str, signal_name: str
) -> None:
    """The second SIGINT/SIGTERM: say so and save the journal; the shell then exits 130."""
    view.note(
        f"interrupted again: stopping now; the execution stays resumable ({resume_hint})",
        "red",
        logging.WARNING,
    )
    await journal.flush()

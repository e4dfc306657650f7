"""Commands that steer an execution from any terminal: `follow` shows it live, `cancel` stops it.

Both work on the journal (`--journal`) whichever process runs the execution, or through a server
(`--url`, `--api-key`). Heavy imports wait until a command runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import asyncclick as click

from ._group import journal_option

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from .._journal._journal import Journal

__all__ = ["cancel", "follow"]

CANCEL_WAIT: Final = 10.0
"""How long `cancel` waits for an execution another process runs to end: the default grace
(5 s), and 5 s more for that process to notice the request and wind the run down."""

CANCEL_POLL_INTERVAL: Final = 0.25
"""Seconds between two looks at the journal (or the server) while `cancel` waits."""


def _url_options(function: click.decorators.FC) -> click.decorators.FC:
    """`--url URL` and `--api-key KEY`: work through a server instead of the journal."""
    function = click.option(
        "--api-key",
        envvar="ORCHESTR8_API_KEY",
        default=None,
        metavar="KEY",
        help="The server's API key.  [env: ORCHESTR8_API_KEY]",
    )(function)
    return click.option(
        "--url",
        default=None,
        metavar="URL",
        help="Work through the orchestr8 server at URL (http://HOST:PORT), not the journal.",
    )(function)


@click.command()
@click.argument("execution_id", metavar="ID")
@click.option(
    "--after",
    type=click.IntRange(min=0),
    default=0,
    metavar="SEQ",
    help="Show only the events after this seq.  [default: 0, every event]",
)
@_url_options
@journal_option
async def follow(
    execution_id: str, after: int, url: str | None, api_key: str | None, journal: str | None
) -> int:
    """Show an execution's events live, from any terminal.

    Reads the journal (or, with --url, a server's event stream), prints the events as `run`
    does, and exits with the execution's exit code: 0 succeeded, 2 failed, 3 timed out, 130
    cancelled. An interrupted or waiting execution is said so once, and followed on until it
    is resumed; Ctrl-C stops following (exit 130), never the execution.
    """
    from ._support import guard

    async def action() -> int:
        from ._following import (
            Follower,
            follow_journal,
            follow_url,
            progress_view,
            server_steps,
            tell_if_waiting,
        )
        from ._support import declared_steps, find_execution, journal_location

        if url is not None:
            if journal is not None:
                raise _both_sources()
            steps, document = await server_steps(url, api_key, execution_id)
            started_at = document.get("started_at")
            view = progress_view(steps, started_at if isinstance(started_at, str) else None)
            follower = Follower(view, execution_id, _hint(None))
            follower.last = after
            tell_if_waiting(follower, document)
            return await _until_interrupted(follow_url(url, api_key, follower))
        from .._journal._journal import open_journal

        async with open_journal(journal_location(journal, must_exist=True)) as store:
            record = await find_execution(store, execution_id)
            view = progress_view(declared_steps(record), record.started_at)
            follower = Follower(view, record.execution_id, _hint(journal))
            follower.last = after
            return await _until_interrupted(follow_journal(store, follower))

    return await guard(action)


@click.command()
@click.argument("execution_id", metavar="ID")
@click.option("--reason", default=None, metavar="TEXT", help="Why: recorded with the cancel.")
@click.option("--force", is_flag=True, help="No grace: stop the running steps at once.")
@click.option(
    "--no-wait",
    is_flag=True,
    help="Return once the cancel is recorded; do not wait for the execution to end.",
)
@_url_options
@journal_option
async def cancel(
    execution_id: str,
    reason: str | None,
    force: bool,
    no_wait: bool,
    url: str | None,
    api_key: str | None,
    journal: str | None,
) -> int:
    """Cancel an execution, whichever process runs it (or none).

    Run by another process on the journal: the cancel is recorded there and that process stops
    the execution within a second (steps get its grace period, none with --force); this waits
    for the end (up to 10 s) unless --no-wait. Run by no process (interrupted, waiting): it is
    cancelled at once. Exit code 0 once it is cancelled (or, with --no-wait, the cancel is
    recorded), 1 when it had finished, ended otherwise, or is still running after the wait.
    """
    from ._support import guard

    async def action() -> int:
        by = _user()
        told = reason if reason else f"cancelled by {by}"
        if url is not None:
            if journal is not None:
                raise _both_sources()
            from ._server_client import cancel_through_server

            return await cancel_through_server(
                url, api_key, execution_id, reason=told, force=force, by=by, wait=not no_wait
            )
        from .._journal._journal import open_journal
        from ._support import find_execution, journal_location

        async with open_journal(journal_location(journal, must_exist=True)) as store:
            record = await find_execution(store, execution_id)
            return await _cancel_in_journal(
                store, record.execution_id, reason=told, force=force, by=by, wait=not no_wait
            )

    return await guard(action)


async def _cancel_in_journal(
    store: Journal, execution_id: str, *, reason: str, force: bool, by: str, wait: bool
) -> int:
    """Cancel through the journal: directly when no process runs it, else by a request."""
    import trio

    from .._execution._cancelling import cancel_execution
    from .._execution._claims import held, open_claims
    from ._support import EXIT_INVALID, EXIT_OK

    async with open_claims(store) as locks:
        outcome = await cancel_execution(
            store, locks, execution_id, reason=reason, force=force, by=by
        )
        if not outcome.requested:
            report_cancelled(execution_id, reason, await _recorded_reason(store, execution_id))
            return EXIT_OK
        assert outcome.request is not None
        request_id = outcome.request.request_id
        click.echo(
            f"cancel requested (request {request_id}): another process runs execution "
            f"{execution_id}" + ("" if wait else "; it acts on it within a second")
        )
        if not wait:
            return EXIT_OK
        with trio.move_on_after(CANCEL_WAIT):
            while True:
                record = await store.get_execution(execution_id)
                if record.status.is_terminal:
                    break
                holding = await held(store, [execution_id])
                if holding is not None and execution_id not in holding:
                    # Its process stopped without acting on it (it died, or waits for answers).
                    outcome = await cancel_execution(
                        store, locks, execution_id, reason=reason, force=force, by=by
                    )
                    if not outcome.requested:
                        recorded = await _recorded_reason(store, execution_id)
                        report_cancelled(execution_id, reason, recorded)
                        return EXIT_OK
                await trio.sleep(CANCEL_POLL_INTERVAL)
    status = (await store.get_execution(execution_id)).status
    if str(status) == "cancelled":
        report_cancelled(execution_id, reason, await _recorded_reason(store, execution_id))
        return EXIT_OK
    report_not_cancelled(execution_id, str(status))
    return EXIT_INVALID


async def _recorded_reason(store: Journal, execution_id: str) -> str | None:
    """The reason the journal's `execution.cancelled` event holds (None: no such last event)."""
    last_seq = await store.last_seq(execution_id)
    for event in await store.events(execution_id, after=last_seq - 1):
        reason = event.data.get("reason")
        if str(event.type) == "execution.cancelled" and isinstance(reason, str):
            return reason
    return None


def report_cancelled(execution_id: str, asked: str, recorded: str | None) -> None:
    """Say the execution is cancelled, with the reason recorded (an earlier cancel's may win).

    Only the first cancel's reason is recorded: a later one (even `--force`) only hurries it.
    """
    if recorded is None or recorded == asked:
        click.echo(f"execution {execution_id} cancelled: {asked}")
    else:
        click.echo(
            f"execution {execution_id} cancelled: {recorded} (the reason of an earlier cancel, "
            f"kept; {asked!r} was not recorded)"
        )


def report_not_cancelled(execution_id: str, status: str) -> None:
    """Say why `cancel` exits 1 after a request: ended otherwise, or still running."""
    from ._support import report_error

    if status in ("succeeded", "failed"):
        report_error(f"error: execution {execution_id} {status} before the cancel took effect")
    else:
        report_error(
            f"error: execution {execution_id} is still {status} {CANCEL_WAIT:g}s after the "
            "cancel request (its steps may ignore cancellation); follow it with "
            f"`orchestr8 follow {execution_id}`"
        )


async def _until_interrupted(following: Awaitable[int]) -> int:
    """Run a follow until it returns, or until Ctrl-C / SIGTERM (then 130, the run untouched)."""
    import trio

    from .._shell._process import ExitCode, open_shutdown_signals

    code = int(ExitCode.INTERRUPTED)
    with open_shutdown_signals() as signals:
        async with trio.open_nursery() as nursery:

            async def stop_on_signal() -> None:
                async for _ in signals:
                    nursery.cancel_scope.cancel()
                    return

            async def body() -> None:
                nonlocal code
                code = await following
                nursery.cancel_scope.cancel()

            nursery.start_soon(stop_on_signal)
            nursery.start_soon(body)
    return code


def _hint(journal: str | None) -> Callable[[str], str]:
    """`orchestr8 NAME` with the same `--journal`, for the hints `follow` prints."""
    from .._shell._options import journal_hint

    option = journal_hint(journal)

    def command(name: str) -> str:
        return f"orchestr8 {name}{option}"

    return command


def _user() -> str:
    """Who asks: `user@host`, recorded with a cancel request."""
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _both_sources() -> Exception:
    from ._support import CommandError

    return CommandError("--url and --journal are two ways to reach an execution: give one")

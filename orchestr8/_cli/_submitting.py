"""`orchestr8 run --submit [--wait]`: queue an execution for the workers of a PostgreSQL journal.

The workflow is admitted here exactly as `run` admits it (a bad file or input is refused before
anything is recorded), then recorded and queued (`Runtime.submit`); the workers are woken and
one of them runs it. Without `--wait` the command prints the execution's id (or, with `--json`,
`{"execution_id", "status"}`) and exits 0. With `--wait` it follows the execution through the
journal, showing the progress lines of `run` (as `orchestr8 follow` does), then prints the result
and exits as `run` would: 0 succeeded, 2 failed, 3 timed out, 5 waiting, 130 cancelled. Ctrl-C
stops following (exit 130) and leaves the execution to its worker.

Imported by `run` when `--submit` is given.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import asyncclick as click

from ._support import CommandError

if TYPE_CHECKING:
    from .._execution._admission import Admission
    from .._journal._journal import Journal

__all__ = ["submit_location", "submit_run"]


def submit_location(journal: str | None) -> str:
    """The PostgreSQL journal `--submit` queues on: `--journal`, else `$ORCHESTR8_JOURNAL`.

    Raises:
        CommandError: neither names a PostgreSQL database (workers run from one only).
        JournalError: the URL is malformed.
    """
    from .._journal._postgres_schema import check_url, is_postgres_url

    location = journal or os.environ.get("ORCHESTR8_JOURNAL")
    if not location or not is_postgres_url(location):
        raise CommandError(
            "--submit queues the execution for `orchestr8 worker` processes, which run from a "
            "PostgreSQL journal: give --journal postgresql://USER@HOST/DB (or ORCHESTR8_JOURNAL)"
            "; without --submit, run it here"
        )
    check_url(location)
    return location


async def submit_run(
    admission: Admission,
    location: str,
    *,
    journal_given: str | None,
    wait: bool,
    as_json: bool,
    step_ids: list[str],
) -> int:
    """Record and queue the admitted execution; follow it to its end with `wait`."""
    from .._execution._runtime import open_runtime
    from .._journal._journal import open_journal
    from ._views import dump_json

    async with open_journal(location) as store:
        async with open_runtime(journal=store) as runtime:
            record = await runtime.submit(admission)
        execution_id = record.execution_id
        if not wait:
            if as_json:
                click.echo(dump_json({"execution_id": execution_id, "status": "pending"}))
            else:
                click.echo(execution_id)
            click.echo(
                f"execution {execution_id} submitted; a worker runs it. Follow it: "
                f"orchestr8 follow{_journal_option(journal_given)} {execution_id}",
                err=True,
            )
            return 0
        click.echo(f"execution {execution_id} submitted; following it", err=True)
        return await _follow(store, execution_id, step_ids, journal_given, as_json)


async def _follow(
    store: Journal,
    execution_id: str,
    step_ids: list[str],
    journal_given: str | None,
    as_json: bool,
) -> int:
    """Show the execution's progress until it ends, then its result; return its exit code."""
    import trio

    from .._execution._results import replayed_result
    from .._journal._replay import replay
    from .._shell._process import open_shutdown_signals
    from ._following import Follower, follow_journal
    from ._progress import ProgressView
    from ._support import EXIT_INTERRUPTED
    from ._views import dump_json, render_result, result_document, wants_color

    # On stderr, as `run` shows it: stdout holds the result alone.
    view = ProgressView(sys.stderr, step_ids)
    option = _journal_option(journal_given)
    follower = Follower(view, execution_id, lambda name: f"orchestr8 {name}{option}")
    code: int = EXIT_INTERRUPTED
    followed = False
    with open_shutdown_signals() as signals:
        async with trio.open_nursery() as nursery:

            async def stop_on_signal() -> None:
                async for _ in signals:
                    nursery.cancel_scope.cancel()
                    return

            async def body() -> None:
                nonlocal code, followed
                code = await follow_journal(store, follower)
                followed = True
                nursery.cancel_scope.cancel()

            nursery.start_soon(stop_on_signal)
            nursery.start_soon(body)
    if not followed:
        click.echo(f"stopped following; execution {execution_id} runs on", err=True)
        return code
    result = replayed_result(execution_id, replay(await store.events(execution_id)))
    if as_json:
        click.echo(dump_json(result_document(result)))
    else:
        click.echo(render_result(result, color=wants_color(sys.stdout)))
    return code


def _journal_option(journal_given: str | None) -> str:
    """` --journal VALUE` as the user gave it, its password a placeholder, or nothing."""
    from .._shell._options import journal_hint

    return journal_hint(journal_given)

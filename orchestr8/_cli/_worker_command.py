"""`orchestr8 worker`: run the executions queued on a PostgreSQL journal, until told to stop.

The loop itself (claim, run, heartbeat, drain, hand over, reopen) is `_execution/_worker`; this
module reads the options, opens the runtime each time the loop asks for one, and turns signals
into its stop: the first SIGINT/SIGTERM drains (no run is cancelled), a second exits at once
(the leases are then freed by the database when the process's sessions end).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import asyncclick as click

from .._shell._options import GraceSeconds, providers_option, sync_workers_option
from ._group import journal_option

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from contextlib import AbstractAsyncContextManager

    from .._execution._claims import LeaseClaims
    from .._execution._runtime import Runtime
    from .._journal._journal import Journal

__all__ = ["worker"]


@click.command()
@journal_option
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    metavar="N",
    help="How many executions this worker runs at once.",
)
@click.option(
    "--name",
    default="worker",
    show_default=True,
    metavar="NAME",
    help="The worker's name, shown with its host and pid in the journal's workers table.",
)
@click.option(
    "--lease-ttl",
    type=click.FloatRange(min=0, min_open=True),
    default=5.0,
    show_default=True,
    metavar="SECONDS",
    help="How long a lease lives without a heartbeat: the longest a killed worker's "
    "executions wait for another (a dead database session frees them sooner).",
)
@click.option(
    "--drain",
    type=GraceSeconds(),
    default=30.0,
    show_default=True,
    metavar="SECONDS",
    help="On SIGTERM/SIGINT, how long running executions may go on before they are handed "
    "over to other workers.",
)
@click.option(
    "--cancel-grace",
    type=GraceSeconds(),
    default=5.0,
    show_default=True,
    metavar="SECONDS",
    help="How long a cancelled execution's steps may finish before being forced.",
)
@click.option(
    "--secrets-file",
    metavar="FILE",
    help="A JSON object of secrets by name for ${secrets.NAME}; "
    "over $ORCHESTR8_SECRET_NAME variables.",
)
@sync_workers_option
@providers_option
async def worker(
    journal: str | None,
    concurrency: int,
    name: str,
    lease_ttl: float,
    drain: float,
    cancel_grace: float,
    secrets_file: str | None,
    sync_workers: int | None,
    providers_file: str | None,
) -> int:
    """Run the executions queued on a PostgreSQL journal (orchestr8 run --submit).

    Claims up to --concurrency of them, runs each (resuming, with its succeeded steps reused,
    one another worker left), and claims again when one ends or a new one is queued. The first
    SIGINT/SIGTERM stops claiming and waits up to --drain seconds for the runs (those waiting
    for approval are suspended for another worker to pick up); what still runs is then handed
    over. Exits 0 after a graceful stop, 1 when the journal cannot be used.
    """
    from ._support import CommandError, allow_local_imports, guard, load_providers, load_secrets

    async def action() -> int:
        import logging
        import os
        from contextlib import asynccontextmanager
        from functools import partial

        import trio

        from .._agents._sync_calls import DEFAULT_SYNC_WORKERS
        from .._execution._runtime import open_runtime
        from .._execution._worker import WorkerSettings, run_worker
        from .._journal._journal import open_journal
        from .._journal._postgres_schema import check_url, is_postgres_url, redact_url
        from .._shell._process import ExitCode, open_shutdown_signals, watch_shutdown_signals

        location = journal or os.environ.get("ORCHESTR8_JOURNAL")
        if not location or not is_postgres_url(location):
            raise CommandError(
                "orchestr8 worker needs a PostgreSQL journal: --journal postgresql://USER@HOST/DB"
                " (or ORCHESTR8_JOURNAL)"
            )
        check_url(location)
        secrets = load_secrets(secrets_file)
        providers = load_providers(providers_file)
        allow_local_imports()
        settings = WorkerSettings(
            name=name, concurrency=concurrency, lease_ttl=lease_ttl, drain=drain
        )
        stop = trio.Event()
        logger = logging.getLogger("orchestr8.worker")

        def graceful(signal_name: str) -> None:
            click.echo(
                f"{signal_name}: stopping; running executions have {drain:g}s to end before "
                "they are handed over (interrupt again to exit at once)",
                err=True,
            )
            stop.set()

        async def forced(signal_name: str) -> None:
            click.echo(f"{signal_name} again: exiting now; other workers take over", err=True)

        def opened(holder: str) -> None:
            click.echo(f"worker {holder} runs executions of {redact_url(location)}", err=True)
            logger.info("worker %s claims executions", holder)

        @asynccontextmanager
        async def runtime_on(
            journal_object: Journal, claims: LeaseClaims
        ) -> AsyncIterator[Runtime]:
            async with open_runtime(
                journal=journal_object,
                cancel_grace=cancel_grace,
                secrets=secrets,
                providers=providers,
                claims=claims,
                sync_workers=DEFAULT_SYNC_WORKERS if sync_workers is None else sync_workers,
            ) as runtime:
                yield runtime

        def journal_opener() -> AbstractAsyncContextManager[Journal]:
            return open_journal(location)

        with open_shutdown_signals() as signals:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(
                    partial(watch_shutdown_signals, signals, graceful=graceful, forced=forced)
                )
                try:
                    report = await run_worker(
                        journal_opener, runtime_on, settings, stop, ready=opened
                    )
                finally:
                    nursery.cancel_scope.cancel()
        click.echo(
            f"worker stopped: {report.started} execution(s) run, {report.ended} ended here, "
            f"{report.handed_over} handed over to other workers",
            err=True,
        )
        return ExitCode.OK

    return await guard(action)

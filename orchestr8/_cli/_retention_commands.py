"""`orchestr8 prune`: delete finished executions older than a duration, and compact the journal.

The work is the journal's (`_journal/_retention`); this command reads the options, asks the
execution locks which executions live processes hold, runs the prune on a worker thread and says
what it freed. Heavy imports wait until the command runs.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncclick as click

from ._group import journal_option

__all__ = ["prune"]

_STATUSES = ("succeeded", "failed", "cancelled", "pending", "running", "waiting", "interrupted")
"""What `--status` accepts: the finished statuses, and those it refuses with a reason."""


@click.command()
@click.option(
    "--older-than",
    "older_than",
    required=True,
    metavar="DURATION",
    help="Prune executions that finished longer ago than this: 30d, 12h, 90m, 3600s, 2w.",
)
@click.option(
    "--status",
    "statuses",
    type=click.Choice(_STATUSES),
    multiple=True,
    help="Prune only finished executions with this status (repeat for several).  "
    "[default: succeeded, failed and cancelled]",
)
@click.option("--dry-run", is_flag=True, help="Say what would be pruned; delete nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@journal_option
async def prune(
    older_than: str,
    statuses: Sequence[str],
    dry_run: bool,
    as_json: bool,
    journal: str | None,
) -> int:
    """Delete old finished executions and compact the journal.

    Deletes succeeded, failed and cancelled executions (or those of --status) whose end is older
    than DURATION, with their events, control requests and child executions, and the workflow
    documents nothing refers to any more; then compacts the file (on PostgreSQL: VACUUM
    (ANALYZE), never VACUUM FULL). Running, pending, waiting and interrupted executions are never
    pruned, nor those a live process holds (on PostgreSQL: a live lease).
    """
    from ._support import EXIT_OK, CommandError, describe_journal, guard, journal_location

    async def action() -> int:
        import datetime

        import trio

        from .._execution._lock import held_executions
        from .._journal._events import utc_timestamp
        from .._journal._retention import (
            NEVER_PRUNED,
            PRUNABLE_STATUSES,
            describe_duration,
            parse_duration,
            prune_journal_file,
        )
        from ._views import dump_json

        try:
            seconds = parse_duration(older_than)
        except ValueError as error:
            raise CommandError(f"--older-than: {error}") from None
        asked = list(dict.fromkeys(statuses))
        refused = [status for status in asked if status in NEVER_PRUNED]
        wanted = [status for status in asked if status in PRUNABLE_STATUSES]
        if refused:
            message = (
                f"{', '.join(refused)} executions are never pruned: they may still go on "
                "(only succeeded, failed and cancelled ones are)"
            )
            if not wanted:
                raise CommandError(message)
            click.echo(f"note: {message}", err=True)
        location = journal_location(journal, must_exist=True)
        where = describe_journal(location)
        try:
            moment = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=seconds)
        except OverflowError:
            raise CommandError(
                f"--older-than: {older_than} reaches back before the year 1; nothing is that old"
            ) from None
        cutoff = utc_timestamp(moment)
        if isinstance(location, str):
            from .._journal._postgres_retention import prune_journal_database

            url = location
            report = await trio.to_thread.run_sync(
                lambda: prune_journal_database(
                    url, cutoff=cutoff, statuses=wanted or PRUNABLE_STATUSES, dry_run=dry_run
                )
            )
        else:
            path = location
            report = await trio.to_thread.run_sync(
                lambda: prune_journal_file(
                    path,
                    cutoff=cutoff,
                    statuses=wanted or PRUNABLE_STATUSES,
                    held=lambda ids: held_executions(path, ids),
                    dry_run=dry_run,
                )
            )
        if as_json:
            click.echo(dump_json({**report.to_json(), "older_than": describe_duration(seconds)}))
            return EXIT_OK
        verb = "would prune" if dry_run else "pruned"
        executions = _count(report.executions, "execution")
        children = f" ({_count(report.children, 'child execution')})" if report.children else ""
        click.echo(
            f"{verb} {executions}{children} that ended before {cutoff} "
            f"(older than {describe_duration(seconds)}): {_count(report.events, 'event')}, "
            f"{_count(report.requests, 'control request')}, "
            f"{_count(report.documents, 'workflow document')}"
        )
        for skipped in report.skipped:
            click.echo(f"kept {skipped.execution_id}: {skipped.reason}")
        if dry_run:
            click.echo(
                f"journal {where}: {_size(report.bytes_before)}; nothing deleted (--dry-run)"
            )
            return EXIT_OK
        after = report.bytes_after if report.bytes_after is not None else report.bytes_before
        how = "compacted" if report.compacted else report.compaction_note
        click.echo(
            f"journal {where}: {_size(report.bytes_before)} → {_size(after)} "
            f"({_size(max(report.bytes_before - after, 0))} freed; {how})"
        )
        return EXIT_OK

    return await guard(action)


def _count(number: int, noun: str) -> str:
    """`1 event`, `3 events`, with thousands separated."""
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def _size(size: int) -> str:
    """A byte count for people: B, KiB, MiB or GiB."""
    amount = float(size)
    for unit in ("B", "KiB", "MiB"):
        if amount < 1024:
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} GiB"

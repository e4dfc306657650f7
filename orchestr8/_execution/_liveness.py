"""The derived status `interrupted`: the journal says an execution runs, but no process runs it.

A process that dies (SIGKILL, a power cut) writes no ending, so its executions stay `running` in
the journal until they are resumed. Every run holds its execution's lock (`_lock`) while
it runs, and the kernel drops the locks of a dead process, so an execution whose journal status is
`pending` or `running` and whose lock nobody holds was *interrupted*. A `waiting` execution (its
run stopped on purpose with approval gates open) is never interrupted: it waits for a person.
The views (`inspect`, `GET /executions[/{id}]`, the WebSocket's close reason) show that status;
it is never written to the journal, whose format stays as it is: resuming the execution makes it
`running` again.

The order of the checks matters. The lock is read after the journal status, and the status of an
execution found unlocked is read again: a run that ends meanwhile commits its ending before it
lets go of its lock, so it shows as finished, never as interrupted. A memory journal lives and
dies with the only process that can run its executions, so they are never interrupted. On a
PostgreSQL journal the locks are leases (`_claims.held`): an execution is held while some
runtime's lease on it is live, or while it is queued for the workers (one will run it).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import attrs

from .._journal._events import ExecutionStatus
from .._journal._journal import ExecutionRecord, Journal
from .._journal._records import encode_cursor
from ._claims import held

INTERRUPTED: Final = "interrupted"
"""The status shown for an execution that is not finished, but that no process runs."""

_LIVE: Final = frozenset({ExecutionStatus.PENDING, ExecutionStatus.RUNNING})
"""The journal statuses that say a process runs the execution now."""

SHOWN_STATUSES: Final = (*(str(status) for status in ExecutionStatus), INTERRUPTED)
"""Every status a view may show: the journal's, then `interrupted`."""


async def interrupted_executions(
    journal: Journal, candidates: Iterable[tuple[str, ExecutionStatus]]
) -> frozenset[str]:
    """Which of the executions, given with the status just read from `journal`, were interrupted.

    Only `pending` and `running` executions are looked at; their locks are read without taking
    them, and those found unlocked are read again from the journal.

    Raises:
        JournalError: the journal or its lock file cannot be read.
    """
    unfinished = {execution_id for execution_id, status in candidates if status in _LIVE}
    if not unfinished:
        return frozenset()
    holding = await held(journal, unfinished)
    if holding is None:
        return frozenset()
    unlocked = unfinished - holding
    interrupted = set()
    for execution_id in unlocked:
        if (await journal.get_execution(execution_id)).status in _LIVE:
            interrupted.add(execution_id)
    return frozenset(interrupted)


async def shown_status(journal: Journal, execution_id: str, status: ExecutionStatus) -> str:
    """The status to show for one execution: `interrupted`, or the journal's `status`."""
    interrupted = await interrupted_executions(journal, [(execution_id, status)])
    return INTERRUPTED if interrupted else str(status)


@attrs.frozen
class ShownExecution:
    """An execution as the views list it: its journal record and the status to show."""

    record: ExecutionRecord
    status: str


@attrs.frozen
class ShownPage:
    """One page of executions as the views list them; pass `next_cursor` as `before` for more."""

    items: tuple[ShownExecution, ...]
    next_cursor: str | None


async def list_shown_executions(
    journal: Journal,
    *,
    status: str | None = None,
    limit: int = 50,
    before: str | None = None,
    scan_pages: int = 20,
    top_level: bool = False,
    workflow: str | None = None,
    id_prefix: str | None = None,
) -> ShownPage:
    """A page of executions, newest first, with the status to show; optionally only `status`.

    `workflow` (an exact workflow name) and `id_prefix` (the start of the execution id) are
    applied by the journal (`Journal.list_executions`), so they hold for every status.

    Filtering by a status the derived one changes (`pending`, `running`, `interrupted`) reads
    journal pages until `limit` executions match, at most `scan_pages` of them: a page may then
    hold fewer items, even none, and still have a `next_cursor`. `top_level` leaves out child
    executions (a sub-workflow's, a plan's, a map item's), the same way.

    Raises:
        ValueError: `limit` is below 1, `before` is not a cursor, `status` is no status,
            `id_prefix` is not 1 to 32 lowercase hex characters.
        JournalError: the journal or its lock file cannot be read.
    """
    if status is not None and status not in SHOWN_STATUSES:
        raise ValueError(f"unknown status {status!r}: expected one of {', '.join(SHOWN_STATUSES)}")
    journal_status = None if status == INTERRUPTED else status
    items: list[ShownExecution] = []
    cursor = before
    for _ in range(scan_pages):
        page = await journal.list_executions(
            status=journal_status,
            limit=limit,
            before=cursor,
            workflow=workflow,
            id_prefix=id_prefix,
        )
        interrupted = await interrupted_executions(
            journal, [(record.execution_id, record.status) for record in page.items]
        )
        for index, record in enumerate(page.items):
            shown = INTERRUPTED if record.execution_id in interrupted else str(record.status)
            if (status is not None and shown != status) or (
                top_level and record.parent_id is not None
            ):
                continue
            items.append(ShownExecution(record, shown))
            if len(items) == limit:
                more = index + 1 < len(page.items) or page.next_cursor is not None
                next_cursor = (
                    encode_cursor(record.created_at, record.execution_id) if more else None
                )
                return ShownPage(tuple(items), next_cursor)
        cursor = page.next_cursor
        if cursor is None:
            break
    return ShownPage(tuple(items), cursor)

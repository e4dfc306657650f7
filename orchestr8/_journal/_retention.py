"""Retention: deleting finished executions from a SQLite journal file, then compacting the file.

`prune_journal_file` deletes the finished executions (`succeeded`, `failed`, `cancelled`, or
some of them) that ended before a cutoff, each with its events, its control requests and its
whole tree of child executions, then the workflow documents no execution refers to any more,
and compacts the file (`VACUUM`). Executions that are not finished (`pending`, `running`,
`waiting`, and so `interrupted`) are never deleted, and neither is a tree one of whose members
is not finished or is held by a live process (its lock, asked through `held`), nor a child
without its parent: only top-level executions are candidates, and a child goes with its root.

A server or a run may use the journal meanwhile: each batch of trees is one `BEGIN IMMEDIATE`
transaction that reads the candidates again and asks for their locks inside it, so what it
deletes was finished and unheld while no other writer could change it. Compaction rewrites the
whole file while holding the write lock, so it is skipped (and the report says why) while a
live process runs executions on the journal or when the lock cannot be had at once; the prune
itself never fails for it. A dry run reads only: it counts what a prune would delete.

The journal never imports the engine: the caller says which executions a live process holds
(`_execution/_lock.held_executions`) through `held`.
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any, Final

import attrs

from .._errors import JournalError
from ._events import ExecutionStatus
from ._sqlite_schema import connect, explain, migrate

__all__ = [
    "BATCH_EXECUTIONS",
    "COMPACTION_BUSY_TIMEOUT_MS",
    "DURATION_UNITS",
    "NEVER_PRUNED",
    "PRUNABLE_STATUSES",
    "HeldExecutions",
    "PruneReport",
    "SkippedExecution",
    "check_statuses",
    "describe_duration",
    "parse_duration",
    "prune_journal_file",
]

PRUNABLE_STATUSES: Final = (
    str(ExecutionStatus.SUCCEEDED),
    str(ExecutionStatus.FAILED),
    str(ExecutionStatus.CANCELLED),
)
"""The statuses of executions a prune may delete: the finished ones."""

NEVER_PRUNED: Final = ("pending", "running", "waiting", "interrupted")
"""Statuses a prune refuses even when asked for: the execution may still go on."""

DURATION_UNITS: Final = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
"""The units of a duration and their seconds, largest first."""

_DURATION = re.compile(r"([0-9]{1,9})([wdhms])")

BATCH_EXECUTIONS: Final = 500
"""About how many executions (children included) one prune transaction deletes.

A tree is never split, so one with more children is its own batch. Small batches keep the write
lock short, so a live run on the same journal waits milliseconds, not its busy timeout.
"""

COMPACTION_BUSY_TIMEOUT_MS: Final = 250
"""How long compaction waits for the write lock before it gives up (milliseconds)."""

HeldExecutions = Callable[[Collection[str]], Collection[str]]
"""Given execution ids, say which of them a live process holds (runs) now."""


def parse_duration(text: str) -> int:
    """Read a duration like `30d`, `12h`, `90m`, `3600s` or `2w` as a whole number of seconds.

    Raises:
        ValueError: the text is not a whole number followed by one of the units w, d, h, m, s.
    """
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(
            f"{text!r} is not a duration: write a whole number and a unit, like 30d, 12h, 90m, "
            "3600s or 2w (w weeks, d days, h hours, m minutes, s seconds)"
        )
    return int(match[1]) * DURATION_UNITS[match[2]]


def describe_duration(seconds: int) -> str:
    """Write a whole number of seconds in the largest unit that divides it (`parse_duration`'s)."""
    for unit, size in DURATION_UNITS.items():
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@attrs.frozen
class SkippedExecution:
    """A finished top-level execution old enough to prune that was kept, and why."""

    execution_id: str
    reason: str


@attrs.frozen
class PruneReport:
    """What a prune deleted (or, in a dry run, would delete) and what it did to the file.

    `executions` counts every execution deleted, `children` those of them that were child
    executions; `pruned` names the top-level ones. `bytes_before` and `bytes_after` are the sizes
    of the journal file with its write-ahead log; `bytes_after` is None in a dry run.
    `compacted` says whether the file was compacted, and `compaction_note` why not when it
    was not.
    """

    cutoff: str
    statuses: tuple[str, ...]
    dry_run: bool
    executions: int = 0
    children: int = 0
    events: int = 0
    requests: int = 0
    documents: int = 0
    pruned: tuple[str, ...] = ()
    skipped: tuple[SkippedExecution, ...] = ()
    bytes_before: int = 0
    bytes_after: int | None = None
    compacted: bool = False
    compaction_note: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The report as a JSON object (what `orchestr8 prune --json` prints)."""
        return {
            "cutoff": self.cutoff,
            "statuses": list(self.statuses),
            "dry_run": self.dry_run,
            "executions": self.executions,
            "children": self.children,
            "events": self.events,
            "requests": self.requests,
            "documents": self.documents,
            "pruned": list(self.pruned),
            "skipped": [
                {"execution_id": item.execution_id, "reason": item.reason} for item in self.skipped
            ],
            "bytes_before": self.bytes_before,
            "bytes_after": self.bytes_after,
            "compacted": self.compacted,
            "compaction_note": self.compaction_note,
        }


@attrs.define
class _Tally:
    """What the batches have counted so far."""

    executions: int = 0
    children: int = 0
    events: int = 0
    requests: int = 0
    pruned: list[str] = attrs.Factory(list)
    skipped: list[SkippedExecution] = attrs.Factory(list)
    digests: Counter[str] = attrs.Factory(Counter)
    """Workflow documents of the pruned executions: how many of them referred to each."""


@attrs.frozen
class _Tree:
    """A top-level execution and its descendants: ids (root first), statuses, documents."""

    root: str
    ids: tuple[str, ...]
    unfinished: tuple[str, ...]
    digests: tuple[str, ...]


def _file_bytes(path: Path) -> int:
    """The size of the journal file and its write-ahead log, in bytes."""
    total = 0
    for part in (path, Path(f"{path}-wal")):
        with contextlib.suppress(FileNotFoundError):
            total += part.stat().st_size
    return total


def check_statuses(statuses: Collection[str]) -> tuple[str, ...]:
    """The statuses a prune deletes, sorted; only finished ones (`PRUNABLE_STATUSES`) may be.

    Raises:
        ValueError: `statuses` is empty or names a status that is not a finished one.
    """
    wanted = tuple(sorted(set(statuses)))
    refused = [status for status in wanted if status not in PRUNABLE_STATUSES]
    if refused or not wanted:
        raise ValueError(
            f"only finished executions are pruned ({', '.join(PRUNABLE_STATUSES)}), "
            f"not {', '.join(refused) or 'none'}"
        )
    return wanted


def prune_journal_file(
    path: Path,
    *,
    cutoff: str,
    statuses: Collection[str] = PRUNABLE_STATUSES,
    held: HeldExecutions,
    dry_run: bool = False,
    batch_executions: int = BATCH_EXECUTIONS,
) -> PruneReport:
    """Delete the finished executions of the journal at `path` that ended before `cutoff`.

    `cutoff` is a UTC timestamp as the journal writes them (`utc_timestamp`); an execution's end
    is its `finished_at`, or its `created_at` when it has none. `statuses` narrows the finished
    statuses deleted. Blocking: run it on a worker thread from async code.

    Raises:
        ValueError: `statuses` names a status that is not a finished one.
        JournalError: the file is not a journal, or reading or writing it failed.
    """
    wanted = check_statuses(statuses)
    if not path.is_file():
        raise JournalError(f"there is no journal at {path}")
    before = _file_bytes(path)
    opened: list[sqlite3.Connection] = []
    try:
        connection = connect(path, opened)
        connection.execute("PRAGMA journal_mode = WAL").fetchone()
        migrate(connection, str(path))
        tally = _Tally()
        _prune_batches(connection, cutoff, wanted, held, dry_run, batch_executions, tally)
        documents = _collect_documents(connection, tally.digests, dry_run)
        deleted = bool(tally.pruned or documents)
        compacted, note = (False, None) if dry_run else _compact(connection, held, deleted)
    except sqlite3.Error as error:
        raise JournalError(explain(path, error)) from error
    finally:
        for opened_connection in opened:
            opened_connection.close()
    return PruneReport(
        cutoff=cutoff,
        statuses=wanted,
        dry_run=dry_run,
        executions=tally.executions,
        children=tally.children,
        events=tally.events,
        requests=tally.requests,
        documents=documents,
        pruned=tuple(tally.pruned),
        skipped=tuple(tally.skipped),
        bytes_before=before,
        bytes_after=None if dry_run else _file_bytes(path),
        compacted=compacted,
        compaction_note=note,
    )


def _prune_batches(
    connection: sqlite3.Connection,
    cutoff: str,
    statuses: tuple[str, ...],
    held: HeldExecutions,
    dry_run: bool,
    batch_executions: int,
    tally: _Tally,
) -> None:
    """Walk the candidate roots in id order, one transaction per batch of trees."""
    marks = ", ".join("?" * len(statuses))
    candidates = (
        "SELECT execution_id FROM executions WHERE parent_id IS NULL"
        f" AND status IN ({marks}) AND coalesce(finished_at, created_at) < ?"
        " AND execution_id > ? ORDER BY execution_id LIMIT ?"
    )
    after = ""
    while True:
        connection.execute("BEGIN" if dry_run else "BEGIN IMMEDIATE")
        try:
            trees: list[_Tree] = []
            size = 0
            while size < batch_executions:
                roots = connection.execute(
                    candidates, (*statuses, cutoff, after, batch_executions)
                ).fetchall()
                for (root,) in roots:
                    tree = _tree(connection, root)
                    trees.append(tree)
                    size += len(tree.ids)
                    after = root
                    if size >= batch_executions:
                        break
                if len(roots) < batch_executions:
                    break
            doomed = _keep_out(trees, held, tally)
            _delete(connection, doomed, dry_run, tally)
            connection.execute("ROLLBACK" if dry_run else "COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        if size < batch_executions:
            return


def _tree(connection: sqlite3.Connection, root: str) -> _Tree:
    """The root (finished: a candidate) and every descendant, found through `parent_id`.

    A child's id is its parent's followed by `.` (`child_execution_id`), so the descendants are
    in the primary key's range after `ROOT.`; parents sort before their children there.
    """
    (digest,) = connection.execute(
        "SELECT workflow_digest FROM executions WHERE execution_id = ?", (root,)
    ).fetchone()
    ids, unfinished, digests = [root], [], []
    if digest is not None:
        digests.append(digest)
    members = {root}
    rows = connection.execute(
        "SELECT execution_id, parent_id, status, workflow_digest FROM executions"
        " WHERE execution_id > ? AND execution_id < ? ORDER BY execution_id",
        (f"{root}.", f"{root}/"),
    )
    for execution_id, parent_id, status, digest in rows:
        if parent_id in members:
            members.add(execution_id)
            ids.append(execution_id)
            if status not in PRUNABLE_STATUSES:
                unfinished.append(execution_id)
            if digest is not None:
                digests.append(digest)
    return _Tree(root, tuple(ids), tuple(unfinished), tuple(digests))


def _keep_out(trees: Sequence[_Tree], held: HeldExecutions, tally: _Tally) -> list[_Tree]:
    """The trees that may go: none of their members unfinished or held by a live process."""
    finished = []
    for tree in trees:
        if tree.unfinished:
            tally.skipped.append(
                SkippedExecution(tree.root, f"its child {tree.unfinished[0]} is not finished")
            )
        else:
            finished.append(tree)
    if not finished:
        return []
    taken = set(held([execution_id for tree in finished for execution_id in tree.ids]))
    doomed = []
    for tree in finished:
        holding = [execution_id for execution_id in tree.ids if execution_id in taken]
        if holding:
            tally.skipped.append(
                SkippedExecution(tree.root, f"a live process holds {holding[0]} (it runs it)")
            )
        else:
            doomed.append(tree)
    return doomed


def _delete(
    connection: sqlite3.Connection, trees: Sequence[_Tree], dry_run: bool, tally: _Tally
) -> None:
    """Delete (or, in a dry run, count) the trees' events, requests and executions."""
    if not trees:
        return
    ids = json.dumps([execution_id for tree in trees for execution_id in tree.ids])
    among = "execution_id IN (SELECT value FROM json_each(?))"
    if dry_run:
        events = connection.execute(f"SELECT count(*) FROM events WHERE {among}", (ids,))
        requests = connection.execute(f"SELECT count(*) FROM requests WHERE {among}", (ids,))
        tally.events += events.fetchone()[0]
        tally.requests += requests.fetchone()[0]
    else:
        tally.events += connection.execute(f"DELETE FROM events WHERE {among}", (ids,)).rowcount
        tally.requests += connection.execute(f"DELETE FROM requests WHERE {among}", (ids,)).rowcount
        connection.execute(f"DELETE FROM executions WHERE {among}", (ids,))
    for tree in trees:
        tally.pruned.append(tree.root)
        tally.executions += len(tree.ids)
        tally.children += len(tree.ids) - 1
        tally.digests.update(tree.digests)


def _collect_documents(connection: sqlite3.Connection, pruned: Counter[str], dry_run: bool) -> int:
    """Delete the workflow documents no execution refers to; return how many (would) go."""
    unreferenced = (
        "digest NOT IN (SELECT workflow_digest FROM executions WHERE workflow_digest IS NOT NULL)"
    )
    if not dry_run:
        connection.execute("BEGIN IMMEDIATE")
        try:
            count = connection.execute(f"DELETE FROM workflow_documents WHERE {unreferenced}")
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        return count.rowcount
    orphans: int = connection.execute(
        f"SELECT count(*) FROM workflow_documents WHERE {unreferenced}"
    ).fetchone()[0]
    if not pruned:
        return orphans
    remaining = dict(
        connection.execute(
            "SELECT workflow_digest, count(*) FROM executions"
            " WHERE workflow_digest IN (SELECT value FROM json_each(?)) GROUP BY workflow_digest",
            (json.dumps(list(pruned)),),
        ).fetchall()
    )
    return orphans + sum(1 for digest, count in pruned.items() if remaining.get(digest) == count)


def _compact(
    connection: sqlite3.Connection, held: HeldExecutions, deleted: bool
) -> tuple[bool, str | None]:
    """Checkpoint the log and `VACUUM` the file, unless a live writer may be using it.

    A file is compacted when this prune deleted something (its rows leave pages partly empty)
    or it has free pages (an earlier prune could not compact); otherwise there is nothing to win.
    """
    unfinished = [
        execution_id
        for (execution_id,) in connection.execute(
            "SELECT execution_id FROM executions WHERE status NOT IN (?, ?, ?)",
            PRUNABLE_STATUSES,
        )
    ]
    running = held(unfinished) if unfinished else ()
    if running:
        count = len(running)
        noun = "execution" if count == 1 else "executions"
        return False, (
            f"not compacted: another process runs {count} {noun} on this journal and compaction "
            "would hold up its writes; run prune again when it is idle"
        )
    if not deleted and not connection.execute("PRAGMA freelist_count").fetchone()[0]:
        return False, "not compacted: nothing was deleted and the file has no free pages"
    connection.execute(f"PRAGMA busy_timeout = {COMPACTION_BUSY_TIMEOUT_MS}")
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        connection.execute("VACUUM")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    except sqlite3.OperationalError as error:
        return False, f"not compacted: {error} (another process is using the journal)"
    return True, None

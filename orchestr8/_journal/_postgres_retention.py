"""Retention on a PostgreSQL journal: deleting finished executions, then `VACUUM (ANALYZE)`.

The same rules and report as the SQLite prune (`_retention`): only finished top-level
executions that ended before the cutoff are candidates; a tree goes whole or not at all, and
never while one of its members is unfinished or held. On PostgreSQL "held" means a live lease
(`leases`: a holder whose lease has not expired), read in the same transaction that deletes, so
the database itself says which executions some worker or server runs now.

Each batch of trees is one transaction that locks the trees' execution rows (`FOR UPDATE`)
before it reads their statuses and leases, so what it deletes was finished and unheld while no
writer could change it; workers and servers go on writing other executions meanwhile. The lease
rows go with their executions (`ON DELETE CASCADE`).

Compaction: `VACUUM FULL` would lock every journal table for as long as it rewrites them, which a
shared database cannot afford, so a prune that deleted something runs a plain `VACUUM (ANALYZE)`
on the journal tables instead: the freed space is reused by the database (not returned to the
operating system) and the planner's statistics are fresh. The report says so; a user who may not
vacuum the tables (not their owner) gets the prune and a note, never a failure.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from typing import Any, Final

from .._errors import JournalError
from ._postgres_schema import SCHEMA, check_version, connect, explain, import_psycopg
from ._retention import (
    BATCH_EXECUTIONS,
    PRUNABLE_STATUSES,
    PruneReport,
    SkippedExecution,
    check_statuses,
)

__all__ = ["JOURNAL_TABLES", "VACUUMED_NOTE", "leased_executions", "prune_journal_database"]

JOURNAL_TABLES: Final = ("events", "requests", "executions", "workflow_documents", "leases")
"""The tables a prune deletes from, and vacuums afterwards."""

VACUUMED_NOTE: Final = (
    "vacuumed (VACUUM (ANALYZE)): PostgreSQL reuses the freed space; the tables are not "
    "shrunk, since VACUUM FULL would lock them while workers and servers use them"
)
"""What a prune that deleted something says about compaction on PostgreSQL."""

_LIVE_LEASES: Final = (
    "SELECT execution_id FROM leases WHERE holder IS NOT NULL AND expires_at > now()"
    " AND execution_id = ANY(%s)"
)


def leased_executions(connection: Any, execution_ids: Collection[str]) -> frozenset[str]:
    """Which of the executions a live lease holds (some runtime runs them now)."""
    if not execution_ids:
        return frozenset()
    rows = connection.execute(_LIVE_LEASES, (list(execution_ids),)).fetchall()
    return frozenset(row[0] for row in rows)


def prune_journal_database(
    url: str,
    *,
    cutoff: str,
    statuses: Collection[str] = PRUNABLE_STATUSES,
    dry_run: bool = False,
    batch_executions: int = BATCH_EXECUTIONS,
) -> PruneReport:
    """Delete the finished executions of the PostgreSQL journal at `url` that ended before `cutoff`.

    Like `prune_journal_file`; the executions held are those with a live lease. Blocking: run
    it on a worker thread from async code.

    Raises:
        ValueError: `statuses` names a status that is not a finished one.
        JournalError: the database holds no journal (or an older one), or reading or writing
            it failed.
    """
    wanted = check_statuses(statuses)
    psycopg = import_psycopg()
    connection = connect(url, purpose="orchestr8 prune")
    try:
        check_version(connection, url, create=False)
        before = _bytes(connection)
        pruned: list[str] = []
        skipped: list[SkippedExecution] = []
        counts: Counter[str] = Counter()
        digests: Counter[str] = Counter()
        after = ""
        while True:
            with connection.transaction() as transaction:
                after, more = _prune_batch(
                    connection,
                    cutoff,
                    wanted,
                    after,
                    batch_executions,
                    pruned,
                    skipped,
                    counts,
                    digests,
                )
                if dry_run:
                    raise psycopg.Rollback(transaction)
            if not more:
                break
        documents = _collect_documents(connection, digests, dry_run)
        note = "not vacuumed: nothing was deleted"
        if not dry_run and (pruned or documents):
            note = _vacuum(connection, psycopg)
        size_after = None if dry_run else _bytes(connection)
    except psycopg.Error as error:
        raise JournalError(explain(url, error)) from None
    finally:
        connection.close()
    return PruneReport(
        cutoff=cutoff,
        statuses=wanted,
        dry_run=dry_run,
        executions=counts["executions"],
        children=counts["children"],
        events=counts["events"],
        requests=counts["requests"],
        documents=documents,
        pruned=tuple(pruned),
        skipped=tuple(skipped),
        bytes_before=before,
        bytes_after=size_after,
        compacted=False,
        compaction_note=None if dry_run else note,
    )


def _bytes(connection: Any) -> int:
    """The size of the journal's tables with their indexes and TOAST, in bytes."""
    row = connection.execute(
        "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class AS c"
        " JOIN pg_namespace AS n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relkind = 'r'",
        (SCHEMA,),
    ).fetchone()
    return int(row[0])


def _prune_batch(
    connection: Any,
    cutoff: str,
    statuses: tuple[str, ...],
    after: str,
    batch_executions: int,
    pruned: list[str],
    skipped: list[SkippedExecution],
    counts: Counter[str],
    digests: Counter[str],
) -> tuple[str, bool]:
    """Prune one batch of trees in the caller's transaction; return (last root, more to come).

    The trees are locked, those with an unfinished or held member kept out, the rest deleted.
    """
    roots = connection.execute(
        "SELECT execution_id FROM executions WHERE parent_id IS NULL"
        " AND status = ANY(%s) AND coalesce(finished_at, created_at) < %s"
        " AND execution_id > %s ORDER BY execution_id LIMIT %s FOR UPDATE",
        (list(statuses), cutoff, after, batch_executions),
    ).fetchall()
    trees: list[tuple[str, list[str], list[str]]] = []
    tree_digests: dict[str, list[str]] = {}
    size = 0
    for (root,) in roots:
        ids, unfinished, tree_digests[root] = _tree(connection, root)
        trees.append((root, ids, unfinished))
        size += len(ids)
        after = root
        if size >= batch_executions:
            break
    more = len(roots) >= batch_executions or size >= batch_executions
    finished = []
    for root, ids, unfinished in trees:
        if unfinished:
            reason = f"its child {unfinished[0]} is not finished"
            skipped.append(SkippedExecution(root, reason))
        else:
            finished.append((root, ids))
    taken = leased_executions(connection, [one for _, ids in finished for one in ids])
    doomed: list[tuple[str, list[str]]] = []
    for root, ids in finished:
        holding = [one for one in ids if one in taken]
        if holding:
            reason = f"a live process holds {holding[0]} (it runs it)"
            skipped.append(SkippedExecution(root, reason))
        else:
            doomed.append((root, ids))
    _delete(connection, doomed, counts)
    for root, _ in doomed:
        pruned.append(root)
        digests.update(tree_digests[root])
    return after, more


def _tree(connection: Any, root: str) -> tuple[list[str], list[str], list[str]]:
    """The tree's ids (locked, found through `parent_id`), its unfinished ones, its digests.

    A child's id is its parent's followed by `.`, so the descendants sort between `ROOT.` and
    `ROOT/` (the `C` collation compares bytes), parents before their children.
    """
    (digest,) = connection.execute(
        "SELECT workflow_digest FROM executions WHERE execution_id = %s", (root,)
    ).fetchone()
    ids, unfinished, digests = [root], [], [] if digest is None else [digest]
    members = {root}
    rows = connection.execute(
        "SELECT execution_id, parent_id, status, workflow_digest FROM executions"
        " WHERE execution_id > %s AND execution_id < %s ORDER BY execution_id FOR UPDATE",
        (f"{root}.", f"{root}/"),
    ).fetchall()
    for execution_id, parent_id, status, digest in rows:
        if parent_id in members:
            members.add(execution_id)
            ids.append(execution_id)
            if status not in PRUNABLE_STATUSES:
                unfinished.append(execution_id)
            if digest is not None:
                digests.append(digest)
    return ids, unfinished, digests


def _delete(connection: Any, trees: Sequence[tuple[str, list[str]]], counts: Counter[str]) -> None:
    """Delete the trees' events, requests and executions (their leases cascade)."""
    if not trees:
        return
    ids = [one for _, tree in trees for one in tree]
    counts["events"] += connection.execute(
        "DELETE FROM events WHERE execution_id = ANY(%s)", (ids,)
    ).rowcount
    counts["requests"] += connection.execute(
        "DELETE FROM requests WHERE execution_id = ANY(%s)", (ids,)
    ).rowcount
    connection.execute("DELETE FROM executions WHERE execution_id = ANY(%s)", (ids,))
    counts["executions"] += len(ids)
    counts["children"] += len(ids) - len(trees)


def _collect_documents(connection: Any, pruned: Counter[str], dry_run: bool) -> int:
    """Delete (or count) the workflow documents no execution refers to any more.

    A dry run's batches rolled back, so it counts the documents nothing refers to now and those
    only the executions it would prune refer to (`pruned`: how many of them refer to each).
    """
    unreferenced = "NOT EXISTS (SELECT 1 FROM executions AS e WHERE e.workflow_digest = d.digest)"
    if dry_run:
        row = connection.execute(
            f"SELECT count(*) FROM workflow_documents AS d WHERE {unreferenced}"
        ).fetchone()
        if not pruned:
            return int(row[0])
        remaining = dict(
            connection.execute(
                "SELECT workflow_digest, count(*) FROM executions"
                " WHERE workflow_digest = ANY(%s) GROUP BY workflow_digest",
                (list(pruned),),
            ).fetchall()
        )
        return int(row[0]) + sum(
            1 for digest, count in pruned.items() if remaining.get(digest) == count
        )
    with connection.transaction():
        # Two statements: the candidates are locked first (waiting for a writer that holds one
        # it reuses), then deleted only if, in a snapshot taken after that wait, still nothing
        # refers to them; a writer that looks a document up after the lock finds it gone.
        locked = [
            row[0]
            for row in connection.execute(
                f"SELECT digest FROM workflow_documents AS d WHERE {unreferenced} FOR UPDATE"
            ).fetchall()
        ]
        if not locked:
            return 0
        deleted = connection.execute(
            f"DELETE FROM workflow_documents AS d WHERE digest = ANY(%s) AND {unreferenced}",
            (locked,),
        ).rowcount
    return int(deleted)


def _vacuum(connection: Any, psycopg: Any) -> str:
    """`VACUUM (ANALYZE)` the journal tables; what to tell the user."""
    try:
        connection.execute(f"VACUUM (ANALYZE) {', '.join(JOURNAL_TABLES)}")
    except psycopg.Error as error:
        return f"not vacuumed: {' '.join(str(error).split())}"
    return VACUUMED_NOTE

"""Execution leases on PostgreSQL: which process runs an execution, and the epoch it writes at.

A runtime on a PostgreSQL journal holds a lease (a `leases` row) for every execution it runs,
where a runtime on SQLite holds an fcntl lock (`_execution/_lock`). A lease has a `holder` (the
runtime's holder id, `name/host/pid/uuid8`), an `expires_at` on the database's clock, and an
`epoch` that grows by one at every claim. The holder renews all of its leases in one UPDATE (the
heartbeat); a lease nobody renewed expires and another runtime may take it over. A holder is
dead at once, expired or not, when the database session it registered (`workers.session_pid`
and `session_start`, from `pg_stat_activity`) is gone: a killed worker's leases are free as soon
as PostgreSQL notices its connection closed, not after the TTL.

Fencing: every batch the journal's writer commits checks, in the same transaction and under
`FOR SHARE` (so a takeover waits for the commit, and the commit for the takeover), that this
journal object holds every leased execution of the batch at its current epoch and that the lease
is live (`Fencing.check`). A process that froze past its lease, lost its network or its lease,
and wakes up, has its writes refused: it can never complete a step twice.

The queue: `queued = true` marks an execution workers run (`submit`); a worker claims queued
executions whose lease is free with `FOR UPDATE SKIP LOCKED` (`claim_queued`), so concurrent
workers never claim the same one and never wait for each other. `NOTIFY orchestr8_work` wakes the
workers when there is work (a submit, a release that keeps the execution queued).

Every function here is plain SQL over a psycopg connection in autocommit mode, run on the
caller's thread; the engine's side (`_execution/_claims`) runs them on the lease connection's
own thread. Times are the database's `now()`, so hosts never compare clocks.
"""

from __future__ import annotations

import math
import time
from collections.abc import Collection, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final

import attrs

from .._errors import JournalError
from ._events import ExecutionStatus

if TYPE_CHECKING:
    import psycopg

WORK_CHANNEL: Final = "orchestr8_work"
"""The LISTEN/NOTIFY channel that wakes workers: an execution was queued or released."""

_TERMINAL: Final = tuple(str(status) for status in ExecutionStatus if status.is_terminal)
"""The recorded statuses of an execution that ended: it leaves the queue when released."""

_LIVE_SESSION: Final = """EXISTS (
    SELECT 1 FROM pg_stat_activity AS a
    WHERE a.pid = {workers}.session_pid
        AND (a.backend_start = {workers}.session_start OR a.backend_start IS NULL))"""
"""SQL: the session a `workers` row names is still connected.

`pg_stat_activity` shows a session of another role (one without `pg_read_all_stats`) with its
pid but a NULL `backend_start`: such a session counts as the holder's when its pid matches, so
workers logging in as different roles never take each other for dead.
"""

_DEAD_HOLDER: Final = (
    """NOT EXISTS (
    SELECT 1 FROM workers AS w
    WHERE w.holder = {table}.holder AND w.stopped_at IS NULL AND """
    + _LIVE_SESSION.format(workers="w")
    + ")"
)
"""SQL: the holder of a lease row of `{table}` has no live registered database session."""

_FREE: Final = (
    "({table}.holder IS NULL OR {table}.expires_at IS NULL OR {table}.expires_at <= now() OR "
    + _DEAD_HOLDER
    + ")"
)
"""SQL: the lease row of `{table}` may be claimed (free, expired, or its holder is dead)."""


def _free(table: str) -> str:
    """The condition that a lease row (of the table or alias `table`) may be claimed."""
    return _FREE.format(table=table)


def _seconds(ttl: float) -> float:
    """A lease TTL, checked: a positive number of seconds."""
    if not ttl > 0:
        raise ValueError(f"a lease TTL must be a positive number of seconds: {ttl}")
    return float(ttl)


def register_worker(
    connection: psycopg.Connection[Any],
    holder: str,
    *,
    name: str,
    host: str,
    pid: int,
    concurrency: int | None = None,
) -> None:
    """Record (or re-record) the holder with this connection's session, whose end kills it.

    The rows of holders whose sessions ended (killed workers) go first: they hold nothing (a
    holder without a row is dead, as one with a dead session is), so the table lists the
    workers that run now, and those killed since the last registration.
    """
    connection.execute("DELETE FROM workers AS w WHERE NOT " + _LIVE_SESSION.format(workers="w"))
    connection.execute(
        """INSERT INTO workers AS w
               (holder, name, host, pid, concurrency, session_pid, session_start)
           SELECT %s, %s, %s, %s, %s, a.pid, a.backend_start
           FROM pg_stat_activity AS a WHERE a.pid = pg_backend_pid()
           ON CONFLICT (holder) DO UPDATE SET
               session_pid = EXCLUDED.session_pid, session_start = EXCLUDED.session_start,
               heartbeat_at = now(), stopped_at = NULL""",
        (holder, name, host, pid, concurrency),
    )


def stop_worker(connection: psycopg.Connection[Any], holder: str) -> None:
    """Remove the holder's row: whatever lease it still has is free at once (it is dead)."""
    connection.execute("DELETE FROM workers WHERE holder = %s", (holder,))


def acquire(
    connection: psycopg.Connection[Any], execution_id: str, holder: str, ttl: float
) -> int | None:
    """Claim the execution's lease for `holder`; its new epoch, or None while another holds it.

    A free, expired or dead holder's lease (or none yet) is taken with `epoch + 1`; a live lease,
    the holder's own included, is refused. The execution must be recorded (the lease refers to it).
    """
    row = connection.execute(
        f"""INSERT INTO leases AS l (execution_id, epoch, holder, expires_at, claims, claimed_at)
            VALUES (%s, 1, %s, now() + make_interval(secs => %s), 1, now())
            ON CONFLICT (execution_id) DO UPDATE SET
                epoch = l.epoch + 1, holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at,
                claims = l.claims + 1, claimed_at = now()
            WHERE {_free("l")}
            RETURNING epoch""",
        (execution_id, holder, _seconds(ttl)),
    ).fetchone()
    return None if row is None else int(row[0])


def renew(connection: psycopg.Connection[Any], holder: str, ttl: float) -> frozenset[str]:
    """Extend every live lease of `holder` by `ttl` (the heartbeat); the executions it holds.

    One UPDATE for all of them. A lease that expired meanwhile is not renewed: it is lost, as
    another holder may have taken it (and the journal refuses its writes).
    """
    with connection.transaction():
        connection.execute("UPDATE workers SET heartbeat_at = now() WHERE holder = %s", (holder,))
        rows = connection.execute(
            """UPDATE leases SET expires_at = now() + make_interval(secs => %s)
               WHERE holder = %s AND expires_at > now()
               RETURNING execution_id""",
            (_seconds(ttl), holder),
        ).fetchall()
    return frozenset(str(row[0]) for row in rows)


def release(connection: psycopg.Connection[Any], execution_id: str, holder: str) -> bool:
    """Give up the holder's lease; True if it held it.

    The epoch stays (the next claim raises it). A queued execution stays queued unless it ended
    (its recorded status is terminal), and then wakes the workers: one resumes it.
    """
    with connection.transaction():
        row = connection.execute(
            """UPDATE leases AS l SET holder = NULL, expires_at = NULL,
                   queued = l.queued AND NOT EXISTS (
                       SELECT 1 FROM executions AS e
                       WHERE e.execution_id = l.execution_id AND e.status = ANY(%s))
               WHERE l.execution_id = %s AND l.holder = %s
               RETURNING l.queued""",
            (list(_TERMINAL), execution_id, holder),
        ).fetchone()
        if row is not None and row[0]:
            connection.execute(f"NOTIFY {WORK_CHANNEL}")
    return row is not None


def finish(connection: psycopg.Connection[Any], execution_id: str) -> None:
    """Take the execution off the queue: its run ended, no worker runs it again."""
    connection.execute("UPDATE leases SET queued = false WHERE execution_id = %s", (execution_id,))


def submit(connection: psycopg.Connection[Any], execution_id: str) -> None:
    """Queue a recorded execution for the workers and wake them (`orchestr8 run --submit`)."""
    with connection.transaction():
        queue(connection, execution_id)


def queue(connection: psycopg.Connection[Any], execution_id: str) -> None:
    """Queue an execution and wake the workers, in the caller's transaction (no commit here).

    The journal's writer calls it in the batch that records a submitted execution, so the
    record and its queue entry commit together or not at all; the NOTIFY is sent at commit.
    """
    connection.execute(
        """INSERT INTO leases AS l (execution_id, queued, submitted_at)
           VALUES (%s, true, now())
           ON CONFLICT (execution_id) DO UPDATE SET
               queued = true, submitted_at = coalesce(l.submitted_at, now())""",
        (execution_id,),
    )
    connection.execute(f"NOTIFY {WORK_CHANNEL}")


@attrs.frozen
class Claim:
    """A queued execution a worker claimed: its lease epoch and how often it was claimed."""

    execution_id: str
    epoch: int
    claims: int


def claim_queued(
    connection: psycopg.Connection[Any], holder: str, ttl: float, limit: int
) -> list[Claim]:
    """Claim up to `limit` queued executions whose lease is free, oldest submitted first.

    `FOR UPDATE SKIP LOCKED`: workers claiming at once skip each other's rows, never wait.
    """
    if limit < 1:
        return []
    rows = connection.execute(
        f"""WITH picked AS (
                SELECT execution_id FROM leases AS q
                WHERE q.queued AND {_free("q")}
                ORDER BY q.submitted_at, q.execution_id
                FOR UPDATE SKIP LOCKED
                LIMIT %s)
            UPDATE leases AS l SET
                epoch = l.epoch + 1, holder = %s,
                expires_at = now() + make_interval(secs => %s),
                claims = l.claims + 1, claimed_at = now()
            FROM picked WHERE l.execution_id = picked.execution_id
            RETURNING l.execution_id, l.epoch, l.claims""",
        (limit, holder, _seconds(ttl)),
    ).fetchall()
    claimed = [Claim(str(row[0]), int(row[1]), int(row[2])) for row in rows]
    return sorted(claimed, key=lambda claim: claim.execution_id)


def held(connection: psycopg.Connection[Any], execution_ids: Iterable[str]) -> frozenset[str]:
    """Which of the executions some live holder leases now (the others are not running)."""
    wanted = sorted(set(execution_ids))
    if not wanted:
        return frozenset()
    rows = connection.execute(
        f"""SELECT execution_id FROM leases AS l
            WHERE l.execution_id = ANY(%s) AND NOT {_free("l")}""",
        (wanted,),
    ).fetchall()
    return frozenset(str(row[0]) for row in rows)


def queued(connection: psycopg.Connection[Any], execution_ids: Iterable[str]) -> frozenset[str]:
    """Which of the executions are queued for the workers (a worker runs them, or will)."""
    wanted = sorted(set(execution_ids))
    if not wanted:
        return frozenset()
    rows = connection.execute(
        "SELECT execution_id FROM leases WHERE queued AND execution_id = ANY(%s)", (wanted,)
    ).fetchall()
    return frozenset(str(row[0]) for row in rows)


def queued_count(connection: psycopg.Connection[Any]) -> int:
    """How many executions are queued and not finished (claimed or waiting for a worker)."""
    row = connection.execute("SELECT count(*) FROM leases WHERE queued").fetchone()
    return 0 if row is None else int(row[0])


@attrs.define(eq=False)
class Fencing:
    """The leases one journal object writes under: its holder and the epoch of each execution.

    The engine's lease side (`_execution/_claims`) keeps it up to date; the PostgreSQL writer
    calls `check` inside every batch transaction.
    """

    holder: str | None = None
    epochs: dict[str, int] = attrs.Factory(dict)
    deadline: float = math.inf
    """Until when (`time.monotonic`, real time like the database's) the leases surely live: the
    last renewal's start plus the TTL. Not the trio clock, which tests may mock. `-inf` refuses
    every held execution, whatever its claim (the worker hands its runs over)."""
    claimed_until: dict[str, float] = attrs.Factory(dict)
    """Per execution, until when its last claim surely lives: the claim's start plus the TTL.

    A claim sets `expires_at = now() + ttl` as a renewal does, so a lease claimed after the
    last renewal (claimed after a database outage, whose renewals failed) is judged by its
    claim, not by the stale renewal time."""

    def hold(self, execution_id: str, epoch: int, until: float = -math.inf) -> None:
        """Write the execution's events at `epoch` from now on; its claim lives until `until`."""
        self.epochs[execution_id] = epoch
        self.claimed_until[execution_id] = until

    def drop(self, execution_id: str) -> None:
        """The execution's lease is given up: its events are refused if it has a lease row."""
        self.epochs.pop(execution_id, None)
        self.claimed_until.pop(execution_id, None)

    def refusal(
        self, connection: psycopg.Connection[Any], execution_ids: Collection[str]
    ) -> JournalError | None:
        """The error refusing the batch, or None: the PostgreSQL writer's batch hook."""
        try:
            self.check(connection, execution_ids)
        except JournalError as error:
            return error
        return None

    def lapsed(self, execution_id: str) -> JournalError | None:
        """Refuse an event of a held execution once the leases may have expired by our clock.

        The journal's append guard: a process that froze (SIGSTOP, a long pause) or could not
        renew in time fails its journal before it queues another event, so no step starts on
        a lease another worker may hold by now. Cheap: one lookup and one clock read.
        """
        if execution_id in self.epochs and self._expired(execution_id):
            return JournalError(
                f"refused to write execution {execution_id}: its lease (epoch "
                f"{self.epochs[execution_id]}) was not renewed in time and may have expired; "
                "another worker may run it"
            )
        return None

    def _expired(self, execution_id: str) -> bool:
        """Whether the held execution's lease may have expired by this process's clock."""
        now = time.monotonic()
        if now <= self.deadline:
            return False
        return self.deadline == -math.inf or now > self.claimed_until.get(execution_id, -math.inf)

    def check(self, connection: psycopg.Connection[Any], execution_ids: Collection[str]) -> None:
        """Refuse the batch unless every leased execution in it is held here, live, at its epoch.

        Run inside the batch's transaction: `FOR SHARE` keeps the rows from being taken over
        until the batch commits. Executions without a lease row are not fenced.

        Raises:
            JournalError: naming the first execution whose lease this journal does not hold
                (the epoch held here and the current one, or that it expired).
        """
        if not execution_ids:
            return
        rows = connection.execute(
            """SELECT execution_id, epoch, holder, expires_at > now() FROM leases
               WHERE execution_id = ANY(%s) ORDER BY execution_id FOR SHARE""",
            (sorted(set(execution_ids)),),
        ).fetchall()
        refusal = fence_refusal(self.holder, self.epochs, rows)
        if refusal is not None:
            raise JournalError(refusal)


def fence_refusal(
    holder: str | None,
    epochs: Mapping[str, int],
    rows: Iterable[tuple[Any, Any, Any, Any]],
) -> str | None:
    """Why a batch must be refused, given its lease rows (id, epoch, holder, live); None: fine."""
    for execution_id, epoch, lease_holder, live in rows:
        mine = epochs.get(execution_id)
        if mine is None:
            return (
                f"refused to write execution {execution_id}: this process holds no lease on it "
                f"(the lease is at epoch {epoch}, held by {lease_holder or 'nobody'})"
            )
        if lease_holder != holder or mine != epoch:
            return (
                f"refused to write execution {execution_id}: its lease was taken over (epoch "
                f"{mine} held here, now epoch {epoch} held by {lease_holder or 'nobody'})"
            )
        if not live:
            return (
                f"refused to write execution {execution_id}: its lease (epoch {epoch}) expired "
                "before this write; another worker may run it"
            )
    return None

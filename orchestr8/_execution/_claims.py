"""Claims: how a runtime makes sure it is the only one running an execution, whatever the journal.

A runtime claims every execution before it runs, resumes, forks or cancels it, and lets go once
its run ended and was flushed. `ExecutionClaims` is that contract; `open_claims(journal)` gives
the one that fits the journal:

- a SQLite file or a memory journal: the fcntl byte-range locks of `_lock` (`FileLockClaims`);
  the kernel drops a dead process's locks, so its executions can be resumed at once;
- a PostgreSQL journal: leases (`LeaseClaims`, SQL in `_journal/_postgres_leases`). Claiming
  raises the lease's epoch, and the journal's writer refuses events of an execution this runtime
  does not hold at that epoch (fencing), so a process that froze or lost its link can never
  write again. A heartbeat renews every lease of the runtime in one UPDATE every `ttl / 5`; a
  lease it failed to renew is dropped from the fencing map at once (the next write of that
  execution fails the journal, which stops the run with nothing more written).

`held(journal, ids)` asks which executions some runtime runs now (liveness, answers, adoption,
prune): the fcntl locks on SQLite, the live leases on PostgreSQL, where a queued execution
counts as held too (a worker will run it: it is not `interrupted`).

The lease connection has its own thread and `trio.CapacityLimiter(1)`, never trio's default
pool (agents share it). One journal object serves one `LeaseClaims` at a time: the journal
writes under one holder.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar

import attrs
import trio

from .._errors import JournalError
from .._journal import _postgres_leases as leases
from .._journal._journal import Journal
from ._lock import ExecutionLocks, held_executions

if TYPE_CHECKING:
    import psycopg

__all__ = [
    "LEASE_TTL",
    "SUBMIT_NEEDS_POSTGRES",
    "ExecutionClaims",
    "FileLockClaims",
    "LeaseClaims",
    "PostgresParts",
    "held",
    "open_claims",
    "postgres_parts",
    "submit_execution",
]

LEASE_TTL: Final = 5.0
"""Seconds a lease lives without a heartbeat: the longest a dead worker's executions wait."""

SUBMIT_NEEDS_POSTGRES: Final = (
    "submitting an execution for workers needs a PostgreSQL journal "
    "(--journal postgresql://...); run it here instead"
)
"""Why `submit` refuses a SQLite or memory journal: no worker runs what is queued there."""

_logger = logging.getLogger("orchestr8.claims")
_Result = TypeVar("_Result")


class ExecutionClaims(Protocol):
    """What a runtime holds while it runs executions: refused while another run holds one."""

    async def acquire(self, execution_id: str) -> bool:
        """Claim the execution without waiting; False when another run holds it.

        Raises:
            JournalError: the claim could not be made (lock file, database).
        """

    async def release(self, execution_id: str) -> None:
        """Let the execution go, if this object holds it (its run ended and was flushed)."""

    async def close(self) -> None:
        """Release everything held here; the claims cannot be used afterwards."""


@attrs.define(eq=False)
class FileLockClaims:
    """The fcntl execution locks of a SQLite (or memory) journal behind `ExecutionClaims`."""

    locks: ExecutionLocks

    async def acquire(self, execution_id: str) -> bool:
        """Lock the execution (`ExecutionLocks.acquire`); never yields to trio."""
        return self.locks.acquire(execution_id)

    async def release(self, execution_id: str) -> None:
        """Unlock the execution (`ExecutionLocks.release`)."""
        self.locks.release(execution_id)

    async def close(self) -> None:
        """Release every lock and close the lock file (`ExecutionLocks.close`)."""
        self.locks.close()


@attrs.frozen
class PostgresParts:
    """What the lease side needs of a PostgreSQL journal: its URL and its writer's fencing."""

    url: str
    fencing: leases.Fencing


_fencings: weakref.WeakKeyDictionary[Journal, leases.Fencing] = weakref.WeakKeyDictionary()
"""The fencing of each PostgreSQL journal object, hooked into its writer on first use."""


def postgres_parts(journal: Journal) -> PostgresParts | None:
    """The URL and fencing of a PostgreSQL journal; None for SQLite and memory journals.

    The first call for a journal object hooks its fencing into the journal's writer, so every
    batch it commits from then on is checked against the leases (`Fencing.check`).
    """
    url = getattr(journal, "url", None)
    add_batch_hook = getattr(journal, "add_batch_hook", None)
    set_append_guard = getattr(journal, "set_append_guard", None)
    if not isinstance(url, str) or add_batch_hook is None or set_append_guard is None:
        return None
    fencing = _fencings.get(journal)
    if fencing is None:
        fencing = _fencings[journal] = leases.Fencing()
        add_batch_hook(fencing.refusal)
        set_append_guard(fencing.lapsed)
    return PostgresParts(url, fencing)


def default_holder(name: str | None = None) -> str:
    """A holder id no other runtime has: `name/host/pid/uuid8` (name: the program's)."""
    host = socket.gethostname()
    return f"{name or 'runtime'}/{host}/{os.getpid()}/{uuid.uuid4().hex[:8]}"


class LeaseLink:
    """One connection for lease SQL, on its own thread, reconnecting after a failure."""

    def __init__(
        self,
        url: str,
        purpose: str,
        *,
        on_connect: Callable[[psycopg.Connection[Any]], object] | None = None,
        retry_lost: bool = False,
    ) -> None:
        """Remember where to connect; the connection opens on the first call.

        `on_connect` runs on every new connection (a new database session) before any call.
        A call that meets a session the server ended while the link was idle (a database
        restart) is asked once more on a fresh connection. `retry_lost` does so after any lost
        connection: only for a link whose calls are safe to repeat (reads, idempotent upserts).
        """
        self.url = url
        self._purpose = purpose
        self._on_connect = on_connect
        self._retry_lost = retry_lost
        self._limiter = trio.CapacityLimiter(1)
        self._connection: psycopg.Connection[Any] | None = None

    async def run(self, call: Callable[[psycopg.Connection[Any]], _Result]) -> _Result:
        """Run `call` on the connection, on the link's thread.

        Raises:
            JournalError: the database cannot be reached or the SQL failed (the connection is
                dropped; the next call opens a new one).
        """
        return await trio.to_thread.run_sync(self._call, call, limiter=self._limiter)

    def _call(self, call: Callable[[psycopg.Connection[Any]], _Result]) -> _Result:
        from .._journal._postgres_schema import explain, import_psycopg

        psycopg_module = import_psycopg()
        try:
            fresh = self._connection is None
            connection = self._open()
            try:
                return call(connection)
            except psycopg_module.OperationalError as error:
                # A session the server ended and said so (SQLSTATE 57P..: a restart, a crash)
                # did not run the statement that got this answer: asking again is safe for any
                # call. Another loss leaves it unknown: asked again only where repeating is safe.
                ended = (error.sqlstate or "").startswith("57P")
                lost = connection.broken or connection.closed
                if fresh or not lost or not (ended or self._retry_lost):
                    raise
            self._drop()
            return call(self._open())
        except psycopg_module.Error as error:
            self._drop()
            raise JournalError(explain(self.url, error)) from None

    def _open(self) -> psycopg.Connection[Any]:
        """The link's connection, opened (and set up by `on_connect`) if it has none."""
        from .._journal._postgres_schema import connect

        if self._connection is None:
            self._connection = connect(self.url, purpose=self._purpose)
            if self._on_connect is not None:
                self._on_connect(self._connection)
        return self._connection

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.close()

    async def close(self) -> None:
        """Close the connection (ending its database session)."""
        await trio.to_thread.run_sync(self._drop, limiter=self._limiter)


class LeaseClaims:
    """Leases of a PostgreSQL journal behind `ExecutionClaims`, with their heartbeat."""

    def __init__(
        self,
        parts: PostgresParts,
        *,
        holder: str | None = None,
        name: str | None = None,
        ttl: float = LEASE_TTL,
        concurrency: int | None = None,
    ) -> None:
        """Prepare the claims of one runtime; `open_claims` opens them and runs the heartbeat."""
        if not ttl > 0:
            raise ValueError(f"the lease TTL must be a positive number of seconds: {ttl}")
        self.parts = parts
        self.name = name or "runtime"
        self.holder = holder or default_holder(self.name)
        self.ttl = float(ttl)
        self.concurrency = concurrency
        self.link = LeaseLink(parts.url, "orchestr8 leases", on_connect=self._register_on)
        self._held: set[str] = set()
        self._claimed: set[str] = set()
        self._closed = False
        self.lost = trio.Event()
        """Set once a lease was lost (not renewed in time): the journal refuses its writes."""

    @property
    def held_here(self) -> frozenset[str]:
        """The executions this runtime holds (claimed ones included)."""
        return frozenset(self._held | self._claimed)

    async def open(self) -> None:
        """Register the holder with the lease connection's session and fence the journal.

        Raises:
            JournalError: the database cannot be reached, or another runtime uses the journal.
        """
        fencing = self.parts.fencing
        if fencing.holder is not None:
            raise JournalError(
                "this PostgreSQL journal object is in use by another runtime "
                f"({fencing.holder}); open another journal for another runtime"
            )
        began = time.monotonic()
        # Connecting registers the holder with the session (again on every new session).
        await self.link.run(lambda connection: None)
        fencing.holder = self.holder
        fencing.deadline = began + self.ttl

    def _register_on(self, connection: psycopg.Connection[Any]) -> None:
        """Register the holder with this connection's session: its leases live while it does."""
        leases.register_worker(
            connection,
            self.holder,
            name=self.name,
            host=socket.gethostname(),
            pid=os.getpid(),
            concurrency=self.concurrency,
        )

    async def acquire(self, execution_id: str) -> bool:
        """Claim the execution's lease (epoch + 1); False while another holder's is live."""
        if self._closed:
            raise RuntimeError("the execution claims are closed")
        if execution_id in self._claimed:
            self._claimed.discard(execution_id)
            self._held.add(execution_id)
            return True
        if execution_id in self._held:
            return False
        began = time.monotonic()
        epoch = await self.link.run(
            lambda connection: leases.acquire(connection, execution_id, self.holder, self.ttl)
        )
        if epoch is None:
            return False
        # The claim set `expires_at = now() + ttl`: it lives a TTL from before it was asked,
        # whenever the last renewal was (a claim after a database outage is fresh).
        self.parts.fencing.hold(execution_id, epoch, began + self.ttl)
        self._held.add(execution_id)
        return True

    async def claim_queued(self, limit: int) -> list[leases.Claim]:
        """Claim up to `limit` queued executions for this runtime (the worker's loop).

        Each claim lives a TTL from before it was asked (see `acquire`), also for an execution
        running here that goes on at the new epoch.
        """
        began = time.monotonic()
        claimed = await self.link.run(
            lambda connection: leases.claim_queued(connection, self.holder, self.ttl, limit)
        )
        fresh = []
        for claim in claimed:
            known = self.parts.fencing.epochs.get(claim.execution_id)
            if claim.execution_id in self._held and known is not None:
                # Its lease lapsed while it runs here and nobody else claimed it: it goes on at
                # the new epoch. Another claim in between would leave it lost (refused writes).
                if claim.epoch == known + 1:
                    self.parts.fencing.hold(claim.execution_id, claim.epoch, began + self.ttl)
                else:
                    self._lose(claim.execution_id)
                continue
            self.parts.fencing.hold(claim.execution_id, claim.epoch, began + self.ttl)
            self._claimed.add(claim.execution_id)
            fresh.append(claim)
        return fresh

    async def release(self, execution_id: str) -> None:
        """Give up the lease; a queued execution that has not ended stays queued.

        A release the database does not take (it is unreachable) is left to the lease's expiry.
        """
        await self._give_up(execution_id)

    async def _give_up(self, execution_id: str) -> bool:
        """Release one lease; False when the database could not be told (it expires instead)."""
        if execution_id not in self._held and execution_id not in self._claimed:
            return True
        self._held.discard(execution_id)
        self._claimed.discard(execution_id)
        self.parts.fencing.drop(execution_id)
        with trio.CancelScope(shield=True):
            try:
                await self.link.run(
                    lambda connection: leases.release(connection, execution_id, self.holder)
                )
            except JournalError as error:
                _logger.warning(
                    "the lease of execution %s expires instead: %s", execution_id, error
                )
                return False
        return True

    async def heartbeat(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Renew every lease of this holder every `ttl / 5` seconds, until cancelled."""
        task_status.started()
        while True:
            await trio.sleep(self.ttl / 5)
            await self.renew()

    async def renew(self) -> None:
        """Renew the leases once; drop (and say `lost`) those that could not be renewed."""
        began = time.monotonic()
        try:
            still = await self.link.run(self._renew_on)
        except JournalError as error:
            _logger.warning("renewing the leases of %s failed: %s", self.holder, error)
            return
        gone = (self._held | self._claimed) - still
        for execution_id in gone:
            self._lose(execution_id)
        if not gone and self.parts.fencing.deadline != -math.inf:
            self.parts.fencing.deadline = began + self.ttl

    def _lose(self, execution_id: str) -> None:
        """A lease is gone: nothing more is written under this holder (every append refused)."""
        _logger.warning("lost the lease of execution %s: another worker may run it", execution_id)
        self.parts.fencing.drop(execution_id)
        self.parts.fencing.deadline = -math.inf
        self.lost.set()

    def _renew_on(self, connection: psycopg.Connection[Any]) -> frozenset[str]:
        return leases.renew(connection, self.holder, self.ttl)

    async def close(self) -> None:
        """Release every lease at once (mark the holder stopped) and close the connection."""
        if self._closed:
            return
        self._closed = True
        with trio.CancelScope(shield=True):
            reachable = True
            for execution_id in sorted(self._held | self._claimed):
                reachable = await self._give_up(execution_id)
                if not reachable:
                    # The database is out of reach: the other leases expire too, and are
                    # not given up one by one (each try could wait for the connect timeout).
                    self._held.clear()
                    self._claimed.clear()
                    self.parts.fencing.epochs.clear()
                    self.parts.fencing.claimed_until.clear()
                    break
            if reachable:
                with contextlib.suppress(JournalError):
                    await self.link.run(
                        lambda connection: leases.stop_worker(connection, self.holder)
                    )
            await self.link.close()
        if self.parts.fencing.holder == self.holder:
            self.parts.fencing.holder = None
            self.parts.fencing.deadline = math.inf


@asynccontextmanager
async def open_claims(
    journal: Journal,
    *,
    name: str | None = None,
    ttl: float = LEASE_TTL,
    concurrency: int | None = None,
) -> AsyncIterator[ExecutionClaims]:
    """The claims that fit the journal, open for the block (a PostgreSQL one with its heartbeat).

    Raises:
        JournalError: the lock file cannot be opened, or the database reached.
    """
    parts = postgres_parts(journal)
    if parts is None:
        claims = FileLockClaims(ExecutionLocks(journal.path, journal=journal))
        try:
            yield claims
        finally:
            await claims.close()
        return
    lease_claims = LeaseClaims(parts, name=name, ttl=ttl, concurrency=concurrency)
    await lease_claims.open()
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(lease_claims.heartbeat)
            try:
                yield lease_claims
            finally:
                nursery.cancel_scope.cancel()
    finally:
        await lease_claims.close()


_readers: weakref.WeakKeyDictionary[leases.Fencing, LeaseLink] = weakref.WeakKeyDictionary()
"""One connection per PostgreSQL journal object for `held`, closed with the journal object."""


def _reader(parts: PostgresParts) -> LeaseLink:
    link = _readers.get(parts.fencing)
    if link is None:
        link = _readers[parts.fencing] = LeaseLink(parts.url, "orchestr8 liveness", retry_lost=True)
        weakref.finalize(parts.fencing, link._drop)
    return link


async def held(journal: Journal, execution_ids: Iterable[str]) -> frozenset[str] | None:
    """Which of the executions some runtime runs now; None when the journal cannot tell (memory).

    On PostgreSQL a queued execution counts as held: a worker runs it (or will).

    Raises:
        JournalError: the lock file or the database cannot be read.
    """
    wanted = frozenset(execution_ids)
    parts = postgres_parts(journal)
    if parts is not None:
        if not wanted:
            return frozenset()
        return await _reader(parts).run(
            lambda connection: leases.held(connection, wanted) | leases.queued(connection, wanted)
        )
    path = journal.path
    if path is None:
        return None
    return held_executions(path, wanted)


async def submit_execution(journal: Journal, execution_id: str) -> None:
    """Queue a recorded execution for the workers of a PostgreSQL journal.

    Raises:
        JournalError: the journal is not PostgreSQL (only workers run queued executions), or
            the database cannot be reached.
    """
    parts = postgres_parts(journal)
    if parts is None:
        raise JournalError(SUBMIT_NEEDS_POSTGRES)
    await _reader(parts).run(lambda connection: leases.submit(connection, execution_id))

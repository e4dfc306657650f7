"""A worker: a process that runs the executions queued on a PostgreSQL journal (`orchestr8 worker`).

The loop, in one runtime on the journal: claim up to `concurrency` queued executions whose lease
is free (`FOR UPDATE SKIP LOCKED`, `_journal/_postgres_leases`), run each (`Runtime.run_claimed`:
a fresh one starts, one another worker left is resumed with its succeeded steps reused), and
claim again when one ends or when woken: `NOTIFY orchestr8_work` (a submit, a release) on a
LISTEN connection of its own, with a poll every `poll_interval` seconds as a fallback. The
runtime's lease claims renew every lease in one heartbeat; a run that ends terminally leaves the
queue as its lease is released.

Losing a lease (not renewed in time: the worker froze, or its database link was cut) or any
journal failure stops the runtime with nothing more written: the journal refuses writes of a
lease this process does not hold (fencing). The worker then opens the journal again and claims
anew; the executions it had are resumed by whichever worker claims them.

A graceful stop (SIGTERM, SIGINT: `stop` is set) cancels no run: the worker stops claiming,
suspends the runs blocked only on approval gates (they stay queued: another worker picks them up
at once and waits for the answer), and waits up to `drain` seconds for the others to end. What
still runs then is handed over: the worker marks itself stopped (its leases are free at once)
and drops its fencing, so the runs stop without writing another event, and another worker
resumes them from their last journaled step (the step that was running runs again).
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any, Final

import attrs
import trio

from .._errors import (
    ExecutionStateError,
    InputValidationError,
    JournalError,
    MissingSecretError,
    WorkflowValidationError,
    exception_leaves,
)
from .._journal import _postgres_leases as leases
from .._journal._events import EventFactory, EventType
from .._journal._journal import Journal
from ._claims import LEASE_TTL, LeaseClaims, LeaseLink, postgres_parts
from ._handle import ExecutionHandle

if TYPE_CHECKING:
    import psycopg

    from ._runtime import Runtime

__all__ = ["POLL_INTERVAL", "WorkerReport", "WorkerSettings", "run_worker"]

POLL_INTERVAL: Final = 1.0
"""Seconds between claims when no notification arrives (a missed NOTIFY costs at most this)."""

REOPEN_AFTER: Final = 1.0
"""Seconds a worker waits before opening its journal again after it failed."""

_logger = logging.getLogger("orchestr8.worker")
_REFUSED = (InputValidationError, WorkflowValidationError, MissingSecretError, ExecutionStateError)
"""Why a claimed execution cannot run on this worker: it is failed, with the reason."""


@attrs.frozen
class WorkerSettings:
    """How a worker runs: its name, how many executions at once, its leases, its stop."""

    name: str = "worker"
    concurrency: int = 4
    lease_ttl: float = LEASE_TTL
    drain: float = 30.0
    poll_interval: float = POLL_INTERVAL

    def __attrs_post_init__(self) -> None:
        """Refuse settings no worker can run with, naming the option."""
        if self.concurrency < 1:
            raise ValueError(f"--concurrency must be at least 1: {self.concurrency}")
        for option, value in (("--lease-ttl", self.lease_ttl), ("--drain", self.drain)):
            if not (math.isfinite(value) and value >= 0) or (option == "--lease-ttl" and not value):
                raise ValueError(f"{option} must be a positive number of seconds: {value}")


@attrs.define
class WorkerReport:
    """What a worker did, for its last words: runs started, ended, handed over; reopenings."""

    started: int = 0
    ended: int = 0
    handed: set[str] = attrs.Factory(set)
    reopened: int = 0

    @property
    def handed_over(self) -> int:
        """How many runs were handed over to other workers (still running when it stopped)."""
        return len(self.handed)


RuntimeOpener = Callable[[Journal, LeaseClaims], AbstractAsyncContextManager["Runtime"]]
"""Opens the worker's runtime on a journal with the given claims (agents, providers...)."""


async def run_worker(
    open_journal: Callable[[], AbstractAsyncContextManager[Journal]],
    open_runtime: RuntimeOpener,
    settings: WorkerSettings,
    stop: trio.Event,
    *,
    ready: Callable[[str], object] | None = None,
) -> WorkerReport:
    """Run queued executions until `stop` is set; reopen the journal after a failure.

    `ready` is told the holder id each time the worker is registered and claiming.

    Raises:
        JournalError: the journal cannot be opened at the start (not PostgreSQL, unreachable).
    """
    report = WorkerReport()
    first = True
    while not stop.is_set():
        try:
            async with _journal_failures(), open_journal() as journal:
                parts = postgres_parts(journal)
                if parts is None:
                    raise JournalError(
                        "orchestr8 worker needs a PostgreSQL journal (--journal postgresql://...)"
                    )
                claims = LeaseClaims(
                    parts,
                    name=settings.name,
                    ttl=settings.lease_ttl,
                    concurrency=settings.concurrency,
                )
                await claims.open()
                try:
                    async with trio.open_nursery() as nursery:
                        await nursery.start(claims.heartbeat)
                        async with open_runtime(journal, claims) as runtime:
                            first = False
                            if ready is not None:
                                ready(claims.holder)
                            await _serve(runtime, claims, settings, stop, report)
                        nursery.cancel_scope.cancel()
                finally:
                    await claims.close()
        except JournalError as error:
            if first:
                raise
            if stop.is_set():
                break
            report.reopened += 1
            _logger.warning(
                "the journal failed (%s); opening it again in %s s", error, REOPEN_AFTER
            )
            with trio.move_on_after(REOPEN_AFTER):
                await stop.wait()
    return report


@asynccontextmanager
async def _journal_failures() -> AsyncIterator[None]:
    """Raise a journal failure that ends the runtime as itself, out of its nurseries' groups."""
    try:
        yield
    except BaseExceptionGroup as group:
        leaves = exception_leaves(group)
        failures = [leaf for leaf in leaves if isinstance(leaf, JournalError)]
        if failures and all(isinstance(leaf, (JournalError, trio.Cancelled)) for leaf in leaves):
            raise failures[0] from None
        raise


async def _serve(
    runtime: Runtime,
    claims: LeaseClaims,
    settings: WorkerSettings,
    stop: trio.Event,
    report: WorkerReport,
) -> None:
    """Claim and run executions until `stop` (then drain) or a lost lease (then hand over)."""
    running: dict[str, ExecutionHandle] = {}
    wake = trio.Event()
    failed = trio.Event()

    def wake_up() -> None:
        wake.set()

    forget = runtime.journal.on_failure(lambda _: failed.set())
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_listen, claims.parts.url, wake_up)
        nursery.start_soon(_wake_on, stop, wake_up)
        nursery.start_soon(_wake_on, claims.lost, wake_up)
        nursery.start_soon(_wake_on, failed, wake_up)
        try:
            while not (stop.is_set() or claims.lost.is_set() or failed.is_set()):
                # Renewed before claiming: a notification that arrives meanwhile is not missed.
                wake = trio.Event()
                free = settings.concurrency - len(running)
                if free > 0:
                    for execution_id in await _claim(claims, free):
                        handle = await _run_one(runtime, claims, execution_id, report)
                        if handle is not None:
                            running[execution_id] = handle
                            nursery.start_soon(_watch, handle, running, report, wake_up)
                with trio.move_on_after(settings.poll_interval):
                    await wake.wait()
        except BaseException:
            # Leaving the runtime cancels what runs: write none of it (no `cancelled` ending),
            # so other workers resume those executions.
            claims.parts.fencing.deadline = -math.inf
            raise
        if claims.lost.is_set() or failed.is_set():
            _logger.warning("a lease was lost or the journal failed: handing executions over")
            await _hand_over(claims, running, report)
        else:
            await _drain(claims, running, settings.drain, report)
        nursery.cancel_scope.cancel()
    forget()
    if claims.lost.is_set():
        raise JournalError(f"worker {claims.holder} lost a lease: it claims anew")


async def _claim(claims: LeaseClaims, limit: int) -> list[str]:
    """Claim up to `limit` queued executions; none while the database cannot be reached."""
    try:
        return [claim.execution_id for claim in await claims.claim_queued(limit)]
    except JournalError as error:
        _logger.warning("cannot claim executions now (trying again): %s", error)
        return []


async def _run_one(
    runtime: Runtime, claims: LeaseClaims, execution_id: str, report: WorkerReport
) -> ExecutionHandle | None:
    """Start or resume one claimed execution; fail it when it cannot run on any worker."""
    try:
        handle = await runtime.run_claimed(execution_id)
    except _REFUSED as error:
        _logger.warning("execution %s cannot run: %s", execution_id, error)
        await _fail_unrunnable(runtime, execution_id, error)
        return None
    except JournalError as error:
        # The journal could not be read: let it go, still queued, for this or another worker.
        _logger.warning("execution %s cannot start now: %s", execution_id, error)
        await claims.release(execution_id)
        return None
    if handle is not None:
        report.started += 1
        _logger.info("running execution %s", execution_id)
    return handle


async def _fail_unrunnable(runtime: Runtime, execution_id: str, error: Exception) -> None:
    """Record that the execution failed before it ran (so no worker claims it again)."""
    claims = runtime.claims
    if not await claims.acquire(execution_id):
        return
    try:
        journal = runtime.journal
        last = await journal.last_seq(execution_id)
        factory = EventFactory(execution_id, next_seq=last + 1)
        failure = {"type": type(error).__name__, "message": str(error)}
        await journal.append(factory.create(EventType.EXECUTION_FAILED, data={"error": failure}))
        await journal.flush()
    finally:
        await claims.release(execution_id)


async def _watch(
    handle: ExecutionHandle,
    running: dict[str, ExecutionHandle],
    report: WorkerReport,
    wake_up: Callable[[], None],
) -> None:
    """Free the run's slot once it ended, and claim again."""
    await handle.finished()
    running.pop(handle.execution_id, None)
    if handle.execution_id not in report.handed:
        report.ended += 1
    wake_up()


async def _wake_on(event: trio.Event, wake_up: Callable[[], None]) -> None:
    await event.wait()
    wake_up()


async def _drain(
    claims: LeaseClaims,
    running: Mapping[str, ExecutionHandle],
    drain: float,
    report: WorkerReport,
) -> None:
    """Stop gracefully: suspend gate-blocked runs, wait `drain` s for the rest, hand over."""
    with trio.move_on_after(drain):
        while running:
            for handle in list(running.values()):
                handle.suspend()
            with trio.move_on_after(0.1):
                await trio.sleep_forever()
    if running:
        await _hand_over(claims, running, report)


async def _hand_over(
    claims: LeaseClaims, running: Mapping[str, ExecutionHandle], report: WorkerReport
) -> None:
    """Let other workers resume what still runs: free every lease, write nothing more."""
    report.handed.update(running)
    if running:
        _logger.warning(
            "handing %d execution(s) over to other workers: %s",
            len(running),
            ", ".join(sorted(running)),
        )
    # Refused from now on, at append and at commit: the runs stop without another event, and
    # at once (no grace: nothing a step does now could be recorded).
    claims.parts.fencing.deadline = -math.inf
    for handle in running.values():
        handle.cancel("handed over to another worker", force=True)
    with trio.CancelScope(shield=True):
        try:
            await claims.link.run(lambda connection: leases.stop_worker(connection, claims.holder))
        except JournalError as error:
            _logger.warning("their leases expire instead: %s", error)


async def _listen(url: str, wake_up: Callable[[], None]) -> None:
    """Wake the claim loop on `NOTIFY orchestr8_work`; while the link is down, the poll does."""
    link = LeaseLink(url, "orchestr8 worker listen")

    def listen(connection: psycopg.Connection[Any]) -> None:
        connection.execute(f"LISTEN {leases.WORK_CHANNEL}")

    def wait_one(connection: psycopg.Connection[Any]) -> bool:
        return any(True for _ in connection.notifies(timeout=0.5, stop_after=1))

    listening = False
    try:
        while True:
            try:
                if not listening:
                    await link.run(listen)
                    listening = True
                if await link.run(wait_one):
                    wake_up()
            except JournalError:
                # The link dropped its connection: LISTEN again on the next one.
                listening = False
                await trio.sleep(POLL_INTERVAL)
    finally:
        with trio.CancelScope(shield=True):
            await link.close()

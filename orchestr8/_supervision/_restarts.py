"""Restarts: how a supervisor's manager handles child exits, by strategy, intensity and backoff.

Each incarnation of a child reports its end as an `ExitReport` to its supervisor's manager, which
handles the reports one at a time: it finishes children that should stay stopped, restarts the
crashed child and the siblings its strategy groups with it (after the backoff), and gives up,
stopping the whole supervisor, once more than `max_restarts` restarts fall within `within` seconds.

The manager owns the restart record (`RestartLedger`: the intensity window, the total, the
backoff) and reaches the supervisor only through the small interface the supervisor offers its
restart machinery (`exit_reports`, `closing`, `child_cells`, `finish_child`, `publish_lifecycle`,
`start_incarnation`, `abort`), never through its private attributes.
"""

from __future__ import annotations

import collections
import math
import random
from typing import TYPE_CHECKING

import attrs
import trio

from .._errors import ActorStoppedError, SupervisorGaveUpError
from ._actor import _Cell

if TYPE_CHECKING:
    from ._supervisor import Supervisor


@attrs.frozen
class RestartBackoff:
    """Delay before the n-th restart within the intensity window: min * multiplier^(n-1), capped."""

    min_delay: float = 0.5
    max_delay: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.2

    def delay(self, restart_number: int, source: random.Random) -> float:
        """The delay before restart number `restart_number` (1-based), with ± `jitter` spread."""
        exponent = max(restart_number - 1, 0)
        if self.multiplier > 1 and exponent > 0:
            ceiling = math.log(max(self.max_delay / max(self.min_delay, 1e-9), 1.0))
            if exponent * math.log(self.multiplier) >= ceiling:
                base = self.max_delay
            else:
                base = min(self.max_delay, self.min_delay * self.multiplier**exponent)
        else:
            base = min(self.max_delay, self.min_delay)
        spread = base * self.jitter
        return max(0.0, base + source.uniform(-spread, spread))


class RestartLedger:
    """A supervisor's restart record: restarts in the intensity window, the total, the backoff.

    Owned by the restart machinery; the supervisor reads it for its statistics.
    """

    __slots__ = ("_random", "_times", "backoff", "max_restarts", "total", "within")

    def __init__(
        self,
        max_restarts: int,
        within: float,
        backoff: RestartBackoff | None,
        random_source: random.Random,
    ) -> None:
        """Start with no restarts; `backoff` None restarts at once."""
        self.max_restarts = max_restarts
        self.within = within
        self.backoff = backoff
        self.total = 0
        self._random = random_source
        self._times: collections.deque[float] = collections.deque()

    def recent(self, now: float) -> int:
        """How many restarts fall within the window ending at `now`."""
        return sum(1 for at in self._times if now - at < self.within)

    def admit(self, now: float) -> bool:
        """Record a restart at `now`, or return False when the window already holds the maximum."""
        times = self._times
        while times and now - times[0] >= self.within:
            times.popleft()
        if len(times) >= self.max_restarts:
            return False
        times.append(now)
        self.total += 1
        return True

    def backoff_delay(self) -> float | None:
        """The wait before the restart just admitted (None: no backoff), by restarts in window."""
        if self.backoff is None:
            return None
        return self.backoff.delay(len(self._times), self._random)


@attrs.frozen
class ExitReport:
    """How one incarnation of a child ended: its number, and the crash (None: it returned)."""

    cell: _Cell
    incarnation: int
    error: Exception | None


async def manage_exits(supervisor: Supervisor) -> None:
    """Handle child exits one at a time until the supervisor stops; raises when it gives up."""
    # A plain close, not `async with`: `aclose()` is a checkpoint, where a cancellation of the
    # nursery would replace (and so lose) the SupervisorGaveUpError on its way out.
    try:
        async for exit_report in supervisor.exit_reports:
            await _handle_exit(supervisor, exit_report)
            # Handle reports already queued without a scheduling pass each (many children
            # stopping together report in a burst).
            while True:
                try:
                    queued = supervisor.exit_reports.receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
                await _handle_exit(supervisor, queued)
    finally:
        supervisor.exit_reports.close()


async def _handle_exit(supervisor: Supervisor, exit_report: ExitReport) -> None:
    cell, error = exit_report.cell, exit_report.error
    if exit_report.incarnation != cell.incarnation or cell.state in ("restarting", "stopped"):
        return
    if cell.stop_requested:
        await supervisor.finish_child(cell)
        return
    if supervisor.closing:
        return
    if error is not None:
        await supervisor.publish_lifecycle("actor.crashed", cell, error)
    if cell.restart == "temporary" or (error is None and cell.restart == "transient"):
        await supervisor.finish_child(cell)
        return
    cause: BaseException = (
        error if error is not None else ActorStoppedError(f"actor {cell.name!r} stopped itself")
    )
    await _count_restart(supervisor, cell, cause)
    group = _restart_group(supervisor, cell)
    for member in reversed(group):
        if member is not cell:
            await _terminate_for_restart(member)
    for member in group:
        if member is not cell and member.restart == "temporary":
            await supervisor.finish_child(member)
        else:
            await _restart(supervisor, member, cause)


def _restart_group(supervisor: Supervisor, cell: _Cell) -> list[_Cell]:
    cells = supervisor.child_cells()
    if supervisor.strategy == "one_for_all":
        return cells
    if supervisor.strategy == "rest_for_one":
        return cells[cells.index(cell) :]
    return [cell]


async def _count_restart(supervisor: Supervisor, cell: _Cell, cause: BaseException) -> None:
    """Record one restart, or give up when the window already holds `max_restarts`."""
    if not supervisor.restart_ledger.admit(trio.current_time()):
        await _give_up(supervisor, cell, cause)


async def _give_up(supervisor: Supervisor, cell: _Cell, cause: BaseException) -> None:
    await supervisor.abort()
    await supervisor.publish_lifecycle("supervisor.gave_up", None, cause)
    raise SupervisorGaveUpError(
        f"supervisor {supervisor.name!r} gave up: more than {supervisor.max_restarts} restarts "
        f"within {supervisor.within} s; the last crash was in {cell.name!r}: {cause!r}"
    ) from cause


async def _terminate_for_restart(cell: _Cell) -> None:
    """End a sibling's incarnation for a group restart, keeping its mailbox and ref."""
    if cell.state != "running" or cell.task is None:
        return
    cell.state = "restarting"
    if cell.inbox is not None:
        cell.inbox.close()
    deadline = trio.current_time() + (cell.grace if cell.grace is not None else math.inf)
    with trio.move_on_at(deadline):
        await cell.done.wait()
    if not cell.done.is_set():
        cell.scope.cancel()
        await cell.done.wait()


async def _restart(supervisor: Supervisor, cell: _Cell, cause: BaseException) -> None:
    """Start a fresh incarnation of `cell` (after the backoff), counting failed starts."""
    while not (cell.stop_requested or supervisor.closing):
        cell.state = "restarting"
        cell.restarts += 1
        cell.done = trio.Event()
        delay = supervisor.restart_ledger.backoff_delay()
        if delay is not None:
            cell.scope = trio.CancelScope(deadline=trio.current_time() + delay)
            with cell.scope:
                await trio.sleep_forever()
            if cell.stop_requested or supervisor.closing:
                break
        cell.scope = trio.CancelScope()
        cell.restart_cause = cause
        try:
            await supervisor.start_incarnation(cell)
        except Exception as start_error:
            await supervisor.publish_lifecycle("actor.crashed", cell, start_error)
            cause = start_error
            await _count_restart(supervisor, cell, cause)
            continue
        return
    cell.done.set()

"""Restarts: how a supervisor's manager handles child exits, by strategy, intensity and backoff.

Each incarnation of a child reports its end as an `_Exit` to its supervisor's manager, which
handles the reports one at a time: it finishes children that should stay stopped, restarts the
crashed child and the siblings its strategy groups with it (after the backoff), and gives up,
stopping the whole supervisor, once more than `max_restarts` restarts fall within `within` seconds.
"""

from __future__ import annotations

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


@attrs.frozen
class _Exit:
    cell: _Cell
    incarnation: int
    error: Exception | None


async def manage_exits(supervisor: Supervisor) -> None:
    """Handle child exits one at a time until the supervisor stops; raises when it gives up."""
    # A plain close, not `async with`: `aclose()` is a checkpoint, where a cancellation of the
    # nursery would replace (and so lose) the SupervisorGaveUpError on its way out.
    try:
        async for exit_report in supervisor._exit_receive:
            await _handle_exit(supervisor, exit_report)
            # Handle reports already queued without a scheduling pass each (many children
            # stopping together report in a burst).
            while True:
                try:
                    queued = supervisor._exit_receive.receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
                await _handle_exit(supervisor, queued)
    finally:
        supervisor._exit_receive.close()


async def _handle_exit(supervisor: Supervisor, exit_report: _Exit) -> None:
    cell, error = exit_report.cell, exit_report.error
    if exit_report.incarnation != cell.incarnation or cell.state in ("restarting", "stopped"):
        return
    if cell.stop_requested:
        await supervisor._finish(cell)
        return
    if supervisor._closing:
        return
    if error is not None:
        await supervisor._publish("actor.crashed", cell, error)
    if cell.restart == "temporary" or (error is None and cell.restart == "transient"):
        await supervisor._finish(cell)
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
            await supervisor._finish(member)
        else:
            await _restart(supervisor, member, cause)


def _restart_group(supervisor: Supervisor, cell: _Cell) -> list[_Cell]:
    cells = list(supervisor._cells.values())
    if supervisor.strategy == "one_for_all":
        return cells
    if supervisor.strategy == "rest_for_one":
        return cells[cells.index(cell) :]
    return [cell]


async def _count_restart(supervisor: Supervisor, cell: _Cell, cause: BaseException) -> None:
    """Record one restart, or give up when the window already holds `max_restarts`."""
    now = trio.current_time()
    times = supervisor._restart_times
    while times and now - times[0] >= supervisor.within:
        times.popleft()
    if len(times) >= supervisor.max_restarts:
        await _give_up(supervisor, cell, cause)
    times.append(now)
    supervisor._restarts += 1


async def _give_up(supervisor: Supervisor, cell: _Cell, cause: BaseException) -> None:
    # Cancel the block first, so that code in it awaiting a child (an ask, a blocked tell)
    # sees the give-up, not the ActorStoppedError of the teardown joining it in a group.
    supervisor._block_scope.cancel()
    await supervisor.stop()
    await supervisor._publish("supervisor.gave_up", None, cause)
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
    while not (cell.stop_requested or supervisor._closing):
        cell.state = "restarting"
        cell.restarts += 1
        cell.done = trio.Event()
        if supervisor.restart_backoff is not None:
            restart_number = len(supervisor._restart_times)
            delay = supervisor.restart_backoff.delay(restart_number, supervisor._random)
            cell.scope = trio.CancelScope(deadline=trio.current_time() + delay)
            with cell.scope:
                await trio.sleep_forever()
            if cell.stop_requested or supervisor._closing:
                break
        cell.scope = trio.CancelScope()
        cell.restart_cause = cause
        assert cell.runner is not None
        try:
            await supervisor._nursery.start(cell.runner, cell)
        except Exception as start_error:
            await supervisor._publish("actor.crashed", cell, start_error)
            cause = start_error
            await _count_restart(supervisor, cell, cause)
            continue
        return
    cell.done.set()

"""Incarnations: one run of a child, from construction to its exit report to the manager.

A child actor's incarnation builds the actor, runs `on_restart`/`on_start`, handles messages until
its mailbox closes or it crashes, runs `on_stop` shielded within its grace, and reports how it
ended; a nested supervisor's incarnation opens the supervisor and runs its `setup`. The
supervisor starts these as tasks in its nursery; its manager (`_restarts`) handles the reports.
Incarnations reach the supervisor only through the interface it offers its restart machinery
(`report_exit`, `publish_lifecycle`, `attach_nested`, `detach_nested`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import TYPE_CHECKING, Any

import trio

from ._actor import Actor, _Cell, run_messages
from ._restarts import ExitReport

if TYPE_CHECKING:
    from ._supervisor import Supervisor


async def run_actor(
    supervisor: Supervisor,
    cell: _Cell,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """One incarnation of an actor: build, start, handle messages, clean up, report the exit."""
    scope, done, cause = cell.scope, cell.done, cell.restart_cause
    cell.incarnation += 1
    incarnation = cell.incarnation
    cell.task = trio.lowlevel.current_task()
    try:
        inbox = cell.receive.clone()
    except trio.ClosedResourceError:
        cell.task = None
        done.set()
        task_status.started()
        return
    try:
        actor = cell.factory()
        actor.ref = cell.ref
    except Exception as factory_error:
        inbox.close()
        cell.task = None
        done.set()
        if not cell.start_errors_crash:
            raise
        cell.state = "running"  # it began, then crashed: the manager handles it as a crash
        task_status.started()
        supervisor.report_exit(ExitReport(cell, incarnation, factory_error))
        return
    except BaseException:
        inbox.close()
        cell.task = None
        done.set()
        raise
    started = False
    error: Exception | None = None
    cell.inbox = inbox
    try:
        with scope:
            if cause is not None:
                await actor.on_restart(cause)
            await actor.on_start()
            started = True
            if not cell.stop_requested:
                cell.state = "running"
            task_status.started()
            # Drop the start status: it keeps `nursery.start`'s temporary nursery alive for
            # the actor's whole life (about 1.2 KB per idle actor).
            task_status = trio.TASK_STATUS_IGNORED
            event = "actor.restarted" if cause is not None else "actor.started"
            await supervisor.publish_lifecycle(event, cell)
            await run_messages(actor, cell, inbox)
    except Exception as crash:
        if not started:
            if not cell.start_errors_crash:
                raise
            cell.state = "running"  # it began, then crashed: the manager handles it as a crash
        error = crash
    finally:
        inbox.close()
        if started:
            await clean_up(supervisor, actor, cell)
        cell.task = None
        done.set()
    if not started:
        # Stopped while starting: report started so `spawn` returns the (stopped) ref.
        task_status.started()
    supervisor.report_exit(ExitReport(cell, incarnation, error))


async def clean_up(supervisor: Supervisor, actor: Actor, cell: _Cell) -> None:
    """Run `on_stop` shielded until the stop's grace deadline (a fresh grace after a crash)."""
    if type(actor).on_stop is Actor.on_stop:
        return  # Nothing to clean up: skip the shielded scope (a third of a stop's cost).
    if cell.stop_requested:
        deadline = cell.stop_deadline
    else:
        deadline = trio.current_time() + (cell.grace if cell.grace is not None else 0.0)
    with trio.CancelScope(shield=True, deadline=deadline):
        try:
            await actor.on_stop()
        except Exception as stop_error:
            await supervisor.publish_lifecycle("actor.stop_failed", cell, stop_error)


async def run_nested(
    supervisor: Supervisor,
    cell: _Cell,
    setup: Callable[[Supervisor], Awaitable[None]] | None,
    options: dict[str, Any],
    task_status: trio.TaskStatus[None],
) -> None:
    """One incarnation of a nested supervisor: open it, run `setup`, serve until stopped."""
    from ._supervisor import open_supervisor  # the two modules need each other

    done = cell.done
    cell.incarnation += 1
    incarnation = cell.incarnation
    cell.task = trio.lowlevel.current_task()
    error: Exception | None = None
    started = False
    try:
        inbox = cell.receive.clone()
        cell.inbox = inbox
        with cell.scope:
            async with open_supervisor(
                name=f"{supervisor.name}/{cell.name}", bus=supervisor.bus, **options
            ) as nested:
                supervisor.attach_nested(cell.name, nested)
                if setup is not None:
                    await setup(nested)
                if not cell.stop_requested:
                    cell.state = "running"
                started = True
                task_status.started()
                restarted = cell.restart_cause is not None
                await supervisor.publish_lifecycle(
                    "actor.restarted" if restarted else "actor.started", cell
                )
                with suppress(trio.ClosedResourceError, trio.EndOfChannel):
                    await inbox.receive()
    except trio.ClosedResourceError:
        if started:
            raise
    except Exception as crash:
        if not started:
            raise
        error = crash
    finally:
        supervisor.detach_nested(cell.name)
        cell.task = None
        done.set()
    if not started:
        # Stopped while starting. Only here, not in `finally`: an error in `setup` must reach
        # `spawn_supervisor` (or the restart loop) through `nursery.start`, not the nursery.
        task_status.started()
    supervisor.report_exit(ExitReport(cell, incarnation, error))

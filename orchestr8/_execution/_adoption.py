"""A long-lived runtime (a server) adopting executions that wait for a person, and leaving them.

An execution whose run stopped while approval gates were open is `waiting` in the journal, and no
process runs it: its gates' deadlines do not run and answers recorded for it are not applied until
something resumes it. A server on that journal does: at startup it resumes every top-level
`waiting` execution no process runs (`adopt_waiting`), and an answer that arrives over REST for
one resumes it then (`adopt`). Resuming re-opens its gates with their original deadlines and
applies the answers recorded meanwhile. When the server shuts down, an execution blocked only on
gates is suspended (`waiting` again, its lock released) instead of being cancelled
(`leave_executions`): a person's pending decision is not a reason to throw the run away.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final, Protocol, cast

from .._errors import (
    ExecutionStateError,
    InputValidationError,
    MissingSecretError,
    WorkflowValidationError,
)
from ._claims import held

if TYPE_CHECKING:
    from ._handle import ExecutionHandle
    from ._runtime import Runtime

__all__ = ["WAITING", "adopt", "adopt_waiting", "leave_executions", "root_execution"]

WAITING: Final = "waiting"
"""The journal status of an execution stopped with approval gates open."""

_PAGE: Final = 200
_logger = logging.getLogger("orchestr8.engine")
_REFUSED = (ExecutionStateError, InputValidationError, MissingSecretError, WorkflowValidationError)
"""Why a waiting execution may not be resumed here: each is logged, and it stays waiting."""


class Suspendable(Protocol):
    """A handle that can end its run as `waiting` when only approval gates are left."""

    def suspend(self) -> bool:
        """End the run as `waiting` if it is blocked on gates; False otherwise."""


def _suspender(handle: ExecutionHandle) -> Suspendable | None:
    """The handle's `suspend`, when the engine gives its handles one."""
    if callable(getattr(handle, "suspend", None)):
        return cast(Suspendable, handle)
    return None


async def root_execution(runtime: Runtime, execution_id: str) -> str:
    """The top-level execution of `execution_id` (itself, or the parent of its parent...)."""
    record = await runtime.journal.get_execution(execution_id)
    while record.parent_id is not None:
        record = await runtime.journal.get_execution(record.parent_id)
    return record.execution_id


async def adopt(runtime: Runtime, execution_id: str) -> ExecutionHandle | None:
    """Resume the waiting execution (or its top-level parent) here, when no process runs it.

    Returns the handle of the resumed top-level execution, or None when it is not `waiting`,
    another process runs it, or it cannot be resumed here (logged: a redacted input to supply
    again, a secret not set, an agent gone).

    Raises:
        ExecutionNotFoundError: no such execution.
    """
    root = await root_execution(runtime, execution_id)
    record = await runtime.journal.get_execution(root)
    if str(record.status) != WAITING or runtime.find(root) is not None:
        return None
    if await held(runtime.journal, [root]):
        return None
    try:
        handle = await runtime.resume(root)
    except _REFUSED as error:
        _logger.warning("waiting execution %s was not resumed here: %s", root, error)
        return None
    _logger.info("resumed waiting execution %s: its gates are open again", root)
    return handle


async def adopt_waiting(runtime: Runtime) -> list[str]:
    """Resume every top-level `waiting` execution of the journal that no process runs.

    Returns the ids resumed. Those that cannot be resumed here are logged and stay waiting.
    """
    journal = runtime.journal
    candidates: list[str] = []
    cursor = None
    while True:
        page = await journal.list_executions(status=WAITING, limit=_PAGE, before=cursor)
        candidates += [item.execution_id for item in page.items if item.parent_id is None]
        cursor = page.next_cursor
        if cursor is None:
            break
    adopted = []
    for execution_id in reversed(candidates):  # oldest first: their deadlines come first
        if await adopt(runtime, execution_id) is not None:
            adopted.append(execution_id)
    return adopted


async def leave_executions(
    runtime: Runtime, handles: Sequence[ExecutionHandle], reason: str
) -> list[str]:
    """Suspend the top-level executions blocked only on gates, cancel every other one.

    Returns the ids suspended: they end `waiting`, their locks released, so a later server or
    `orchestr8 resume` continues them; their children go with them (they are not cancelled).
    """
    roots = {
        handle.execution_id: await root_execution(runtime, handle.execution_id)
        for handle in handles
        if not handle.done
    }
    suspended = set()
    for handle in handles:
        if roots.get(handle.execution_id) != handle.execution_id:
            continue
        suspender = _suspender(handle)
        if suspender is not None and suspender.suspend():
            suspended.add(handle.execution_id)
    for handle in handles:
        root = roots.get(handle.execution_id)
        if root is not None and root not in suspended:
            handle.cancel(reason)
    return sorted(suspended)

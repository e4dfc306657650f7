"""The control loop: a runtime acts on the cancel requests and gate answers the journal holds.

Another process (`orchestr8 cancel`, `orchestr8 approve`) or a server on the same journal cannot
reach the runtime that runs an execution; it records a control request in the journal instead
(`Journal.submit_request`). Every runtime runs one `ControlLoop` in its nursery: while it runs at
least one execution (children included), it reads the pending requests of those executions
every `REQUEST_POLL_INTERVAL` seconds, or at once when one is submitted through its own journal
object (`Journal.wait_for_request`), and dispatches each:

- `cancel`: the execution's cancel, with the request's reason (recorded on `execution.cancelled`)
  and `force` (no grace); settled `applied`, or `refused` when the execution had ended;
- `answer`: the execution's gate board (`deliver`), which settles the request itself; an
  execution without one (no approval step) refuses it.

An idle runtime reads nothing: the loop sleeps until an execution starts. The cost is one small
query per poll per runtime, never anything per step. Only the process holding an execution's lock
settles its requests. A cancel that a run never got to (it ended first) stays pending until the
next run of that execution (a resume) takes the lock: that run refuses every cancel made before
it began (`created_at` earlier than its launch), so a stale cancel never stops it. Answers made
before it began are kept: an answer given while no process ran the execution is meant for it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Final

import trio

from .._errors import JournalError
from .._journal._events import utc_timestamp
from .._journal._journal import Journal
from .._journal._requests import ControlRequest, RequestKind
from ._handle import ExecutionHandle

__all__ = ["REQUEST_POLL_INTERVAL", "ControlLoop"]

REQUEST_POLL_INTERVAL: Final = 0.5
"""Seconds (trio clock) between two reads of the pending requests while executions run."""

DEFAULT_CANCEL_REASON: Final = "cancelled by request"
"""The reason recorded for a cancel request that gives none."""

_logger = logging.getLogger("orchestr8.runtime")


class ControlLoop:
    """Reads the control requests of a runtime's live executions and acts on them."""

    def __init__(self, journal: Journal, live: Mapping[str, ExecutionHandle]) -> None:
        """Serve the executions in `live` (the runtime's own mapping, read as it changes)."""
        self._journal = journal
        self._live = live
        self._started = trio.Event()
        self._scope = trio.CancelScope()
        self._failing = False
        self._launched_at: dict[str, str] = {}
        """When each live execution's run began (UTC, as requests are stamped)."""

    def launched(self, execution_id: str) -> None:
        """An execution went live here: note when, and start polling (the runtime calls it)."""
        self._launched_at[execution_id] = utc_timestamp()
        self._started.set()

    def stop(self) -> None:
        """End `run` (the runtime is closing and every execution has ended)."""
        self._scope.cancel()

    async def run(self) -> None:
        """Poll while executions are live, sleep while none is, until `stop`.

        Shielded, like the executions it serves: a cancel from outside the runtime reaches them
        through the runtime's shutdown, and the loop keeps serving them (a forced cancel of one
        winding down) until the runtime stops it.
        """
        with trio.CancelScope(shield=True), self._scope:
            while True:
                if not self._live:
                    self._started = trio.Event()
                    await self._started.wait()
                    continue
                await self.poll()
                await self._journal.wait_for_request(REQUEST_POLL_INTERVAL)

    async def poll(self) -> None:
        """Read the pending requests of the live executions once and dispatch each."""
        launched_at = self._launched_at
        if len(launched_at) > len(self._live):
            for execution_id in [key for key in launched_at if key not in self._live]:
                del launched_at[execution_id]
        try:
            requests = await self._journal.pending_requests(list(self._live))
        except JournalError as error:
            self._journal_failing(error)
            return
        self._failing = False
        for request in requests:
            await self.dispatch(request)

    async def dispatch(self, request: ControlRequest) -> None:
        """Act on one request of a live execution, and see that it gets settled."""
        handle = self._live.get(request.execution_id)
        run = None if handle is None else handle.run
        try:
            if handle is None or run is None:
                # It ended between the read and now: its run's end settles what is left.
                return
            if handle.done or run.ending_settled:
                # Also when its ending is being recorded: the cancel would change nothing.
                await handle.finished()
                result = handle.result
                if result is not None and result.status.is_terminal:
                    await self._settle(
                        request,
                        "refused",
                        f"execution {request.execution_id} already {result.status}",
                    )
                return
            if request.kind == RequestKind.CANCEL:
                launched_at = self._launched_at.get(request.execution_id, "")
                if request.created_at < launched_at:
                    await self._settle(
                        request,
                        "refused",
                        f"made before this run of execution {request.execution_id} began "
                        f"({launched_at}): the run it was meant for had ended",
                    )
                    return
                await self._cancel(handle, request)
                return
            board = run.gates
            if board is None:
                await self._settle(
                    request,
                    "refused",
                    f"no approval step in execution {request.execution_id}: it has no gate "
                    f"{request.target!r} to answer",
                )
                return
            await board.deliver(request)
        except JournalError as error:
            self._journal_failing(error)
        except Exception:
            # A bug in acting on one request must not stop the runtime or its other executions.
            _logger.exception(
                "control request %s of execution %s failed",
                request.request_id,
                request.execution_id,
            )
            await self._settle(request, "refused", "the runtime failed to act on it (logged)")

    async def _cancel(self, handle: ExecutionHandle, request: ControlRequest) -> None:
        body = request.body
        reason = body.get("reason")
        if not isinstance(reason, str) or not reason:
            by = body.get("by")
            reason = f"cancelled by {by}" if isinstance(by, str) and by else DEFAULT_CANCEL_REASON
        force = body.get("force") is True
        if handle.cancel(reason, force=force):
            detail = "cancelled at once (forced)" if force else "cancelling"
        else:
            detail = "already being cancelled"
        await self._settle(request, "applied", detail)

    async def _settle(self, request: ControlRequest, outcome: str, detail: str) -> None:
        try:
            await self._journal.settle_request(request.request_id, outcome, detail)
        except JournalError as error:
            self._journal_failing(error)

    def _journal_failing(self, error: JournalError) -> None:
        """Log a journal failure once per spell of failures; the executions report it too."""
        if not self._failing:
            self._failing = True
            _logger.warning("cannot read or settle control requests: %s", error)

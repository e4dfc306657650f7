"""Blocking calls from agents: worker threads of a bounded pool, abandoned at a deadline or cancel.

A synchronous function cannot be interrupted, so an agent that calls one (the `python` agent with
a plain `def`, or any agent through `AgentContext.run_sync`) runs it in a worker thread and waits
for it in a way the engine can stop waiting: at an attempt timeout, an execution timeout or the
end of the cancel grace the wait is *abandoned*. The attempt ends at that moment (recorded timed
out, or the step cancelled); the thread runs on until the function returns, its result or error is
discarded, and a warning is logged both when it is abandoned and when it finally ends. Whatever
the function does in the meantime (a write, a request) still happens: see `docs/agents.md`.

The threads come from the runtime's own `CapacityLimiter` (`open_runtime(sync_workers=...)`),
not trio's default one: blocked agents can hold at most that many threads and never take the ones
the runtime itself needs. An abandoned thread keeps its token until it really ends, so the pool's
bound holds for threads nobody waits for any more.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Final, TypeVar

import trio

T = TypeVar("T")

DEFAULT_SYNC_WORKERS: Final = 32
"""How many worker threads a runtime lends to blocking agent code unless told otherwise."""

_logger = logging.getLogger("orchestr8.agents")


def sync_worker_limiter(workers: int) -> trio.CapacityLimiter:
    """A thread pool bound for blocking agent code: at most `workers` threads at once.

    Raises:
        ValueError: `workers` is not a whole number of at least 1.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"sync_workers must be a whole number of at least 1, got {workers!r}")
    return trio.CapacityLimiter(workers)


class _ThreadWatch:
    """What the waiting task and the worker thread know about each other, under one lock."""

    __slots__ = ("_lock", "abandoned", "finished", "started", "what")

    def __init__(self, what: str) -> None:
        self._lock = threading.Lock()
        self.what = what
        self.started = False
        self.finished = False
        self.abandoned = False

    def begin(self) -> None:
        """The worker thread took the call (called in that thread)."""
        with self._lock:
            self.started = True

    def end(self) -> None:
        """The function returned or raised (called in the worker thread)."""
        with self._lock:
            self.finished = True
            abandoned = self.abandoned
        if abandoned:
            _logger.warning(
                "%s: its abandoned worker thread has ended; its result was discarded", self.what
            )

    def abandon(self) -> None:
        """The waiting task was cancelled (called in the trio thread)."""
        with self._lock:
            running = self.started and not self.finished
            self.abandoned = running
        if running:
            _logger.warning(
                "%s: stopped waiting for a blocking call that is still running in its worker "
                "thread; the thread runs on and its result will be discarded",
                self.what,
            )


async def run_sync_abandonable(
    function: Callable[[], T],
    *,
    limiter: trio.CapacityLimiter | None,
    what: str,
) -> T:
    """Run blocking `function()` in a worker thread of `limiter`; stop waiting when cancelled.

    Args:
        function: The blocking call; it runs in another thread, so it must not touch trio.
        limiter: The pool to take a thread from; None for trio's default pool.
        what: Names the caller in the warnings about an abandoned thread (e.g. the step).

    Returns:
        What `function` returned, if it returned before the wait was cancelled.

    Raises:
        trio.Cancelled: the wait was cancelled; the thread (if it started) is abandoned.
        Exception: whatever `function` raised, unchanged.
    """
    watch = _ThreadWatch(what)

    def work() -> T:
        watch.begin()
        try:
            return function()
        finally:
            watch.end()

    try:
        return await trio.to_thread.run_sync(work, abandon_on_cancel=True, limiter=limiter)
    except trio.Cancelled:
        watch.abandon()
        raise

"""The SQLite journal under real-world pressure: its own worker threads, and a disk that fills up.

These run real SQLite files and real worker threads; nothing here waits on a clock.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import trio
import trio.testing

from orchestr8._events import ExecutionStatus
from orchestr8._runtime import open_runtime

BLOCKED_STEPS = 100

RELEASE = threading.Event()
"""What the blocking `python` steps below wait for (set by the test that blocks them)."""

ENTERED: list[str] = []
"""The input of every blocking step that got a worker thread."""


def block_until_released(input: Any) -> Any:
    """A sync agent that holds its worker thread until the test releases it."""
    ENTERED.append(str(input))
    RELEASE.wait()
    return input


def workflow(*steps: dict[str, Any]) -> dict[str, Any]:
    """A workflow of these steps, without retries."""
    return {"schema_version": "1.0", "name": "test", "steps": list(steps),
            "defaults": {"policy": {"retry": {"max_attempts": 1}, "circuit_breaker": None}}}


async def test_sync_agents_blocking_every_worker_thread_do_not_stop_the_journal(
    tmp_path: Path,
) -> None:
    """With 100 sync steps blocked in worker threads, another execution still runs to its end."""
    RELEASE.clear()
    ENTERED.clear()
    default_limiter = trio.to_thread.current_default_thread_limiter()
    blocking = workflow(*(
        {"id": f"block_{index}", "input": index,
         "agent": {"id": "python", "config": {"callable": f"{__name__}:block_until_released"}}}
        for index in range(BLOCKED_STEPS)
    ))
    async with open_runtime(journal=tmp_path / "journal.db") as runtime:
        blocked = await runtime.start(blocking)
        try:
            echo_done = trio.Event()

            async def watch_for_starvation() -> None:
                # Whenever nothing in trio can move, only the blocked steps may wait for a thread
                # of the default limiter: anything more waiting there is the runtime starving.
                while not echo_done.is_set():
                    await trio.testing.wait_all_tasks_blocked()
                    waiting = default_limiter.statistics().tasks_waiting
                    in_threads = default_limiter.borrowed_tokens
                    assert waiting + in_threads <= BLOCKED_STEPS, (
                        f"{waiting} tasks wait for a default worker thread, {in_threads} hold one"
                    )

            async with trio.open_nursery() as nursery:
                nursery.start_soon(watch_for_starvation)
                echo = await runtime.start(workflow({"id": "hello", "agent": "echo",
                                                     "input": "hi"}))
                result = await echo.wait()
                echo_done.set()
            assert (result.status, result.output) == (ExecutionStatus.SUCCEEDED, {"hello": "hi"})
            assert blocked.result is None
        finally:
            RELEASE.set()
        finished = await blocked.wait()
    assert finished.status is ExecutionStatus.SUCCEEDED
    assert len(ENTERED) == BLOCKED_STEPS

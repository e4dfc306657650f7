"""Blocking agent code: a bounded pool of its own, and waits that deadlines and cancels abandon.

The blocking functions wait on real `threading.Event`s that each test sets before it ends; the
virtual clock (where one is used) jumps while every trio task waits for those threads.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import agent_fixtures
import pytest
import trio
import trio.testing

from orchestr8._agents._sync_calls import (
    DEFAULT_SYNC_WORKERS,
    run_sync_abandonable,
    sync_worker_limiter,
)
from orchestr8._execution._runtime import open_runtime, run_workflow
from orchestr8._journal._events import Event, EventType, ExecutionStatus, StepStatus

BLOCKING = {"id": "python", "config": {"callable": "agent_fixtures:wait_for_release"}}
"""The `python` agent over a sync function that blocks until `agent_fixtures.RELEASE` is set."""


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """`agent_fixtures.RELEASE`, cleared for the test and set after it, so no thread is left."""
    agent_fixtures.STARTED.clear()
    agent_fixtures.RELEASE.clear()
    try:
        yield agent_fixtures.RELEASE
    finally:
        agent_fixtures.RELEASE.set()


def document(*steps: dict[str, Any], **options: Any) -> dict[str, Any]:
    """A workflow of these steps without retries or breaker, so timings are exact."""
    return {
        "schema_version": "1.0",
        "name": "sync",
        "steps": list(steps),
        "defaults": {"policy": {"retry": {"max_attempts": 1}, "circuit_breaker": None}},
        **options,
    }


def ending(events: list[Event], step_id: str) -> tuple[str, float]:
    """The type and elapsed time of a step's last event."""
    last = [event for event in events if event.step_id == step_id][-1]
    return last.type, last.elapsed


def terminal(events: list[Event]) -> tuple[str, float]:
    """The type and elapsed time of the execution's last event."""
    return events[-1].type, events[-1].elapsed


@pytest.mark.parametrize("workers", [0, -1, True, 1.5, "4"])
def test_the_pool_size_must_be_a_whole_number_of_at_least_one(workers: Any) -> None:
    """A pool of no threads, or of a non-integer count, is refused naming `sync_workers`."""
    with pytest.raises(ValueError, match="sync_workers must be a whole number of at least 1"):
        sync_worker_limiter(workers)


async def test_open_runtime_refuses_a_bad_pool_size() -> None:
    """`open_runtime(sync_workers=0)` fails before anything opens."""
    with pytest.raises(ValueError, match="sync_workers"):
        async with open_runtime(sync_workers=0):
            pass


async def test_the_runtime_lends_blocking_code_its_own_pool() -> None:
    """The pool is the runtime's own limiter of the requested size, not trio's default one."""
    async with open_runtime(sync_workers=3) as runtime:
        assert runtime.sync_limiter.total_tokens == 3
        assert runtime.sync_limiter is not trio.to_thread.current_default_thread_limiter()
    async with open_runtime() as runtime:
        assert runtime.sync_limiter.total_tokens == DEFAULT_SYNC_WORKERS


async def test_a_blocking_call_returns_its_result_and_raises_its_error() -> None:
    """Without a cancel the call behaves like a plain one: result back, error unchanged."""
    pool = trio.CapacityLimiter(1)
    assert await run_sync_abandonable(lambda: 42, limiter=pool, what="t") == 42

    def broken() -> None:
        raise KeyError("missing")

    with pytest.raises(KeyError, match="missing"):
        await run_sync_abandonable(broken, limiter=pool, what="t")


async def test_a_call_cancelled_before_its_thread_started_warns_of_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Cancelled while waiting for a pool thread: nothing ran, so nothing is abandoned."""
    pool = trio.CapacityLimiter(1)
    ran: list[bool] = []
    async with pool:
        with trio.CancelScope() as scope:
            scope.cancel()
            await run_sync_abandonable(
                lambda: ran.append(True), limiter=pool, what="the unstarted call"
            )
    assert scope.cancelled_caught
    assert ran == []
    # (Threads abandoned by other tests may log meanwhile: only this call's name counts.)
    assert "the unstarted call" not in caplog.text


async def test_an_attempt_timeout_ends_a_blocked_sync_agent_at_the_timeout(
    autojump_clock: trio.testing.MockClock, release: threading.Event
) -> None:
    """`policy.timeout` 0.5 over a blocked sync call: the attempt times out at 0.5, step fails."""
    step = {"id": "s", "agent": BLOCKING, "policy": {"timeout": 0.5}}
    async with open_runtime() as runtime:
        handle = await runtime.start(document(step))
        result = await handle.wait()
        events = await runtime.journal.events(handle.execution_id)
    assert result.status is ExecutionStatus.FAILED
    assert result.steps["s"].status is StepStatus.FAILED
    assert result.steps["s"].error is not None
    assert result.steps["s"].error["type"] == "AttemptTimeoutError"
    assert ending(events, "s") == (EventType.STEP_FAILED, 0.5)


async def test_the_execution_timeout_ends_a_blocked_sync_agent_at_the_timeout(
    autojump_clock: trio.testing.MockClock, release: threading.Event
) -> None:
    """A workflow `timeout` of 1 over a blocked sync call: cancelled and timed out at 1."""
    async with open_runtime() as runtime:
        handle = await runtime.start(document({"id": "s", "agent": BLOCKING}, timeout=1.0))
        result = await handle.wait()
        events = await runtime.journal.events(handle.execution_id)
    assert result.status is ExecutionStatus.FAILED
    assert result.error is not None
    assert result.error["type"] == "ExecutionTimeoutError"
    assert ending(events, "s") == (EventType.STEP_CANCELLED, 1.0)
    assert terminal(events) == (EventType.EXECUTION_FAILED, 1.0)


async def test_the_cancel_grace_bounds_a_blocked_sync_agent(
    autojump_clock: trio.testing.MockClock, release: threading.Event
) -> None:
    """Cancelled at 1 with a grace of 1: the blocked step is cancelled, the execution at 2."""
    async with open_runtime(cancel_grace=1.0) as runtime:
        handle = await runtime.start(document({"id": "s", "agent": BLOCKING}))
        await trio.sleep(1.0)
        handle.cancel()
        result = await handle.wait()
        events = await runtime.journal.events(handle.execution_id)
    assert result.status is ExecutionStatus.CANCELLED
    assert ending(events, "s") == (EventType.STEP_CANCELLED, 2.0)
    assert terminal(events) == (EventType.EXECUTION_CANCELLED, 2.0)


POOL_FULL = threading.Event()
"""Set once `DEFAULT_SYNC_WORKERS` calls of `count_then_block` are blocked at the same time."""
_blocked_calls: list[int] = []
_blocked_lock = threading.Lock()


def count_then_block(input: Any) -> Any:
    """Count this call (setting POOL_FULL when the pool is full), then block until released."""
    with _blocked_lock:
        _blocked_calls.append(1)
        if len(_blocked_calls) == DEFAULT_SYNC_WORKERS:
            POOL_FULL.set()
    if not agent_fixtures.RELEASE.wait(timeout=10):
        raise TimeoutError("RELEASE was never set")
    return input


async def test_blocked_sync_agents_never_starve_the_runtime(
    tmp_path: Path, release: threading.Event
) -> None:
    """100 sync steps blocked on an event: an echo workflow still runs to its end meanwhile."""
    POOL_FULL.clear()
    _blocked_calls.clear()
    agent = {"id": "python", "config": {"callable": f"{__name__}:count_then_block"}}
    blocked = document(
        *({"id": f"b{index}", "agent": agent} for index in range(100)), strategy="parallel"
    )
    echo = document(
        {"id": "e", "agent": "echo", "input": {"said": "hello"}},
        output={"said": "${steps.e.output.said}"},
    )
    async with open_runtime(journal=tmp_path / "journal.db") as runtime:
        slow = await runtime.start(blocked)
        await trio.to_thread.run_sync(POOL_FULL.wait)
        # The blocked steps fill their own pool and leave trio's default one to the runtime.
        assert runtime.sync_limiter.borrowed_tokens == DEFAULT_SYNC_WORKERS
        assert trio.to_thread.current_default_thread_limiter().available_tokens > 0
        quick = await runtime.start(echo)
        assert (await quick.wait()).output == {"said": "hello"}
        release.set()
        result = await slow.wait()
    assert result.status is ExecutionStatus.SUCCEEDED
    assert len(result.steps) == 100


async def test_run_workflow_takes_the_pool_size(release: threading.Event) -> None:
    """`run_workflow(sync_workers=...)` runs blocking agents in a pool of that size."""
    release.set()
    result = await run_workflow(document({"id": "s", "agent": BLOCKING}), sync_workers=1)
    assert result.status is ExecutionStatus.SUCCEEDED
    assert result.steps["s"].output is None


SLEEPY = '''
import time


def nap(input):
    """Block the calling thread far longer than the step's timeout allows."""
    time.sleep(input["seconds"])
    return "woke up"
'''


def sleepy_workflow(tmp_path: Path, timeout: float) -> dict[str, str]:
    """Write a `python` step calling `time.sleep(30)` under `timeout`; return the environment."""
    (tmp_path / "sleepy.py").write_text(SLEEPY)
    (tmp_path / "w.json").write_text(
        json.dumps(
            document(
                {
                    "id": "nap",
                    "agent": {"id": "python", "config": {"callable": "sleepy:nap"}},
                    "input": {"seconds": 30},
                    "policy": {"timeout": timeout},
                },
            )
        )
    )
    environment = {key: value for key, value in os.environ.items() if key != "ORCHESTR8_JOURNAL"}
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(tmp_path), *filter(None, [environment.get("PYTHONPATH")])]
    )
    return environment


def orchestr8_run(tmp_path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """`orchestr8 run` over a `python` step calling `time.sleep(30)` under a 0.5 s timeout."""
    environment = sleepy_workflow(tmp_path, 0.5)
    return subprocess.run(
        [sys.executable, "-m", "orchestr8", "run", "w.json", "--journal", "j.db", *options],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )


def test_orchestr8_run_times_out_a_sleeping_sync_agent(tmp_path: Path) -> None:
    """`time.sleep(30)` under `policy.timeout: 0.5` fails its step (exit 2), not succeeds late."""
    done = orchestr8_run(tmp_path, "--sync-workers", "2")
    assert done.returncode == 2, done.stderr
    assert "AttemptTimeoutError" in done.stdout + done.stderr
    assert "woke up" not in done.stdout
    assert "Traceback" not in done.stderr


def test_orchestr8_run_refuses_a_pool_without_threads(tmp_path: Path) -> None:
    """`--sync-workers 0` is a usage error naming the option: exit 1, no traceback."""
    done = orchestr8_run(tmp_path, "--sync-workers", "0")
    assert done.returncode == 1
    assert "--sync-workers" in done.stderr
    assert "Traceback" not in done.stderr


def test_ctrl_c_cancels_a_sleeping_sync_agent_after_the_grace(tmp_path: Path) -> None:
    """SIGINT during `time.sleep(30)`, grace 0.2: exit 130, the step and the run cancelled."""
    environment = sleepy_workflow(tmp_path, 60.0)
    command = [
        sys.executable,
        "-m",
        "orchestr8",
        "run",
        "w.json",
        "--journal",
        "j.db",
        "--cancel-grace",
        "0.2",
    ]
    with subprocess.Popen(
        command,
        cwd=tmp_path,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stderr is not None
            execution_id = process.stderr.readline().split()[1]
            while "nap" not in (line := process.stderr.readline()) or "started" not in line:
                assert line, "the run ended before its step started"
            process.send_signal(signal.SIGINT)
            # Bounded only so that a regression fails instead of hanging: the sleep is 30 s.
            _, stderr = process.communicate(timeout=20)
        finally:
            if process.poll() is None:
                process.kill()
    assert process.returncode == 130, stderr
    with sqlite3.connect(f"file:{tmp_path / 'j.db'}?mode=ro", uri=True) as connection:
        types = [
            row[0]
            for row in connection.execute(
                "SELECT type FROM events WHERE execution_id = ? ORDER BY seq", (execution_id,)
            )
        ]
    connection.close()
    assert types[-2:] == ["step.cancelled", "execution.cancelled"]
    assert "still running in its worker thread" in stderr

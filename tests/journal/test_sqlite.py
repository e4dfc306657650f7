"""The SQLite journal under real-world pressure: its own worker threads, a disk that fills up, a
file that cannot be written, a write held up by a lock, and working again afterwards.

These run real SQLite files, real worker threads and (for the command line) real subprocesses.
Real write errors come from SQLite itself: `PRAGMA max_page_count` (database or disk is full),
`PRAGMA query_only` (a read-only database) or a trigger raising one. Anything with time in it runs
on the autojump `MockClock`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from orchestr8._agents._contract import AgentContext
from orchestr8._errors import JournalError, RetryableError
from orchestr8._execution._runtime import open_runtime
from orchestr8._journal._events import Event, EventType, ExecutionStatus
from orchestr8._journal._journal import (
    STALLED_AFTER,
    ExecutionRecord,
    Journal,
    open_journal,
)
from orchestr8._journal._records import CreateRequest
from orchestr8._journal._recovery import keep_journal_working
from orchestr8._journal._replay import replay
from orchestr8._journal._sqlite import SQLiteJournal, Store
from orchestr8._journal._sqlite_schema import BUSY_TIMEOUT
from orchestr8._journal._writer import UNWRITTEN_LIMIT

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
    return {
        "schema_version": "1.0",
        "name": "test",
        "steps": list(steps),
        "defaults": {"policy": {"retry": {"max_attempts": 1}, "circuit_breaker": None}},
    }


async def test_sync_agents_blocking_every_worker_thread_do_not_stop_the_journal(
    tmp_path: Path,
) -> None:
    """With 100 sync steps blocked in worker threads, another execution still runs to its end."""
    RELEASE.clear()
    ENTERED.clear()
    default_limiter = trio.to_thread.current_default_thread_limiter()
    blocking = workflow(
        *(
            {
                "id": f"block_{index}",
                "input": index,
                "agent": {
                    "id": "python",
                    "config": {"callable": f"{__name__}:block_until_released"},
                },
            }
            for index in range(BLOCKED_STEPS)
        )
    )
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
                echo = await runtime.start(
                    workflow({"id": "hello", "agent": "echo", "input": "hi"})
                )
                result = await echo.wait()
                echo_done.set()
            assert (result.status, result.output) == (ExecutionStatus.SUCCEEDED, {"hello": "hi"})
            assert blocked.result is None
        finally:
            RELEASE.set()
        finished = await blocked.wait()
    assert finished.status is ExecutionStatus.SUCCEEDED
    assert len(ENTERED) == BLOCKED_STEPS


# -- a journal that fails stops side effects at once ---------------------------------------------

CALLS_AFTER_FAILURE: list[str] = []
"""Agent calls made while the journal had already failed: there must never be any."""

JOURNALS: list[Journal] = []
"""The journal of the running test, for the agents below to look at."""

CALLS: list[str] = []
"""Every call of the agents below, by step id."""


async def note_call(input: Any, context: AgentContext) -> Any:
    """Record the call (and whether the journal had failed by then), then return the input."""
    CALLS.append(context.step_id)
    if any(journal.statistics().failed for journal in JOURNALS):
        CALLS_AFTER_FAILURE.append(context.step_id)
    return input


async def fail_retryably(input: Any, context: AgentContext) -> Any:
    """Record the call like `note_call`, then fail in a way that is retried."""
    await note_call(input, context)
    raise RetryableError("the service is down")


async def fill_the_disk(input: Any, context: AgentContext) -> Any:
    """Like `fail_retryably`, but the first attempt reports more progress than the disk holds."""
    if not CALLS.count(context.step_id):
        context.progress({"blob": "x" * 400_000})
    return await fail_retryably(input, context)


def python_step(step_id: str, function: str, *depends_on: str, **extra: Any) -> dict[str, Any]:
    """A `python` step calling a function of this module."""
    agent = {"id": "python", "config": {"callable": f"{__name__}:{function}"}}
    return {
        "id": step_id,
        "agent": agent,
        "depends_on": list(depends_on),
        "input": step_id,
        **extra,
    }


def limit_growth(journal: Journal, pages: int) -> None:
    """Let the journal's file grow by `pages` pages more, then writes fail: a disk that is full."""
    assert isinstance(journal, SQLiteJournal)
    writer = journal._store._writer
    used = writer.execute("PRAGMA page_count").fetchone()[0]
    writer.execute(f"PRAGMA max_page_count = {used + pages}").fetchone()


@pytest.fixture(autouse=True)
def fresh_calls() -> Iterator[None]:
    """Each test counts its own calls."""
    CALLS.clear()
    CALLS_AFTER_FAILURE.clear()
    JOURNALS.clear()
    yield
    JOURNALS.clear()


async def test_a_full_disk_stops_every_execution_and_nothing_starts_after_it(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """After "database or disk is full" no step and no retry starts; what was written stays.

    A retrying step fills the disk while a long chain of steps runs beside it: both stop at
    once, and no agent is called once the journal has failed.
    """
    path = tmp_path / "journal.db"
    retrying = {
        "retry": {"max_attempts": 1000, "initial_delay": 1.0, "jitter": "none"},
        "circuit_breaker": None,
    }
    chain = [{"id": "s0", "agent": "note"}] + [
        {"id": f"s{index}", "agent": "note", "depends_on": [f"s{index - 1}"]}
        for index in range(1, 1000)
    ]
    handles = []

    async def run_until_the_disk_is_full() -> None:
        async with (
            open_journal(path) as journal,
            open_runtime(journal=journal, cancel_grace=60.0, agents={"note": note_call}) as runtime,
        ):
            JOURNALS.append(journal)
            limit_growth(journal, 60)
            handles.append(await runtime.start(workflow(*chain)))
            handles.append(
                await runtime.start(
                    workflow(python_step("flaky", "fill_the_disk", policy=retrying))
                )
            )
            for handle in handles:
                with pytest.raises(
                    JournalError,
                    match=(
                        rf"execution {handle.execution_id} stopped: the journal failed: "
                        "writing the journal failed: database or disk is full"
                    ),
                ):
                    await handle.wait()

    with pytest.raises(JournalError, match="database or disk is full"):
        await run_until_the_disk_is_full()
    # Steps and retries started while the failing batch was still being written may have run
    # (a crash loses those the same way); none started once the failure was known.
    assert CALLS_AFTER_FAILURE == []
    assert "flaky" in CALLS
    async with open_journal(path) as reopened:
        for handle in handles:
            events = await reopened.events(handle.execution_id)
            assert [event.seq for event in events] == list(range(1, len(events) + 1))
            assert replay(events).status is ExecutionStatus.RUNNING


async def test_resuming_on_a_journal_that_cannot_write_runs_no_agent(tmp_path: Path) -> None:
    """A resume whose `execution.resumed` cannot be written calls no agent, and says why."""
    path = tmp_path / "journal.db"
    async with open_runtime(journal=path) as runtime:
        failed = await (
            await runtime.start(
                workflow(
                    python_step("first", "note_call"),
                    python_step("broken", "fail_retryably", "first"),
                )
            )
        ).wait()
    assert failed.status is ExecutionStatus.FAILED
    assert CALLS == ["first", "broken"]

    async def resume_on_a_read_only_journal() -> None:
        async with open_journal(path) as journal:
            JOURNALS.append(journal)
            assert isinstance(journal, SQLiteJournal)
            journal._store._writer.execute("PRAGMA query_only = ON")
            async with open_runtime(journal=journal) as runtime:
                resumed = await runtime.resume(failed.execution_id)
                with pytest.raises(
                    JournalError,
                    match=(
                        rf"execution {failed.execution_id} stopped: the journal failed: "
                        "writing the journal failed: attempt to write a readonly database"
                    ),
                ):
                    await resumed.wait()

    with pytest.raises(JournalError, match="readonly database"):
        await resume_on_a_read_only_journal()
    assert CALLS == ["first", "broken"]
    async with open_journal(path) as reopened:
        assert replay(await reopened.events(failed.execution_id)).status is ExecutionStatus.FAILED


# -- a failed journal works again once it can write ------------------------------------------------


async def fill_up(journal: Journal) -> None:
    """Record an execution, then fail the journal with a real "database or disk is full"."""
    limit_growth(journal, 2)
    await journal.create_execution(ExecutionRecord("run-1", "wf", {"steps": []}))
    await journal.append(started_event("run-1", 1))
    await journal.flush()
    await journal.append(started_event("run-1", 2, blob="x" * 100_000))
    with pytest.raises(JournalError, match="database or disk is full"):
        await journal.flush()


def started_event(execution_id: str, seq: int, **data: Any) -> Event:
    """An event of `execution_id` with this seq (the first is `execution.started`)."""
    kind = EventType.EXECUTION_STARTED if seq == 1 else EventType.STEP_PROGRESS
    return Event(execution_id, seq, "2025-01-01T00:00:00.000Z", 0.0, kind, None, None, data)


async def test_a_full_journal_reopens_on_fresh_connections_once_it_can_write(
    tmp_path: Path,
) -> None:
    """`reopen` after "disk full" commits a test write on new connections; then work goes on."""
    async with open_journal(tmp_path / "journal.db") as journal:
        await fill_up(journal)
        assert journal.trouble() == (
            "the journal failed: writing the journal failed: database or disk is full"
        )
        await journal.reopen()
        assert journal.trouble() is None
        await journal.append(started_event("run-1", 2))
        await journal.flush()
        assert [one.seq for one in await journal.events("run-1")] == [1, 2]


async def test_reopen_fails_while_the_file_cannot_be_used_and_the_failure_stays(
    tmp_path: Path,
) -> None:
    """While the journal's path holds no usable file, `reopen` says why; the first failure stays."""
    path = tmp_path / "journal.db"
    async with open_journal(path) as journal:
        await fill_up(journal)
        path.rename(tmp_path / "moved.db")
        with pytest.raises(JournalError, match=f"still cannot write: {path} no longer exists"):
            await journal.reopen()
        assert not path.exists()
        path.mkdir()
        with pytest.raises(JournalError, match=f"still cannot write: {path} is a directory"):
            await journal.reopen()
        assert journal.trouble() == (
            "the journal failed: writing the journal failed: database or disk is full"
        )
        path.rmdir()
        (tmp_path / "moved.db").rename(path)
        await journal.reopen()
        assert journal.trouble() is None


async def test_a_batch_held_up_longer_than_stalled_after_makes_the_journal_stalled(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """A write waiting on a lock past `STALLED_AFTER` (trio clock) is trouble, until it lands."""
    path = tmp_path / "journal.db"
    async with open_journal(path) as journal:
        await journal.create_execution(ExecutionRecord("run-1", "wf", {"steps": []}))
        with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as other:
            other.execute("BEGIN IMMEDIATE")
            await journal.append(started_event("run-1", 1))
            await trio.sleep(STALLED_AFTER / 2)
            assert journal.trouble() is None
            await trio.sleep(STALLED_AFTER)
            trouble = journal.trouble()
            assert trouble is not None
            assert trouble.startswith("the journal is stalled: a batch has been writing for ")
            assert journal.statistics().writing_for > STALLED_AFTER
            other.execute("ROLLBACK")
        await journal.flush()
        assert journal.trouble() is None
        assert journal.statistics().writing_for == 0.0


async def test_a_write_blocked_on_a_lock_is_stalled_well_before_sqlite_gives_up(
    tmp_path: Path,
) -> None:
    """`STALLED_AFTER` is far below both connections' busy timeout, so stalled shows first.

    A write waiting on a lock fails after the busy timeout; were it not well below, `/health`
    would say ok for the whole wait and then, at once, failed.
    """
    async with open_journal(tmp_path / "journal.db") as journal:
        assert isinstance(journal, SQLiteJournal)
        connections = (journal._store._writer, journal._store._reader)
        busy_timeouts = [
            connection.execute("PRAGMA busy_timeout").fetchone()[0] / 1000
            for connection in connections
        ]
    assert busy_timeouts == [BUSY_TIMEOUT, BUSY_TIMEOUT]
    assert STALLED_AFTER <= BUSY_TIMEOUT / 4


async def fill_the_disk_once(input: Any, context: AgentContext) -> Any:
    """Report more progress than the disk holds on the first call; return the input after."""
    CALLS.append(context.step_id)
    if CALLS.count(context.step_id) == 1:
        context.progress({"blob": "x" * 400_000})
    return input


async def test_keep_journal_working_reopens_the_journal_once_it_can_and_stopped_runs_resume(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """The recovery task leaves the journal failed while unusable, then reopens it for resumes."""
    path = tmp_path / "journal.db"
    recover = partial(keep_journal_working, first_delay=1, max_delay=8)
    async with (
        open_journal(path) as journal,
        open_runtime(journal=journal, agents={"fill": fill_the_disk_once}) as runtime,
    ):
        limit_growth(journal, 30)
        handle = await runtime.start(workflow({"id": "fill", "agent": "fill", "input": "done"}))
        with pytest.raises(JournalError, match="database or disk is full"):
            await handle.wait()
        path.rename(tmp_path / "moved.db")
        path.mkdir()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(recover, journal)
            await trio.sleep(60)
            # Stopped before the path changes back, so no try is halfway through meanwhile.
            nursery.cancel_scope.cancel()
        assert journal.statistics().failed
        path.rmdir()
        (tmp_path / "moved.db").rename(path)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(recover, journal)
            await journal.working()
            nursery.cancel_scope.cancel()
        assert journal.trouble() is None
        resumed = await (await runtime.resume(handle.execution_id)).wait()
        assert (resumed.status, resumed.output) == (ExecutionStatus.SUCCEEDED, {"fill": "done"})
        assert CALLS == ["fill", "fill"]


@pytest.mark.parametrize(("first", "most"), [(0, 1), (2, 1), (1, math.inf), (-1, 5)])
async def test_keep_journal_working_refuses_delays_that_are_no_back_off(
    first: float, most: float
) -> None:
    """Delays must be positive, finite and in order."""
    async with open_journal(None) as journal:
        with pytest.raises(ValueError, match="0 < first_delay <= max_delay"):
            await keep_journal_working(journal, first_delay=first, max_delay=most)


# -- the command line on a journal that cannot write ----------------------------------------------

ROOT = Path(__file__).resolve().parents[2]

COUNTED_FAILURE = '''
def count_then_fail(input):
    """Append a line to the counter file (a side effect), then fail."""
    with open(input["counter"], "a") as file:
        file.write("called\\n")
    raise RuntimeError("the service is down")
'''


def orchestr8_command(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run `python -m orchestr8 ARGS` in `cwd` (importable, with this checkout's orchestr8)."""
    environment = {key: value for key, value in os.environ.items() if key != "ORCHESTR8_JOURNAL"}
    environment.update(PYTHONPATH=f"{cwd}{os.pathsep}{ROOT}", NO_COLOR="1")
    return subprocess.run(
        [sys.executable, "-m", "orchestr8", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_resume_on_a_journal_that_cannot_write_runs_no_agent_and_says_how_to_resume(
    tmp_path: Path,
) -> None:
    """`orchestr8 resume` on a journal refusing writes: exit 1, the error and the resume command.

    It says the execution resumed only once `execution.resumed` is recorded.
    """
    (tmp_path / "effects.py").write_text(COUNTED_FAILURE)
    counter = tmp_path / "counter.txt"
    (tmp_path / "w.json").write_text(
        json.dumps(
            {
                "schema_version": "1.0",
                "name": "w",
                "steps": [
                    {
                        "id": "call",
                        "input": {"counter": str(counter)},
                        "agent": {
                            "id": "python",
                            "config": {"callable": "effects:count_then_fail"},
                        },
                        "policy": {"retry": {"max_attempts": 1}},
                    }
                ],
            }
        )
    )
    failed = orchestr8_command("run", "w.json", "--journal", "j.db", "--json", cwd=tmp_path)
    assert failed.returncode == 2, failed.stderr
    execution_id = json.loads(failed.stdout)["execution_id"]
    assert counter.read_text() == "called\n"
    with contextlib.closing(sqlite3.connect(tmp_path / "j.db")) as connection:
        # A real write error on every event from now on, as a full disk gives.
        connection.execute(
            "CREATE TRIGGER full BEFORE INSERT ON events"
            " BEGIN SELECT RAISE(FAIL, 'database or disk is full'); END"
        )
    refused = orchestr8_command("resume", execution_id, "--journal", "j.db", cwd=tmp_path)
    assert refused.returncode == 1, refused.stderr
    # `execution.resumed` was never written: the command does not say it resumed.
    assert f"execution {execution_id} resumed" not in refused.stderr
    assert (
        f"error: execution {execution_id} stopped: the journal failed: writing the journal "
        "failed: database or disk is full"
    ) in refused.stderr
    assert (
        f"resume it once the journal works again: orchestr8 resume --journal j.db {execution_id}\n"
    ) in refused.stderr
    assert "Traceback" not in refused.stderr
    assert counter.read_text() == "called\n"
    with contextlib.closing(sqlite3.connect(tmp_path / "j.db")) as connection:
        connection.execute("DROP TRIGGER full")
    again = orchestr8_command("resume", execution_id, "--journal", "j.db", cwd=tmp_path)
    assert again.returncode == 2, again.stderr
    assert f"execution {execution_id} resumed: workflow 'w', 0 of 1 steps reused" in again.stderr
    assert counter.read_text() == "called\ncalled\n"


async def test_a_full_disk_leaves_at_most_a_bounded_lag_of_steps_unrecorded(
    tmp_path: Path,
) -> None:
    """Steps never run far ahead of the journal: when the disk fills, few calls go unrecorded.

    A chain of instant steps makes events much faster than a disk takes them; each step waits
    before its agent while more than `UNWRITTEN_LIMIT` events are unwritten, and each step writes
    at least two before it calls its agent.
    """
    path = tmp_path / "journal.db"
    chain = [{"id": "s0", "agent": "note"}] + [
        {"id": f"s{index}", "agent": "note", "depends_on": [f"s{index - 1}"]}
        for index in range(1, 1000)
    ]

    async def run_until_the_disk_is_full() -> str:
        async with (
            open_journal(path) as journal,
            open_runtime(journal=journal, agents={"note": note_call}) as runtime,
        ):
            JOURNALS.append(journal)
            limit_growth(journal, 40)
            handle = await runtime.start(workflow(*chain))
            await handle.finished()
            return handle.execution_id

    with pytest.raises(JournalError, match="database or disk is full"):
        await run_until_the_disk_is_full()
    async with open_journal(path) as reopened:
        execution_id = (await reopened.list_executions()).items[0].execution_id
        events = await reopened.events(execution_id)
    started = {event.step_id for event in events if event.type == EventType.STEP_STARTED}
    unrecorded = [step_id for step_id in CALLS if step_id not in started]
    assert 0 < len(started) < len(chain)
    assert len(unrecorded) <= UNWRITTEN_LIMIT // 2


async def test_a_read_the_sqlite_file_refuses_is_a_journal_error(tmp_path: Path) -> None:
    """A SQLite error while reading (here: a table dropped behind the journal's back) is named."""
    path = tmp_path / "journal.db"
    async with open_journal(path) as journal:
        with contextlib.closing(sqlite3.connect(path)) as connection:
            connection.execute("DROP TABLE events")
            connection.commit()
        with pytest.raises(JournalError, match="reading the journal failed: no such table"):
            await journal.last_seq("run-1")


def test_the_store_encodes_well_after_refusing_data_that_is_not_json(tmp_path: Path) -> None:
    """The store's kept JSON encoder works on after an event whose data loops back on itself."""
    store = Store.open_file(tmp_path / "journal.db")
    try:
        created = store.write_batch(
            [CreateRequest(ExecutionRecord("run-1", "wf", {"name": "wf", "steps": []}))]
        )
        assert created.failure is None
        looped: dict[str, Any] = {"items": []}
        looped["items"].append(looped)
        ts = "2026-12-07T10:00:00.000Z"
        refused = store.write_batch([Event("run-1", 1, ts, 0.1, "step.progress", "a", 1, looped)])
        assert refused.failure is not None
        assert "not JSON" in str(refused.failure)
        # The same objects, no longer looping: a marker left from the refusal would refuse them.
        looped["items"][0] = {"items": []}
        written = store.write_batch([Event("run-1", 1, ts, 0.2, "step.progress", "a", 1, looped)])
        assert written.failure is None
        assert written.events_written == 1
        [row] = store._writer.execute("SELECT data FROM events").fetchall()
        assert json.loads(row[0]) == {"items": [{"items": []}]}
    finally:
        store.close()

"""Execution locks: one process at a time runs an execution; other processes' resumes are refused.

POSIX record locks never conflict inside one process, so every conflict here is with a real second
process: `LOCKER` acquires an execution's lock, prints whether it got it, and holds it until its
stdin closes.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from cli_processes import cli, environment, event_types

from orchestr8._agents._contract import AgentContext
from orchestr8._errors import ExecutionStateError, NonRetryableError
from orchestr8._execution._lock import (
    ExecutionLocks,
    held_executions,
    lock_file_path,
    lock_offset,
)
from orchestr8._execution._runtime import open_runtime
from orchestr8._journal._events import EventType, ExecutionStatus
from orchestr8._journal._journal import open_journal

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX locks only")

LOCKER = """
import sys
from pathlib import Path
from orchestr8._execution._lock import ExecutionLocks

locks = ExecutionLocks(Path(sys.argv[1]))
print("locked" if locks.acquire(sys.argv[2]) else "refused", flush=True)
sys.stdin.read()
"""

EXECUTION_ID = "a" * 32

REFUSED = (
    f"execution {EXECUTION_ID} is running in another process or runtime; "
    "it cannot be resumed until that run ends"
)

WORKFLOW = {
    "schema_version": "1.0",
    "name": "locked",
    "steps": [
        {"id": "call", "agent": "flaky", "input": 1, "policy": {"retry": {"max_attempts": 1}}},
    ],
    "output": "${steps.call.output}",
}

GATED = '''
import pathlib
import time


def wait_for(input):
    """Return once the marker file exists."""
    while not pathlib.Path(input["marker"]).exists():
        time.sleep(0.02)
    return "released"
'''


@contextmanager
def other_process(journal: Path, execution_id: str) -> Iterator[subprocess.Popen[str]]:
    """A second process that tries to lock the execution; read its verdict with `verdict`."""
    with subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(journal), execution_id],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            yield process
        finally:
            assert process.stdin is not None
            process.stdin.close()
            process.wait(timeout=10)


def verdict(process: subprocess.Popen[str]) -> str:
    """What the second process got: "locked" or "refused"."""
    assert process.stdout is not None
    return process.stdout.readline().strip()


def try_from_another_process(journal: Path, execution_id: str) -> str:
    """Whether another process can lock the execution right now (it lets go at once)."""
    with other_process(journal, execution_id) as process:
        return verdict(process)


class Flaky:
    """An agent function that fails until told to succeed."""

    def __init__(self) -> None:
        self.fail = True
        self.calls = 0

    async def __call__(self, input: Any, context: AgentContext) -> Any:
        await trio.lowlevel.checkpoint()
        self.calls += 1
        if self.fail:
            raise NonRetryableError("the service was down")
        return {"called": input}


def record_failed_execution(journal: Path, flaky: Flaky) -> None:
    """Run WORKFLOW to a failure under EXECUTION_ID, in a runtime that then closes."""

    async def main() -> None:
        async with open_runtime(journal=journal, agents={"flaky": flaky}) as runtime:
            handle = await runtime.start(WORKFLOW, execution_id=EXECUTION_ID)
            assert (await handle.wait()).status is ExecutionStatus.FAILED

    trio.run(main)


# -- ExecutionLocks -------------------------------------------------------------------------------


def test_held_executions_reads_locks_without_taking_them(tmp_path: Path) -> None:
    """Held here or by another process counts; a dead holder does not; asking takes nothing."""
    journal = tmp_path / "journal.db"
    assert held_executions(journal, [EXECUTION_ID]) == frozenset()  # no lock file yet
    locks = ExecutionLocks(journal)
    try:
        assert locks.acquire("b" * 32)
        with other_process(journal, EXECUTION_ID) as process:
            assert verdict(process) == "locked"
            assert held_executions(journal, [EXECUTION_ID, "b" * 32, "c" * 32]) == {
                EXECUTION_ID,
                "b" * 32,
            }
        # The other process ended (its locks went with it), and this one's asking took none.
        assert held_executions(journal, [EXECUTION_ID, "c" * 32]) == frozenset()
        assert try_from_another_process(journal, "c" * 32) == "locked"
    finally:
        locks.close()
    assert held_executions(journal, ["b" * 32]) == frozenset()
    with other_process(journal, EXECUTION_ID) as process:
        assert verdict(process) == "locked"
        # Asked from a process with no lock file open: it opens one for the question only.
        assert held_executions(journal, [EXECUTION_ID]) == {EXECUTION_ID}
        assert try_from_another_process(journal, EXECUTION_ID) == "refused"


def test_the_lock_file_sits_next_to_the_journal(tmp_path: Path) -> None:
    """The lock file is `<journal>-locks`, created on open, and offsets fit in 40 bits."""
    locks = ExecutionLocks(tmp_path / "journal.db")
    try:
        assert lock_file_path(tmp_path / "journal.db") == tmp_path / "journal.db-locks"
        assert locks.path == (tmp_path / "journal.db-locks").resolve()
        assert locks.path.exists()
    finally:
        locks.close()
    assert 0 <= lock_offset(EXECUTION_ID) < 2**40
    assert lock_offset(EXECUTION_ID) != lock_offset("b" * 32)


def test_acquire_is_refused_while_another_process_holds_the_lock(tmp_path: Path) -> None:
    """Another process's lock refuses `acquire` of that execution only, without waiting."""
    journal = tmp_path / "journal.db"
    locks = ExecutionLocks(journal)
    try:
        with other_process(journal, EXECUTION_ID) as process:
            assert verdict(process) == "locked"
            assert locks.acquire(EXECUTION_ID) is False
            assert locks.acquire("b" * 32) is True
        assert locks.acquire(EXECUTION_ID) is True
    finally:
        locks.close()


def test_release_lets_another_process_acquire(tmp_path: Path) -> None:
    """A held lock refuses other processes until it is released."""
    journal = tmp_path / "journal.db"
    locks = ExecutionLocks(journal)
    try:
        assert locks.acquire(EXECUTION_ID) is True
        assert try_from_another_process(journal, EXECUTION_ID) == "refused"
        locks.release(EXECUTION_ID)
        assert try_from_another_process(journal, EXECUTION_ID) == "locked"
    finally:
        locks.close()


def test_close_releases_every_lock(tmp_path: Path) -> None:
    """Closing releases all the locks held, and acquiring afterwards is an error."""
    journal = tmp_path / "journal.db"
    locks = ExecutionLocks(journal)
    assert locks.acquire(EXECUTION_ID) is True
    assert locks.acquire("b" * 32) is True
    locks.close()
    locks.close()
    assert try_from_another_process(journal, EXECUTION_ID) == "locked"
    assert try_from_another_process(journal, "b" * 32) == "locked"
    with pytest.raises(RuntimeError, match="closed"):
        locks.acquire(EXECUTION_ID)


def test_a_killed_process_leaves_no_lock_behind(tmp_path: Path) -> None:
    """The kernel drops the locks of a process killed by SIGKILL."""
    journal = tmp_path / "journal.db"
    locks = ExecutionLocks(journal)
    try:
        with other_process(journal, EXECUTION_ID) as process:
            assert verdict(process) == "locked"
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
            assert locks.acquire(EXECUTION_ID) is True
    finally:
        locks.close()


def test_closing_one_of_a_process_locks_keeps_the_others_locks(tmp_path: Path) -> None:
    """Two `ExecutionLocks` of one process share the file: closing one keeps the other's locks."""
    journal = tmp_path / "journal.db"
    first, second = ExecutionLocks(journal), ExecutionLocks(journal)
    try:
        assert first.acquire(EXECUTION_ID) is True
        assert second.acquire("b" * 32) is True
        second.close()
        assert try_from_another_process(journal, EXECUTION_ID) == "refused"
        assert try_from_another_process(journal, "b" * 32) == "locked"
        first.release(EXECUTION_ID)
        assert try_from_another_process(journal, EXECUTION_ID) == "locked"
    finally:
        first.close()
        second.close()


class AJournal:
    """Stands for a memory journal object: what runtimes sharing a journal have in common."""


@pytest.mark.parametrize("kind", ["file", "memory"])
def test_runtimes_of_one_process_exclude_each_other(tmp_path: Path, kind: str) -> None:
    """What one runtime's locks hold, another's on the same journal are refused until released."""
    path, journal = (tmp_path / "journal.db", None) if kind == "file" else (None, AJournal())
    first, second = ExecutionLocks(path, journal=journal), ExecutionLocks(path, journal=journal)
    try:
        assert first.acquire(EXECUTION_ID) is True
        assert second.acquire(EXECUTION_ID) is False
        assert second.acquire("b" * 32) is True
        first.close()
        assert second.acquire(EXECUTION_ID) is True
    finally:
        first.close()
        second.close()


def test_a_memory_journal_has_no_lock_file() -> None:
    """Without a journal file the locks hold within the process only, and no file is made."""
    locks = ExecutionLocks(None)
    assert locks.path is None
    assert locks.acquire(EXECUTION_ID) is True
    locks.release(EXECUTION_ID)
    assert locks.acquire(EXECUTION_ID) is True
    locks.close()


@pytest.mark.parametrize("kind", ["file", "memory"])
def test_an_execution_held_here_is_not_granted_twice(tmp_path: Path, kind: str) -> None:
    """A second acquire of a held execution is refused, so one release cannot free two runs."""
    locks = ExecutionLocks(tmp_path / "journal.db" if kind == "file" else None)
    assert locks.acquire(EXECUTION_ID) is True
    assert locks.acquire(EXECUTION_ID) is False
    locks.release(EXECUTION_ID)
    assert locks.acquire(EXECUTION_ID) is True
    locks.close()


# -- the runtime ----------------------------------------------------------------------------------


def test_resume_is_refused_while_another_process_holds_the_execution(tmp_path: Path) -> None:
    """Resume raises ExecutionStateError and writes nothing while another process holds the lock."""
    journal, flaky = tmp_path / "journal.db", Flaky()
    record_failed_execution(journal, flaky)
    before = event_types(journal, EXECUTION_ID)
    flaky.fail = False

    async def resume() -> None:
        async with open_runtime(journal=journal, agents={"flaky": flaky}) as runtime:
            with pytest.raises(ExecutionStateError) as raised:
                await runtime.resume(EXECUTION_ID)
            assert str(raised.value) == REFUSED

    with other_process(journal, EXECUTION_ID) as process:
        assert verdict(process) == "locked"
        trio.run(resume)
    assert event_types(journal, EXECUTION_ID) == before
    assert flaky.calls == 1


def test_resume_works_once_the_other_process_has_ended(tmp_path: Path) -> None:
    """After the process holding the lock ends, the same execution resumes and succeeds."""
    journal, flaky = tmp_path / "journal.db", Flaky()
    record_failed_execution(journal, flaky)
    flaky.fail = False
    assert try_from_another_process(journal, EXECUTION_ID) == "locked"

    async def resume() -> ExecutionStatus:
        async with open_runtime(journal=journal, agents={"flaky": flaky}) as runtime:
            handle = await runtime.resume(EXECUTION_ID)
            return (await handle.wait()).status

    assert trio.run(resume) is ExecutionStatus.SUCCEEDED
    types = event_types(journal, EXECUTION_ID)
    assert types.count(EventType.EXECUTION_RESUMED.value) == 1
    assert types[-1] == EventType.EXECUTION_SUCCEEDED.value


def test_a_running_execution_is_locked_until_it_ends(tmp_path: Path) -> None:
    """`start` locks the execution and the lock is released as soon as its run has ended."""
    journal, gate = tmp_path / "journal.db", trio.Event()

    async def gated(input: Any) -> Any:
        await gate.wait()
        return input

    async def main() -> list[str]:
        verdicts = []
        async with open_runtime(journal=journal, agents={"gated": gated}) as runtime:
            document = {**WORKFLOW, "steps": [{"id": "call", "agent": "gated", "input": 1}]}
            handle = await runtime.start(document, execution_id=EXECUTION_ID)
            verdicts.append(
                await trio.to_thread.run_sync(try_from_another_process, journal, EXECUTION_ID)
            )
            gate.set()
            assert (await handle.wait()).status is ExecutionStatus.SUCCEEDED
            await runtime.wait_all()
            verdicts.append(
                await trio.to_thread.run_sync(try_from_another_process, journal, EXECUTION_ID)
            )
        return verdicts

    assert trio.run(main) == ["refused", "locked"]


# -- the command line -----------------------------------------------------------------------------


def test_resuming_an_execution_another_run_still_runs_is_refused(tmp_path: Path) -> None:
    """`orchestr8 resume` of an execution a live `orchestr8 run` runs exits 1; none runs twice."""
    (tmp_path / "gated_steps.py").write_text(GATED)
    journal, marker = tmp_path / "journal.db", tmp_path / "marker"
    (tmp_path / "w.json").write_text(
        json.dumps(
            {
                "schema_version": "1.0",
                "name": "gated",
                "steps": [
                    {
                        "id": "wait",
                        "agent": {"id": "python", "config": {"callable": "gated_steps:wait_for"}},
                        "input": {"marker": str(marker)},
                    }
                ],
            }
        )
    )
    env = environment(tmp_path)
    with subprocess.Popen(
        [sys.executable, "-m", "orchestr8", "run", "w.json", "--journal", str(journal), "--json"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as running:
        try:
            assert running.stderr is not None
            match = None
            while match is None:
                line = running.stderr.readline()
                assert line, "the run ended before it started its execution"
                match = re.search(r"execution ([0-9a-f]{32}) started", line)
            execution_id = match.group(1)
            refused = cli("resume", execution_id, "--journal", str(journal), cwd=tmp_path, env=env)
            marker.touch()
            stdout, _ = running.communicate(timeout=30)
        finally:
            if running.poll() is None:
                running.kill()
    assert refused.returncode == 1
    assert refused.stderr.endswith(
        f"error: execution {execution_id} is running in another process or runtime; "
        "it cannot be resumed until that run ends\n"
    )
    assert running.returncode == 0
    assert json.loads(stdout)["status"] == "succeeded"
    types = event_types(journal, execution_id)
    assert EventType.EXECUTION_RESUMED.value not in types
    assert types.count(EventType.STEP_STARTED.value) == 1


@pytest.mark.parametrize("kind", ["file", "memory"])
async def test_another_runtime_of_this_process_cannot_resume_what_one_runs(
    tmp_path: Path, kind: str
) -> None:
    """Two runtimes on one journal: resuming what the other runs is refused; nothing runs twice."""
    calls: list[str] = []
    release = trio.Event()

    async def slow(input: Any) -> str:
        calls.append("slow")
        await release.wait()
        return "done"

    document = {"schema_version": "1.0", "name": "two", "steps": [{"id": "a", "agent": "slow"}]}
    path = tmp_path / "journal.db" if kind == "file" else None
    async with (
        open_journal(path) as journal,
        open_runtime(journal=journal, agents={"slow": slow}) as one,
        open_runtime(journal=journal, agents={"slow": slow}) as two,
    ):
        handle = await one.start(document)
        with pytest.raises(ExecutionStateError, match="running in another process or runtime"):
            await two.resume(handle.execution_id)
        release.set()
        assert (await handle.wait()).status is ExecutionStatus.SUCCEEDED
    assert calls == ["slow"]

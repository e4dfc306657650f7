"""Real `orchestr8 worker` processes on a real PostgreSQL, and what their journal recorded.

Each worker is a subprocess (`python -m orchestr8 worker`) writing its stderr to a file. The
steps of the test workflows append one line per real run to a log file (`execution step pid`),
so a test counts how often a step ran, whichever worker ran it; the journal is read straight
from the database, as another process would.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import psycopg

STEP_AGENT = '''
import os

import trio


async def work(input, context):
    """Append one line per real run, then take `seconds` (trio time)."""
    with open(input["log"], "a") as file:
        file.write(f"{context.execution_id} {context.step_id} {os.getpid()}\\n")
    await trio.sleep(input.get("seconds", 0))
    return {"step": context.step_id}
'''

WAIT_LIMIT = 60.0
"""Seconds a test waits for the database to reach a state before it fails."""


def write_agent(directory: Path) -> None:
    """Put the counting step agent (`worker_steps:work`) where the workers import it."""
    (directory / "worker_steps.py").write_text(STEP_AGENT)


def workflow(
    directory: Path,
    log: Path,
    seconds: Sequence[float],
    *,
    name: str = "counted",
    extra: Sequence[dict[str, Any]] = (),
    timeout: float | None = None,
) -> Path:
    """A workflow of chained counting steps `s0`, `s1`... taking `seconds` each; its file."""
    steps: list[dict[str, Any]] = []
    for index, duration in enumerate(seconds):
        step: dict[str, Any] = {
            "id": f"s{index}",
            "agent": {"id": "python", "config": {"callable": "worker_steps:work"}},
            "input": {"log": str(log), "seconds": duration},
        }
        if index:
            step["depends_on"] = [f"s{index - 1}"]
        steps.append(step)
    steps.extend(extra)
    document: dict[str, Any] = {"schema_version": "1.0", "name": name, "steps": steps}
    if timeout is not None:
        document["timeout"] = timeout
    path = directory / f"{name}.json"
    path.write_text(json.dumps(document))
    return path


def environment(directory: Path) -> dict[str, str]:
    """The workers' environment: `directory` importable after the code under test, no colour."""
    env = {key: value for key, value in os.environ.items() if key != "ORCHESTR8_JOURNAL"}
    inherited = [entry for entry in env.get("PYTHONPATH", "").split(os.pathsep) if entry]
    env.update(PYTHONPATH=os.pathsep.join([*inherited, str(directory)]), NO_COLOR="1")
    return env


def orchestr8(directory: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run one `orchestr8` command to its end."""
    return subprocess.run(
        [sys.executable, "-m", "orchestr8", *args],
        cwd=directory,
        env=environment(directory),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def submit(directory: Path, url: str, workflow_file: Path) -> str:
    """`orchestr8 run --submit`: the id of the queued execution."""
    done = orchestr8(directory, "run", str(workflow_file), "--submit", "--journal", url)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@attrs.define(eq=False)
class Worker:
    """One `orchestr8 worker` subprocess."""

    process: subprocess.Popen[str]
    stderr: Path

    @property
    def pid(self) -> int:
        """The worker's process id (part of its holder id)."""
        return self.process.pid

    def output(self) -> str:
        """What the worker wrote on stderr so far."""
        return self.stderr.read_text(errors="replace")

    def signal(self, signum: int) -> None:
        """Send the worker a signal (SIGKILL, SIGSTOP, SIGCONT, SIGTERM)."""
        os.kill(self.process.pid, signum)

    def wait(self, timeout: float = WAIT_LIMIT) -> int:
        """Wait for the worker to exit; its exit status."""
        return self.process.wait(timeout=timeout)


@contextlib.contextmanager
def workers(directory: Path, url: str, count: int, *options: str) -> Iterator[list[Worker]]:
    """Start `count` workers on the journal at `url`; kill whatever is left at the end."""
    started: list[Worker] = []
    try:
        for index in range(count):
            started.append(start_worker(directory, url, f"w{index}", *options))
        yield started
    finally:
        for worker in started:
            stop(worker)


def stop(worker: Worker) -> None:
    """Stop a worker as an operator would (SIGTERM: it drains, hands over, exits), else kill it."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(worker.process.pid, signal.SIGCONT)
    if worker.process.poll() is None:
        worker.process.terminate()
        try:
            worker.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.process.kill()
    worker.process.wait(timeout=30)


def start_worker(directory: Path, url: str, name: str, *options: str) -> Worker:
    """Start one `orchestr8 worker --name NAME` on the journal at `url`."""
    stderr = directory / f"{name}-{time.monotonic_ns()}.stderr"
    # Stopping hands what runs over at once unless a test asks for a drain.
    drain = () if "--drain" in options else ("--drain", "0")
    with stderr.open("w") as sink:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "orchestr8",
                "worker",
                "--journal",
                url,
                "--name",
                name,
                *drain,
                *options,
            ],
            cwd=directory,
            env=environment(directory),
            stdout=subprocess.DEVNULL,
            stderr=sink,
            text=True,
        )
    return Worker(process, stderr)


def query(url: str, sql: str, *arguments: Any) -> list[tuple[Any, ...]]:
    """Rows of one query on the journal's database (its `orchestr8` schema)."""
    with psycopg.connect(url, autocommit=True, options="-c search_path=orchestr8") as connection:
        return connection.execute(sql, arguments or None).fetchall()


def status(url: str, execution_id: str) -> str:
    """The execution's recorded status."""
    rows = query(url, "SELECT status FROM executions WHERE execution_id = %s", execution_id)
    return str(rows[0][0]) if rows else "missing"


def holder_pid(url: str, execution_id: str) -> int | None:
    """The process id of the worker holding the execution's lease, or None."""
    rows = query(url, "SELECT holder FROM leases WHERE execution_id = %s", execution_id)
    if not rows or rows[0][0] is None:
        return None
    return int(str(rows[0][0]).split("/")[2])


def runs(log: Path) -> list[tuple[str, str, int]]:
    """Every real run of a step so far: (execution, step, worker pid)."""
    if not log.exists():
        return []
    lines = [line.split() for line in log.read_text().splitlines() if line.strip()]
    return [(execution, step, int(pid)) for execution, step, pid in lines]


def succeeded_steps(url: str, execution_id: str) -> list[str]:
    """The steps the journal holds as succeeded, in order (a step twice: completed twice)."""
    rows = query(
        url,
        "SELECT step_id FROM events WHERE execution_id = %s AND type = 'step.succeeded'"
        " ORDER BY seq",
        execution_id,
    )
    return [str(row[0]) for row in rows]


def check_events(url: str, execution_id: str) -> None:
    """The execution's seqs run 1, 2, 3... without a gap or a repeat."""
    rows = query(url, "SELECT seq FROM events WHERE execution_id = %s ORDER BY seq", execution_id)
    assert [row[0] for row in rows] == list(range(1, len(rows) + 1))


def wait_until(condition: Callable[[], bool], what: str, limit: float = WAIT_LIMIT) -> None:
    """Poll the state (the database, the log) until `condition` holds; fail naming `what`."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)

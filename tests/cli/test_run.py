"""`orchestr8 run` as a real process: it ends with its code even when an agent ignores cancel."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

import orchestr8

REPOSITORY = Path(orchestr8.__file__).resolve().parent.parent

SHIELDED = """\
import sys
import trio

async def f(input):
    print("agent started", file=sys.stderr, flush=True)
    with trio.CancelScope(shield=True):
        await trio.sleep(120)
"""
"""An agent that ignores every cancellation for two minutes (longer than any test waits)."""

HANG = 60
"""Seconds after which a process that has not exited counts as hung (the agent sleeps 120)."""


def shielded_workflow(tmp_path: Path, **fields: Any) -> Path:
    """Write the shielded agent and a one-step workflow calling it; return the workflow."""
    (tmp_path / "shielded.py").write_text(SHIELDED)
    step = {"id": "a", "agent": {"id": "python", "config": {"callable": "shielded:f"}}}
    workflow = tmp_path / "w.json"
    workflow.write_text(
        json.dumps({"schema_version": "1.0", "name": "sh", **fields, "steps": [step]})
    )
    return workflow


def start_run(tmp_path: Path, workflow: Path, *options: str) -> subprocess.Popen[str]:
    """Start `python -m orchestr8 run WORKFLOW --journal j.db OPTIONS` in `tmp_path`."""
    environment = {key: value for key, value in os.environ.items() if key != "ORCHESTR8_JOURNAL"}
    environment.update(PYTHONPATH=f"{tmp_path}{os.pathsep}{REPOSITORY}", NO_COLOR="1")
    command = [sys.executable, "-m", "orchestr8", "run", str(workflow), "--journal", "j.db"]
    return subprocess.Popen(
        [*command, *options],
        cwd=tmp_path,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def read_until(stream: IO[str] | None, text: str, seen: list[str]) -> None:
    """Read lines from `stream` into `seen` until one contains `text`."""
    assert stream is not None
    while text not in (line := stream.readline()):
        assert line, f"the output ended before {text!r}: {''.join(seen)}"
        seen.append(line)
    seen.append(line)


def finish(process: subprocess.Popen[str], seen: list[str]) -> tuple[int, str, str]:
    """Wait (at most `HANG` seconds, then kill it) for the process; code, stdout, all stderr."""
    try:
        stdout, stderr = process.communicate(timeout=HANG)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, stdout, "".join(seen) + stderr


def journaled_types(tmp_path: Path) -> list[str]:
    """The types of every event the journal holds, in order."""
    with sqlite3.connect(f"file:{tmp_path / 'j.db'}?mode=ro", uri=True) as connection:
        types = [row[0] for row in connection.execute("SELECT type FROM events ORDER BY seq")]
    connection.close()
    return types


def test_ctrl_c_ends_the_run_within_the_grace_despite_a_shielded_agent(tmp_path: Path) -> None:
    """One SIGINT, grace 1: the run is journaled cancelled, then the process exits 130, warning."""
    seen: list[str] = []
    with start_run(tmp_path, shielded_workflow(tmp_path), "--cancel-grace", "1") as process:
        read_until(process.stderr, "agent started", seen)
        process.send_signal(signal.SIGINT)
        code, stdout, stderr = finish(process, seen)
    assert code == 130, stderr
    assert "status: cancelled" in stdout
    cancelled = stderr.index("execution cancelled")
    assert stderr.index("exiting without waiting for them", cancelled) > cancelled
    assert journaled_types(tmp_path)[-2:] == ["step.cancelled", "execution.cancelled"]


def test_a_timed_out_run_exits_3_despite_a_shielded_agent(tmp_path: Path) -> None:
    """Workflow `timeout: 1` over an agent that ignores it: exit 3 once the grace is over."""
    workflow = shielded_workflow(tmp_path, timeout=1)
    with start_run(tmp_path, workflow, "--cancel-grace", "1") as process:
        code, stdout, stderr = finish(process, [])
    assert code == 3, stderr
    assert "ExecutionTimeoutError" in stdout
    assert "exiting without waiting for them" in stderr
    assert journaled_types(tmp_path)[-1] == "execution.failed"


def test_a_second_signal_ends_a_run_waiting_for_a_shielded_agent_at_once(
    tmp_path: Path,
) -> None:
    """Timed out, then stuck on the agent (grace 600): SIGINT, SIGINT again exits 130 at once."""
    workflow = shielded_workflow(tmp_path, timeout=1)
    seen: list[str] = []
    with start_run(tmp_path, workflow, "--cancel-grace", "600") as process:
        read_until(process.stderr, "the runtime waits for steps that ignored cancellation", seen)
        process.send_signal(signal.SIGINT)
        read_until(process.stderr, "interrupt again to stop at once", seen)
        process.send_signal(signal.SIGINT)
        code, _, stderr = finish(process, seen)
    assert code == 130, stderr
    assert "interrupted again: stopping now" in stderr
    assert journaled_types(tmp_path)[-1] == "execution.failed"

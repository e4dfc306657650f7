"""End to end: a real `orchestr8 run` waits at a gate and is answered from elsewhere.

From a second process (`orchestr8 approve` while `run` waits), from the terminal running it (the
prompt, driven through a pseudo-terminal), and through a server that adopts a waiting execution.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import IO

import pytest
import trio
from cli_processes import cli, environment
from gate_scripts import SIGN_ONLY

from orchestr8 import open_runtime
from orchestr8._web._serve import serve

needs_control_loop = pytest.mark.skipif(
    importlib.util.find_spec("orchestr8._execution._control") is None,
    reason="needs the control loop that applies requests other processes record (slice A)",
)

STARTED = re.compile(r"execution ([0-9a-f]{32}) started")


def orchestr8(*args: str) -> list[str]:
    return [sys.executable, "-m", "orchestr8", *args]


def read_until(stream: IO[str] | None, pattern: str, seen: list[str], deadline: float) -> str:
    """Read lines of a process's stream until one contains `pattern`; return that line."""
    assert stream is not None
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        seen.append(line)
        if pattern in line:
            return str(line)
    raise AssertionError(f"{pattern!r} never came; got:\n{''.join(seen)}")


@needs_control_loop
def test_approve_from_a_second_process_while_run_waits(tmp_path: Path) -> None:
    """Not a terminal: `run` says how to answer; `approve` in another process lets it finish."""
    workflow, journal = tmp_path / "sign.json", tmp_path / "journal.db"
    workflow.write_text(json.dumps(SIGN_ONLY))
    first = subprocess.Popen(
        orchestr8("run", str(workflow), "--journal", str(journal), "--json"),
        cwd=tmp_path,
        env=environment(tmp_path),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        seen: list[str] = []
        deadline = time.monotonic() + 30
        match = STARTED.search(read_until(first.stderr, "started", seen, deadline))
        assert match is not None
        execution_id = match.group(1)
        hint = read_until(first.stderr, "answer it:", seen, deadline)
        assert f"orchestr8 approve --journal {journal} {execution_id} sign" in hint
        answered = cli(
            "approve",
            execution_id[:8],
            "sign",
            "--input",
            "amount=12",
            "--by",
            "ada",
            "--journal",
            str(journal),
            cwd=tmp_path,
        )
        assert answered.returncode == 0, answered.stderr
        assert "the process running it applies it" in answered.stdout
        out, err = first.communicate(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 0, err
    result = json.loads(out)
    assert result["output"]["approved"] is True
    assert result["output"]["input"]["amount"] == 12
    assert result["output"]["by"] == "ada"


def test_the_prompt_on_a_terminal_asks_again_until_the_input_fits(tmp_path: Path) -> None:
    """Through a pseudo-terminal: y, an amount too small, asked again, then one that fits."""
    import pty

    workflow, journal = tmp_path / "sign.json", tmp_path / "journal.db"
    workflow.write_text(json.dumps(SIGN_ONLY))
    pid, terminal = pty.fork()
    if pid == 0:  # the child: `orchestr8 run` with the pty as its terminal
        os.chdir(tmp_path)
        os.execve(
            sys.executable,
            orchestr8("run", str(workflow), "--journal", str(journal), "--json"),
            environment(tmp_path),
        )
    shown = ""
    deadline = time.monotonic() + 30

    def wait_for(text: str) -> None:
        nonlocal shown
        while text not in shown:
            assert time.monotonic() < deadline, f"{text!r} never came; got:\n{shown}"
            try:
                shown += os.read(terminal, 4096).decode(errors="replace")
            except OSError:
                break
        assert text in shown, shown

    try:
        wait_for("approve sign? [y/n] ")
        os.write(terminal, b"y\n")
        wait_for("amount (integer, required): ")
        os.write(terminal, b"5\n")
        wait_for("note (")
        os.write(terminal, b"\n")
        wait_for("5 is less than the minimum of 10")
        wait_for("amount (integer, required): ")
        os.write(terminal, b"12\n")
        os.write(terminal, b"\n")
        wait_for("approval applied")
        wait_for('"approved": true')
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(terminal)
    assert os.waitstatus_to_exitcode(status) == 0, shown


async def test_a_server_adopts_a_waiting_execution_and_an_answer_applies_at_once(
    tmp_path: Path,
) -> None:
    """`run --exit-when-waiting` leaves it waiting; the server resumes it; the answer is 200."""
    import httpx

    workflow, journal = tmp_path / "sign.json", tmp_path / "journal.db"
    workflow.write_text(json.dumps(SIGN_ONLY))
    stopped = await trio.to_thread.run_sync(
        partial(
            cli,
            "run",
            str(workflow),
            "--journal",
            str(journal),
            "--exit-when-waiting",
            cwd=tmp_path,
        )
    )
    assert stopped.returncode == 5, stopped.stderr
    match = STARTED.search(stopped.stderr)
    assert match is not None
    execution_id = match.group(1)
    async with open_runtime(journal=journal, cancel_grace=0.2) as runtime:
        async with trio.open_nursery() as nursery:
            stop = trio.Event()
            [url] = await nursery.start(
                partial(
                    serve,
                    runtime,
                    port=0,
                    shutdown_trigger=stop.wait,
                    cancel_executions=True,
                    adopt_waiting=True,
                )
            )
            adopted = runtime.find(execution_id)
            assert adopted is not None
            async with httpx.AsyncClient(base_url=url) as client:
                response = await client.post(
                    f"/executions/{execution_id}/gates/sign",
                    json={"approve": True, "input": {"amount": 10}},
                )
            assert response.status_code == 200, response.text
            assert response.json()["gate"]["status"] == "approved"
            with trio.fail_after(10):
                result = await adopted.wait()
            assert str(result.status) == "succeeded"

            # A second one stays open at shutdown: suspended, not cancelled.
            second = await runtime.start(SIGN_ONLY)
            with trio.fail_after(10):
                await second.wait_blocked_on_gates()
            stop.set()
        record = await runtime.journal.get_execution(second.execution_id)
        assert str(record.status) == "waiting"


async def test_an_answer_over_rest_adopts_an_execution_that_started_waiting_later(
    tmp_path: Path,
) -> None:
    """Waiting since after the server started: the answer resumes it here and applies (200)."""
    import httpx

    workflow, journal = tmp_path / "sign.json", tmp_path / "journal.db"
    workflow.write_text(json.dumps(SIGN_ONLY))
    async with (
        open_runtime(journal=journal, cancel_grace=0.2) as runtime,
        trio.open_nursery() as nursery,
    ):
        stop = trio.Event()
        [url] = await nursery.start(
            partial(serve, runtime, port=0, shutdown_trigger=stop.wait, adopt_waiting=True)
        )
        stopped = await trio.to_thread.run_sync(
            partial(
                cli,
                "run",
                str(workflow),
                "--journal",
                str(journal),
                "--exit-when-waiting",
                cwd=tmp_path,
            )
        )
        assert stopped.returncode == 5, stopped.stderr
        match = STARTED.search(stopped.stderr)
        assert match is not None
        execution_id = match.group(1)
        assert runtime.find(execution_id) is None
        async with httpx.AsyncClient(base_url=url) as client:
            response = await client.post(
                f"/executions/{execution_id}/gates/sign",
                json={"approve": False, "reason": "not this one", "input": {"amount": 10}},
            )
        assert response.status_code == 200, response.text
        document = response.json()
        assert document["runner"] == "here"
        assert document["gate"]["status"] == "rejected"
        assert "resumed by this server" in document["message"]
        stop.set()

"""Running steps: what an agent raises that is no error fails its step, not the process.

The service test runs `orchestr8 serve` as a real subprocess on a loopback port.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio.testing
import trio_websocket

from orchestr8 import open_runtime
from orchestr8._errors import AgentExitError
from orchestr8._execution import _step_run as step_run
from orchestr8._execution._step_run import step_failure_for_exit
from orchestr8._observability._prometheus import prometheus_registry
from orchestr8.testing import open_event_socket

AGENTS = textwrap.dedent('''
    """Agents that raise KeyboardInterrupt themselves, as some libraries do on their own."""


    def interrupt(input):
        raise KeyboardInterrupt("from a sync agent")


    async def interrupting(input):
        raise KeyboardInterrupt("from an async agent")
''')


def interrupted_by(function: Any) -> BaseException:
    """What calling `function` raises."""
    try:
        function()
    except BaseException as error:
        return error
    raise AssertionError("nothing was raised")


def raise_keyboard_interrupt() -> None:
    raise KeyboardInterrupt


def test_a_keyboard_interrupt_raised_by_code_becomes_a_step_failure() -> None:
    """Agent code raising KeyboardInterrupt gets an AgentExitError naming it, caused by it."""
    raised = interrupted_by(raise_keyboard_interrupt)
    failure = step_failure_for_exit(raised)
    assert isinstance(failure, AgentExitError)
    assert str(failure).startswith("the agent raised KeyboardInterrupt")
    assert failure.__cause__ is raised


async def test_a_keyboard_interrupt_from_a_real_sigint_goes_on() -> None:
    """The KeyboardInterrupt trio's SIGINT handler raises in running code is let through."""

    def interrupted_by_a_signal() -> None:
        signal.raise_signal(signal.SIGINT)

    raised = interrupted_by(interrupted_by_a_signal)
    assert isinstance(raised, KeyboardInterrupt)
    assert step_failure_for_exit(raised) is None
    group = BaseExceptionGroup("nursery", [raised, RuntimeError("beside it")])
    assert step_failure_for_exit(group) is None


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`orchestr8 serve --port 0` in a subprocess that can import the agents above."""
    (tmp_path / "interrupting_agents.py").write_text(AGENTS)
    environment = {key: value for key, value in os.environ.items() if key != "ORCHESTR8_JOURNAL"}
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(tmp_path), *filter(None, [environment.get("PYTHONPATH")])]
    )
    command = [
        sys.executable,
        "-m",
        "orchestr8",
        "serve",
        "--port",
        "0",
        "--journal",
        str(tmp_path / "journal.db"),
        "--cancel-grace",
        "0.5",
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
            assert process.stdout is not None
            line = process.stdout.readline()
            assert line.startswith("orchestr8 serving on http://127.0.0.1:"), line
            yield process, line.split()[-1]
        finally:
            if process.poll() is None:
                process.kill()


async def events_until_the_end(url: str, execution_id: str) -> list[dict[str, Any]]:
    """Every event of an execution, read from its WebSocket until the server closes it."""
    events: list[dict[str, Any]] = []
    events_url = url.replace("http", "ws", 1) + f"/executions/{execution_id}/events"
    async with open_event_socket(events_url) as socket:
        while True:
            try:
                events.append(json.loads(await socket.get_message()))
            except trio_websocket.ConnectionClosed:
                return events


async def test_serve_fails_the_step_of_an_agent_raising_keyboard_interrupt_and_keeps_serving(
    service: tuple[subprocess.Popen[str], str],
) -> None:
    """Sync and async agents raising KeyboardInterrupt fail their steps; the server goes on."""
    process, url = service
    workflow = {
        "schema_version": "1.0",
        "name": "interrupting",
        "strategy": "parallel",
        "fail_fast": False,
        "defaults": {"policy": {"retry": {"max_attempts": 3}}},
        "steps": [
            {
                "id": "sync",
                "agent": {"id": "python", "config": {"callable": "interrupting_agents:interrupt"}},
            },
            {"id": "async", "agent": "interrupting_agents:interrupting"},
        ],
    }
    async with httpx.AsyncClient(base_url=url) as http:
        accepted = await http.post("/workflows/execute", json={"workflow": workflow})
        assert accepted.status_code == 202, accepted.text
        events = await events_until_the_end(url, accepted.json()["execution_id"])
        assert events[-1]["type"] == "execution.failed"
        failures = {
            event["step_id"]: event["data"]["error"]
            for event in events
            if event["type"] == "step.failed"
        }
        assert set(failures) == {"sync", "async"}
        for step_id, error in failures.items():
            assert error["type"] == "AgentExitError"
            kind = "a sync" if step_id == "sync" else "an async"
            assert error["message"] == (
                f"the agent raised KeyboardInterrupt(from {kind} agent), which would end the "
                "process; its step fails instead"
            )
        # Not retried: one attempt each.
        assert sum(event["type"] == "attempt.started" for event in events) == 2
        assert (await http.get("/health")).json()["status"] == "ok"
        echo = {
            "schema_version": "1.0",
            "name": "after",
            "steps": [{"id": "e", "agent": "echo", "input": "still here"}],
        }
        again = await http.post("/workflows/execute", json={"workflow": echo})
        after = await events_until_the_end(url, again.json()["execution_id"])
        assert after[-1]["type"] == "execution.succeeded"
    assert process.poll() is None
    process.send_signal(signal.SIGINT)
    _, stderr = await trio.to_thread.run_sync(process.communicate)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr


async def test_a_very_wide_workflow_records_its_step_metrics_under_one_step_id(
    monkeypatch: pytest.MonkeyPatch, autojump_clock: trio.testing.MockClock
) -> None:
    """Past `STEP_ID_SERIES_LIMIT` steps, durations, counts and retries share `step_id="*"`."""
    monkeypatch.setattr(step_run, "STEP_ID_SERIES_LIMIT", 2)
    retried = {"retry": {"max_attempts": 2, "initial_delay": 0.01}}
    wide = {
        "schema_version": "1.0",
        "name": "wide-metrics",
        "steps": [
            {"id": "one", "agent": "echo", "input": 1},
            {"id": "two", "agent": "echo", "input": 2},
            {"id": "three", "agent": "fail", "input": 3, "policy": retried},
        ],
    }
    narrow = {**wide, "name": "narrow-metrics", "steps": wide["steps"][:2]}
    async with open_runtime() as runtime:
        for workflow in (wide, narrow):
            await (await runtime.start(runtime.load(workflow))).wait()
    text = prometheus_registry().render()
    every = 'workflow_name="wide-metrics",step_id="*"'
    assert f'orchestr8_step_succeeded_total{{{every},agent_id="echo"}} 2' in text
    assert f'orchestr8_step_failed_total{{{every},agent_id="fail"}} 1' in text
    assert f'orchestr8_step_retries_total{{{every},agent_id="fail"}} 1' in text
    assert f'orchestr8_step_duration_seconds_count{{{every},agent_id="echo"' in text
    assert 'workflow_name="wide-metrics",step_id="one"' not in text
    # A workflow within the limit keeps a series per step.
    one = 'workflow_name="narrow-metrics",step_id="one",agent_id="echo"'
    assert f"orchestr8_step_succeeded_total{{{one}}} 1" in text

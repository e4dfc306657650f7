"""The scale-out examples: slow_chain.json, and the commands of examples/scale-out/compose.yaml.

No container runtime runs in the tests; the walk-through of docs/scale-out.md runs the same
commands as real processes (tests/acceptance/test_workers.py and the guide's own commands).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from orchestr8 import open_runtime

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
COMPOSE = Path(__file__).resolve().parents[1] / "examples" / "scale-out" / "compose.yaml"


def commands() -> list[list[str]]:
    """The `command:` lists of the compose file (flow lists of double-quoted strings: JSON)."""
    found = re.findall(r"^\s+command: (\[.*\])$", COMPOSE.read_text(), flags=re.MULTILINE)
    return [json.loads(text) for text in found]


def test_the_compose_file_runs_migrate_a_worker_and_a_server() -> None:
    """The file starts the schema, the workers and the server, each an orchestr8 command."""
    assert [command[:2] for command in commands()] == [
        ["orchestr8", "journal"],
        ["orchestr8", "worker"],
        ["orchestr8", "serve"],
    ]


@pytest.mark.parametrize("command", commands(), ids=lambda command: " ".join(command[1:3]))
def test_each_command_line_is_accepted_by_the_cli(command: list[str]) -> None:
    """Every option the file passes exists (click refuses an unknown option before --help)."""
    result = subprocess.run(
        [sys.executable, "-m", "orchestr8", *command[1:], "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "Usage: " in result.stdout


async def test_slow_chain_runs_its_five_steps_one_after_another(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """slow_chain.json runs five steps of `seconds` each in order, long enough to kill a worker."""
    async with open_runtime() as runtime:
        handle = await runtime.start(EXAMPLES / "slow_chain.json", {"seconds": 2})
        result = await handle.wait()
        events = await runtime.journal.events(handle.execution_id)
    assert result.output == {"last": "report"}
    finished = [(e.step_id, e.elapsed) for e in events if e.type == "step.succeeded"]
    assert [step for step, _ in finished] == ["fetch", "clean", "score", "rank", "report"]
    assert [elapsed for _, elapsed in finished] == pytest.approx([2, 4, 6, 8, 10], abs=1e-3)

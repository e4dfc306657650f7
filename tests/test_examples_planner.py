"""examples/planner.json runs as `orchestr8 run` against the offline fake Anthropic server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import trio

from orchestr8.testing import FakeAnthropic

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "planner.json"
REQUEST = "How do I run two tasks at once in trio?"
DISALLOWED = {"steps": [{"id": "draft", "agent": "python", "input": "${inputs.request}"}]}
PLAN = {
    "steps": [{"id": "draft", "agent": "echo", "input": "Use a nursery: ${inputs.request}"}],
    "output": "${steps.draft.output}",
}
REPLACEMENT = {
    "steps": [{"id": "archive", "agent": "echo", "input": {"archived": "${inputs.input}"}}],
    "output": "${steps.archive.output}",
}


async def orchestr8(*args: str, environment: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    """Run `python -m orchestr8 ARGS` without blocking the fake server in this process."""
    return await trio.run_process(
        [sys.executable, "-m", "orchestr8", *args],
        env=environment,
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )


def prompt(fake: FakeAnthropic, call: int) -> Any:
    return fake.requests[call].json["messages"][0]["content"]


async def test_the_planner_example_plans_is_corrected_and_replans_offline(tmp_path: Path) -> None:
    """A refused plan is fed back, the corrected one runs, the failed publish is replanned."""
    fake = FakeAnthropic()
    fake.reply_json(DISALLOWED)
    fake.reply_json(PLAN)
    fake.reply_json(REPLACEMENT)
    journal = str(tmp_path / "journal.db")
    async with fake.serve() as url:
        environment = {
            **os.environ,
            "ANTHROPIC_BASE_URL": url,
            "ANTHROPIC_API_KEY": "sk-fake",
            "NO_COLOR": "1",
        }
        environment.pop("ORCHESTR8_JOURNAL", None)
        ran = await orchestr8(
            "run",
            str(EXAMPLE),
            "--json",
            "--journal",
            journal,
            "--input",
            f"request={REQUEST}",
            environment=environment,
        )
    assert ran.returncode == 0, ran.stderr.decode()
    result = json.loads(ran.stdout)
    answer = f"Use a nursery: {REQUEST}"
    assert result["output"] == {"answer": answer, "delivery": {"archived": answer}}
    assert "Problems with your previous plan, to fix: \n" in prompt(fake, 0) + "\n"
    assert (
        "$.steps[0].agent: agent 'python' is not allowed in this plan"
        " (allowed_agents: 'echo', 'sleep')"
    ) in prompt(fake, 1)
    assert "the publishing service is down" in prompt(fake, 2)
    fake.assert_all_used()
    inspected = await orchestr8(
        "inspect", result["execution_id"], "--journal", journal, environment=environment
    )
    shown = inspected.stdout.decode()
    assert "answer plans: 2 proposed, 1 rejected" in shown
    assert "publish plans: 1 proposed, 0 rejected; replanned 1 time" in shown
    assert f"runs child execution {result['execution_id']}.publish~replan1 (succeeded)" in shown

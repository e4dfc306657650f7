"""End to end: a real `orchestr8 run` fails at a step because of an input; `orchestr8 fork` from
that step with the input changed succeeds, and the steps it kept never call their agents again.

Every agent call appends its step's id to a calls file, so the file says exactly what ran.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cli_processes import cli, environment, event_types

AGENTS = '''
def call(input):
    """Append the step's id to the calls file; a negative amount is refused."""
    with open(input["calls"], "a") as file:
        file.write(input["step"] + "\\n")
    if input.get("amount", 0) < 0:
        raise ValueError(f"the amount must not be negative, got {input['amount']}")
    return {"step": input["step"], "amount": input.get("amount")}
'''


def step(step_id: str, *depends_on: str, **extra: Any) -> dict[str, Any]:
    """A step whose agent records its call."""
    return {
        "id": step_id,
        "agent": {"id": "python", "config": {"callable": "fork_agents:call"}},
        "input": {"calls": "${inputs.calls}", "step": step_id, **extra},
        "depends_on": list(depends_on),
        "policy": {"retry": {"max_attempts": 1}},
    }


def test_fork_after_a_failure_with_a_changed_input_reuses_the_kept_steps(tmp_path: Path) -> None:
    (tmp_path / "fork_agents.py").write_text(AGENTS)
    workflow = tmp_path / "invoice.json"
    workflow.write_text(
        json.dumps(
            {
                "schema_version": "1.0",
                "name": "invoice",
                "inputs": {"type": "object"},
                "steps": [
                    step("customer"),
                    step("prices"),
                    step("charge", "customer", "prices", amount="${inputs.amount}"),
                    step("receipt", "charge"),
                ],
            }
        )
    )
    calls, journal = tmp_path / "calls.txt", tmp_path / "journal.db"
    env = environment(tmp_path, ORCHESTR8_JOURNAL=str(journal))
    run = cli(
        "run", str(workflow), "-i", f"calls={calls}", "-i", "amount=-5", "--json",
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert run.returncode == 2, run.stderr
    failed = json.loads(run.stdout)
    assert failed["steps"]["charge"]["status"] == "failed"
    assert sorted(calls.read_text().split()) == ["charge", "customer", "prices"]
    calls.write_text("")

    plan = cli("fork", failed["execution_id"][:10], "--from", "charge", "--dry-run", "--json",
               cwd=tmp_path, env=env)  # fmt: skip
    assert plan.returncode == 0, plan.stderr
    assert json.loads(plan.stdout)["kept"] == ["customer", "prices"]

    fork = cli(
        "fork", failed["execution_id"], "--from", "charge", "--input", "amount=5", "--json",
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert fork.returncode == 0, fork.stderr
    forked = json.loads(fork.stdout)
    assert forked["status"] == "succeeded"
    assert forked["steps"]["charge"]["output"] == {"step": "charge", "amount": 5}
    assert forked["steps"]["customer"]["output"] == failed["steps"]["customer"]["output"]
    # The kept steps' agents were not called again: only the fork point and its dependent ran.
    assert calls.read_text().split() == ["charge", "receipt"]
    types = event_types(journal, forked["execution_id"])
    assert types[:4] == [
        "execution.started",
        "step.succeeded",
        "step.succeeded",
        "execution.resumed",
    ]
    shown = cli("inspect", forked["execution_id"], cwd=tmp_path, env=env)
    assert f"forked from {failed['execution_id']} at seq " in shown.stdout
    assert "(from step charge)" in shown.stdout

"""`orchestr8 fork`: dry runs, refusals and forks through the command line, in this process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_main import call, no_retry, write_workflow

COUNTING = '''
import pathlib


def count(input):
    """Append the step's name to the calls file, and fail on a `bad` value."""
    with open(input["calls"], "a") as file:
        file.write(input["name"] + "\\n")
    if input.get("value") == "bad":
        raise RuntimeError("the value is bad")
    return {"name": input["name"], "value": input.get("value")}
'''


def counted(step_id: str, *depends_on: str, value: str | None = None) -> dict[str, Any]:
    """A step whose `count` call appends its id to the calls file."""
    step: dict[str, Any] = {
        "id": step_id,
        "agent": {"id": "python", "config": {"callable": "counting:count"}},
        "input": {"calls": "${inputs.calls}", "name": step_id, "value": value},
        "policy": no_retry(),
    }
    if depends_on:
        step["depends_on"] = list(depends_on)
    return step


@pytest.fixture
def failed(tmp_path: Path) -> dict[str, Any]:
    """A journal holding one execution of fetch -> check -> report that failed at check."""
    (tmp_path / "counting.py").write_text(COUNTING)
    steps = [
        counted("fetch"),
        counted("check", "fetch", value="${inputs.value}"),
        counted("report", "check"),
    ]
    workflow = write_workflow(tmp_path / "w.json", steps, inputs={"type": "object"})
    journal = tmp_path / "j.db"
    calls = tmp_path / "calls.txt"
    done = call(
        "run",
        str(workflow),
        "-i",
        f"calls={calls}",
        "-i",
        "value=bad",
        "--journal",
        str(journal),
        "--json",
        cwd=tmp_path,
    )
    assert done.code == 2, done.stderr
    calls.write_text("")
    execution_id = json.loads(done.stdout)["execution_id"]
    return {
        "root": tmp_path,
        "journal": str(journal),
        "id": execution_id,
        "calls": calls,
        "workflow": workflow,
        "steps": steps,
    }


def test_a_dry_run_prints_the_plan_and_writes_nothing(failed: dict[str, Any]) -> None:
    """Kept steps, steps run again with why, paid calls: in text and as JSON; no new execution."""
    args = ("fork", failed["id"][:8], "--from", "check", "--journal", failed["journal"])
    text = call(*args, "--dry-run", cwd=failed["root"])
    assert text.code == 0, text.stderr
    assert text.stdout.splitlines()[1:] == [
        "kept (1): fetch",
        "runs again (2):",
        "  check: the fork point",
        "  report: depends on check, which runs again",
        "paid calls made again: none",
    ]
    as_json = call(*args, "--dry-run", "--json", cwd=failed["root"])
    plan = json.loads(as_json.stdout)
    assert plan["source"] == failed["id"]
    assert plan["kept"] == ["fetch"]
    listed = call("inspect", "--journal", failed["journal"], "--json", cwd=failed["root"])
    assert len(json.loads(listed.stdout)) == 1
    assert failed["calls"].read_text() == ""


def test_a_fork_with_a_changed_input_succeeds_without_calling_kept_steps(
    failed: dict[str, Any],
) -> None:
    """The failed step and its dependent run again with the new input; inspect shows lineage."""
    done = call(
        "fork",
        failed["id"],
        "--from",
        "check",
        "--input",
        "value=good",
        "--journal",
        failed["journal"],
        "--json",
        cwd=failed["root"],
    )
    assert done.code == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "succeeded"
    assert failed["calls"].read_text() == "check\nreport\n"
    fork_id = result["execution_id"]
    assert f"execution {fork_id} forked from {failed['id']}" in done.stderr
    assert "1 of 3 steps reused, 2 run again" in done.stderr
    shown = call("inspect", fork_id, "--journal", failed["journal"], cwd=failed["root"])
    assert f"forked from {failed['id']} at seq " in shown.stdout
    assert "(from step check)" in shown.stdout
    source = call("inspect", failed["id"], "--journal", failed["journal"], cwd=failed["root"])
    assert f"forks      {fork_id}" in source.stdout
    detail = json.loads(
        call(
            "inspect", failed["id"], "--journal", failed["journal"], "--json", cwd=failed["root"]
        ).stdout
    )
    assert detail["forks"] == [fork_id]
    assert detail["forked_from"] is None


def test_a_changed_kept_step_in_another_workflow_is_refused_with_a_diff(
    failed: dict[str, Any],
) -> None:
    """--workflow with a kept step changed exits 1, naming the step and showing the change."""
    steps = [dict(step) for step in failed["steps"]]
    steps[0]["input"] = {**steps[0]["input"], "value": "changed"}
    changed = write_workflow(failed["root"] / "changed.json", steps, inputs={"type": "object"})
    done = call(
        "fork",
        failed["id"],
        "--from",
        "check",
        "--workflow",
        str(changed),
        "--journal",
        failed["journal"],
        cwd=failed["root"],
    )
    assert done.code == 1
    assert "the workflow changed for step(s) the fork would keep: fetch" in done.stderr
    assert '+    "value": "changed"' in done.stderr
    assert failed["calls"].read_text() == ""


def test_bad_fork_points_and_inputs_exit_1_with_the_problem(failed: dict[str, Any]) -> None:
    """An unknown step and an input through a non-object are named; nothing is written."""
    base = ("fork", failed["id"], "--journal", failed["journal"])
    unknown = call(*base, "--from", "nope", cwd=failed["root"])
    assert unknown.code == 1
    assert "error: --from nope: no step 'nope' in the workflow (fetch, check, report)" in (
        unknown.stderr
    )
    nested = call(*base, "--from", "check", "--input", "value.x=1", cwd=failed["root"])
    assert nested.code == 1
    assert "$.inputs.value: is not an object, so value.x cannot be set in it" in nested.stderr
    assert "the workflow's inputs schema" in nested.stderr
    assert "redacted" not in nested.stderr
    missing = call("fork", "zzz", "--from", "a", "--journal", failed["journal"], cwd=failed["root"])
    assert missing.code == 1
    assert "no execution 'zzz'" in missing.stderr


def test_a_redacted_input_must_be_given_again(tmp_path: Path) -> None:
    """An input the journal redacted is asked for with --input, then the fork runs with it."""
    workflow = write_workflow(
        tmp_path / "w.json",
        [{"id": "a", "agent": "echo", "input": "${inputs.api_key}"}],
        inputs={"type": "object"},
    )
    journal = str(tmp_path / "j.db")
    done = call(
        "run", str(workflow), "-i", "api_key=s3cret-1", "--journal", journal, "--json", cwd=tmp_path
    )
    source = json.loads(done.stdout)["execution_id"]
    for dry_run in ((), ("--dry-run",)):
        asked = call("fork", source, "--from", "a", "--journal", journal, *dry_run, cwd=tmp_path)
        assert asked.code == 1
        assert "give inputs the journal redacted again with --input NAME=VALUE" in asked.stderr
    forked = call(
        "fork", source, "--from", "a", "-i", "api_key=s3cret-2", "--journal", journal, cwd=tmp_path
    )
    assert forked.code == 0, forked.stderr

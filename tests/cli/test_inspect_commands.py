"""`inspect`, `validate` and `resume` with sub-workflows: real `orchestr8` processes."""

from __future__ import annotations

import json
from pathlib import Path

from cli_processes import cli
from event_scripts import Script

from orchestr8._cli._views import execution_detail, render_execution_detail
from orchestr8._journal._gate_views import refused_answers
from orchestr8._journal._records import ExecutionRecord
from orchestr8._journal._replay import replay
from orchestr8._journal._requests import ControlRequest, RequestKind

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

REFUSED = ControlRequest(
    1,
    "run-1",
    RequestKind.ANSWER,
    "g",
    {"approve": True, "by": "ann"},
    "2030-01-01T11:00:00.000Z",
    outcome="refused",
    detail="gate 'g' was timed out already",
)


def test_inspect_names_each_child_and_each_child_its_parent(tmp_path: Path) -> None:
    """The parent's steps table is followed by one line per child, with the command to see it;
    the list shows top-level executions unless told `--children`."""
    journal = str(tmp_path / "journal.db")
    example = str(EXAMPLES / "sub_workflow.json")
    assert cli("validate", example, cwd=tmp_path).returncode == 0
    done = cli("run", example, "--journal", journal, "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    parent_id = json.loads(done.stdout)["execution_id"]
    review_id = f"{parent_id}.review"

    shown = cli("inspect", parent_id[:6], "--journal", journal, cwd=tmp_path).stdout
    assert (
        f"  review runs child execution {review_id} (succeeded): orchestr8 inspect --journal"
        f" {journal} {review_id}" in shown
    )
    assert f"  publish runs child execution {parent_id}.publish (succeeded)" in shown

    child = cli("inspect", review_id, "--journal", journal, cwd=tmp_path).stdout
    assert f"parent     {parent_id} (step review)\n" in child

    detail = json.loads(
        cli("inspect", parent_id, "--journal", journal, "--json", cwd=tmp_path).stdout
    )
    assert detail["parent"] is None
    assert detail["steps"]["review"]["child"] == {"execution_id": review_id, "status": "succeeded"}
    assert "child" not in detail["steps"]["draft"]
    listed = json.loads(cli("inspect", "--journal", journal, "--json", cwd=tmp_path).stdout)
    assert [item["execution_id"] for item in listed] == [parent_id]
    every = cli("inspect", "--journal", journal, "--json", "--children", cwd=tmp_path).stdout
    assert {item["execution_id"]: item["parent_id"] for item in json.loads(every)} == {
        parent_id: None,
        review_id: parent_id,
        f"{parent_id}.publish": parent_id,
    }
    refused = cli("inspect", parent_id, "--children", "--journal", journal, cwd=tmp_path)
    assert refused.returncode == 1
    assert "--children apply to the list, not to one execution" in refused.stderr


def test_the_list_narrows_by_workflow_and_id_prefix(tmp_path: Path) -> None:
    """`--workflow NAME` and `--id-prefix HEX` keep the matching executions; bad ones exit 1."""
    journal = str(tmp_path / "journal.db")
    example = str(EXAMPLES / "sub_workflow.json")
    done = cli("run", example, "--journal", journal, "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    parent_id = json.loads(done.stdout)["execution_id"]
    name = json.loads(Path(example).read_text())["name"]

    def listed(*options: str) -> list[str]:
        shown = cli("inspect", "--journal", journal, "--json", *options, cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr
        return [item["execution_id"] for item in json.loads(shown.stdout)]

    assert listed("--workflow", name) == [parent_id]
    assert listed("--id-prefix", parent_id[:5], "--workflow", name) == [parent_id]
    assert listed("--workflow", "elsewhere") == []
    empty = cli(
        "inspect",
        "--journal",
        journal,
        "--workflow",
        "elsewhere",
        "--status",
        "failed",
        cwd=tmp_path,
    )
    assert empty.stdout == "no executions with status failed of workflow 'elsewhere'\n"
    bad = cli("inspect", "--journal", journal, "--id-prefix", "XYZ", cwd=tmp_path)
    assert bad.returncode == 1
    assert "--id-prefix 'XYZ': expected 1 to 32 lowercase hex characters" in bad.stderr
    one = cli("inspect", parent_id, "--workflow", name, "--journal", journal, cwd=tmp_path)
    assert one.returncode == 1
    assert "--workflow and --id-prefix apply to the list, not to one execution" in one.stderr


def test_resuming_a_child_directly_is_refused_naming_its_parent(tmp_path: Path) -> None:
    """`resume CHILD` exits 1 and says to resume the parent, which resumes the child."""
    journal = str(tmp_path / "journal.db")
    done = cli(
        "run", str(EXAMPLES / "sub_workflow.json"), "--journal", journal, "--json", cwd=tmp_path
    )
    parent_id = json.loads(done.stdout)["execution_id"]
    refused = cli("resume", f"{parent_id}.review", "--journal", journal, cwd=tmp_path)
    assert refused.returncode == 1
    assert f"resume {parent_id}, which resumes it" in refused.stderr


def test_inspect_counts_plans_under_the_steps_table() -> None:
    """A step that planned gets a line with its plans, refusals and replans; --json has them."""
    record = ExecutionRecord("run-1", "planning", {"steps": [{"id": "a"}, {"id": "b"}]})
    script = Script().add("execution.started").add("step.started", "a")
    script.add("plan.proposed", "a", 1, plan=3)
    script.add("plan.rejected", "a", 1, problems=["$: not an object"])
    script.add("plan.proposed", "a", 2, plan={"steps": []})
    script.add("step.started", "b").add("step.replanned", "b", replan=1, child_id="run-1.b~1")
    script.add("step.replanned", "b", replan=2, child_id="run-1.b~2")
    detail = execution_detail(record, script.events)
    assert detail["steps"]["a"]["plans"] == {"proposed": 2, "rejected": 1, "replans": 0}
    assert detail["steps"]["b"]["plans"] == {"proposed": 0, "rejected": 0, "replans": 2}
    shown = render_execution_detail(detail, color=False).splitlines()
    assert "  a plans: 2 proposed, 1 rejected" in shown
    assert "  b replanned 2 times" in shown


def test_inspect_shows_an_expired_gate_and_each_refused_answer() -> None:
    """The GATES row says expired and what a resume does; a line per refused answer follows."""
    record = ExecutionRecord("run-1", "gated", {"steps": [{"id": "g"}]})
    script = Script().add("execution.started").add("step.started", "g", agent="approval")
    script.add(
        "gate.opened",
        "g",
        prompt="ok?",
        on_timeout="approve",
        timeout=1,
        deadline="2025-01-01T00:00:03.000Z",
    )
    script.add("execution.waiting", gates=["g"])
    refused = refused_answers([REFUSED])
    detail = execution_detail(record, script.events, refused=refused)
    assert detail["steps"]["g"]["status"] == "waiting"
    assert detail["gates"]["g"]["expired"] is True
    assert detail["refused_answers"] == refused
    shown = render_execution_detail(detail, color=False)
    (row,) = [line for line in shown.splitlines() if line.startswith("g ") and "expired" in line]
    assert row.endswith("timed out; resolves as approved when resumed")
    assert "  approval #1 of gate g by ann was refused: gate 'g' was timed out already" in shown
    assert replay(script.events).gates["g"].is_open

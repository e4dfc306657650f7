"""`_resumption`: what a resume reuses from the journal, and what it runs again and why."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from event_scripts import Script

from orchestr8._agents._contract import Agent
from orchestr8._agents._registry import AgentRegistry
from orchestr8._errors import ExecutionStateError
from orchestr8._execution._admission import AdmittedWorkflows, WorkflowLike
from orchestr8._execution._resumption import plan_resume
from orchestr8._journal._journal import ExecutionRecord
from orchestr8._workflow._document import Workflow

DOCUMENT: dict[str, Any] = {
    "schema_version": "1.0",
    "name": "chain",
    "steps": [
        {"id": "a", "agent": "echo", "input": "A"},
        {"id": "b", "agent": "echo", "input": "${steps.a.output}", "depends_on": ["a"]},
        {"id": "c", "agent": "echo", "input": "${steps.b.output}", "depends_on": ["b"]},
    ],
}
RECORD = ExecutionRecord("run-1", "chain", DOCUMENT)


def admit(workflow: WorkflowLike) -> tuple[Workflow, Mapping[str, Agent]]:
    """The runtime's admission, with the built-in agents."""
    return AdmittedWorkflows(AgentRegistry()).admit(workflow)


def test_succeeded_steps_are_reused_and_the_rest_run_again() -> None:
    """A step that succeeded keeps its output; a failed or unreached one is not reused."""
    script = Script().add("execution.started")
    script.add("step.succeeded", "a", output="A")
    script.add("step.failed", "b", error={"type": "X", "message": "x"})
    script.add("execution.failed", error={"type": "X", "message": "x"})
    plan = plan_resume(RECORD, script.events, admit, None)
    assert plan.completed == {"a": "A"}
    assert plan.redacted_outputs == ()
    assert plan.state.last_seq == 4


def test_a_step_whose_output_was_journaled_redacted_is_planned_to_run_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """`output_redacted` keeps a step out of the reused outputs; the warning names it and why."""
    script = Script().add("execution.started")
    script.add("step.succeeded", "a", output={"k": "***"}, output_redacted=True)
    script.add("step.succeeded", "b", output={"k": "***"})
    script.add("step.failed", "c", error={"type": "X", "message": "x"})
    script.add("execution.failed", error={"type": "X", "message": "x"})
    plan = plan_resume(RECORD, script.events, admit, None)
    assert plan.completed == {"b": {"k": "***"}}
    assert plan.redacted_outputs == ("a",)
    with caplog.at_level("WARNING", logger="orchestr8.runtime"):
        plan.warn()
    assert [record.getMessage() for record in caplog.records] == [
        "execution run-1 runs a again: the journal holds its output redacted (it held a "
        "secret), and a resume reuses only outputs recorded as they were"
    ]


def test_a_succeeded_execution_has_nothing_to_resume() -> None:
    """Planning the resume of a succeeded execution is refused, naming it."""
    script = Script().add("execution.started").add("execution.succeeded", output=None)
    with pytest.raises(ExecutionStateError, match="run-1 already succeeded"):
        plan_resume(RECORD, script.events, admit, None)

"""Approval steps in the AST: the `approval` kind, checked at load with JSON paths, and answers."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from orchestr8._errors import WorkflowValidationError
from orchestr8._workflow._approvals import (
    APPROVAL_AGENT_ID,
    Approval,
    answer_problems,
    approval_problems,
    raw_approval_problems,
    with_defaults,
)
from orchestr8._workflow._codec import load_workflow, workflow_to_json
from orchestr8._workflow._document import workflow_schema

GATED: dict[str, Any] = {
    "schema_version": "1.1",
    "name": "gated",
    "steps": [
        {"id": "draft", "agent": "echo", "input": "a plan"},
        {
            "id": "review",
            "depends_on": ["draft"],
            "approval": {
                "prompt": "Ship ${steps.draft.output}?",
                "schema": {
                    "type": "object",
                    "properties": {"amount": {"type": "integer", "minimum": 1}},
                },
                "timeout": 60,
                "on_timeout": "fail",
            },
        },
        {
            "id": "ship",
            "agent": "echo",
            "depends_on": ["review"],
            "when": "steps.review.output.approved",
        },
    ],
}


def problems_of(document: dict[str, Any]) -> list[str]:
    """Every problem loading `document` reports, as `path: message`."""
    with pytest.raises(WorkflowValidationError) as caught:
        load_workflow(document)
    return [f"{problem.path}: {problem.message}" for problem in caught.value.problems]


def with_gate(approval: Any, **step: Any) -> dict[str, Any]:
    """The gated document with the review step's approval replaced (and other fields set)."""
    document = copy.deepcopy(GATED)
    document["steps"][1]["approval"] = approval
    document["steps"][1].update(step)
    return document


def test_an_approval_step_loads_with_its_prompt_template_and_defaults() -> None:
    """approval becomes an Approval whose prompt keeps its references; on_timeout: reject."""
    workflow = load_workflow(GATED)
    approval = workflow.steps_by_id["review"].approval
    assert approval is not None
    assert approval.timeout == 60.0
    assert approval.on_timeout == "fail"
    assert approval.prompt.render({}, {"draft": "v2"}) == "Ship v2?"
    assert Approval(prompt="ok").on_timeout == "reject"
    assert Approval(prompt="ok").timeout is None


def test_a_workflow_with_a_gate_writes_back_as_it_was_read() -> None:
    """workflow_to_json gives the approval back as written."""
    written = workflow_to_json(load_workflow(GATED))
    assert written["steps"][1]["approval"]["prompt"] == "Ship ${steps.draft.output}?"
    assert load_workflow(written) == load_workflow(GATED)


def test_the_schema_describes_the_approval_field() -> None:
    """The generated JSON Schema has the approval object with its on_timeout choices."""
    schema = workflow_schema()
    assert schema["$defs"]["Step"]["properties"]["approval"]["anyOf"][0] == {
        "$ref": "#/$defs/Approval"
    }
    on_timeout = schema["$defs"]["Approval"]["properties"]["on_timeout"]
    assert on_timeout["enum"] == ["reject", "approve", "fail"]


@pytest.mark.parametrize("timeout", [0, -1, -0.5])
def test_a_timeout_must_be_a_positive_number_of_seconds(timeout: float) -> None:
    """0 or a negative timeout is refused at its JSON path."""
    document = with_gate({"prompt": "ok", "timeout": timeout})
    assert problems_of(document) == [
        "$.steps[1].approval.timeout: must be a positive number of seconds"
    ]


@pytest.mark.parametrize(
    ("schema", "shown"),
    [({"type": "string"}, '"string"'), ({"type": ["array", "null"]}, '["array", "null"]')],
)
def test_a_schema_must_describe_an_object(schema: dict[str, Any], shown: str) -> None:
    """An answer's input is always an object: a schema of another type is refused at load."""
    document = with_gate({"prompt": "ok", "schema": schema})
    assert problems_of(document) == [
        f'$.steps[1].approval.schema.type: must describe an object (type "object" or no type), '
        f"not {shown}: an answer's input is always an object, so no approval could fit"
    ]


@pytest.mark.parametrize(
    "schema", [{}, {"type": "object"}, {"type": ["object", "null"]}, {"required": ["x"]}]
)
def test_a_schema_of_an_object_or_of_no_type_loads(schema: dict[str, Any]) -> None:
    """No type, "object", or a list holding it: the schema fits an answer's input."""
    assert load_workflow(with_gate({"prompt": "ok", "schema": schema})).steps[1].approval


def test_a_schema_must_be_a_valid_json_schema() -> None:
    """The answer's schema is checked against the meta-schema, at its path."""
    document = with_gate({"prompt": "ok", "schema": {"type": "objekt"}})
    (problem,) = problems_of(document)
    assert problem.startswith("$.steps[1].approval.schema.type: ")


def test_on_timeout_is_one_of_the_three() -> None:
    """on_timeout other than reject, approve, fail is refused by the schema."""
    (problem,) = problems_of(with_gate({"prompt": "ok", "on_timeout": "ignore"}))
    assert problem.startswith("$.steps[1].approval.on_timeout: ")
    assert "'reject'" in problem


def test_an_approval_step_has_no_agent_and_no_retry_breaker_or_timeout() -> None:
    """agent, workflow or plan besides approval, and the call policies, are refused."""
    document = with_gate(
        {"prompt": "ok"},
        agent="echo",
        policy={"retry": {"max_attempts": 2}, "timeout": 3, "circuit_breaker": None},
    )
    assert problems_of(document) == [
        "$.steps[1]: an approval step asks a person: it has no agent, workflow or plan",
        "$.steps[1].policy.circuit_breaker: an approval step makes no call: it takes no"
        " circuit_breaker (remove it)",
        "$.steps[1].policy.retry: an approval step makes no call: it takes no retry (remove it)",
        "$.steps[1].policy.timeout: an approval step makes no call: it takes no timeout"
        " (remove it)",
    ]


def test_an_approval_step_is_not_replanned() -> None:
    """on_error replan on a gate is refused; continue is fine."""
    replan = {"replan": {"agent": "echo", "allowed_agents": ["echo"]}}
    assert problems_of(with_gate({"prompt": "ok"}, on_error=replan)) == [
        "$.steps[1].on_error: an approval step cannot be replanned: on_error is fail or continue"
    ]
    load_workflow(with_gate({"prompt": "ok"}, on_error="continue"))


def test_approval_needs_schema_version_1_1() -> None:
    """A 1.0 document may not hold an approval step."""
    document = {
        "schema_version": "1.0",
        "name": "old",
        "steps": [{"id": "gate", "approval": {"prompt": "ok"}}],
    }
    assert problems_of(document) == [
        '$.steps[0].approval: "approval" needs schema_version "1.1" (this document says "1.0")'
    ]


def test_the_prompt_references_are_checked_like_an_input() -> None:
    """A prompt reading a step that is not a dependency is refused at the prompt's path."""
    document = with_gate({"prompt": "Ship ${steps.ship.output}?"})
    (problem,) = problems_of(document)
    assert problem.startswith("$.steps[1].approval.prompt: ")


def test_raw_checks_find_gate_problems_next_to_schema_errors() -> None:
    """When the schema finds errors elsewhere, the gate's own checks still report."""
    document = with_gate({"prompt": "ok", "timeout": -3})
    document["steps"][0]["agent"] = 5
    problems = problems_of(document)
    assert "$.steps[1].approval.timeout: must be a positive number of seconds" in problems
    assert raw_approval_problems({"approval": "x"}, 0, "1.1") == []
    assert approval_problems(0, "1.1", None, runs=True, policy_fields=(), replans=True) == []
    assert raw_approval_problems({"approval": {}}, 0, None) == []


def test_a_gate_may_run_per_item_and_per_iteration() -> None:
    """for_each and repeat are allowed on an approval step; its agent id is approval."""
    document = with_gate({"prompt": "item ${item}"}, for_each="['a', 'b']")
    assert load_workflow(document).steps_by_id["review"].for_each is not None
    looped = with_gate(
        {"prompt": "round ${iteration}"},
        repeat={"until": "output.approved", "max_iterations": 3},
    )
    assert load_workflow(looped).steps_by_id["review"].repeat is not None
    assert APPROVAL_AGENT_ID == "approval"


def test_answers_are_checked_against_the_gate() -> None:
    """approve is a boolean, an approval's input matches the schema, reason and by strings."""
    approval = load_workflow(GATED).steps_by_id["review"].approval
    assert approval is not None
    assert answer_problems(approval, {"approve": True, "input": {"amount": 3}}) == []
    assert answer_problems(approval, {"approve": False, "input": None, "reason": "no"}) == []
    (small,) = answer_problems(approval, {"approve": True, "input": {"amount": 0}})
    assert small.path == "$.input.amount"
    # Only an approval owes the schema: a rejection's (or a malformed answer's) input is kept.
    assert answer_problems(approval, {"approve": False, "input": {"amount": 0}}) == []
    found = answer_problems(approval, {"approve": "yes", "input": {"amount": 0}, "by": 3})
    paths = [problem.path for problem in found]
    assert paths == ["$.approve", "$.by"]
    (wrong,) = answer_problems(approval, {"approve": True, "input": [1]})
    assert wrong.path == "$.input"
    (not_object,) = answer_problems(approval, "yes")
    assert not_object.path == "$"
    assert answer_problems(Approval(prompt="any"), {"approve": True, "input": {"x": 1}}) == []


def test_defaults_fill_the_fields_an_answer_left_out() -> None:
    """Top-level defaults are added where absent; given values and other schemas stay as given."""
    schema = {"type": "object", "properties": {"n": {"default": 3}, "m": {"type": "integer"}}}
    assert with_defaults(schema, {}) == {"n": 3}
    assert with_defaults(schema, {"n": 5}) == {"n": 5}
    assert with_defaults(None, {"x": 1}) == {"x": 1}
    assert with_defaults({"properties": []}, {}) == {}

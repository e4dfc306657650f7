"""`_plans`: plan steps and replanning in a document, checked when it loads."""

from __future__ import annotations

from typing import Any

import pytest

from orchestr8._errors import WorkflowValidationError
from orchestr8._workflow._codec import load_workflow, workflow_to_json
from orchestr8._workflow._document import (
    DEFAULT_PLAN_DEPTH,
    PlanSpec,
    Replanning,
    Step,
    Workflow,
    workflow_schema,
)
from orchestr8._workflow._plans import replan_spec

KNOWN = {"echo", "planner", "worker"}


def known(agent_id: str) -> bool:
    return agent_id in KNOWN


def document(version: str = "1.1", **step: Any) -> dict[str, Any]:
    """A workflow with a step `first` and a step `second` built from `step`."""
    return {
        "schema_version": version,
        "name": "plans",
        "steps": [{"id": "first", "agent": "echo"}, {"id": "second", **step}],
    }


PLAN = {"agent": "planner", "input": "${steps.first.output}", "allowed_agents": ["worker"]}


def problems_of(doc: dict[str, Any]) -> list[str]:
    with pytest.raises(WorkflowValidationError) as raised:
        load_workflow(doc, agent_exists=known)
    return [str(problem) for problem in raised.value.problems]


def test_a_plan_step_loads_with_its_defaults_and_round_trips() -> None:
    """plan becomes a PlanSpec (max_depth 3 by default); the codec writes it back unchanged."""
    workflow = load_workflow(document(plan=PLAN, depends_on=["first"]), agent_exists=known)
    spec = workflow.steps[1].plan
    assert spec is not None
    assert spec.agent.id == "planner"
    assert spec.allowed_agents == ("worker",)
    assert spec.max_depth == DEFAULT_PLAN_DEPTH
    assert workflow.steps[1].agent is None
    assert load_workflow(workflow_to_json(workflow)) == workflow


def test_on_error_takes_a_replanning_object_and_round_trips() -> None:
    """on_error is fail, continue, or {replan, max_replans} (max_replans 1 by default)."""
    workflow = load_workflow(
        document(
            agent="echo", on_error={"replan": {"agent": "planner", "allowed_agents": ["echo"]}}
        ),
        agent_exists=known,
    )
    step = workflow.steps[1]
    assert isinstance(step.on_error, Replanning)
    assert step.on_error.max_replans == 1
    assert replan_spec(step) == step.on_error.replan
    assert replan_spec(workflow.steps[0]) is None
    assert load_workflow(workflow_to_json(workflow)) == workflow


def test_plan_and_replan_need_schema_version_1_1() -> None:
    """In a 1.0 document both fields are problems at their paths."""
    replan = {"replan": {"agent": "planner", "allowed_agents": ["echo"]}}
    assert problems_of(document("1.0", plan=PLAN, depends_on=["first"])) == [
        '$.steps[1].plan: "plan" needs schema_version "1.1" (this document says "1.0")'
    ]
    assert problems_of(document("1.0", agent="echo", on_error=replan)) == [
        '$.steps[1].on_error: "replan" needs schema_version "1.1" (this document says "1.0")'
    ]


def test_a_plan_step_runs_nothing_else_and_its_references_are_dependencies() -> None:
    """A plan with an agent is refused; the planner's input reads only dependencies."""
    assert problems_of(document(plan=PLAN, agent="echo")) == [
        "$.steps[1]: a step runs an agent, a workflow or a plan: only one of them",
        "$.steps[1].plan.input: ${steps.first.output} refers to step 'first', which step"
        " 'second' does not depend on (add 'first' to depends_on)",
    ]


def test_planner_and_allowed_agents_must_be_known() -> None:
    """Unknown planner or allowed agent ids are problems where they are written."""
    plan = {"agent": {"id": "ghost"}, "allowed_agents": ["worker", "nobody"]}
    replan = {"replan": {"agent": "phantom", "allowed_agents": ["echo"]}}
    found = problems_of(document(plan=plan, on_error=replan))
    assert "$.steps[1].plan.agent.id: unknown agent 'ghost'" in found
    assert "$.steps[1].plan.allowed_agents[1]: unknown agent 'nobody'" in found
    assert "$.steps[1].on_error.replan.agent: unknown agent 'phantom'" in found


def test_bad_plan_fields_are_located() -> None:
    """Empty or repeated allowed_agents, a depth or replan count below 1, a bad on_error word."""
    plan = {"agent": "planner", "allowed_agents": [], "max_depth": 0}
    assert problems_of(document(plan=plan)) == [
        "$.steps[1].plan.allowed_agents: must not be empty",
        "$.steps[1].plan.max_depth: must be at least 1, got 0",
    ]
    twice = {"agent": "planner", "allowed_agents": ["echo", "echo"]}
    assert "$.steps[1].plan.allowed_agents[1]: 'echo' is listed twice" in problems_of(
        document(plan=twice)
    )
    assert problems_of(document(agent="echo", on_error="retry")) == [
        "$.steps[1].on_error: expected one of 'fail', 'continue' or an object, got 'retry'"
    ]


def test_the_schema_describes_plans_and_replanning() -> None:
    """`orchestr8 schema` has PlanSpec and Replanning, and on_error's third form."""
    schema = workflow_schema()
    assert set(schema["$defs"]["PlanSpec"]["required"]) == {"agent", "allowed_agents"}
    assert schema["$defs"]["Replanning"]["required"] == ["replan"]
    on_error = schema["$defs"]["Step"]["properties"]["on_error"]
    assert on_error["anyOf"][1] == {"$ref": "#/$defs/Replanning"}


def test_a_workflow_built_in_python_refuses_repeated_allowed_agents() -> None:
    """Without the codec's schema check, the AST itself names the repeat."""
    planned = Step(
        id="p", plan=PlanSpec(agent="planner", allowed_agents=("echo", "echo")), input={}
    )
    with pytest.raises(WorkflowValidationError) as raised:
        Workflow(name="python-built", steps=[planned])
    assert [str(problem) for problem in raised.value.problems] == [
        "$.steps[0].plan.allowed_agents[1]: 'echo' is listed twice"
    ]


def test_a_planner_config_takes_no_secrets() -> None:
    """Secrets are bound into step agents only: one in a planner's config is refused, located."""
    plan = {
        "agent": {"id": "planner", "config": {"api_key": "${secrets.KEY}"}},
        "allowed_agents": ["echo"],
    }
    assert problems_of(document(plan=plan)) == [
        "$.steps[1].plan.agent.config.api_key: ${secrets.KEY}: a planner's config takes no"
        " secrets (give the agent its secret through its environment, e.g. ANTHROPIC_API_KEY"
        " for llm)"
    ]


def test_a_loop_step_cannot_be_replanned() -> None:
    """repeat with on_error.replan is refused: the loop, not an iteration, would need replacing."""
    replan = {"replan": {"agent": "planner", "allowed_agents": ["echo"]}}
    repeat = {"until": "iteration >= `2`", "max_iterations": 3}
    assert problems_of(document(agent="echo", repeat=repeat, on_error=replan)) == [
        "$.steps[1].on_error: a loop step (repeat) cannot be replanned: run the loop in a"
        " sub-workflow step and replan that step"
    ]

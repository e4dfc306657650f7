"""`_plan_fragments`: the fragment a planner returns, held to the document and the plan rules."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestr8._errors import PlanRejectedError
from orchestr8._workflow._document import PlanSpec
from orchestr8._workflow._plan_fragments import check_plan, plan_fragment, plan_workflow_name

AGENTS = ("alpha", "beta", "gamma", "delta")
SPEC = PlanSpec(agent="planner", allowed_agents=("alpha", "beta"), max_depth=2)


def known(agent_id: str) -> bool:
    return agent_id in (*AGENTS, "planner")


def refusal(output: Any, spec: PlanSpec = SPEC) -> list[str]:
    with pytest.raises(PlanRejectedError) as raised:
        check_plan(output, spec, name="w/s", agent_exists=known)
    return [str(problem) for problem in raised.value.problems]


def test_the_fragment_is_the_output_or_an_llm_replys_json_or_text() -> None:
    """steps at the top level, else an llm reply's json, else its text parsed as JSON."""
    fragment: dict[str, Any] = {"steps": []}
    assert plan_fragment(fragment) is fragment
    assert plan_fragment({"text": "{}", "json": fragment}) is fragment
    assert plan_fragment({"text": '{"steps": [1]}'}) == {"steps": [1]}
    assert plan_fragment({"text": "not json"}) == {"text": "not json"}
    assert plan_fragment({"other": 1}) == {"other": 1}
    assert plan_fragment("text") == "text"


def test_a_valid_plan_becomes_a_workflow_named_after_its_step() -> None:
    """The engine supplies name and schema version; the fragment's own fields are kept."""
    workflow = check_plan(
        {"description": "d", "strategy": "sequential", "steps": [{"id": "a", "agent": "alpha"}]},
        SPEC,
        name=plan_workflow_name("parent", "step"),
        agent_exists=known,
    )
    assert workflow.name == "parent/step"
    assert workflow.schema_version == "1.1"
    assert workflow.strategy == "sequential"


def test_a_plan_without_steps_or_with_foreign_keys_is_refused() -> None:
    """Missing steps, and name, schema_version or unknown keys, are each named."""
    assert refusal({"name": "x", "schema_version": "1.1", "extra": 1}) == [
        "$: missing required key 'steps'",
        "$.extra: unknown key 'extra' (a plan holds description, strategy, max_concurrency,"
        " fail_fast, defaults, timeout, steps, output)",
        "$.name: a plan has no name: the engine gives it one",
        "$.schema_version: a plan has no schema_version: the engine gives it one",
    ]


def test_a_nested_planner_must_use_allowed_agents_and_is_given_the_depth_left() -> None:
    """Its planner and allowed_agents must be allowed outside; its max_depth is lowered."""
    nested = {"agent": "gamma", "allowed_agents": ["alpha", "delta"]}
    found = refusal({"steps": [{"id": "a", "plan": nested}]})
    assert found == [
        "$.steps[0].plan.agent: agent 'gamma' is not allowed in this plan"
        " (allowed_agents: 'alpha', 'beta')",
        "$.steps[0].plan.allowed_agents[1]: agent 'delta' is not allowed in this plan"
        " (allowed_agents: 'alpha', 'beta')",
    ]
    replan = {"replan": {"agent": "alpha", "allowed_agents": ["beta"], "max_depth": 5}}
    workflow = check_plan(
        {"steps": [{"id": "a", "agent": "beta", "on_error": replan}]},
        SPEC,
        name="w",
        agent_exists=known,
    )
    on_error: Any = workflow.steps[0].on_error
    assert on_error.replan.max_depth == 1
    shallow = PlanSpec(agent="planner", allowed_agents=("alpha",), max_depth=1)
    assert refusal({"steps": [{"id": "a", "agent": "alpha", "on_error": replan}]}, shallow) == [
        "$.steps[0].on_error.replan: plans nest deeper than 1 level: this plan may hold no planner"
    ]


@given(
    st.lists(st.sampled_from(AGENTS), min_size=1, max_size=6),
    st.sets(st.sampled_from(AGENTS), min_size=1),
)
def test_a_plan_passes_exactly_when_every_agent_it_runs_is_allowed(
    used: list[str], allowed: set[str]
) -> None:
    """For any agents used and allowed: refused iff one is not allowed, each one named."""
    spec = PlanSpec(agent="planner", allowed_agents=tuple(sorted(allowed)))
    steps = [{"id": f"s{index}", "agent": agent} for index, agent in enumerate(used)]
    outside = [index for index, agent in enumerate(used) if agent not in allowed]
    if outside:
        with pytest.raises(PlanRejectedError) as raised:
            check_plan({"steps": steps}, spec, name="w", agent_exists=known)
        assert [problem.path for problem in raised.value.problems] == [
            f"$.steps[{index}].agent" for index in outside
        ]
    else:
        workflow = check_plan({"steps": steps}, spec, name="w", agent_exists=known)
        assert [step.agent.id for step in workflow.steps if step.agent] == used


def test_a_plan_step_that_is_not_an_object_is_refused_where_it_is() -> None:
    """The document rules locate a malformed step as they do in a document."""
    assert refusal({"steps": [3]}) == ["$.steps[0]: expected an object, got an integer"]


def test_a_plan_reads_no_secrets() -> None:
    """${secrets.NAME} in a plan's step inputs or agent configs is refused, each located."""
    plan = {
        "steps": [
            {
                "id": "a",
                "agent": {"id": "alpha", "config": {"key": "${secrets.TOKEN}"}},
                "input": {"leak": "${secrets.TOKEN}"},
            }
        ]
    }
    assert refusal(plan) == [
        "$.steps[0].agent.config.key: ${secrets.TOKEN}: a plan may not read secrets",
        "$.steps[0].input.leak: ${secrets.TOKEN}: a plan may not read secrets",
    ]

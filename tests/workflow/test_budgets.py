"""Budgets in the AST: `budget` on a workflow and a step, checked at load with their JSON paths."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestr8._errors import WorkflowValidationError
from orchestr8._workflow._budgets import (
    LIMIT_NAMES,
    Budget,
    budget_pauses,
    capped_workflow,
    cost_capped,
    pause_approval,
    pause_gate_id,
    raw_budget_problems,
    with_cost_cap,
)
from orchestr8._workflow._codec import load_workflow, workflow_to_json
from orchestr8._workflow._document import Step, Workflow, workflow_schema

BUDGETED: dict[str, Any] = {
    "schema_version": "1.1",
    "name": "budgeted",
    "steps": [
        {"id": "draft", "agent": "echo"},
        {"id": "review", "agent": "echo", "budget": {"max_llm_calls": 3}},
    ],
    "budget": {"max_cost_usd": 2.0, "max_input_tokens": 10000, "max_output_tokens": 2000},
}

NO_LIMIT = f"a budget sets at least one limit: {', '.join(LIMIT_NAMES)}"


def problems_of(document: Any) -> list[str]:
    """Every problem loading `document` reports, as `path: message`."""
    with pytest.raises(WorkflowValidationError) as caught:
        load_workflow(document)
    return [f"{problem.path}: {problem.message}" for problem in caught.value.problems]


def with_budgets(workflow: Any = None, step: Any = None, version: str = "1.1") -> dict[str, Any]:
    """The budgeted document with its budgets replaced (None: left out) and its version set."""
    document = copy.deepcopy(BUDGETED)
    document["schema_version"] = version
    del document["budget"], document["steps"][1]["budget"]
    if workflow is not None:
        document["budget"] = workflow
    if step is not None:
        document["steps"][1]["budget"] = step
    return document


def test_budgets_load_on_the_workflow_and_a_step() -> None:
    """A workflow and a step each carry a Budget; unset limits are None, on_exhaust fail."""
    workflow = load_workflow(BUDGETED)
    assert workflow.budget == Budget(
        max_cost_usd=2.0, max_input_tokens=10000, max_output_tokens=2000
    )
    assert workflow.budget.on_exhaust == "fail"
    assert workflow.steps_by_id["review"].budget == Budget(max_llm_calls=3)
    assert workflow.steps_by_id["draft"].budget is None


def test_budgets_round_trip_through_json() -> None:
    """Written back, a budgeted workflow is the document it was read from."""
    assert workflow_to_json(load_workflow(BUDGETED)) == BUDGETED


def test_a_budget_built_in_python_equals_the_loaded_one() -> None:
    """Budget objects in Python give the same workflow as the JSON document."""
    built = Workflow(
        name="budgeted",
        steps=(
            Step(id="draft", agent="echo"),
            Step(id="review", agent="echo", budget=Budget(max_llm_calls=3)),
        ),
        budget=Budget(max_cost_usd=2.0, max_input_tokens=10000, max_output_tokens=2000),
    )
    assert built == load_workflow(BUDGETED)


def test_limits_lists_only_the_limits_set() -> None:
    """limits() names the set limits in LIMIT_NAMES order; a zero limit is a limit."""
    assert Budget(max_llm_calls=0, max_cost_usd=1.5).limits() == {
        "max_cost_usd": 1.5,
        "max_llm_calls": 0,
    }


@pytest.mark.parametrize(
    ("budget", "problem"),
    [
        ({"max_cost_usd": -1}, "$.budget.max_cost_usd: must be at least 0, got -1"),
        ({"max_cost_usd": "2"}, "$.budget.max_cost_usd: expected a number or null, got a string"),
        ({"max_input_tokens": -5}, "$.budget.max_input_tokens: must be at least 0, got -5"),
        (
            {"max_llm_calls": 1.5},
            "$.budget.max_llm_calls: expected an integer or null, got a number",
        ),
        ({"max_output_tokens": True}, "$.budget.max_output_tokens: expected an integer or null,"),
        ({"max_llm_calls": 1, "on_exhaust": "wait"}, "$.budget.on_exhaust: expected one of"),
        ({"max_llm_calls": 1, "max_dollars": 3}, "$.budget: unknown key 'max_dollars'"),
        ({}, f"$.budget: {NO_LIMIT}"),
        ({"on_exhaust": "fail"}, f"$.budget: {NO_LIMIT}"),
        ({"max_cost_usd": None}, f"$.budget: {NO_LIMIT}"),
        ("2.0", "$.budget: expected an object or null, got a string"),
    ],
)
def test_a_bad_workflow_budget_is_refused_at_its_path(budget: Any, problem: str) -> None:
    """Negative, non-number, non-integer, unknown or empty budgets are problems at $.budget."""
    assert any(found.startswith(problem) for found in problems_of(with_budgets(workflow=budget)))


def test_budget_pauses_sees_any_pausing_budget() -> None:
    """A workflow pauses when its budget or a step's says on_exhaust pause."""
    assert not budget_pauses(load_workflow(BUDGETED))
    step = with_budgets(step={"max_llm_calls": 1, "on_exhaust": "pause"})
    assert budget_pauses(load_workflow(step))
    top = with_budgets(workflow={"max_llm_calls": 1, "on_exhaust": "pause"})
    assert budget_pauses(load_workflow(top))


def test_a_bad_step_budget_is_refused_at_its_path() -> None:
    """A step's budget is checked at $.steps[i].budget, beside other problems of the document."""
    document = with_budgets(step={"max_cost_usd": -0.5})
    assert problems_of(document) == ["$.steps[1].budget.max_cost_usd: must be at least 0, got -0.5"]
    empty = with_budgets(step={})
    assert problems_of(empty) == [f"$.steps[1].budget: {NO_LIMIT}"]
    empty["steps"][0]["depends_on"] = ["nowhere"]
    assert f"$.steps[1].budget: {NO_LIMIT}" in problems_of(empty)


def test_nan_is_refused_as_json_and_in_python() -> None:
    """NaN is not JSON; built in Python, a NaN or infinite cost cap is a ValueError naming it."""
    text = '{"schema_version": "1.1", "name": "n", "budget": {"max_cost_usd": NaN},'
    text += ' "steps": [{"id": "a", "agent": "echo"}]}'
    assert problems_of(text) == ["$: NaN is not valid JSON (numbers must be finite)"]
    for value in (math.nan, math.inf):
        with pytest.raises(ValueError, match="max_cost_usd must be a finite number"):
            Budget(max_cost_usd=value)
    with pytest.raises(ValueError, match="max_llm_calls must be at least 0"):
        Budget(max_llm_calls=-1)


def test_a_budget_needs_schema_1_1() -> None:
    """A "1.0" document with a budget, on the workflow or a step, is refused at each budget."""
    document = with_budgets(workflow={"max_cost_usd": 1}, step={"max_llm_calls": 1}, version="1.0")
    needs = '"budget" needs schema_version "1.1" (this document says "1.0")'
    assert problems_of(document) == [f"$.budget: {needs}", f"$.steps[1].budget: {needs}"]
    document["budget"]["max_cost_usd"] = -1
    assert f"$.budget: {needs}" in problems_of(document)


def test_a_workflow_built_in_python_checks_its_budgets() -> None:
    """The Workflow constructor refuses an empty budget or a "1.0" one with every problem."""
    with pytest.raises(WorkflowValidationError) as caught:
        Workflow(
            schema_version="1.0",
            name="python",
            steps=(Step(id="a", agent="echo", budget=Budget()),),
            budget=Budget(max_cost_usd=1),
        )
    assert [problem.path for problem in caught.value.problems] == [
        "$.budget",
        "$.steps[0].budget",
        "$.steps[0].budget",
    ]


def test_raw_budget_problems_ignores_what_the_schema_reports() -> None:
    """The raw check leaves non-objects and unknown versions to the schema."""
    assert raw_budget_problems("x", "$.budget", "1.1") == []
    assert raw_budget_problems({}, "$.budget", 1) == []
    assert [problem.path for problem in raw_budget_problems({}, "$.budget", "1.1")] == ["$.budget"]


def test_the_schema_describes_budgets() -> None:
    """The generated schema holds Budget with its limits' minimums and on_exhaust's words."""
    schema = workflow_schema()
    budget = schema["$defs"]["Budget"]
    assert set(budget["properties"]) == {*LIMIT_NAMES, "on_exhaust"}
    assert budget["properties"]["max_cost_usd"]["minimum"] == 0
    assert budget["properties"]["on_exhaust"]["enum"] == ["fail", "pause"]
    assert budget["additionalProperties"] is False
    assert "budget" in schema["properties"]
    assert "budget" in schema["$defs"]["Step"]["properties"]


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "max_cost_usd": st.floats(min_value=0, max_value=1e6),
            "max_input_tokens": st.integers(min_value=0, max_value=10**9),
            "max_output_tokens": st.integers(min_value=0, max_value=10**9),
            "max_llm_calls": st.integers(min_value=0, max_value=10**6),
            "on_exhaust": st.sampled_from(["fail", "pause"]),
        },
    )
)
def test_every_valid_budget_loads_and_round_trips(budget: dict[str, Any]) -> None:
    """Any budget with a limit loads and writes back as written; one without is refused."""
    document = with_budgets(workflow=budget)
    if not set(budget) & set(LIMIT_NAMES):
        assert problems_of(document) == [f"$.budget: {NO_LIMIT}"]
        return
    loaded = load_workflow(document)
    assert loaded.budget is not None
    written = workflow_to_json(loaded)["budget"]
    expected = {key: value for key, value in budget.items() if value != "fail"}
    assert written == expected


def test_with_cost_cap_takes_the_lower_cap() -> None:
    """run --max-cost lowers a workflow's cost cap, or makes a budget of it; None keeps it."""
    budget = Budget(max_cost_usd=2.0, max_llm_calls=5)
    assert with_cost_cap(budget, None) is budget
    assert with_cost_cap(None, None) is None
    assert with_cost_cap(None, 1.5) == Budget(max_cost_usd=1.5)
    assert with_cost_cap(budget, 1.0) == Budget(max_cost_usd=1.0, max_llm_calls=5)
    assert with_cost_cap(budget, 3.0) == budget
    assert with_cost_cap(Budget(max_llm_calls=1), 3.0) == Budget(max_cost_usd=3.0, max_llm_calls=1)


def test_capped_workflow_folds_max_cost_into_the_workflow() -> None:
    """--max-cost becomes the workflow's budget (a 1.0 document turns 1.1); None changes nothing."""
    plain = load_workflow(with_budgets(version="1.0"))
    assert capped_workflow(plain, None) is plain
    capped = capped_workflow(plain, 0.5)
    assert capped.budget == Budget(max_cost_usd=0.5)
    assert capped.schema_version == "1.1"
    assert capped.steps == plain.steps
    budgeted = load_workflow(BUDGETED)
    assert capped_workflow(budgeted, 5.0) is budgeted
    assert capped_workflow(budgeted, 1.0).budget == Budget(
        max_cost_usd=1.0, max_input_tokens=10000, max_output_tokens=2000
    )
    for bad in (-1.0, math.nan):
        with pytest.raises(ValueError, match="max_cost_usd"):
            capped_workflow(plain, bad)


def test_cost_capped_sees_the_workflows_and_the_steps_cap() -> None:
    """A step is cost-capped by its own or the workflow's cost cap; token limits do not count."""
    document = with_budgets(workflow={"max_llm_calls": 4}, step={"max_cost_usd": 1})
    workflow = load_workflow(document)
    assert not cost_capped(workflow, "draft")
    assert cost_capped(workflow, "review")
    assert cost_capped(capped_workflow(workflow, 2.0), "draft")
    assert not cost_capped(load_workflow(with_budgets()), "draft")


def test_pause_gates_are_named_by_scope_and_number() -> None:
    """budget and STEP.budget, then #2, #3...: never a step id (a step id holds no '.')."""
    assert pause_gate_id(None) == "budget"
    assert pause_gate_id("draft") == "draft.budget"
    assert pause_gate_id("draft", 3) == "draft.budget#3"


def test_pause_approval_knows_the_gates_of_pausing_budgets_only() -> None:
    """The gate of a pausing budget asks for its limits; other ids, or fail budgets, have none."""
    document = with_budgets(
        workflow={"max_cost_usd": 1, "max_llm_calls": 3, "on_exhaust": "pause"},
        step={"max_output_tokens": 10},
    )
    workflow = load_workflow(document)
    approval = pause_approval(workflow, "budget#2")
    assert approval is not None
    assert approval.schema is not None
    assert approval.schema["properties"]["max_cost_usd"]["type"] == "number"
    assert approval.schema["properties"]["max_llm_calls"]["type"] == "integer"
    assert approval.schema["minProperties"] == 1
    assert pause_approval(workflow, "budget") == approval
    for gate_id in ("review.budget", "draft.budget", "budget#1", "budget#02", "nope", "x.budget"):
        assert pause_approval(workflow, gate_id) is None, gate_id
    document["steps"][1]["budget"]["on_exhaust"] = "pause"
    assert pause_approval(load_workflow(document), "review.budget#4") is not None


def test_a_step_named_budget_cannot_stand_beside_a_pausing_workflow_budget() -> None:
    """Gate `budget` would be both the approval step's and the budget's: refused at the step id."""
    document = with_budgets(workflow={"max_llm_calls": 1, "on_exhaust": "pause"})
    document["steps"][1]["id"] = "budget"
    assert problems_of(document) == [
        '$.steps[1].id: a step named "budget" would share its id with the pause gate of the'
        " workflow's budget (on_exhaust pause): rename the step"
    ]
    document["budget"]["on_exhaust"] = "fail"
    assert load_workflow(document).budget is not None

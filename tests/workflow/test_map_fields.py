"""`_map_fields`: `for_each`, `on_item_error` and a step's `max_concurrency`, checked at load."""

from __future__ import annotations

from typing import Any

import pytest

from orchestr8._errors import WorkflowValidationError
from orchestr8._workflow._codec import load_workflow, validate_workflow_document, workflow_to_json
from orchestr8._workflow._conditions import Expression


def document(*steps: dict[str, Any], version: str = "1.1") -> dict[str, Any]:
    """A workflow document with these steps and a `docs` input."""
    return {
        "schema_version": version,
        "name": "maps",
        "inputs": {"type": "object", "properties": {"docs": {"type": "array"}}},
        "steps": list(steps),
    }


def problems(value: dict[str, Any]) -> list[str]:
    """Every problem the codec reports for `value`, as `path: message` lines."""
    return [f"{problem.path}: {problem.message}" for problem in validate_workflow_document(value)]


MAP = {"id": "each", "agent": "echo", "for_each": "inputs.docs", "input": "${item}"}


def test_a_map_step_loads_with_its_expression_at_its_path() -> None:
    """`for_each` becomes an `Expression` located at `$.steps[i].for_each`; documented defaults."""
    loaded = load_workflow(document({"id": "first", "agent": "echo"}, MAP))
    step = loaded.steps_by_id["each"]
    assert isinstance(step.for_each, Expression)
    assert step.for_each.path == "$.steps[1].for_each"
    assert step.on_item_error == "fail"
    assert step.max_concurrency == 0
    assert loaded.steps_by_id["first"].for_each is None


def test_the_map_fields_round_trip_through_the_codec() -> None:
    """Writing a loaded map back gives the document's fields; loading that gives an equal AST."""
    source = document(
        {"id": "a", "agent": "echo", "input": ["x"]},
        {
            "id": "each",
            "agent": "echo",
            "depends_on": ["a"],
            "for_each": "steps.a.output[?@ != 'y']",
            "input": {"doc": "${item}", "at": "${index}"},
            "on_item_error": "continue",
            "max_concurrency": 4,
        },
    )
    loaded = load_workflow(source)
    written = workflow_to_json(loaded)
    assert written["steps"][1] == source["steps"][1]
    assert load_workflow(written) == loaded


def test_item_and_index_are_allowed_in_a_map_step_only() -> None:
    """`${item}`/`${index}` outside a map step are refused where they stand."""
    assert problems(document({"id": "plain", "agent": "echo", "input": "${index}"})) == [
        "$.steps[0].input: ${index}: 'index' is only defined in the input of a step with for_each"
    ]
    assert problems(document(MAP)) == []


@pytest.mark.parametrize(
    ("step", "message"),
    [
        (
            {**MAP, "for_each": "inputs.["},
            "$.steps[0].for_each: 'inputs.[' is not a valid expression",
        ),
        (
            {**MAP, "for_each": "item"},
            "$.steps[0].for_each: 'item' reads 'item', which is not defined here (it may read"
            " inputs, steps)",
        ),
        (
            {**MAP, "for_each": "steps.later.output"},
            "$.steps[0].for_each: steps.later refers to step 'later', which step 'each' does not"
            " depend on",
        ),
        ({**MAP, "for_each": 3}, "$.steps[0].for_each: expected a string, got an integer"),
        (
            {**MAP, "on_item_error": "skip"},
            "$.steps[0].on_item_error: expected one of 'fail', 'continue', got 'skip'",
        ),
        ({**MAP, "max_concurrency": -1}, "$.steps[0].max_concurrency: must be at least 0, got -1"),
    ],
)
def test_bad_map_fields_are_problems_at_their_path(step: dict[str, Any], message: str) -> None:
    """Each bad map field is one problem naming its JSON path."""
    found = problems(document(step, {"id": "later", "agent": "echo"}))
    assert any(line.startswith(message) for line in found), found


def test_a_step_cannot_both_map_and_loop() -> None:
    """`for_each` with `repeat` on one step is refused at `for_each`."""
    step = {**MAP, "repeat": {"until": "output", "max_iterations": 2}}
    assert problems(document(step)) == [
        "$.steps[0].for_each: a step cannot both map (for_each) and loop (repeat): loop in a"
        " step that depends on the map, or map over the loop's output"
    ]


def test_a_map_step_is_not_replanned() -> None:
    """`on_error` with `replan` on a map step is refused at `on_error`."""
    replan = {"replan": {"agent": "echo", "input": "again"}}
    step = {**MAP, "on_error": replan}
    found = problems(document(step))
    assert (
        "$.steps[0].on_error: a map step is not replanned: give its items' failures to"
        " on_item_error, or replan a step that reads the map's output"
    ) in found, found


def test_map_only_fields_on_a_plain_step_are_refused() -> None:
    """`on_item_error` and `max_concurrency` mean nothing without `for_each`."""
    step = {"id": "plain", "agent": "echo", "on_item_error": "continue", "max_concurrency": 2}
    assert problems(document(step)) == [
        '$.steps[0].max_concurrency: "max_concurrency" applies only to a step with for_each',
        '$.steps[0].on_item_error: "on_item_error" applies only to a step with for_each',
    ]


def test_the_map_fields_need_schema_version_1_1() -> None:
    """A "1.0" document using a map field gets one problem per field, at the field."""
    step = {**MAP, "on_item_error": "continue", "max_concurrency": 2}
    assert problems(document(step, version="1.0")) == [
        '$.steps[0].for_each: "for_each" needs schema_version "1.1" (this document says "1.0")',
        '$.steps[0].max_concurrency: "max_concurrency" needs schema_version "1.1" (this document'
        ' says "1.0")',
        '$.steps[0].on_item_error: "on_item_error" needs schema_version "1.1" (this document'
        ' says "1.0")',
    ]


def test_a_workflow_built_in_python_takes_the_expression_text() -> None:
    """`Step(for_each="...")` compiles the text; a syntax error is refused."""
    from orchestr8._workflow._document import Step, Workflow

    step = Step(id="each", agent="echo", for_each="inputs.docs", input="${item}")
    workflow = Workflow(name="maps", steps=[step])
    assert workflow.steps[0].for_each is not None
    assert workflow.steps[0].for_each.path == "$.steps[0].for_each"
    with pytest.raises(ValueError, match="not a valid expression"):
        Step(id="each", agent="echo", for_each="inputs.[")
    with pytest.raises(WorkflowValidationError, match="reads 'output'"):
        Workflow(name="maps", steps=[Step(id="each", agent="echo", for_each="output")])

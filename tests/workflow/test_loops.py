"""Loops in the AST: `repeat` and `on_max_iterations`, checked at load with their JSON paths."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from orchestr8._errors import Problem, WorkflowValidationError
from orchestr8._workflow._codec import load_workflow, workflow_to_json
from orchestr8._workflow._conditions import SCOPE_ROOTS, compile_expression
from orchestr8._workflow._document import Step, Workflow, workflow_schema
from orchestr8._workflow._loops import LOOP_LOCALS, UNTIL_ROOTS, Repeat, to_until

LOOP: dict[str, Any] = {
    "schema_version": "1.1",
    "name": "loop",
    "steps": [
        {"id": "topic", "agent": "echo", "input": "loops"},
        {
            "id": "draft",
            "agent": "echo",
            "depends_on": ["topic"],
            "input": {"previous": "${previous}", "round": "${iteration}"},
            "repeat": {
                "until": "output.round >= `2` && steps.topic.output == 'loops'",
                "max_iterations": 3,
            },
            "on_max_iterations": "succeed",
        },
    ],
}


def problems_of(document: dict[str, Any]) -> list[str]:
    """Every problem loading `document` reports, as `path: message`."""
    with pytest.raises(WorkflowValidationError) as caught:
        load_workflow(document)
    return [f"{problem.path}: {problem.message}" for problem in caught.value.problems]


def with_repeat(repeat: Any, **step: Any) -> dict[str, Any]:
    """The loop document with the draft step's repeat replaced (and other step fields set)."""
    document = copy.deepcopy(LOOP)
    document["steps"][1]["repeat"] = repeat
    document["steps"][1].update(step)
    return document


def test_a_loop_loads_with_its_compiled_until_at_its_path() -> None:
    """repeat becomes a Repeat whose until is compiled, located at the document's JSON path."""
    workflow = load_workflow(LOOP)
    repeat = workflow.steps_by_id["draft"].repeat
    assert repeat is not None
    assert repeat.max_iterations == 3
    assert repeat.until.path == "$.steps[1].repeat.until"
    assert repeat.until.step_ids == {"topic"}
    assert workflow.steps_by_id["draft"].on_max_iterations == "succeed"


def test_a_loop_round_trips_through_json() -> None:
    """Written back, a loop is the document it was read from; defaults are left out."""
    assert workflow_to_json(load_workflow(LOOP)) == LOOP
    plain = with_repeat({"until": "`true`", "max_iterations": 1})
    del plain["steps"][1]["on_max_iterations"]
    assert "on_max_iterations" not in workflow_to_json(load_workflow(plain))["steps"][1]


def test_a_loop_built_in_python_equals_the_loaded_one() -> None:
    """Repeat takes the until text or an Expression; both give an equal workflow."""
    steps = (
        Step(id="topic", agent="echo", input="loops"),
        Step(
            id="draft",
            agent="echo",
            depends_on=("topic",),
            input={"previous": "${previous}", "round": "${iteration}"},
            repeat=Repeat(
                until="output.round >= `2` && steps.topic.output == 'loops'",
                max_iterations=3,
            ),
            on_max_iterations="succeed",
        ),
    )
    built = Workflow(schema_version="1.1", name="loop", steps=steps)
    assert built == load_workflow(LOOP)
    assert to_until(built.steps[1].repeat.until) is built.steps[1].repeat.until  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("repeat", "problem"),
    [
        (
            {"until": "output.n"},
            "$.steps[1].repeat: missing required key 'max_iterations'",
        ),
        (
            {"max_iterations": 2},
            "$.steps[1].repeat: missing required key 'until'",
        ),
        (
            {"until": "output.n", "max_iterations": 0},
            "$.steps[1].repeat.max_iterations: must be at least 1, got 0",
        ),
        (
            {"until": "", "max_iterations": 2},
            "$.steps[1].repeat.until: must not be empty",
        ),
        (
            {"until": "output.n >", "max_iterations": 2},
            "$.steps[1].repeat.until: 'output.n >' is not a valid expression: Invalid jmespath"
            " expression: Incomplete expression",
        ),
        (
            {"until": "previous.n > `1`", "max_iterations": 2},
            "$.steps[1].repeat.until: 'previous.n > `1`' reads 'previous', which is not defined"
            " here (it may read inputs, iteration, output, steps)",
        ),
        (
            {"until": "steps.draft.output", "max_iterations": 2},
            "$.steps[1].repeat.until: steps.draft refers to the output of its own step",
        ),
        (
            {"until": "output", "max_iterations": 2, "forever": True},
            "$.steps[1].repeat: unknown key 'forever'",
        ),
    ],
)
def test_bad_loops_are_refused_at_their_path(repeat: dict[str, Any], problem: str) -> None:
    """A loop without a bound, a bad until or an unknown key is named with its JSON path."""
    assert problem in problems_of(with_repeat(repeat))


def test_until_may_read_only_steps_the_loop_depends_on() -> None:
    """Reading a step that is not a dependency is the same problem as in a reference."""
    document = with_repeat({"until": "steps.topic.output", "max_iterations": 2}, depends_on=[])
    assert problems_of(document) == [
        "$.steps[1].repeat.until: steps.topic refers to step 'topic', which step 'draft' does not"
        " depend on (add 'topic' to depends_on)"
    ]


def test_loop_fields_need_schema_version_1_1() -> None:
    """repeat and on_max_iterations in a "1.0" document are refused at their own paths."""
    document = copy.deepcopy(LOOP)
    document["schema_version"] = "1.0"
    assert problems_of(document) == [
        '$.steps[1].on_max_iterations: "on_max_iterations" needs schema_version "1.1" (this'
        ' document says "1.0")',
        '$.steps[1].repeat: "repeat" needs schema_version "1.1" (this document says "1.0")',
    ]


def test_on_max_iterations_without_repeat_is_refused() -> None:
    """A step that does not loop has no iterations to run out of."""
    document = copy.deepcopy(LOOP)
    del document["steps"][1]["repeat"]
    document["steps"][1]["input"] = None
    assert problems_of(document) == [
        "$.steps[1].on_max_iterations: only a step with repeat has iterations"
    ]


def test_previous_and_iteration_are_only_defined_in_a_loop_input() -> None:
    """${previous} and ${iteration} outside a repeat step are refused, even beside other errors."""
    document = copy.deepcopy(LOOP)
    del document["steps"][1]["repeat"]
    del document["steps"][1]["on_max_iterations"]
    expected = [
        "$.steps[1].input.previous: ${previous}: 'previous' is only defined in the input of a"
        " step with repeat",
        "$.steps[1].input.round: ${iteration}: 'iteration' is only defined in the input of a"
        " step with repeat",
    ]
    assert problems_of(document) == expected
    # With a schema error elsewhere the raw document is checked, with the same rule.
    document["max_concurrency"] = -1
    assert problems_of(document)[1:] == expected
    looping = copy.deepcopy(LOOP)
    looping["max_concurrency"] = -1
    assert problems_of(looping) == ["$.max_concurrency: must be at least 0, got -1"]


def test_the_schema_describes_the_loop_fields() -> None:
    """`orchestr8 schema` documents repeat, its two fields and on_max_iterations."""
    schema = workflow_schema()
    step = schema["$defs"]["Step"]["properties"]
    assert "${previous}" in step["repeat"]["description"]
    assert step["repeat"]["anyOf"] == [{"$ref": "#/$defs/Repeat"}, {"type": "null"}]
    repeat = schema["$defs"]["Repeat"]
    assert repeat["required"] == ["until", "max_iterations"]
    assert repeat["properties"]["max_iterations"]["minimum"] == 1
    assert repeat["properties"]["until"]["type"] == "string"
    assert step["on_max_iterations"]["enum"] == ["fail", "succeed"]


def test_the_loop_roots_and_locals_are_the_documented_ones() -> None:
    """until reads output, iteration, inputs and steps; the input reads previous and iteration."""
    assert sorted(UNTIL_ROOTS) == ["inputs", "iteration", "output", "steps"]
    assert sorted(LOOP_LOCALS) == ["iteration", "previous"]


def test_an_until_compiled_elsewhere_is_checked_again_with_the_roots_until_may_read() -> None:
    """An Expression compiled with more roots is refused at the step's until path."""
    problems: list[Problem] = []
    wide = compile_expression("previous == output", "$", SCOPE_ROOTS, problems)
    assert wide is not None
    step = Step(id="draft", agent="echo", repeat=Repeat(until=wide, max_iterations=2))
    with pytest.raises(WorkflowValidationError) as caught:
        Workflow(schema_version="1.1", name="loop", steps=(step,))
    assert [(p.path, p.message) for p in caught.value.problems] == [
        (
            "$.steps[0].repeat.until",
            "'previous == output' reads 'previous', which is not defined here (it may read"
            " inputs, iteration, output, steps)",
        )
    ]

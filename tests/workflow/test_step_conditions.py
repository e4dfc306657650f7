"""A step's condition in the AST: compiled from text, located where it stands, gated to 1.1."""

from __future__ import annotations

from typing import Any

import pytest

from orchestr8._errors import WorkflowValidationError
from orchestr8._workflow._codec import load_workflow
from orchestr8._workflow._document import Step, Workflow
from orchestr8._workflow._step_conditions import (
    CONDITION_ROOTS,
    MAP_CONDITION_ROOTS,
    condition_roots,
    filters_items,
)


def workflow(*steps: Step, **fields: Any) -> Workflow:
    return Workflow(name="test", steps=steps, **fields)


def problems_of(*steps: Step, **fields: Any) -> list[str]:
    with pytest.raises(WorkflowValidationError) as caught:
        workflow(*steps, **fields)
    return [str(problem) for problem in caught.value.problems]


def test_a_when_is_compiled_and_located_where_it_stands() -> None:
    """A `when` given as text compiles; the workflow places it at `$.steps[N].when`."""
    flow = workflow(
        Step(id="a", agent="echo"),
        Step(id="b", agent="echo", depends_on=["a"], when="steps.a.output.ok", accept_skipped=True),
    )
    when = flow.steps_by_id["b"].when
    assert when is not None
    assert (when.text, when.path, when.step_ids) == (
        "steps.a.output.ok",
        "$.steps[1].when",
        frozenset({"a"}),
    )
    assert flow.reads == {"a": frozenset(), "b": frozenset({"a"})}
    assert flow.steps_by_id["b"].accept_skipped


def test_a_when_that_is_not_an_expression_is_refused_in_python() -> None:
    """Python construction refuses text that does not compile, before any workflow exists."""
    with pytest.raises(WorkflowValidationError) as caught:
        Step(id="a", agent="echo", when="inputs.x ==")
    assert str(caught.value.problems[0]).startswith("$.when: 'inputs.x ==' is not a valid")


def test_what_a_step_reads_counts_its_input_and_its_when_but_not_its_order() -> None:
    """`reads` lists the steps whose output a step reads; `depends_on` alone reads nothing."""
    flow = workflow(
        Step(id="a", agent="echo"),
        Step(id="b", agent="echo"),
        Step(id="c", agent="echo", depends_on=["a", "b"], input="${steps.a.output}"),
        Step(id="d", agent="echo", depends_on=["c"], when="steps.b.output"),
        schema_version="1.1",
    )
    assert flow.reads["c"] == {"a"}
    assert flow.reads["d"] == {"b"}


def test_conditions_need_schema_version_1_1() -> None:
    """`when` and `accept_skipped` in a 1.0 workflow are refused at their paths."""
    assert problems_of(
        Step(id="a", agent="echo", when="inputs.go", accept_skipped=True), schema_version="1.0"
    ) == [
        '$.steps[0].accept_skipped: "accept_skipped" needs schema_version "1.1" (this document'
        ' says "1.0")',
        '$.steps[0].when: "when" needs schema_version "1.1" (this document says "1.0")',
    ]


def test_a_condition_reads_inputs_and_steps_whether_the_step_is_built_or_raw() -> None:
    """`condition_roots` answers for a `Step` and for a raw step document alike."""
    assert condition_roots(Step(id="a", agent="echo")) == CONDITION_ROOTS
    assert condition_roots({"id": "a", "agent": "echo"}) == {"inputs", "steps"}


def test_a_condition_reading_a_root_its_step_lacks_is_refused_where_it_stands() -> None:
    """`item` compiles on its own, but a step without for_each may not read it."""
    assert problems_of(Step(id="a", agent="echo", when="item.kind == 'x'")) == [
        "$.steps[0].when: \"item.kind == 'x'\" reads 'item', which is not defined here (it may"
        " read inputs, steps)"
    ]


def test_a_map_step_condition_may_read_its_item_and_index() -> None:
    """A step with for_each adds `item` and `index` to what its `when` may read, built or raw."""
    mapped = Step(id="a", agent="echo", for_each="inputs.docs", when="item.keep && index > `0`")
    assert condition_roots(mapped) == MAP_CONDITION_ROOTS
    assert condition_roots({"id": "a", "for_each": "inputs.docs"}) == MAP_CONDITION_ROOTS
    flow = workflow(mapped, schema_version="1.1")
    when = flow.steps_by_id["a"].when
    assert when is not None
    assert when.roots == {"item", "index"}
    assert filters_items(flow.steps_by_id["a"])


def test_only_a_map_condition_that_reads_its_item_filters_items() -> None:
    """A map's `when` over inputs alone is checked once for the step; a plain step never filters."""
    assert not filters_items(Step(id="a", agent="echo", for_each="inputs.docs", when="inputs.go"))
    assert not filters_items(Step(id="a", agent="echo", for_each="inputs.docs"))
    assert not filters_items(Step(id="a", agent="echo", when="inputs.go"))
    both = Step(id="a", agent="echo", for_each="inputs.docs", when="inputs.go && item")
    assert filters_items(both)


def test_the_codec_accepts_an_item_filter_on_a_map_and_refuses_it_elsewhere() -> None:
    """A document: `item` in a map's `when` loads; in a plain step's it is the usual problem."""
    document: dict[str, Any] = {
        "schema_version": "1.1",
        "name": "filters",
        "steps": [
            {"id": "each", "agent": "echo", "for_each": "inputs.docs", "when": "item != 'x'"},
            {"id": "plain", "agent": "echo", "when": "index == `0`"},
        ],
    }
    with pytest.raises(WorkflowValidationError) as caught:
        load_workflow(document)
    assert [str(problem) for problem in caught.value.problems] == [
        "$.steps[1].when: 'index == `0`' reads 'index', which is not defined here (it may"
        " read inputs, steps)"
    ]
    del document["steps"][1]
    assert filters_items(load_workflow(document).steps[0])


def test_a_document_with_other_problems_still_lets_a_map_condition_read_its_item() -> None:
    """The codec's raw-step check (`outline_condition`) gives a map's `when` `item` as well."""
    document: dict[str, Any] = {
        "schema_version": "1.1",
        "name": "filters",
        "steps": [
            {"id": "each", "agent": "echo", "for_each": "inputs.docs", "when": "item.keep"},
            {"id": "plain", "agent": "echo", "when": "item.keep", "retries": 3},
        ],
    }
    with pytest.raises(WorkflowValidationError) as caught:
        load_workflow(document)
    found = [str(problem) for problem in caught.value.problems]
    assert [line for line in found if line.startswith("$.steps[0]")] == []
    assert (
        "$.steps[1].when: 'item.keep' reads 'item', which is not defined here (it may read"
        " inputs, steps)" in found
    )

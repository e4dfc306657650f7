"""A step's condition in the AST: compiled from text, located where it stands, gated to 1.1."""

from __future__ import annotations

from typing import Any

import pytest

from orchestr8._errors import WorkflowValidationError
from orchestr8._workflow._document import Step, Workflow
from orchestr8._workflow._step_conditions import CONDITION_ROOTS, condition_roots


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

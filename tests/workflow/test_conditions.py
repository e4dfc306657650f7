"""Expressions: JMESPath compiled and checked at load, evaluated against a run's scope."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestr8 import ExpressionError
from orchestr8._errors import Problem
from orchestr8._workflow._conditions import (
    SCOPE_ROOTS,
    Expression,
    compile_expression,
    expression_scope,
    require_version_1_1,
)
from orchestr8._workflow._expressions import compile_template
from orchestr8._workflow._graph import StepOutline, analyse_graph
from orchestr8._workflow._references import parse_reference

PATH = "$.steps[1].when"
CONDITION_ROOTS = frozenset({"inputs", "steps"})


def compiled(text: object, roots: frozenset[str] = CONDITION_ROOTS) -> Expression:
    problems: list[Problem] = []
    expression = compile_expression(text, PATH, roots, problems)
    assert problems == []
    assert expression is not None
    return expression


def problems_of(text: object, roots: frozenset[str] = CONDITION_ROOTS) -> list[str]:
    problems: list[Problem] = []
    assert compile_expression(text, PATH, roots, problems) is None
    assert all(problem.path == PATH for problem in problems)
    return [problem.message for problem in problems]


def test_an_expression_reads_inputs_and_step_outputs_from_the_scope() -> None:
    """`inputs.X` and `steps.ID.output` are read from the execution's inputs and step outputs."""
    expression = compiled(
        "steps.classify.output.label == inputs.wanted && length(inputs.tags) > `1`"
    )
    scope = expression_scope(
        {"wanted": "billing", "tags": ["a", "b"]}, {"classify": {"label": "billing"}}
    )
    assert expression.holds(scope)
    assert not expression.holds(
        expression_scope({"wanted": "tech", "tags": []}, {"classify": {"label": "billing"}})
    )


def test_compiling_records_the_roots_steps_and_inputs_read() -> None:
    """The steps and inputs an expression reads come out for the graph checks, at its path."""
    expression = compiled("contains(steps.search.output.tags, inputs.tag) || steps.b.output[0].x")
    assert expression.step_ids == {"search", "b"}
    assert expression.roots == {"steps", "inputs"}
    assert [(path, reference.text) for path, reference in expression.located_references] == [
        (PATH, "steps.b"),
        (PATH, "steps.search"),
        (PATH, "inputs.tag"),
    ]


def test_names_inside_filters_and_projections_are_relative_not_roots() -> None:
    """`score` in `items[?score > 1]` is a field of each item, not a root the scope must have."""
    expression = compiled("length(steps.s.output.items[?score > `1`].name) > `0`")
    assert expression.roots == {"steps"}
    scope = expression_scope(
        {}, {"s": {"items": [{"score": 2, "name": "a"}, {"score": 0, "name": "b"}]}}
    )
    assert expression.evaluate(scope) is True


def test_truthiness_follows_jmespath() -> None:
    """false, null, "", [] and {} are false; every other value, 0 included, is true."""
    expression = compiled("inputs.value", frozenset({"inputs"}))
    for value, truth in [
        (False, False),
        (None, False),
        ("", False),
        ([], False),
        ({}, False),
        (0, True),
        ("x", True),
        ([0], True),
        ({"a": 1}, True),
        (True, True),
    ]:
        assert expression.holds({"inputs": {"value": value}}) is truth, value


def test_a_missing_step_output_reads_as_null() -> None:
    """A step with no output in the scope (skipped, or not finished) reads as null."""
    assert compiled("steps.gone.output").evaluate(expression_scope({}, {})) is None


def test_local_roots_are_read_from_the_local_values() -> None:
    """Locals (item, index, output, iteration) are passed to `expression_scope` by name."""
    expression = compiled(
        "output.score >= `7` || iteration == `3`", frozenset({"output", "iteration"})
    )
    assert expression.holds(expression_scope({}, {}, output={"score": 8}, iteration=1))
    assert expression.holds(expression_scope({}, {}, output={"score": 1}, iteration=3))
    assert not expression.holds(expression_scope({}, {}, output={"score": 1}, iteration=2))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (3, "must be a JMESPath expression (a string), not 3"),
        ("  ", "must be a JMESPath expression, not an empty string"),
        (
            "length(x) > 3",
            "'length(x) > 3' is not a valid expression: Parse error at column 12,"
            ' token "3" (NUMBER) (numbers are JSON literals in backticks: `3`)',
        ),
        (
            "foo(",
            "'foo(' is not a valid expression: Invalid jmespath expression: Incomplete expression"
            " at column 4",
        ),
        ("nofunc(inputs.a)", "'nofunc(inputs.a)' calls unknown function nofunc()"),
        (
            "steps.*.output",
            "'steps.*.output' reads steps without naming one: write steps.STEP_ID.output",
        ),
        ("steps", "'steps' reads steps without naming one: write steps.STEP_ID.output"),
        ("@", "'@' reads '@' at the top: name what it reads (inputs, steps...)"),
        ("item.x", "'item.x' reads 'item', which is not defined here (it may read inputs, steps)"),
    ],
)
def test_bad_expressions_are_problems_at_their_path(text: object, message: str) -> None:
    """Each kind of bad expression is one problem naming it, at the field's JSON path."""
    assert problems_of(text) == [message]


def test_a_double_quoted_string_is_a_field_name_and_the_problem_says_so() -> None:
    """`label == "billing"` reads a field named billing: the message tells how to write a string."""
    [message] = problems_of('inputs.label == "billing"')
    assert "reads 'billing', which is not defined here" in message
    assert "strings are written in single quotes ('text')" in message


def test_evaluation_errors_raise_expression_error_naming_the_expression() -> None:
    """A function given the wrong type, or an ordering of unlike values, fails with the text."""
    with pytest.raises(
        ExpressionError,
        match=r"\$\.steps\[1\]\.when: 'length\(inputs.n\)' failed: In function length\(\)",
    ):
        compiled("length(inputs.n)").evaluate({"inputs": {"n": 3}})
    with pytest.raises(ExpressionError, match=r"'inputs.a < inputs.b' failed"):
        compiled("inputs.a < inputs.b").evaluate({"inputs": {"a": "x", "b": 1}})


def test_expressions_are_equal_by_their_text() -> None:
    """Two compilations of one text are equal and hash alike; another text is not equal."""
    assert compiled("inputs.a") == compiled("inputs.a")
    assert hash(compiled("inputs.a")) == hash(compiled("inputs.a"))
    assert compiled("inputs.a") != compiled("inputs.b")
    assert compiled("inputs.a") != "inputs.a"


def test_only_version_1_1_documents_may_use_the_new_fields() -> None:
    """A "1.0" document using a 1.1 field gets a problem at the field; "1.1" gets none."""
    problems: list[Problem] = []
    require_version_1_1("1.1", PATH, "when", problems)
    assert problems == []
    require_version_1_1("1.0", PATH, "when", problems)
    assert problems == [
        Problem(PATH, '"when" needs schema_version "1.1" (this document says "1.0")')
    ]


def test_an_expression_reading_a_step_it_does_not_depend_on_is_a_graph_problem() -> None:
    """The graph checks report expression references as `${...}` ones: unknown, not a dependency."""
    expression = compiled("steps.a.output && steps.nope.output")
    outlines = [
        StepOutline(index=0, step_id="a"),
        StepOutline(index=1, step_id="b", references=expression.located_references),
    ]
    graph = analyse_graph(outlines, strategy="dag", inputs_schema={"type": "object"})
    assert [str(problem) for problem in graph.problems] == [
        f"{PATH}: steps.a refers to step 'a', which step 'b' does not depend on"
        " (add 'a' to depends_on)",
        f"{PATH}: steps.nope refers to unknown step 'nope'",
    ]


def test_local_references_render_from_the_local_values() -> None:
    """`${item}`, `${index}`, `${previous.x}` and `${iteration}` render from `local_values`."""
    template = compile_template(
        {"doc": "${item.text}", "n": "${index}", "p": "${previous}", "i": "it ${iteration}"}
    )
    rendered = template.render(
        {}, {}, {"item": {"text": "hi"}, "index": 2, "previous": None, "iteration": 3}
    )
    assert rendered == {"doc": "hi", "n": 2, "p": None, "i": "it 3"}
    assert parse_reference("${previous.draft[0]}")[0].path == ("draft", 0)


def test_a_local_reference_without_its_value_fails_to_resolve() -> None:
    """Rendering `${item}` where no item is given names the reference and the missing value."""
    from orchestr8 import ReferenceResolutionError

    with pytest.raises(ReferenceResolutionError, match=r"\$\{item\.x\}: 'item' has no value here"):
        compile_template("${item.x}").render({}, {})
    with pytest.raises(ReferenceResolutionError, match=r"item\.x is an array, not an object"):
        compile_template("${item.x.y}").render({}, {}, {"item": {"x": []}})


def test_local_references_are_allowed_only_where_the_step_defines_them() -> None:
    """`${item}` outside a for_each step and `${previous}` outside a repeat step are problems."""
    template = compile_template({"a": "${item}", "b": "${previous.x}", "c": "${index}"})
    located = tuple(
        (f"$.steps[0].input{suffix}", reference)
        for suffix, reference in template.located_references
    )
    plain = analyse_graph(
        [StepOutline(index=0, step_id="s", references=located)], strategy="dag", inputs_schema={}
    )
    for_each, repeat = "in the input of a step with for_each", "in the input of a step with repeat"
    assert [str(problem) for problem in plain.problems] == [
        f"$.steps[0].input.a: ${{item}}: 'item' is only defined {for_each}",
        f"$.steps[0].input.b: ${{previous.x}}: 'previous' is only defined {repeat}",
        f"$.steps[0].input.c: ${{index}}: 'index' is only defined {for_each}",
    ]
    mapped = analyse_graph(
        [
            StepOutline(
                index=0,
                step_id="s",
                references=located,
                local_names=frozenset({"item", "index", "previous"}),
            )
        ],
        strategy="dag",
        inputs_schema={},
    )
    assert mapped.problems == ()


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
        ),
        max_leaves=8,
    )
)
def test_holds_is_jmespath_truthiness_for_any_json_value(value: Any) -> None:
    """For any JSON value, `holds` agrees with JMESPath's own `&&` and `||` truthiness."""
    scope = {"inputs": {"v": value}}
    assert compiled("inputs.v", frozenset({"inputs"})).holds(scope) is compiled(
        "inputs.v && `true` || `false`", frozenset({"inputs"})
    ).evaluate(scope)


def test_every_scope_root_is_documented_in_the_set() -> None:
    """The roots fields may allow are exactly the seven the language defines."""
    assert (
        frozenset({"inputs", "steps", "item", "index", "output", "iteration", "previous"})
        == SCOPE_ROOTS
    )


def test_every_path_into_a_null_previous_reads_null() -> None:
    """In a loop's first iteration `${previous.a.b}` is null; later a missing key still fails."""
    from orchestr8 import ReferenceResolutionError

    template = compile_template({"draft": "${previous.json.draft}", "text": "was ${previous.x}"})
    assert template.render({}, {}, {"previous": None}) == {"draft": None, "text": "was null"}
    with pytest.raises(ReferenceResolutionError, match="previous has no key 'json'"):
        template.render({}, {}, {"previous": {"x": 1}})


@pytest.mark.parametrize(
    "text",
    ["(" * 600 + "inputs.a" + ")" * 600, "!" * 5000 + "inputs.a", "!" * 60 + "inputs.a"],
    ids=["parentheses", "thousands of nots", "sixty nots"],
)
def test_an_expression_nested_too_deeply_is_one_problem_not_a_crash(text: str) -> None:
    """Nesting past the limit (or past Python's stack, in the parser) is refused, briefly."""
    [message] = problems_of(text)
    assert f"nests more than 50 levels deep ({len(text)} characters)" in message
    assert len(message) < 200


def test_an_expression_nested_within_the_limit_compiles_and_evaluates() -> None:
    """Forty nots compile and evaluate like two: the limit leaves room for real expressions."""
    assert compiled("!" * 40 + "(inputs.a)").evaluate({"inputs": {"a": 1}}) is True


def test_a_not_before_a_path_is_refused_as_it_negates_only_the_first_name() -> None:
    """`!steps.a.output.ok` is `(!steps).a...`, always null: the problem says to write `!(...)`."""
    assert any("'!' binds tighter than '.'" in message for message in problems_of("!inputs.a.b"))
    assert compiled("!(steps.a.output.ok)").holds(expression_scope({}, {"a": {"ok": False}}))


@pytest.mark.parametrize("text", ["steps.a.outputs.ok", "steps.a", "steps.a[0]"])
def test_a_step_path_must_go_through_output_as_references_do(text: str) -> None:
    """`steps.a.outputs.ok` (a typo) and `steps.a` read nothing useful: refused, naming the fix."""
    assert problems_of(text) == [f"{text!r} reads steps.a but not its output: write steps.a.output"]


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("inputs.n > 0.5", "(numbers are JSON literals in backticks: `0.5`)"),
        ("inputs.n == -1", "(numbers are JSON literals in backticks: `-1`)"),
        ("${steps.a.output}", "(an expression is not a template: write steps.ID.output"),
        ("inputs.a and inputs.b", "(JMESPath writes and, or and not as &&, || and !)"),
        ("inputs.a = 'x'", "(equality is ==)"),
        ("inputs.a == true", "JSON literals are written in backticks: `true`"),
    ],
)
def test_common_mistakes_get_a_hint_naming_what_to_write(text: str, hint: str) -> None:
    """Numbers, templates, word operators, `=` and bare true/false/null each get their own hint."""
    [message] = problems_of(text)
    assert hint in message

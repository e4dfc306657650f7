"""Tests for templates holding `${...}` references: compiling, escaping, rendering, errors."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NoReturn

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestr8._errors import ReferenceResolutionError, WorkflowError, WorkflowValidationError
from orchestr8._workflow import _expressions as expressions
from orchestr8._workflow._expressions import compile_template, scan_template
from orchestr8._workflow._references import Reference

INPUTS = {"topic": "cats", "count": 3, "tags": ["a", "b"], "a key": {"x-y": None}, "flag": True}
OUTPUTS = {"search": {"items": [{"url": "u1"}, {"url": "u2"}], "q": "cats"}, "empty": None}


def render(value: Any) -> Any:
    return compile_template(value).render(INPUTS, OUTPUTS)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("${inputs.topic}", "cats"),
        ("${inputs.count}", 3),
        ("${inputs.tags}", ["a", "b"]),
        ("${inputs.flag}", True),
        ("${steps.search.output.items[1].url}", "u2"),
        ("${steps.empty.output}", None),
        ("${inputs['a key']['x-y']}", None),
        ('${inputs["a key"]}', {"x-y": None}),
        ("${ inputs.topic }", "cats"),
        ("${inputs}", INPUTS),
    ],
)
def test_a_string_that_is_one_reference_takes_the_value_as_is(template: str, expected: Any) -> None:
    """A whole-string reference yields the referenced JSON value with its own type."""
    assert render(template) == expected
    assert type(render(template)) is type(expected)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("About ${inputs.topic}!", "About cats!"),
        ("n=${inputs.count}", "n=3"),
        ("tags: ${inputs.tags}", 'tags: ["a", "b"]'),
        ("on=${inputs.flag}, none=${steps.empty.output}", "on=true, none=null"),
        ("${inputs.topic}${inputs.topic}", "catscats"),
        (" ${inputs.topic}", " cats"),
        ("${steps.search.output.items[0]}", {"url": "u1"}),
        ("x ${steps.search.output.items[0]}", 'x {"url": "u1"}'),
    ],
)
def test_references_inside_longer_strings_are_interpolated_as_text(
    template: str, expected: Any
) -> None:
    """Strings go in as they are; other values are JSON-encoded."""
    assert render(template) == expected


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("$${inputs.topic}", "${inputs.topic}"),
        ("$$${inputs.topic}", "$cats"),
        ("$$$${inputs.topic}", "$${inputs.topic}"),
        ("price: $5 and $$", "price: $5 and $$"),
        ("${inputs.topic} costs $${x}", "cats costs ${x}"),
        ("no references at all", "no references at all"),
        ("{braces} and $ alone", "{braces} and $ alone"),
    ],
)
def test_doubled_dollars_before_a_brace_escape_a_literal_reference(
    template: str, expected: str
) -> None:
    """Each `$$` directly before `{` writes one `$`; other dollar signs are left alone."""
    assert render(template) == expected


@given(st.text())
def test_escaping_every_opening_renders_the_text_unchanged(text: str) -> None:
    """Doubling each run of `$` before `{` always yields the original text back."""
    escaped = re.sub(r"(\$+)\{", lambda match: match.group(1) * 2 + "{", text)
    assert compile_template(escaped).render({}, {}) == text


def test_containers_are_rendered_recursively_and_fresh_each_time() -> None:
    """Objects and arrays are rebuilt per render, so an agent mutating its input harms nothing."""
    template = compile_template({"q": "${inputs.topic}", "fixed": {"list": [1, 2]}, "n": 1.5})
    first = template.render(INPUTS, OUTPUTS)
    assert first == {"q": "cats", "fixed": {"list": [1, 2]}, "n": 1.5}
    first["fixed"]["list"].append(3)
    assert template.render(INPUTS, OUTPUTS)["fixed"]["list"] == [1, 2]


def test_references_are_listed_in_document_order_with_their_locations() -> None:
    """`located_references` pairs each reference with the path of the string holding it."""
    template = compile_template(
        {"a": ["${inputs.topic}", "x ${steps.search.output.q}"], "b c": "${inputs.count}"}
    )
    assert [(suffix, ref.text) for suffix, ref in template.located_references] == [
        (".a[0]", "${inputs.topic}"),
        (".a[1]", "${steps.search.output.q}"),
        ("['b c']", "${inputs.count}"),
    ]
    assert [ref.input_name for ref in template.references] == ["topic", None, "count"]


ROOT = (
    "it must start with 'inputs', 'steps.STEP_ID.output', 'secrets', 'item', 'index',"
    " 'previous' or 'iteration'"
)
AFTER = "expected '.key', '[index]', '[\"key\"]' or '}' after"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("${foo}", f"invalid reference ${{foo}}: {ROOT}"),
        ("${steps.a}", f"invalid reference ${{steps.a}}: {ROOT}"),
        ("${steps.a.outputs}", f"invalid reference ${{steps.a.outputs}}: {ROOT}"),
        ("${inputsx}", f"invalid reference ${{inputsx}}: {ROOT}"),
        ("${inputs.}", f"invalid reference ${{inputs.}}: {AFTER} 'inputs'"),
        ("${inputs.a..b}", f"invalid reference ${{inputs.a..b}}: {AFTER} 'inputs.a'"),
        ("${inputs.a[01]}", f"invalid reference ${{inputs.a[01]}}: {AFTER} 'inputs.a'"),
        ("${inputs.a[-1]}", f"invalid reference ${{inputs.a[-1]}}: {AFTER} 'inputs.a'"),
        ("${inputs['a}", f"invalid reference ${{inputs['a}}: {AFTER} 'inputs'"),
        ("${inputs.topic", "unterminated reference ${inputs.topic (missing '}')"),
    ],
)
def test_malformed_references_are_reported_with_the_reason(template: str, message: str) -> None:
    """Each malformed reference yields one problem quoting it and saying what is wrong."""
    with pytest.raises(WorkflowValidationError) as caught:
        compile_template({"key": template}, path="$.steps[0].input")
    assert [(p.path, p.message) for p in caught.value.problems] == [
        ("$.steps[0].input.key", message)
    ]


def test_every_malformed_reference_is_reported_and_good_ones_still_found() -> None:
    """Scanning goes on after a malformed reference, so one pass reports everything."""
    located, problems = scan_template(
        ["${bad} ${inputs.x} ${worse}", "${inputs.y"], path="$.output"
    )
    assert [path for path, _ in located] == ["$.output[0]"]
    assert [(p.path, p.message.split(":")[0]) for p in problems] == [
        ("$.output[0]", "invalid reference ${bad}"),
        ("$.output[0]", "invalid reference ${worse}"),
        ("$.output[1]", "unterminated reference ${inputs.y (missing '}')"),
    ]


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("${inputs.missing}", "${inputs.missing}: inputs has no key 'missing'"),
        (
            "${inputs.tags[2]}",
            "${inputs.tags[2]}: index 2 is out of range for inputs.tags (length 2)",
        ),
        ("${inputs.topic.x}", "${inputs.topic.x}: inputs.topic is a string, not an object"),
        ("${inputs.topic[0]}", "${inputs.topic[0]}: inputs.topic is a string, not an array"),
        (
            "${inputs['a key'][0]}",
            "${inputs['a key'][0]}: inputs['a key'] is an object, not an array",
        ),
        (
            "${steps.search.output.items[0].nope}",
            "${steps.search.output.items[0].nope}: steps.search.output.items[0] has no key 'nope'",
        ),
        (
            "${steps.empty.output.x}",
            "${steps.empty.output.x}: steps.empty.output is null, not an object",
        ),
        ("${steps.later.output}", "${steps.later.output}: step 'later' has no output"),
        ("see ${inputs.missing}", "${inputs.missing}: inputs has no key 'missing'"),
    ],
)
def test_resolution_errors_name_the_reference_and_the_gap(template: str, message: str) -> None:
    """A reference without a value raises `ReferenceResolutionError` naming it."""
    with pytest.raises(ReferenceResolutionError) as caught:
        render(template)
    assert str(caught.value) == message
    assert caught.value.reference in template
    assert isinstance(caught.value, WorkflowError)
    assert isinstance(caught.value, LookupError)


def test_templates_are_equal_by_their_source() -> None:
    """Two compilations of the same JSON value are equal; different values are not."""
    assert compile_template({"a": "${inputs.x}"}) == compile_template({"a": "${inputs.x}"})
    assert compile_template({"a": "${inputs.x}"}) != compile_template({"a": "${inputs.y}"})


def test_rendering_walks_the_compiled_nodes_and_resolves_each_reference_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rendering a step input parses nothing again and resolves each reference exactly once."""
    template = compile_template(
        {
            "prompt": "Summarise ${steps.search.output.q} for ${inputs.topic}",
            "n": 3,
            "options": {"tags": "${inputs.tags}", "first": "${steps.search.output.items[0].url}"},
        }
    )

    def parse_again(*args: object) -> NoReturn:
        raise AssertionError("a template was parsed again while rendering")

    monkeypatch.setattr(expressions, "parse_reference", parse_again)
    monkeypatch.setattr(expressions._Compiler, "compile", parse_again)
    resolved: list[str] = []
    resolve = Reference.resolve

    def resolve_and_record(
        reference: Reference,
        inputs: Mapping[str, Any],
        step_outputs: Mapping[str, Any],
        local_values: Mapping[str, Any] | None = None,
    ) -> Any:
        resolved.append(reference.text)
        return resolve(reference, inputs, step_outputs, local_values)

    monkeypatch.setattr(Reference, "resolve", resolve_and_record)
    for _ in range(3):
        assert template.render(INPUTS, OUTPUTS) == {
            "prompt": "Summarise cats for cats",
            "n": 3,
            "options": {"tags": ["a", "b"], "first": "u1"},
        }
    assert resolved == [reference.text for reference in template.references] * 3
    assert len(template.references) == 4

"""The adherence score: `expect` compiled at load, each dimension 0-100, the overall mean."""

from __future__ import annotations

import re
from typing import Any

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from orchestr8._errors import TemplateError
from orchestr8._llm._scoring import Score, compile_expect, score_reply


def _score(expect: Any, text: str) -> Score:
    async def main() -> Score:
        return await score_reply(expect, text)

    return trio.run(main)


def test_each_dimension_is_the_share_of_its_checks_that_passed() -> None:
    """Structure, constraints and completeness are 100 x passed / checks; overall their mean."""
    expect = {
        "structure": {"required_tags": ["summary", "risks"]},
        "constraints": {"max_words": 100, "must_include": ["tea", "coffee"], "regex": "^<"},
        "completeness": {"sections": ["summary", "risks", "costs", "next steps"]},
    }
    text = "<summary>tea is good</summary>\n<risks>none</risks>"
    score = _score(expect, text)
    assert score.structure == 100.0
    assert score.constraints == 75.0
    assert score.completeness == 50.0
    assert score.overall == pytest.approx(75.0)
    assert [check.check for check in score.details] == [
        "tag: summary",
        "tag: risks",
        "max_words",
        "must_include: tea",
        "must_include: coffee",
        "regex: ^<",
        "section: summary",
        "section: risks",
        "section: costs",
        "section: next steps",
    ]


def test_an_undeclared_dimension_is_none_not_zero() -> None:
    """Only the declared dimensions are scored; the overall is their mean."""
    score = _score({"constraints": {"max_chars": 3}}, "abcd")
    assert (score.structure, score.constraints, score.completeness) == (None, 0.0, None)
    assert score.overall == 0.0
    assert score.to_json() == {
        "structure": None,
        "constraints": 0.0,
        "completeness": None,
        "overall": 0.0,
        "details": [
            {
                "dimension": "constraints",
                "check": "max_chars",
                "passed": False,
                "detail": "4 characters, at most 3",
            }
        ],
    }


def test_a_json_schema_structure_and_json_sections() -> None:
    """A JSON reply is checked against the schema, and its keys count as sections."""
    expect = {
        "structure": {"json_schema": {"type": "object", "required": ["title"]}},
        "completeness": {"sections": ["title", "body"]},
    }
    score = _score(expect, '```json\n{"title": "T"}\n```')
    assert (score.structure, score.completeness) == (100.0, 50.0)


def test_sections_without_a_judge_given_are_judged_by_presence() -> None:
    """A declared judge with no judge passed falls back to the presence rule."""
    expect = {"completeness": {"sections": ["Risks"], "judge": {"model": "anthropic:m", "k": 2}}}
    score = _score(expect, "## Risks\n")
    assert score.completeness == 100.0
    assert score.judge is None


def test_compiled_expectations_are_reused() -> None:
    """`score_reply` takes compiled expectations as well as an `expect` object."""
    expectations = compile_expect({"constraints": {"must_include": "x"}})
    assert _score(expectations, "x").constraints == 100.0
    assert expectations.judge is None


@pytest.mark.parametrize(
    ("expect", "problem"),
    [
        ([], "expect: must be an object, got []"),
        ({}, "expect: declare at least one of structure, constraints, completeness"),
        (
            {"style": {}},
            "expect: unknown key 'style' (known: completeness, constraints, structure)",
        ),
        ({"structure": {}}, "expect.structure: declare json_schema, required_tags or both"),
        (
            {"structure": {"json_schema": {"type": 1}}},
            "expect.structure.json_schema: is not a valid JSON Schema",
        ),
        (
            {"structure": {"required_tags": ["a b"]}},
            "expect.structure.required_tags: 'a b' is not an XML element name",
        ),
        ({"constraints": {}}, "expect.constraints: must be a non-empty object of checkers"),
        (
            {"constraints": {"max_word": 3}},
            "expect.constraints: unknown checker 'max_word' (known: json_keys, max_chars,",
        ),
        ({"constraints": {"max_words": "3"}}, "expect.constraints.max_words: must be a whole"),
        ({"completeness": {"sections": []}}, "expect.completeness.sections: must be a non-empty"),
        ({"completeness": {"sections": ["a", "a"]}}, "expect.completeness.sections: names a"),
        (
            {"completeness": {"sections": ["a"], "judge": {"model": "claude"}}},
            "expect.completeness.judge.model: must name a provider and a model",
        ),
        (
            {"completeness": {"sections": ["a"], "judge": {"model": "a:b", "k": 0}}},
            "expect.completeness.judge.k: must be a whole number from 1 to 20, got 0",
        ),
        (
            {"completeness": {"sections": ["a"], "judge": {"model": "a:b", "k": True}}},
            "expect.completeness.judge.k: must be a whole number from 1 to 20, got True",
        ),
    ],
)
def test_a_bad_expect_is_a_template_error_at_its_path(expect: Any, problem: str) -> None:
    """Every problem of an `expect` object names its JSON path and what is wrong."""
    with pytest.raises(TemplateError, match="^" + re.escape(problem)):
        compile_expect(expect)


_EXPECT = {
    "structure": {"required_tags": ["a", "b"]},
    "constraints": {
        "max_words": 5,
        "min_words": 1,
        "max_chars": 40,
        "must_include": ["x", "<a>"],
        "must_not_include": "y",
        "json_keys": ["k"],
        "regex": r"\d",
    },
    "completeness": {"sections": ["a", "Intro"]},
}


@given(st.text(alphabet=st.sampled_from('ab<>/xyk#: \n{}"1'), max_size=60))
def test_every_score_is_between_0_and_100(text: str) -> None:
    """Whatever the reply, each dimension and the overall stay within 0..100."""
    score = _score(_EXPECT, text)
    for value in (score.structure, score.constraints, score.completeness, score.overall):
        assert value is not None
        assert 0.0 <= value <= 100.0

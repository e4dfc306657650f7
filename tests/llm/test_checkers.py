"""The adherence checks: each constraint checker, the structure checks and section presence."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestr8._llm._checkers import (
    CONSTRAINT_CHECKERS,
    JsonSchemaCheck,
    compile_constraint,
    compile_tags,
    parse_reply_json,
    required_tag_checks,
    section_present,
)


def _verdicts(name: str, argument: object, text: str) -> list[tuple[str, bool, str]]:
    checks = compile_constraint(name, argument).run(text)
    return [(check.check, check.passed, check.detail) for check in checks]


def test_word_limits_count_runs_of_non_whitespace() -> None:
    """`max_words` and `min_words` count `str.split()` words and say the count and the bound."""
    text = "one two\nthree\tfour"
    assert _verdicts("max_words", 3, text) == [("max_words", False, "4 words, at most 3")]
    assert _verdicts("max_words", 4, text) == [("max_words", True, "4 words, at most 4")]
    assert _verdicts("min_words", 5, text) == [("min_words", False, "4 words, at least 5")]


def test_max_chars_counts_characters() -> None:
    """`max_chars` passes up to and including the limit."""
    assert _verdicts("max_chars", 3, "abc") == [("max_chars", True, "3 characters, at most 3")]
    assert _verdicts("max_chars", 2, "abc")[0][1] is False


def test_phrases_match_case_insensitively_one_check_each() -> None:
    """`must_include` and `must_not_include` make one check per phrase, ignoring case."""
    text = "The RISK is low."
    assert _verdicts("must_include", ["risk", "cost"], text) == [
        ("must_include: risk", True, "found"),
        ("must_include: cost", False, "not found"),
    ]
    assert _verdicts("must_not_include", "risk", text) == [
        ("must_not_include: risk", False, "found")
    ]


def test_json_keys_reads_the_reply_or_its_code_block() -> None:
    """`json_keys` checks top-level keys of a JSON object reply, fenced or not."""
    fenced = 'Here:\n```json\n{"title": "x"}\n```'
    assert _verdicts("json_keys", ["title", "body"], fenced) == [
        ("json_keys: title", True, "present"),
        ("json_keys: body", False, "missing"),
    ]
    assert _verdicts("json_keys", "a", "[1]") == [
        ("json_keys: a", False, "the reply is JSON but not an object")
    ]
    [(_, passed, detail)] = _verdicts("json_keys", "a", "not json")
    assert not passed
    assert detail.startswith("the reply is not JSON")


def test_a_fenced_block_that_is_not_json_says_so() -> None:
    """A code block that does not parse is named as the problem."""
    parsed, _, problem = parse_reply_json("text\n```\n{oops\n```")
    assert not parsed
    assert problem.startswith("the reply's code block is not JSON")


def test_regex_searches_each_line() -> None:
    """`regex` passes when the pattern is found anywhere, `^` matching at any line."""
    assert _verdicts("regex", "^## Risks", "intro\n## Risks\n") == [
        ("regex: ^## Risks", True, "matches")
    ]
    assert _verdicts("regex", ["^x$"], "y") == [("regex: ^x$", False, "no match")]


@pytest.mark.parametrize(
    ("name", "argument", "problem"),
    [
        ("max_words", -1, "must be a whole number >= 0, got -1"),
        ("max_words", True, "must be a whole number >= 0, got True"),
        ("must_include", [], "must be a non-empty string or a non-empty list of them, got []"),
        ("json_keys", [""], "must be a non-empty key or a non-empty list of them"),
        ("regex", "(", "'(' is not a valid regular expression"),
        ("max_word", 3, "unknown checker 'max_word' (known: json_keys, max_chars, max_words"),
    ],
)
def test_bad_arguments_are_refused_when_compiled(name: str, argument: object, problem: str) -> None:
    """A bad argument or an unknown checker is a `ValueError` saying what is wrong."""
    with pytest.raises(ValueError, match=r"^" + __import__("re").escape(problem)):
        compile_constraint(name, argument)


def test_the_known_checkers() -> None:
    """The seven checkers the docs list, no more."""
    assert sorted(CONSTRAINT_CHECKERS) == [
        "json_keys",
        "max_chars",
        "max_words",
        "min_words",
        "must_include",
        "must_not_include",
        "regex",
    ]


def test_json_schema_check_names_the_problems() -> None:
    """The structure check parses the reply and lists the first schema problems by path."""
    check = JsonSchemaCheck(
        {
            "type": "object",
            "required": ["a", "b", "c", "d"],
            "properties": {"a": {"type": "string"}},
        }
    )
    assert check.run('{"a": "x", "b": 1, "c": 2, "d": 3}').passed
    failed = check.run('{"a": 1}')
    assert not failed.passed
    assert failed.detail.startswith("$: 'b' is a required property; ")
    assert "$.a: 1 is not of type 'string'" not in failed.detail
    assert failed.detail.endswith("(and 1 more)")
    assert check.run("nope").detail.startswith("the reply is not JSON")


def test_json_schema_check_refuses_a_bad_schema() -> None:
    """A schema that is not an object, or not a valid schema, is refused when compiled."""
    with pytest.raises(ValueError, match="must be a JSON Schema object"):
        JsonSchemaCheck([])
    with pytest.raises(ValueError, match="is not a valid JSON Schema"):
        JsonSchemaCheck({"type": 3})


def test_required_tags_need_an_opening_and_a_closing_tag() -> None:
    """Each tag is one check: present, never closed, or missing."""
    text = '<summary lang="en">ok</summary><risks>open'
    checks = required_tag_checks(compile_tags(["summary", "risks", "cost"]), text)
    assert [(check.check, check.passed, check.detail) for check in checks] == [
        ("tag: summary", True, "present"),
        ("tag: risks", False, "<risks> is never closed"),
        ("tag: cost", False, "missing"),
    ]
    with pytest.raises(ValueError, match="'1a' is not an XML element name"):
        compile_tags(["1a"])


@pytest.mark.parametrize(
    ("text", "how"),
    [
        ("## Risks\nnone", "heading"),
        ("# risks:", "heading"),
        ("Risks: none", "label"),
        ("- **Risks**\n", "label"),
        ("<risks>none</risks>", "tag"),
    ],
)
def test_a_section_is_found_by_heading_label_or_tag(text: str, how: str) -> None:
    """Headings, labels and tags count as a section, names matched ignoring case."""
    assert section_present("Risks", text, None) == (True, how)


def test_a_section_is_found_as_a_json_key() -> None:
    """A top-level key of a JSON object reply counts as a section."""
    assert section_present("Risks", "{}", {"risks": []}) == (True, "key")
    assert section_present("Risks", "Risks are low", None) == (False, "missing")


@given(st.text(), st.integers(min_value=0, max_value=50))
def test_word_limits_agree_with_the_count(text: str, limit: int) -> None:
    """`max_words` passes exactly when `min_words` at limit + 1 fails."""
    at_most = compile_constraint("max_words", limit).run(text)[0].passed
    at_least = compile_constraint("min_words", limit + 1).run(text)[0].passed
    assert at_most != at_least

"""Specifications of strict JSON: reading, the value checks, lone surrogates and the encoder."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestr8 import JSON
from orchestr8._json import (
    MAX_DEPTH,
    OversizedInteger,
    append_path,
    encode_json,
    escape_lone_surrogates,
    has_lone_surrogate,
    json_value,
    json_value_problems,
    make_encoder,
    parse_strict,
)


@pytest.mark.parametrize(
    ("text", "lone"),
    [("", False), ("plain", False), ("é😀", False), ("\ud800", True), ("a\udfffb", True)],
)
def test_has_lone_surrogate_finds_what_utf8_cannot_encode(text: str, lone: bool) -> None:
    """Only lone surrogates count; paired characters such as emoji are text."""
    assert has_lone_surrogate(text) is lone


@given(st.text(st.characters(codec="utf-8")))
def test_text_that_utf8_encodes_has_no_lone_surrogate(text: str) -> None:
    """Whatever UTF-8 can encode passes the rule."""
    text.encode("utf-8")
    assert not has_lone_surrogate(text)


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        ({1, 2}, TypeError, "set is not JSON serializable"),
        ({"x": float("nan")}, ValueError, "Out of range float"),
        (10**5000, ValueError, "Exceeds the limit"),
        ([{"deep": 10**5000}], ValueError, "Exceeds the limit"),
        ({1: "a", "1": "b"}, ValueError, "two keys are both '1' once written as JSON strings"),
    ],
    ids=["set", "nan", "huge-int", "nested-huge-int", "colliding-keys"],
)
def test_json_value_refuses_what_the_journal_could_not_hold(
    value: Any, error: type[Exception], message: str
) -> None:
    """Non-JSON types, NaN, ints too long to write and colliding keys are refused."""
    with pytest.raises(error, match=re.escape(message)):
        json_value(value)


@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(),
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(st.text(max_size=4), children, max_size=3)
        ),
        max_leaves=8,
    )
)
def test_json_value_gives_back_what_json_reads_back(value: Any) -> None:
    """For JSON values, json_value is the JSON round trip (plain scalars come back as they are)."""
    assert json_value(value) == json.loads(json.dumps(value))


def test_parse_strict_records_each_repeated_key_by_object() -> None:
    """Duplicate keys are kept (the last wins, as in JSON) and named for the object holding them."""
    document, duplicates = parse_strict('{"a": 1, "inner": {"b": 1, "b": 2}, "a": 3}')
    assert document == {"a": 3, "inner": {"b": 2}}
    assert duplicates == {id(document): ["a"], id(document["inner"]): ["b"]}
    problems = json_value_problems(document, duplicates=duplicates)
    assert {str(problem) for problem in problems} == {
        "$: duplicate key 'a'",
        "$.inner: duplicate key 'b'",
    }


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_parse_strict_refuses_non_finite_constants(constant: str) -> None:
    """NaN and the infinities, which Python's json reads, are refused with their name."""
    with pytest.raises(ValueError, match=f"{re.escape(constant)} is not valid JSON"):
        parse_strict(f"[{constant}]")


def test_parse_strict_locates_an_integer_too_long_to_convert() -> None:
    """An integer too long for Python to convert is a marker naming its path, not a failed parse."""
    document, duplicates = parse_strict('{"n": [' + "9" * 5000 + "]}")
    assert document == {"n": [OversizedInteger(5000)]}
    [problem] = json_value_problems(document, duplicates=duplicates)
    assert problem.path == "$.n[0]"
    assert "5000 digits" in problem.message


def test_json_value_problems_stop_at_the_depth_limit() -> None:
    """Nesting deeper than MAX_DEPTH is one problem at the level where it begins."""
    value: Any = []
    for _ in range(MAX_DEPTH + 5):
        value = [value]
    [problem] = json_value_problems(value)
    assert problem.message == f"nested deeper than {MAX_DEPTH} levels"
    assert problem.path == "$" + "[0]" * MAX_DEPTH


@pytest.mark.parametrize(
    ("segment", "expected"),
    [
        ("name", "$.name"),
        (3, "$[3]"),
        ("a b", "$['a b']"),
        ("x-y", "$['x-y']"),
        ("it's", "$['it\\'s']"),
        ("name\n", "$['name\\n']"),
        ("a\u0000", "$['a\\x00']"),
    ],
)
def test_append_path_matches_jsonschema_paths(segment: str | int, expected: str) -> None:
    """Paths use `.key` for plain keys, else `['key']` (unprintables escaped), and `[N]`."""
    assert append_path("$", segment) == expected


@given(st.text())
def test_escaped_text_is_utf8_and_decodes_to_the_same_string(text: str) -> None:
    """Encoding escapes exactly the lone surrogates: the text is UTF-8 and reads back unchanged."""
    encoded = escape_lone_surrogates(json.dumps(text, ensure_ascii=False))
    encoded.encode("utf-8")
    assert json.loads(encoded) == text
    assert encode_json(text) == encoded


@given(st.lists(st.text() | st.integers() | st.none(), max_size=4))
def test_the_reused_encoder_writes_what_encode_json_writes(value: list[Any]) -> None:
    """`make_encoder`'s function and `encode_json` agree on every value."""
    assert make_encoder()(value) == encode_json(value)


def test_the_encoder_refuses_nan() -> None:
    """Stored values are strict JSON: NaN and infinity are refused, not written as `NaN`."""
    with pytest.raises(ValueError, match="Out of range float"):
        encode_json({"x": float("nan")})


def test_the_json_alias_takes_what_callers_write() -> None:
    """Nested literals, `dict[str, Any]` and annotated dicts are JSON (mypy checks this file)."""
    annotated: dict[str, JSON] = {"topic": "cats", "n": 3, "tags": ["a"], "deep": {"x": None}}
    loose: dict[str, Any] = {"anything": 1}
    nested = {"plain": {"b": [1, 2.5, True]}}
    values: list[Mapping[str, JSON]] = [annotated, loose, nested]
    assert [len(value) for value in values] == [4, 1, 1]

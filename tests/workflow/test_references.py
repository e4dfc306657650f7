"""Tests for one `${...}` reference: parsing its syntax and resolving it against values."""

from __future__ import annotations

from typing import Any

import pytest

from orchestr8._errors import ReferenceResolutionError
from orchestr8._workflow._references import Reference, json_type_name, parse_reference


def test_parse_reference_returns_the_structure_and_the_end() -> None:
    """Parsing splits the source, the step id and the path of keys and indexes."""
    text = "x ${steps.search.output.items[2]['a b'].c} y"
    reference, end = parse_reference(text, 2)
    assert reference == Reference("steps", "search", ("items", 2, "a b", "c"), text[2:end])
    assert text[end:] == " y"


def test_a_reference_resolves_through_objects_and_arrays() -> None:
    """Resolving walks keys and indexes into the step's output or the inputs."""
    reference, _ = parse_reference("${steps.search.output.items[1].url}")
    outputs = {"search": {"items": [{"url": "u1"}, {"url": "u2"}]}}
    assert reference.resolve({}, outputs) == "u2"
    assert parse_reference("${inputs.topic}")[0].resolve({"topic": "cats"}, {}) == "cats"


def test_an_unbound_secret_reference_does_not_resolve() -> None:
    """A `${secrets.NAME}` left in place is an error naming it, never an empty value."""
    reference, _ = parse_reference("${secrets.API_KEY}")
    assert reference.secret_name == "API_KEY"
    with pytest.raises(ReferenceResolutionError, match=r"^\$\{secrets\.API_KEY\}: secrets are"):
        reference.resolve({}, {})


@pytest.mark.parametrize(
    ("value", "name"),
    [
        (None, "null"),
        (True, "a boolean"),
        (1, "an integer"),
        (1.5, "a number"),
        ("x", "a string"),
        ({}, "an object"),
        ([], "an array"),
        ((), "an array"),
        (object(), "a object (not JSON)"),
    ],
)
def test_json_type_names_read_well_in_messages(value: Any, name: str) -> None:
    """Each JSON type has the name messages use; anything else says it is not JSON."""
    assert json_type_name(value) == name

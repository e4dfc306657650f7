"""Tests for checking execution inputs against a workflow's `inputs` schema."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from orchestr8._errors import InputValidationError
from orchestr8._workflow._codec import load_workflow
from orchestr8._workflow._inputs import validate_inputs

MINIMAL: dict[str, Any] = {
    "schema_version": "1.0",
    "name": "minimal",
    "steps": [{"id": "a", "agent": "echo", "input": {"q": "${inputs.topic}"}}],
}


def with_changes(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(json.dumps(MINIMAL))
    document.update(changes)
    return document


def test_validate_inputs_applies_defaults_and_returns_a_new_dict() -> None:
    """Top-level defaults fill missing inputs (as copies); given values are kept."""
    loaded = load_workflow(
        with_changes(
            inputs={
                "type": "object",
                "properties": {
                    "topic": {"type": "string"},
                    "tags": {"type": "array", "default": ["x"]},
                },
                "required": ["topic", "tags"],
            }
        )
    )
    given_inputs = {"topic": "cats"}
    checked = validate_inputs(loaded, given_inputs)
    assert checked == {"topic": "cats", "tags": ["x"]}
    assert given_inputs == {"topic": "cats"}
    checked["tags"].append("y")
    assert validate_inputs(loaded, {"topic": "dogs"})["tags"] == ["x"]


def test_validate_inputs_reports_every_problem_under_dollar_inputs() -> None:
    """Missing, mistyped and badly formatted inputs are each reported at `$.inputs...`."""
    loaded = load_workflow(
        with_changes(
            inputs={
                "type": "object",
                "properties": {
                    "topic": {"type": "string"},
                    "count": {"type": "integer", "minimum": 1},
                    "day": {"type": "string", "format": "date"},
                },
                "required": ["topic"],
                "additionalProperties": False,
            }
        )
    )
    with pytest.raises(InputValidationError) as caught:
        validate_inputs(loaded, {"count": True, "day": "yesterday", "extra": 1})
    assert [str(problem) for problem in caught.value.problems] == [
        "$.inputs: missing required key 'topic'",
        "$.inputs: unknown key 'extra'",
        "$.inputs.count: expected an integer, got a boolean",
        "$.inputs.day: 'yesterday' is not a valid date",
    ]


def test_validate_inputs_handles_none_non_objects_and_non_json_values() -> None:
    """No inputs means `{}`; a non-object or a value JSON cannot hold is a problem."""
    loaded = load_workflow(MINIMAL)
    assert validate_inputs(loaded) == {}
    assert validate_inputs(loaded, None) == {}
    with pytest.raises(InputValidationError, match=r"\$\.inputs: expected an object, got an array"):
        validate_inputs(loaded, [1])  # type: ignore[arg-type]
    with pytest.raises(InputValidationError, match=r"\$\.inputs\.when: not a JSON value"):
        validate_inputs(loaded, {"when": time})


def test_validate_inputs_reports_an_unresolvable_reference_in_the_schema() -> None:
    """A `$ref` that cannot be resolved is a problem, not a traceback (and nothing is fetched)."""
    loaded = load_workflow(
        with_changes(inputs={"type": "object", "properties": {"topic": {"$ref": "#/$defs/nope"}}})
    )
    with pytest.raises(InputValidationError, match="unresolvable"):
        validate_inputs(loaded, {"topic": 1})

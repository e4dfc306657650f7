"""Tests for turning JSON Schema errors into short, located, sorted problems."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator

from orchestr8._errors import Problem
from orchestr8._workflow._schema_problems import schema_problems, sort_problems


def messages(schema: dict[str, Any], instance: Any, prefix: str = "$") -> list[str]:
    errors = Draft202012Validator(schema).iter_errors(instance)
    return [str(problem) for problem in sort_problems(schema_problems(errors, prefix=prefix))]


def test_schema_errors_become_short_messages() -> None:
    """Each kind of JSON Schema error has its own plain message."""
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "mode": {"enum": ["dag", "sequential"]},
            "count": {"type": "integer", "minimum": 1},
            "ratio": {"type": "number", "exclusiveMinimum": 0},
            "items": {"type": "array", "minItems": 1},
            "either": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            "shape": {"anyOf": [{"type": "string"}, {"type": "object", "required": ["id"]}]},
        },
        "required": ["name", "needed"],
        "additionalProperties": False,
    }
    instance = {
        "mode": "dg",
        "count": 0,
        "ratio": 0,
        "items": [],
        "either": 3,
        "shape": {},
        "nmae": 1,
    }
    assert messages(schema, instance, prefix="$.doc") == [
        "$.doc: missing required key 'name'",
        "$.doc: missing required key 'needed'",
        "$.doc: unknown key 'nmae' (did you mean 'name'?)",
        "$.doc.count: must be at least 1, got 0",
        "$.doc.either: expected a string or null, got an integer",
        "$.doc.items: must not be empty",
        "$.doc.mode: expected one of 'dag', 'sequential', got 'dg'",
        "$.doc.ratio: must be greater than 0, got 0",
        "$.doc.shape: missing required key 'id'",
    ]


def test_problems_sort_by_path_with_numeric_indexes_and_without_duplicates() -> None:
    """`$.steps[2]` comes before `$.steps[10]`, and a repeated problem appears once."""
    unsorted = [
        Problem("$.steps[10].id", "x"),
        Problem("$.steps[2].id", "x"),
        Problem("$.steps", "cycle"),
        Problem("$.name", "x"),
        Problem("$.steps[2].id", "x"),
        Problem("$", "root"),
    ]
    assert [problem.path for problem in sort_problems(unsorted)] == [
        "$",
        "$.name",
        "$.steps",
        "$.steps[2].id",
        "$.steps[10].id",
    ]

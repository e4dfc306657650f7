"""A workflow's `inputs` JSON Schema: checked against the meta-schema, and the names it declares.

The `inputs` schema is the user's own JSON Schema, so it is checked as one (against the Draft
2020-12 meta-schema, once per distinct schema) and must describe an object. The names it declares
let the graph checks refuse `${inputs.x}` references to inputs that cannot exist.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from typing import Any, Final

import attrs
from jsonschema import Draft202012Validator

from .._errors import Problem
from ._schema_problems import schema_problems


@attrs.frozen
class KnownNames:
    """Decides whether a property name is declared by an object schema (names or patterns)."""

    names: tuple[str, ...]
    patterns: tuple[str, ...]

    def __call__(self, name: str) -> bool:
        """Tell whether `name` is declared (a pattern that is not a valid regex matches all)."""
        return name in self.names or any(_matches(pattern, name) for pattern in self.patterns)


def _matches(pattern: str, name: str) -> bool:
    try:
        return re.search(pattern, name) is not None
    except re.error:
        return True


def declared_names(schema: Any) -> KnownNames | None:
    """None when any name may be valid: no `properties`, or `additionalProperties` not false."""
    if not isinstance(schema, Mapping) or not isinstance(schema.get("properties"), Mapping):
        return None
    if schema.get("additionalProperties", False) is not False:
        return None
    patterns = schema.get("patternProperties")
    return KnownNames(
        names=tuple(schema["properties"]),
        patterns=tuple(patterns) if isinstance(patterns, Mapping) else (),
    )


_META_VALIDATOR: Final = Draft202012Validator(
    Draft202012Validator.META_SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER
)


def inputs_schema_problems(schema: Any) -> list[Problem]:
    """Check that `inputs` is a valid JSON Schema describing an object."""
    if not isinstance(schema, Mapping):
        return []
    return list(_inputs_schema_problems(json.dumps(schema, sort_keys=True, default=repr)))


@functools.lru_cache(maxsize=256)
def _inputs_schema_problems(text: str) -> tuple[Problem, ...]:
    """Validate a schema against the meta-schema once per distinct schema: it takes milliseconds."""
    schema = json.loads(text)
    problems = schema_problems(_META_VALIDATOR.iter_errors(schema), prefix="$.inputs")
    kind = schema.get("type", "object")
    if not problems and not (kind == "object" or (isinstance(kind, list) and "object" in kind)):
        problems.append(Problem("$.inputs.type", "the inputs must be described as an 'object'"))
    return tuple(problems)

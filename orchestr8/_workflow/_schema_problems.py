"""Readable problems from JSON Schema errors: short messages at JSON paths, in a stable order.

`jsonschema` reports what failed in its own words (`'x' is not of type 'integer'`, a whole
`anyOf` tree); users get one short line per problem at its JSON path (`$.steps[1].policy.timeout:
expected a number, got a string`), unknown keys with a "did you mean", the alternative a value was
meant for, and problems sorted by path (indexes numerically) without duplicates.
"""

from __future__ import annotations

import difflib
import json
import re
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from jsonschema import ValidationError

from .._errors import Problem
from .._json import LARGEST_NUMBER, append_path
from ._references import json_type_name

_TYPE_NAMES = {
    "object": "an object",
    "array": "an array",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "null": "null",
}


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """Return ` (did you mean 'x'?)` for the closest candidate, or an empty string."""
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean '{matches[0]}'?)" if matches else ""


def show_value(value: Any) -> str:
    """Quote a JSON value for a message: strings in single quotes, the rest as short JSON.

    Characters that are not printable (a newline, a NUL) are shown escaped, so a message stays
    one line and says what is there.
    """
    if isinstance(value, str):
        shown = "".join(
            char if char.isprintable() else char.encode("unicode_escape").decode("ascii")
            for char in value
        )
        text = f"'{shown}'"
    else:
        text = json.dumps(value, default=repr)
    return text if len(text) <= 60 else text[:57] + "..."


def schema_problems(
    errors: Iterable[ValidationError],
    *,
    prefix: str = "$",
    pattern_names: Mapping[str, str] | None = None,
) -> list[Problem]:
    """Turn `jsonschema` errors into problems with short messages and paths under `prefix`.

    Args:
        errors: the errors, e.g. from `Draft202012Validator.iter_errors`.
        prefix: the JSON path the validated instance sits at (`$.inputs` for execution inputs).
        pattern_names: what each `pattern` means, e.g. a step id, for friendlier messages.
    """
    problems: list[Problem] = []
    for error in errors:
        problems.extend(_translate(error, prefix, pattern_names or {}))
    return problems


def _translate(
    error: ValidationError, prefix: str, pattern_names: Mapping[str, str]
) -> list[Problem]:
    path = prefix
    for segment in error.absolute_path:
        path = append_path(path, segment)
    keyword, expected, instance = error.validator, error.validator_value, error.instance
    if keyword == "additionalProperties" and isinstance(instance, Mapping):
        allowed = error.schema.get("properties", {}) if isinstance(error.schema, Mapping) else {}
        return [
            Problem(path, f"unknown key '{key}'{did_you_mean(key, allowed)}")
            for key in instance
            if key not in allowed
        ]
    if keyword == "required" and isinstance(instance, Mapping):
        return [
            Problem(path, f"missing required key '{key}'")
            for key in typing.cast("list[str]", expected)
            if key not in instance
        ]
    if keyword in ("anyOf", "oneOf"):
        return _translate_alternatives(error, path, prefix, pattern_names)
    if keyword == "uniqueItems" and isinstance(instance, Sequence):
        return [
            Problem(f"{path}[{index}]", f"{show_value(instance[index])} is listed twice")
            for index in _repeated_indexes(instance)
        ]
    return [Problem(path, _message(keyword, expected, instance, pattern_names, error.message))]


def _message(
    keyword: Any, expected: Any, instance: Any, pattern_names: Mapping[str, str], fallback: str
) -> str:
    if keyword == "type":
        return f"expected {_expected_kind(keyword, expected)}, got {json_type_name(instance)}"
    if keyword in ("enum", "const"):
        return f"expected {_expected_kind(keyword, expected)}, got {show_value(instance)}"
    if keyword == "minimum":
        return f"must be at least {expected}, got {show_value(instance)}"
    if keyword == "exclusiveMinimum":
        return f"must be greater than {expected}, got {show_value(instance)}"
    if keyword == "maximum" and expected == LARGEST_NUMBER:
        return too_large_message(instance)
    if keyword == "maximum":
        return f"must be at most {expected}, got {show_value(instance)}"
    if keyword == "exclusiveMaximum":
        return f"must be less than {expected}, got {show_value(instance)}"
    if keyword == "format":
        return f"{show_value(instance)} is not a valid {expected}"
    if keyword in ("minItems", "minLength") and expected == 1:
        return "must not be empty"
    if keyword == "pattern" and expected in pattern_names:
        return f"{show_value(instance)} is not {pattern_names[expected]}"
    return fallback


def too_large_message(value: Any) -> str:
    """Say that a number is beyond the largest a float holds (schema and attrs checks alike)."""
    return (
        f"must be at most {LARGEST_NUMBER!r} (the largest number a float holds), "
        f"got {show_value(value)}"
    )


def _repeated_indexes(items: Sequence[Any]) -> list[int]:
    """The indexes of the items equal, as JSON (1 and 1.0 alike), to an earlier one."""
    seen: set[str] = set()
    repeated: list[int] = []
    for index, item in enumerate(items):
        if isinstance(item, float) and item.is_integer():
            item = int(item)
        key = json.dumps(item, sort_keys=True, default=repr)
        if key in seen:
            repeated.append(index)
        seen.add(key)
    return repeated


def _expected_kind(keyword: Any, expected: Any) -> str:
    if keyword == "type":
        kinds = [expected] if isinstance(expected, str) else list(expected)
        return " or ".join(_TYPE_NAMES.get(kind, kind) for kind in kinds)
    if keyword == "const":
        return show_value(expected)
    return "one of " + ", ".join(show_value(value) for value in expected)


def _translate_alternatives(
    error: ValidationError, path: str, prefix: str, pattern_names: Mapping[str, str]
) -> list[Problem]:
    """Report the branch the value was meant for, or, if it fits none by kind, what was expected."""
    branches: dict[Any, list[ValidationError]] = {}
    for suberror in error.context or ():
        branches.setdefault(suberror.relative_schema_path[0], []).append(suberror)
    mismatches: list[ValidationError] = []
    viable: list[ValidationError] = []
    for suberrors in branches.values():
        kind_errors = [
            suberror
            for suberror in suberrors
            if suberror.validator in ("type", "const", "enum") and not suberror.relative_path
        ]
        if kind_errors:
            mismatches.extend(kind_errors)
        else:
            viable.extend(suberrors)
    if viable:
        return schema_problems(viable, prefix=prefix, pattern_names=pattern_names)
    kinds = list(dict.fromkeys(_expected_kind(e.validator, e.validator_value) for e in mismatches))
    if not kinds:
        return [Problem(path, error.message)]
    by_value = any(mismatch.validator in ("enum", "const") for mismatch in mismatches)
    got = show_value(error.instance) if by_value else json_type_name(error.instance)
    return [Problem(path, f"expected {' or '.join(kinds)}, got {got}")]


_PATH_SEGMENT: Final = re.compile(r"\.([^.\[]+)|\[(\d+)\]|\['((?:[^'\\]|\\.)*)'\]")


def sort_problems(problems: Sequence[Problem]) -> list[Problem]:
    """Sort problems by JSON path (indexes numerically) and drop duplicates, for stable reports."""

    def key(problem: Problem) -> list[tuple[int, int | str]]:
        parts: list[tuple[int, int | str]] = []
        for match in _PATH_SEGMENT.finditer(problem.path):
            index = match.group(2)
            parts.append((0, int(index)) if index else (1, match.group(1) or match.group(3)))
        return parts

    return sorted(dict.fromkeys(problems), key=key)

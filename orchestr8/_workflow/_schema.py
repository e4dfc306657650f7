"""JSON Schema from attrs classes, and readable messages from JSON Schema errors.

The workflow schema is generated, never written by hand: each attrs field contributes a property
whose type comes from its annotation and whose description, constraints and default come from its
metadata (see `schema_metadata`). The same constraints back the attrs validator `obey_schema`, so a
workflow built in Python obeys the rules a JSON document is checked against.

Regenerate the shipped copies after changing the AST::

    python -m orchestr8._workflow._schema > orchestr8/workflow.schema.json
    cp orchestr8/workflow.schema.json docs/workflow.schema.json
"""

from __future__ import annotations

import difflib
import functools
import json
import re
import types
import typing
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, Final, Literal, Union

import attrs
from jsonschema import Draft202012Validator, ValidationError

from .._errors import Problem
from .._json import LARGEST_NUMBER, append_path
from ._expressions import json_type_name

#: The key under which an attrs field's metadata holds its JSON Schema details.
SCHEMA_METADATA = "json_schema"

_NO_DEFAULT: Any = object()


_SIMPLE_TYPES: dict[Any, str] = {
    str: "string",
    bool: "boolean",
    int: "integer",
    float: "number",
    type(None): "null",
}

_TYPE_NAMES = {
    "object": "an object",
    "array": "an array",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "null": "null",
}


def schema_metadata(
    description: str,
    *,
    constraints: Mapping[str, Any] | None = None,
    json_type: Any = None,
    default: Any = _NO_DEFAULT,
    required: bool | None = None,
) -> dict[str, Any]:
    """Build attrs field metadata that both the schema generator and `obey_schema` read.

    Args:
        description: the field's one-line description, shown in editors and the reference.
        constraints: JSON Schema keywords (`minimum`, `exclusiveMinimum`, `pattern`, ...).
        json_type: the type the JSON form accepts, when it differs from the annotation.
        default: the documented default, when it differs from the attrs default.
        required: whether the JSON form must hold the key (default: the field has no default).
    """
    details: dict[str, Any] = {"description": description, "constraints": dict(constraints or {})}
    if json_type is not None:
        details["json_type"] = json_type
    if default is not _NO_DEFAULT:
        details["default"] = default
    if required is not None:
        details["required"] = required
    return {SCHEMA_METADATA: details}


def obey_schema(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    """Check an attrs field against the constraints in its metadata, for workflows built in Python.

    Values that are not numbers, strings or sequences (None, markers) are left to other checks.
    """
    constraints = attribute.metadata.get(SCHEMA_METADATA, {}).get("constraints", {})
    name = attribute.name
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not value <= LARGEST_NUMBER:
            raise ValueError(f"{name} {_too_large(value)}")
        if "minimum" in constraints and not value >= constraints["minimum"]:
            raise ValueError(f"{name} must be at least {constraints['minimum']}, got {value!r}")
        if "exclusiveMinimum" in constraints and not value > constraints["exclusiveMinimum"]:
            limit = constraints["exclusiveMinimum"]
            raise ValueError(f"{name} must be greater than {limit}, got {value!r}")
    elif isinstance(value, str):
        if len(value) < constraints.get("minLength", 0):
            raise ValueError(f"{name} must not be empty")
        if "pattern" in constraints and not re.search(constraints["pattern"], value):
            raise ValueError(f"{name} {value!r} does not match {constraints['pattern']}")
    elif isinstance(value, tuple) and len(value) < constraints.get("minItems", 0):
        # `uniqueItems` is left to the workflow's graph analysis, which names every repeat's index.
        raise ValueError(f"{name} must not be empty")


def add_schema_checks(cls: type, fields: list[attrs.Attribute[Any]]) -> list[attrs.Attribute[Any]]:
    """An attrs field transformer giving every field with constraints the `obey_schema` check."""
    checked: list[attrs.Attribute[Any]] = []
    for field in fields:
        if field.metadata.get(SCHEMA_METADATA, {}).get("constraints"):
            validator: Any = obey_schema
            if field.validator is not None:
                validator = attrs.validators.and_(field.validator, obey_schema)
            field = field.evolve(validator=validator)
        checked.append(field)
    return checked


def schema_for_class(
    root: type, *, title: str, schema_id: str, absent: Collection[Any] = ()
) -> dict[str, Any]:
    """Generate a Draft 2020-12 JSON Schema for an attrs class and every attrs class it holds.

    Args:
        root: the attrs class the document as a whole structures into.
        title: the schema's title.
        schema_id: the schema's `$id`.
        absent: marker types meaning "left out" in a union (they make a field optional).

    `Annotated[T, (keyword, value), ...]` adds JSON Schema keywords to the schema of `T`.
    """
    definitions: dict[str, dict[str, Any]] = {}
    body = _object_schema(root, definitions, frozenset(absent))
    schema: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": schema_id,
        "title": title,
        **body,
        "$defs": {name: definitions[name] for name in sorted(definitions)},
    }
    return schema


def _object_schema(
    cls: type, definitions: dict[str, dict[str, Any]], absent: frozenset[Any]
) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for field in attrs.fields(cls):
        if not field.init:
            continue
        details = field.metadata.get(SCHEMA_METADATA, {})
        annotation = details.get("json_type", hints[field.name])
        prop: dict[str, Any] = {"description": details.get("description", "")}
        prop.update(_type_schema(annotation, definitions, absent))
        kinds = prop.get("type", ())
        if {"number", "integer"} & ({kinds} if isinstance(kinds, str) else set(kinds)):
            prop["maximum"] = LARGEST_NUMBER
        prop.update(details.get("constraints", {}))
        default = details.get("default", _json_default(field))
        if default is not _NO_DEFAULT:
            prop["default"] = default
        properties[field.name] = prop
        if details.get("required", field.default is attrs.NOTHING):
            required.append(field.name)
    summary = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
    schema: dict[str, Any] = {"description": summary, "type": "object", "properties": properties}
    if required:
        schema["required"] = required
    schema["additionalProperties"] = False
    return schema


def _json_default(field: attrs.Attribute[Any]) -> Any:
    """The attrs default as JSON, when it is plain JSON (so no markers or attrs instances)."""
    default: Any = field.default
    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
        if default.takes_self:
            return _NO_DEFAULT
        default = default.factory()
    if default is None or isinstance(default, str | bool | int | float | dict | list):
        return default
    if isinstance(default, tuple):
        return list(default)
    return _NO_DEFAULT


def _type_schema(
    annotation: Any, definitions: dict[str, dict[str, Any]], absent: frozenset[Any]
) -> dict[str, Any]:
    if annotation is Any:
        return {}
    if annotation in _SIMPLE_TYPES:
        return {"type": _SIMPLE_TYPES[annotation]}
    origin = typing.get_origin(annotation)
    arguments = typing.get_args(annotation)
    if origin is typing.Annotated:
        base, *keywords = arguments
        schema = _type_schema(base, definitions, absent)
        schema.update(keywords)
        return schema
    if origin is Literal:
        return {"const": arguments[0]} if len(arguments) == 1 else {"enum": list(arguments)}
    if origin in (Union, types.UnionType):
        members = [
            _type_schema(member, definitions, absent)
            for member in arguments
            if member not in absent
        ]
        if len(members) == 1:
            return members[0]
        if all(member.keys() == {"type"} for member in members):
            return {"type": [member["type"] for member in members]}
        return {"anyOf": members}
    if origin is tuple:
        return {"type": "array", "items": _type_schema(arguments[0], definitions, absent)}
    if origin is dict or annotation is dict:
        return {"type": "object"}
    if isinstance(annotation, type) and attrs.has(annotation):
        name = annotation.__name__
        if name not in definitions:
            definitions[name] = {}
            definitions[name] = _object_schema(annotation, definitions, absent)
        return {"$ref": f"#/$defs/{name}"}
    raise TypeError(f"no JSON Schema for {annotation!r}")


def render_schema(schema: Mapping[str, Any]) -> str:
    """Serialise a schema the way the shipped files are written (2-space indent, final newline)."""
    return json.dumps(schema, indent=2) + "\n"


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
        return _too_large(instance)
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


def _too_large(value: Any) -> str:
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


if __name__ == "__main__":
    from orchestr8._workflow._document import workflow_schema

    print(render_schema(workflow_schema()), end="")

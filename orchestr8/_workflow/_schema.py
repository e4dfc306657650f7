"""JSON Schema from attrs classes: the workflow schema, generated from the AST.

The workflow schema is generated, never written by hand: each attrs field contributes a property
whose type comes from its annotation and whose description, constraints and default come from its
metadata (see `schema_metadata`). The same constraints back the attrs validator `obey_schema`, so a
workflow built in Python obeys the rules a JSON document is checked against.

Regenerate the shipped copies after changing the AST::

    python -m orchestr8._workflow._schema > orchestr8/workflow.schema.json
    cp orchestr8/workflow.schema.json docs/workflow.schema.json
"""

from __future__ import annotations

import json
import re
import types
import typing
from collections.abc import Collection, Mapping
from typing import Any, Literal, Union

import attrs

from .._json import LARGEST_NUMBER
from ._schema_problems import too_large_message

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
            raise ValueError(f"{name} {too_large_message(value)}")
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
        schema = {"type": "object"}
        if len(arguments) == 2 and arguments[1] is not Any:
            schema["additionalProperties"] = _type_schema(arguments[1], definitions, absent)
        return schema
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


if __name__ == "__main__":
    from orchestr8._workflow._document import workflow_schema

    print(render_schema(workflow_schema()), end="")

"""The building blocks every part of the OpenAPI document shares: references, responses, errors.

Each route family describes its own operations (`_openapi`, `_openapi_gates`, `_openapi_graph`,
`_openapi_steps`, `_openapi_timeline`, `_openapi_time_travel`); this module gives them one way to
point at a component schema, make a schema nullable, describe a JSON answer with its correlation
header, and list the error responses an operation may answer (always the `COMMON_ERRORS`).
"""

from __future__ import annotations

from typing import Any, Final

__all__ = [
    "COMMON_ERRORS",
    "JSON",
    "error_responses",
    "json_answer",
    "nullable",
    "path_parameter",
    "schema_ref",
]

JSON: Final = "application/json"
"""The media type of every successful answer."""

COMMON_ERRORS: Final = ("401", "405", "500", "503")
"""What any operation may answer: unauthorized, wrong method, server error, unavailable."""


def schema_ref(name: str) -> dict[str, str]:
    """A `$ref` to the component schema `name`."""
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema`, or JSON null."""
    return {"oneOf": [schema, {"type": "null"}]}


def path_parameter(name: str, description: str | None = None) -> dict[str, Any]:
    """A required string parameter of the path, `{name}`, described when `description` is given."""
    parameter: dict[str, Any] = {"name": name, "in": "path", "required": True}
    parameter["schema"] = {"type": "string"}
    if description is not None:
        parameter["description"] = description
    return parameter


def json_answer(description: str, schema: str) -> dict[str, Any]:
    """A JSON answer of the component schema `schema`, with the correlation header."""
    return {
        "description": description,
        "headers": {"X-Correlation-ID": {"$ref": "#/components/headers/X-Correlation-ID"}},
        "content": {JSON: {"schema": schema_ref(schema)}},
    }


def error_responses(*codes: str) -> dict[str, Any]:
    """References to the error responses `codes` and the common ones, in code order."""
    codes = tuple(sorted({*codes, *COMMON_ERRORS}))
    return {code: {"$ref": f"#/components/responses/{code}"} for code in codes}

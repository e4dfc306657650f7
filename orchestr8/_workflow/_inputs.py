"""Execution inputs: checked against the workflow's `inputs` JSON Schema, defaults filled in.

Problems are located under `$.inputs`, and the secret values among the inputs (an `api_key`...)
are redacted from their messages, which go to terminals, logs and response bodies.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import referencing.exceptions
from jsonschema import Draft202012Validator

from .._errors import InputValidationError, Problem
from .._json import json_value_problems
from .._observability._redaction import default_redactor, redact_text, secret_values_in
from ._document import Workflow
from ._references import json_type_name
from ._schema_problems import schema_problems, sort_problems


def validate_inputs(workflow: Workflow, inputs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Check execution inputs against the workflow's `inputs` schema and fill in defaults.

    Defaults of top-level `properties` are applied first (deep copies), then the whole is validated.

    Returns:
        A new dict: the inputs with defaults applied.

    Raises:
        InputValidationError: with every problem, paths under `$.inputs`.
    """
    if inputs is None:
        inputs = {}
    if not isinstance(inputs, Mapping):
        problem = Problem("$.inputs", f"expected an object, got {json_type_name(inputs)}")
        raise InputValidationError([problem])
    values = dict(inputs)
    properties = workflow.inputs.get("properties")
    if isinstance(properties, Mapping):
        for name, declared in properties.items():
            if name not in values and isinstance(declared, Mapping) and "default" in declared:
                values[name] = copy.deepcopy(declared["default"])
    problems = json_value_problems(values, "$.inputs")
    if not problems:
        validator = Draft202012Validator(
            workflow.inputs, format_checker=Draft202012Validator.FORMAT_CHECKER
        )
        try:
            problems = schema_problems(validator.iter_errors(values), prefix="$.inputs")
        except referencing.exceptions.Unresolvable as error:
            problems = [Problem("$.inputs", f"the inputs schema has an unresolvable $ref: {error}")]
    if problems:
        raise InputValidationError(sort_problems(_without_secrets(problems, values)))
    return values


def _without_secrets(problems: list[Problem], inputs: Mapping[str, Any]) -> list[Problem]:
    """The problems with the inputs' secret values (`api_key`...) redacted from their messages.

    Schema messages quote the value they refuse (`'sk-...' is too short`), and these messages go
    to terminals, logs and response bodies.
    """
    secrets = secret_values_in(inputs)
    if not secrets:
        return problems
    with default_redactor().lease(secrets):
        return [Problem(problem.path, redact_text(problem.message)) for problem in problems]

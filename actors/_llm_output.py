"""Structured replies of the `llm` agent: the reply text parsed as JSON, checked by `output_schema`.

Models often wrap JSON in a Markdown code fence, or say a sentence before it, so a reply that is
not JSON as a whole is searched for its first fenced block (```json ... ``` or ``` ... ```). A
reply that still does not parse, or does not match the schema, fails the attempt with
`ModelOutputError`, a `RetryableError`: models are not deterministic, and the next attempt may
well answer as asked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from orchestr8 import AgentConfigurationError, RetryableError

__all__ = ["ModelOutputError", "OutputSchema", "parse_json_reply"]

_FENCE = re.compile(r"```[ \t]*(?:[A-Za-z0-9_-]+)?[ \t]*\r?\n(.*?)```", re.DOTALL)
_PREVIEW = 200
_MAX_PROBLEMS = 10


class ModelOutputError(RetryableError):
    """The model's reply is not the JSON that `output_schema` asks for; worth another attempt."""


def _preview(text: str) -> str:
    return repr(text if len(text) <= _PREVIEW else text[:_PREVIEW] + "...")


def parse_json_reply(text: str, stop_reason: str | None = None) -> Any:
    """Parse a reply as JSON, or the first fenced code block in it.

    Raises:
        ModelOutputError: neither parses; the message quotes the start of the reply.
    """
    stripped = text.strip()
    try:
        return json.loads(stripped)
    except ValueError as error:
        problem = str(error)
    match = _FENCE.search(stripped)
    if match is not None:
        try:
            return json.loads(match.group(1))
        except ValueError as error:
            problem = f"its code block is not JSON: {error}"
    cut = " (the reply was cut off at max_tokens)" if stop_reason == "max_tokens" else ""
    raise ModelOutputError(
        f"the model's reply is not JSON{cut}: {problem}; the reply begins {_preview(stripped)}"
    )


class OutputSchema:
    """A JSON Schema for the reply, checked when the agent is built and applied to each reply."""

    def __init__(self, schema: Any) -> None:
        """Compile `schema` (its `$schema` picks the draft; 2020-12 by default).

        Raises:
            AgentConfigurationError: `schema` is not an object or not a valid JSON Schema.
        """
        import jsonschema
        import jsonschema.exceptions
        import jsonschema.validators

        if not isinstance(schema, Mapping):
            raise AgentConfigurationError("output_schema must be a JSON Schema object")
        schema = dict(schema)
        validator_class = jsonschema.validators.validator_for(
            schema, default=jsonschema.Draft202012Validator
        )
        try:
            validator_class.check_schema(schema)
        except jsonschema.exceptions.SchemaError as error:
            raise AgentConfigurationError(
                f"output_schema is not a valid JSON Schema: {error.message}"
            ) from None
        self.schema: Mapping[str, Any] = schema
        self._validator = validator_class(schema)

    def instruction(self) -> str:
        """The system-prompt sentence that asks the model for JSON matching the schema."""
        return (
            "Reply with a single JSON value and nothing else. It must be valid against this "
            f"JSON Schema:\n{json.dumps(self.schema, ensure_ascii=False)}"
        )

    def parse(self, text: str, stop_reason: str | None = None) -> Any:
        """Parse the reply and validate it; return the JSON value.

        Raises:
            ModelOutputError: it is not JSON, or it does not match; every problem is listed
                (up to ten) as `JSON path: message`.
        """
        value = parse_json_reply(text, stop_reason)
        errors = sorted(self._validator.iter_errors(value), key=lambda error: error.json_path)
        if errors:
            problems = "; ".join(
                f"{error.json_path}: {error.message}" for error in errors[:_MAX_PROBLEMS]
            )
            extra = len(errors) - _MAX_PROBLEMS
            more = f" (and {extra} more)" if extra > 0 else ""
            raise ModelOutputError(
                f"the model's JSON reply does not match output_schema: {problems}{more}"
            )
        return value

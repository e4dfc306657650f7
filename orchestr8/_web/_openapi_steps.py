"""The OpenAPI description of the step route and its body (`_step_routes`).

`_openapi` merges `step_paths()` into its paths and `step_schemas()` into its component schemas,
with the conventions of the other operations (problem responses by reference, the correlation
header on every response). The document is built by `_execution/_step_view.step_view`.
"""

from __future__ import annotations

from typing import Any

from ._openapi_parts import COMMON_ERRORS, JSON, nullable, path_parameter, schema_ref

__all__ = ["step_paths", "step_schemas"]


def step_paths() -> dict[str, Any]:
    """The path of the step route."""
    return {
        "/executions/{execution_id}/steps/{step_id}": {
            "get": {
                "operationId": "getStep",
                "summary": "One step of an execution: input (declared and resolved), output, "
                "error, attempts, tokens, gate and child execution.",
                "parameters": [
                    path_parameter("execution_id"),
                    path_parameter(
                        "step_id",
                        "A step id, a map item's `STEP[i]` or a loop iteration's "
                        "`STEP#k`, percent-encoded (`STEP%5B2%5D`, `STEP%232`).",
                    ),
                ],
                "responses": {
                    "200": {
                        "description": "The step, as the journal tells it now.",
                        "headers": {
                            "X-Correlation-ID": {"$ref": "#/components/headers/X-Correlation-ID"}
                        },
                        "content": {JSON: {"schema": schema_ref("StepView")}},
                    },
                    **{
                        code: {"$ref": f"#/components/responses/{code}"}
                        for code in sorted({"404", *COMMON_ERRORS})
                    },
                },
            }
        }
    }


_LLM_CALLS: dict[str, Any] = {
    "type": "object",
    "description": "A step's model calls, from its `llm.called` events (docs/llm.md).",
    "required": ["calls", "failed", "providers", "models", "cost_usd", "unpriced"],
    "properties": {
        "calls": {"type": "integer", "minimum": 0},
        "failed": {"type": "integer", "minimum": 0},
        "providers": {
            "type": "array",
            "items": {"type": "string"},
            "description": "The providers that answered, in the order they first did.",
        },
        "models": {
            "type": "array",
            "items": {"type": "string"},
            "description": "The `provider:model` names that answered.",
        },
        "cost_usd": {
            "type": "number",
            "minimum": 0,
            "description": "The summed cost of the calls whose price was known.",
        },
        "unpriced": {"type": "integer", "minimum": 0, "description": "Calls of unknown cost."},
    },
}


def step_schemas() -> dict[str, Any]:
    """`StepView` and `StepAttempt`."""
    timestamp = {"type": "string", "description": "UTC ISO-8601 with milliseconds."}
    attempt = {
        "type": "object",
        "required": ["attempt", "started", "finished", "duration", "outcome", "error"],
        "properties": {
            "attempt": {"type": "integer", "minimum": 1},
            "started": timestamp,
            "finished": nullable(timestamp),
            "duration": nullable({"type": "number", "minimum": 0}),
            "outcome": {"enum": ["succeeded", "failed", "interrupted", "running", "rejected"]},
            "error": {},
        },
    }
    resolved = {
        "type": "object",
        "required": ["resolved", "value", "reason"],
        "description": "The input with its references evaluated against the recorded (redacted) "
        "inputs and outputs; `resolved` false with a `reason` when it cannot be (not started).",
        "properties": {
            "resolved": {"type": "boolean"},
            "value": {},
            "reason": nullable({"type": "string"}),
        },
    }
    required = [
        "execution_id",
        "step_id",
        "declared_step",
        "kind",
        "agent",
        "depends_on",
        "status",
        "attempt_count",
        "attempts",
        "duration",
        "declared_input",
        "resolved_input",
        "output",
        "error",
        "reason",
        "usage",
        "gate",
        "child_execution_id",
        "items",
        "iterations",
        "llm",
    ]
    return {
        "StepAttempt": attempt,
        "LLMCalls": _LLM_CALLS,
        "StepView": {
            "type": "object",
            "required": required,
            "properties": {
                "execution_id": {"type": "string"},
                "step_id": {"type": "string"},
                "declared_step": {
                    "type": "string",
                    "description": "The workflow's step the unit belongs to (`ID` for `ID[3]`).",
                },
                "kind": {
                    "enum": ["agent", "map", "loop", "approval", "workflow", "item", "iteration"]
                },
                "agent": {"description": "The agent's id (or its declaration); null if none."},
                "depends_on": {"type": "array", "items": {"type": "string"}},
                "status": schema_ref("ShownStepStatus"),
                "attempt_count": {"type": "integer", "minimum": 0},
                "attempts": {"type": "array", "items": schema_ref("StepAttempt")},
                "duration": nullable({"type": "number", "minimum": 0}),
                "declared_input": {"description": "The step's `input` as the workflow wrote it."},
                "resolved_input": resolved,
                "output": {},
                "error": {},
                "reason": nullable({"type": "string"}),
                "usage": {"type": "object", "additionalProperties": {"type": "integer"}},
                "gate": nullable({"allOf": [schema_ref("GateState")]}),
                "child_execution_id": nullable({"type": "string"}),
                "items": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "A map step's item ids (`ID[i]`) the journal names.",
                },
                "llm": nullable({"allOf": [schema_ref("LLMCalls")]}),
                "iterations": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "A loop step's iteration ids (`ID#k`) the journal names.",
                },
            },
        },
    }

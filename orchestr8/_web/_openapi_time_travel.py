"""The body schemas of the time-travel routes: the state after one event, and a comparison.

`_openapi_schemas.component_schemas` adds these to `components/schemas`; `_openapi` describes
the operations (`GET /executions/{id}/state`, `GET /executions/compare`) that answer with them.
The documents are built by `_journal/_state_at` and `_journal/_comparison`.
"""

from __future__ import annotations

from typing import Any

from ._openapi_parts import nullable, schema_ref

_COUNTS = {
    "type": "object",
    "description": "Counts recorded by `step.usage` (tokens and the like), by name.",
    "additionalProperties": {"type": "integer", "minimum": 0},
}
_LOOP = {
    "type": "object",
    "description": "A loop step's progress.",
    "required": ["iterations", "max_iterations", "until_held"],
    "properties": {
        "iterations": {"type": "integer", "minimum": 0},
        "max_iterations": {"type": "integer", "minimum": 1},
        "until_held": {"type": "boolean"},
    },
}


def time_travel_schemas() -> dict[str, Any]:
    """`ExecutionStateAt`, `StepAt` and `Comparison`; gates are `GateState`s, as in `Execution`."""
    timestamp = {"type": "string", "description": "UTC ISO-8601 with milliseconds."}
    step_at = {
        "allOf": [
            schema_ref("StepState"),
            {
                "type": "object",
                "required": ["usage"],
                "properties": {
                    "usage": _COUNTS,
                    "loop": _LOOP,
                    "child": {
                        "type": "object",
                        "required": ["execution_id"],
                        "properties": {"execution_id": {"type": "string"}},
                    },
                },
            },
        ]
    }
    compared_side = {
        "type": "object",
        "required": [
            "execution_id",
            "workflow",
            "status",
            "started_at",
            "finished_at",
            "duration",
            "usage",
            "last_seq",
        ],
        "properties": {
            "execution_id": {"type": "string"},
            "workflow": {"type": "string"},
            "status": schema_ref("ExecutionStatus"),
            "started_at": nullable(timestamp),
            "finished_at": nullable(timestamp),
            "duration": nullable({"type": "number", "minimum": 0}),
            "usage": _COUNTS,
            "last_seq": {"type": "integer", "minimum": 0},
        },
    }
    diff = nullable(
        {
            "type": "string",
            "description": "A unified diff of the two values as pretty JSON (sorted keys), cut "
            "to 200 lines; null when they are equal.",
        }
    )
    return {
        "StepAt": step_at,
        "ExecutionStateAt": {
            "type": "object",
            "required": [
                "execution_id",
                "workflow",
                "at",
                "at_time",
                "at_type",
                "last_seq",
                "status",
                "created_at",
                "started_at",
                "finished_at",
                "duration",
                "inputs",
                "output",
                "error",
                "parent",
                "usage",
                "steps",
                "gates",
            ],
            "properties": {
                "execution_id": {"type": "string"},
                "workflow": {"type": "string"},
                "at": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "The seq of the event the state is right after (0: none yet).",
                },
                "at_time": nullable(timestamp),
                "at_type": nullable({"type": "string"}),
                "last_seq": {"type": "integer", "minimum": 0},
                "status": schema_ref("ExecutionStatus"),
                "created_at": timestamp,
                "started_at": nullable(timestamp),
                "finished_at": nullable(timestamp),
                "duration": nullable({"type": "number", "minimum": 0}),
                "inputs": {"type": "object"},
                "output": {},
                "error": nullable({"type": "object"}),
                "parent": nullable(
                    {
                        "type": "object",
                        "required": ["execution_id", "step_id"],
                        "properties": {
                            "execution_id": {"type": "string"},
                            "step_id": {"type": "string"},
                        },
                    }
                ),
                "usage": _COUNTS,
                "steps": {"type": "object", "additionalProperties": schema_ref("StepAt")},
                "gates": {"type": "object", "additionalProperties": schema_ref("GateState")},
                "changes": schema_ref("StateDiff"),
            },
        },
        "Comparison": {
            "type": "object",
            "required": [
                "a",
                "b",
                "same",
                "same_workflow",
                "workflow_diff",
                "same_inputs",
                "inputs_diff",
                "output_diff",
                "steps",
                "differing_steps",
            ],
            "properties": {
                "a": compared_side,
                "b": compared_side,
                "same": {"type": "boolean"},
                "same_workflow": {"type": "boolean"},
                "workflow_diff": diff,
                "same_inputs": {"type": "boolean"},
                "inputs_diff": diff,
                "output_diff": diff,
                "differing_steps": {"type": "integer", "minimum": 0},
                "steps": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": [
                            "step_id",
                            "in",
                            "a",
                            "b",
                            "output",
                            "output_diff",
                            "differs",
                            "reused_by",
                        ],
                        "properties": {
                            "step_id": {"type": "string"},
                            "in": {"enum": ["both", "a", "b"]},
                            "a": nullable(schema_ref("StepAt")),
                            "b": nullable(schema_ref("StepAt")),
                            "output": {
                                "enum": [
                                    "equal",
                                    "changed",
                                    "only in a",
                                    "only in b",
                                    "not finished in a",
                                    "not finished in b",
                                    "not finished in a and b",
                                ]
                            },
                            "output_diff": diff,
                            "differs": {"type": "boolean"},
                            "reused_by": {
                                "enum": ["a", "b", None],
                                "description": "The side whose step is the other's result, "
                                "copied by a fork (it did not run), else null.",
                            },
                            "items_differ": {
                                "type": "array",
                                "items": {"type": "integer", "minimum": 0},
                                "description": "A map step on both sides: the indices of "
                                "the items whose status, attempts or output differ.",
                            },
                            "iterations_differ": {
                                "type": "array",
                                "items": {"type": "integer", "minimum": 1},
                                "description": "A loop step on both sides: the numbers of "
                                "the iterations whose status, attempts or output differ.",
                            },
                        },
                    },
                },
            },
        },
    }

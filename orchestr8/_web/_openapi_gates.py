"""The OpenAPI description of the approval gates' routes and bodies (`_gate_routes`).

`_openapi` merges `gate_paths()` into its paths and `gate_schemas()` into its component schemas;
the operations follow the same conventions (problem responses by reference, the correlation
header on every response).
"""

from __future__ import annotations

from typing import Any, Final

from ._openapi_parts import JSON, error_responses, json_answer, path_parameter, schema_ref

__all__ = ["gate_paths", "gate_schemas"]

_ID: Final = path_parameter(
    "execution_id",
    "The execution's id; a gate inside a sub-workflow belongs to the child "
    "execution (`PARENT.STEP`).",
)
_GATE: Final = path_parameter(
    "gate_id",
    "The gate's id: the approval step's id, a map item's `STEP[i]`, a loop "
    "iteration's `STEP#k`, percent-encoded (`STEP%5B2%5D`, `STEP%233`).",
)


def gate_paths() -> dict[str, Any]:
    """The paths of the gate routes."""
    return {
        "/executions/{execution_id}/gates": {
            "get": {
                "operationId": "listGates",
                "summary": "An execution's approval gates and the answers not yet applied.",
                "parameters": [_ID],
                "responses": {
                    "200": json_answer("The gates, in the order they opened.", "GateList"),
                    **error_responses("404"),
                },
            }
        },
        "/executions/{execution_id}/gates/{gate_id}": {
            "post": {
                "operationId": "answerGate",
                "summary": "Approve or reject an approval gate.",
                "description": "The answer is checked on submit: its `input` against the gate's "
                "schema (422, every problem with its JSON path, nothing recorded, the gate stays "
                "open); a rejection needs a `reason` (422). 409 when the gate was answered or "
                "resolved already (the detail says by whom and when) or the execution ended; "
                "404 no such execution or approval step. An answer for a gate that has not "
                "opened yet is held and applied when it opens (`held: true`). A `waiting` "
                "execution no process runs is resumed by this server.",
                "parameters": [_ID, _GATE],
                "requestBody": {
                    "required": True,
                    "content": {JSON: {"schema": schema_ref("Answer")}},
                },
                "responses": {
                    "200": json_answer(
                        "Applied: this server runs the execution and the gate took it.",
                        "AnswerOutcome",
                    ),
                    "202": json_answer(
                        "Recorded: another process runs the execution and applies it within a "
                        "second, or none does (`orchestr8 resume ID` continues it), or the gate "
                        "has not opened yet (`held`).",
                        "AnswerOutcome",
                    ),
                    **error_responses("400", "404", "409", "413", "415", "422"),
                },
            }
        },
    }


def gate_schemas() -> dict[str, Any]:
    """The component schemas of the gate routes' bodies."""
    nullable_string = {"type": ["string", "null"]}
    return {
        "Answer": {
            "type": "object",
            "required": ["approve"],
            "additionalProperties": False,
            "properties": {
                "approve": {"type": "boolean", "description": "true approves, false rejects."},
                "input": {
                    "type": "object",
                    "description": "The answer's input; must fit the gate's schema when approving.",
                },
                "reason": {**nullable_string, "description": "Why; required to reject."},
                "by": {**nullable_string, "description": "Who answers (default `api`)."},
            },
        },
        "Gate": {
            "type": "object",
            "required": ["gate_id", "status", "prompt", "schema", "deadline", "answer"],
            "properties": {
                "gate_id": {"type": "string"},
                "status": {"enum": ["open", "approved", "rejected", "closed"]},
                "prompt": {"type": "string"},
                "schema": {"type": ["object", "null"]},
                "timeout": {"type": ["number", "null"]},
                "on_timeout": {"type": ["string", "null"]},
                "deadline": {**nullable_string, "description": "UTC ISO-8601, or null."},
                "opened_seq": {"type": ["integer", "null"]},
                "resolved_seq": {"type": ["integer", "null"]},
                "answer": {
                    "type": ["object", "null"],
                    "description": "The `gate.resolved` data: approved, input, by, reason, how.",
                },
                "expired": {
                    "type": "boolean",
                    "description": "Still open though its deadline passed (no process ran it):"
                    " a resume applies on_timeout.",
                },
            },
        },
        "PendingAnswer": {
            "type": "object",
            "required": ["request_id", "gate_id", "approve", "by", "created_at"],
            "properties": {
                "request_id": {"type": "integer"},
                "gate_id": {"type": "string"},
                "approve": {"type": "boolean"},
                "input": {"type": ["object", "null"]},
                "reason": nullable_string,
                "by": {"type": "string"},
                "created_at": {"type": "string"},
            },
        },
        "GateList": {
            "type": "object",
            "required": ["execution_id", "status", "gates", "pending_answers", "refused_answers"],
            "properties": {
                "execution_id": {"type": "string"},
                "status": {"type": "string"},
                "gates": {"type": "array", "items": schema_ref("Gate")},
                "pending_answers": {"type": "array", "items": schema_ref("PendingAnswer")},
                "refused_answers": {"type": "array", "items": schema_ref("RefusedAnswer")},
            },
        },
        "AnswerOutcome": {
            "type": "object",
            "required": ["status", "execution_id", "gate_id", "request_id", "held", "message"],
            "properties": {
                "status": {"enum": ["applied", "recorded"]},
                "execution_id": {"type": "string"},
                "gate_id": {"type": "string"},
                "request_id": {"type": "integer"},
                "held": {"type": "boolean", "description": "The gate has not opened yet."},
                "runner": {"enum": ["here", "elsewhere", "nobody"]},
                "message": {"type": "string"},
                "gate": {"oneOf": [schema_ref("Gate"), {"type": "null"}]},
                "links": {"type": "object"},
            },
        },
    }

"""The OpenAPI description of the graph routes and their bodies (`_graph_routes`).

`_openapi` merges `graph_paths()` into its paths and `graph_schemas()` into its component
schemas; the operations follow the same conventions as the others (problem responses by
reference, the correlation header on every response). The documents are built by
`_journal/_graph_view`.
"""

from __future__ import annotations

from typing import Any, Final

from .._journal._events import StepStatus
from .._journal._graph_view import INTERRUPTED
from ._openapi_parts import error_responses, json_answer, nullable, path_parameter, schema_ref

__all__ = ["graph_paths", "graph_schemas"]

_ID: Final = path_parameter("execution_id", "The execution's id.")
_STEP: Final = path_parameter(
    "step_id", "The id of a map, loop, sub-workflow or plan step of the execution."
)
_STATUS_WORD: Final = {
    "type": "string",
    "description": "A step status (pending, running, retrying, succeeded, failed, skipped, "
    "cancelled, waiting, interrupted), or `not_started` for a map item its finished execution "
    "never ran.",
}


def graph_paths() -> dict[str, Any]:
    """The paths of the graph routes."""
    return {
        "/executions/{execution_id}/graph": {
            "get": {
                "operationId": "getGraph",
                "summary": "An execution's steps as a graph: nodes with their state, no outputs.",
                "description": "One node per declared step, in declaration order, with its kind, "
                "agent, dependencies (the edges), status, attempts, start and duration; a map, "
                "loop, sub-workflow or plan step is one node whose `group` counts its members "
                "by status. Compact (no inputs or outputs): the dashboard reads it as the "
                "execution page's summary, then follows the events after `last_seq`.",
                "parameters": [_ID],
                "responses": {
                    "200": json_answer("The execution's graph.", "ExecutionGraph"),
                    **error_responses("404"),
                },
            }
        },
        "/executions/{execution_id}/graph/{step_id}/members": {
            "get": {
                "operationId": "listGroupMembers",
                "summary": "One page of a group's members: a map's items or a loop's iterations.",
                "description": "Items by index (`STEP[i]`; every item the map yielded, those "
                "not started `pending`, or `not_started` once the execution ended), iterations "
                "in order (`STEP#k`). A sub-workflow or plan has no members; its "
                "`child_execution_id` is the execution to open. 404 when the step is no such "
                "group.",
                "parameters": [
                    _ID,
                    _STEP,
                    {
                        "name": "offset",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 0, "default": 0},
                        "description": "How many members to pass over (`next_offset` of the "
                        "previous page).",
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": 1000,
                            "default": 200,
                        },
                        "description": "How many members at most.",
                    },
                ],
                "responses": {
                    "200": json_answer("One page of the members.", "GroupMembers"),
                    **error_responses("400", "404"),
                },
            }
        },
    }


def graph_schemas() -> dict[str, Any]:
    """`ExecutionGraph`, `GraphNode`, `NodeGroup`, `GroupMembers` and `ShownStepStatus`."""
    seconds = nullable({"type": "number", "minimum": 0})
    counts = {
        "type": "object",
        "description": "How many members are in each status.",
        "additionalProperties": {"type": "integer", "minimum": 1},
    }
    group = {
        "type": "object",
        "required": ["kind", "total", "counts"],
        "properties": {
            "kind": {"enum": ["map", "loop", "workflow", "plan"]},
            "total": nullable(
                {
                    "type": "integer",
                    "minimum": 0,
                    "description": "Items the map yielded (null before it started), a loop's "
                    "max_iterations, 1 for a child execution.",
                }
            ),
            "counts": counts,
            "child_execution_id": {"type": "string"},
        },
    }
    node = {
        "type": "object",
        "required": ["id", "kind", "agent", "depends_on", "status", "attempts", "started"],
        "properties": {
            "id": {"type": "string"},
            "kind": {"enum": ["agent", "map", "loop", "workflow", "plan", "approval"]},
            "agent": nullable({"type": "string"}),
            "depends_on": {"type": "array", "items": {"type": "string"}},
            "status": schema_ref("ShownStepStatus"),
            "attempts": {"type": "integer", "minimum": 0},
            "started": {
                **seconds,
                "description": "Seconds after the execution started that it started.",
            },
            "duration": seconds,
            "group": schema_ref("NodeGroup"),
            "child_execution_id": {"type": "string"},
            "gate": {
                "enum": ["open", "approved", "rejected", "closed"],
                "description": "An approval step's gate, once opened: how it was answered "
                "(a rejected gate's step still succeeds; its dependents read the answer).",
            },
        },
    }
    member = {
        "type": "object",
        "required": ["id", "status", "attempts", "duration"],
        "properties": {
            "id": {"type": "string"},
            "status": _STATUS_WORD,
            "attempts": {"type": "integer", "minimum": 0},
            "duration": seconds,
        },
    }
    return {
        "ShownStepStatus": {
            "description": "A step's status as views show it: the journal's, or `interrupted` "
            "for a running step of an execution no process runs any more.",
            "enum": [*(str(status) for status in StepStatus), INTERRUPTED],
        },
        "NodeGroup": group,
        "GraphNode": node,
        "ExecutionGraph": {
            "type": "object",
            "required": ["execution_id", "workflow", "status", "last_seq", "nodes"],
            "properties": {
                "execution_id": {"type": "string"},
                "workflow": {"type": "string"},
                "status": schema_ref("ExecutionStatus"),
                "last_seq": {"type": "integer", "minimum": 0},
                "nodes": {"type": "array", "items": schema_ref("GraphNode")},
            },
        },
        "GroupMembers": {
            "type": "object",
            "required": [
                "execution_id",
                "step_id",
                "kind",
                "total",
                "offset",
                "next_offset",
                "child_execution_id",
                "members",
            ],
            "properties": {
                "execution_id": {"type": "string"},
                "step_id": {"type": "string"},
                "kind": {"enum": ["map", "loop", "workflow", "plan"]},
                "total": {"type": "integer", "minimum": 0},
                "offset": {"type": "integer", "minimum": 0},
                "next_offset": nullable({"type": "integer", "minimum": 1}),
                "child_execution_id": nullable({"type": "string"}),
                "members": {"type": "array", "items": member},
            },
        },
    }

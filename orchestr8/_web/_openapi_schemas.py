"""The body schemas of the OpenAPI document (`components/schemas`): requests, responses, problems.

The workflow schema is the generated one (`orchestr8 schema`), its `$defs` moved to
`components/schemas` as `workflow.<Name>` so every `$ref` resolves from the document root. The
operations that use these schemas are described in `_openapi`.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from .._execution._liveness import SHOWN_STATUSES
from .._journal._events import EventType, StepStatus
from .._json import LARGEST_NUMBER
from .._workflow._document import workflow_schema
from ._openapi_parts import nullable, schema_ref
from ._openapi_time_travel import time_travel_schemas
from ._requests import CORRELATION_ID_PATTERN, MAX_CORRELATION_ID

__all__ = ["component_schemas"]


_execution_link: dict[str, Any] = {
    "execution_id": {"type": "string"},
    "links": {"type": "object", "required": ["self"], "properties": {"self": {"type": "string"}}},
}
"""An execution named by another's document: its id and the link to it."""


def component_schemas() -> dict[str, Any]:
    """Every schema under `components/schemas`: requests, responses, problems, the workflow."""
    link_names = ("self", "journal", "events", "cancel")
    links = {
        "type": "object",
        "required": list(link_names),
        "properties": {name: {"type": "string"} for name in link_names},
    }
    timestamp = {"type": "string", "description": "UTC ISO-8601 with milliseconds."}
    step = {
        "type": "object",
        "required": ["status", "attempts", "duration", "output", "error", "reason"],
        "properties": {
            "status": schema_ref("StepStatus"),
            "attempts": {"type": "integer", "minimum": 0},
            "duration": nullable({"type": "number"}),
            "output": {},
            "error": nullable({"type": "object"}),
            "reason": nullable(
                {"type": "string", "description": "Why a skipped step was skipped."}
            ),
            "cost_usd": nullable(
                {
                    "type": "number",
                    "minimum": 0,
                    "description": "What its priced model calls cost in US dollars (llm.called;"
                    " a map step's include its items'), across resumes; null: none priced.",
                }
            ),
            "items": {
                "type": "object",
                "description": "A map step's items (for_each), counted: count, how many are in"
                " each status, attempts, failed_items.",
                "required": ["count", "attempts", "failed_items"],
                "properties": {
                    "count": nullable({"type": "integer", "minimum": 0}),
                    "attempts": {"type": "integer", "minimum": 0},
                    "failed_items": {"type": "array", "items": {"type": "integer"}},
                },
                "additionalProperties": {"type": "integer", "minimum": 0},
            },
        },
    }
    summary_fields: dict[str, Any] = {
        "execution_id": {"type": "string"},
        "workflow": {"type": "string"},
        "status": schema_ref("ExecutionStatus"),
        "created_at": timestamp,
        "started_at": nullable(timestamp),
        "finished_at": nullable(timestamp),
        "correlation_id": nullable({"type": "string"}),
    }
    return {
        # The journal's statuses, and `interrupted`, derived for a run whose process died.
        "ExecutionStatus": {"enum": list(SHOWN_STATUSES)},
        "StepStatus": {"enum": [str(member) for member in StepStatus]},
        "Links": links,
        "ExecuteRequest": {
            "type": "object",
            "required": ["workflow"],
            "additionalProperties": False,
            "properties": {
                "workflow": schema_ref("Workflow"),
                "inputs": nullable(
                    {
                        "type": "object",
                        "description": "Checked against the workflow's `inputs` schema.",
                    }
                ),
                "timeout": nullable(
                    {
                        "type": "number",
                        "exclusiveMinimum": 0,
                        "maximum": LARGEST_NUMBER,
                        "description": "Seconds; overrides the workflow's own `timeout`.",
                    }
                ),
                "correlation_id": nullable(
                    {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": MAX_CORRELATION_ID,
                        "pattern": CORRELATION_ID_PATTERN,
                        "description": "Printable ASCII, no surrounding spaces: it is sent back in "
                        "the X-Correlation-ID header.",
                    }
                ),
            },
        },
        "ResumeRequest": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "inputs": nullable(
                    {
                        "type": "object",
                        "description": "Inputs the journal "
                        "redacted, supplied again; checked against the "
                        "workflow's `inputs` schema.",
                    }
                ),
                "timeout": nullable(
                    {
                        "type": "number",
                        "exclusiveMinimum": 0,
                        "maximum": LARGEST_NUMBER,
                        "description": "Seconds; overrides the workflow's own `timeout`.",
                    }
                ),
            },
        },
        "ForkRequest": {
            "type": "object",
            "required": ["from"],
            "additionalProperties": False,
            "properties": {
                "from": {
                    "type": "string",
                    "minLength": 1,
                    "description": "The step to run again with its dependents: STEP, a map "
                    "item STEP[i] or a loop iteration STEP#k.",
                },
                "inputs": nullable(
                    {
                        "type": "object",
                        "description": "Inputs that change (a dotted key sets a nested "
                        "value); checked against the workflow's `inputs` schema.",
                    }
                ),
                "dry_run": {"type": "boolean", "default": False},
                "timeout": nullable(
                    {
                        "type": "number",
                        "exclusiveMinimum": 0,
                        "maximum": LARGEST_NUMBER,
                        "description": "Seconds; overrides the workflow's own `timeout`.",
                    }
                ),
            },
        },
        "ForkAccepted": {
            "type": "object",
            "required": ["execution_id", "status", "forked_from", "fork_seq", "from", "links"],
            "properties": {
                "execution_id": {"type": "string"},
                "status": schema_ref("ExecutionStatus"),
                "forked_from": {"type": "string"},
                "fork_seq": {"type": "integer", "minimum": 0},
                "from": {"type": "string"},
                "links": schema_ref("Links"),
            },
        },
        "ForkPlan": {
            "type": "object",
            "required": [
                "source",
                "fork_seq",
                "from",
                "kept",
                "rerun",
                "kept_items",
                "kept_iterations",
                "repaid_calls",
                "repaid_usage",
            ],
            "properties": {
                "source": {"type": "string"},
                "fork_seq": {"type": "integer", "minimum": 0},
                "from": {"type": "string"},
                "kept": {"type": "array", "items": {"type": "string"}},
                "rerun": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["step", "reason"],
                        "properties": {"step": {"type": "string"}, "reason": {"type": "string"}},
                    },
                },
                "kept_items": {
                    "type": "object",
                    "additionalProperties": {"type": "array", "items": {"type": "integer"}},
                },
                "kept_iterations": {
                    "type": "object",
                    "additionalProperties": {"type": "integer", "minimum": 1},
                },
                "repaid_calls": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["step", "agent", "usage"],
                        "properties": {
                            "step": {"type": "string"},
                            "agent": nullable({"type": "string"}),
                            "usage": {
                                "type": "object",
                                "additionalProperties": {"type": "integer"},
                            },
                        },
                    },
                },
                "repaid_usage": {"type": "object", "additionalProperties": {"type": "integer"}},
            },
        },
        "ExecutionAccepted": {
            "type": "object",
            "required": ["execution_id", "status", "links"],
            "properties": {
                "execution_id": {"type": "string"},
                "status": schema_ref("ExecutionStatus"),
                "links": schema_ref("Links"),
            },
        },
        "CancelAccepted": {
            "type": "object",
            "required": ["execution_id", "status", "cancel_requested", "links"],
            "properties": {
                "execution_id": {"type": "string"},
                "status": schema_ref("ExecutionStatus"),
                "cancel_requested": {"const": True},
                "request_id": {
                    "type": "integer",
                    "description": "The cancel request recorded for the process that runs it.",
                },
                "links": schema_ref("Links"),
            },
        },
        "CancelRequest": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "reason": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 1000,
                    "description": "Recorded on `execution.cancelled` (default `cancelled "
                    "through the API`).",
                },
                "force": {
                    "type": "boolean",
                    "default": False,
                    "description": "No grace: running steps are cancelled at once.",
                },
                "by": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 1000,
                    "description": "Who asks (default `api`), kept with the request.",
                },
            },
        },
        "ExecutionSummary": {
            "type": "object",
            "required": [*summary_fields, "links"],
            "properties": {
                **summary_fields,
                "links": {
                    "type": "object",
                    "required": ["self"],
                    "properties": {"self": {"type": "string"}},
                },
                "parent_id": nullable(
                    {"type": "string", "description": "The parent of a child execution."}
                ),
                "forked_from": nullable(
                    {"type": "string", "description": "The execution this one was forked from."}
                ),
            },
        },
        "ExecutionPage": {
            "type": "object",
            "required": ["items", "next_cursor"],
            "properties": {
                "items": {"type": "array", "items": schema_ref("ExecutionSummary")},
                "next_cursor": nullable({"type": "string"}),
            },
        },
        "StepState": step,
        "GateState": {
            "type": "object",
            "description": "An approval gate: what it asks, its deadline, and how it was answered.",
            "required": ["status", "prompt", "schema", "deadline", "answer"],
            "properties": {
                "status": {"type": "string", "enum": ["open", "approved", "rejected", "closed"]},
                "prompt": nullable({"type": "string"}),
                "schema": nullable({"type": "object"}),
                "timeout": nullable({"type": "number"}),
                "on_timeout": nullable({"type": "string", "enum": ["reject", "approve", "fail"]}),
                "deadline": nullable({"type": "string", "format": "date-time"}),
                "opened_seq": {"type": "integer", "minimum": 0},
                "resolved_seq": nullable({"type": "integer", "minimum": 1}),
                "answer": nullable({"type": "object"}),
                "expired": {
                    "type": "boolean",
                    "description": "Still open though its deadline passed (no process ran it):"
                    " a resume applies on_timeout. Absent in time-travel states.",
                },
            },
        },
        "RefusedAnswer": {
            "type": "object",
            "description": "An answer the execution's owner refused, and why (`detail`).",
            "required": ["request_id", "gate_id", "approve", "by", "created_at", "detail"],
            "properties": {
                "request_id": {"type": "integer"},
                "gate_id": nullable({"type": "string"}),
                "approve": {},
                "by": {},
                "created_at": {"type": "string"},
                "detail": nullable({"type": "string"}),
            },
        },
        "Execution": {
            "type": "object",
            "required": [
                *summary_fields,
                "duration",
                "idempotency_key",
                "inputs",
                "output",
                "error",
                "last_seq",
                "steps",
                "parent",
                "children",
                "links",
                "forked_from",
                "fork_seq",
                "forks",
            ],
            "properties": {
                **summary_fields,
                "duration": nullable({"type": "number"}),
                "idempotency_key": nullable({"type": "string"}),
                "inputs": {"type": "object"},
                "output": {},
                "error": nullable({"type": "object"}),
                "last_seq": {"type": "integer", "minimum": 0},
                "cost_usd": nullable(
                    {
                        "type": "number",
                        "minimum": 0,
                        "description": "What its priced model calls cost in all, in US dollars;"
                        " null: none priced.",
                    }
                ),
                "steps": {"type": "object", "additionalProperties": schema_ref("StepState")},
                "gates": {
                    "type": "object",
                    "description": "The approval gates by gate id, in the order they opened.",
                    "additionalProperties": schema_ref("GateState"),
                },
                "refused_answers": {
                    "type": "array",
                    "description": "Answers to its gates that were refused, oldest first.",
                    "items": schema_ref("RefusedAnswer"),
                },
                "parent": nullable(
                    {
                        "type": "object",
                        "description": "The execution whose sub-workflow step runs this one.",
                        "required": ["execution_id", "step_id", "links"],
                        "properties": {**_execution_link, "step_id": {"type": "string"}},
                    }
                ),
                "children": {
                    "type": "array",
                    "description": "The child executions of this one's sub-workflow steps.",
                    "items": {
                        "type": "object",
                        "required": ["execution_id", "step_id", "links"],
                        "properties": {**_execution_link, "step_id": {"type": "string"}},
                    },
                },
                "links": schema_ref("Links"),
                "forked_from": nullable(
                    {"type": "string", "description": "The execution this one was forked from."}
                ),
                "fork_seq": nullable(
                    {
                        "type": "integer",
                        "minimum": 0,
                        "description": "The source's last seq when this one was forked from it.",
                    }
                ),
                "forks": {
                    "type": "array",
                    "description": "The executions forked from this one, oldest first.",
                    "items": {"type": "string"},
                },
            },
        },
        "Event": {
            "type": "object",
            "required": ["execution_id", "seq", "ts", "elapsed", "type", "data"],
            "properties": {
                "execution_id": {"type": "string"},
                "seq": {"type": "integer", "minimum": 1},
                "ts": timestamp,
                "elapsed": {"type": "number"},
                "type": {"type": "string", "examples": [str(member) for member in EventType]},
                "step_id": {"type": "string"},
                "attempt": {"type": "integer", "minimum": 1},
                "data": {"type": "object"},
            },
        },
        "JournalPage": {
            "type": "object",
            "required": ["execution_id", "events", "has_more"],
            "properties": {
                "execution_id": {"type": "string"},
                "events": {"type": "array", "items": schema_ref("Event")},
                "next_after": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "Oldest first (the default): the `after` of the next page.",
                },
                "next_before": {
                    "oneOf": [{"type": "integer", "minimum": 1}, {"type": "null"}],
                    "description": "With `order=desc`: the `before` of the next (older) page.",
                },
                "has_more": {"type": "boolean"},
            },
        },
        "Health": {
            "type": "object",
            "required": ["status", "version", "journal"],
            "properties": {
                "status": {"enum": ["ok", "draining", "degraded"]},
                "version": {"type": "string"},
                "journal": {"enum": ["ok", "failed", "stalled", "closed"]},
                "reason": {"type": "string"},
                "journal_location": {
                    "type": "string",
                    "description": "A PostgreSQL journal's URL, its password replaced by ***.",
                },
                "notifications": {
                    "type": "string",
                    "description": "A PostgreSQL journal: `listening`, or why live events are "
                    "polled (the LISTEN connection is down and being reopened).",
                },
            },
        },
        "Problem": {
            "type": "object",
            "required": ["type", "title", "status", "detail", "instance"],
            "description": "RFC 9457 problem details.",
            "properties": {
                "type": {"type": "string", "format": "uri-reference"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string"},
                "instance": {"type": "string"},
                "errors": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["path", "message"],
                        "properties": {"path": {"type": "string"}, "message": {"type": "string"}},
                    },
                },
            },
        },
        **time_travel_schemas(),
        **_workflow_schemas(),
    }


def _workflow_schemas() -> dict[str, Any]:
    """The workflow schema and its `$defs` as components, every `$ref` rewritten to match."""
    schema = copy.deepcopy(workflow_schema())
    definitions = schema.pop("$defs", {})
    for key in ("$schema", "$id"):
        schema.pop(key, None)
    text = json.dumps(
        {"Workflow": schema, **{f"workflow.{name}": value for name, value in definitions.items()}}
    )
    text = text.replace('"#/$defs/', '"#/components/schemas/workflow.')
    moved: dict[str, Any] = json.loads(text)
    return moved

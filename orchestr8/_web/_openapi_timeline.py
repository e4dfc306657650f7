"""The OpenAPI description of the timeline route and its body (`_timeline_routes`).

`_openapi` merges `timeline_paths()` into its paths and `timeline_schemas()` into its component
schemas; the operation follows the same conventions (problem responses by reference, the
correlation header on every response). The document is built by `_journal/_timeline_rows`.
"""

from __future__ import annotations

from typing import Any, Final

from ._openapi_parts import COMMON_ERRORS, JSON, nullable, path_parameter, schema_ref
from ._requests import MAX_SEQ
from ._timeline_routes import TIMELINE_ROWS_LIMIT

__all__ = ["journal_filter_parameters", "timeline_paths", "timeline_schemas"]

_SECONDS: Final = {"type": "number", "description": "Seconds on the `elapsed` axis."}


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


def journal_filter_parameters() -> list[dict[str, Any]]:
    """The journal route's order, `before`, `type` and `step` query parameters."""
    return [
        _query(
            "order",
            "asc (oldest first, the default) or desc (newest first).",
            {"enum": ["asc", "desc"], "default": "asc"},
        ),
        _query(
            "before",
            "Only events with a lower seq: `next_before` of the previous newest-first page.",
            {"type": "integer", "minimum": 1, "maximum": MAX_SEQ},
        ),
        {
            **_query(
                "type",
                "Only events of these types: a comma list, or the parameter repeated "
                "(`type=step.failed,retry.scheduled`). 400 names an unknown type.",
                {"type": "string"},
            ),
            "explode": True,
        },
        _query(
            "step",
            "Only events of this step, of its map items (`ID[3]`) and its loop iterations "
            "(`ID#2`).",
            {"type": "string", "minLength": 1},
        ),
    ]


def timeline_paths() -> dict[str, Any]:
    """The path of the timeline route."""
    errors = {
        code: {"$ref": f"#/components/responses/{code}"} for code in ("400", "404", *COMMON_ERRORS)
    }
    return {
        "/executions/{execution_id}/timeline": {
            "get": {
                "operationId": "getTimeline",
                "summary": "The execution's timeline: each step's attempts, retry waits and "
                "rejections on a time axis.",
                "description": "The row model `orchestr8 inspect ID --timeline` draws: one row per "
                "step in the order the steps first appear, map items (maps of at most 10 items) "
                "and loop iterations as rows under their step (`parent`), a map's row holding all "
                "its items' segments. `offset` and `limit` page the rows; `total_rows` says how "
                "many there are.",
                "parameters": [
                    path_parameter("execution_id"),
                    _query(
                        "offset",
                        "Skip this many rows.",
                        {"type": "integer", "minimum": 0, "default": 0},
                    ),
                    _query(
                        "limit",
                        "At most this many rows.",
                        {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": TIMELINE_ROWS_LIMIT,
                            "default": TIMELINE_ROWS_LIMIT,
                        },
                    ),
                ],
                "responses": {
                    "200": {
                        "description": "The timeline (a page of its rows).",
                        "headers": {
                            "X-Correlation-ID": {"$ref": "#/components/headers/X-Correlation-ID"}
                        },
                        "content": {JSON: {"schema": schema_ref("Timeline")}},
                    },
                    **errors,
                },
            }
        }
    }


def timeline_schemas() -> dict[str, Any]:
    """`Timeline`, `TimelineRow` and `TimelineSegment`."""
    segment = {
        "type": "object",
        "required": ["kind", "start", "end", "attempt"],
        "properties": {
            "kind": {
                "enum": ["attempt", "failed", "running", "interrupted", "wait", "rejected"],
                "description": "attempt: an attempt that succeeded; wait: a retry wait; "
                "rejected: a breaker or limiter rejection, an instant (start = end).",
            },
            "start": _SECONDS,
            "end": _SECONDS,
            "attempt": nullable({"type": "integer", "minimum": 1}),
        },
    }
    row = {
        "type": "object",
        "required": [
            "step_id",
            "status",
            "attempts",
            "duration",
            "parent",
            "group",
            "items",
            "segments",
        ],
        "properties": {
            "step_id": {"type": "string"},
            "status": {"type": "string"},
            "attempts": {"type": "integer", "minimum": 0},
            "duration": nullable({"type": "number", "minimum": 0}),
            "parent": nullable({"type": "string"}),
            "group": nullable({"enum": ["map", "loop"]}),
            "items": nullable({"type": "object"}),
            "earlier_attempts": {
                "type": "integer",
                "minimum": 0,
                "description": "Attempts before the last resume (added to live events' attempt).",
            },
            "segments": {"type": "array", "items": schema_ref("TimelineSegment")},
        },
    }
    timeline = {
        "type": "object",
        "required": [
            "execution_id",
            "status",
            "last_seq",
            "first",
            "last",
            "span",
            "resumes",
            "gaps",
            "total_rows",
            "offset",
            "rows",
        ],
        "properties": {
            "execution_id": {"type": "string"},
            "status": schema_ref("ExecutionStatus"),
            "last_seq": {"type": "integer", "minimum": 0},
            "first": _SECONDS,
            "last": _SECONDS,
            "span": {"type": "number", "minimum": 0},
            "resumes": {"type": "array", "items": _SECONDS},
            "gaps": {
                "type": "array",
                "description": "Each resume's gap: [the last event before it, the resume].",
                "items": {"type": "array", "items": _SECONDS, "minItems": 2, "maxItems": 2},
            },
            "downtimes": {
                "type": "array",
                "description": (
                    "Each gap's wall-clock length in seconds (from the events' ts; null if "
                    "unreadable): the elapsed axis does not count the time no process ran."
                ),
                "items": {"type": ["number", "null"], "minimum": 0},
            },
            "total_rows": {"type": "integer", "minimum": 0},
            "offset": {"type": "integer", "minimum": 0},
            "rows": {"type": "array", "items": schema_ref("TimelineRow")},
        },
    }
    unit_fields = {
        "type": "object",
        "properties": {
            "status": {"type": "string"},
            "attempts": {"type": "integer", "minimum": 0},
            "output": {},
            "error": {},
        },
    }
    state_diff = {
        "type": "object",
        "description": "What changed from event `from` to event `to` (`inspect --diff --json`).",
        "required": ["execution_id", "from", "to", "status", "units", "gates", "usage", "events"],
        "properties": {
            "execution_id": {"type": "string"},
            "from": {"type": "integer", "minimum": 1},
            "to": {"type": "integer", "minimum": 1},
            "status": {
                "type": "object",
                "required": ["before", "after"],
                "properties": {"before": {"type": "string"}, "after": {"type": "string"}},
            },
            "units": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["unit", "changed", "before", "after"],
                    "properties": {
                        "unit": {"type": "string"},
                        "changed": {"type": "array", "items": {"type": "string"}},
                        "before": nullable(unit_fields),
                        "after": unit_fields,
                    },
                },
            },
            "gates": {"type": "object"},
            "usage": {"type": "object", "additionalProperties": {"type": "integer"}},
            "events": {
                "type": "object",
                "required": ["count", "types"],
                "properties": {
                    "count": {"type": "integer", "minimum": 0},
                    "types": {"type": "object", "additionalProperties": {"type": "integer"}},
                },
            },
        },
    }
    return {
        "Timeline": timeline,
        "TimelineRow": row,
        "TimelineSegment": segment,
        "StateDiff": state_diff,
    }

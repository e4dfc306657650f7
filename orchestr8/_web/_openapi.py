"""The OpenAPI 3.1 document of the service: every route, request, response and problem.

`GET /openapi.json` serves it. The workflow schema is the generated one (`orchestr8 schema`), its
`$defs` moved to `components/schemas` as `workflow.<Name>` so every `$ref` resolves from the
document root. The WebSocket route is described as a `GET` with `x-websocket: true` and a 101
response, since OpenAPI has no WebSocket operations.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Final

from .._execution._liveness import SHOWN_STATUSES
from .._journal._events import EventType, StepStatus
from .._json import LARGEST_NUMBER
from .._version import __version__
from .._workflow._document import workflow_schema
from ._documents import (
    CORRELATION_ID_PATTERN,
    CURSOR_PATTERN,
    IDEMPOTENCY_KEY_PATTERN,
    MAX_CORRELATION_ID,
    MAX_SEQ,
)
from ._event_socket import (
    CLOSE_FINISHED,
    CLOSE_GOING_AWAY,
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_NOT_RUNNING,
    CLOSE_SERVER_ERROR,
    CLOSE_TOO_SLOW,
    MAX_CLIENT_MESSAGE,
)

_JSON: Final = "application/json"
_PROBLEM: Final = "application/problem+json"
_ID_PARAMETER: Final = {
    "name": "execution_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "The execution's id, as returned by `POST /workflows/execute`.",
}

_ERRORS: Final = {
    "400": "The request is malformed: invalid JSON, or an invalid query parameter or header.",
    "401": "The API key is missing or wrong (only when the server has one).",
    "404": "No such route, or no such execution.",
    "405": "The method is not allowed on this route; `Allow` lists the allowed ones.",
    "413": "The body is larger than the server's limit (1 MiB unless configured).",
    "415": "The body is not `application/json` (UTF-8).",
    "422": "The body is JSON but invalid: `errors` lists every problem by JSON path.",
    "409": "The execution is in the wrong state: cancel needs it running here; resume needs it "
    "neither running nor succeeded.",
    "426": "The route is a WebSocket; a plain request gets this, with `Upgrade: websocket`.",
    "500": "The server failed; the error was logged, the response holds no internals.",
    "503": "The journal cannot be used, or the server is shutting down.",
}
_COMMON: Final = ("401", "405", "500", "503")
_ERROR_HEADERS: Final = {"401": ("WWW-Authenticate",), "405": ("Allow",), "426": ("Upgrade",)}
"""The headers an error response carries besides `X-Correlation-ID`, which every one has."""

_HEADERS: Final = {
    "X-Correlation-ID": "The request's correlation id: the execution's for `POST "
    "/workflows/execute`, else the request's `X-Correlation-ID` when usable "
    f"(1 to {MAX_CORRELATION_ID} printable ASCII characters), else a new one.",
    "Location": "The URL of the execution.",
    "Allow": "The methods the route takes.",
    "WWW-Authenticate": 'Always `Bearer realm="orchestr8"`.',
    "Upgrade": "Always `websocket`.",
}
"""Every response header the service sends on purpose (declared under components/headers)."""


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"oneOf": [schema, {"type": "null"}]}


def _content(schema: dict[str, Any], media: str = _JSON) -> dict[str, Any]:
    return {"content": {media: {"schema": schema}}}


def _headers(*names: str) -> dict[str, Any]:
    """A response's `headers`: `X-Correlation-ID` and `names`, each a reference."""
    return {
        "headers": {
            name: {"$ref": f"#/components/headers/{name}"} for name in ("X-Correlation-ID", *names)
        }
    }


def _responses(
    ok: str, ok_description: str, schema: str, *errors: str, ok_headers: tuple[str, ...] = ()
) -> dict[str, Any]:
    body = _ref(schema) if schema else {"type": "object"}
    responses: dict[str, Any] = {
        ok: {"description": ok_description, **_headers(*ok_headers), **_content(body)}
    }
    for code in sorted({*errors, *_COMMON}):
        responses[code] = {"$ref": f"#/components/responses/{code}"}
    return responses


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


_AFTER: Final = _query(
    "after",
    "Only events with a greater seq (0: from the start).",
    {"type": "integer", "minimum": 0, "maximum": MAX_SEQ, "default": 0},
)


def _paths() -> dict[str, Any]:
    execute_headers = {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN},
        "description": "1 to 255 visible ASCII characters, bare or in double quotes. A repeat "
        "request with the same key returns the execution started by the first "
        "one (422 if its workflow or inputs differ; inputs under secret-looking keys are "
        "compared redacted, so a different secret alone is the same request).",
    }
    correlation_header = {
        "name": "X-Correlation-ID",
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "description": "The execution's correlation id when the body has none and it is 1 to "
        f"{MAX_CORRELATION_ID} printable ASCII characters (else it is ignored).",
    }
    return {
        "/health": {
            "get": {
                "operationId": "health",
                "summary": "Whether the service can take work.",
                "security": [],
                "responses": {
                    "200": {"description": "Healthy.", **_headers(), **_content(_ref("Health"))},
                    "503": {
                        "description": "Degraded (the journal failed or is stalled; `reason` "
                        "says how) or shutting down.",
                        **_headers(),
                        **_content(_ref("Health")),
                    },
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "The engine's metrics in the Prometheus text format (version 0.0.4).",
                "responses": {
                    "200": {
                        "description": "Step durations, successes, failures and retries; "
                        "breaker states; executions in flight.",
                        **_headers(),
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    **{
                        code: {"$ref": f"#/components/responses/{code}"} for code in sorted(_COMMON)
                    },
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document.",
                "responses": _responses("200", "The OpenAPI 3.1 document.", ""),
            }
        },
        "/workflows/execute": {
            "post": {
                "operationId": "execute",
                "summary": "Validate, record and start an execution.",
                "description": "Answers once the execution is recorded and running. Validation "
                "errors point into the request body: `$.workflow...`, `$.inputs...`.",
                "parameters": [execute_headers, correlation_header],
                "requestBody": {"required": True, **_content(_ref("ExecuteRequest"))},
                "responses": _responses(
                    "202",
                    "Started (or, for a repeated Idempotency-Key, "
                    "the execution the key started). `Location` is its URL.",
                    "ExecutionAccepted",
                    "400",
                    "413",
                    "415",
                    "422",
                    ok_headers=("Location",),
                ),
            }
        },
        "/executions": {
            "get": {
                "operationId": "listExecutions",
                "summary": "Executions, newest first.",
                "parameters": [
                    _query("status", "Only executions with this status.", _ref("ExecutionStatus")),
                    _query(
                        "limit",
                        "At most this many items.",
                        {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
                    ),
                    _query(
                        "cursor",
                        "`next_cursor` of the previous page (empty: the first).",
                        {"type": "string", "pattern": CURSOR_PATTERN},
                    ),
                ],
                "responses": _responses("200", "A page of executions.", "ExecutionPage", "400"),
            }
        },
        "/executions/{execution_id}": {
            "get": {
                "operationId": "getExecution",
                "summary": "An execution: status, timing, output, error and every step.",
                "parameters": [_ID_PARAMETER],
                "responses": _responses("200", "The execution.", "Execution", "404"),
            }
        },
        "/executions/{execution_id}/journal": {
            "get": {
                "operationId": "getJournal",
                "summary": "Recorded events in seq order, a page at a time.",
                "parameters": [
                    _ID_PARAMETER,
                    _AFTER,
                    _query(
                        "limit",
                        "At most this many events.",
                        {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                    ),
                ],
                "responses": _responses(
                    "200",
                    "A page of events; pass `next_after` as `after`.",
                    "JournalPage",
                    "400",
                    "404",
                ),
            }
        },
        "/executions/{execution_id}/cancel": {
            "post": {
                "operationId": "cancelExecution",
                "summary": "Ask a running execution to stop (cooperatively, then by force).",
                "description": "No body is needed. The execution ends `cancelled` within the grace "
                "period; follow it on the events WebSocket or poll it.",
                "parameters": [_ID_PARAMETER],
                "responses": _responses(
                    "202",
                    "Being cancelled.",
                    "CancelAccepted",
                    "404",
                    "409",
                    ok_headers=("Location",),
                ),
            }
        },
        "/executions/{execution_id}/resume": {
            "post": {
                "operationId": "resumeExecution",
                "summary": (
                    "Continue a failed, cancelled or abandoned execution, reusing the "
                    "outputs of the steps that succeeded."
                ),
                "description": (
                    "The body is optional. The journal keeps inputs under secret-looking "
                    "keys redacted: supply them again in `inputs` (only them; 422 names "
                    "the missing ones). `${secrets.NAME}` references are resolved again "
                    "from the server's environment (422 `missing-secrets` when one is not "
                    "set). 409 when it succeeded already or is running."
                ),
                "parameters": [_ID_PARAMETER],
                "requestBody": {"required": False, **_content(_ref("ResumeRequest"))},
                "responses": _responses(
                    "202",
                    "Resumed and running. `Location` is its URL.",
                    "ExecutionAccepted",
                    "400",
                    "404",
                    "409",
                    "413",
                    "415",
                    "422",
                    ok_headers=("Location",),
                ),
            }
        },
        "/executions/{execution_id}/events": {
            "get": {
                "operationId": "followEvents",
                "x-websocket": True,
                "summary": (
                    "WebSocket: the execution's events, past then live, one JSON text "
                    "message each (an `Event`)."
                ),
                "description": (
                    "Connect with a WebSocket client (`ws://`). Events come in seq order "
                    "without gaps; the server closes with a code that tells what to do next: "
                    f"{CLOSE_FINISHED} after the terminal event; {CLOSE_GOING_AWAY} server "
                    f"shutting down and {CLOSE_TOO_SLOW} client too slow, both with the reason "
                    f"`... reconnect with after=N`; {CLOSE_NOT_RUNNING} the execution is neither "
                    f"finished nor running in this server; {CLOSE_MESSAGE_TOO_BIG} the client "
                    f"sent a message over {MAX_CLIENT_MESSAGE // 1024} KiB; {CLOSE_SERVER_ERROR} "
                    "server error. With an API key, send `Authorization: Bearer <key>` with the "
                    "handshake. Errors before the handshake completes are problem responses; a "
                    "plain `GET` (no upgrade) is answered 426, or 404 for an unknown execution."
                ),
                "parameters": [_ID_PARAMETER, _AFTER],
                "responses": {
                    "101": {
                        "description": "Switching to the WebSocket protocol; each message is "
                        "an Event.",
                        **_headers(),
                        **_content(_ref("Event")),
                    },
                    **{
                        code: {"$ref": f"#/components/responses/{code}"}
                        for code in ("400", "401", "404", "426", "500")
                    },
                },
            }
        },
    }


def _schemas() -> dict[str, Any]:
    link_names = ("self", "journal", "events", "cancel")
    links = {
        "type": "object",
        "required": list(link_names),
        "properties": {name: {"type": "string"} for name in link_names},
    }
    timestamp = {"type": "string", "description": "UTC ISO-8601 with milliseconds."}
    step = {
        "type": "object",
        "required": ["status", "attempts", "duration", "output", "error"],
        "properties": {
            "status": _ref("StepStatus"),
            "attempts": {"type": "integer", "minimum": 0},
            "duration": _nullable({"type": "number"}),
            "output": {},
            "error": _nullable({"type": "object"}),
        },
    }
    summary_fields: dict[str, Any] = {
        "execution_id": {"type": "string"},
        "workflow": {"type": "string"},
        "status": _ref("ExecutionStatus"),
        "created_at": timestamp,
        "started_at": _nullable(timestamp),
        "finished_at": _nullable(timestamp),
        "correlation_id": _nullable({"type": "string"}),
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
                "workflow": _ref("Workflow"),
                "inputs": _nullable(
                    {
                        "type": "object",
                        "description": "Checked against the workflow's `inputs` schema.",
                    }
                ),
                "timeout": _nullable(
                    {
                        "type": "number",
                        "exclusiveMinimum": 0,
                        "maximum": LARGEST_NUMBER,
                        "description": "Seconds; overrides the workflow's own `timeout`.",
                    }
                ),
                "correlation_id": _nullable(
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
                "inputs": _nullable(
                    {
                        "type": "object",
                        "description": "Inputs the journal "
                        "redacted, supplied again; checked against the "
                        "workflow's `inputs` schema.",
                    }
                ),
                "timeout": _nullable(
                    {
                        "type": "number",
                        "exclusiveMinimum": 0,
                        "maximum": LARGEST_NUMBER,
                        "description": "Seconds; overrides the workflow's own `timeout`.",
                    }
                ),
            },
        },
        "ExecutionAccepted": {
            "type": "object",
            "required": ["execution_id", "status", "links"],
            "properties": {
                "execution_id": {"type": "string"},
                "status": _ref("ExecutionStatus"),
                "links": _ref("Links"),
            },
        },
        "CancelAccepted": {
            "type": "object",
            "required": ["execution_id", "status", "cancel_requested", "links"],
            "properties": {
                "execution_id": {"type": "string"},
                "status": _ref("ExecutionStatus"),
                "cancel_requested": {"const": True},
                "links": _ref("Links"),
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
            },
        },
        "ExecutionPage": {
            "type": "object",
            "required": ["items", "next_cursor"],
            "properties": {
                "items": {"type": "array", "items": _ref("ExecutionSummary")},
                "next_cursor": _nullable({"type": "string"}),
            },
        },
        "StepState": step,
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
                "links",
            ],
            "properties": {
                **summary_fields,
                "duration": _nullable({"type": "number"}),
                "idempotency_key": _nullable({"type": "string"}),
                "inputs": {"type": "object"},
                "output": {},
                "error": _nullable({"type": "object"}),
                "last_seq": {"type": "integer", "minimum": 0},
                "steps": {"type": "object", "additionalProperties": _ref("StepState")},
                "links": _ref("Links"),
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
            "required": ["execution_id", "events", "next_after", "has_more"],
            "properties": {
                "execution_id": {"type": "string"},
                "events": {"type": "array", "items": _ref("Event")},
                "next_after": {"type": "integer", "minimum": 0},
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


def openapi_document(*, auth: bool) -> dict[str, Any]:
    """Return the OpenAPI 3.1 document; with `auth`, every route but `/health` needs the key."""
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "orchestr8",
            "version": __version__,
            "description": "Run agent workflows and follow their events. Errors are RFC 9457 "
            "problems (application/problem+json). See docs/rest.md.",
        },
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "paths": _paths(),
        "components": {
            "schemas": _schemas(),
            "responses": {
                code: {
                    "description": description,
                    **_headers(*_ERROR_HEADERS.get(code, ())),
                    **_content(_ref("Problem"), _PROBLEM),
                }
                for code, description in sorted(_ERRORS.items())
            },
            "headers": {
                name: {"description": description, "schema": {"type": "string"}}
                for name, description in _HEADERS.items()
            },
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The server's API key (`--api-key` or ORCHESTR8_API_KEY).",
                }
            },
        },
    }
    if auth:
        document["security"] = [{"bearer": []}]
    return document

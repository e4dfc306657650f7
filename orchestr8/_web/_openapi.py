"""The OpenAPI 3.1 document of the service: every route, request, response and problem.

`GET /openapi.json` serves it. This module describes the operations (paths, parameters,
responses, headers, problems); the body schemas they refer to are in `_openapi_schemas`. The
WebSocket route is described as a `GET` with `x-websocket: true` and a 101 response, since
OpenAPI has no WebSocket operations.
"""

from __future__ import annotations

from typing import Any, Final

from .._version import __version__
from ._event_socket import (
    CLOSE_FINISHED,
    CLOSE_GOING_AWAY,
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_NOT_RUNNING,
    CLOSE_SERVER_ERROR,
    CLOSE_TOO_SLOW,
    MAX_CLIENT_MESSAGE,
)
from ._openapi_gates import gate_paths, gate_schemas
from ._openapi_graph import graph_paths, graph_schemas
from ._openapi_parts import path_parameter, schema_ref
from ._openapi_schemas import component_schemas
from ._openapi_sessions import add_session_security
from ._openapi_steps import step_paths, step_schemas
from ._openapi_timeline import journal_filter_parameters, timeline_paths, timeline_schemas
from ._requests import CURSOR_PATTERN, IDEMPOTENCY_KEY_PATTERN, MAX_CORRELATION_ID, MAX_SEQ

_JSON: Final = "application/json"
_PROBLEM: Final = "application/problem+json"
_ID_PARAMETER: Final = path_parameter(
    "execution_id", "The execution's id, as returned by `POST /workflows/execute`."
)

_ERRORS: Final = {
    "400": "The request is malformed: invalid JSON, or an invalid query parameter or header.",
    "401": "The API key is missing or wrong (only when the server has one).",
    "404": "No such route, or no such execution.",
    "405": "The method is not allowed on this route; `Allow` lists the allowed ones.",
    "413": "The body is larger than the server's limit (1 MiB unless configured).",
    "415": "The body is not `application/json` (UTF-8).",
    "422": "The body is JSON but invalid: `errors` lists every problem by JSON path (for "
    "`GET /executions/{execution_id}/state`: `at` names no event of the execution).",
    "409": "The execution is in the wrong state: cancel needs it unfinished; resume needs it "
    "neither running nor succeeded; fork needs it not running.",
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
    body = schema_ref(schema) if schema else {"type": "object"}
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
                    "200": {
                        "description": "Healthy.",
                        **_headers(),
                        **_content(schema_ref("Health")),
                    },
                    "503": {
                        "description": "Degraded (the journal failed or is stalled; `reason` "
                        "says how) or shutting down.",
                        **_headers(),
                        **_content(schema_ref("Health")),
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
                "requestBody": {"required": True, **_content(schema_ref("ExecuteRequest"))},
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
                    _query(
                        "status", "Only executions with this status.", schema_ref("ExecutionStatus")
                    ),
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
                    _query(
                        "top_level",
                        "true: leave out child executions (sub-workflows, plans, map items).",
                        {"type": "boolean", "default": False},
                    ),
                    _query(
                        "workflow",
                        "Only executions of the workflow with exactly this name (empty: any).",
                        {"type": "string"},
                    ),
                    _query(
                        "id_prefix",
                        "Only executions whose id starts with these lowercase hex characters"
                        " (empty: any).",
                        {"type": "string", "pattern": "^([0-9a-f]{1,32})?$"},
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
        "/executions/{execution_id}/state": {
            "get": {
                "operationId": "getExecutionState",
                "summary": "Time travel: the execution's state right after one of its events.",
                "description": "The document `orchestr8 inspect ID --at SEQ --json` prints: "
                "status, steps (with attempts, outputs, tokens), gates and tokens as the events "
                "up to `at` tell them. 422 `event-out-of-range` when the execution has no event "
                "`at` (the detail names the range it has).",
                "parameters": [
                    _ID_PARAMETER,
                    _query(
                        "at",
                        "The event's seq; the last event by default.",
                        {"type": "integer", "minimum": 1, "maximum": MAX_SEQ},
                    ),
                    _query(
                        "since",
                        "Add `changes`: what changed from this event to `at` (at most `at`).",
                        {"type": "integer", "minimum": 1, "maximum": MAX_SEQ},
                    ),
                ],
                "responses": _responses(
                    "200", "The state after event `at`.", "ExecutionStateAt", "400", "404", "422"
                ),
            }
        },
        "/executions/compare": {
            "get": {
                "operationId": "compareExecutions",
                "summary": "Two executions side by side, step by step.",
                "description": "The document `orchestr8 compare A B --json` prints: each "
                "step's status, attempts, duration and tokens on both sides, whether the outputs "
                "are equal (a unified diff when not), and the workflow and inputs differences. "
                "404 names which of `a` and `b` is unknown.",
                "parameters": [
                    {
                        **_query("a", "The first execution's id.", {"type": "string"}),
                        "required": True,
                    },
                    {
                        **_query("b", "The second execution's id.", {"type": "string"}),
                        "required": True,
                    },
                ],
                "responses": _responses("200", "The comparison.", "Comparison", "400", "404"),
            }
        },
        "/executions/{execution_id}/journal": {
            "get": {
                "operationId": "getJournal",
                "summary": "Recorded events in seq order, a page at a time.",
                "description": "Oldest first after `after` (pass `next_after` as `after`), or "
                "newest first with `order=desc` (pass `next_before` as `before`); `type` and "
                "`step` filter the events. 400 names an unknown event type.",
                "parameters": [
                    _ID_PARAMETER,
                    _AFTER,
                    _query(
                        "limit",
                        "At most this many events.",
                        {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                    ),
                    *journal_filter_parameters(),
                ],
                "responses": _responses(
                    "200",
                    "A page of events; pass `next_after` as `after` (`next_before` as `before`).",
                    "JournalPage",
                    "400",
                    "404",
                ),
            }
        },
        "/executions/{execution_id}/cancel": {
            "post": {
                "operationId": "cancelExecution",
                "summary": "Stop an execution wherever it runs (cooperatively, then by force).",
                "description": "No body is needed. Run by this server or another process on the "
                "same journal (202): it ends `cancelled` within the grace period (`force`: at "
                "once); another process acts on the request recorded in the journal (its "
                "`request_id`) within a second. Run by no process (interrupted, or waiting for "
                "approval): cancelled now, durably (200).",
                "parameters": [_ID_PARAMETER],
                "requestBody": {"required": False, **_content(schema_ref("CancelRequest"))},
                "responses": {
                    **_responses(
                        "202",
                        "Being cancelled.",
                        "CancelAccepted",
                        "400",
                        "404",
                        "409",
                        "413",
                        "415",
                        "422",
                        ok_headers=("Location",),
                    ),
                    "200": {
                        "description": "Cancelled now: no process ran it.",
                        **_headers("Location"),
                        **_content(schema_ref("ExecutionAccepted")),
                    },
                },
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
                "requestBody": {"required": False, **_content(schema_ref("ResumeRequest"))},
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
        "/executions/{execution_id}/fork": {
            "post": {
                "operationId": "forkExecution",
                "summary": (
                    "Start a new execution reusing this one's outputs up to a step, and running "
                    "that step and its dependents again (or plan it: `dry_run`)."
                ),
                "description": (
                    "`from` is a step id, a map item `STEP[i]` or a loop iteration `STEP#k`. "
                    "`inputs` change the recorded ones (a dotted key sets a nested value); "
                    "inputs the journal redacted must be given again. 200 with the plan for a "
                    "dry run (nothing is written); 409 `execution-running` while it runs; 422 "
                    "`fork-refused` when `from` names no step, item or iteration it has, or it "
                    "is a child execution. See docs/steering.md."
                ),
                "parameters": [_ID_PARAMETER],
                "requestBody": {"required": True, **_content(schema_ref("ForkRequest"))},
                "responses": {
                    **_responses(
                        "202",
                        "The fork started. `Location` is its URL.",
                        "ForkAccepted",
                        "400",
                        "404",
                        "409",
                        "413",
                        "415",
                        "422",
                        ok_headers=("Location",),
                    ),
                    "200": {
                        "description": "The dry run's plan: what is kept, what runs again.",
                        **_headers(),
                        **_content(schema_ref("ForkPlan")),
                    },
                },
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
                    f"shutting down and {CLOSE_TOO_SLOW} client too slow or journal unavailable, "
                    "all with the reason "
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
                        **_content(schema_ref("Event")),
                    },
                    **{
                        code: {"$ref": f"#/components/responses/{code}"}
                        for code in ("400", "401", "404", "426", "500")
                    },
                },
            }
        },
        **gate_paths(),
        **step_paths(),
        **graph_paths(),
        **timeline_paths(),
    }


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
            "schemas": {
                **component_schemas(),
                **gate_schemas(),
                **step_schemas(),
                **graph_schemas(),
                **timeline_schemas(),
            },
            "responses": {
                code: {
                    "description": description,
                    **_headers(*_ERROR_HEADERS.get(code, ())),
                    **_content(schema_ref("Problem"), _PROBLEM),
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
    return add_session_security(document, auth=auth)

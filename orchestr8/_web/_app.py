"""The orchestr8 service: the REST API and the live event WebSocket, as a Quart-Trio app.

`create_app(runtime)` builds the app; `_serve.serve` runs it with Hypercorn. Executions
live in the runtime's nursery, never in a request handler: requests start, read and cancel them, and
the journal is the source of truth for every read, so executions recorded before a restart stay
visible. Every error is an RFC 9457 problem (`application/problem+json`); validation problems list
`errors: [{path, message}]` with the messages of `orchestr8 validate`, their paths pointing into the
request body (`$.workflow.steps[0].id`, `$.inputs.topic`). The routes are described by
`orchestr8._web._openapi` and in `docs/rest.md`.
"""

from __future__ import annotations

import hmac
import logging
import re
import uuid
from typing import Any, Final

import attrs
import trio
from quart import Response, g, has_websocket_context, request, websocket
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES

from .._errors import (
    ExecutionNotFoundError,
    ExecutionStateError,
    IdempotencyKeyReusedError,
    InputValidationError,
    JournalError,
    MissingSecretError,
    Problem,
    WorkflowValidationError,
)
from .._execution._liveness import SHOWN_STATUSES, list_shown_executions, shown_status
from .._execution._runtime import Runtime
from .._journal._events import ExecutionStatus
from .._journal._replay import replay
from .._observability._redaction import register_secret
from .._version import __version__
from ._documents import (
    CURSOR_PATTERN,
    IDEMPOTENCY_KEY_PATTERN,
    MAX_SEQ,
    ProblemError,
    current_path,
    execution_document,
    execution_links,
    execution_summary,
    is_correlation_id,
    json_response,
    parse_execute_request,
    parse_resume_request,
    problem_response,
    query_int,
    read_json_body,
)
from ._event_socket import stream_events
from ._openapi import openapi_document

_VISIBLE: Final = r"[\x21-\x7e\x80-\xff]+"
_HEADER_VALUE: Final = re.compile(f"(?:{_VISIBLE}(?:[ \t]+{_VISIBLE})*)?")
"""What a header value may hold: RFC 9110's field-value (as h11 checks it) in latin-1."""

DEFAULT_MAX_BODY: Final = 1024 * 1024
"""The largest request body accepted by default, in bytes (1 MiB)."""

DEFAULT_EVENTS_BUFFER: Final = 1024
"""How many bus events a WebSocket client may fall behind by default before it is closed."""

_logger = logging.getLogger("orchestr8.web")
_UNAUTHENTICATED_PATHS: Final = frozenset({"/health"})


@attrs.define(eq=False)
class ServiceState:
    """What the routes share besides the runtime: the key, limits and the shutdown switches."""

    runtime: Runtime
    api_key: bytes | None
    events_buffer: int
    draining: bool = False
    closing: trio.Event = attrs.Factory(trio.Event)


class ServiceApp(QuartTrio):
    """The Quart-Trio app of the service; `service` holds the runtime and the shutdown switches."""

    service: ServiceState

    def start_draining(self) -> None:
        """Refuse new executions (503) and report `draining` on `/health`, while reads go on."""
        self.service.draining = True

    def close_event_streams(self) -> None:
        """Close every open event WebSocket with 1001 and `reconnect with after=N`."""
        self.service.closing.set()


def create_app(
    runtime: Runtime,
    *,
    api_key: str | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    events_buffer: int = DEFAULT_EVENTS_BUFFER,
) -> ServiceApp:
    """Build the service app over a runtime; serve it with `orchestr8._web._serve.serve`.

    Args:
        runtime: the runtime from `open_runtime` in which executions run.
        api_key: when set, every route but `GET /health` requires `Authorization: Bearer <key>`.
        max_body: the largest request body accepted, in bytes (413 beyond).
        events_buffer: how many bus events a WebSocket client may fall behind before it is closed.

    Raises:
        ValueError: the key is empty or not printable ASCII, or a limit is below 1.
    """
    if api_key is not None and not (api_key.isascii() and api_key.isprintable() and api_key):
        raise ValueError("the API key must be non-empty printable ASCII")
    if max_body < 1 or events_buffer < 1:
        raise ValueError("max_body and events_buffer must be at least 1")
    if api_key is not None:
        # Redacted wherever it would show: a problem body quoting a request, a log line.
        register_secret(api_key)
    app = ServiceApp(__name__)
    app.config["MAX_CONTENT_LENGTH"] = max_body
    app.service = ServiceState(
        runtime, None if api_key is None else api_key.encode(), events_buffer
    )
    routes = _Routes(app.service)
    app.before_request(routes.authenticate)
    app.before_websocket(routes.authenticate)
    # After-request functions run last-registered first: the header check sees the final headers.
    app.after_request(_sendable_headers)
    app.after_request(_close_if_body_unread)
    app.after_request(_correlation_header)
    app.after_websocket(_refused_handshake_headers)
    app.register_error_handler(ProblemError, _problem_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(ExecutionNotFoundError, _not_found)
    app.register_error_handler(JournalError, _journal_error)
    app.register_error_handler(Exception, _unexpected_error)
    app.add_url_rule("/health", "health", routes.health, methods=["GET"])
    app.add_url_rule("/openapi.json", "openapi", routes.openapi, methods=["GET"])
    app.add_url_rule("/metrics", "metrics", routes.metrics, methods=["GET"])
    app.add_url_rule("/workflows/execute", "execute", routes.execute, methods=["POST"])
    app.add_url_rule("/executions", "list_executions", routes.list_executions, methods=["GET"])
    app.add_url_rule(
        "/executions/<execution_id>", "get_execution", routes.get_execution, methods=["GET"]
    )
    app.add_url_rule(
        "/executions/<execution_id>/journal", "get_journal", routes.get_journal, methods=["GET"]
    )
    app.add_url_rule(
        "/executions/<execution_id>/cancel", "cancel_execution", routes.cancel, methods=["POST"]
    )
    app.add_url_rule(
        "/executions/<execution_id>/resume", "resume_execution", routes.resume, methods=["POST"]
    )
    app.add_websocket("/executions/<execution_id>/events", "follow_events", routes.follow_events)
    app.add_url_rule(
        "/executions/<execution_id>/events",
        "events_without_upgrade",
        routes.events_without_upgrade,
        methods=["GET"],
    )
    return app


class _Routes:
    """The route handlers, bound to one service's state."""

    def __init__(self, service: ServiceState) -> None:
        self.service = service
        self.runtime = service.runtime
        self._openapi: dict[str, Any] | None = None

    async def authenticate(self) -> Response | None:
        """Refuse a request without the API key (before routing, so unknown routes say 401 too)."""
        connection = websocket if has_websocket_context() else request
        if self.service.api_key is None or connection.path in _UNAUTHENTICATED_PATHS:
            return None
        scheme, _, token = connection.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
            token.strip().encode("latin-1", "replace"), self.service.api_key
        ):
            return None
        # Worded so that no `key: value` secret pattern matches: problems are redacted whole.
        detail = "send the API key in the Authorization header, as `Bearer <key>`"
        return problem_response(
            401, "unauthorized", detail, headers={"WWW-Authenticate": 'Bearer realm="orchestr8"'}
        )

    async def health(self) -> Response:
        """`GET /health`: whether the service can take work, and if not, why (see docs/rest.md)."""
        journal = self.runtime.journal
        trouble = journal.trouble()
        state = (
            "ok"
            if trouble is None
            else "failed"
            if journal.statistics().failed
            else "closed"
            if journal.closed
            else "stalled"
        )
        status = "degraded" if trouble else "draining" if self.service.draining else "ok"
        document: dict[str, Any] = {"status": status, "version": __version__, "journal": state}
        if trouble is not None:
            document["reason"] = trouble
        return json_response(document, 200 if status == "ok" else 503)

    async def metrics(self) -> Response:
        """`GET /metrics`: the engine's metrics in the Prometheus text format."""
        from .._observability._prometheus import prometheus_registry

        return Response(
            prometheus_registry().render(),
            200,
            content_type="text/plain; version=0.0.4; charset=utf-8",
        )

    async def openapi(self) -> Response:
        """`GET /openapi.json`: the OpenAPI 3.1 description of every route."""
        if self._openapi is None:
            self._openapi = openapi_document(auth=self.service.api_key is not None)
        return json_response(self._openapi)

    async def execute(self) -> Response:
        """`POST /workflows/execute`: validate, record and start an execution (202)."""
        if self.service.draining:
            raise ProblemError(503, "shutting-down", "the server is shutting down; retry later")
        key = _idempotency_key()
        body = parse_execute_request(await read_json_body())
        if body.correlation_id is None:
            body = attrs.evolve(body, correlation_id=_request_correlation_id())
        g.correlation_id = body.correlation_id
        try:
            handle = await self.runtime.start(
                body.workflow,
                body.inputs,
                execution_timeout=body.timeout,
                correlation_id=body.correlation_id,
                idempotency_key=key,
            )
        except WorkflowValidationError as error:
            raise ProblemError.from_problems(
                "invalid-workflow", error.problems, prefix="$.workflow"
            ) from None
        except InputValidationError as error:
            raise ProblemError.from_problems("invalid-inputs", error.problems) from None
        except IdempotencyKeyReusedError as error:
            raise ProblemError(
                422,
                "idempotency-key-reused",
                f"the Idempotency-Key was used for execution {error.execution_id} with a "
                "different workflow or inputs; use a new key for a new request",
            ) from None
        except MissingSecretError as error:
            raise _missing_secrets(error) from None
        result = handle.result
        if result is not None:
            status = str(result.status)
        elif self.runtime.find(handle.execution_id) is not None:
            status = str(ExecutionStatus.RUNNING)
        else:
            status = str((await self.runtime.journal.get_execution(handle.execution_id)).status)
        links = execution_links(handle.execution_id)
        document = {"execution_id": handle.execution_id, "status": status, "links": links}
        return json_response(document, 202, headers={"Location": links["self"]})

    async def list_executions(self) -> Response:
        """`GET /executions`: executions, newest first, a page at a time."""
        status = request.args.get("status")
        if status is not None and status not in SHOWN_STATUSES:
            allowed = ", ".join(SHOWN_STATUSES)
            raise ProblemError.parameter("status", f"expected one of {allowed}, got {status!r}")
        limit = query_int("limit", default=50, low=1, high=500)
        cursor = request.args.get("cursor") or None
        if cursor is not None and re.fullmatch(CURSOR_PATTERN, cursor) is None:
            raise ProblemError.parameter("cursor", "not a cursor from a previous page")
        try:
            page = await list_shown_executions(
                self.runtime.journal, status=status, limit=limit, before=cursor
            )
        except ValueError:
            raise ProblemError.parameter("cursor", "not a cursor from a previous page") from None
        items = [{**execution_summary(item.record), "status": item.status} for item in page.items]
        return json_response({"items": items, "next_cursor": page.next_cursor})

    async def get_execution(self, execution_id: str) -> Response:
        """`GET /executions/{id}`: status, timing, output, error and every step's state."""
        record = await self.runtime.journal.get_execution(execution_id)
        state = replay(await self.runtime.journal.events(execution_id))
        status = await shown_status(self.runtime.journal, execution_id, state.status)
        return json_response({**execution_document(record, state), "status": status})

    async def get_journal(self, execution_id: str) -> Response:
        """`GET /executions/{id}/journal`: recorded events after a seq, in seq order."""
        after = query_int("after", default=0, low=0, high=MAX_SEQ)
        limit = query_int("limit", default=100, low=1, high=1000)
        events = await self.runtime.journal.events(execution_id, after=after, limit=limit + 1)
        page = events[:limit]
        document = {
            "execution_id": execution_id,
            "events": [event.to_json() for event in page],
            "next_after": page[-1].seq if page else after,
            "has_more": len(events) > limit,
        }
        return json_response(document)

    async def cancel(self, execution_id: str) -> Response:
        """`POST /executions/{id}/cancel`: ask a running execution to stop (202), else 409."""
        journal = self.runtime.journal
        await journal.get_execution(execution_id)
        handle = self.runtime.find(execution_id)
        # Committed up to now, the journal tells whether the run has already emitted its end
        # (it may still be winding up, its handle not yet done).
        await journal.flush()
        status = (await journal.get_execution(execution_id)).status
        if handle is not None and handle.result is None and not status.is_terminal:
            handle.cancel("cancelled through the API")
            links = execution_links(execution_id)
            document = {
                "execution_id": execution_id,
                "status": str(ExecutionStatus.RUNNING),
                "cancel_requested": True,
                "links": links,
            }
            return json_response(document, 202, headers={"Location": links["self"]})
        if handle is not None and handle.result is not None:
            status = handle.result.status
        if status.is_terminal:
            raise ProblemError(
                409,
                "execution-finished",
                f"execution {execution_id} already {status}; nothing to cancel",
            )
        raise ProblemError(
            409,
            "execution-not-running",
            f"the journal says execution {execution_id} is {status}, but no process runs it "
            "(the one that did stopped); `orchestr8 resume` continues it",
        )

    async def resume(self, execution_id: str) -> Response:
        """`POST /executions/{id}/resume`: continue a failed, cancelled or abandoned execution.

        The optional body supplies again the inputs the journal keeps redacted, and a timeout.
        """
        if self.service.draining:
            raise ProblemError(503, "shutting-down", "the server is shutting down; retry later")
        # Optional: an empty body (whatever its content type) resumes as is.
        body = parse_resume_request(await read_json_body(if_empty={}))
        record = await self.runtime.journal.get_execution(execution_id)
        g.correlation_id = record.correlation_id
        try:
            handle = await self.runtime.resume(
                execution_id, execution_timeout=body.timeout, inputs=body.inputs
            )
        except InputValidationError as error:
            raise ProblemError.from_problems("invalid-inputs", error.problems) from None
        except MissingSecretError as error:
            raise _missing_secrets(error) from None
        except WorkflowValidationError as error:
            # The recorded workflow no longer loads here (an agent is gone): say what is wrong.
            raise ProblemError.from_problems("invalid-workflow", error.problems) from None
        except ExecutionStateError as error:
            raise ProblemError(409, "execution-not-resumable", str(error)) from None
        links = execution_links(handle.execution_id)
        document = {
            "execution_id": handle.execution_id,
            "status": str(ExecutionStatus.RUNNING),
            "links": links,
        }
        return json_response(document, 202, headers={"Location": links["self"]})

    async def follow_events(self, execution_id: str) -> Response | None:
        """WebSocket `/executions/{id}/events?after=SEQ`: past, then live events."""
        after = query_int("after", default=0, low=0, high=MAX_SEQ, args=websocket.args)
        await self.runtime.journal.get_execution(execution_id)
        # The handshake's 101 carries the correlation id like every other response.
        await websocket.accept(headers={"X-Correlation-ID": _request_correlation_id()})
        await stream_events(
            websocket,
            self.runtime,
            execution_id,
            after=after,
            buffer=self.service.events_buffer,
            closing=self.service.closing,
        )
        return None

    async def events_without_upgrade(self, execution_id: str) -> Response:
        """A plain `GET` of the events route: 426 naming the WebSocket upgrade (404 if unknown)."""
        await self.runtime.journal.get_execution(execution_id)
        return problem_response(
            426,
            "upgrade-required",
            f"{current_path()} is a WebSocket: connect with a WebSocket client (ws:// or wss://)",
            headers={"Upgrade": "websocket", "Connection": "Upgrade"},
        )


def _missing_secrets(error: MissingSecretError) -> ProblemError:
    """The 422 for secrets the server does not have, one error per secret named."""
    problems = [Problem(f"secrets.{name}", "not set") for name in error.names]
    return ProblemError(422, "missing-secrets", str(error), errors=problems)


def _has_body() -> bool:
    """Whether the request comes with a body (a length above 0, or chunks)."""
    return (
        bool(request.content_length)
        or "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    )


def _idempotency_key() -> str | None:
    """The request's Idempotency-Key (a plain token or a quoted string), or None."""
    raw = request.headers.get("Idempotency-Key")
    if raw is None:
        return None
    key = raw.strip()
    if re.fullmatch(IDEMPOTENCY_KEY_PATTERN, key) is None:
        raise ProblemError(
            400,
            "invalid-header",
            "the Idempotency-Key header must be 1 to 255 "
            "visible ASCII characters, bare or in double quotes",
        )
    return key[1:-1] if len(key) >= 2 and key[0] == key[-1] == '"' else key


async def _problem_error(error: ProblemError) -> Response:
    return error.response(current_path())


def _request_correlation_id() -> str:
    """The request's `X-Correlation-ID` if it is usable (1-200 printable ASCII), else a new id."""
    connection = websocket if has_websocket_context() else request
    given = connection.headers.get("X-Correlation-ID", "").strip()
    return given if is_correlation_id(given) else uuid.uuid4().hex


async def _correlation_header(response: Response) -> Response:
    """Answer every request with its correlation id: the execution's, the caller's or a new one."""
    value = g.get("correlation_id")
    if not (isinstance(value, str) and is_correlation_id(value)):
        value = _request_correlation_id()
    g.correlation_id = value
    response.headers["X-Correlation-ID"] = value
    return response


async def _sendable_headers(response: Response) -> Response:
    """Turn a response whose headers HTTP cannot carry into a logged 500 problem.

    Without this the server would fail while writing the response and the client would get an
    empty 500 (or a dropped connection), with no problem document and no correlation id.
    """
    unsendable = sorted(
        {name for name, value in response.headers.items() if _HEADER_VALUE.fullmatch(value) is None}
    )
    if not unsendable:
        return response
    _logger.error(
        "the response to %s %s had headers HTTP cannot carry: %s",
        _method(),
        current_path(),
        ", ".join(unsendable),
    )
    problem = problem_response(
        500,
        "about:blank",
        f"the server could not encode its response header {', '.join(unsendable)}; "
        "the error was logged",
    )
    problem.headers["X-Correlation-ID"] = _request_correlation_id()
    return problem


async def _refused_handshake_headers(response: Any) -> Any:
    """Give a refused WebSocket handshake's problem response the headers every response has."""
    if isinstance(response, Response):
        response = await _sendable_headers(await _correlation_header(response))
    return response


async def _close_if_body_unread(response: Response) -> Response:
    """Close the connection after answering a request whose body was never read.

    An early refusal (401, 415, 503...) leaves the body unread; reusing that connection can stall
    the next request on it, so the client is told to open a new one.
    """
    has_body = _has_body()
    # HTTP/1 only: HTTP/2 has no connection-level headers, and its streams end on their own.
    if has_body and not g.get("body_read", False) and request.http_version in ("1.0", "1.1"):
        response.headers["Connection"] = "close"
    return response


def _method() -> str:
    return "WEBSOCKET" if has_websocket_context() else request.method


async def _http_error(error: HTTPException) -> Response:
    status = error.code or 500
    headers: dict[str, str] = {}
    method = _method()
    if status == 404:
        detail = f"there is no route {method} {current_path()}; see /openapi.json"
    elif status == 405:
        allowed = dict(error.get_headers()).get("Allow", "")
        headers["Allow"] = allowed
        detail = f"{method} is not allowed on {current_path()}; allowed: {allowed}"
    elif status == 413 and not has_websocket_context():
        limit = request.max_content_length
        detail = f"the request body is larger than the limit of {limit} bytes"
    else:
        detail = error.description or HTTP_STATUS_CODES.get(status, "error")
    return problem_response(status, "about:blank", detail, headers=headers)


async def _not_found(error: ExecutionNotFoundError) -> Response:
    connection = websocket if has_websocket_context() else request
    execution_id = (connection.view_args or {}).get("execution_id", "")
    return problem_response(404, "execution-not-found", f"no execution {execution_id!r}")


async def _journal_error(error: JournalError) -> Response:
    _logger.error("the journal failed while handling %s %s: %s", _method(), current_path(), error)
    return problem_response(503, "journal-unavailable", "the journal cannot be used right now")


async def _unexpected_error(error: Exception) -> Response:
    # Logged with its traceback for the operator; the client gets no internals.
    _logger.error("unexpected error while handling %s", current_path(), exc_info=error)
    return problem_response(
        500, "about:blank", "the server failed to handle the request; the error was logged"
    )

"""How every response of the service is finished, and every error answered as a problem.

Every answer gets its correlation id and headers HTTP can carry, and an unread body closes the
connection. `_app` registers these as Quart error handlers and after-request hooks. Every error
is an RFC 9457 problem (`application/problem+json`); an unexpected one is logged with its
traceback and answered without internals.
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any, Final

from quart import Response, g, has_websocket_context, request, websocket
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES

from .._errors import ExecutionNotFoundError, JournalError
from ._problems import ProblemError, current_path, problem_response
from ._requests import is_correlation_id

__all__ = [
    "close_if_body_unread",
    "correlation_header",
    "http_error",
    "journal_error",
    "not_found",
    "problem_error",
    "refused_handshake_headers",
    "request_correlation_id",
    "sendable_headers",
    "unexpected_error",
]

_VISIBLE: Final = r"[\x21-\x7e\x80-\xff]+"
_HEADER_VALUE: Final = re.compile(f"(?:{_VISIBLE}(?:[ \t]+{_VISIBLE})*)?")
"""What a header value may hold: RFC 9110's field-value (as h11 checks it) in latin-1."""

_logger = logging.getLogger("orchestr8.web")


async def problem_error(error: ProblemError) -> Response:
    """Answer a `ProblemError` raised by a route with its problem document."""
    return error.response(current_path())


def request_correlation_id() -> str:
    """The request's `X-Correlation-ID` if it is usable (1-200 printable ASCII), else a new id."""
    connection = websocket if has_websocket_context() else request
    given = connection.headers.get("X-Correlation-ID", "").strip()
    return given if is_correlation_id(given) else uuid.uuid4().hex


async def correlation_header(response: Response) -> Response:
    """Answer every request with its correlation id: the execution's, the caller's or a new one."""
    value = g.get("correlation_id")
    if not (isinstance(value, str) and is_correlation_id(value)):
        value = request_correlation_id()
    g.correlation_id = value
    response.headers["X-Correlation-ID"] = value
    return response


async def sendable_headers(response: Response) -> Response:
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
    problem.headers["X-Correlation-ID"] = request_correlation_id()
    return problem


async def refused_handshake_headers(response: Any) -> Any:
    """Give a refused WebSocket handshake's problem response the headers every response has."""
    if isinstance(response, Response):
        response = await sendable_headers(await correlation_header(response))
    return response


async def close_if_body_unread(response: Response) -> Response:
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


async def http_error(error: HTTPException) -> Response:
    """Answer Quart's own errors (no route, wrong method, body too large) as problems."""
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


async def not_found(error: ExecutionNotFoundError) -> Response:
    """Answer a request for an unknown execution with a 404 problem naming it."""
    connection = websocket if has_websocket_context() else request
    execution_id = (connection.view_args or {}).get("execution_id", "")
    return problem_response(404, "execution-not-found", f"no execution {execution_id!r}")


async def journal_error(error: JournalError) -> Response:
    """Answer a journal failure with a 503 problem, and log it for the operator."""
    _logger.error("the journal failed while handling %s %s: %s", _method(), current_path(), error)
    return problem_response(503, "journal-unavailable", "the journal cannot be used right now")


async def unexpected_error(error: Exception) -> Response:
    """Answer any other error with a 500 problem holding no internals, logged with its traceback."""
    _logger.error("unexpected error while handling %s", current_path(), exc_info=error)
    return problem_response(
        500, "about:blank", "the server failed to handle the request; the error was logged"
    )


def _has_body() -> bool:
    """Whether the request comes with a body (a length above 0, or chunks)."""
    return (
        bool(request.content_length)
        or "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    )

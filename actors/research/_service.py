"""The microservice deployment: the research core behind `POST /process`, as a Quart-Trio app.

`create_app(core)` builds the app: `POST /process` takes the research input as JSON and answers
with the research output; `GET /health` says it is up. Every error is an RFC 9457 problem
(`application/problem+json`) and never a traceback:

=====  ======================================================================================
400    the body is not valid JSON
401    an API key is configured and the request lacks `Authorization: Bearer <key>`
404    Context7 has no such library (or no documentation for the question); or an unknown route
405    a method the route does not allow
413    the body is larger than the limit
415    the body is not `application/json`
422    the JSON is not a valid research input
502    an upstream (Context7 or the model) refused the request or answered unusably
503    an upstream is rate-limiting or unavailable; `Retry-After` when it said how long
504    the research took longer than the request timeout
500    anything unexpected (logged with its traceback on the server only)
=====  ======================================================================================

`actors.research._server` runs the app with Hypercorn on trio.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import uuid
from typing import Any, Final

import trio
from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES

from orchestr8 import AgentContext, NonRetryableError, RetryableError, __version__

from ._core import ResearchCore, validate_input
from ._errors import LibraryNotFoundError, ResearchInputError

__all__ = [
    "DEFAULT_MAX_BODY",
    "DEFAULT_REQUEST_TIMEOUT",
    "PROBLEM_JSON",
    "create_app",
    "problem_for",
    "problem_response",
]

DEFAULT_MAX_BODY: Final = 64 * 1024
DEFAULT_REQUEST_TIMEOUT: Final = 120.0
PROBLEM_JSON: Final = "application/problem+json"

service_logger = logging.getLogger("actors.research.service")
"""The logger of the service: failed requests (warnings), unexpected errors (with tracebacks)."""


class _Problem(Exception):
    """An error answered as a problem document."""

    def __init__(
        self, status: int, kind: str, detail: str, *, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.detail = detail
        self.headers = headers or {}


def problem_response(
    status: int, kind: str, detail: str, *, headers: dict[str, str] | None = None
) -> Response:
    """An RFC 9457 problem response: `type`, `title`, `status`, `detail`, `instance`."""
    document = {
        "type": "about:blank" if kind == "about:blank" else f"urn:orchestr8:problem:{kind}",
        "title": HTTP_STATUS_CODES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "instance": request.path,
    }
    return Response(
        json.dumps(document), status=status, headers=headers or {}, content_type=PROBLEM_JSON
    )


def problem_for(error: Exception) -> _Problem:
    """The problem that answers a research error (an unexpected one is not mapped here)."""
    detail = str(error) or type(error).__name__
    if isinstance(error, ResearchInputError):
        return _Problem(422, "invalid-input", detail)
    if isinstance(error, LibraryNotFoundError):
        return _Problem(404, "library-not-found", detail)
    if isinstance(error, RetryableError):
        headers: dict[str, str] = {}
        if error.retry_after is not None:
            headers["Retry-After"] = str(math.ceil(error.retry_after))
        return _Problem(503, "upstream-unavailable", detail, headers=headers)
    if isinstance(error, NonRetryableError):
        return _Problem(502, "upstream-rejected", detail)
    raise TypeError(f"no problem maps {type(error).__name__}")


def create_app(
    core: ResearchCore,
    *,
    api_key: str | None = None,
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    max_body: int = DEFAULT_MAX_BODY,
) -> QuartTrio:
    """Build the research microservice over `core`.

    Args:
        core: the research core that answers.
        api_key: when set, `POST /process` requires `Authorization: Bearer <key>`.
        request_timeout: seconds one research request may take (504 beyond).
        max_body: the largest request body accepted, in bytes (413 beyond).
    """
    app = QuartTrio(__name__)
    app.config["MAX_CONTENT_LENGTH"] = max_body
    key = None if api_key is None else api_key.encode()

    @app.before_request
    async def authenticate() -> Response | None:
        if key is None or request.path == "/health":
            return None
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
            token.strip().encode("latin-1", "replace"), key
        ):
            return None
        await _discard_body()
        return problem_response(
            401,
            "unauthorized",
            "send `Authorization: Bearer <key>`",
            headers={"WWW-Authenticate": 'Bearer realm="research"'},
        )

    @app.get("/health")
    async def health() -> Response:
        document = {
            "status": "ok",
            "agent": "research",
            "version": __version__,
            "model": core.settings.model,
        }
        return Response(json.dumps(document), content_type="application/json")

    @app.post("/process")
    async def process() -> Response:
        research_input = await _read_input()
        try:
            validate_input(research_input)
        except ResearchInputError as error:
            raise problem_for(error) from None
        context = AgentContext(
            execution_id=f"research-{uuid.uuid4().hex}",
            step_id="process",
            agent_id="research",
            idempotency_key=_idempotency_key(),
            deadline=trio.current_time() + request_timeout,
        )
        with trio.move_on_at(context.deadline):
            try:
                output = await core.research(research_input, context)
            except (RetryableError, NonRetryableError) as error:
                service_logger.warning("research failed: %s", error)
                raise problem_for(error) from None
            return Response(json.dumps(output), content_type="application/json")
        raise _Problem(504, "timeout", f"the research took longer than {request_timeout:g} s")

    @app.errorhandler(_Problem)
    async def on_problem(error: _Problem) -> Response:
        return problem_response(error.status, error.kind, error.detail, headers=error.headers)

    @app.errorhandler(HTTPException)
    async def on_http_error(error: HTTPException) -> Response:
        status = error.code or 500
        if status != 413:
            await _discard_body()
        headers: dict[str, str] = {}
        if status == 405:
            headers["Allow"] = dict(error.get_headers()).get("Allow", "")
        detail = {
            404: f"there is no route {request.method} {request.path}",
            405: f"{request.method} is not allowed on {request.path}",
            413: f"the request body is larger than {max_body} bytes",
        }.get(status, error.description or HTTP_STATUS_CODES.get(status, "error"))
        return problem_response(status, "about:blank", detail, headers=headers)

    @app.errorhandler(Exception)
    async def on_unexpected(error: Exception) -> Response:
        # The operator gets the traceback in the log; the client gets no internals.
        service_logger.error(
            "unexpected error handling %s %s", request.method, request.path, exc_info=error
        )
        return problem_response(500, "about:blank", "the server failed to handle the request")

    return app


async def _read_input() -> Any:
    """The request body as strict JSON (415 for another media type, 400 when invalid)."""
    # Read first, even a body about to be refused, so the connection stays usable for the next
    # request (answering before the body was read could leave a keep-alive client hanging).
    data = await request.get_data(cache=False, as_text=False, parse_form_data=False)
    mimetype = request.mimetype
    if not (mimetype == "application/json" or mimetype.endswith("+json")):
        shown = request.headers.get("Content-Type") or "none"
        raise _Problem(
            415, "unsupported-media-type", f"send the body as application/json; got {shown}"
        )
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as error:
        raise _Problem(400, "invalid-json", f"the body is not valid JSON: {error}") from None


async def _discard_body() -> None:
    """Read (and drop) a body the answer does not need, so the connection stays usable."""
    try:
        await request.get_data(cache=False, as_text=False, parse_form_data=False)
    except HTTPException:
        return


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _idempotency_key() -> str:
    key = request.headers.get("Idempotency-Key", "")
    if 1 <= len(key) <= 255 and all("!" <= char <= "~" for char in key):
        return key
    return f"research-{uuid.uuid4().hex}"

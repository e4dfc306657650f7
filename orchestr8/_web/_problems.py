"""Problems: how the REST API says what went wrong, as RFC 9457 problem documents.

Every error leaves as `application/problem+json` with a type `urn:orchestr8:problem:<name>` from
`PROBLEM_TYPES` (or `about:blank` for plain HTTP errors), a title, the status, a detail sentence,
the instance path and, for validation, `errors: [{path, message}]`. A route raises
`ProblemError`; `problem_response` renders one. The detail, the instance and each error are
redacted as a whole (`_redaction`): they may quote what the request held.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final
from urllib.parse import quote

from quart import Response, has_websocket_context, request, websocket
from werkzeug.http import HTTP_STATUS_CODES

from .._errors import Problem
from .._observability._redaction import redact_text
from ._documents import json_response

__all__ = ["PROBLEM_JSON", "PROBLEM_TYPES", "ProblemError", "current_path", "problem_response"]

PROBLEM_JSON: Final = "application/problem+json"

PROBLEM_TYPES: Final[Mapping[str, str]] = {
    "invalid-json": "Request body is not valid JSON",
    "invalid-request": "Request body does not fit the operation",
    "invalid-workflow": "Invalid workflow",
    "invalid-inputs": "Invalid inputs",
    "invalid-parameter": "Invalid query parameter",
    "invalid-header": "Invalid header",
    "unsupported-media-type": "Unsupported media type",
    "idempotency-key-reused": "Idempotency-Key reused with a different request",
    "execution-not-found": "Execution not found",
    "event-out-of-range": "No event with that seq in the execution",
    "execution-finished": "Execution already finished",
    "execution-not-resumable": "Execution cannot be resumed now",
    "missing-secrets": "Secrets not set",
    "execution-running": "Execution still running",
    "fork-refused": "Fork refused",
    "unauthorized": "Unauthorized",
    "cross-site-request": "Cross-site request refused",
    "upgrade-required": "WebSocket upgrade required",
    "journal-unavailable": "Journal unavailable",
    "shutting-down": "Server shutting down",
    "gate-not-found": "Approval gate not found",
    "invalid-answer": "Answer does not fit the gate",
    "gate-answered": "Gate answered or resolved already",
    "step-not-found": "Step not found",
    "group-not-found": "No map, loop, sub-workflow or plan step of that id",
}
"""Every problem type the API sends as `urn:orchestr8:problem:<name>`, with its title."""


class ProblemError(Exception):
    """Raised by a route to answer with a problem document instead of its normal response."""

    def __init__(
        self, status: int, kind: str, detail: str, *, errors: Sequence[Problem] | None = None
    ) -> None:
        """Describe the problem: HTTP status, a `PROBLEM_TYPES` name, a sentence, the errors."""
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.detail = detail
        self.errors = None if errors is None else tuple(errors)

    @classmethod
    def from_problems(
        cls, kind: str, problems: Sequence[Problem], *, prefix: str = "$"
    ) -> ProblemError:
        """A 422 listing `problems`, their paths re-rooted from `$` to `prefix`."""
        moved = [Problem(prefix + problem.path[1:], problem.message) for problem in problems]
        count = len(moved)
        detail = f"{count} problem{'s' if count != 1 else ''} found; see errors"
        return cls(422, kind, detail, errors=moved)

    @classmethod
    def parameter(cls, name: str, message: str) -> ProblemError:
        """A 400 about one query parameter; its path is the parameter's name."""
        return cls(400, "invalid-parameter", f"{name}: {message}", errors=[Problem(name, message)])

    def response(self, instance: str) -> Response:
        """Render as an `application/problem+json` response."""
        errors = None
        if self.errors is not None:
            errors = [{"path": error.path, "message": error.message} for error in self.errors]
        return problem_response(
            self.status, self.kind, self.detail, errors=errors, instance=instance
        )


def problem_response(
    status: int,
    kind: str,
    detail: str,
    *,
    errors: list[dict[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
    instance: str | None = None,
) -> Response:
    """An RFC 9457 problem response; `kind` names one of `PROBLEM_TYPES`, else `about:blank`.

    The detail, the instance and each error are redacted: they may quote what the request held
    (an id that is a secret, a refused value).
    """
    known = kind in PROBLEM_TYPES
    document: dict[str, Any] = {
        "type": f"urn:orchestr8:problem:{kind}" if known else "about:blank",
        "title": PROBLEM_TYPES[kind] if known else HTTP_STATUS_CODES.get(status, "Error"),
        "status": status,
        "detail": redact_text(detail),
        "instance": redact_text(instance if instance is not None else current_path()),
    }
    if errors is not None:
        document["errors"] = [
            {name: redact_text(text) for name, text in error.items()} for error in errors
        ]
    return json_response(document, status, headers=headers, content_type=PROBLEM_JSON)


def current_path() -> str:
    """The path of the request or WebSocket being handled, percent-encoded as a URL path.

    Quart decodes it: `review%5B2%5D` and `ask%233` would come back with a raw `[` or `#`, which
    a URL cannot hold; encoded again, the path is one a client can send.
    """
    path = websocket.path if has_websocket_context() else request.path
    return quote(path, safe="/!$&'()*+,;=:@")

"""`POST /executions/{id}/cancel`: its optional body, and the answer for each way a cancel goes.

The execution may run in this server (cancelled at once: 202), in another process on the same
journal (a cancel request is recorded for that process's control loop: 202 with its
`request_id`), or in none (interrupted, or waiting for approval: cancelled here, durably: 200
with the final status). A finished execution is a 409. The body is optional: `{"reason": str,
"force": bool, "by": str}`; without a reason the journal records `cancelled through the API`.
"""

from __future__ import annotations

from typing import Any, Final

import attrs
from quart import Response

from .._errors import ExecutionStateError, Problem
from .._execution._cancelling import CancelOutcome
from .._execution._runtime import Runtime
from .._journal._events import ExecutionStatus
from .._workflow._references import json_type_name
from .._workflow._schema_problems import sort_problems
from ._documents import execution_links, json_response
from ._problems import ProblemError
from ._requests import read_json_body

__all__ = ["API_CANCEL_REASON", "CancelRequest", "cancel_execution", "parse_cancel_request"]

API_CANCEL_REASON: Final = "cancelled through the API"
"""The reason recorded when a cancel through the API gives none."""

MAX_REASON: Final = 1000
"""The longest reason (and `by`) taken, in characters."""

_CANCEL_KEYS: Final = ("reason", "force", "by")


@attrs.frozen
class CancelRequest:
    """The body of `POST /executions/{id}/cancel` (optional)."""

    reason: str = API_CANCEL_REASON
    force: bool = False
    by: str = "api"


def parse_cancel_request(document: Any) -> CancelRequest:
    """Check a cancel request body: `reason` and `by` short strings, `force` a boolean.

    Raises:
        ProblemError: 422 with every problem found.
    """
    if not isinstance(document, dict):
        problem = Problem("$", f"expected an object, got {json_type_name(document)}")
        raise ProblemError.from_problems("invalid-request", [problem])
    problems = [
        Problem("$", f"unknown key '{key}': expected reason, force or by")
        for key in document
        if key not in _CANCEL_KEYS
    ]
    texts: dict[str, str] = {}
    for key in ("reason", "by"):
        value = document.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not value or len(value) > MAX_REASON:
            problems.append(
                Problem(
                    f"$.{key}", f"expected a non-empty string of at most {MAX_REASON} characters"
                )
            )
        else:
            texts[key] = value
    force = document.get("force", False)
    if not isinstance(force, bool):
        problems.append(Problem("$.force", f"expected true or false, got {json_type_name(force)}"))
    if problems:
        raise ProblemError.from_problems("invalid-request", sort_problems(problems))
    return CancelRequest(
        texts.get("reason", API_CANCEL_REASON), force is True, texts.get("by", "api")
    )


async def cancel_execution(runtime: Runtime, execution_id: str) -> Response:
    """Cancel the execution wherever it runs and answer 202 (under way) or 200 (cancelled).

    Raises:
        ProblemError: 409 when it has already finished, 422 for a bad body.
    """
    body = parse_cancel_request(await read_json_body(if_empty={}))
    journal = runtime.journal
    await journal.get_execution(execution_id)
    # Committed up to now, the journal tells whether the run has already emitted its end
    # (it may still be winding up, its handle not yet done).
    await journal.flush()
    status = (await journal.get_execution(execution_id)).status
    handle = runtime.find(execution_id)
    if handle is not None and handle.result is not None:
        status = handle.result.status
    if status.is_terminal:
        raise _finished(execution_id, status)
    try:
        outcome = await runtime.cancel(
            execution_id, reason=body.reason, force=body.force, by=body.by
        )
    except ExecutionStateError as error:
        raise ProblemError(409, "execution-finished", str(error)) from None
    return _answer(outcome)


def _answer(outcome: CancelOutcome) -> Response:
    links = execution_links(outcome.execution_id)
    if not (outcome.in_process or outcome.requested):
        cancelled = {
            "execution_id": outcome.execution_id,
            "status": str(outcome.status),
            "links": links,
        }
        return json_response(cancelled, 200, headers={"Location": links["self"]})
    document: dict[str, Any] = {
        "execution_id": outcome.execution_id,
        "status": str(ExecutionStatus.RUNNING),
        "cancel_requested": True,
        "links": links,
    }
    if outcome.request is not None:
        document["request_id"] = outcome.request.request_id
    return json_response(document, 202, headers={"Location": links["self"]})


def _finished(execution_id: str, status: ExecutionStatus) -> ProblemError:
    return ProblemError(
        409, "execution-finished", f"execution {execution_id} already {status}; nothing to cancel"
    )

"""The service's route handlers: health, metrics, the spec, and the executions' routes.

Starting, listing, reading, cancelling and resuming executions, and following their events.
Executions live in the runtime's nursery, never in a request handler: requests start, read and
cancel them, and the journal is the source of truth for every read, so executions recorded
before a restart stay visible. Validation problems list `errors: [{path, message}]` with the
messages of `orchestr8 validate`, their paths pointing into the request body
(`$.workflow.steps[0].id`, `$.inputs.topic`). `_app` wires these handlers into the app.
"""

from __future__ import annotations

import re
from typing import Any

import attrs
import trio
from quart import Response, g, request, websocket

from .._errors import (
    ExecutionStateError,
    ForkRefusedError,
    ForkSourceRunningError,
    IdempotencyKeyReusedError,
    InputValidationError,
    MissingSecretError,
    Problem,
    WorkflowValidationError,
)
from .._execution._liveness import SHOWN_STATUSES, list_shown_executions, shown_status
from .._execution._runtime import Runtime
from .._journal._events import ExecutionStatus
from .._journal._gate_views import refused_answers
from .._journal._page_filter import ID_PREFIX_PATTERN
from .._journal._replay import replay
from .._version import __version__
from ._cancel_route import cancel_execution
from ._documents import (
    execution_document,
    execution_lineage,
    execution_links,
    execution_summary,
    fork_accepted,
    json_response,
)
from ._event_socket import stream_events
from ._journal_health import JournalHealth
from ._openapi import openapi_document
from ._problems import ProblemError, current_path, problem_response
from ._requests import (
    CURSOR_PATTERN,
    IDEMPOTENCY_KEY_PATTERN,
    MAX_SEQ,
    ExecuteRequest,
    parse_execute_request,
    parse_fork_request,
    parse_resume_request,
    query_int,
    read_json_body,
)
from ._responses import request_correlation_id
from ._worker_journal import QUEUED_TIMEOUT, workers_run

__all__ = ["ServiceRoutes", "ServiceState"]


@attrs.define(eq=False)
class ServiceState:
    """What the routes share besides the runtime: the key, limits and the shutdown switches."""

    runtime: Runtime
    api_key: bytes | None
    events_buffer: int
    draining: bool = False
    closing: trio.Event = attrs.Factory(trio.Event)
    journal_health: JournalHealth = attrs.Factory(JournalHealth)


class ServiceRoutes:
    """The route handlers, bound to one service's state (`_app` registers each one)."""

    def __init__(self, service: ServiceState) -> None:
        """Serve `service`: its runtime, limits and shutdown switches."""
        self.service = service
        self.runtime = service.runtime
        self._openapi: dict[str, Any] | None = None

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
        if trouble is None and journal.event_wakeups:
            # A shared database an idle server writes nothing to: ask it whether it answers.
            unreachable = await self.service.journal_health.unreachable(journal)
            if unreachable is not None:
                trouble, state = unreachable, f"unreachable: {unreachable}"
        status = "degraded" if trouble else "draining" if self.service.draining else "ok"
        document: dict[str, Any] = {"status": status, "version": __version__, "journal": state}
        if trouble is not None:
            document["reason"] = trouble
        if journal.event_wakeups:
            # A database several servers share: which one (no password), and whether live
            # events reach the sockets at once or only by polling.
            document["journal_location"] = journal.location
            document["notifications"] = journal.wakeup_trouble or "listening"
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
            body = attrs.evolve(body, correlation_id=request_correlation_id())
        g.correlation_id = body.correlation_id
        try:
            if workers_run(self.runtime.journal):
                return await self._enqueue(body, key)
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

    async def _enqueue(self, body: ExecuteRequest, key: str | None) -> Response:
        """On a journal workers run: record the execution and queue it for them (202 pending).

        Raises:
            ProblemError: 422 for a `timeout` (a worker applies the workflow's own).
        """
        if body.timeout is not None:
            raise ProblemError.from_problems("invalid-request", [QUEUED_TIMEOUT])
        record = await self.runtime.submit(
            body.workflow,
            body.inputs,
            correlation_id=body.correlation_id,
            idempotency_key=key,
        )
        links = execution_links(record.execution_id)
        document: dict[str, Any] = {
            "execution_id": record.execution_id,
            "status": str(record.status),
            "links": links,
        }
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
        top_level = request.args.get("top_level", "false")
        if top_level not in ("true", "false"):
            raise ProblemError.parameter("top_level", f"expected true or false, got {top_level!r}")
        workflow = request.args.get("workflow") or None
        id_prefix = request.args.get("id_prefix") or None
        if id_prefix is not None and re.fullmatch(ID_PREFIX_PATTERN, id_prefix) is None:
            raise ProblemError.parameter(
                "id_prefix", f"expected 1 to 32 lowercase hex characters, got {id_prefix!r}"
            )
        try:
            page = await list_shown_executions(
                self.runtime.journal,
                status=status,
                limit=limit,
                before=cursor,
                top_level=top_level == "true",
                workflow=workflow,
                id_prefix=id_prefix,
            )
        except ValueError:
            raise ProblemError.parameter("cursor", "not a cursor from a previous page") from None
        items = [
            {
                **execution_summary(item.record),
                "status": item.status,
                "parent_id": item.record.parent_id,
                "forked_from": item.record.forked_from,
            }
            for item in page.items
        ]
        return json_response({"items": items, "next_cursor": page.next_cursor})

    async def get_execution(self, execution_id: str) -> Response:
        """`GET /executions/{id}`: status, timing, output, error and every step's state."""
        record = await self.runtime.journal.get_execution(execution_id)
        state = replay(await self.runtime.journal.events(execution_id))
        status = await shown_status(self.runtime.journal, execution_id, state.status)
        forks = await self.runtime.journal.forks_of(execution_id)
        refused = refused_answers(await self.runtime.journal.requests(execution_id))
        return json_response(
            {**execution_document(record, state), "status": status, "refused_answers": refused}
            | execution_lineage(record, forks)
        )

    async def cancel(self, execution_id: str) -> Response:
        """`POST /executions/{id}/cancel`: stop an execution wherever it runs, else 409.

        Here or in another process: 202 (cancelling); in no process: cancelled now, 200.
        """
        return await cancel_execution(self.runtime, execution_id)

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

    async def fork(self, execution_id: str) -> Response:
        """`POST /executions/{id}/fork`: start a fork from a step (202), or plan one (200).

        The steps not downstream of `from` keep the source's outputs; `from` and its
        dependents run again with `inputs` changed (`_execution/_forking`).
        """
        if self.service.draining:
            raise ProblemError(503, "shutting-down", "the server is shutting down; retry later")
        body = parse_fork_request(await read_json_body())
        try:
            prepared = await self.runtime.plan_fork(
                execution_id, body.from_step, inputs=body.inputs
            )
            if body.dry_run:
                return json_response(prepared.plan.to_json())
            handle = await self.runtime.start_fork(prepared, execution_timeout=body.timeout)
        except ForkSourceRunningError as error:
            raise ProblemError(409, "execution-running", str(error)) from None
        except ForkRefusedError as error:
            raise ProblemError(
                422, "fork-refused", str(error), errors=[Problem("$.from", str(error))]
            ) from None
        except InputValidationError as error:
            raise ProblemError.from_problems("invalid-inputs", error.problems) from None
        except MissingSecretError as error:
            raise _missing_secrets(error) from None
        except WorkflowValidationError as error:
            raise ProblemError.from_problems("invalid-workflow", error.problems) from None
        document = fork_accepted(handle.execution_id, prepared.plan)
        return json_response(document, 202, headers={"Location": document["links"]["self"]})

    async def follow_events(self, execution_id: str) -> Response | None:
        """WebSocket `/executions/{id}/events?after=SEQ`: past, then live events."""
        after = query_int("after", default=0, low=0, high=MAX_SEQ, args=websocket.args)
        await self.runtime.journal.get_execution(execution_id)
        # The handshake's 101 carries the correlation id like every other response.
        await websocket.accept(headers={"X-Correlation-ID": request_correlation_id()})
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

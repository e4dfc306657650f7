"""The approval gates' routes: list an execution's gates, answer one.

`GET /executions/{id}/gates` lists the gates replay sees (status, prompt, schema, deadline,
answer) and the answers recorded but not yet applied. `POST /executions/{id}/gates/{gate}` takes
`{"approve": bool, "input": {...}, "reason": str, "by": str}` and answers through
`submit_answer`: 200 `applied` when this server runs the execution (it applied the answer), 202
`recorded` when another process runs it (it applies the answer within a second) or none does. A
`waiting` execution nobody runs is adopted: this server resumes it, so the answer applies at once
(200) and the rest of the run goes on here; not on a PostgreSQL journal, where a worker claims
it and applies the answer (202 `recorded`). 404 no such execution or gate, 409 answered or
resolved already (saying who answered and when) or the execution ended, 422 the answer does not
fit (every problem with its JSON path). Gate ids with `[`, `]` or `#` are sent percent-encoded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from quart import Response

from .._errors import GateAlreadyAnsweredError, GateAnswerInvalidError, GateNotFoundError
from .._execution._adoption import adopt
from .._execution._answers import AnswerOutcome, gate_document, submit_answer, wait_settled
from .._execution._liveness import shown_status
from .._journal._gate_views import refused_answers
from .._journal._replay import GateState, replay
from .._journal._requests import ControlRequest, RequestKind
from ._documents import execution_links, json_response
from ._problems import ProblemError
from ._requests import read_json_body
from ._worker_journal import workers_run

if TYPE_CHECKING:
    from ._routes import ServiceState

__all__ = ["ADOPTED_SETTLE_WAIT", "GateRoutes", "adopted_outcome"]

ADOPTED_SETTLE_WAIT: Final = 5.0
"""How long an answer waits for the waiting execution it resumed to re-open its gate, apply it."""


class GateRoutes:
    """The gate route handlers, bound to one service's state (`_app` registers each one)."""

    def __init__(self, service: ServiceState) -> None:
        """Serve `service`'s runtime and journal."""
        self.service = service
        self.runtime = service.runtime

    async def list_gates(self, execution_id: str) -> Response:
        """`GET /executions/{id}/gates`: the gates and the answers waiting to be applied."""
        journal = self.runtime.journal
        await journal.get_execution(execution_id)
        state = replay(await journal.events(execution_id))
        requests = await journal.requests(execution_id)
        pending = [
            {
                "request_id": request.request_id,
                "gate_id": request.target,
                "approve": request.body.get("approve"),
                "input": request.body.get("input"),
                "reason": request.body.get("reason"),
                "by": request.body.get("by"),
                "created_at": request.created_at,
            }
            for request in requests
            if request.kind == RequestKind.ANSWER and request.outcome is None
        ]
        document = {
            "execution_id": execution_id,
            "status": await shown_status(journal, execution_id, state.status),
            "gates": [gate_document(gate) for gate in state.gates.values()],
            "pending_answers": pending,
            "refused_answers": refused_answers(requests),
        }
        return json_response(document)

    async def answer(self, execution_id: str, gate_id: str) -> Response:
        """`POST /executions/{id}/gates/{gate}`: answer a gate (200 applied, 202 recorded)."""
        body = await read_json_body()
        journal = self.runtime.journal
        try:
            outcome = await submit_answer(
                journal, execution_id, gate_id, body, runtime=self.runtime
            )
        except GateNotFoundError as error:
            raise ProblemError(404, "gate-not-found", str(error)) from None
        except GateAnswerInvalidError as error:
            count = len(error.problems)
            raise ProblemError(
                422,
                "invalid-answer",
                f"the answer does not fit gate {gate_id}: {count} problem"
                f"{'s' if count != 1 else ''}; see errors",
                errors=error.problems,
            ) from None
        except GateAlreadyAnsweredError as error:
            raise ProblemError(409, "gate-answered", str(error)) from None
        document: dict[str, Any] = outcome.to_json()
        adoptable = outcome.status == "recorded" and outcome.runner == "nobody"
        # On a journal workers run, the worker that holds or claims it applies the answer.
        adoptable = adoptable and not workers_run(self.runtime.journal)
        if adoptable and not self.service.draining:
            document.update(await self._adopt(outcome))
        document["links"] = execution_links(execution_id)
        return json_response(document, 200 if document["status"] == "applied" else 202)

    async def _adopt(self, outcome: AnswerOutcome) -> dict[str, Any]:
        """Resume a waiting execution nobody runs so the answer applies; what changed about it."""
        if await adopt(self.runtime, outcome.execution_id) is None:
            return {}
        # Resumed here: the gate re-opens and takes the answer recorded for it.
        journal = self.runtime.journal
        request = await wait_settled(journal, outcome.request, ADOPTED_SETTLE_WAIT)
        gate = replay(await journal.events(outcome.execution_id)).gates.get(outcome.gate_id)
        return adopted_outcome(outcome, request, gate)


def adopted_outcome(
    outcome: AnswerOutcome, request: ControlRequest, gate: GateState | None
) -> dict[str, Any]:
    """What an answer became once its waiting execution was resumed here: the fields that change.

    Raises:
        ProblemError: 409, the resumed run refused the answer (its deadline passed first).
    """
    where = f"gate {outcome.gate_id} of execution {outcome.execution_id}"
    if request.outcome == "refused":
        raise ProblemError(
            409,
            "gate-answered",
            f"{where} refused the answer: {request.detail or 'no reason given'}",
        )
    if request.outcome != "applied":
        return {
            "runner": "here",
            "message": f"{where}: answer recorded; this server resumed the execution and "
            "applies it when the gate opens",
        }
    return {
        "status": "applied",
        "runner": "here",
        "held": False,
        "message": f"{where}: answer applied (the waiting execution was resumed by this server)",
        "gate": None if gate is None else gate_document(gate),
    }

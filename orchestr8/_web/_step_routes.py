"""The step route: one step of an execution, as the dashboard's step panel shows it.

`GET /executions/{id}/steps/{step_id}` answers with `_execution/_step_view.step_view`'s document:
the step's declared and resolved input, status, output, error, attempts, tokens, gate and child.
The step id may name a map item (`ID[3]`) or a loop iteration (`ID#2`), percent-encoded in the
path. A running step of an execution no process runs any more (`_liveness`) reads
`interrupted`, as its execution does. It reads the journal only, so it works for executions any
process ran or runs; an unknown step is a `404 step-not-found` naming it.
"""

from __future__ import annotations

from quart import Response

from .._execution._liveness import shown_status
from .._execution._runtime import Runtime
from .._execution._step_view import step_view
from ._documents import json_response
from ._problems import ProblemError

__all__ = ["StepRoutes"]


class StepRoutes:
    """The handler of the step route, reading one runtime's journal."""

    def __init__(self, runtime: Runtime) -> None:
        """Serve the steps of `runtime`'s executions."""
        self.runtime = runtime

    async def step(self, execution_id: str, step_id: str) -> Response:
        """`GET /executions/{id}/steps/{step_id}`: the step's input, output, attempts and more."""
        journal = self.runtime.journal
        record = await journal.get_execution(execution_id)
        events = await journal.events(execution_id)
        status = await shown_status(journal, execution_id, record.status)
        document = step_view(record, events, step_id, status=status)
        if document is None:
            raise ProblemError(
                404,
                "step-not-found",
                f"execution {execution_id} has no step {step_id!r}",
            )
        return json_response(document)

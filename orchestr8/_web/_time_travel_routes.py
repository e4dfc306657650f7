"""The time-travel routes: an execution's state after one event, and two executions compared.

`GET /executions/{id}/state?at=SEQ` answers with the document `inspect ID --at SEQ --json`
prints (`_journal/_state_at`), `at` defaulting to the last event; with `since=SEQ2` it adds
`changes`, what changed from event SEQ2 to SEQ (`inspect ID --diff SEQ2 SEQ --json`,
`_journal/_state_diff`), which the dashboard's time-travel view highlights; `GET
/executions/compare?a=ID&b=ID` with the one `compare ID_A ID_B --json` prints
(`_journal/_comparison`). Both read the journal only, so they work for executions any process
ran or runs. `_app` registers these handlers; the static `/executions/compare` rule wins over
`/executions/{id}` (werkzeug ranks static parts first), so no execution is ever named `compare`
by mistake.
"""

from __future__ import annotations

from quart import Response, request

from .._errors import EventOutOfRangeError, ExecutionNotFoundError, Problem
from .._execution._liveness import shown_status
from .._execution._runtime import Runtime
from .._journal._comparison import ComparedExecution, compare_executions
from .._journal._journal import Journal
from .._journal._replay import replay
from .._journal._state_at import check_seq, state_document
from .._journal._state_diff import state_diff
from ._documents import json_response
from ._problems import ProblemError
from ._requests import MAX_SEQ, query_int

__all__ = ["TimeTravelRoutes"]


class TimeTravelRoutes:
    """The handlers of the time-travel routes, reading one runtime's journal."""

    def __init__(self, runtime: Runtime) -> None:
        """Serve the executions of `runtime`'s journal."""
        self.runtime = runtime

    async def state(self, execution_id: str) -> Response:
        """`GET /executions/{id}/state?at=SEQ[&since=SEQ2]`: the state right after event SEQ.

        `at` defaults to the last event; `since` adds what changed since event SEQ2 (`changes`).

        At the last event the status is the one every view shows (`interrupted` when its process
        died), as `GET /executions/{id}` gives it.
        """
        journal = self.runtime.journal
        record = await journal.get_execution(execution_id)
        last_seq = await journal.last_seq(execution_id)
        at = query_int("at", default=last_seq, low=1, high=MAX_SEQ)
        if "at" in request.args or last_seq:
            try:
                check_seq(execution_id, last_seq, at)
            except EventOutOfRangeError as error:
                raise ProblemError(
                    422,
                    "event-out-of-range",
                    f"at={at}: {error}",
                    errors=[Problem("at", str(error))],
                ) from None
        events = await journal.events(execution_id, limit=at) if at else []
        document = state_document(record, events, last_seq=last_seq)
        if "since" in request.args:
            since = query_int("since", default=0, low=1, high=MAX_SEQ)
            if since > at:
                raise ProblemError.parameter("since", f"expected at most at={at}, got {since}")
            document["changes"] = state_diff(record, events, since, at).to_json()
        if at == last_seq:
            document["status"] = await shown_status(journal, execution_id, replay(events).status)
        return json_response(document)

    async def compare(self) -> Response:
        """`GET /executions/compare?a=ID&b=ID`: two executions side by side, step by step."""
        journal = self.runtime.journal
        sides = [await _compared(journal, name) for name in ("a", "b")]
        return json_response(compare_executions(sides[0], sides[1]))


async def _compared(journal: Journal, name: str) -> ComparedExecution:
    """Read the execution the query parameter `name` names: its record, events and status."""
    execution_id = request.args.get(name)
    if not execution_id:
        raise ProblemError.parameter(name, "required: the id of an execution to compare")
    try:
        record = await journal.get_execution(execution_id)
        events = await journal.events(execution_id)
    except ExecutionNotFoundError:
        raise ProblemError(
            404, "execution-not-found", f"{name}: no execution {execution_id!r}"
        ) from None
    status = await shown_status(journal, execution_id, replay(events).status)
    return ComparedExecution(record, events, status)

"""The graph routes: an execution's steps as a compact graph, and one group's members.

`GET /executions/{id}/graph` answers with `_journal/_graph_view.graph_document`: a node per
declared step (kind, agent, dependencies, status, attempts, start, duration, and for a map, loop,
sub-workflow or plan its members counted by status), the execution's status as every view shows
it and `last_seq`, the cursor to follow the events from. No outputs: the dashboard's execution
page reads it as its summary, so that a 10,000-step run loads in one small document.
`GET /executions/{id}/graph/{step_id}/members?offset=&limit=` pages a group's items or iterations.
Both read the journal only, through the `ReplayCache` they share with the timeline route; `_app`
registers them.
"""

from __future__ import annotations

from typing import Final

from quart import Response

from .._errors import Problem
from .._execution._liveness import shown_status
from .._execution._runtime import Runtime
from .._journal._graph_view import GROUP_KINDS, graph_document, group_members
from ._documents import json_response
from ._problems import ProblemError
from ._replay_cache import ReplayCache
from ._requests import query_int

__all__ = ["MEMBERS_PAGE", "MEMBERS_PAGE_MAX", "GraphRoutes"]

MEMBERS_PAGE: Final = 200
"""How many members of a group one page lists unless `limit` says otherwise."""
MEMBERS_PAGE_MAX: Final = 1000
"""The largest `limit` a members page takes."""


class GraphRoutes:
    """The handlers of the graph routes, reading one runtime's journal."""

    def __init__(self, runtime: Runtime, replays: ReplayCache | None = None) -> None:
        """Serve the executions of `runtime`'s journal, replayed through `replays` if given."""
        self.runtime = runtime
        self.replays = replays or ReplayCache(lambda: runtime.journal)

    async def graph(self, execution_id: str) -> Response:
        """`GET /executions/{id}/graph`: every step as a node with its state, no outputs."""
        journal = self.runtime.journal
        record = await journal.get_execution(execution_id)
        state = (await self.replays.read(execution_id)).state
        status = await shown_status(journal, execution_id, state.status)
        return json_response(graph_document(execution_id, record.workflow, state, status=status))

    async def members(self, execution_id: str, step_id: str) -> Response:
        """`GET /executions/{id}/graph/{step_id}/members`: one page of a group's members."""
        offset = query_int("offset", default=0, low=0, high=10_000_000)
        limit = query_int("limit", default=MEMBERS_PAGE, low=1, high=MEMBERS_PAGE_MAX)
        journal = self.runtime.journal
        record = await journal.get_execution(execution_id)
        state = (await self.replays.read(execution_id)).state
        document = group_members(
            execution_id, record.workflow, state, step_id, offset=offset, limit=limit
        )
        if document is None:
            message = (
                f"execution {execution_id!r} has no step {step_id!r} with members "
                f"(a {', '.join(GROUP_KINDS)} step)"
            )
            raise ProblemError(
                404, "group-not-found", f"step_id: {message}", errors=[Problem("step_id", message)]
            )
        return json_response(document)

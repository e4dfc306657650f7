"""The timeline and journal routes the dashboard's timeline and journal panels read.

`GET /executions/{id}/timeline?offset=&limit=` answers with the row model `inspect ID --timeline`
draws (`_journal/_timeline_rows`): each step's attempts, retry waits and rejections on the
`elapsed` axis, map items and loop iterations grouped, the resume times; `offset`/`limit` page the
rows, so a 10,000-step run need not come in one body. `GET /executions/{id}/journal` pages the
recorded events: oldest first after a seq (`after`, as it always did), or newest first before one
(`order=desc&before=SEQ`), filtered by event type (`type=`, a comma list, repeatable) and by step
(`step=`, its map items and loop iterations included), read by the journal with
`Journal.matching_events` (SQL in SQLite). Both read the journal only (the timeline through the
`ReplayCache` it shares with the graph routes).
"""

from __future__ import annotations

from typing import Any, Final

from quart import Response, request

from .._execution._liveness import INTERRUPTED, shown_status
from .._execution._runtime import Runtime
from .._journal._event_query import EventQuery, unknown_event_types
from .._journal._timeline_rows import timeline_rows
from ._documents import json_response
from ._problems import ProblemError
from ._replay_cache import ReplayCache
from ._requests import MAX_SEQ, query_int

__all__ = ["TIMELINE_ROWS_LIMIT", "TimelineRoutes"]

TIMELINE_ROWS_LIMIT: Final = 10_000
"""The most timeline rows one response holds (`limit`'s maximum and default)."""

_JOURNAL_LIMIT: Final = 1000


class TimelineRoutes:
    """The handlers of the timeline and journal routes, reading one runtime's journal."""

    def __init__(self, runtime: Runtime, replays: ReplayCache | None = None) -> None:
        """Serve the executions of `runtime`'s journal, replayed through `replays` if given."""
        self.runtime = runtime
        self.replays = replays or ReplayCache(lambda: runtime.journal)

    async def timeline(self, execution_id: str) -> Response:
        """`GET /executions/{id}/timeline`: the rows of the Gantt chart, paged by offset/limit."""
        offset = query_int("offset", default=0, low=0, high=MAX_SEQ)
        limit = query_int("limit", default=TIMELINE_ROWS_LIMIT, low=1, high=TIMELINE_ROWS_LIMIT)
        journal = self.runtime.journal
        replayed = await self.replays.read(execution_id)
        events, state = replayed.events, replayed.state
        status = await shown_status(journal, execution_id, state.status)
        timeline = timeline_rows(events, interrupted=status == INTERRUPTED, state=state)
        document: dict[str, Any] = {
            "execution_id": execution_id,
            "status": str(status),
            "last_seq": replayed.last_seq,
            **timeline.to_json(offset=offset, limit=limit),
        }
        return json_response(document)

    async def journal(self, execution_id: str) -> Response:
        """`GET /executions/{id}/journal`: a page of events, oldest or newest first, filtered."""
        order = request.args.get("order", "asc")
        if order not in ("asc", "desc"):
            raise ProblemError.parameter("order", f"expected asc or desc, got {order[:40]!r}")
        after = query_int("after", default=0, low=0, high=MAX_SEQ)
        limit = query_int("limit", default=100, low=1, high=_JOURNAL_LIMIT)
        before = None
        if "before" in request.args:
            before = query_int("before", default=MAX_SEQ, low=1, high=MAX_SEQ)
        query = EventQuery(
            after=after,
            before=before,
            types=_types(),
            step=_step(),
            descending=order == "desc",
            limit=limit + 1,
        )
        events = await self.runtime.journal.matching_events(execution_id, query)
        page = events[:limit]
        document: dict[str, Any] = {
            "execution_id": execution_id,
            "events": [event.to_json() for event in page],
            "has_more": len(events) > limit,
        }
        if query.descending:
            document["next_before"] = page[-1].seq if page else before
        else:
            document["next_after"] = page[-1].seq if page else after
        return json_response(document)


def _types() -> frozenset[str] | None:
    """The `type` parameters (each a comma list) as a set, or None when there are none."""
    values = request.args.getlist("type")
    if not values:
        return None
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    if not names:
        raise ProblemError.parameter("type", "expected event types, e.g. step.failed")
    unknown = unknown_event_types(names)
    if unknown:
        listed = ", ".join(repr(name[:60]) for name in unknown)
        raise ProblemError.parameter("type", f"unknown event type {listed}")
    return frozenset(names)


def _step() -> str | None:
    """The `step` parameter: a step id (its items and iterations come too), or None."""
    step = request.args.get("step")
    if step is None:
        return None
    if not step:
        raise ProblemError.parameter("step", "expected a step id")
    return step

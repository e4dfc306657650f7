"""Which of an execution's events a reader wants: a seq window, types, a step, and an order.

The dashboard's journal table shows an execution's events newest first, filtered by event type
and by step, a page at a time (`GET /executions/{id}/journal?order=desc&before=SEQ&type=...&step=
...`). An `EventQuery` says which events: `Journal.matching_events` answers it, the SQLite and
PostgreSQL stores with SQL (so a 20,000-event execution is never read whole for one page) and the
memory store with `EventQuery.matches`. A step filter takes the step's own events and those of
its units: map items (`ID[3]`) and loop iterations (`ID#2`), nested ones included (`ID#2[3]`),
since a person asking for a map step wants what happened to it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs

from ._events import Event, EventType

__all__ = ["EventQuery", "unknown_event_types"]


def unknown_event_types(names: Iterable[str]) -> list[str]:
    """The names among `names` that are not event types, in order (for a 400 naming them)."""
    known = {str(kind) for kind in EventType}
    return [name for name in names if name not in known]


@attrs.frozen
class EventQuery:
    """A filter and order over one execution's events; every field left out matches all."""

    after: int = 0
    """Only events with `seq > after`."""
    before: int | None = None
    """Only events with `seq < before`."""
    types: frozenset[str] | None = None
    """Only events of these types."""
    step: str | None = None
    """Only events of this step and of its map items and loop iterations."""
    descending: bool = False
    """Newest (highest seq) first instead of oldest first."""
    limit: int | None = None
    """At most this many events."""

    def __attrs_post_init__(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be at least 1, got {self.limit}")

    def matches_step(self, step_id: str | None) -> bool:
        """Whether an event of `step_id` passes the step filter."""
        if self.step is None:
            return True
        if step_id is None:
            return False
        return step_id == self.step or step_id[: len(self.step) + 1] in self.unit_prefixes

    @property
    def unit_prefixes(self) -> tuple[str, str]:
        """How the ids of the step's units begin: `ID[` (map items) and `ID#` (iterations)."""
        step = self.step or ""
        return (f"{step}[", f"{step}#")

    def matches(self, event: Event) -> bool:
        """Whether `event` passes the seq window, the types and the step filter."""
        return (
            event.seq > self.after
            and (self.before is None or event.seq < self.before)
            and (self.types is None or event.type in self.types)
            and self.matches_step(event.step_id)
        )

    def sql(self, dialect: str = "sqlite") -> tuple[str, list[Any]]:
        """The `WHERE` conditions (after `execution_id = ?`), `ORDER BY` and `LIMIT`.

        `dialect` is "sqlite" (`?` parameters) or "postgresql" (psycopg's `%s` parameters); the
        SQL is otherwise the same, as both databases compare text by byte value here.
        """
        text, parameters = self._sql()
        return (text if dialect == "sqlite" else text.replace("?", "%s")), parameters

    def _sql(self) -> tuple[str, list[Any]]:
        """The SQL of `sql` with `?` parameters."""
        conditions = ["seq > ?"]
        parameters: list[Any] = [self.after]
        if self.before is not None:
            conditions.append("seq < ?")
            parameters.append(self.before)
        if self.types is not None:
            conditions.append(f"type IN ({', '.join('?' for _ in self.types)})")
            parameters.extend(sorted(self.types))
        if self.step is not None:
            # substr, not LIKE: a step id may hold `%` or `_`.
            conditions.append("(step_id = ? OR substr(step_id, 1, ?) IN (?, ?))")
            parameters.extend([self.step, len(self.step) + 1, *self.unit_prefixes])
        text = " AND ".join(conditions) + (
            " ORDER BY seq DESC" if self.descending else " ORDER BY seq"
        )
        if self.limit is not None:
            text += " LIMIT ?"
            parameters.append(self.limit)
        return text, parameters

"""The timeline's row model: each step's attempts, waits and rejections on the `elapsed` axis.

One model feeds both views of an execution's timeline: the text chart of
`orchestr8 inspect ID --timeline` (`_timeline.render_timeline`) and the JSON of
`GET /executions/{id}/timeline` that the dashboard draws as an SVG Gantt chart. A pure function of
the journal's events: one row per step in the order the steps first appear; each attempt is a
segment (`attempt` when it succeeded, `failed`, `running` while it runs, `interrupted` when a
crash or a cancel cut it short), each retry wait a `wait` segment, each breaker or limiter
rejection a `rejected` instant (start equals end). The axis is the events' `elapsed` (trio-clock
seconds since the execution started), which carries on across resumes; `resumes` lists when the
execution was resumed and `gaps` each resume's gap (from the last event before it), which a view
shades. Attempt numbers run on across resumes as `replay`'s `total_attempts` counts them: a run
resumed after two attempts numbers its first attempt 3 (the events say 1).

Map items and loop iterations are grouped as the chart shows them: a map step's row draws the
attempts of all its items together, and each item gets a row of its own (`ID[3]`, with `parent`
the map's id) under the map's while the map has at most `ITEM_ROWS` items; a loop step's row
draws its own span, from its `step.started` to its end, and its iterations' rows (`ID#1`, ...)
follow it in order.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from itertools import pairwise
from typing import Any, Final

import attrs

from ._events import Event, EventType
from ._map_items import item_counts, split_item_id
from ._replay import ExecutionState, StepState, replay

__all__ = [
    "ITEM_ROWS",
    "SEGMENT_KINDS",
    "Segment",
    "Timeline",
    "TimelineRow",
    "timeline_rows",
]

#: A map with more items than this draws them only in its own row, not one row each.
ITEM_ROWS: Final = 10

#: The kinds of segment, in the order a legend lists them.
SEGMENT_KINDS: Final = ("attempt", "failed", "running", "interrupted", "wait", "rejected")
_OK, _FAILED, _RUNNING, _INTERRUPTED, _WAIT, _REJECTED = SEGMENT_KINDS


@attrs.frozen
class Segment:
    """One run on a row: an attempt, a retry wait, or a rejection (an instant: start == end)."""

    kind: str
    """One of `SEGMENT_KINDS`."""
    start: float
    end: float
    attempt: int | None = None
    """The attempt the segment belongs to (a wait: the attempt that failed before it)."""

    def to_json(self) -> dict[str, Any]:
        """The JSON form: `kind`, `start`, `end`, `attempt` (null when unknown)."""
        return {"kind": self.kind, "start": self.start, "end": self.end, "attempt": self.attempt}


@attrs.frozen
class TimelineRow:
    """One row of the timeline: a step, a map item or a loop iteration, and its segments."""

    step_id: str
    segments: tuple[Segment, ...]
    status: str
    """The unit's status after the last event (`interrupted` for a run no process runs any more)."""
    attempts: int
    """Attempts made over all runs (a map's row: its own, not its items')."""
    duration: float | None
    parent: str | None = None
    """The map or loop step whose item or iteration this row is, else None."""
    group: str | None = None
    """`map` or `loop` for a step whose items or iterations are grouped under it, else None."""
    items: dict[str, Any] | None = None
    """A map step's items counted by status (`ItemCounts.to_json()`), else None."""
    earlier_attempts: int = 0
    """Attempts made before the last resume: a live view adds them to new events' attempt."""

    def to_json(self) -> dict[str, Any]:
        """The JSON form of `GET /executions/{id}/timeline`'s rows."""
        return {
            "step_id": self.step_id,
            "status": self.status,
            "attempts": self.attempts,
            "duration": self.duration,
            "parent": self.parent,
            "group": self.group,
            "items": self.items,
            "earlier_attempts": self.earlier_attempts,
            "segments": [segment.to_json() for segment in self.segments],
        }


@attrs.frozen
class Timeline:
    """An execution's timeline: its rows, when it was resumed, and the span of its axis."""

    rows: tuple[TimelineRow, ...]
    resumes: tuple[float, ...]
    first: float
    """The earliest `elapsed` of the events (the axis starts there)."""
    last: float
    """The latest `elapsed` of the events (open attempts are drawn up to it)."""
    gaps: tuple[tuple[float, float], ...] = ()
    """Each resume's gap: from the last event before it (the crash, at the latest) to it."""
    downtimes: tuple[float | None, ...] = ()
    """Each gap's wall-clock length (the events' `ts`): the axis's `elapsed` skips the downtime."""

    @property
    def span(self) -> float:
        """How long the execution has run so far, in seconds (`last - first`)."""
        return self.last - self.first

    def to_json(self, *, offset: int = 0, limit: int | None = None) -> dict[str, Any]:
        """The JSON form; `offset`/`limit` page the rows (a 10,000-step run has 10,000 of them)."""
        stop = None if limit is None else offset + limit
        return {
            "first": self.first,
            "last": self.last,
            "span": self.span,
            "resumes": list(self.resumes),
            "gaps": [list(gap) for gap in self.gaps],
            "downtimes": list(self.downtimes),
            "total_rows": len(self.rows),
            "offset": offset,
            "rows": [row.to_json() for row in self.rows[offset:stop]],
        }


@attrs.define
class _Row:
    """What one step's events draw while they are folded: closed segments and open runs."""

    step_id: str
    segments: list[Segment] = attrs.Factory(list)
    attempt_start: tuple[float, int | None] | None = None
    wait: tuple[float, float, int | None] | None = None
    spans: list[Segment] = attrs.Factory(list)
    """The step's own runs, `step.started` to its end: the bar of a loop step (no attempts)."""
    span_start: float | None = None
    earlier: int = 0
    """Attempts made in runs before the last resume: this run's attempt numbers add to them."""
    run_attempts: int = 0
    """The attempts this run has made so far, counted as `replay` counts them."""
    succeeded: bool = False
    """Whether the unit has succeeded: a resume carries over the attempts of every other unit."""

    def number(self, attempt: int | None) -> int | None:
        """An event's attempt number across resumes (replay's `total_attempts` numbering)."""
        return None if attempt is None else self.earlier + attempt

    def count(self, attempt: int | None, *, started: bool) -> int | None:
        """Count an attempt started (or used up by a rejection); its number across resumes."""
        if started and attempt is None:
            attempt = self.run_attempts + 1
        self.run_attempts = max(self.run_attempts, attempt or 0)
        return self.number(attempt)

    def resume(self) -> None:
        """A resume: an unfinished unit's attempts so far become earlier ones (as replay does)."""
        if not self.succeeded:
            self.earlier += self.run_attempts
            self.run_attempts = 0

    def close_span(self, kind: str, at: float) -> None:
        if self.span_start is not None:
            self.spans.append(Segment(kind, self.span_start, at))
            self.span_start = None

    def close_attempt(self, kind: str, at: float) -> None:
        if self.attempt_start is not None:
            start, attempt = self.attempt_start
            self.segments.append(Segment(kind, start, at, attempt))
            self.attempt_start = None

    def close_wait(self, at: float, *, ended: bool = False) -> None:
        """End the open wait at `at` if the next attempt came (`ended`), else by `at` at most."""
        if self.wait is not None:
            start, planned, attempt = self.wait
            end = max(start, at if ended else min(at, planned))
            self.segments.append(Segment(_WAIT, start, end, attempt))
            self.wait = None


#: The events after which a unit is no longer `succeeded` in replay's state.
_UNFINISHING: Final = frozenset(
    {
        EventType.STEP_STARTED,
        EventType.ATTEMPT_STARTED,
        EventType.RETRY_SCHEDULED,
        EventType.STEP_FAILED,
        EventType.STEP_CANCELLED,
        EventType.STEP_SKIPPED,
    }
)


def timeline_rows(
    events: Sequence[Event], *, interrupted: bool = False, state: ExecutionState | None = None
) -> Timeline:
    """Fold one execution's events into its timeline's rows (any order: they are sorted by seq).

    With `interrupted` (no process runs the unfinished execution any more, see `_liveness`) the
    attempts still open after the last event end as `interrupted`, else as `running`. `state` is
    `replay(events)` when the caller has it already (a 10,000-step replay takes a while).
    """
    ordered = sorted(events, key=lambda event: event.seq)
    if not ordered:
        return Timeline((), (), 0.0, 0.0)
    rows, gaps, first, last = _collect(ordered, _INTERRUPTED if interrupted else _RUNNING)
    downtimes = _downtimes(ordered)
    if state is None:
        state = replay(ordered)
    counts = item_counts(state)
    shown: list[TimelineRow] = []
    for name, (row, parent, group) in rows.items():
        step = state.steps.get(name)
        shown.append(
            TimelineRow(
                step_id=name,
                segments=tuple(row.segments),
                status=_status(step, interrupted),
                attempts=0 if step is None else step.total_attempts,
                duration=None if step is None else step.duration,
                parent=parent,
                group=group,
                items=counts[name].to_json() if name in counts else None,
                earlier_attempts=row.earlier,
            )
        )
    resumes = tuple(resumed for _, resumed in gaps)
    return Timeline(tuple(shown), resumes, first, last, tuple(gaps), downtimes)


def _moment(ts: str) -> datetime | None:
    try:
        return datetime.fromisoformat(ts)
    except ValueError:
        return None


def _downtimes(events: Sequence[Event]) -> tuple[float | None, ...]:
    """Each resume's wall-clock distance from the event before it (None: unreadable `ts`)."""
    downtimes: list[float | None] = []
    for before, event in pairwise(events):
        if event.type == EventType.EXECUTION_RESUMED:
            start, stop = _moment(before.ts), _moment(event.ts)
            seconds = None if start is None or stop is None else (stop - start).total_seconds()
            downtimes.append(None if seconds is None else max(0.0, seconds))
    return tuple(downtimes)


def _status(step: StepState | None, interrupted: bool) -> str:
    if step is None:
        return "pending"
    status = str(step.status)
    return _INTERRUPTED if interrupted and status in ("running", "retrying") else status


def _collect(
    events: Sequence[Event], open_kind: str
) -> tuple[dict[str, tuple[_Row, str | None, str | None]], list[tuple[float, float]], float, float]:
    """Fold the events into rows; return them grouped, the resume gaps and the time range.

    Attempts still open after the last event are drawn as `open_kind`: running, or interrupted.
    """
    rows: dict[str, _Row] = {}
    gaps: list[tuple[float, float]] = []
    first, last = events[0].elapsed, events[0].elapsed
    for event in events:
        at = event.elapsed
        kind = event.type
        if kind == EventType.EXECUTION_RESUMED:
            for row in rows.values():
                row.close_attempt(_INTERRUPTED, last)
                row.close_wait(last)
                row.close_span(_INTERRUPTED, last)
                row.resume()
            gaps.append((last, at))
        first, last = min(first, at), max(last, at)
        if event.step_id is None:
            continue
        row = rows.setdefault(event.step_id, _Row(event.step_id))
        if kind in _UNFINISHING:
            row.succeeded = False
        if kind == EventType.STEP_STARTED:
            row.close_span(_INTERRUPTED, at)
            row.span_start = at
        elif kind == EventType.ATTEMPT_STARTED:
            row.close_wait(at, ended=True)
            row.close_attempt(_INTERRUPTED, at)
            row.attempt_start = (at, row.count(event.attempt, started=True))
        elif kind == EventType.ATTEMPT_FAILED:
            row.close_attempt(_FAILED, at)
        elif kind == EventType.RETRY_SCHEDULED:
            row.close_attempt(_FAILED, at)
            delay = event.data.get("delay", 0.0)
            planned = at + (float(delay) if isinstance(delay, int | float) else 0.0)
            row.wait = (at, planned, row.number(event.attempt))
        elif kind in (EventType.ATTEMPT_REJECTED, EventType.BREAKER_REJECTED):
            row.close_wait(at, ended=True)
            row.segments.append(Segment(_REJECTED, at, at, row.count(event.attempt, started=False)))
        elif kind == EventType.STEP_SUCCEEDED:
            row.succeeded = True
            row.close_attempt(_OK, at)
            row.close_span(_OK, at)
        elif kind == EventType.STEP_FAILED:
            row.close_attempt(_FAILED, at)
            row.close_wait(at)
            row.close_span(_FAILED, at)
        elif kind in (EventType.STEP_CANCELLED, EventType.STEP_SKIPPED):
            row.close_attempt(_INTERRUPTED, at)
            row.close_wait(at)
            row.close_span(_INTERRUPTED, at)
    for row in rows.values():
        row.close_attempt(open_kind, last)
        row.close_wait(last)
        row.close_span(open_kind, last)
    return _grouped(rows), gaps, first, last


def _split_iteration_id(unit_id: str) -> tuple[str, int] | None:
    """`("ID", k)` for a loop iteration's unit id `ID#k`, else None."""
    step_id, separator, number = unit_id.rpartition("#")
    return (step_id, int(number)) if separator and number.isdigit() else None


def _grouped(rows: dict[str, _Row]) -> dict[str, tuple[_Row, str | None, str | None]]:
    """Put unit rows under their step's: map items (small maps only) and loop iterations.

    A map step's row draws its items' segments too; a loop step's row draws its own span. Item
    and iteration rows follow their step's row, in index (iteration) order, with their parent.
    """
    items: dict[str, list[tuple[int, _Row]]] = {}
    iterations: dict[str, list[tuple[int, _Row]]] = {}
    units: set[str] = set()
    for name, row in rows.items():
        for split, owners in ((split_item_id, items), (_split_iteration_id, iterations)):
            parsed = split(name)
            if parsed is not None and parsed[0] in rows:
                owners.setdefault(parsed[0], []).append((parsed[1], row))
                units.add(name)
                break
    grouped: dict[str, tuple[_Row, str | None, str | None]] = {}
    for name, row in rows.items():
        if name in units:
            continue
        members = sorted(items.get(name, ()), key=lambda member: member[0])
        loop = sorted(iterations.get(name, ()), key=lambda member: member[0])
        group = "map" if members else "loop" if loop else None
        grouped[name] = (row, None, group)
        for _, item in members:
            row.segments.extend(item.segments)
        if len(members) <= ITEM_ROWS:
            grouped.update((item.step_id, (item, name, None)) for _, item in members)
        if loop:
            row.segments.extend(row.spans)
            grouped.update((iteration.step_id, (iteration, name, None)) for _, iteration in loop)
    return grouped

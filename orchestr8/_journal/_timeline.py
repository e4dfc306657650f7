"""The timeline of `orchestr8 inspect ID --timeline`: each step's attempts on a time axis.

A pure function of the journal's events. One row per step, in the order the steps first appear;
each attempt is a bar, each retry wait a dotted run, each rejection a `!`; the step's final status
ends the row. Parallel steps overlap on the axis. The axis is the events' `elapsed` (trio-clock
seconds since the execution started), which carries on across resumes, so a resumed execution is
one chart; attempts cut short by the crash show as interrupted. A map step's row draws the attempts
of all its items together, and a line under the chart counts them (`map 1000: 998 succeeded,
2 failed`); each item also gets a row of its own (`ID[3]`) under the map's while the map has at most
`ITEM_ROWS` items, so a map of 1,000 items stays one readable row. A loop step's row draws its own
span, from its `step.started` to its end (its attempts are its iterations'), and its iterations'
rows (`ID#1`, `ID#2`, ...) follow it in order; the other rows keep the order in which their steps
first appear, so a step cancelled before a resume stays below the loop it waits for. Without colour
the chart is plain ASCII::

    step     0s         0.5s       1s          1.5s     total 1.80s
             |----------|----------|-----------|------
    fetch    ============                               succeeded 0.50s
    parse               xxxxxxxx..........============  succeeded 1.30s (2 attempts)
    publish             xxxxxxxxxxxxxxxxxxxxxxxxxx      failed 1.10s

    = attempt  x failed attempt  . retry wait
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import attrs

from ._events import Event, EventType
from ._map_items import item_counts, split_item_id
from ._replay import StepState, replay

__all__ = ["render_timeline"]

# Kinds of cell, drawn in this order (later kinds win a shared cell).
_WAIT, _OK, _FAILED, _RUNNING, _INTERRUPTED, _REJECTED = (
    "wait",
    "ok",
    "failed",
    "running",
    "interrupted",
    "rejected",
)
_ASCII: Mapping[str, str] = {
    _OK: "=",
    _FAILED: "x",
    _RUNNING: ">",
    _INTERRUPTED: "~",
    _WAIT: ".",
    _REJECTED: "!",
}
_UNICODE: Mapping[str, str] = {
    _OK: "█",
    _FAILED: "▒",
    _RUNNING: "█",
    _INTERRUPTED: "░",
    _WAIT: "·",
    _REJECTED: "!",
}
_LEGEND: Mapping[str, str] = {
    _OK: "attempt",
    _FAILED: "failed attempt",
    _RUNNING: "running",
    _INTERRUPTED: "interrupted",
    _WAIT: "retry wait",
    _REJECTED: "rejected",
}
_ANSI: Mapping[str, str] = {
    _OK: "32",
    _FAILED: "31",
    _RUNNING: "34",
    _INTERRUPTED: "33",
    _WAIT: "2",
    _REJECTED: "1;31",
    "succeeded": "32",
    "failed": "31",
    "cancelled": "33",
    "retrying": "33",
    "running": "34",
    "skipped": "2",
    "pending": "2",
    "axis": "2",
    "bold": "1",
}
_MIN_BAR = 10
#: A map with more items than this draws them only in its own row, not one row each.
ITEM_ROWS = 10
_MAX_NAME = 30
_MIN_SPAN = 0.01


@attrs.define
class _Row:
    """What one step's events draw: bars and waits (kind, start, end) and rejection times."""

    step_id: str
    segments: list[tuple[str, float, float]] = attrs.Factory(list)
    marks: list[float] = attrs.Factory(list)
    attempt_start: float | None = None
    wait: tuple[float, float] | None = None
    spans: list[tuple[str, float, float]] = attrs.Factory(list)
    """The step's own runs, `step.started` to its end: the bar of a loop step (no attempts)."""
    span_start: float | None = None

    def close_span(self, kind: str, at: float) -> None:
        if self.span_start is not None:
            self.spans.append((kind, self.span_start, at))
            self.span_start = None

    def close_attempt(self, kind: str, at: float) -> None:
        if self.attempt_start is not None:
            self.segments.append((kind, self.attempt_start, at))
            self.attempt_start = None

    def close_wait(self, at: float, *, ended: bool = False) -> None:
        """End the open wait at `at` if the next attempt came (`ended`), else by `at` at most."""
        if self.wait is not None:
            start, planned = self.wait
            self.segments.append((_WAIT, start, max(start, at if ended else min(at, planned))))
            self.wait = None


def _collect(
    events: Sequence[Event], open_kind: str
) -> tuple[dict[str, _Row], list[float], float, float]:
    """Fold the events into rows; return them, the resume times and the time range.

    Attempts still open after the last event are drawn as `open_kind`: running, or interrupted.
    """
    rows: dict[str, _Row] = {}
    resumes: list[float] = []
    first, last = events[0].elapsed, events[0].elapsed
    for event in events:
        at = event.elapsed
        kind = event.type
        if kind == EventType.EXECUTION_RESUMED:
            for row in rows.values():
                row.close_attempt(_INTERRUPTED, last)
                row.close_wait(last)
                row.close_span(_INTERRUPTED, last)
            resumes.append(at)
        first, last = min(first, at), max(last, at)
        if event.step_id is None:
            continue
        row = rows.setdefault(event.step_id, _Row(event.step_id))
        if kind == EventType.STEP_STARTED:
            row.close_span(_INTERRUPTED, at)
            row.span_start = at
        elif kind == EventType.ATTEMPT_STARTED:
            row.close_wait(at, ended=True)
            row.close_attempt(_INTERRUPTED, at)
            row.attempt_start = at
        elif kind == EventType.ATTEMPT_FAILED:
            row.close_attempt(_FAILED, at)
        elif kind == EventType.RETRY_SCHEDULED:
            row.close_attempt(_FAILED, at)
            delay = event.data.get("delay", 0.0)
            row.wait = (at, at + (float(delay) if isinstance(delay, int | float) else 0.0))
        elif kind in (EventType.ATTEMPT_REJECTED, EventType.BREAKER_REJECTED):
            row.close_wait(at, ended=True)
            row.marks.append(at)
        elif kind == EventType.STEP_SUCCEEDED:
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
    return _grouped(rows), resumes, first, last


def _split_iteration_id(unit_id: str) -> tuple[str, int] | None:
    """`("ID", k)` for a loop iteration's unit id `ID#k`, else None."""
    step_id, separator, number = unit_id.rpartition("#")
    return (step_id, int(number)) if separator and number.isdigit() else None


def _grouped(rows: dict[str, _Row]) -> dict[str, _Row]:
    """Put unit rows under their step's: map items (small maps only) and loop iterations.

    A map step's row draws its items' bars too; a loop step's row draws its own span. Item and
    iteration rows follow their step's row, in index (iteration) order.
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
    if not units:
        return rows
    grouped: dict[str, _Row] = {}
    for name, row in rows.items():
        if name in units:
            continue
        grouped[name] = row
        members = sorted(items.get(name, ()), key=lambda member: member[0])
        for _, item in members:
            row.segments.extend(item.segments)
            row.marks.extend(item.marks)
        if len(members) <= ITEM_ROWS:
            grouped.update((item.step_id, item) for _, item in members)
        loop = sorted(iterations.get(name, ()), key=lambda member: member[0])
        if loop:
            row.segments.extend(row.spans)
            grouped.update((iteration.step_id, iteration) for _, iteration in loop)
    return grouped


def _nice_step(span: float, columns: int, label_width: int) -> float:
    """The smallest 1-2-5 tick step whose labels, `label_width` wide, do not collide."""
    wanted = span * (label_width + 2) / max(columns, 1)
    exponent = math.floor(math.log10(wanted)) if wanted > 0 else 0
    for magnitude in (10.0**exponent, 10.0 ** (exponent + 1)):
        for factor in (1, 2, 5):
            if factor * magnitude >= wanted:
                return factor * magnitude
    return 10.0 ** (exponent + 1)  # pragma: no cover - the loop always returns


def _tick_label(value: float, step: float) -> str:
    decimals = max(0, -math.floor(math.log10(step))) if step < 1 else 0
    text = f"{value:.{decimals}f}"
    return (text.rstrip("0").rstrip(".") if "." in text else text) + "s"


def _axis(first: float, span: float, width: int) -> tuple[str, list[int]]:
    """The label line and the tick columns of a `width`-column axis from `first` over `span`."""
    widest = len(_tick_label(first + span, span / 10)) + 1
    step = _nice_step(span, width, widest)
    labels = [" "] * width
    ticks: list[int] = []
    free = 0
    value = math.ceil(first / step - 1e-9) * step
    while value <= first + span + 1e-9:
        column = min(width - 1, int((value - first) / span * width))
        text = _tick_label(value, step)
        if column >= free and column + len(text) <= width:
            labels[column : column + len(text)] = text
            ticks.append(column)
            free = column + len(text) + 1
        value += step
    return "".join(labels), ticks


def _paint(text: str, code: str | None, color: bool) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if color and code and text.strip() else text


def _cells(row: _Row, first: float, span: float, width: int) -> list[str | None]:
    """The kind of every column of a row's bar (None: empty)."""
    cells: list[str | None] = [None] * width

    def column(at: float) -> int:
        return max(0, min(width - 1, int((at - first) / span * width)))

    ordered = sorted(row.segments, key=lambda segment: (segment[0] != _WAIT, segment[1]))
    for kind, start, end in ordered:
        begin = column(start)
        stop = max(begin, min(width - 1, math.ceil((end - first) / span * width - 1e-9) - 1))
        for index in range(begin, stop + 1):
            cells[index] = kind
    for at in row.marks:
        cells[column(at)] = _REJECTED
    return cells


def _draw(cells: Sequence[str | None], color: bool) -> str:
    glyphs = _UNICODE if color else _ASCII
    parts: list[str] = []
    index = 0
    while index < len(cells):
        kind = cells[index]
        end = index
        while end < len(cells) and cells[end] == kind:
            end += 1
        run = " " * (end - index) if kind is None else glyphs[kind] * (end - index)
        parts.append(_paint(run, None if kind is None else _ANSI[kind], color))
        index = end
    return "".join(parts)


def _status_text(state: StepState | None, interrupted: bool) -> str:
    if state is None:
        return "pending"
    text = str(state.status)
    if interrupted and text in ("running", "retrying"):
        text = _INTERRUPTED
    duration = state.duration
    if duration is not None:
        text += f" {_seconds(duration)}"
    if state.total_attempts > 1:
        text += f" ({state.total_attempts} attempts)"
    return text


def _seconds(value: float) -> str:
    return f"{value:.2f}s" if value < 100 else f"{value:.0f}s"


def _fit(name: str, width: int, color: bool) -> str:
    """Pad `name` to `width`, or cut its middle: long ids often differ only at the end."""
    if len(name) <= width:
        return name.ljust(width)
    head = (width - 1) // 2
    return name[:head] + ("…" if color else "~") + name[len(name) - (width - 1 - head) :]


def render_timeline(
    events: Sequence[Event], *, width: int = 100, color: bool = False, interrupted: bool = False
) -> str:
    """Draw the steps of one execution on a time axis, `width` columns wide (Gantt-style).

    Rows follow the order in which steps first appear in the events. With `color` the bars are
    coloured Unicode blocks; without it the chart is plain ASCII. A legend explains the glyphs
    drawn, and a resumed execution's resume times are listed under the chart. With
    `interrupted` (no process runs the unfinished execution any more, see `_liveness`) the steps
    that were running or retrying end as interrupted instead.

    Raises:
        ValueError: the events belong to more than one execution.
    """
    ordered = sorted(events, key=lambda event: event.seq)
    if not ordered:
        return "(no events)"
    rows, resumes, first, last = _collect(ordered, _INTERRUPTED if interrupted else _RUNNING)
    state = replay(ordered)
    span = max(last - first, _MIN_SPAN)
    names = list(rows)
    statuses = [_status_text(state.steps.get(name), interrupted) for name in names]
    name_width = max(
        4, min(_MAX_NAME, max(width // 4, 4), max((len(name) for name in names), default=4))
    )
    total = f"total {_seconds(last - first)}"
    status_width = max([len(total), *(len(text) for text in statuses)])
    bar_width = max(_MIN_BAR, width - name_width - status_width - 4)
    labels, ticks = _axis(first, span, bar_width)
    rule = ["-"] * bar_width
    for tick in ticks:
        rule[tick] = "|"
    lines = [
        f"{'step'.ljust(name_width)}  {labels}  {_paint(total, _ANSI['axis'], color)}".rstrip(),
        f"{' ' * name_width}  {_paint(''.join(rule), _ANSI['axis'], color)}".rstrip(),
    ]
    seen: set[str] = set()
    for name, status in zip(names, statuses, strict=True):
        cells = _cells(rows[name], first, span, bar_width)
        seen.update(kind for kind in cells if kind is not None)
        label = _paint(_fit(name, name_width, color), _ANSI["bold"], color)
        code = _ANSI.get(status.split(" ", 1)[0])
        lines.append(f"{label}  {_draw(cells, color)}  {_paint(status, code, color)}".rstrip())
    groups = item_counts(state)
    if groups:
        # Under the chart, so a long count never narrows the bars.
        lines.append("")
        lines.extend(
            f"{_fit(name, name_width, color)}  {counts.describe()}"
            for name, counts in groups.items()
        )
    lines.extend(_footer(seen, resumes, color))
    return "\n".join(lines)


def _footer(seen: Iterable[str], resumes: Sequence[float], color: bool) -> list[str]:
    glyphs = _UNICODE if color else _ASCII
    shown = [kind for kind in _LEGEND if kind in set(seen)]
    lines = []
    if shown:
        legend = "  ".join(
            f"{_paint(glyphs[kind], _ANSI[kind], color)} {_LEGEND[kind]}" for kind in shown
        )
        lines.append("")
        lines.append(legend)
    lines.extend(f"resumed at {_seconds(at)}" for at in resumes)
    return lines

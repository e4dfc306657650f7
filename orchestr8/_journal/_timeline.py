"""The timeline of `orchestr8 inspect ID --timeline`: each step's attempts on a time axis.

A pure function of the journal's events, drawn from the row model of `_timeline_rows` (which
`GET /executions/{id}/timeline` serves as JSON too, so the chart and the dashboard agree).
One row per step, in the order the steps first appear;
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

from ._events import Event
from ._map_items import item_counts
from ._replay import replay
from ._timeline_rows import ITEM_ROWS, SEGMENT_KINDS, TimelineRow, timeline_rows

__all__ = ["ITEM_ROWS", "render_timeline"]

# Kinds of cell: the row model's segment kinds (later kinds win a shared cell).
_OK, _FAILED, _RUNNING, _INTERRUPTED, _WAIT, _REJECTED = SEGMENT_KINDS
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
_MAX_NAME = 30
_MIN_SPAN = 0.01


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


def _cells(row: TimelineRow, first: float, span: float, width: int) -> list[str | None]:
    """The kind of every column of a row's bar (None: empty); rejections are drawn last."""
    cells: list[str | None] = [None] * width

    def column(at: float) -> int:
        return max(0, min(width - 1, int((at - first) / span * width)))

    runs = [segment for segment in row.segments if segment.kind != _REJECTED]
    ordered = sorted(runs, key=lambda segment: (segment.kind != _WAIT, segment.start))
    for segment in ordered:
        begin = column(segment.start)
        end = math.ceil((segment.end - first) / span * width - 1e-9) - 1
        stop = max(begin, min(width - 1, end))
        for index in range(begin, stop + 1):
            cells[index] = segment.kind
    for segment in row.segments:
        if segment.kind == _REJECTED:
            cells[column(segment.start)] = _REJECTED
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


def _status_text(row: TimelineRow) -> str:
    text = row.status
    if row.duration is not None:
        text += f" {_seconds(row.duration)}"
    if row.attempts > 1:
        text += f" ({row.attempts} attempts)"
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
    state = replay(ordered)
    timeline = timeline_rows(ordered, interrupted=interrupted, state=state)
    rows, first, last = timeline.rows, timeline.first, timeline.last
    span = max(last - first, _MIN_SPAN)
    names = [row.step_id for row in rows]
    statuses = [_status_text(row) for row in rows]
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
    for row, name, status in zip(rows, names, statuses, strict=True):
        cells = _cells(row, first, span, bar_width)
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
    lines.extend(_footer(seen, timeline.resumes, color))
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

"""The live progress of `orchestr8 run` and `resume` on stderr: one line per step transition.

Only `_run` imports this module, when a run starts. Each failure is told once: the progress
line of the step that failed carries its error, the line that ends the execution names that step
instead of repeating it, and while a run is shown the engine's own log records below ERROR are
held back (`hold_back_narration`: `orchestr8.engine` narrates at INFO and WARNING the very events
shown here). The result on stdout states the error again, as stdout is read alone.

On a terminal the lines are coloured and a status line at the bottom is redrawn while steps run.
Log records go through the view while it follows the run (`route_logs`): it clears the status
line, writes the record and draws the status line again, so a log line never lands in the middle
of it, also when an agent logs from a worker thread. When the view falls behind a fast run (the
bus drops the oldest events of a full subscription) it says so at most once per
`BEHIND_NOTICE_INTERVAL` seconds, with the number of events skipped since the last notice, and
once more at the end for the rest.

A map step's items (`ID[3]`) are too many for a line each: the map step's line says how many items
it has, an item gets a line only when it retries or fails, and the status line counts the items
done (`summarise (412/1000 items)`).

With `--log-format json` stderr holds JSON lines only: the view shows no events (the engine's log
records say what happened, as JSON) and its notes become log records of `orchestr8.cli`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import threading
from collections.abc import Iterator, Sequence
from typing import Any, Final, TextIO

import trio

from .._journal._events import Event, EventType
from .._journal._map_items import split_item_id
from ._views import (
    STATUS_COLORS,
    describe,
    format_duration,
    local_time,
    paint,
    shorten,
    wall_duration,
    wants_color,
)

BEHIND_NOTICE_INTERVAL: Final = 1.0
"""At most one "the display fell behind" notice per this many seconds (trio clock)."""

REDRAW_INTERVAL: Final = 0.1
"""How often the status line is redrawn on a terminal while nothing else happens."""

NARRATING_LOGGER: Final = "orchestr8.engine"
"""The logger whose records below ERROR narrate an execution's events."""

_NOTE_LOGGER = logging.getLogger("orchestr8.cli")
_ITEM_ENDINGS: Final = frozenset(
    {
        EventType.STEP_SUCCEEDED,
        EventType.STEP_FAILED,
        EventType.STEP_CANCELLED,
        EventType.STEP_SKIPPED,
    }
)
"""The events that end a map item: each counts it done."""
_ITEM_TOLD: Final = frozenset(
    {
        EventType.ATTEMPT_FAILED,
        EventType.ATTEMPT_REJECTED,
        EventType.BREAKER_REJECTED,
        EventType.RETRY_SCHEDULED,
        EventType.STEP_FAILED,
    }
)
"""The events of a map item the view handles as a step's: those that make (or feed) a line."""
_PROGRESS_WIDTH = 100
_GATE_EVENTS: Final = frozenset({EventType.GATE_OPENED, EventType.GATE_RESOLVED})


class ProgressView:
    """Writes the progress of one execution, from its events, to a stream (normally stderr)."""

    def __init__(
        self,
        stream: TextIO,
        step_ids: Sequence[str],
        *,
        live: bool | None = None,
        json_logs: bool = False,
        log_handler: logging.Handler | None = None,
        tell_gate_openings: bool = True,
        started_at: str | None = None,
    ) -> None:
        """Show progress on `stream`.

        Args:
            stream: where lines go.
            step_ids: the workflow's steps, for the column width and the status line.
            live: colour and a status line (default: the stream is a terminal).
            json_logs: stderr holds JSON log lines: show no events, log notes instead.
            log_handler: the handler writing log lines to the same stream; while `follow`
                runs, its lines go around the status line (see `route_logs`).
            tell_gate_openings: write a line when a gate opens (`run` leaves that to its
                prompter, which also says how to answer); answers are always shown.
            started_at: when the execution first started (UTC ISO-8601): after a resume, the
                line that ends it gives its whole duration, as `inspect` does, not this run's.
        """
        self._tell_gate_openings = tell_gate_openings
        self._stream = stream
        self._log_handler = log_handler
        self._json_logs = json_logs
        self._live = (wants_color(stream) if live is None else live) and not json_logs
        self._width = max((len(step_id) for step_id in step_ids), default=4)
        self._status: dict[str, str] = dict.fromkeys(step_ids, "pending")
        self._attempts: dict[str, int] = {}
        self._started: dict[str, float] = {}
        self._last_error: dict[str, str] = {}
        self._items: dict[str, list[int]] = {}
        """Each map step's items: how many ended, and how many it has."""
        self._first_elapsed: float | None = None
        self._started_at = started_at
        self._resumed_at: float | None = None
        """The elapsed time of the last `execution.resumed` shown (None: no resume shown)."""
        self._last_seq = 0
        self._missed = 0
        self._last_notice = -BEHIND_NOTICE_INTERVAL
        self._status_shown = False
        self._status_text = ""
        self._status_held = 0
        """While above 0 a question waits on the terminal (`holding_status`): no status line."""
        self._question = ""
        """The question waiting for its answer (`ask`): written again below each new line."""
        self._clock_start = trio.current_time()
        # Log records may come from worker threads (sync agents): writes take turns.
        self._lock = threading.RLock()

    def note(self, message: str, color: str | None = None, level: int = logging.INFO) -> None:
        """Write one line that is not about an event (the execution id, an interrupt, a hint).

        With JSON logs the note is a log record of `orchestr8.cli` at `level` instead.
        """
        if self._json_logs:
            _NOTE_LOGGER.log(level, "%s", message)
        else:
            self._write(paint(message, color, self._live))

    @contextlib.contextmanager
    def holding_status(self) -> Iterator[None]:
        """While the block runs the status line is cleared and not redrawn (a question is asked)."""
        with self._lock:
            self._clear_status()
            self._status_held += 1
        try:
            yield
        finally:
            with self._lock:
                self._status_held -= 1
                self._question = ""

    def ask(self, question: str) -> None:
        """Write a question, leaving the cursor on its line for the answer (`holding_status`).

        Until the block holding the status ends, a line written meanwhile (a step that ended)
        goes above the question, which is written again below it.
        """
        with self._lock:
            self._clear_status()
            self._stream.write(question)
            self._stream.flush()
            self._question = question

    @contextlib.contextmanager
    def route_logs(self) -> Iterator[None]:
        """While the block runs, the log handler's lines go around the status line (terminal)."""
        handler = self._log_handler
        if not self._live or not isinstance(handler, logging.StreamHandler):
            yield
            return
        previous = handler.setStream(_ViewStream(self))
        try:
            yield
        finally:
            handler.setStream(previous)

    async def follow(self, events: trio.MemoryReceiveChannel[Any], execution_id: str) -> None:
        """Show the events of `execution_id` as they arrive, until the channel closes."""
        with self.route_logs():
            await self._follow(events, execution_id)

    async def _follow(self, events: trio.MemoryReceiveChannel[Any], execution_id: str) -> None:
        # The status line is redrawn on a clock, not per event: it looks at every step, and a
        # fast run delivers thousands of events a second.
        next_draw = trio.current_time()
        while True:
            try:
                if self._live:
                    if trio.current_time() >= next_draw:
                        self._draw_status()
                        next_draw = trio.current_time() + REDRAW_INTERVAL
                    with trio.move_on_at(next_draw):
                        self.show(await events.receive(), execution_id)
                else:
                    self.show(await events.receive(), execution_id)
            except (trio.EndOfChannel, trio.ClosedResourceError):
                return

    def drain(self, events: trio.MemoryReceiveChannel[Any], execution_id: str) -> None:
        """Show the events delivered but not yet shown, say what was skipped, clear the status."""
        while True:
            try:
                self.show(events.receive_nowait(), execution_id)
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                break
        self._notice_missed()
        with self._lock:
            self._clear_status()

    def show(self, event: object, execution_id: str) -> None:
        """Show one bus event if it is an event of `execution_id`; ignore anything else."""
        if self._json_logs or not isinstance(event, Event) or event.execution_id != execution_id:
            return
        if self._last_seq and event.seq > self._last_seq + 1:
            self._missed += event.seq - self._last_seq - 1
            if trio.current_time() - self._last_notice >= BEHIND_NOTICE_INTERVAL:
                self._notice_missed()
        self._last_seq = max(self._last_seq, event.seq)
        if self._first_elapsed is None:
            self._first_elapsed = event.elapsed
        if event.type == EventType.EXECUTION_STARTED and self._started_at is None:
            self._started_at = event.ts
        elif event.type == EventType.EXECUTION_RESUMED:
            self._resumed_at = event.elapsed
        if event.type in _GATE_EVENTS and event.step_id is not None:
            self._show_gate_event(event, event.step_id)
        elif event.step_id is not None:
            item = split_item_id(event.step_id)
            if item is not None and item[0] in self._items:
                self._show_item_event(event, event.step_id, item[0])
            else:
                self._show_step_event(event, event.step_id)
        else:
            self._show_execution_event(event)

    def _show_gate_event(self, event: Event, gate_id: str) -> None:
        """A gate that opened (what it asks, until when) or resolved (how, and by whom)."""
        data = event.data
        if event.type == EventType.GATE_OPENED:
            if not self._tell_gate_openings:
                return
            deadline = data.get("deadline")
            until = f" (until {local_time(deadline)})" if isinstance(deadline, str) else ""
            prompt = shorten(str(data.get("prompt") or ""), _PROGRESS_WIDTH)
            self._event_line(event, gate_id, f"waits for approval{until}: {prompt}", "yellow")
            return
        verdict = "approved" if data.get("approved") is True else "rejected"
        if data.get("how") == "timeout":
            line = f"{verdict}: no answer before the deadline"
        else:
            reason = data.get("reason")
            line = f"{verdict} by {data.get('by') or '?'}" + (f": {reason}" if reason else "")
        self._event_line(event, gate_id, line, "green" if verdict == "approved" else "yellow")

    def _notice_missed(self) -> None:
        if self._missed:
            self.note(f"({self._missed} events not shown: the display fell behind)", "dim")
            self._missed = 0
            self._last_notice = trio.current_time()

    def _show_step_event(self, event: Event, step_id: str) -> None:
        kind, data = event.type, event.data
        if event.attempt is not None:
            self._attempts[step_id] = max(self._attempts.get(step_id, 0), event.attempt)
        attempts = self._attempts.get(step_id, 0)
        line: str | None = None
        color: str | None = None
        if kind == EventType.STEP_STARTED:
            self._started[step_id] = event.elapsed
            self._status[step_id] = "running"
            line = f"started (agent {data.get('agent', '?')})"
        elif kind == EventType.MAP_STARTED:
            count = data.get("count", 0)
            self._items[step_id] = [0, count if isinstance(count, int) else 0]
            line = f"map of {count} item{'s' if count != 1 else ''}"
        elif kind == EventType.STEP_PROGRESS:
            text = json.dumps(data, ensure_ascii=False, separators=(", ", ": "))
            line, color = "progress " + shorten(text, _PROGRESS_WIDTH), "blue"
        elif kind in (
            EventType.ATTEMPT_FAILED,
            EventType.ATTEMPT_REJECTED,
            EventType.BREAKER_REJECTED,
        ):
            self._last_error[step_id] = describe(data.get("error"))
        elif kind == EventType.RETRY_SCHEDULED:
            self._status[step_id] = "retrying"
            reason = self._last_error.pop(step_id, "")
            delay = float(data.get("delay", 0.0))
            line = f"attempt {event.attempt} failed: {reason}; retrying in {delay:.2f}s"
            color = "yellow"
        elif kind == EventType.ATTEMPT_STARTED:
            self._status[step_id] = "running"
        elif kind in (
            EventType.BREAKER_OPENED,
            EventType.BREAKER_HALF_OPENED,
            EventType.BREAKER_CLOSED,
        ):
            line = f"circuit breaker {data.get('key', '')!r} is now {data.get('to', '?')}"
            color = "yellow"
        elif kind == EventType.STEP_SUCCEEDED:
            took = format_duration(self._took(step_id, event))
            tries = f" after {attempts} attempts" if attempts > 1 else ""
            color = "green"
            if step_id in self._items:
                count = self._items[step_id][1]
                failed, skipped = len(data.get("failed_items") or ()), data.get("skipped") or 0
                notes = [f"{count} item{'s' if count != 1 else ''}"]
                if failed:
                    notes.append(f"{failed} failed, null in the output")
                    color = "yellow"
                if skipped:
                    notes.append(f"{skipped} skipped")
                tries = f" ({'; '.join(notes)})"
            line = f"succeeded in {took}{tries}"
            self._status[step_id] = "succeeded"
        elif kind == EventType.STEP_FAILED:
            took = format_duration(self._took(step_id, event))
            tries = f"{attempts} attempt{'s' if attempts != 1 else ''}, "
            if step_id in self._items:
                done, count = self._items[step_id]
                tries = f"{done} of {count} items ended, "
            line = f"failed ({tries}{took}): {describe(data.get('error'))}"
            color = "red"
            self._status[step_id] = "failed"
        elif kind == EventType.STEP_REPLANNED:
            line = f"failed: {describe(data.get('error'))}; replanning ({data.get('replan', '?')})"
            color = "yellow"
        elif kind == EventType.CHILD_STARTED:
            verb = "resumes" if data.get("resumed") is True else "runs"
            line = f"{verb} child execution {data.get('child_id', '?')}"
        elif kind == EventType.ITERATION_FINISHED:
            held = "held" if data.get("until") is True else "did not hold"
            line = f"iteration {data.get('iteration', '?')} finished: until {held}"
        elif kind in (EventType.STEP_SKIPPED, EventType.STEP_CANCELLED):
            status = "skipped" if kind == EventType.STEP_SKIPPED else "cancelled"
            why = data.get("reason")
            line = f"{status} ({why})" if why and why != status else status
            color = STATUS_COLORS[status]
            self._status[step_id] = status
        if line is not None:
            self._event_line(event, step_id, line, color)

    def _show_item_event(self, event: Event, item_id: str, map_id: str) -> None:
        """Count a map item's ending; show only its retries and its failure."""
        kind = event.type
        if kind in _ITEM_TOLD:
            # Its line (a retry, a failure) and what the line needs (attempts, last error).
            self._show_step_event(event, item_id)
        elif kind == EventType.STEP_STARTED:
            self._started[item_id] = event.elapsed
        elif event.attempt is not None:
            self._attempts[item_id] = max(self._attempts.get(item_id, 0), event.attempt)
        self._status.pop(item_id, None)
        if kind in _ITEM_ENDINGS:
            self._items[map_id][0] += 1
            for memo in (self._attempts, self._started, self._last_error):
                memo.pop(item_id, None)

    def _execution_took(self, event: Event) -> str:
        """How long the execution took up to `event`, as `inspect`'s header says it.

        Within one run, the elapsed time; across a resume (the time waiting between runs
        counts), the wall-clock time since it started, or, when that is unknown, this run's.
        """
        if self._resumed_at is None:
            return format_duration(event.elapsed - (self._first_elapsed or 0.0))
        wall = wall_duration(self._started_at, event.ts)
        if wall is not None:
            return format_duration(wall)
        return f"{format_duration(event.elapsed - self._resumed_at)} (this run)"

    def _show_execution_event(self, event: Event) -> None:
        took = self._execution_took(event)
        if event.type == EventType.EXECUTION_SUCCEEDED:
            self._event_line(event, "", f"execution succeeded in {took}", "green")
        elif event.type == EventType.EXECUTION_FAILED:
            error = event.data.get("error")
            step_id = error.get("step_id") if isinstance(error, dict) else None
            # The step's own line told its error: name the step rather than tell it again.
            why = f"step {step_id} failed" if step_id else describe(error)
            self._event_line(event, "", f"execution failed after {took}: {why}", "red")
        elif event.type == EventType.EXECUTION_CANCELLED:
            reason = event.data.get("reason") or "cancelled"
            self._event_line(event, "", f"execution cancelled after {took}: {reason}", "yellow")

    def _took(self, step_id: str, event: Event) -> float | None:
        started = self._started.pop(step_id, None)
        return None if started is None else event.elapsed - started

    def _event_line(self, event: Event, step_id: str, message: str, color: str | None) -> None:
        stamp = paint(f"{event.elapsed:8.2f}s", "dim", self._live)
        name = paint(step_id.ljust(self._width), "bold", self._live)
        self._write(f"{stamp}  {name}  {paint(message, color, self._live)}")

    def _write(self, line: str) -> None:
        with self._lock:
            self._clear_status()
            if self._question:
                self._stream.write("\r\x1b[K" if self._live else "\n")
            self._stream.write(line + "\n" + self._question)
            self._stream.flush()

    def write_log(self, text: str) -> None:
        """Write text a log handler emits, below the status line's place, then redraw it."""
        with self._lock:
            shown = self._status_shown
            self._clear_status()
            self._stream.write(text)
            if shown and text.endswith("\n"):
                self._stream.write(paint(self._status_text, "dim", True))
                self._status_shown = True
            self._stream.flush()

    def _draw_status(self) -> None:
        if self._status_held:
            return
        running = [
            step_id
            + (
                f" (attempt {self._attempts[step_id]})"
                if self._attempts.get(step_id, 0) > 1
                else ""
            )
            + (
                f" ({self._items[step_id][0]}/{self._items[step_id][1]} items)"
                if step_id in self._items
                else ""
            )
            for step_id, status in self._status.items()
            if status in ("running", "retrying")
        ]
        finished = sum(
            status not in ("pending", "running", "retrying") for status in self._status.values()
        )
        clock = f"{trio.current_time() - self._clock_start:.1f}s"
        done = f"{finished}/{len(self._status)} done"
        width = shutil.get_terminal_size((100, 24)).columns - 1
        text = shorten(f"running: {', '.join(running) or '-'} | {done} | {clock}", width)
        with self._lock:
            if self._status_shown and text == self._status_text:
                return
            self._stream.write("\r\x1b[K" + paint(text, "dim", True))
            self._stream.flush()
            self._status_shown = True
            self._status_text = text

    def _clear_status(self) -> None:
        """Erase the status line; hold the lock."""
        if self._status_shown:
            self._stream.write("\r\x1b[K")
            self._status_shown = False


class _ViewStream:
    """The stream a log handler writes to while the view runs: text goes through `write_log`."""

    def __init__(self, view: ProgressView) -> None:
        self._view = view

    def write(self, text: str) -> int:
        self._view.write_log(text)
        return len(text)

    def flush(self) -> None:
        """Nothing to do: `write_log` flushes the view's stream."""


@contextlib.contextmanager
def hold_back_narration(handler: logging.Handler | None, log_format: str) -> Iterator[None]:
    """While the block runs, `handler` drops the engine's records below ERROR (text, WARNING+).

    `run` and `resume` run one execution per process and show its events, so these records
    (`orchestr8.engine` narrates starts, retries, failures and ends) would only repeat them;
    errors and every other logger's records (agents', libraries') pass. Nothing is dropped with
    JSON logs (the records are the only report of the run on stderr then) or when the level is
    INFO or lower (asked for, the engine's narration is shown in full).
    """
    if handler is None or log_format == "json" or handler.level <= logging.INFO:
        yield
        return
    narration = _NarrationFilter()
    handler.addFilter(narration)
    try:
        yield
    finally:
        handler.removeFilter(narration)


class _NarrationFilter(logging.Filter):
    """Drops the engine's records below ERROR: the progress view shows the same events."""

    def filter(self, record: logging.LogRecord) -> bool:
        """False for a narrating record; True for everything else."""
        return record.levelno >= logging.ERROR or not (
            record.name == NARRATING_LOGGER or record.name.startswith(NARRATING_LOGGER + ".")
        )

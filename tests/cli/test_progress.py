"""The live progress of `run`: each failure once, log lines around the status line, bounded notices.

The view is driven with real events into a fake terminal (a StringIO that says it is a TTY); the
end-to-end promises are checked on a real `orchestr8 run` subprocess.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from orchestr8._cli._progress import BEHIND_NOTICE_INTERVAL, ProgressView, hold_back_narration
from orchestr8._journal._events import Event, EventFactory, EventType
from orchestr8._observability._logging import TextFormatter, log_context

CLEAR = "\r\x1b[K"


class FakeTerminal(io.StringIO):
    """A stream that says it is a terminal, so the view draws its status line."""

    def isatty(self) -> bool:
        """Always a terminal."""
        return True


@pytest.fixture
def colour_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the view colour its fake terminal whatever the test environment says."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")


@pytest.fixture
def handler() -> Iterator[logging.StreamHandler[Any]]:
    """A text log handler on the root logger, writing to a throwaway stream until replaced."""
    installed = logging.StreamHandler(io.StringIO())
    installed.setFormatter(TextFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(installed)
    root.setLevel(logging.INFO)
    try:
        yield installed
    finally:
        root.removeHandler(installed)
        root.setLevel(level)


def failing_run(factory: EventFactory) -> list[Event]:
    """The events of a run whose one step fails for good after two attempts."""
    error = {"type": "RetryableError", "message": "the disk is full"}
    return [
        factory.create(EventType.EXECUTION_STARTED),
        factory.create(EventType.STEP_STARTED, step_id="copy", data={"agent": "fail"}),
        factory.create(EventType.ATTEMPT_STARTED, step_id="copy", attempt=1),
        factory.create(EventType.ATTEMPT_FAILED, step_id="copy", attempt=1, data={"error": error}),
        factory.create(EventType.RETRY_SCHEDULED, step_id="copy", attempt=1, data={"delay": 0.5}),
        factory.create(EventType.ATTEMPT_STARTED, step_id="copy", attempt=2),
        factory.create(EventType.ATTEMPT_FAILED, step_id="copy", attempt=2, data={"error": error}),
        factory.create(EventType.STEP_FAILED, step_id="copy", attempt=2, data={"error": error}),
        factory.create(EventType.EXECUTION_FAILED, data={"error": {**error, "step_id": "copy"}}),
    ]


# -- each failure once ----------------------------------------------------------------------------


async def test_the_final_failure_is_told_by_the_step_line_only(
    autojump_clock: trio.abc.Clock,
) -> None:
    """The step's line tells the error; the execution's last line names the step instead."""
    stream = io.StringIO()
    view = ProgressView(stream, ["copy"], live=False)
    for event in failing_run(EventFactory("e1")):
        view.show(event, "e1")
    lines = [line.split(None, 1)[1] for line in stream.getvalue().splitlines()]
    assert lines[-2:] == [
        "copy  failed (2 attempts, 0.00s): RetryableError: the disk is full",
        "execution failed after 0.00s: step copy failed",
    ]


async def test_a_replanned_step_says_why_and_which_replacement_runs(
    autojump_clock: trio.abc.Clock,
) -> None:
    """step.replanned is a line naming the failure it replaces and the replacement's number."""
    stream = io.StringIO()
    view = ProgressView(stream, ["copy"], live=False)
    error = {"type": "NonRetryableError", "message": "the disk is gone"}
    factory = EventFactory("e1")
    view.show(factory.create(EventType.STEP_STARTED, step_id="copy", data={"agent": "x"}), "e1")
    view.show(
        factory.create(
            EventType.STEP_REPLANNED, step_id="copy", data={"replan": 1, "error": error}
        ),
        "e1",
    )
    last = stream.getvalue().splitlines()[-1].split(None, 1)[1]
    assert last == "copy  failed: NonRetryableError: the disk is gone; replanning (1)"


async def test_a_sub_workflow_step_names_the_child_it_runs_or_resumes(
    autojump_clock: trio.abc.Clock,
) -> None:
    """child.started gets a line with the child's id, so a user can inspect it."""
    stream = io.StringIO()
    view = ProgressView(stream, ["review"], live=False)
    factory = EventFactory("e1")
    for resumed in (False, True):
        data = {"child_id": "e1.review", "workflow": "review.json", "resumed": resumed}
        view.show(factory.create(EventType.CHILD_STARTED, step_id="review", data=data), "e1")
    lines = [line.split(None, 1)[1] for line in stream.getvalue().splitlines()]
    assert lines == [
        "review  runs child execution e1.review",
        "review  resumes child execution e1.review",
    ]


async def test_each_finished_iteration_of_a_loop_gets_a_line(
    autojump_clock: trio.abc.Clock,
) -> None:
    """A loop's iteration.finished says which iteration ended and whether until held."""
    stream = io.StringIO()
    view = ProgressView(stream, ["draft"], live=False)
    factory = EventFactory("e1")
    for iteration, until in ((1, False), (2, True)):
        data = {"iteration": iteration, "until": until}
        view.show(factory.create(EventType.ITERATION_FINISHED, step_id="draft", data=data), "e1")
    lines = [line.split(None, 1)[1] for line in stream.getvalue().splitlines()]
    assert lines == [
        "draft  iteration 1 finished: until did not hold",
        "draft  iteration 2 finished: until held",
    ]


async def test_gates_get_a_line_when_they_open_and_one_saying_how_they_resolved(
    autojump_clock: trio.abc.Clock,
) -> None:
    """`follow` tells a gate opening (what it asks, until when) and every resolution, by whom."""
    stream = io.StringIO()
    view = ProgressView(stream, ["review", "ship"], live=False)
    factory = EventFactory("e1")
    opened = {"prompt": "Ship it?", "deadline": None}
    view.show(factory.create(EventType.GATE_OPENED, step_id="review", data=opened), "e1")
    answer = {"approved": False, "by": "ann", "reason": "too early", "how": "answer"}
    view.show(factory.create(EventType.GATE_RESOLVED, step_id="review", data=answer), "e1")
    timed_out = {"approved": True, "how": "timeout"}
    view.show(factory.create(EventType.GATE_RESOLVED, step_id="ship[2]", data=timed_out), "e1")
    lines = [line.split(None, 1)[1] for line in stream.getvalue().splitlines()]
    assert lines == [
        "review  waits for approval: Ship it?",
        "review  rejected by ann: too early",
        "ship[2]  approved: no answer before the deadline",
    ]


async def test_run_leaves_the_gate_opening_to_its_prompter(
    autojump_clock: trio.abc.Clock,
) -> None:
    """With `tell_gate_openings=False` an opening writes nothing; the answer still shows."""
    stream = io.StringIO()
    view = ProgressView(stream, ["review"], live=False, tell_gate_openings=False)
    factory = EventFactory("e1")
    data = {"prompt": "Ship it?", "deadline": "2030-01-01T00:00:00.000Z"}
    view.show(factory.create(EventType.GATE_OPENED, step_id="review", data=data), "e1")
    assert stream.getvalue() == ""
    answer = {"approved": True, "by": "ann", "reason": None, "how": "answer"}
    view.show(factory.create(EventType.GATE_RESOLVED, step_id="review", data=answer), "e1")
    assert stream.getvalue().split(None, 1)[1] == "review  approved by ann\n"


async def test_the_engine_narration_is_held_back_at_the_default_level_only(
    handler: logging.StreamHandler[Any],
) -> None:
    """Text logs at WARNING drop the engine's warnings, not its errors, agents' lines or JSON."""
    output = io.StringIO()
    handler.setStream(output)
    handler.setLevel(logging.WARNING)
    engine, agent = logging.getLogger("orchestr8.engine"), logging.getLogger("my.agent")
    with hold_back_narration(handler, "text"), log_context(execution_id="e1"):
        engine.warning("step copy failed after 2 attempt(s)")
        engine.error("execution e1 stops: the journal failed")
        agent.warning("the agent's own warning")
    engine.warning("after the run")
    with hold_back_narration(handler, "json"):
        engine.warning("told as JSON")
    handler.setLevel(logging.INFO)
    with hold_back_narration(handler, "text"):
        engine.info("asked for with --log-level info")
    text = output.getvalue()
    assert "step copy failed" not in text
    for kept in (
        "the journal failed",
        "the agent's own warning",
        "after the run",
        "told as JSON",
        "asked for with --log-level info",
    ):
        assert kept in text


# -- the terminal: status line, log lines, notices ------------------------------------------------


async def test_log_lines_clear_the_status_line_and_redraw_it_after(
    autojump_clock: trio.abc.Clock,
    colour_allowed: None,
    handler: logging.StreamHandler[Any],
) -> None:
    """On a terminal a log line, from the trio thread or a worker thread, starts on a clear line."""
    terminal = FakeTerminal()
    handler.setStream(terminal)
    factory = EventFactory("e1")
    view = ProgressView(terminal, ["copy"], log_handler=handler)
    send, receive = trio.open_memory_channel[Any](10)
    agent = logging.getLogger("my.agent")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(view.follow, receive, "e1")
        await send.send(factory.create(EventType.STEP_STARTED, step_id="copy", data={"agent": "x"}))
        await trio.sleep(1)
        assert terminal.getvalue().endswith("running: copy | 0/1 done | 1.0s\x1b[0m")
        agent.warning("from the trio thread")
        await trio.to_thread.run_sync(agent.warning, "from a worker thread")
        await send.aclose()
    text = terminal.getvalue()
    status = re.escape("\x1b[2mrunning: copy | 0/1 done | ") + r"\d+\.\ds" + re.escape("\x1b[0m")
    for message in ("from the trio thread", "from a worker thread"):
        # The status line was erased before the log line, and drawn again after it.
        assert re.search(
            f"{status}{re.escape(CLEAR)}\\S+ WARNING  my.agent: {message}\n{status}", text
        ), text
    assert handler.stream is terminal


async def test_the_status_line_is_redrawn_on_a_clock_not_per_event(
    autojump_clock: trio.abc.Clock,
    colour_allowed: None,
) -> None:
    """A burst of events at one instant draws the status line once, not once per event."""
    terminal = FakeTerminal()
    factory = EventFactory("e1")
    steps = [f"s{index}" for index in range(1000)]
    view = ProgressView(terminal, steps)
    send, receive = trio.open_memory_channel[Any](len(steps))
    for step_id in steps:
        send.send_nowait(
            factory.create(EventType.STEP_STARTED, step_id=step_id, data={"agent": "echo"})
        )
    send.close()
    await view.follow(receive, "e1")
    assert terminal.getvalue().count("running: ") == 1


async def test_a_view_far_behind_says_so_once_a_second_at_most(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Thousands of gaps make one notice per second plus one for the rest at the end."""
    stream = io.StringIO()
    factory = EventFactory("e1")
    view = ProgressView(stream, ["a"], live=False)
    shown = 0
    for index in range(20_000):
        event = factory.create(EventType.STEP_PROGRESS, step_id="a", data={"n": index})
        if index % 3 == 0:
            view.show(event, "e1")
            shown += 1
        if index == 10_000:
            await trio.sleep(BEHIND_NOTICE_INTERVAL)
    closed_send, closed = trio.open_memory_channel[Any](0)
    closed_send.close()
    view.drain(closed, "e1")
    notices = [line for line in stream.getvalue().splitlines() if "fell behind" in line]
    assert len(notices) == 3
    missed = sum(int(line.split()[0].strip("(")) for line in notices)
    last_shown = 19_999  # the seq of index 19,998; what follows it was never seen
    assert missed == last_shown - shown


async def test_a_map_shows_its_count_its_failing_items_and_items_done(
    autojump_clock: trio.abc.Clock, colour_allowed: None
) -> None:
    """A map step's line gives its count; items get lines only to retry or fail; the status line
    counts the items done."""
    terminal = FakeTerminal()
    factory = EventFactory("e1")
    view = ProgressView(terminal, ["each"])
    error = {"type": "ValueError", "message": "bad"}
    events = [
        factory.create(EventType.STEP_STARTED, step_id="each", data={"agent": "echo"}),
        factory.create(EventType.MAP_STARTED, step_id="each", data={"count": 3}),
    ]
    for index in range(3):
        item = f"each[{index}]"
        events += [
            factory.create(EventType.STEP_STARTED, step_id=item, data={"agent": "echo"}),
            factory.create(EventType.ATTEMPT_STARTED, step_id=item, attempt=1),
        ]
    events += [
        factory.create(EventType.STEP_SUCCEEDED, step_id="each[0]", attempt=1, data={}),
        factory.create(
            EventType.ATTEMPT_FAILED, step_id="each[2]", attempt=1, data={"error": error}
        ),
        factory.create(EventType.RETRY_SCHEDULED, step_id="each[2]", attempt=1, data={"delay": 1}),
    ]
    for event in events:
        view.show(event, "e1")
    view._draw_status()
    assert terminal.getvalue().endswith("running: each (1/3 items) | 0/1 done | 0.0s\x1b[0m")
    ending = [
        factory.create(EventType.STEP_SUCCEEDED, step_id="each[1]", attempt=1, data={}),
        factory.create(EventType.ATTEMPT_STARTED, step_id="each[2]", attempt=2),
        factory.create(EventType.STEP_FAILED, step_id="each[2]", attempt=2, data={"error": error}),
        factory.create(EventType.STEP_FAILED, step_id="each", data={"error": error}),
    ]
    for event in ending:
        view.show(event, "e1")
    lines = [
        re.sub(r"\x1b\[[0-9;]*m|\r", "", line).split(None, 1)[1]
        for line in terminal.getvalue().replace(CLEAR, "\n").splitlines()
        if line.strip() and not line.startswith("\x1b[2mrunning")
    ]
    assert lines == [
        "each  started (agent echo)",
        "each  map of 3 items",
        "each[2]  attempt 1 failed: ValueError: bad; retrying in 1.00s",
        "each[2]  failed (2 attempts, 0.00s): ValueError: bad",
        "each  failed (3 of 3 items ended, 0.00s): ValueError: bad",
    ]


async def test_a_map_that_succeeds_says_how_many_items_it_ran() -> None:
    """A map step's success line counts its items; its items' successes make no line."""
    stream = io.StringIO()
    factory = EventFactory("e1")
    view = ProgressView(stream, ["each"], live=False)
    for event in (
        factory.create(EventType.STEP_STARTED, step_id="each", data={"agent": "echo"}),
        factory.create(EventType.MAP_STARTED, step_id="each", data={"count": 1}),
        factory.create(EventType.STEP_STARTED, step_id="each[0]", data={"agent": "echo"}),
        factory.create(EventType.STEP_SUCCEEDED, step_id="each[0]", attempt=1, data={}),
        factory.create(EventType.STEP_SUCCEEDED, step_id="each", data={"output": ["a"]}),
    ):
        view.show(event, "e1")
    lines = [line.split(None, 1)[1] for line in stream.getvalue().splitlines()]
    assert lines == [
        "each  started (agent echo)",
        "each  map of 1 item",
        "each  succeeded in 0.00s (1 item)",
    ]


async def test_a_map_that_succeeds_past_failed_or_skipped_items_says_so() -> None:
    """Under on_item_error continue the success line counts failed (null) and skipped items."""
    stream = io.StringIO()
    factory = EventFactory("e1")
    view = ProgressView(stream, ["each"], live=False)
    for event in (
        factory.create(EventType.STEP_STARTED, step_id="each", data={"agent": "echo"}),
        factory.create(EventType.MAP_STARTED, step_id="each", data={"count": 3}),
        factory.create(
            EventType.STEP_SUCCEEDED,
            step_id="each",
            data={"output": [None, None, "c"], "failed_items": [0], "skipped": 1},
        ),
    ):
        view.show(event, "e1")
    last = stream.getvalue().splitlines()[-1].split(None, 1)[1]
    assert last == "each  succeeded in 0.00s (3 items; 1 failed, null in the output; 1 skipped)"


async def test_progress_data_is_shown_on_its_step() -> None:
    """`context.progress(data)` shows as a line of the step carrying the data as JSON."""
    stream = io.StringIO()
    view = ProgressView(stream, ["fetch"], live=False)
    event = EventFactory("e1").create(
        EventType.STEP_PROGRESS,
        step_id="fetch",
        attempt=1,
        data={"percent": 40, "stage": "fetching"},
    )
    view.show(event, "e1")
    assert stream.getvalue().split(None, 1)[1] == (
        'fetch  progress {"percent": 40, "stage": "fetching"}\n'
    )


async def test_json_logs_make_notes_log_records_and_show_no_events(
    handler: logging.StreamHandler[Any],
) -> None:
    """With JSON logs the view writes nothing itself: notes become `orchestr8.cli` records."""
    output = io.StringIO()
    handler.setStream(output)
    stream = io.StringIO()
    view = ProgressView(stream, ["copy"], json_logs=True, log_handler=handler)
    for event in failing_run(EventFactory("e1")):
        view.show(event, "e1")
    view.note("execution e1 started")
    assert stream.getvalue() == ""
    assert "INFO     orchestr8.cli: execution e1 started" in output.getvalue()


# -- end to end -----------------------------------------------------------------------------------


def run_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `python -m orchestr8 ARGS` in `tmp_path` without colour and capture its output."""
    env = {key: value for key, value in os.environ.items() if key != "ORCHESTR8_JOURNAL"}
    env.update(NO_COLOR="1")
    return subprocess.run(
        [sys.executable, "-m", "orchestr8", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def failing_workflow(tmp_path: Path) -> Path:
    """A workflow whose one step always fails with a recognisable message."""
    path = tmp_path / "fails.json"
    path.write_text(
        json.dumps(
            {
                "schema_version": "1.0",
                "name": "fails",
                "steps": [
                    {
                        "id": "copy",
                        "agent": {"id": "fail", "config": {"message": "disk full"}},
                        "policy": {"retry": {"max_attempts": 1}},
                    }
                ],
            }
        )
    )
    return path


def test_a_failed_run_tells_its_error_once_on_each_stream(tmp_path: Path) -> None:
    """stderr tells the step's error once (no WARNING lines repeating it); stdout once."""
    done = run_cli(tmp_path, "run", str(failing_workflow(tmp_path)), "--journal", "j.db")
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("disk full") == 1, done.stderr
    assert "WARNING" not in done.stderr
    assert done.stdout.count("disk full") == 1


def test_json_logs_leave_only_json_lines_on_stderr(tmp_path: Path) -> None:
    """`--log-format json`: a failed run, a bad option, a bad file write JSON lines only."""
    workflow = str(failing_workflow(tmp_path))
    runs = [
        run_cli(tmp_path, "--log-format", "json", "run", workflow, "--journal", "j.db"),
        run_cli(tmp_path, "--log-format", "json", "run", workflow, "--timeout", "soon"),
        run_cli(tmp_path, "--log-format", "json", "run", "missing.json"),
        run_cli(tmp_path, "--log-format", "json", "validate", "missing.json"),
    ]
    assert [done.returncode for done in runs] == [2, 1, 1, 1]
    for done in runs:
        records = [json.loads(line) for line in done.stderr.splitlines()]
        assert records, done
        assert all({"time", "level", "message", "logger"} <= set(record) for record in records)
    failed = [
        record["message"] for record in (json.loads(line) for line in runs[0].stderr.splitlines())
    ]
    assert any("disk full" in message for message in failed)
    assert any("resume it:" in message for message in failed)
    assert "--timeout" in runs[1].stderr
    assert "missing.json" in runs[2].stderr


def _event(seq: int, ts: str, elapsed: float, kind: str, **data: Any) -> Event:
    return Event("run-1", seq, ts, elapsed, kind, None, None, data)


@pytest.mark.parametrize("given", [True, False])
async def test_after_a_resume_the_end_line_gives_the_whole_duration(given: bool) -> None:
    """Across a resume the end's line counts from the first start (wall clock), as inspect does."""
    started = _event(1, "2026-01-01T10:00:00.000Z", 0.0, EventType.EXECUTION_STARTED)
    resumed = _event(2, "2026-01-01T10:02:40.000Z", 0.5, EventType.EXECUTION_RESUMED)
    ended = _event(3, "2026-01-01T10:02:41.000Z", 1.5, EventType.EXECUTION_SUCCEEDED)
    stream = io.StringIO()
    view = ProgressView(stream, ["a"], live=False, started_at=started.ts if given else None)
    for event in ([] if given else [started]) + [resumed, ended]:
        view.show(event, "run-1")
    assert stream.getvalue().splitlines()[-1].endswith("execution succeeded in 2m41s")


async def test_a_resumed_run_whose_start_is_unknown_says_this_runs_duration() -> None:
    """No start time known (a resume's view without it): the duration is this run's, said so."""
    resumed = _event(5, "2026-01-01T10:02:40.000Z", 0.5, EventType.EXECUTION_RESUMED)
    ended = _event(6, "2026-01-01T10:02:43.000Z", 2.5, EventType.EXECUTION_CANCELLED, reason="x")
    stream = io.StringIO()
    view = ProgressView(stream, ["a"], live=False)
    view.show(resumed, "run-1")
    view.show(ended, "run-1")
    assert (
        stream.getvalue().splitlines()[-1].endswith("execution cancelled after 2.00s (this run): x")
    )

"""Tests of `orchestr8._journal._timeline.render_timeline`: golden charts and robustness."""

from __future__ import annotations

import re
from typing import Any

import pytest

from orchestr8._journal._events import Event
from orchestr8._journal._timeline import render_timeline

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def events(*specs: tuple[Any, ...]) -> list[Event]:
    """Events numbered in order from `(elapsed, type, step_id?, attempt?, data?)` tuples."""
    out = []
    for seq, (elapsed, kind, *rest) in enumerate(specs, 1):
        step = rest[0] if rest else None
        attempt = rest[1] if len(rest) > 1 else None
        data = rest[2] if len(rest) > 2 else {}
        out.append(Event("e1", seq, "2025-01-01T00:00:00.000Z", elapsed, kind, step, attempt, data))
    return out


def ok(step: str, start: float, end: float, attempt: int = 1) -> list[tuple[Any, ...]]:
    return [
        (start, "step.started", step),
        (start, "attempt.started", step, attempt),
        (end, "step.succeeded", step, attempt),
    ]


def chart(text: str) -> str:
    """A golden chart written indented in the test, without the indentation."""
    lines = text.lstrip("\n").rstrip().splitlines()
    indent = min(len(line) - len(line.lstrip()) for line in lines if line.strip())
    return "\n".join(line[indent:] for line in lines)


SEQUENTIAL = events(
    (0.0, "execution.started"),
    *ok("fetch", 0.0, 1.0),
    *ok("parse", 1.0, 1.5),
    *ok("store", 1.5, 2.0),
    (2.0, "execution.succeeded"),
)


def test_sequential() -> None:
    assert render_timeline(SEQUENTIAL, width=60) == chart("""
        step   0s       0.5s     1s       1.5s       total 2.00s
               |--------|--------|--------|--------
        fetch  ==================                    succeeded 1.00s
        parse                    =========           succeeded 0.50s
        store                             =========  succeeded 0.50s

        = attempt
    """)


def test_parallel_steps_overlap() -> None:
    parallel = events(
        (0.0, "execution.started"),
        (0.0, "step.started", "a"),
        (0.0, "attempt.started", "a", 1),
        (0.0, "step.started", "b"),
        (0.0, "attempt.started", "b", 1),
        (1.0, "step.succeeded", "a", 1),
        (2.0, "step.succeeded", "b", 1),
        *ok("join", 2.0, 3.0),
        (3.0, "execution.succeeded"),
    )
    assert render_timeline(parallel, width=60) == chart("""
        step  0s    0.5s  1s    1.5s  2s    2.5s     total 3.00s
              |-----|-----|-----|-----|-----|------
        a     =============                          succeeded 1.00s
        b     =========================              succeeded 2.00s
        join                          =============  succeeded 1.00s

        = attempt
    """)


def test_retries_waits_rejections_and_a_failed_step() -> None:
    retried = events(
        (0.0, "execution.started"),
        (0.0, "step.started", "call"),
        (0.0, "attempt.started", "call", 1),
        (1.0, "attempt.failed", "call", 1),
        (1.0, "retry.scheduled", "call", 1, {"delay": 1.0}),
        (2.0, "attempt.started", "call", 2),
        (3.0, "attempt.failed", "call", 2),
        (3.0, "retry.scheduled", "call", 2, {"delay": 2.0}),
        (5.0, "breaker.rejected", "call", 3),
        (5.0, "step.failed", "call", 3),
        (5.0, "step.skipped", "after"),
        (5.0, "execution.failed"),
    )
    assert render_timeline(retried, width=60) == chart("""
        step   0s   1s   2s   3s   4s      total 5.00s
               |----|----|----|----|-----
        call   xxxxxx....xxxxxx.........!  failed 5.00s (3 attempts)
        after                              skipped

        x failed attempt  . retry wait  ! rejected
    """)


def test_a_resumed_execution_is_one_chart() -> None:
    """One axis across the resume; a step's time adds up its runs before and after it."""
    resumed = events(
        (0.0, "execution.started"),
        *ok("one", 0.0, 1.0),
        (1.0, "step.started", "two"),
        (1.0, "attempt.started", "two", 1),
        (1.5, "step.progress", "two", 1),
        (1.5, "execution.resumed"),
        (1.5, "step.started", "two"),
        (1.5, "attempt.started", "two", 1),
        (3.0, "step.succeeded", "two", 1),
        (3.0, "execution.succeeded"),
    )
    assert render_timeline(resumed, width=60) == chart("""
        step  0s      1s      2s        total 3.00s
              |-------|-------|-------
        one   ========                  succeeded 1.00s
        two           ~~~~============  succeeded 2.00s (2 attempts)

        = attempt  ~ interrupted
        resumed at 1.50s
    """)


def test_a_running_execution_and_a_pending_wait() -> None:
    running = events(
        (0.0, "execution.started"),
        (0.0, "step.started", "x"),
        (0.0, "attempt.started", "x", 1),
        (1.0, "attempt.failed", "x", 1),
        (1.0, "retry.scheduled", "x", 1, {"delay": 30.0}),
        (0.5, "step.started", "y"),
        (0.5, "attempt.started", "y", 1),
        (2.0, "step.progress", "y"),
    )
    text = render_timeline(running, width=50)
    x_row, y_row = text.splitlines()[2:4]
    assert x_row.split()[-1] == "retrying"
    assert x_row.split()[1].startswith("x")
    assert x_row.split()[1].endswith(".")
    assert y_row.split()[-1] == "running"
    assert ">" in y_row


def test_an_interrupted_execution_ends_its_open_attempts_as_interrupted() -> None:
    """With `interrupted`, what was running or waiting to retry is drawn and named interrupted."""
    died = events(
        (0.0, "execution.started"),
        (0.0, "step.started", "x"),
        (0.0, "attempt.started", "x", 1),
        (1.0, "attempt.failed", "x", 1),
        (1.0, "retry.scheduled", "x", 1, {"delay": 30.0}),
        (0.5, "step.started", "y"),
        (0.5, "attempt.started", "y", 1),
        (2.0, "step.progress", "y"),
    )
    text = render_timeline(died, width=50, interrupted=True)
    x_row, y_row = text.splitlines()[2:4]
    assert (x_row.split()[-1], y_row.split()[-1]) == ("interrupted", "interrupted")
    assert ">" not in y_row
    assert "~" in y_row
    assert "~ interrupted" in text


def test_one_zero_duration_step() -> None:
    single = events((0.0, "execution.started"), *ok("only", 0.0, 0.0), (0.0, "execution.succeeded"))
    lines = render_timeline(single, width=40).splitlines()
    assert lines[0].startswith("step  0s")
    assert lines[2].split() == ["only", "=", "succeeded", "0.00s"]


def test_many_steps_fit_the_width_and_keep_distinct_names() -> None:
    specs: list[tuple[Any, ...]] = [(0.0, "execution.started")]
    for index in range(120):
        specs += ok(f"a-rather-long-generated-step-name-{index:03d}", index * 0.1, index * 0.1 + 1)
    text = render_timeline(events(*specs), width=100)
    lines = text.splitlines()
    rows = lines[2:122]
    assert len(rows) == 120
    assert all(len(line) <= 100 for line in lines)
    names = [row.split()[0] for row in rows]
    assert len(set(names)) == 120
    assert names[7] == "a-rather-lon~tep-name-007"
    assert all(len(name) == 25 and "~" in name for name in names)
    assert rows[0].split()[1].startswith("=")
    assert rows[-1].split()[1].endswith("=")


@pytest.mark.parametrize("width", [1, 20, 200])
def test_any_width_renders(width: int) -> None:
    text = render_timeline(SEQUENTIAL, width=width)
    assert len(text.splitlines()) == 7
    if width >= 60:
        assert all(len(line) <= width for line in text.splitlines())


def test_color_uses_blocks_and_the_same_layout() -> None:
    plain = render_timeline(SEQUENTIAL, width=60)
    colored = render_timeline(SEQUENTIAL, width=60, color=True)
    assert "\x1b[32m" in colored
    assert "█" in colored
    visible = ANSI.sub("", colored)
    assert [len(line) for line in visible.splitlines()] == [
        len(line) for line in plain.splitlines()
    ]
    assert visible.replace("█", "=") == plain
    assert not ANSI.search(plain)
    assert plain.isascii()


def test_events_out_of_order_and_no_events() -> None:
    assert render_timeline(list(reversed(SEQUENTIAL)), width=60) == render_timeline(
        SEQUENTIAL, width=60
    )
    assert render_timeline([], width=60) == "(no events)"
    only_start = render_timeline(events((0.0, "execution.started")), width=30)
    assert only_start.splitlines()[0].startswith("step  0s")


def test_a_wait_lasts_until_the_next_attempt_starts() -> None:
    late = events(
        (0.0, "execution.started"),
        (0.0, "step.started", "s"),
        (0.0, "attempt.started", "s", 1),
        (1.0, "attempt.failed", "s", 1),
        (1.0, "retry.scheduled", "s", 1, {"delay": 0.5}),
        (3.0, "attempt.started", "s", 2),
        (4.0, "step.succeeded", "s", 2),
    )
    bar = render_timeline(late, width=60).splitlines()[2].split()[1]
    assert bar == "x" * 6 + "." * 12 + "=" * 6  # 6 columns a second: the wait is 2 s, not 0.5


def test_events_of_two_executions_are_refused() -> None:
    other = Event("e2", 1, "2025-01-01T00:00:00.000Z", 0.0, "execution.started")
    with pytest.raises(ValueError, match="one execution"):
        render_timeline([*SEQUENTIAL, other])


def map_events(count: int) -> list[Event]:
    """A map step `each` whose `count` items each run 1 s, two at a time; item 1 fails."""
    specs: list[tuple[Any, ...]] = [
        (0.0, "step.started", "each"),
        (0.0, "map.started", "each", None, {"count": count}),
    ]
    for index in range(count):
        start = float(index // 2)
        item = f"each[{index}]"
        specs += [(start, "step.started", item), (start, "attempt.started", item, 1)]
        ending = "step.failed" if index == 1 else "step.succeeded"
        specs.append((start + 1, ending, item, 1))
    specs.append((float((count + 1) // 2), "step.failed", "each"))
    return events(*specs)


def test_a_small_map_draws_its_items_under_its_own_row() -> None:
    """A map of at most `ITEM_ROWS` items: its row holds every item's bars, then one row each."""
    assert render_timeline(map_events(3), width=60) == chart(
        """
        step     0s      0.5s     1s      1.5s       total 2.00s
                 |-------|--------|-------|--------
        each     xxxxxxxxxxxxxxxxx=================  failed 2.00s
        each[0]  =================                   succeeded 1.00s
        each[1]  xxxxxxxxxxxxxxxxx                   failed 1.00s
        each[2]                   =================  succeeded 1.00s

        each     map 3: 2 succeeded, 1 failed

        = attempt  x failed attempt
        """
    )


def test_a_large_map_is_one_row_with_its_counts() -> None:
    """A map of more than `ITEM_ROWS` items is drawn in its own row only, with its counts."""
    drawn = render_timeline(map_events(40), width=100).splitlines()
    assert [line.split()[0] for line in drawn[2:3]] == ["each"]
    assert drawn[2].endswith("failed 20.00s")
    assert drawn[4] == "each  map 40: 39 succeeded, 1 failed"
    assert not any(line.startswith("each[") for line in drawn)


def loop_events() -> list[Event]:
    """A loop `l` of four 1.5 s iterations, cut after two and resumed; `after` reads its output."""
    return events(
        (0.0, "execution.started"),
        (0.0, "step.started", "l", None, {"max_iterations": 5}),
        *ok("l#1", 0.0, 1.5),
        (1.5, "iteration.finished", "l", None, {"iteration": 1, "until": False}),
        *ok("l#2", 1.5, 3.0),
        (3.0, "iteration.finished", "l", None, {"iteration": 2, "until": False}),
        (3.0, "step.started", "l#3"),
        (3.0, "step.cancelled", "l#3"),
        (3.0, "step.cancelled", "l"),
        (3.0, "step.cancelled", "after"),
        (3.0, "execution.cancelled"),
        (3.0, "execution.resumed"),
        (3.0, "step.started", "l", None, {"max_iterations": 5}),
        (3.0, "iteration.finished", "l", None, {"iteration": 2, "until": False, "reused": True}),
        *ok("l#3", 3.0, 4.5),
        (4.5, "iteration.finished", "l", None, {"iteration": 3, "until": False}),
        *ok("l#4", 4.5, 6.0),
        (6.0, "iteration.finished", "l", None, {"iteration": 4, "until": True}),
        (6.0, "step.succeeded", "l", None, {"output": 4}),
        *ok("after", 6.0, 6.0),
        (6.0, "execution.succeeded"),
    )


def test_a_loop_draws_its_span_and_its_iterations_follow_it_in_order() -> None:
    """A loop row spans the loop's runs; its iterations follow it, before the steps after it."""
    assert render_timeline(loop_events(), width=60) == chart("""
        step   0s    1s    2s    3s    4s    5s      total 6.00s
               |-----|-----|-----|-----|-----|-----
        l      ~~~~~~~~~~~~~~~~~~==================  succeeded 6.00s
        l#1    =========                             succeeded 1.50s
        l#2             =========                    succeeded 1.50s
        l#3                      =========           succeeded 1.50s
        l#4                               =========  succeeded 1.50s
        after                                     =  succeeded 0.00s

        = attempt  ~ interrupted
        resumed at 3.00s
    """)

"""Specifications of `timeline_rows`: the row model the text chart and the REST timeline share."""

from __future__ import annotations

from typing import Any

import attrs
from hypothesis import given
from hypothesis import strategies as st

from orchestr8._journal._events import Event
from orchestr8._journal._timeline_rows import ITEM_ROWS, SEGMENT_KINDS, Segment, timeline_rows


def events(*specs: tuple[Any, ...]) -> list[Event]:
    """Events numbered in order from `(elapsed, type, step_id?, attempt?, data?)` tuples."""
    out = []
    for seq, (elapsed, kind, *rest) in enumerate(specs, 1):
        step = rest[0] if rest else None
        attempt = rest[1] if len(rest) > 1 else None
        data = rest[2] if len(rest) > 2 else {}
        out.append(Event("e1", seq, "2025-01-01T00:00:00.000Z", elapsed, kind, step, attempt, data))
    return out


RETRIED = events(
    (0.0, "execution.started"),
    (0.0, "step.started", "call"),
    (0.0, "attempt.started", "call", 1),
    (1.0, "attempt.failed", "call", 1),
    (1.0, "retry.scheduled", "call", 1, {"delay": 1.0}),
    (2.0, "attempt.started", "call", 2),
    (3.0, "step.succeeded", "call", 2),
    (3.0, "step.started", "next"),
    (3.0, "breaker.rejected", "next", 1),
    (3.5, "attempt.started", "next", 1),
    (4.0, "execution.resumed"),
    (4.0, "step.started", "next"),
    (4.0, "attempt.started", "next", 1),
)


def test_attempts_waits_and_rejections_carry_their_attempt_numbers() -> None:
    """A failed attempt, its retry wait and the success each say which attempt they are."""
    timeline = timeline_rows(RETRIED)
    call = timeline.rows[0]
    assert call.segments == (
        Segment("failed", 0.0, 1.0, 1),
        Segment("wait", 1.0, 2.0, 1),
        Segment("attempt", 2.0, 3.0, 2),
    )
    assert (call.status, call.attempts, call.duration) == ("succeeded", 2, 3.0)


def test_a_resume_cuts_open_attempts_and_later_ones_run_on() -> None:
    """The attempt cut by the crash ends interrupted at the last event before the resume."""
    timeline = timeline_rows(RETRIED)
    assert timeline.resumes == (4.0,)
    assert timeline.gaps == ((3.5, 4.0),)
    assert timeline.rows[1].segments == (
        Segment("rejected", 3.0, 3.0, 1),
        Segment("interrupted", 3.5, 3.5, 1),
        Segment("running", 4.0, 4.0, 2),
    )
    assert timeline.rows[1].attempts == 2
    interrupted = timeline_rows(RETRIED, interrupted=True).rows[1]
    assert interrupted.segments[-1].kind == "interrupted"
    assert interrupted.status == "interrupted"


def test_the_json_form_pages_its_rows() -> None:
    """`offset`/`limit` cut the rows; the span, resumes and row count stay whole."""
    document = timeline_rows(RETRIED).to_json(offset=1, limit=5)
    assert document["total_rows"] == 2
    assert [row["step_id"] for row in document["rows"]] == ["next"]
    assert document["rows"][0]["segments"][0] == {
        "kind": "rejected",
        "start": 3.0,
        "end": 3.0,
        "attempt": 1,
    }
    assert (document["first"], document["last"], document["span"]) == (0.0, 4.0, 4.0)
    assert (document["resumes"], document["gaps"]) == ([4.0], [[3.5, 4.0]])


def map_events(count: int) -> list[Event]:
    """A map step `m` of `count` items, each one attempt of 1 s, the last item failing."""
    specs: list[tuple[Any, ...]] = [
        (0.0, "execution.started"),
        (0.0, "step.started", "m"),
        (0.0, "map.started", "m", None, {"items": count}),
    ]
    for index in range(count):
        item = f"m[{index}]"
        ending = "step.failed" if index == count - 1 else "step.succeeded"
        specs += [
            (0.0, "step.started", item),
            (0.0, "attempt.started", item, 1),
            (1.0, ending, item, 1),
        ]
    return events(*specs)


def test_a_small_maps_items_are_rows_under_it_and_a_large_ones_are_not() -> None:
    """Items get rows (with `parent`) while the map has at most ITEM_ROWS; its row has them all."""
    small = timeline_rows(map_events(3))
    assert [(row.step_id, row.parent, row.group) for row in small.rows] == [
        ("m", None, "map"),
        ("m[0]", "m", None),
        ("m[1]", "m", None),
        ("m[2]", "m", None),
    ]
    assert [segment.kind for segment in small.rows[0].segments] == ["attempt", "attempt", "failed"]
    assert small.rows[0].items is not None
    assert small.rows[0].items["failed_items"] == [2]
    large = timeline_rows(map_events(ITEM_ROWS + 1))
    assert [row.step_id for row in large.rows] == ["m"]
    assert len(large.rows[0].segments) == ITEM_ROWS + 1


def test_a_loops_iterations_follow_it_and_its_row_is_its_span() -> None:
    """A loop step's row draws its own span; its iterations are rows under it, in order."""
    looped = events(
        (0.0, "execution.started"),
        (0.0, "step.started", "loop"),
        (0.0, "step.started", "loop#2"),
        (0.0, "attempt.started", "loop#2", 1),
        (1.0, "step.succeeded", "loop#2", 1),
        (1.0, "step.started", "loop#1"),
        (1.0, "attempt.started", "loop#1", 1),
        (2.0, "step.succeeded", "loop#1", 1),
        (2.0, "step.succeeded", "loop"),
    )
    rows = timeline_rows(looped).rows
    assert [(row.step_id, row.parent, row.group) for row in rows] == [
        ("loop", None, "loop"),
        ("loop#1", "loop", None),
        ("loop#2", "loop", None),
    ]
    assert rows[0].segments == (Segment("attempt", 0.0, 2.0, None),)


def test_no_events_is_an_empty_timeline() -> None:
    """An execution without events has no rows and a zero span."""
    timeline = timeline_rows([])
    assert (timeline.rows, timeline.resumes, timeline.span) == ((), (), 0.0)


kinds = st.sampled_from(
    [
        "step.started",
        "attempt.started",
        "attempt.failed",
        "retry.scheduled",
        "breaker.rejected",
        "step.succeeded",
        "step.failed",
        "step.cancelled",
        "execution.resumed",
    ]
)


@given(
    st.lists(
        st.tuples(st.floats(0, 100), kinds, st.sampled_from(["a", "b", "a[0]", "a#1"])),
        max_size=30,
    )
)
def test_every_segment_lies_on_the_axis_in_order(specs: list[tuple[float, str, str]]) -> None:
    """Whatever the events, segments are known kinds, start <= end, within first..last."""
    ordered = sorted(specs, key=lambda spec: spec[0])
    timeline = timeline_rows(
        events(
            *(
                (at, kind, None if kind == "execution.resumed" else step, 1)
                for at, kind, step in ordered
            )
        )
    )
    for row in timeline.rows:
        for segment in row.segments:
            assert segment.kind in SEGMENT_KINDS
            assert timeline.first <= segment.start <= segment.end <= timeline.last


@given(
    st.lists(
        st.tuples(kinds, st.sampled_from(["a", "b"]), st.one_of(st.none(), st.integers(1, 4))),
        max_size=30,
    )
)
def test_attempt_numbers_run_on_across_resumes_as_replay_counts_them(
    specs: list[tuple[str, str, int | None]],
) -> None:
    """A row's last attempt number is the step's attempt count, however often it was resumed."""
    timeline = timeline_rows(
        events(
            *(
                (float(at), kind, None if kind == "execution.resumed" else step, attempt)
                for at, (kind, step, attempt) in enumerate(specs)
            )
        )
    )
    for row in timeline.rows:
        numbers = [s.attempt or 0 for s in row.segments if s.kind != "wait"]
        assert max(numbers, default=row.attempts) == row.attempts


def test_a_resumed_steps_attempts_are_numbered_after_the_earlier_runs() -> None:
    """Two attempts, a crash, a resume: the next attempts are 3 and 4, as replay counts them."""
    timeline = timeline_rows(
        events(
            (0.0, "execution.started"),
            (0.0, "step.started", "s"),
            (0.0, "attempt.started", "s", 1),
            (1.0, "retry.scheduled", "s", 1, {"delay": 0.5}),
            (1.5, "attempt.started", "s", 2),
            (2.0, "execution.resumed"),
            (2.0, "step.started", "s"),
            (2.0, "attempt.started", "s", 1),
            (3.0, "retry.scheduled", "s", 1, {"delay": 0.5}),
            (3.5, "attempt.started", "s", 2),
            (4.0, "step.succeeded", "s", 2),
        )
    )
    [row] = timeline.rows
    assert [(s.kind, s.attempt) for s in row.segments] == [
        ("failed", 1),
        ("wait", 1),
        ("interrupted", 2),
        ("failed", 3),
        ("wait", 3),
        ("attempt", 4),
    ]
    assert row.attempts == 4
    assert row.to_json()["earlier_attempts"] == 2


def test_a_step_seen_only_in_a_progress_event_is_a_pending_row() -> None:
    """A step whose only event says nothing of its attempts is a row without segments, pending."""
    [row] = timeline_rows(events((0.0, "execution.started"), (0.5, "step.progress", "x", 1))).rows
    assert (row.step_id, row.segments, row.status, row.attempts) == ("x", (), "pending", 0)


def test_a_gaps_downtime_is_read_from_the_wall_clock() -> None:
    """The elapsed axis skips the downtime; `downtimes` says how long no process ran."""
    cut, resumed, unreadable = events(
        (1.0, "attempt.started", "s", 1),
        (1.1, "execution.resumed"),
        (1.2, "execution.resumed"),
    )
    timeline = timeline_rows(
        [
            attrs.evolve(cut, ts="2025-01-01T00:00:00.000Z"),
            attrs.evolve(resumed, ts="2025-01-01T00:02:30.500Z"),
            attrs.evolve(unreadable, ts="yesterday"),
        ]
    )
    assert timeline.downtimes == (150.5, None)
    assert timeline.to_json()["downtimes"] == [150.5, None]

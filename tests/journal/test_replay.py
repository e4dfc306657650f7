"""Specifications of replay: the execution and step state rebuilt from an execution's events."""

from __future__ import annotations

import json
from typing import Any

import pytest
from event_scripts import Script
from hypothesis import given
from hypothesis import strategies as st

from orchestr8._journal._events import Event, EventType, ExecutionStatus, StepStatus
from orchestr8._journal._replay import ExecutionState, StepState, replay


def test_replay_of_nothing_is_pending() -> None:
    """No events: the execution is pending with no steps."""
    assert replay([]) == ExecutionState()
    assert replay([]).status is ExecutionStatus.PENDING


def test_replay_of_a_successful_run_with_a_retry() -> None:
    """A failed attempt, a scheduled retry and a second attempt end in a succeeded step."""
    script = Script()
    script.add("execution.started", elapsed=0.0, workflow="wf", inputs={})
    script.add("step.started", "a", agent="echo")
    script.add("attempt.started", "a", 1)
    script.add("attempt.failed", "a", 1, error={"type": "Boom", "message": "no"})
    script.add("retry.scheduled", "a", 1, delay=1.0)
    retrying = replay(script.events).steps["a"]
    assert (retrying.status, retrying.attempts) == (StepStatus.RETRYING, 1)
    assert retrying.error == {"type": "Boom", "message": "no"}
    script.add("attempt.started", "a", 2)
    script.add("step.progress", "a", 2, message="half way")
    script.add("step.succeeded", "a", 2, output={"answer": 42})
    script.add("execution.succeeded", output={"result": 42})
    state = replay(script.events)
    assert state.status is ExecutionStatus.SUCCEEDED
    assert state.output == {"result": 42}
    assert state.error is None
    assert (state.started_at, state.finished_at) == (
        "2025-01-01T00:00:01.000Z",
        "2025-01-01T00:00:09.000Z",
    )
    assert (state.started, state.finished, state.elapsed, state.last_seq) == (0.0, 9.0, 9.0, 9)
    assert state.steps == {
        "a": StepState(StepStatus.SUCCEEDED, 2, {"answer": 42}, None, 2.0, 8.0),
    }


def test_replay_counts_rejected_attempts() -> None:
    """A call refused by a bulkhead or an open breaker uses up its attempt and records the error."""
    rejection = {"type": "CircuitOpenError", "message": "open"}
    script = Script().add("execution.started").add("step.started", "a")
    script.add("attempt.rejected", "a", 1, error={"type": "BulkheadFullError", "message": "full"})
    script.add("retry.scheduled", "a", 1, delay=0.5)
    script.add("breaker.rejected", "a", 2, error=rejection, retry_after=3.0)
    step = replay(script.events).steps["a"]
    assert (step.status, step.attempts, step.error) == (StepStatus.RETRYING, 2, rejection)


def test_replay_counts_a_steps_plans_refusals_and_replans() -> None:
    """plan.proposed, plan.rejected and step.replanned are counted on their step."""
    error = {"type": "NonRetryableError", "message": "down"}
    script = Script().add("execution.started").add("step.started", "a")
    script.add("plan.proposed", "a", 1, plan=3)
    script.add("plan.rejected", "a", 1, problems=["$: not an object"])
    script.add("plan.proposed", "a", 2, plan={"steps": []})
    script.add("step.replanned", "a", replan=1, error=error, child_id="run-1.a~replan1")
    step = replay(script.events).steps["a"]
    assert (step.plans, step.rejected_plans, step.replans) == (2, 1, 1)
    assert replay(script.events[:2]).steps["a"].plans == 0


def test_replay_of_a_failed_run_with_skipped_and_cancelled_steps() -> None:
    """Failed, skipped and cancelled steps keep their statuses; the execution holds the error."""
    error = {"type": "AttemptTimeoutError", "message": "slow"}
    script = Script().add("execution.started")
    script.add("step.started", "a").add("step.started", "b")
    script.add("step.failed", "a", error=error)
    script.add("step.cancelled", "b", reason="fail_fast")
    script.add("step.skipped", "c", reason="dependency 'a' failed")
    script.add("execution.failed", error=error)
    state = replay(script.events)
    assert state.status is ExecutionStatus.FAILED
    assert (state.output, state.error) == (None, error)
    assert list(state.steps) == ["a", "b", "c"]
    assert [step.status for step in state.steps.values()] == [
        StepStatus.FAILED,
        StepStatus.CANCELLED,
        StepStatus.SKIPPED,
    ]
    assert state.steps["a"].error == error


def test_replay_of_a_cancelled_run() -> None:
    """execution.cancelled makes the execution cancelled with no output."""
    script = Script().add("execution.started").add("execution.cancelled", reason="user")
    state = replay(script.events)
    assert (state.status, state.output, state.error) == (ExecutionStatus.CANCELLED, None, None)


def test_replay_across_a_resume_keeps_succeeded_outputs() -> None:
    """A crashed run resumed: running again, succeeded steps keep output, the rest start over."""
    script = Script().add("execution.started")
    script.add("step.started", "a").add("step.succeeded", "a", output="A")
    script.add("step.started", "b").add("attempt.started", "b", 1)
    script.add("step.failed", "c", error={"type": "X", "message": "x"})
    crashed = replay(script.events)
    assert crashed.status is ExecutionStatus.RUNNING
    script.add("execution.resumed")
    resumed = replay(script.events)
    assert resumed.status is ExecutionStatus.RUNNING
    assert resumed.steps == {
        "a": StepState(StepStatus.SUCCEEDED, 0, "A", None, 2.0, 3.0),
        "b": StepState(earlier_attempts=1, earlier_seconds=2.0),
        "c": StepState(),
    }
    script.add("step.started", "b").add("step.succeeded", "b", output="B")
    script.add("step.started", "c").add("step.succeeded", "c", output="C")
    script.add("execution.succeeded", output=["A", "B", "C"])
    final = replay(script.events)
    assert final.status is ExecutionStatus.SUCCEEDED
    assert final.output == ["A", "B", "C"]
    assert final.started_at == "2025-01-01T00:00:01.000Z"
    assert {step_id: step.output for step_id, step in final.steps.items()} == {
        "a": "A",
        "b": "B",
        "c": "C",
    }


def test_a_step_whose_output_was_journaled_redacted_is_not_reusable() -> None:
    """`output_redacted` on `step.succeeded` keeps the step succeeded but not reusable."""
    script = Script().add("execution.started")
    script.add("step.succeeded", "a", output={"k": "***"}, output_redacted=True)
    script.add("step.succeeded", "b", output="B")
    state = replay(script.events)
    assert state.steps["a"].status is StepStatus.SUCCEEDED
    assert (state.steps["a"].output_redacted, state.steps["a"].reusable) == (True, False)
    assert (state.steps["b"].output_redacted, state.steps["b"].reusable) == (False, True)
    script.add("execution.resumed").add("step.started", "a")
    script.add("step.succeeded", "a", output={"k": "***"}, output_redacted=True)
    assert replay(script.events).steps["a"].output_redacted


def test_replay_after_resuming_a_failed_run_clears_the_error() -> None:
    """Resuming a failed execution drops its error and finish time until it ends again."""
    script = Script().add("execution.started").add("execution.failed", error={"type": "X"})
    script.add("execution.resumed")
    state = replay(script.events)
    assert (state.status, state.error, state.finished_at, state.finished) == (
        ExecutionStatus.RUNNING,
        None,
        None,
        None,
    )


def test_replay_ignores_breaker_and_unknown_events() -> None:
    """Breaker events and types from newer versions leave the state alone."""
    script = Script().add("execution.started")
    before = replay(script.events)
    script.add("breaker.opened", "a", key="echo").add("vendor.custom", "a", anything=1)
    after = replay(script.events)
    assert after == ExecutionState(
        status=before.status,
        started_at=before.started_at,
        started=before.started,
        elapsed=3.0,
        last_seq=3,
    )


def test_replay_refuses_events_of_two_executions() -> None:
    """Mixing executions is a ValueError, not a silently merged state."""
    one = Script().add("execution.started").events[0]
    other = Event("run-2", 2, one.ts, 0.0, "execution.started")
    with pytest.raises(ValueError, match="one execution"):
        replay([one, other])


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=6,
)
events = st.builds(
    Event,
    execution_id=st.just("run"),
    seq=st.integers(1, 10**6),
    ts=st.just("2025-01-01T00:00:00.000Z"),
    elapsed=st.floats(0, 1e6),
    type=st.sampled_from([*EventType, "vendor.custom"]),
    step_id=st.none() | st.sampled_from(["a", "b"]),
    attempt=st.none() | st.integers(1, 5),
    data=st.dictionaries(st.sampled_from(["output", "error", "reason"]), json_values, max_size=2),
)


@given(st.lists(events, max_size=20))
def test_replay_is_unchanged_by_a_json_round_trip(sequence: list[Event]) -> None:
    """Events sent as JSON and read back replay to the same state as the originals."""
    wire = json.loads(json.dumps([event.to_json() for event in sequence]))
    assert [Event.from_json(document) for document in wire] == sequence
    assert replay(Event.from_json(document) for document in wire) == replay(sequence)


def test_a_step_resumed_keeps_its_earlier_attempts_plans_and_running_time() -> None:
    """Across a resume a step's attempts, plans and time ran add up; downtime is not counted."""
    script = Script().add("execution.started")
    script.add("step.started", "p").add("plan.proposed", "p").add("plan.rejected", "p")
    script.add("attempt.started", "p", 1).add("attempt.failed", "p", 1)
    script.add("attempt.started", "p", 2)
    script.add("execution.resumed")
    script.add("step.started", "p").add("plan.proposed", "p")
    script.add("attempt.started", "p", 1).add("step.succeeded", "p", 1, output="done")
    step = replay(script.events).steps["p"]
    assert (step.attempts, step.total_attempts) == (1, 3)
    assert (step.plans, step.rejected_plans) == (2, 1)
    first_run = script.events[6].elapsed - script.events[1].elapsed
    last_run = script.events[-1].elapsed - script.events[8].elapsed
    assert step.duration == pytest.approx(first_run + last_run)


def test_a_step_that_never_ran_again_after_a_resume_keeps_its_earlier_time() -> None:
    """A step cancelled before a resume and not run since shows the time it ran, or None."""
    script = Script().add("execution.started")
    script.add("step.started", "a").add("attempt.started", "a", 1)
    script.add("step.cancelled", "a").add("step.cancelled", "b")
    script.add("execution.resumed")
    steps = replay(script.events).steps
    assert steps["a"].duration == pytest.approx(2.0)
    assert steps["a"].total_attempts == 1
    assert steps["b"].duration is None


def test_replay_follows_a_gate_from_open_to_answered() -> None:
    """`gate.opened` makes an open gate with what it asks; `gate.resolved` records the answer."""
    script = Script()
    script.add("execution.started", elapsed=0.0)
    script.add("gate.opened", "ok", prompt="Ship?", schema=None, timeout=60, on_timeout="reject")
    opened = replay(script.events).gates["ok"]
    assert opened.is_open
    assert (opened.prompt, opened.timeout, opened.on_timeout, opened.opened_seq) == (
        "Ship?",
        60.0,
        "reject",
        2,
    )
    answer: dict[str, Any] = {
        "approved": True,
        "input": {},
        "by": "ann",
        "reason": None,
        "how": "answer",
    }
    script.add("gate.resolved", "ok", **answer)
    resolved = replay(script.events).gates["ok"]
    assert (resolved.status, resolved.resolved_seq, resolved.answer) == ("approved", 3, answer)
    script.add("gate.resolved", "no", approved=False, how="timeout")
    assert replay(script.events).gates["no"].status == "rejected"


def test_replay_of_a_waiting_run_and_its_resume_keeps_the_gate_open() -> None:
    """`execution.waiting` → waiting; a resume re-opens the gate keeping its first seq."""
    script = Script()
    script.add("execution.started", elapsed=0.0)
    script.add("gate.opened", "ok", prompt="Ship?", deadline="2030-01-01T00:00:00.000Z")
    script.add("execution.waiting", gates=["ok"])
    state = replay(script.events)
    assert state.status is ExecutionStatus.WAITING
    assert state.finished_at is None
    script.add("execution.resumed")
    script.add(
        "gate.opened", "ok", prompt="Ship?", reopened=True, deadline="2030-01-01T00:00:00.000Z"
    )
    resumed = replay(script.events)
    assert resumed.status is ExecutionStatus.RUNNING
    assert resumed.gates["ok"].opened_seq == 2
    assert resumed.gates["ok"].is_open


def test_an_execution_that_ends_closes_its_open_gates() -> None:
    """A cancel while a gate waits leaves it `closed`, not open forever; answered ones stay."""
    script = Script()
    script.add("execution.started", elapsed=0.0)
    script.add("gate.opened", "a", prompt="A?")
    script.add("gate.opened", "b", prompt="B?")
    script.add("gate.resolved", "a", approved=True)
    script.add("execution.cancelled", reason="enough")
    gates = replay(script.events).gates
    assert [(gate.gate_id, gate.status) for gate in gates.values()] == [
        ("a", "approved"),
        ("b", "closed"),
    ]


def test_replay_of_a_prefix_is_the_state_at_that_event() -> None:
    """Time travel: the first N events give the state right after event N."""
    script = Script()
    script.add("execution.started", elapsed=0.0)
    script.add("gate.opened", "ok", prompt="Ship?")
    script.add("gate.resolved", "ok", approved=False)
    assert replay(script.events[:2]).gates["ok"].is_open
    assert replay(script.events).gates["ok"].status == "rejected"


def test_a_unit_is_waiting_while_its_gate_is_open() -> None:
    """gate.opened turns its running unit `waiting`; gate.resolved makes it `running` again."""
    script = Script()
    script.add("execution.started", elapsed=0.0)
    script.add("step.started", "ok", agent="approval")
    script.add("gate.opened", "ok", prompt="Ship?")
    assert replay(script.events).steps["ok"].status is StepStatus.WAITING
    script.add("execution.waiting", gates=["ok"])
    assert replay(script.events).steps["ok"].status is StepStatus.WAITING
    script.add("execution.resumed").add("step.started", "ok", agent="approval")
    script.add("gate.opened", "ok", prompt="Ship?", reopened=True)
    assert replay(script.events).steps["ok"].status is StepStatus.WAITING
    script.add("gate.resolved", "ok", approved=True, how="answer")
    assert replay(script.events).steps["ok"].status is StepStatus.RUNNING
    script.add("step.succeeded", "ok", output={"approved": True})
    assert replay(script.events).steps["ok"].status is StepStatus.SUCCEEDED


def test_a_resumed_map_step_keeps_the_tokens_of_the_items_it_reuses() -> None:
    """Item 0 ran before the resume, item 1 after: the map step counts both, as the total does."""
    script = Script().add("execution.started")
    script.add("step.started", "m", agent="llm")
    script.add("step.started", "m[0]", agent="llm")
    script.add("step.usage", "m[0]", input_tokens=10, output_tokens=8)
    script.add("step.succeeded", "m[0]", attempt=1, output="a")
    script.add("execution.resumed")
    script.add("step.started", "m", agent="llm")
    script.add("step.started", "m[1]", agent="llm")
    script.add("step.usage", "m[1]", input_tokens=10, output_tokens=8)
    state = replay(script.events)
    assert state.steps["m"].usage == {"input_tokens": 20, "output_tokens": 16}
    assert state.usage == {"input_tokens": 20, "output_tokens": 16}

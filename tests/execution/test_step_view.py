"""The step panel's model: attempts, declared and resolved input, from plain journal events."""

from __future__ import annotations

from typing import Any

from orchestr8._execution._step_view import attempts_of, resolve_input, step_view
from orchestr8._journal._events import Event
from orchestr8._journal._records import ExecutionRecord

WORKFLOW: dict[str, Any] = {
    "schema_version": "1.1",
    "name": "loopy",
    "steps": [
        {"id": "a", "agent": "echo", "input": {"n": "${inputs.n}", "s": "${secrets.TOKEN}"}},
        {
            "id": "poll",
            "agent": "echo",
            "input": {"k": "${iteration}", "before": "${previous}"},
            "repeat": {"until": "output.k > `1`", "max_iterations": 3},
        },
        {"id": "later", "agent": "echo", "depends_on": ["a"], "input": "${steps.a.output.zz[4]}"},
        {"id": "gate", "approval": {"prompt": "ok?"}},
    ],
}
RECORD = ExecutionRecord("e1", "loopy", WORKFLOW, {"n": 3})


def events(*specs: tuple[str, str | None, dict[str, Any]]) -> list[Event]:
    """Events numbered from 1, one second apart."""
    return [
        Event("e1", seq, f"2026-01-01T00:00:{seq:02d}.000Z", float(seq), kind, step, data=data)
        for seq, (kind, step, data) in enumerate(specs, start=1)
    ]


HISTORY = events(
    ("execution.started", None, {}),
    ("step.started", "a", {"agent": "echo"}),
    ("attempt.started", "a", {}),
    ("execution.resumed", None, {}),
    ("step.started", "a", {"agent": "echo"}),
    ("attempt.started", "a", {}),
    ("attempt.failed", "a", {"error": {"type": "X", "message": "boom"}}),
    ("attempt.started", "a", {}),
    ("step.succeeded", "a", {"output": {"zz": [1]}}),
    ("step.started", "poll#1", {"agent": "echo"}),
    ("attempt.started", "poll#1", {}),
    ("step.succeeded", "poll#1", {"output": {"k": 1}}),
    ("step.started", "poll#2", {"agent": "echo"}),
    ("attempt.started", "poll#2", {}),
    ("step.started", "later", {"agent": "echo"}),
)


def test_attempts_cut_by_a_resume_are_interrupted_and_open_ones_running() -> None:
    """Each attempt has its outcome: interrupted by the resume, failed, succeeded, still running."""
    outcomes = [attempt.outcome for attempt in attempts_of(HISTORY, "a")]
    assert outcomes == ["interrupted", "failed", "succeeded"]
    failed = attempts_of(HISTORY, "a")[1].to_json()
    assert failed["duration"] == 1.0
    assert failed["error"] == {"type": "X", "message": "boom"}
    running = attempts_of(HISTORY, "poll#2")[0].to_json()
    assert running["outcome"] == "running"
    assert running["duration"] is None


def test_secrets_resolve_as_redacted_and_a_pending_step_says_why_not() -> None:
    """`${secrets.NAME}` reads `***`; a step not started has no resolved input, with a reason."""
    assert resolve_input(RECORD, HISTORY, "a") == (True, {"n": 3, "s": "***"}, None)
    resolved, value, reason = resolve_input(RECORD, HISTORY[:3], "later")
    assert (resolved, value) == (False, None)
    assert reason is not None
    assert "has not started" in reason


def test_a_reference_the_journal_cannot_satisfy_is_explained() -> None:
    """An index out of range in the recorded output gives a reason, not an error."""
    resolved, _, reason = resolve_input(RECORD, HISTORY, "later")
    assert not resolved
    assert reason is not None
    assert "cannot be resolved" in reason


def test_an_iteration_reads_its_number_and_the_previous_output() -> None:
    """`poll#2` resolves `${iteration}` to 2 and `${previous}` to `poll#1`'s output."""
    document = step_view(RECORD, HISTORY, "poll#2")
    assert document is not None
    assert document["kind"] == "iteration"
    assert document["resolved_input"]["value"] == {"k": 2, "before": {"k": 1}}
    loop = step_view(RECORD, HISTORY, "poll")
    assert loop is not None
    assert (loop["kind"], loop["iterations"]) == ("loop", ["poll#1", "poll#2"])


def test_unknown_units_and_steps_without_input() -> None:
    """An undeclared, unseen unit is None; an approval step declares no input and says so."""
    assert step_view(RECORD, HISTORY, "nope") is None
    assert step_view(RECORD, HISTORY, "poll#9") is None
    gate = step_view(RECORD, HISTORY, "gate")
    assert gate is not None
    assert gate["kind"] == "approval"
    assert gate["status"] == "pending"
    assert (
        gate["resolved_input"]["reason"] == "the recorded workflow declares no input for this step"
    )


def test_a_skipped_step_and_a_cancelled_attempt() -> None:
    """A skipped step has no resolved input; a cancel cuts its open attempt as interrupted."""
    history = events(
        ("execution.started", None, {}),
        ("step.skipped", "later", {"reason": "when was false"}),
        ("step.started", "a", {"agent": "echo"}),
        ("attempt.started", "a", {}),
        ("step.cancelled", "a", {}),
    )
    resolved, _, reason = resolve_input(RECORD, history, "later")
    assert not resolved
    assert reason == "the step was skipped: its input was never resolved"
    assert [attempt.outcome for attempt in attempts_of(history, "a")] == ["interrupted"]


def test_an_item_past_the_end_of_for_each_is_explained() -> None:
    """An item the map's `for_each` does not give cannot be resolved, and says which."""
    workflow = {
        "schema_version": "1.1",
        "name": "mapped",
        "steps": [{"id": "m", "agent": "echo", "for_each": "inputs.xs", "input": "${item}"}],
    }
    record = ExecutionRecord("e1", "mapped", workflow, {"xs": [1]})
    history = events(("execution.started", None, {}), ("step.started", "m[4]", {}))
    resolved, _, reason = resolve_input(record, history, "m[4]")
    assert not resolved
    assert reason is not None
    assert "for_each gives no item 4" in reason


def test_a_call_the_breaker_refused_is_a_rejected_attempt_with_its_error() -> None:
    """A breaker-rejected call is an attempt row `rejected`, of no duration, carrying the error."""
    refused = {"type": "CircuitOpenError", "message": "the circuit is open"}
    history = events(
        ("execution.started", None, {}),
        ("step.started", "a", {"agent": "echo"}),
        ("breaker.rejected", "a", {"error": refused, "retry_after": 5.0}),
        ("step.failed", "a", {"error": refused}),
    )
    [rejected] = [attempt.to_json() for attempt in attempts_of(history, "a")]
    assert (rejected["outcome"], rejected["duration"], rejected["error"]) == (
        "rejected",
        0.0,
        refused,
    )
    document = step_view(RECORD, history, "a")
    assert document is not None
    assert (document["status"], len(document["attempts"])) == ("failed", 1)

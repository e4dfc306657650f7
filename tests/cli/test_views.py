"""What `inspect ID` shows of loops (progress, iterations after them) and of model spend."""

from __future__ import annotations

from typing import Any

from event_scripts import Script

from orchestr8._cli._views import execution_detail, format_cost, render_execution_detail
from orchestr8._journal._journal import ExecutionRecord

WORKFLOW: dict[str, Any] = {
    "schema_version": "1.1",
    "name": "loops",
    "steps": [
        {"id": "draft", "agent": "echo", "repeat": {"until": "`false`", "max_iterations": 2}},
        {"id": "after", "agent": "echo", "depends_on": ["draft"]},
    ],
}
RECORD = ExecutionRecord("run-1", "loops", WORKFLOW)
ERROR = {"type": "IterationLimitError", "message": "ran out"}


def failed_loop() -> Script:
    """A loop that ran out of iterations, and a dependent skipped for it."""
    script = Script().add("execution.started")
    script.add("step.started", "draft", agent="echo", max_iterations=2)
    for number in (1, 2):
        script.add("step.started", f"draft#{number}", agent="echo")
        script.add("attempt.started", f"draft#{number}", attempt=1)
        script.add("step.succeeded", f"draft#{number}", attempt=1, output=number)
        script.add("iteration.finished", "draft", iteration=number, until=False)
    script.add("step.failed", "draft", error=ERROR)
    script.add("step.skipped", "after", reason="a dependency failed: draft")
    return script.add("execution.failed", error={**ERROR, "step_id": "draft"})


def test_the_detail_carries_each_loops_progress_and_lists_iterations_after_it() -> None:
    """`--json`: the loop step has `loop`; its iterations follow it, before later steps."""
    detail = execution_detail(RECORD, failed_loop().events)
    assert list(detail["steps"]) == ["draft", "draft#1", "draft#2", "after"]
    assert detail["steps"]["draft"]["loop"] == {
        "iterations": 2,
        "max_iterations": 2,
        "until_held": False,
    }
    assert "loop" not in detail["steps"]["draft#1"]
    assert detail["steps"]["draft#2"]["output"] == 2


def test_the_steps_table_shows_the_loop_before_its_error() -> None:
    """The loop's row says how far it got and why it failed; each iteration has its row."""
    text = render_execution_detail(execution_detail(RECORD, failed_loop().events), color=False)
    rows = [line.split(None, 4) for line in text.split("\n\n")[1].splitlines()]
    assert rows[1] == [
        "draft",
        "failed",
        "0",
        "9.00s",
        "loop 2/2 iterations: until never held; IterationLimitError: ran out",
    ]
    assert [row[:3] for row in rows[2:4]] == [
        ["draft#1", "succeeded", "1"],
        ["draft#2", "succeeded", "1"],
    ]


PLAN_RECORD = ExecutionRecord(
    "run-2",
    "plans",
    {
        "schema_version": "1.1",
        "name": "plans",
        "steps": [{"id": "answer", "plan": {"agent": "planner"}}],
    },
)


def test_after_a_resume_a_step_shows_every_attempt_plan_and_second_it_ran() -> None:
    """A resumed plan step keeps its plans line, counts all 3 attempts and both runs' time."""
    script = Script().add("execution.started")
    script.add("step.started", "answer", agent="plan:planner")
    script.add("plan.proposed", "answer").add("plan.rejected", "answer")
    script.add("plan.proposed", "answer")
    script.add("attempt.started", "answer", attempt=1)
    script.add("attempt.failed", "answer", attempt=1, error=ERROR)
    script.add("attempt.started", "answer", attempt=2)
    script.add("execution.resumed")
    script.add("step.started", "answer", agent="plan:planner")
    script.add("attempt.started", "answer", attempt=1)
    script.add("step.succeeded", "answer", attempt=1, output="done")
    detail = execution_detail(PLAN_RECORD, script.add("execution.succeeded").events)
    step = detail["steps"]["answer"]
    assert step["attempts"] == 3
    assert step["plans"] == {"proposed": 2, "rejected": 1, "replans": 0}
    # Seconds 1 to 7 before the resume (cut at its last event), 9 to 11 after it.
    assert step["duration"] == 8.0
    text = render_execution_detail(detail, color=False)
    assert "answer plans: 2 proposed, 1 rejected" in text


def test_the_gates_table_shows_each_gate_its_deadline_and_who_answered() -> None:
    """GATE rows: an open gate shows its prompt, a resolved one who answered and why."""
    from orchestr8._cli._views import render_gates

    gates: dict[str, dict[str, Any]] = {
        "review[0]": {"status": "open", "prompt": "Ship it?", "deadline": None, "answer": None},
        "review[1]": {
            "status": "rejected",
            "prompt": "Ship it?",
            "deadline": "2030-01-01T00:00:00.000Z",
            "answer": {"approved": False, "by": "ada", "reason": "too risky"},
        },
        "review[2]": {
            "status": "approved",
            "prompt": "Ship it?",
            "deadline": None,
            "answer": {"approved": True, "by": "timeout", "reason": None},
        },
    }
    lines = render_gates(gates, color=False).splitlines()
    assert lines[0].split() == ["GATE", "STATUS", "DEADLINE", "ANSWER", "/", "PROMPT"]
    assert lines[1].split() == ["review[0]", "open", "-", "Ship", "it?"]
    assert lines[2].split()[:2] == ["review[1]", "rejected"]
    assert lines[2].endswith("by ada: too risky")
    assert lines[3].endswith("by timeout")


def spent() -> Script:
    """Two steps that called models (one unpriced), and one that did not."""
    script = Script().add("execution.started")
    script.add("step.started", "draft", agent="llm").add("attempt.started", "draft", attempt=1)
    script.add("step.usage", "draft", attempt=1, input_tokens=1200, output_tokens=300)
    script.add("llm.called", "draft", attempt=1, cost_usd=0.0081)
    script.add("step.succeeded", "draft", attempt=1, output="d")
    script.add("step.started", "after", agent="echo")
    script.add("step.succeeded", "after", attempt=1, output="e")
    script.add("step.started", "local", agent="llm")
    script.add("step.usage", "local", attempt=1, input_tokens=10, output_tokens=5)
    script.add("llm.called", "local", attempt=1, cost_usd=None)
    script.add("step.succeeded", "local", attempt=1, output="l")
    return script.add("execution.succeeded", output={})


def test_the_detail_carries_tokens_and_cost_per_step_and_in_all() -> None:
    """`--json`: a step that called a model has usage and cost_usd; the execution its totals."""
    record = ExecutionRecord("run-1", "spend", {"steps": [{"id": "draft"}, {"id": "after"}]})
    detail = execution_detail(record, spent().events)
    assert detail["steps"]["draft"]["usage"] == {"input_tokens": 1200, "output_tokens": 300}
    assert detail["steps"]["draft"]["cost_usd"] == 0.0081
    assert detail["steps"]["local"]["cost_usd"] is None
    assert "usage" not in detail["steps"]["after"]
    assert detail["usage"] == {"input_tokens": 1210, "output_tokens": 305}
    assert detail["cost_usd"] == 0.0081


def test_the_spend_table_shows_each_step_that_called_a_model_and_the_total() -> None:
    """A SPEND table after the steps: tokens and cost per step, `-` when unpriced, a total."""
    record = ExecutionRecord("run-1", "spend", {"steps": [{"id": "draft"}, {"id": "after"}]})
    text = render_execution_detail(execution_detail(record, spent().events), color=False)
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("SPEND"))
    assert lines[start].split() == ["SPEND", "INPUT", "TOKENS", "OUTPUT", "TOKENS", "COST"]
    assert lines[start + 1].split() == ["draft", "1200", "300", "$0.008100"]
    assert lines[start + 2].split() == ["local", "10", "5", "-"]
    assert lines[start + 3].split() == ["total", "1210", "305", "$0.008100"]
    plain = render_execution_detail(execution_detail(RECORD, failed_loop().events), color=False)
    assert "SPEND" not in plain


def test_costs_are_shown_in_dollars() -> None:
    """Six fixed decimals (never `5e-05`), thousands separated; none: a dash."""
    costs = (None, 0.00005, 0.000123456, 0.5, 12.345, 1234.5)
    assert [format_cost(cost) for cost in costs] == [
        "-",
        "$0.000050",
        "$0.000123",
        "$0.500000",
        "$12.345000",
        "$1,234.500000",
    ]


def budgeted() -> Script:
    """A step `a` whose reservation was settled in a source run (copied by a fork), and a step
    `b` whose call was reserved but cut off by a kill before it settled."""
    script = Script().add("execution.started")
    script.add("step.started", "a", agent="llm")
    script.add("step.succeeded", "a", attempt=1, output="kept")
    script.add(
        "budget.settled",
        "a",
        reservation=1,
        cost_usd=0.00005,
        input_tokens=10,
        output_tokens=5,
        llm_calls=1,
        reused_from="source",
    )
    script.add("step.started", "b", agent="llm")
    script.add("attempt.started", "b", attempt=1)
    return script.add(
        "budget.reserved",
        "b",
        reservation=2,
        model="anthropic:claude-haiku-4-5",
        cost_usd=0.0051,
        input_tokens=10,
        output_tokens=1000,
        llm_calls=1,
        scope="workflow",
    )


def test_an_unsettled_hold_and_a_kept_steps_spend_are_shown() -> None:
    """A hold never settled shows as `b (held, unsettled)`; a fork's kept step shows its spend."""
    record = ExecutionRecord("run-2", "kill", {"steps": [{"id": "a"}, {"id": "b"}]})
    detail = execution_detail(record, budgeted().events)
    assert detail["steps"]["a"]["usage"] == {"input_tokens": 10, "output_tokens": 5}
    assert detail["steps"]["a"]["cost_usd"] == 0.00005
    assert detail["steps"]["b"]["unsettled"] == {
        "cost_usd": 0.0051,
        "input_tokens": 10,
        "output_tokens": 1000,
        "llm_calls": 1,
    }
    assert detail["unsettled"] == detail["steps"]["b"]["unsettled"]
    assert detail["cost_usd"] == 0.00005
    lines = render_execution_detail(detail, color=False).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("SPEND"))
    assert lines[start + 1].split() == ["a", "10", "5", "$0.000050"]
    assert lines[start + 2].split() == ["b", "(held,", "unsettled)", "10", "1000", "$0.005100"]
    assert lines[start + 3].split() == ["total", "10", "5", "$0.000050"]
    assert "unsettled" not in execution_detail(RECORD, failed_loop().events)

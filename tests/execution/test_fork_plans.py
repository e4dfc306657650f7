"""`_fork_plans`: what a fork keeps and runs again, planned from hand-made source journals."""

from __future__ import annotations

import pytest
from event_scripts import Script
from test_forking import document, step

from orchestr8._errors import ForkRefusedError
from orchestr8._execution._fork_plans import ForkPoint, plan_fork
from orchestr8._journal._events import EventType
from orchestr8._journal._journal import ExecutionRecord
from orchestr8._workflow._codec import journal_document, load_workflow


def test_a_map_that_never_started_cannot_be_forked_by_item() -> None:
    """`m[0]` of a map without `map.started` in the source names the step to fork from."""
    workflow = document(step("m", input="${item}", for_each="inputs.docs"))
    record = ExecutionRecord("run-1", "forks", workflow)
    script = Script().add("execution.started").add("execution.cancelled")
    with pytest.raises(
        ForkRefusedError, match="never started its items in the source; fork from m"
    ):
        plan_fork(record, script.events, load_workflow(workflow), workflow, "m[0]")


def test_a_dry_run_lists_kept_steps_reruns_and_the_paid_calls_made_again() -> None:
    """The plan names what runs again and why, and the usage the source recorded for it."""
    workflow = document(
        step("a"),
        {"id": "ask", "agent": "llm", "input": "${steps.a.output}", "depends_on": ["a"]},
        step("b", "ask"),
        step("m", input="${item}", for_each="inputs.docs"),
    )
    record = ExecutionRecord("run-1", "forks", workflow)
    script = Script().add("execution.started")
    script.add("step.succeeded", "a", output=1)
    script.add("step.usage", "ask", input_tokens=100, output_tokens=20)
    script.add("step.succeeded", "ask", output=2)
    script.add("step.usage", "b", input_tokens=5)
    script.add("step.succeeded", "b", output=3)
    script.add("map.started", "m", count=2)
    script.add("step.usage", "m[0]", input_tokens=7)
    script.add("step.succeeded", "m[0]", output=4)
    script.add("step.usage", "m[1]", input_tokens=9)
    script.add("step.succeeded", "m[1]", output=5)
    script.add("step.succeeded", "m", output=[4, 5])
    script.add("execution.succeeded", output=None)
    plan = plan_fork(record, script.events, load_workflow(workflow), workflow, "ask")
    assert plan.point == ForkPoint("ask")
    assert plan.kept == ("a", "m")
    assert plan.to_json() == {
        "source": "run-1",
        "fork_seq": 13,
        "from": "ask",
        "kept": ["a", "m"],
        "rerun": [
            {"step": "ask", "reason": "the fork point"},
            {"step": "b", "reason": "depends on ask, which runs again"},
        ],
        "kept_items": {},
        "kept_iterations": {},
        "repaid_calls": [
            {"step": "ask", "agent": "llm", "usage": {"input_tokens": 100, "output_tokens": 20}},
            {"step": "b", "agent": "count", "usage": {"input_tokens": 5}},
        ],
        "repaid_usage": {"input_tokens": 105, "output_tokens": 20},
    }
    assert plan.describe() == (
        "fork of run-1 at seq 13, from ask\n"
        "kept (2): a, m\n"
        "runs again (2):\n"
        "  ask: the fork point\n"
        "  b: depends on ask, which runs again\n"
        "paid calls made again (as the source recorded them):\n"
        "  ask (llm): 100 input_tokens, 20 output_tokens\n"
        "  b (count): 5 input_tokens\n"
        "  in all: 105 input_tokens, 20 output_tokens"
    )
    item = plan_fork(record, script.events, load_workflow(workflow), workflow, "m[1]")
    assert item.kept_items == {"m": (0,)}
    assert [(call.step_id, dict(call.usage)) for call in item.repaid] == [
        ("m", {"input_tokens": 9})
    ]
    assert "  m (keeps 1 item): the fork point" in item.describe()
    assert [event.step_id for event in item.copied] == ["a", "ask", "b", "m", "m[0]"]


def test_a_dry_run_of_a_loop_counts_the_iterations_it_keeps_and_repays() -> None:
    """`loop#3` keeps iterations 1-2; the later ones' usage is paid again."""
    workflow = document(
        {
            "id": "loop",
            "agent": "llm",
            "input": 1,
            "repeat": {"until": "`false`", "max_iterations": 5},
        },
    )
    record = ExecutionRecord("run-1", "forks", workflow)
    script = Script().add("execution.started")
    for number in (1, 2, 3):
        script.add("step.usage", f"loop#{number}", input_tokens=number)
        script.add("step.succeeded", f"loop#{number}", output=number)
    script.add("execution.cancelled")
    loaded = load_workflow(workflow)
    plan = plan_fork(record, script.events, loaded, workflow, "loop#3")
    assert plan.kept_iterations == {"loop": 2}
    assert [dict(call.usage) for call in plan.repaid] == [{"input_tokens": 3}]
    assert "  loop (keeps iterations 1-2): the fork point" in plan.describe()
    second = plan_fork(record, script.events, loaded, workflow, "loop#2")
    assert "  loop (keeps iteration 1): the fork point" in second.describe()
    whole = plan_fork(record, script.events, loaded, workflow, "loop")
    assert whole.kept_iterations == {}
    assert [dict(call.usage) for call in whole.repaid] == [{"input_tokens": 6}]
    free = document(step("a"), {"id": "b", "agent": "echo", "input": 1})
    described = plan_fork(
        ExecutionRecord("run-1", "forks", free),
        Script().add("execution.started").events,
        load_workflow(free),
        free,
        "b",
    ).describe()
    assert described.endswith("paid calls made again: none")


def test_a_loop_or_map_that_failed_upstream_keeps_what_succeeded_as_a_resume_would() -> None:
    """Not downstream, but not finished: the loop keeps its first iterations, a map its items."""
    workflow = document(
        {
            "id": "l",
            "agent": "count",
            "input": 1,
            "repeat": {"until": "`false`", "max_iterations": 5},
        },
        step("m", input="${item}", for_each="inputs.docs"),
        step("never", input="${item}", for_each="inputs.docs"),
        step("x"),
    )
    record = ExecutionRecord("run-1", "forks", workflow)
    script = Script().add("execution.started")
    script.add("step.succeeded", "l#1", output=1).add("step.succeeded", "l#2", output=2)
    script.add("step.failed", "l#3", error={"type": "X", "message": "x"})
    script.add("step.failed", "l", error={"type": "X", "message": "x"})
    script.add("map.started", "m", count=2).add("step.succeeded", "m[1]", output=1)
    script.add("step.failed", "m", error={"type": "X", "message": "x"})
    script.add("step.failed", "never", error={"type": "MapItemsError", "message": "x"})
    script.add("step.succeeded", "x", output=0)
    script.add("execution.failed", error={"type": "X", "message": "x"})
    plan = plan_fork(record, script.events, load_workflow(workflow), workflow, "x")
    assert plan.kept_iterations == {"l": 2}
    assert plan.kept_items == {"m": (1,)}
    assert [rerun.step_id for rerun in plan.rerun] == ["l", "m", "never", "x"]


def test_a_redacted_output_and_a_new_step_run_again() -> None:
    """Outputs the journal redacted cannot be reused; a step the source never had runs."""
    workflow = document(step("a"), step("b"), step("new"), step("unreached"))
    recorded = document(step("a"), step("b"), step("unreached"))
    record = ExecutionRecord("run-1", "forks", journal_document(load_workflow(recorded)))
    script = Script().add("execution.started")
    script.add("step.succeeded", "a", output="***", output_redacted=True)
    script.add("step.skipped", "b", reason="when was false")
    loaded = load_workflow(workflow)
    plan = plan_fork(record, script.events, loaded, journal_document(loaded), "b")
    assert [(rerun.step_id, rerun.reason) for rerun in plan.rerun] == [
        ("a", "its recorded output is redacted (it held a secret)"),
        ("b", "the fork point"),
        ("new", "the source's workflow has no such step"),
        ("unreached", "the source never ran it"),
    ]


def test_a_kept_gate_keeps_its_answer_and_a_gate_downstream_is_asked_again() -> None:
    """A kept gate's opening and answer are copied; a gate that runs again has none copied."""
    workflow = document(step("kept"), step("work", "kept"), step("later", "work"))
    record = ExecutionRecord("run-1", "forks", workflow)
    script = Script().add("execution.started")
    for gate in ("kept", "later"):
        script.add("gate.opened", gate, prompt="ok?", schema=None, deadline=None)
        script.add("gate.resolved", gate, approved=True, input={}, by="ada", how="answer")
        script.add("step.succeeded", gate, output={"approved": True})
        if gate == "kept":
            script.add("step.succeeded", "work", output=1)
    script.add("execution.succeeded", output=None)
    plan = plan_fork(record, script.events, load_workflow(workflow), workflow, "work")
    assert [(event.type, event.step_id) for event in plan.copied] == [
        (EventType.GATE_OPENED, "kept"),
        (EventType.GATE_RESOLVED, "kept"),
        (EventType.STEP_SUCCEEDED, "kept"),
    ]
    assert [rerun.step_id for rerun in plan.rerun] == ["work", "later"]


def test_the_journaled_step_hashes_are_what_kept_steps_are_checked_against() -> None:
    """With the source's hashes from the journal, a kept step must match those, not a rehash."""
    workflow = document(step("a"), step("b", "a"))
    record = ExecutionRecord("run-1", "forks", workflow)
    script = Script().add("execution.started").add("step.succeeded", "a", output=1)
    same = dict(workflow)
    loaded = load_workflow(workflow)
    assert plan_fork(record, script.events, loaded, same, "b").kept == ("a",)
    with pytest.raises(ForkRefusedError, match="would keep: a;"):
        plan_fork(record, script.events, loaded, same, "b", {"a": "0" * 64, "b": "1" * 64})

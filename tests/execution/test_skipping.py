"""`_skipping`: a step's `when` at run time, what a skip does to the steps after it, and resume.

The runs are real: a runtime with the memory journal and the built-in agents; what happened is
read back from the journal.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestr8._execution._results import ExecutionResult
from orchestr8._execution._runtime import open_runtime
from orchestr8._journal._events import Event, EventType, ExecutionStatus, StepStatus
from orchestr8._journal._journal import open_journal
from orchestr8._journal._records import ExecutionRecord
from orchestr8._journal._replay import replay
from orchestr8._workflow._codec import journal_document, load_workflow

NO_RETRY: dict[str, Any] = {"retry": {"max_attempts": 1}, "circuit_breaker": None}


def workflow(*steps: dict[str, Any], **options: Any) -> dict[str, Any]:
    """A schema 1.1 workflow of these steps, without retries; `options` are top-level keys."""
    return {
        "schema_version": "1.1",
        "name": "conditions",
        "defaults": {"policy": NO_RETRY},
        "steps": list(steps),
        **options,
    }


def echo(step_id: str, *depends_on: str, **extra: Any) -> dict[str, Any]:
    """A step echoing its input after `depends_on`."""
    return {"id": step_id, "agent": "echo", "depends_on": list(depends_on), **extra}


def fail(step_id: str, *depends_on: str, **extra: Any) -> dict[str, Any]:
    """A step whose agent always fails."""
    agent = {"id": "fail", "config": {"message": f"{step_id} broke"}}
    return {"id": step_id, "agent": agent, "depends_on": list(depends_on), **extra}


async def execute(
    document: dict[str, Any], inputs: Mapping[str, Any] | None = None
) -> tuple[ExecutionResult, list[Event]]:
    """Run one workflow in a fresh runtime; return its result and its journaled events."""
    async with open_runtime() as runtime:
        handle = await runtime.start(document, inputs)
        result = await handle.wait()
        events = await runtime.journal.events(handle.execution_id)
    return result, events


def of_type(events: Iterable[Event], kind: str) -> dict[str, Event]:
    """The events of one type by step id (the last one of each step)."""
    return {event.step_id: event for event in events if event.type == kind and event.step_id}


def statuses(result: ExecutionResult) -> dict[str, str]:
    """Each step's status, as text."""
    return {step_id: str(step.status) for step_id, step in result.steps.items()}


ROUTER = workflow(
    echo("classify", input={"label": "${inputs.label}"}),
    echo(
        "billing",
        "classify",
        when="steps.classify.output.label == 'billing'",
        input="billing: ${steps.classify.output.label}",
    ),
    echo(
        "technical",
        "classify",
        when="steps.classify.output.label == 'technical'",
        input="technical: ${steps.classify.output.label}",
    ),
    echo("audit", "billing", "technical", input="audited"),
    echo("quote", "billing", input="${steps.billing.output}"),
    echo(
        "reply",
        "billing",
        "technical",
        accept_skipped=True,
        input={"billing": "${steps.billing.output}", "technical": "${steps.technical.output}"},
    ),
    output={"reply": "${steps.reply.output}", "technical": "${steps.technical.output}"},
)


async def test_a_false_when_skips_the_step_with_its_reason_and_never_starts_it() -> None:
    """The step whose `when` is false is skipped, journaled with the expression, not started."""
    result, events = await execute(ROUTER, {"label": "billing"})
    assert result.status is ExecutionStatus.SUCCEEDED
    skipped = of_type(events, EventType.STEP_SKIPPED)
    assert skipped["technical"].data == {
        "reason": "when was false: steps.classify.output.label == 'technical'"
    }
    assert "technical" not in of_type(events, EventType.STEP_STARTED)
    assert result.steps["billing"].output == "billing: billing"


async def test_readers_of_a_skip_are_skipped_unless_they_accept_it_and_followers_run() -> None:
    """A step reading the skipped output is skipped; `accept_skipped` reads null; order runs."""
    result, events = await execute(ROUTER, {"label": "technical"})
    assert statuses(result) == {
        "classify": "succeeded",
        "billing": "skipped",
        "technical": "succeeded",
        "audit": "succeeded",
        "quote": "skipped",
        "reply": "succeeded",
    }
    reasons = {
        step_id: event.data["reason"] for step_id, event in of_type(events, "step.skipped").items()
    }
    assert reasons["quote"] == "a step it reads was skipped: billing"
    assert result.steps["reply"].output == {"billing": None, "technical": "technical: technical"}
    assert result.output == {
        "reply": {"billing": None, "technical": "technical: technical"},
        "technical": "technical: technical",
    }


async def test_a_reader_further_down_a_chain_is_skipped_and_one_in_a_sequence_too() -> None:
    """A step that reads a skipped step through steps that only order after it is skipped too."""
    document = workflow(
        echo("a", input={"ok": True}),
        echo("b", "a", when="`false`", input={"t": "B"}),
        echo("middle", "b", input="middle"),
        echo("reader", "middle", input={"v": "${steps.b.output.t}"}),
        echo("checker", "middle", when="steps.b.output == `null`", input="checked"),
        echo("tolerant", "middle", accept_skipped=True, input="${steps.b.output}"),
    )
    result, events = await execute(document)
    assert statuses(result) == {
        "a": "succeeded",
        "b": "skipped",
        "middle": "succeeded",
        "reader": "skipped",
        "checker": "skipped",
        "tolerant": "succeeded",
    }
    reasons = {
        step: event.data["reason"] for step, event in of_type(events, "step.skipped").items()
    }
    assert reasons["reader"] == reasons["checker"] == "a step it reads was skipped: b"
    sequence = workflow(
        echo("search", when="inputs.go", input=["x"]),
        echo("log", input="logged"),
        {"id": "each", "agent": "echo", "for_each": "steps.search.output", "input": "${item}"},
        strategy="sequential",
    )
    result, _ = await execute(sequence, {"go": False})
    assert statuses(result) == {"search": "skipped", "log": "succeeded", "each": "skipped"}


async def test_the_output_reads_a_skipped_step_as_null_and_the_default_output_leaves_it_out() -> (
    None
):
    """An execution whose steps were skipped succeeds; its outputs say null or leave them out."""
    result, _ = await execute(ROUTER, {"label": "billing"})
    assert result.output["technical"] is None
    document = {key: value for key, value in ROUTER.items() if key != "output"}
    default, _ = await execute(document, {"label": "billing"})
    assert "technical" not in default.output
    assert default.output["billing"] == "billing: billing"


async def test_a_when_that_holds_runs_the_step() -> None:
    """A true `when` (JMESPath truthiness: a non-empty list) runs the step as usual."""
    result, events = await execute(
        workflow(echo("a", when="inputs.tags", input="${inputs.tags}")), {"tags": ["x"]}
    )
    assert result.steps["a"].output == ["x"]
    assert "a" in of_type(events, EventType.STEP_STARTED)


@pytest.mark.parametrize("on_error", ["fail", "continue"])
async def test_a_when_that_fails_to_evaluate_fails_its_step_with_the_message(
    on_error: str,
) -> None:
    """A JMESPath type error fails the step (journaled), and its `on_error` applies."""
    result, events = await execute(
        workflow(
            echo("a", when="length(inputs.count) > `1`", on_error=on_error),
            echo("b", "a", input="${steps.a.output}"),
        ),
        {"count": 3},
    )
    error = result.steps["a"].error
    assert error is not None
    assert error["type"] == "ExpressionError"
    assert error["message"].startswith("$.steps[0].when: 'length(inputs.count) > `1`' failed: ")
    assert of_type(events, EventType.STEP_FAILED)["a"].data == {"error": error}
    assert "a" not in of_type(events, EventType.STEP_STARTED)
    if on_error == "fail":
        assert result.status is ExecutionStatus.FAILED
        assert result.error is not None
        assert result.error["step_id"] == "a"
        assert result.steps["b"].status is StepStatus.SKIPPED
    else:
        assert result.status is ExecutionStatus.SUCCEEDED
        assert result.steps["b"].output is None


async def test_a_when_reads_a_skipped_step_it_accepts_as_null() -> None:
    """`steps.ID.output` of a skipped step is null in an expression, e.g. for a fallback."""
    result, _ = await execute(
        workflow(
            echo("first", when="inputs.first"),
            echo(
                "fallback",
                "first",
                accept_skipped=True,
                when="steps.first.output == `null`",
                input="fell back",
            ),
        ),
        {"first": False},
    )
    assert statuses(result) == {"first": "skipped", "fallback": "succeeded"}


async def test_resume_evaluates_a_when_again_and_reruns_only_unfinished_steps(
    tmp_path: Any,
) -> None:
    """A resume reuses what succeeded and decides each `when` again, the same way."""
    document = workflow(
        echo("classify", input={"label": "${inputs.label}"}),
        echo("billing", "classify", when="steps.classify.output.label == 'billing'"),
        echo("technical", "classify", when="steps.classify.output.label == 'technical'"),
        {
            "id": "reply",
            "agent": "python",
            "depends_on": ["billing", "technical"],
            "accept_skipped": True,
            "input": "${steps.technical.output}",
        },
    )
    document["steps"][3]["agent"] = {"id": "fail", "config": {"message": "down"}}
    path = tmp_path / "journal.db"
    async with open_runtime(journal=path) as runtime:
        handle = await runtime.start(document, {"label": "technical"})
        failed = await handle.wait()
        before = await runtime.journal.events(handle.execution_id)
    assert failed.status is ExecutionStatus.FAILED
    async with open_runtime(journal=path) as runtime:
        resumed = await (await runtime.resume(handle.execution_id)).wait()
        events = await runtime.journal.events(handle.execution_id)
    after = events[len(before) :]
    assert {e.step_id for e in after if e.type == EventType.STEP_STARTED} == {"reply"}
    assert {e.step_id: e.data for e in after if e.type == EventType.STEP_SKIPPED} == {
        "billing": {"reason": "when was false: steps.classify.output.label == 'billing'"}
    }
    assert resumed.steps["billing"].status is StepStatus.SKIPPED
    assert resumed.steps["classify"].status is StepStatus.SUCCEEDED
    assert replay(events).steps["billing"].reason is not None


# -- properties --------------------------------------------------------------------------------


@st.composite
def conditional_cases(draw: st.DrawFn) -> dict[str, Any]:
    """A random DAG: each edge reads or only orders, some steps fail, some `when`s are false."""
    count = draw(st.integers(min_value=1, max_value=7))
    edges, reads = [], []
    for index in range(count):
        depends_on = sorted(draw(st.sets(st.integers(0, index - 1)))) if index else []
        edges.append(depends_on)
        reads.append(sorted(draw(st.sets(st.sampled_from(depends_on)))) if depends_on else [])
    indexes = st.sets(st.integers(0, count - 1))
    return {
        "count": count,
        "edges": edges,
        "reads": reads,
        "conditional": draw(indexes),
        "accepting": draw(indexes),
        "failing": draw(indexes),
        "inputs": {f"run_s{index}": draw(st.booleans()) for index in range(count)},
        "max_concurrency": draw(st.integers(0, 3)),
    }


def build_case(case: dict[str, Any]) -> dict[str, Any]:
    """The workflow document of a case."""
    steps = []
    for index in range(case["count"]):
        step_id = f"s{index}"
        depends_on = [f"s{other}" for other in case["edges"][index]]
        maker = fail if index in case["failing"] else echo
        step = maker(step_id, *depends_on)
        step["input"] = [f"${{steps.s{other}.output}}" for other in case["reads"][index]]
        if index in case["conditional"]:
            step["when"] = f"inputs.run_{step_id}"
        if index in case["accepting"]:
            step["accept_skipped"] = True
        steps.append(step)
    return workflow(*steps, fail_fast=False, max_concurrency=case["max_concurrency"])


def expected_statuses(case: dict[str, Any]) -> dict[str, str]:
    """What each step ends as, by the rules of docs/workflows.md (Conditions)."""
    status: dict[str, str] = {}
    below_failure: set[str] = set()
    for index in range(case["count"]):
        step_id = f"s{index}"
        dependencies = [f"s{other}" for other in case["edges"][index]]
        read_skipped = any(status[f"s{other}"] == "skipped" for other in case["reads"][index])
        blocked = read_skipped and index not in case["accepting"]
        held = index not in case["conditional"] or case["inputs"][f"run_{step_id}"]
        if any(dependency in below_failure for dependency in dependencies):
            status[step_id] = "skipped"
            below_failure.add(step_id)
        elif blocked or not held:
            status[step_id] = "skipped"
        elif index in case["failing"]:
            status[step_id] = "failed"
            below_failure.add(step_id)
        else:
            status[step_id] = "succeeded"
    return status


def check_run(case: dict[str, Any], result: ExecutionResult, events: list[Event]) -> None:
    """Every step runs at most once, ends once, as the rules say; the journal replays to it."""
    expected = expected_statuses(case)
    started = Counter(e.step_id for e in events if e.type == EventType.STEP_STARTED)
    assert all(count == 1 for count in started.values())
    ran = {step_id for step_id, status in expected.items() if status != "skipped"}
    conditional_false = {
        f"s{index}" for index in case["conditional"] if not case["inputs"][f"run_s{index}"]
    }
    assert set(started) == ran
    assert statuses(result) == expected
    assert result.status is (
        ExecutionStatus.FAILED if "failed" in expected.values() else ExecutionStatus.SUCCEEDED
    )
    for step_id, event in of_type(events, EventType.STEP_SKIPPED).items():
        reason = event.data["reason"]
        if reason.startswith("when was false"):
            assert step_id in conditional_false
        elif reason.startswith("a step it reads was skipped: "):
            read = reason.rpartition(" ")[2]
            assert expected[read] == "skipped"
    state = replay(events)
    assert {step_id: str(step.status) for step_id, step in state.steps.items()} == expected


async def resume_after_cut(
    document: dict[str, Any], inputs: Mapping[str, Any], events: list[Event], cut: int
) -> tuple[ExecutionResult, list[Event]]:
    """Resume the execution as if its process had died after event `cut` was journaled."""
    execution_id = events[0].execution_id
    record = ExecutionRecord(
        execution_id=execution_id,
        workflow_name=document["name"],
        workflow=journal_document(load_workflow(document)),
        inputs=dict(inputs),
    )
    async with open_journal() as journal:
        await journal.create_execution(record)
        for event in events[:cut]:
            await journal.append(event)
        await journal.flush()
        async with open_runtime(journal=journal) as runtime:
            result = await (await runtime.resume(execution_id)).wait()
            return result, await journal.events(execution_id)


@settings(max_examples=150, deadline=None)
@given(case=conditional_cases(), data=st.data())
def test_conditions_skips_and_resume_on_random_dags(case: dict[str, Any], data: Any) -> None:
    """Random DAGs with random `when` outcomes, readers and failures skip exactly what the rules
    say; a resume after a cut at any event re-runs only what had not finished."""
    document = build_case(case)

    async def main() -> None:
        result, events = await execute(document, case["inputs"])
        check_run(case, result, events)
        # A succeeded execution is cut before its terminal event (else nothing is left to do).
        last = len(events) - (result.status is ExecutionStatus.SUCCEEDED)
        cut = data.draw(st.integers(min_value=1, max_value=last))
        finished = {
            e.step_id for e in events[:cut] if e.type == EventType.STEP_SUCCEEDED and e.step_id
        }
        resumed, all_events = await resume_after_cut(document, case["inputs"], events, cut)
        rerun = Counter(
            e.step_id for e in all_events[cut:] if e.type == EventType.STEP_STARTED and e.step_id
        )
        assert not set(rerun) & finished
        assert all(count == 1 for count in rerun.values())
        assert statuses(resumed) == expected_statuses(case)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


async def test_a_loop_checks_its_when_once_before_its_first_iteration() -> None:
    """A repeat step whose `when` is false runs no iteration; one that holds loops as usual."""
    loop = echo(
        "polish",
        when="inputs.polish",
        input="${iteration}",
        repeat={"until": "output == `2`", "max_iterations": 3},
    )
    skipped, events = await execute(workflow(loop), {"polish": False})
    assert statuses(skipped) == {"polish": "skipped"}
    assert not [e for e in events if e.type == EventType.STEP_STARTED]
    ran, events = await execute(workflow(loop), {"polish": True})
    assert ran.steps["polish"].output == 2
    assert {e.step_id for e in events if e.type == EventType.STEP_STARTED} >= {"polish#1"}


async def test_a_loop_whose_until_reads_a_skipped_step_is_skipped_too() -> None:
    """`until` reads a step's output like an input reference does: a skip there skips the loop."""
    result, events = await execute(
        workflow(
            echo("gate", when="inputs.go", input=1),
            echo(
                "polish",
                "gate",
                input="${iteration}",
                repeat={"until": "output == steps.gate.output", "max_iterations": 2},
            ),
        ),
        {"go": False},
    )
    assert statuses(result) == {"gate": "skipped", "polish": "skipped"}
    assert of_type(events, EventType.STEP_SKIPPED)["polish"].data == {
        "reason": "a step it reads was skipped: gate"
    }


async def test_a_sub_workflow_step_whose_when_is_false_starts_no_child() -> None:
    """`when` on a sub-workflow step is checked before a child execution is made."""
    child = {
        "schema_version": "1.1",
        "name": "child",
        "steps": [{"id": "inner", "agent": "echo", "input": "${inputs}"}],
    }
    step = {"id": "review", "workflow": child, "when": "inputs.review", "input": {"x": 1}}
    skipped, events = await execute(workflow(step), {"review": False})
    assert statuses(skipped) == {"review": "skipped"}
    assert not [e for e in events if e.type in (EventType.STEP_STARTED, "child.started")]
    ran, _ = await execute(workflow(step), {"review": True})
    assert ran.steps["review"].status is StepStatus.SUCCEEDED

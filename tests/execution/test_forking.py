"""Forks (`_forking`, `Runtime.fork`): what a fork keeps, what it runs again, and its lineage.

Runs are on pytest-trio's `autojump_clock` (a MockClock), with agents that count their calls.
"""

from __future__ import annotations

import datetime
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestr8._agents._contract import AgentContext
from orchestr8._errors import (
    ExecutionNotFoundError,
    ForkRefusedError,
    ForkSourceRunningError,
    InputValidationError,
    NonRetryableError,
)
from orchestr8._execution import _gates
from orchestr8._execution._forking import fork_inputs
from orchestr8._execution._runtime import Runtime, open_runtime
from orchestr8._journal._events import EventFactory, EventType, ExecutionStatus, StepStatus
from orchestr8._journal._journal import ExecutionRecord
from orchestr8._journal._replay import replay

NO_RETRY: dict[str, Any] = {"retry": {"max_attempts": 1}, "circuit_breaker": None}

CALLS: Counter[str] = Counter()
"""Agent calls by unit id (`b`, `m[1]`, `loop#2`), reset for every test."""


async def counted(input: Any, context: AgentContext) -> Any:
    """Count the call, report usage, and fail on a `bad` input: what a fork re-runs shows."""
    CALLS[context.step_id] += 1
    context.record_usage(input_tokens=10, output_tokens=2)
    if input == "bad":
        raise NonRetryableError("bad input")
    return {"input": input}


async def counter(input: Any, context: AgentContext) -> Any:
    """A loop body: counts its calls and returns the iteration it was given."""
    CALLS[context.step_id] += 1
    return input


AGENTS = {"count": counted, "counter": counter}


@pytest.fixture(autouse=True)
def reset_calls() -> Iterator[None]:
    """Each test counts its own calls."""
    CALLS.clear()
    yield
    CALLS.clear()


def document(*steps: dict[str, Any], **options: Any) -> dict[str, Any]:
    """A schema 1.1 workflow of `count` steps, taking a `value` and a `docs` input."""
    body: dict[str, Any] = {
        "schema_version": "1.1",
        "name": "forks",
        "inputs": {
            "type": "object",
            "properties": {"value": {"type": "string"}, "docs": {"type": "array"}},
        },
        "defaults": {"policy": NO_RETRY},
        "steps": list(steps),
    }
    body.update(options)
    return body


def step(step_id: str, *depends_on: str, input: Any = None, **extra: Any) -> dict[str, Any]:
    """A `count` step reading its dependencies' outputs (or `input`)."""
    if input is None:
        input = {need: f"${{steps.{need}.output}}" for need in depends_on} or step_id
    body: dict[str, Any] = {"id": step_id, "agent": "count", "input": input}
    if depends_on:
        body["depends_on"] = list(depends_on)
    body.update(extra)
    return body


CHAIN = document(
    step("a"),
    step("b", "a", input="${inputs.value}"),
    step("c", "b"),
    step("side"),
)


async def run_source(runtime: Runtime, workflow: dict[str, Any], inputs: dict[str, Any]) -> str:
    """Run `workflow` to its end and return its id; the calls it made are forgotten."""
    handle = await runtime.start(workflow, inputs)
    await handle.wait()
    CALLS.clear()
    return handle.execution_id


# -- running forks ---------------------------------------------------------------------------


async def test_a_fork_after_a_failure_runs_the_step_again_with_a_changed_input(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Only the fork point and its dependents run; kept steps are copied, the lineage recorded."""
    async with open_runtime(agents=AGENTS) as runtime:
        source = await run_source(runtime, CHAIN, {"value": "bad"})
        assert (await runtime.result(source)).status is ExecutionStatus.FAILED
        handle = await runtime.fork(source, "b", inputs={"value": "good"})
        result = await handle.wait()
        record = await runtime.journal.get_execution(handle.execution_id)
        events = await runtime.journal.events(handle.execution_id)
        source_events = await runtime.journal.events(source)
    assert result.status is ExecutionStatus.SUCCEEDED
    assert Counter({"b": 1, "c": 1}) == CALLS
    assert result.steps["b"].output == {"input": "good"}
    assert record.forked_from == source
    assert record.fork_seq == source_events[-1].seq
    assert record.inputs == {"value": "good"}
    started = events[0]
    assert started.type == EventType.EXECUTION_STARTED
    assert started.data["forked_from"] == source
    assert started.data["fork_seq"] == source_events[-1].seq
    assert started.data["from_step"] == "b"
    assert started.data["correlation_id"] == handle.execution_id
    copies = [event for event in events if "reused_from" in event.data]
    assert sorted((event.type, event.step_id or "") for event in copies) == [
        (EventType.STEP_SUCCEEDED, "a"),
        (EventType.STEP_SUCCEEDED, "side"),
    ]
    for copy in copies:
        original = source_events[copy.data["reused_from"]["seq"] - 1]
        assert copy.data["reused_from"]["execution_id"] == source
        assert original.step_id == copy.step_id
        assert copy.data["output"] == original.data["output"]
    assert replay(events).steps["a"].output == replay(source_events).steps["a"].output


async def test_a_fork_of_a_map_item_runs_only_that_item_and_the_dependents(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """`--from m[1]` keeps the map's other items; the map and its dependents finish again."""
    workflow = document(
        step("m", input="${item}", for_each="inputs.docs"),
        step("after", "m"),
    )
    async with open_runtime(agents=AGENTS) as runtime:
        source = await run_source(runtime, workflow, {"docs": ["x", "y", "z"]})
        handle = await runtime.fork(source, "m[1]")
        result = await handle.wait()
    assert result.status is ExecutionStatus.SUCCEEDED
    assert Counter({"m[1]": 1, "after": 1}) == CALLS
    assert result.steps["m"].output == [{"input": "x"}, {"input": "y"}, {"input": "z"}]


async def test_a_fork_of_a_loop_iteration_keeps_the_iterations_before_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """`--from loop#2` keeps iteration 1 and runs the loop on from 2 to its end."""
    workflow = document(
        {
            "id": "loop",
            "agent": "counter",
            "input": "${iteration}",
            "repeat": {"until": "output >= `3`", "max_iterations": 5},
        }
    )
    async with open_runtime(agents=AGENTS) as runtime:
        source = await run_source(runtime, workflow, {})
        handle = await runtime.fork(source, "loop#2")
        result = await handle.wait()
    assert result.status is ExecutionStatus.SUCCEEDED
    assert result.steps["loop"].output == 3
    assert Counter({"loop#2": 1, "loop#3": 1}) == CALLS


async def test_a_step_the_source_did_not_finish_runs_again_with_its_dependents(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Forking upstream of nothing that failed still runs the failed step: it was not kept."""
    async with open_runtime(agents=AGENTS) as runtime:
        source = await run_source(runtime, CHAIN, {"value": "bad"})
        prepared = await runtime.plan_fork(source, "side", inputs={"value": "ok"})
        handle = await runtime.start_fork(prepared)
        await handle.wait()
    assert [(rerun.step_id, rerun.reason) for rerun in prepared.plan.rerun] == [
        ("b", "it did not succeed in the source (failed)"),
        ("c", "depends on b, which runs again"),
        ("side", "the fork point"),
    ]
    assert prepared.plan.kept == ("a",)
    assert Counter({"b": 1, "c": 1, "side": 1}) == CALLS


async def test_a_fork_of_a_fork_keeps_what_the_first_fork_kept(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """A fork is an execution like any other: it can be forked again, on a SQLite journal."""
    async with open_runtime(journal=tmp_path / "j.db", agents=AGENTS) as runtime:
        source = await run_source(runtime, CHAIN, {"value": "v1"})
        first = await runtime.fork(source, "c")
        await first.wait()
        second = await runtime.fork(first.execution_id, "b", inputs={"value": "v2"})
        result = await second.wait()
        record = await runtime.journal.get_execution(second.execution_id)
    assert Counter({"c": 2, "b": 1}) == CALLS
    assert result.status is ExecutionStatus.SUCCEEDED
    assert record.forked_from == first.execution_id


# -- refusals --------------------------------------------------------------------------------


async def test_a_running_source_is_refused(autojump_clock: trio.testing.MockClock) -> None:
    """A fork starts from what the journal holds as finished: a live run is refused."""
    workflow = document({"id": "wait", "agent": "sleep", "input": 10})
    async with open_runtime(agents=AGENTS) as runtime:
        handle = await runtime.start(workflow)
        with pytest.raises(ForkRefusedError, match="still running"):
            await runtime.fork(handle.execution_id, "wait")
        await handle.wait()


async def test_a_waiting_source_is_forked_and_its_open_gate_asked_again(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An execution stopped with a gate open waits for a person, not a process: it forks."""
    workflow = document(step("a"), step("gate", "a"))
    async with open_runtime(agents=AGENTS) as runtime:
        factory = EventFactory("waiting-1")
        started = factory.create(EventType.EXECUTION_STARTED, data={})
        record = ExecutionRecord("waiting-1", "forks", workflow)
        await runtime.journal.create_or_find(record, first_event=started)
        recorded: list[tuple[str, str | None, dict[str, Any]]] = [
            (EventType.STEP_SUCCEEDED, "a", {"output": {"input": "a"}}),
            (EventType.GATE_OPENED, "gate", {"prompt": "ok?"}),
            (EventType.EXECUTION_WAITING, None, {"gates": ["gate"]}),
        ]
        for type, step_id, data in recorded:
            await runtime.journal.append(factory.create(type, step_id=step_id, data=data))
        await runtime.journal.flush()
        handle = await runtime.fork("waiting-1", "gate")
        result = await handle.wait()
        events = await runtime.journal.events(handle.execution_id)
    assert result.status is ExecutionStatus.SUCCEEDED
    assert Counter({"gate": 1}) == CALLS
    assert EventType.GATE_OPENED not in {event.type for event in events}


async def test_a_source_another_runtime_runs_is_refused(tmp_path: Path) -> None:
    """Its lock says it runs elsewhere (another runtime or process on the journal file)."""
    # The real clock: on the autojump clock the sleep could end while the SQLite threads work.
    workflow = document({"id": "wait", "agent": "sleep", "input": {"seconds": 600}})
    journal = tmp_path / "j.db"
    async with open_runtime(journal=journal) as running, open_runtime(journal=journal) as other:
        handle = await running.start(workflow)
        with pytest.raises(ForkSourceRunningError, match="still running"):
            await other.plan_fork(handle.execution_id, "wait")
        handle.cancel(force=True)
        await handle.wait()


async def test_unknown_sources_and_fork_points_are_refused_naming_them(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An unknown execution, step, item or iteration is refused with what exists."""
    workflow = document(
        step("m", input="${item}", for_each="inputs.docs"),
        {
            "id": "loop",
            "agent": "counter",
            "input": 1,
            "repeat": {"until": "`true`", "max_iterations": 10},
        },
    )
    async with open_runtime(agents=AGENTS) as runtime:
        with pytest.raises(ExecutionNotFoundError):
            await runtime.fork("nope", "a")
        source = await run_source(runtime, workflow, {"docs": ["x"]})
        for point, message in [
            ("x", "no step 'x' in the workflow \\(m, loop\\)"),
            ("m[3]", "had 1 item\\(s\\) in the source \\(0-0\\)"),
            ("loop[0]", "'loop' is not a map"),
            ("m#1", "'m' is not a loop"),
            ("loop#0", "has iterations 1-10"),
        ]:
            with pytest.raises(ForkRefusedError, match=message):
                await runtime.plan_fork(source, point)


async def test_a_changed_spec_of_a_kept_step_is_refused_with_its_diff(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """With another document, kept steps must be unchanged; steps that run again may change."""
    async with open_runtime(agents=AGENTS) as runtime:
        source = await run_source(runtime, CHAIN, {"value": "v"})
        changed = document(
            step("a", input="A2"), step("b", "a", input="new"), step("c", "b"), step("side")
        )
        with pytest.raises(ForkRefusedError) as refused:
            await runtime.plan_fork(source, "b", workflow=changed)
        message = str(refused.value)
        assert "the workflow changed for step(s) the fork would keep: a" in message
        assert '-  "input": "a"\n+  "input": "A2"' in message
        downstream_only = document(
            step("a"), step("b", "a", input="new"), step("c", "b"), step("side")
        )
        handle = await runtime.fork(source, "b", workflow=downstream_only)
        result = await handle.wait()
    assert result.steps["b"].output == {"input": "new"}
    assert Counter({"b": 1, "c": 1}) == CALLS


async def test_a_changed_map_is_refused_when_the_fork_keeps_some_of_its_items(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Keeping items of a map keeps outputs of its spec: `m[1]` with `m` changed is refused."""
    workflow = document(step("m", input="${item}", for_each="inputs.docs"))
    changed = document(step("m", input={"new": "${item}"}, for_each="inputs.docs"))
    async with open_runtime(agents=AGENTS) as runtime:
        source = await run_source(runtime, workflow, {"docs": ["x", "y"]})
        with pytest.raises(ForkRefusedError, match="would keep: m;"):
            await runtime.plan_fork(source, "m[1]", workflow=changed)
        prepared = await runtime.plan_fork(source, "m", workflow=changed)
    assert prepared.plan.kept_items == {}


async def test_a_child_execution_is_refused(autojump_clock: trio.testing.MockClock) -> None:
    """A sub-workflow's child execution is forked through its parent."""
    inner = {"schema_version": "1.0", "name": "inner", "steps": [step("inner")]}
    workflow = document({"id": "sub", "workflow": inner})
    async with open_runtime(agents=AGENTS) as runtime:
        source = await run_source(runtime, workflow, {})
        child = replay(await runtime.journal.events(source)).steps["sub"].child
        assert child is not None
        with pytest.raises(ForkRefusedError, match="is a child of execution"):
            await runtime.plan_fork(child, "inner")


async def test_a_redacted_input_must_be_given_again(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The journal keeps `api_key` redacted: the fork asks for it, then runs with it."""
    workflow = document(step("a", input="${inputs.api_key}"), inputs={"type": "object"})
    async with open_runtime(agents=AGENTS) as runtime:
        source = await run_source(runtime, workflow, {"api_key": "s3cret-value"})
        with pytest.raises(InputValidationError, match=r"\$\.inputs\.api_key: .*give it again"):
            await runtime.plan_fork(source, "a")
        handle = await runtime.fork(source, "a", inputs={"api_key": "other-secret"})
        await handle.wait()
        record = await runtime.journal.get_execution(handle.execution_id)
    assert record.inputs == {"api_key": "***"}
    assert Counter({"a": 1}) == CALLS


def test_dotted_overrides_set_nested_inputs_and_never_change_the_record() -> None:
    """`a.b=1` sets a value inside `a`; going through a non-object is a problem at its path."""
    recorded = {"a": {"b": 0, "c": 1}, "n": 2}
    assert fork_inputs(recorded, {"a.b": 5, "new.x": True}) == {
        "a": {"b": 5, "c": 1},
        "n": 2,
        "new": {"x": True},
    }
    assert recorded == {"a": {"b": 0, "c": 1}, "n": 2}
    with pytest.raises(InputValidationError, match=r"\$\.inputs\.n: is not an object"):
        fork_inputs(recorded, {"n.x": 1})


# -- the fork property (Hypothesis) ----------------------------------------------------------


@st.composite
def fork_cases(draw: st.DrawFn) -> tuple[list[list[int]], int, set[int], bool]:
    """A random DAG (edges i<j) of 1-7 steps, a fork point, steps failing in the source, and
    whether the source fails fast."""
    count = draw(st.integers(1, 7))
    edges = [
        sorted(draw(st.sets(st.integers(0, j - 1), max_size=3))) if j else [] for j in range(count)
    ]
    failing = draw(st.sets(st.integers(0, count - 1), max_size=2))
    return edges, draw(st.integers(0, count - 1)), failing, draw(st.booleans())


@settings(max_examples=40, deadline=None)
@given(case=fork_cases())
def test_forks_of_random_dags_keep_upstream_outputs_and_run_downstream_once(
    case: tuple[list[list[int]], int, set[int], bool],
) -> None:
    """Kept steps keep the source's outputs; the rest runs exactly once; nothing else runs.

    Steps in `failing` fail in the source (a `bad` input) and get a good one in the fork: they,
    the steps the source did not finish (failing fast), and their dependents run again, as the
    fork point and its dependents do.
    """
    edges, point, failing, fail_fast = case
    workflow = document(
        *(
            step(f"s{index}", *(f"s{need}" for need in needs), input=f"${{inputs.v{index}}}")
            for index, needs in enumerate(edges)
        ),
        inputs={"type": "object"},
        fail_fast=fail_fast,
    )
    bad = {f"v{index}": "bad" if index in failing else "good" for index in range(len(edges))}
    good = {f"v{index}": "good" for index in failing}

    async def main() -> None:
        async with open_runtime(agents=AGENTS) as runtime:
            source = await run_source(runtime, workflow, bad)
            original = await runtime.result(source)
            handle = await runtime.fork(source, f"s{point}", inputs=good)
            result = await handle.wait()
            events = await runtime.journal.events(handle.execution_id)
        unfinished = {
            index
            for index in range(len(edges))
            if original.steps[f"s{index}"].status is not StepStatus.SUCCEEDED
        }
        assert failing <= unfinished
        rerun = {point} | unfinished
        for index, needs in enumerate(edges):
            if any(need in rerun for need in needs):
                rerun.add(index)
        assert result.status is ExecutionStatus.SUCCEEDED
        assert Counter({f"s{index}": 1 for index in rerun}) == CALLS
        for index in range(len(edges)):
            step_id = f"s{index}"
            assert result.steps[step_id].status is StepStatus.SUCCEEDED
            if index not in rerun:
                assert result.steps[step_id].output == original.steps[step_id].output
        copied = {event.step_id for event in events if "reused_from" in event.data}
        assert copied == {f"s{index}" for index in range(len(edges))} - {
            f"s{index}" for index in rerun
        }

    CALLS.clear()
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


# -- approval gates --------------------------------------------------------------------------


async def test_gates_after_the_fork_point_are_asked_again_with_a_new_deadline(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kept gate keeps its answer; a gate downstream opens anew, its deadline counted again."""
    start = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
    monkeypatch.setattr(
        _gates, "utc_now", lambda: start + datetime.timedelta(seconds=trio.current_time())
    )
    workflow = document(
        {"id": "first", "approval": {"prompt": "start?"}},
        step("draft", "first", input="draft"),
        {"id": "second", "approval": {"prompt": "ship?", "timeout": 100}, "depends_on": ["draft"]},
        step("ship", "second", input="ship"),
    )
    answer = {"approve": True, "input": {}, "reason": None, "by": "ada"}
    async with open_runtime(agents=AGENTS) as runtime:
        source = await runtime.start(workflow)
        for gate_id in ("first", "second"):
            await source.wait_blocked_on_gates()
            assert source.gates is not None
            await source.gates.answer(gate_id, answer)
        await source.wait()
        await trio.sleep(50)
        CALLS.clear()
        fork = await runtime.fork(source.execution_id, "draft")
        await fork.wait_blocked_on_gates()
        assert [gate.gate_id for gate in fork.open_gates()] == ["second"]
        assert fork.gates is not None
        await fork.gates.answer("second", {**answer, "by": "bob"})
        result = await fork.wait()
        source_events = await runtime.journal.events(source.execution_id)
        events = await runtime.journal.events(fork.execution_id)
    assert result.status is ExecutionStatus.SUCCEEDED
    assert Counter({"draft": 1, "ship": 1}) == CALLS
    answers = {
        gate_id: (state.answer or {}).get("by") for gate_id, state in replay(events).gates.items()
    }
    assert answers == {"first": "ada", "second": "bob"}
    opened = [e for e in events if e.type == EventType.GATE_OPENED]
    assert ["reused_from" in e.data for e in opened] == [True, False]
    before = next(
        e for e in source_events if e.type == EventType.GATE_OPENED and e.step_id == "second"
    )
    assert before.data["deadline"] != opened[1].data["deadline"]
    assert opened[1].data["deadline"].startswith("2030-01-01T00:02:30")


GUARDED = document(
    {"id": "a", "agent": "count", "input": "a"},
    {"id": "guard", "agent": "count", "depends_on": ["a"], "when": "inputs.value == 'go'"},
    {"id": "other", "agent": "count", "depends_on": ["a"], "when": "inputs.docs"},
    {"id": "end", "agent": "count", "depends_on": ["guard", "other"], "input": "end"},
)


async def test_a_skipped_step_whose_when_reads_a_changed_input_is_rechecked(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The plan lists a skipped step reading a changed input as re-checked, as the fork runs it."""
    async with open_runtime(agents=AGENTS) as runtime:
        source = await run_source(runtime, GUARDED, {"value": "stop"})
        CALLS.clear()
        prepared = await runtime.plan_fork(source, "end", inputs={"value": "go"})
        handle = await runtime.start_fork(prepared)
        result = await handle.wait()
    assert [(rerun.step_id, rerun.reason) for rerun in prepared.plan.rerun] == [
        ("guard", "re-checked: its when reads inputs"),
        ("end", "the fork point"),
    ]
    assert prepared.plan.kept == ("a", "other")
    assert result.status is ExecutionStatus.SUCCEEDED
    assert Counter({"guard": 1, "end": 1}) == CALLS


async def test_a_skipped_step_is_kept_when_the_inputs_its_when_reads_are_unchanged(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A fork without changed inputs keeps a skipped step skipped: its when decides the same."""
    async with open_runtime(agents=AGENTS) as runtime:
        source = await run_source(runtime, GUARDED, {"value": "stop"})
        prepared = await runtime.plan_fork(source, "end", inputs={"value": "stop"})
    assert prepared.plan.kept == ("a", "guard", "other")
    assert [rerun.step_id for rerun in prepared.plan.rerun] == ["end"]

"""An execution's live state: how outcomes make steps ready, skip them and end the run.

`RunState` is synchronous, so these are plain functions (no trio): they settle outcomes by hand
in the orders a run could produce them.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from orchestr8._execution._results import StepResult
from orchestr8._execution._state import Ending, RunState, StepSlot
from orchestr8._journal._events import StepStatus
from orchestr8._workflow._codec import load_workflow
from orchestr8._workflow._document import Workflow

OK = StepResult(StepStatus.SUCCEEDED, attempts=1, output="done")
BROKE = StepResult(StepStatus.FAILED, attempts=1, error={"type": "Boom", "message": "broke"})


def step(step_id: str, *depends_on: str, **extra: Any) -> dict[str, Any]:
    """A step document running the echo agent after `depends_on`."""
    return {"id": step_id, "agent": "echo", "depends_on": list(depends_on), **extra}


def workflow(*steps: dict[str, Any], **options: Any) -> Workflow:
    """A parallel workflow of these steps; `options` are top-level keys."""
    document = {"schema_version": "1.0", "name": "t", "strategy": "parallel", "steps": list(steps)}
    return load_workflow({**document, **options})


def start_all(state: RunState) -> list[str]:
    """Start every step that may start now, as the engine does; return their ids."""
    started = []
    while (next_step := state.next_step()) is not None:
        state.start(next_step, StepSlot())
        started.append(next_step.id)
    return started


def test_a_run_begins_with_the_steps_that_depend_on_nothing_ready() -> None:
    """Steps without dependencies are ready in document order; the rest wait."""
    state = RunState.begin(workflow(step("a"), step("b", "a"), step("c")), {})
    assert list(state.ready) == ["a", "c"]
    assert state.waiting == {"a": 0, "b": 1, "c": 0}
    assert state.ending is Ending.COMPLETED


def test_a_step_becomes_ready_when_its_last_dependency_succeeds() -> None:
    """`settle` returns a dependent only once all its dependencies finished, and records outputs."""
    state = RunState.begin(workflow(step("a"), step("b"), step("c", "a", "b")), {})
    assert start_all(state) == ["a", "b"]
    assert state.settle("a", OK) == []
    assert state.settle("b", OK) == ["c"]
    assert start_all(state) == ["c"]
    assert state.outputs == {"a": "done", "b": "done"}


def test_settling_a_step_makes_its_step_actor_idle() -> None:
    """The slot that ran a settled step is free for the next one."""
    state = RunState.begin(workflow(step("a")), {})
    slot = StepSlot()
    first = state.next_step()
    assert first is not None
    state.start(first, slot)
    assert state.running == {"a": slot}
    state.settle("a", OK)
    assert state.running == {}
    assert state.idle == [slot]
    assert state.all_settled


def test_an_idle_step_actor_is_taken_once_and_then_none_is_left() -> None:
    """`take_idle` hands out each idle slot once; with none idle the engine spawns one."""
    state = RunState.begin(workflow(step("a")), {})
    slot = StepSlot()
    first = state.next_step()
    assert first is not None
    state.start(first, slot)
    assert state.take_idle() is None
    state.settle("a", OK)
    assert state.take_idle() is slot
    assert state.take_idle() is None


def test_a_run_cut_short_starts_nothing_more_and_keeps_failures() -> None:
    """After `end`, no ready step starts; `record_failure` keeps the error for the span."""
    state = RunState.begin(workflow(step("a"), step("b")), {})
    error = RuntimeError("broken")
    state.record_failure("a", error)
    state.end(Ending.CANCELLED)
    assert state.next_step() is None
    assert state.ending is Ending.CANCELLED
    assert state.failures == {"a": error}


def test_a_failure_skips_every_step_that_depends_on_it_and_says_why() -> None:
    """Transitive dependents are skipped and reported; independent steps go on."""
    state = RunState.begin(
        workflow(step("a"), step("b", "a"), step("c", "b"), step("d"), fail_fast=False), {}
    )
    told: list[tuple[str, str]] = []
    state.on_skipped = lambda step_id, reason: told.append((step_id, reason))
    start_all(state)
    assert state.settle("a", BROKE) == []
    assert sorted(told) == [("b", "a dependency failed: a"), ("c", "a dependency failed: a")]
    assert state.results["b"].status is StepStatus.SKIPPED
    assert state.results["c"].status is StepStatus.SKIPPED
    assert state.ending is Ending.COMPLETED
    state.settle("d", OK)
    assert state.all_settled


def test_a_failure_continued_past_gives_dependents_a_null_output() -> None:
    """With `on_error` continue, a failed step's dependents run and see its output as null."""
    state = RunState.begin(workflow(step("a", on_error="continue"), step("b", "a")), {})
    start_all(state)
    assert state.settle("a", BROKE) == ["b"]
    assert state.outputs == {"a": None}


def test_under_fail_fast_a_failure_ends_the_run_and_nothing_more_starts() -> None:
    """The first failure for good ends the run as failed; ready steps stay unstarted."""
    state = RunState.begin(workflow(step("a"), step("b"), max_concurrency=1), {})
    assert start_all(state) == ["a"]
    state.settle("a", BROKE)
    assert state.ending is Ending.FAILED
    assert state.next_step() is None


def test_a_failure_while_the_run_winds_down_keeps_its_ending() -> None:
    """A step failing during a cancel's wind-down does not turn the cancel into a failure."""
    state = RunState.begin(workflow(step("a")), {})
    start_all(state)
    state.ending = Ending.CANCELLED
    state.settle("a", BROKE)
    assert state.ending is Ending.CANCELLED


def test_no_more_steps_start_than_max_concurrency_allows() -> None:
    """`next_step` gives nothing while `max_concurrency` steps run, and more once one settles."""
    state = RunState.begin(workflow(step("a"), step("b"), step("c"), max_concurrency=2), {})
    assert start_all(state) == ["a", "b"]
    state.settle("b", OK)
    assert start_all(state) == ["c"]


def test_a_resume_starts_from_the_reused_outputs_and_their_usage() -> None:
    """Reused steps count as succeeded with their outputs; only their usage is carried over."""
    state = RunState.begin(
        workflow(step("a"), step("b", "a")),
        {},
        completed={"a": 1},
        usage={"tokens": 5},
        step_usage={"a": {"tokens": 5}, "b": {"tokens": 9}},
    )
    assert state.results["a"] == StepResult(StepStatus.SUCCEEDED, output=1)
    assert list(state.ready) == ["b"]
    assert state.step_usage == {"a": {"tokens": 5}}
    assert state.usage == {"tokens": 5}


def test_usage_adds_up_per_step_and_for_the_execution() -> None:
    """Each report adds to its step's counts and to the execution's totals."""
    state = RunState.begin(workflow(step("a"), step("b")), {})
    state.add_usage("a", {"tokens": 2})
    state.add_usage("a", {"tokens": 3, "calls": 1})
    state.add_usage("b", {"tokens": 1})
    assert state.step_usage == {"a": {"tokens": 5, "calls": 1}, "b": {"tokens": 1}}
    assert state.usage == {"tokens": 6, "calls": 1}


def test_a_step_given_up_on_is_cancelled_and_its_slot_reports_nothing() -> None:
    """`give_up` ends a running step as cancelled with its attempts, and clears its slot's step."""
    state = RunState.begin(workflow(step("a")), {})
    start_all(state)
    slot = state.give_up("a", attempts=2)
    assert slot.step is None
    assert state.running == {}
    assert state.results["a"] == StepResult(StepStatus.CANCELLED, attempts=2)


def test_closing_a_completed_run_skips_the_steps_it_never_reached() -> None:
    """Unstarted steps of a run that completed are skipped (they were unreachable)."""
    state = RunState.begin(workflow(step("a"), step("b", "a")), {})
    start_all(state)
    state.settle("a", OK)
    assert state.close_pending(lambda step_id: None) == [("b", StepStatus.SKIPPED)]
    assert state.results["b"].status is StepStatus.SKIPPED


def test_closing_a_stopped_run_cancels_what_did_not_end_and_keeps_attempts_made() -> None:
    """After a cancel, unstarted steps are cancelled and a cut-short step keeps its attempts."""
    state = RunState.begin(workflow(step("a"), step("b", "a"), step("c")), {})
    start_all(state)
    state.ending = Ending.CANCELLED
    state.settle("a", StepResult(StepStatus.CANCELLED))
    state.settle("c", OK)
    closed = state.close_pending({"a": 3}.get)
    assert closed == [("a", StepStatus.CANCELLED), ("b", StepStatus.CANCELLED)]
    assert state.results["a"] == StepResult(StepStatus.CANCELLED, attempts=3)
    assert state.results["c"] == OK


@st.composite
def random_runs(draw: st.DrawFn) -> tuple[Workflow, set[str], Any]:
    """A random DAG under fail_fast=false, the steps that fail, and where to draw orders from."""
    count = draw(st.integers(min_value=1, max_value=8))
    steps = []
    for index in range(count):
        depends_on = draw(st.sets(st.integers(min_value=0, max_value=index - 1))) if index else ()
        steps.append(step(f"s{index}", *(f"s{other}" for other in sorted(depends_on))))
    limit = draw(st.integers(min_value=0, max_value=3))
    failing = draw(st.sets(st.sampled_from([f"s{index}" for index in range(count)])))
    return workflow(*steps, fail_fast=False, max_concurrency=limit), failing, draw(st.data())


@given(random_runs())
def test_any_settling_order_starts_each_step_once_after_its_dependencies(
    run: tuple[Workflow, set[str], Any],
) -> None:
    """Settling in any order starts every step once, after its dependencies, within the limit,
    and skips exactly the steps that depend (transitively) on a failure."""
    dag, failing, data = run
    state = RunState.begin(dag, {})
    started: list[str] = []
    while True:
        for step_id in start_all(state):
            assert all(
                state.results[dependency].status is StepStatus.SUCCEEDED
                for dependency in dag.dependencies[step_id]
            )
            started.append(step_id)
        assert len(state.running) <= (dag.max_concurrency or len(dag.steps))
        if not state.running:
            break
        settled = data.draw(st.sampled_from(sorted(state.running)))
        state.settle(settled, BROKE if settled in failing else OK)
    downstream_of_failure = set()
    for step_id in dag.order:
        if any(
            dependency in downstream_of_failure or dependency in failing
            for dependency in dag.dependencies[step_id]
        ):
            downstream_of_failure.add(step_id)
    assert sorted(started) == sorted(set(dag.order) - downstream_of_failure)
    assert len(started) == len(set(started))
    assert {
        step_id for step_id, result in state.results.items() if result.status is StepStatus.SKIPPED
    } == downstream_of_failure
    assert state.all_settled
    assert state.ending is Ending.COMPLETED


# -- skips by condition ----------------------------------------------------------------------

SKIPPED = StepResult(StepStatus.SKIPPED)


def conditional(*steps: dict[str, Any], **options: Any) -> Workflow:
    """A parallel schema 1.1 workflow of these steps (conditions need 1.1)."""
    return workflow(*steps, schema_version="1.1", **options)


def reads(step_id: str, *read: str, **extra: Any) -> dict[str, Any]:
    """A step that depends on and reads the output of each step in `read`."""
    return step(step_id, *read, input=[f"${{steps.{other}.output}}" for other in read], **extra)


def test_a_skip_skips_the_steps_that_read_it_and_says_why() -> None:
    """A dependent reading a skipped step is skipped (and so on down); one ordering after runs."""
    state = RunState.begin(
        conditional(
            step("a"),
            reads("b", "a"),
            reads("c", "b"),
            step("d", "a"),
            step("e", "b"),
        ),
        {},
    )
    told: list[tuple[str, str]] = []
    state.on_skipped = lambda step_id, reason: told.append((step_id, reason))
    start_all(state)
    assert state.settle("a", SKIPPED) == ["d", "e"]
    assert told == [
        ("b", "a step it reads was skipped: a"),
        ("c", "a step it reads was skipped: b"),
    ]
    assert state.outputs == {}
    state.settle("d", OK)
    state.settle("e", OK)
    assert state.all_settled


def test_a_step_that_accepts_a_skip_runs_and_reads_null() -> None:
    """With `accept_skipped` the reader becomes ready; the skipped step has no output."""
    state = RunState.begin(conditional(step("a"), reads("b", "a", accept_skipped=True)), {})
    start_all(state)
    assert state.settle("a", SKIPPED) == ["b"]
    assert "a" not in state.outputs


def test_a_reader_of_a_skipped_step_waits_for_its_other_dependencies() -> None:
    """The skip is decided once every dependency finished: a failure among them decides it."""
    state = RunState.begin(
        conditional(step("a"), step("b"), reads("c", "a", "b"), step("d", "c"), fail_fast=False),
        {},
    )
    told: list[tuple[str, str]] = []
    state.on_skipped = lambda step_id, reason: told.append((step_id, reason))
    start_all(state)
    assert state.settle("a", SKIPPED) == []
    assert told == []
    state.settle("b", BROKE)
    assert told == [("c", "a dependency failed: b"), ("d", "a dependency failed: b")]


def test_a_reader_skipped_once_its_last_dependency_succeeds() -> None:
    """A marked reader is skipped when it would have become ready, and its dependents go on."""
    state = RunState.begin(
        conditional(step("a"), step("b"), reads("c", "a", "b"), step("d", "c")), {}
    )
    start_all(state)
    state.settle("a", SKIPPED)
    assert state.settle("b", OK) == ["d"]
    assert state.results["c"] == SKIPPED
    assert state.reads_skipped == {}


@st.composite
def conditional_runs(draw: st.DrawFn) -> tuple[Workflow, set[str], set[str], Any]:
    """A random 1.1 DAG whose edges read or only order, the steps whose `when` is false, the
    steps that fail, and where to draw settling orders from."""
    count = draw(st.integers(min_value=1, max_value=8))
    steps = []
    for index in range(count):
        depends_on = draw(st.sets(st.integers(min_value=0, max_value=index - 1))) if index else ()
        read = draw(st.sets(st.sampled_from(sorted(depends_on)))) if depends_on else set()
        steps.append(
            step(
                f"s{index}",
                *(f"s{other}" for other in sorted(depends_on)),
                input=[f"${{steps.s{other}.output}}" for other in sorted(read)],
                accept_skipped=draw(st.booleans()),
            )
        )
    names = [f"s{index}" for index in range(count)]
    false_when = draw(st.sets(st.sampled_from(names)))
    failing = draw(st.sets(st.sampled_from(names)))
    dag = conditional(*steps, fail_fast=False, max_concurrency=draw(st.integers(0, 3)))
    return dag, false_when, failing, draw(st.data())


def expected_statuses(dag: Workflow, false_when: set[str], failing: set[str]) -> dict[str, str]:
    """What each step ends as, by the rules in docs/workflows.md, walking the graph in order."""
    status: dict[str, str] = {}
    below_failure: set[str] = set()
    for step_id in dag.order:
        read_skipped = any(status[other] == "skipped" for other in dag.reads[step_id])
        blocked = read_skipped and not dag.steps_by_id[step_id].accept_skipped
        if any(dependency in below_failure for dependency in dag.dependencies[step_id]):
            status[step_id] = "skipped"
            below_failure.add(step_id)
        elif blocked or step_id in false_when:
            status[step_id] = "skipped"
        elif step_id in failing:
            status[step_id] = "failed"
            below_failure.add(step_id)
        else:
            status[step_id] = "succeeded"
    return status


@given(conditional_runs())
def test_any_settling_order_skips_exactly_what_reads_a_skip_or_follows_a_failure(
    run: tuple[Workflow, set[str], set[str], Any],
) -> None:
    """Whatever the settling order, a step runs once, after its dependencies, iff its `when`
    held and nothing it reads was skipped (unless it accepts that) or failed upstream."""
    dag, false_when, failing, data = run
    state = RunState.begin(dag, {})
    started: list[str] = []
    while True:
        for step_id in start_all(state):
            assert all(dependency in state.results for dependency in dag.dependencies[step_id])
            started.append(step_id)
        if not state.running:
            break
        settled = data.draw(st.sampled_from(sorted(state.running)))
        # A step whose `when` is false settles as skipped before its agent runs.
        outcome = SKIPPED if settled in false_when else BROKE if settled in failing else OK
        state.settle(settled, outcome)
    expected = expected_statuses(dag, false_when, failing)
    assert len(started) == len(set(started))
    assert {step_id: str(result.status) for step_id, result in state.results.items()} == expected
    assert set(state.outputs) == {
        step_id for step_id, status in expected.items() if status == "succeeded"
    }
    assert state.all_settled

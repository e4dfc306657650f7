"""The engine: scheduling strategies, failure handling, timeouts, cancellation, resilience, events.

Everything with time runs on pytest-trio's `autojump_clock` (a MockClock that jumps ahead whenever
every task sleeps), so virtual times and the journal's `elapsed` values are asserted exactly.
"""

from __future__ import annotations

import math
import signal
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import attrs
import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestr8._agents._contract import Agent, AgentContext
from orchestr8._errors import ExecutionStateError, RetryableError
from orchestr8._execution._engine import SPAWNS_PER_PASS
from orchestr8._execution._results import ExecutionResult
from orchestr8._execution._runtime import open_runtime
from orchestr8._execution._step_run import STEPS_PER_TURN
from orchestr8._execution._wind_down import FORCED_STOP_WAIT
from orchestr8._journal._events import Event, EventType, ExecutionStatus, StepStatus
from orchestr8._journal._journal import open_journal
from orchestr8._journal._replay import replay
from orchestr8._supervision._actor import ActorEvent
from orchestr8._supervision._bus import EventBus
from orchestr8._workflow._codec import load_workflow

NO_RETRY: dict[str, Any] = {"retry": {"max_attempts": 1}, "circuit_breaker": None}
"""A policy without retries or breaker, so failures are immediate and timings exact."""

STEP_ENDINGS = frozenset(
    {
        EventType.STEP_SUCCEEDED,
        EventType.STEP_FAILED,
        EventType.STEP_SKIPPED,
        EventType.STEP_CANCELLED,
    }
)


# -- helpers ---------------------------------------------------------------------------------


def workflow(*steps: dict[str, Any], **options: Any) -> dict[str, Any]:
    """A workflow document with these steps; `options` are top-level keys."""
    document: dict[str, Any] = {"schema_version": "1.0", "name": "test", "steps": list(steps)}
    document.setdefault("defaults", {"policy": NO_RETRY})
    document.update(options)
    return document


def sleep(step_id: str, seconds: float, *depends_on: str, **extra: Any) -> dict[str, Any]:
    """A step that sleeps `seconds` on the trio clock, then returns its input."""
    step = {"id": step_id, "agent": {"id": "sleep", "config": {"seconds": seconds}}, **extra}
    if depends_on:
        step["depends_on"] = list(depends_on)
    return step


def fail(step_id: str, *depends_on: str, **extra: Any) -> dict[str, Any]:
    """A step whose agent always fails."""
    step = {
        "id": step_id,
        "agent": {"id": "fail", "config": {"message": f"{step_id} broke"}},
        **extra,
    }
    if depends_on:
        step["depends_on"] = list(depends_on)
    return step


async def execute(
    document: dict[str, Any], inputs: Mapping[str, Any] | None = None, **runtime: Any
) -> tuple[ExecutionResult, list[Event]]:
    """Run one workflow in a fresh runtime; return its result and its journaled events."""
    async with open_runtime(**runtime) as rt:
        handle = await rt.start(document, inputs)
        result = await handle.wait()
        events = await rt.journal.events(handle.execution_id)
    return result, events


def of_type(events: Iterable[Event], type: str, step_id: str | None = None) -> list[Event]:
    """The events of one type, optionally of one step, in seq order."""
    return [e for e in events if e.type == type and (step_id is None or e.step_id == step_id)]


def one(events: Iterable[Event], type: str, step_id: str | None = None) -> Event:
    """The single event of this type (and step)."""
    found = of_type(events, type, step_id)
    assert len(found) == 1, (type, step_id, found)
    return found[0]


def starts(events: Iterable[Event]) -> dict[str, float]:
    """When each step started (`step.started` elapsed)."""
    return {
        e.step_id: e.elapsed
        for e in events
        if e.type == EventType.STEP_STARTED and e.step_id is not None
    }


def endings(events: Iterable[Event]) -> dict[str, tuple[str, float]]:
    """How and when each step ended (its last ending event)."""
    return {
        e.step_id: (str(e.type), e.elapsed)
        for e in events
        if e.type in STEP_ENDINGS and e.step_id is not None
    }


def peak_concurrency(events: Iterable[Event]) -> int:
    """The most steps running at once, walking the journal in seq order."""
    running: set[str] = set()
    peak = 0
    for event in events:
        if event.type == EventType.STEP_STARTED:
            running.add(event.step_id or "")
            peak = max(peak, len(running))
        elif event.type in STEP_ENDINGS:
            running.discard(event.step_id or "")
    return peak


def assert_replays_to(result: ExecutionResult, events: list[Event]) -> None:
    """The journal folds back into exactly the state the engine returned."""
    state = replay(events)
    assert state.status is result.status
    assert state.output == result.output
    assert state.error == result.error
    assert {k: (s.status, s.attempts, s.output, s.error) for k, s in state.steps.items()} == {
        k: (s.status, s.attempts, s.output, s.error) for k, s in result.steps.items()
    }
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


# -- strategies and concurrency --------------------------------------------------------------


async def test_dag_starts_each_step_as_soon_as_its_own_dependencies_finish(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """`dag` is readiness-driven: c and d follow a at once, never waiting for the slow b."""
    result, events = await execute(
        workflow(
            sleep("a", 1),
            sleep("b", 3),
            sleep("c", 1, "a"),
            sleep("d", 1, "c"),
            sleep("e", 1, "b", "d"),
        )
    )
    assert result.status is ExecutionStatus.SUCCEEDED
    assert starts(events) == {"a": 0.0, "b": 0.0, "c": 1.0, "d": 2.0, "e": 3.0}
    assert one(events, EventType.EXECUTION_SUCCEEDED).elapsed == 4.0
    assert trio.current_time() == 4.0


async def test_sequential_runs_steps_one_after_another_in_document_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """`sequential` makes each step depend on the one before it."""
    result, events = await execute(
        workflow(sleep("a", 2), sleep("b", 1), sleep("c", 3), strategy="sequential")
    )
    assert result.status is ExecutionStatus.SUCCEEDED
    assert starts(events) == {"a": 0.0, "b": 2.0, "c": 3.0}
    assert peak_concurrency(events) == 1
    assert one(events, EventType.EXECUTION_SUCCEEDED).elapsed == 6.0


async def test_parallel_starts_every_step_at_once(autojump_clock: trio.testing.MockClock) -> None:
    """`parallel` adds no implicit dependencies: all steps start at 0 and run side by side."""
    result, events = await execute(
        workflow(sleep("a", 3), sleep("b", 1), sleep("c", 2), strategy="parallel")
    )
    assert result.status is ExecutionStatus.SUCCEEDED
    assert starts(events) == {"a": 0.0, "b": 0.0, "c": 0.0}
    assert peak_concurrency(events) == 3
    assert one(events, EventType.EXECUTION_SUCCEEDED).elapsed == 3.0


async def test_max_concurrency_bounds_running_steps_and_fills_free_slots_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """With `max_concurrency` 2, five 1 s steps run two at a time, a slot refilled immediately."""
    result, events = await execute(
        workflow(*(sleep(f"s{i}", 1) for i in range(5)), strategy="parallel", max_concurrency=2)
    )
    assert result.status is ExecutionStatus.SUCCEEDED
    assert peak_concurrency(events) == 2
    assert sorted(starts(events).values()) == [0.0, 0.0, 1.0, 1.0, 2.0]
    assert one(events, EventType.EXECUTION_SUCCEEDED).elapsed == 3.0


async def test_max_concurrency_one_serialises_a_dag(autojump_clock: trio.testing.MockClock) -> None:
    """`max_concurrency` 1 never overlaps steps, whatever the graph allows."""
    result, events = await execute(
        workflow(sleep("a", 1), sleep("b", 2), sleep("c", 1, "a"), max_concurrency=1)
    )
    assert result.status is ExecutionStatus.SUCCEEDED
    assert peak_concurrency(events) == 1
    assert one(events, EventType.EXECUTION_SUCCEEDED).elapsed == 4.0


async def test_a_chain_of_steps_runs_on_one_step_actor() -> None:
    """Each finished step hands the next to its own step actor: a chain never spawns a second."""
    bus = EventBus()
    async with bus.subscribe() as actor_events:
        result, _ = await execute(
            workflow(
                *({"id": f"s{i}", "agent": "echo", "input": i} for i in range(50)),
                strategy="sequential",
            ),
            bus=bus,
        )
        started = set()
        while True:
            try:
                event = actor_events.receive_nowait()
            except trio.WouldBlock:
                break
            if isinstance(event, ActorEvent) and event.type == "actor.started":
                started.add(event.name)
    assert result.status is ExecutionStatus.SUCCEEDED
    assert started == {"step-actor-0"}


def actors_started(actor_events: trio.MemoryReceiveChannel[Any]) -> set[str]:
    """The names of the actors whose `actor.started` is queued on a bus subscription."""
    started: set[str] = set()
    while True:
        try:
            event = actor_events.receive_nowait()
        except trio.WouldBlock:
            return started
        if isinstance(event, ActorEvent) and event.type == "actor.started":
            started.add(event.name)


async def test_a_wide_fan_out_of_instant_steps_runs_on_a_few_step_actors() -> None:
    """At most `SPAWNS_PER_PASS` actors spawn per pass: 1,000 instant steps need a few dozen."""
    bus = EventBus()
    async with bus.subscribe(buffer=4096) as actor_events:
        result, events = await execute(
            workflow(
                *({"id": f"s{i}", "agent": "echo", "input": i} for i in range(1000)),
                strategy="parallel",
            ),
            bus=bus,
        )
        started = actors_started(actor_events)
    assert result.status is ExecutionStatus.SUCCEEDED
    assert [result.steps[f"s{i}"].output for i in range(1000)] == list(range(1000))
    assert len(of_type(events, EventType.STEP_SUCCEEDED)) == 1000
    assert SPAWNS_PER_PASS <= len(started) <= 8 * SPAWNS_PER_PASS


async def test_a_wide_fan_out_of_waiting_steps_still_runs_every_step_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Bounding spawns per pass never bounds concurrency: 10 passes' worth of steps all overlap."""
    count = 10 * SPAWNS_PER_PASS
    result, events = await execute(
        workflow(*(sleep(f"s{i}", 1) for i in range(count)), strategy="parallel")
    )
    assert result.status is ExecutionStatus.SUCCEEDED
    assert set(starts(events).values()) == {0.0}
    assert peak_concurrency(events) == count
    assert one(events, EventType.EXECUTION_SUCCEEDED).elapsed == 1.0


async def test_a_chain_of_instant_steps_lets_other_tasks_run_every_turn() -> None:
    """A step actor yields after `STEPS_PER_TURN` chained steps: an instant chain starves none."""
    turns = 0
    done = trio.Event()

    async def other_task() -> None:
        nonlocal turns
        while not done.is_set():
            turns += 1
            await trio.lowlevel.checkpoint()

    # Enough steps that the journal's backpressure alone would give far fewer turns.
    steps = 100 * STEPS_PER_TURN
    async with trio.open_nursery() as nursery:
        nursery.start_soon(other_task)
        result, _ = await execute(
            workflow(
                *({"id": f"s{i}", "agent": "echo", "input": i} for i in range(steps)),
                strategy="sequential",
            )
        )
        done.set()
    assert result.status is ExecutionStatus.SUCCEEDED
    assert turns >= steps // STEPS_PER_TURN


# -- failures --------------------------------------------------------------------------------


async def test_fail_fast_cancels_running_steps_at_the_first_failure(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The first failure (t=1) cancels the running step then, skips its dependents, fails it all."""
    result, events = await execute(
        workflow(
            sleep("warmup", 1),
            fail("broken", "warmup"),
            sleep("slow", 10),
            sleep("after_broken", 1, "broken"),
            sleep("after_slow", 1, "slow"),
        )
    )
    assert result.status is ExecutionStatus.FAILED
    assert result.error is not None
    assert result.error["step_id"] == "broken"
    assert result.error["type"] == "RetryableError"
    assert endings(events) == {
        "warmup": ("step.succeeded", 1.0),
        "broken": ("step.failed", 1.0),
        "after_broken": ("step.skipped", 1.0),
        "slow": ("step.cancelled", 1.0),
        "after_slow": ("step.cancelled", 1.0),
    }
    assert "after_slow" not in starts(events)
    assert one(events, EventType.EXECUTION_FAILED).elapsed == 1.0
    assert trio.current_time() == 1.0
    assert_replays_to(result, events)


async def test_fail_fast_skips_the_dependents_of_every_step_that_failed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A second failure met while winding down also skips (not cancels) its dependents."""
    result, events = await execute(
        workflow(
            fail("first"),
            fail("second"),
            sleep("after_first", 1, "first"),
            sleep("after_second", 1, "second"),
        )
    )
    assert result.steps["second"].status is StepStatus.FAILED
    assert result.steps["after_first"].status is StepStatus.SKIPPED
    assert result.steps["after_second"].status is StepStatus.SKIPPED
    assert one(events, EventType.STEP_SKIPPED, "after_second").data["reason"] == (
        "a dependency failed: second"
    )
    assert_replays_to(result, events)


async def test_without_fail_fast_independent_branches_finish_and_dependents_are_skipped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """fail_fast false: the slow branch completes; the failed step's dependents are skipped."""
    result, events = await execute(
        workflow(
            sleep("warmup", 1),
            fail("broken", "warmup"),
            sleep("child", 1, "broken"),
            sleep("grandchild", 1, "child"),
            sleep("slow", 5),
            sleep("after_slow", 1, "slow"),
            fail_fast=False,
        )
    )
    assert result.status is ExecutionStatus.FAILED
    assert result.error is not None
    assert result.error["step_id"] == "broken"
    statuses = {step_id: step.status for step_id, step in result.steps.items()}
    assert statuses == {
        "warmup": StepStatus.SUCCEEDED,
        "broken": StepStatus.FAILED,
        "child": StepStatus.SKIPPED,
        "grandchild": StepStatus.SKIPPED,
        "slow": StepStatus.SUCCEEDED,
        "after_slow": StepStatus.SUCCEEDED,
    }
    assert one(events, EventType.STEP_SKIPPED, "grandchild").data["reason"] == (
        "a dependency failed: broken"
    )
    assert starts(events)["after_slow"] == 5.0
    assert one(events, EventType.EXECUTION_FAILED).elapsed == 6.0
    assert_replays_to(result, events)


async def test_on_error_continue_records_the_failure_and_runs_dependents_with_null(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A `continue` step's failure is recorded, its output is null and its dependents run."""
    result, events = await execute(
        workflow(
            fail("flaky", on_error="continue"),
            {
                "id": "next",
                "agent": "echo",
                "depends_on": ["flaky"],
                "input": {"got": "${steps.flaky.output}"},
            },
        )
    )
    assert result.status is ExecutionStatus.SUCCEEDED
    assert result.steps["flaky"].status is StepStatus.FAILED
    assert result.steps["flaky"].error == {"type": "RetryableError", "message": "flaky broke"}
    assert result.steps["next"].output == {"got": None}
    assert result.output == {"flaky": None, "next": {"got": None}}
    assert one(events, EventType.STEP_FAILED, "flaky").data["error"]["message"] == "flaky broke"
    assert_replays_to(result, events)


async def test_on_error_continue_does_not_trigger_fail_fast(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A `continue` failure leaves its running siblings alone even with fail_fast."""
    result, events = await execute(workflow(fail("flaky", on_error="continue"), sleep("slow", 2)))
    assert result.status is ExecutionStatus.SUCCEEDED
    assert endings(events)["slow"] == ("step.succeeded", 2.0)


async def test_agent_errors_carry_type_and_message_into_the_step_and_execution(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An agent's exception is described as {type, message}, and the execution names the step."""

    async def broken(input: Any) -> Any:
        raise KeyError("missing thing")

    result, events = await execute(
        workflow({"id": "a", "agent": "broken"}), agents={"broken": broken}
    )
    assert result.steps["a"].error == {"type": "KeyError", "message": "'missing thing'"}
    assert result.error == {"type": "KeyError", "message": "'missing thing'", "step_id": "a"}
    assert one(events, EventType.ATTEMPT_FAILED, "a").data["error"]["type"] == "KeyError"


async def test_output_that_is_not_json_fails_the_step_with_a_clear_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A set (or NaN) is not JSON: the step fails with OutputNotSerialisableError."""

    async def returns_set(input: Any) -> Any:
        return {1, 2}

    async def returns_nan(input: Any) -> Any:
        return {"x": math.nan}

    result, events = await execute(
        workflow({"id": "a", "agent": "sets"}, {"id": "b", "agent": "nans"}, fail_fast=False),
        agents={"sets": returns_set, "nans": returns_nan},
    )
    for step_id in ("a", "b"):
        error = result.steps[step_id].error
        assert error is not None
        assert error["type"] == "OutputNotSerialisableError"
        assert "not JSON" in error["message"]
        assert one(events, EventType.STEP_FAILED, step_id).data["error"] == error
    assert "set" in (result.steps["a"].error or {})["message"]
    assert_replays_to(result, events)


async def test_values_an_agent_hands_over_that_json_cannot_hold_fail_the_step_not_the_journal(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A huge int, colliding keys, NaN progress or a huge usage count fail their step only."""

    async def huge(input: Any) -> Any:
        return 10**5000

    async def colliding(input: Any) -> Any:
        return {1: "a", "1": "b"}

    async def nan_progress(input: Any, context: AgentContext) -> Any:
        context.progress({"done": math.nan})
        return "unreachable"

    async def huge_usage(input: Any, context: AgentContext) -> Any:
        context.record_usage(tokens=10**5000)
        return "unreachable"

    agents: dict[str, Callable[..., Awaitable[Any]]] = {
        "huge": huge,
        "colliding": colliding,
        "nan": nan_progress,
        "usage": huge_usage,
    }
    async with open_runtime(agents=agents) as rt:
        handle = await rt.start(
            workflow(
                *({"id": name, "agent": name} for name in agents),
                fail_fast=False,
            )
        )
        result = await handle.wait()
        events = await rt.journal.events(handle.execution_id)
        assert not rt.journal.statistics().failed
    messages = {
        step_id: (step.error or {}).get("message", "") for step_id, step in result.steps.items()
    }
    assert "Exceeds the limit" in messages["huge"]
    assert "two keys are both '1' once written as JSON strings" in messages["colliding"]
    assert messages["nan"].startswith("progress data is not JSON")
    assert messages["usage"] == (
        "usage 'tokens' must be a whole number from 0 to 2**63 - 1, got a larger number"
    )
    assert result.status is ExecutionStatus.FAILED
    assert_replays_to(result, events)


@pytest.mark.parametrize(
    "raised", [SystemExit(3), KeyboardInterrupt(), GeneratorExit(), BaseException("custom")]
)
async def test_an_agent_raising_an_exit_fails_its_step_once_not_the_process(
    autojump_clock: trio.testing.MockClock, raised: BaseException
) -> None:
    """SystemExit and other non-error BaseExceptions fail the step (AgentExitError, no retry)."""
    calls = Counter[str]()

    async def exits(input: Any) -> Any:
        calls["exits"] += 1
        raise raised

    result, events = await execute(
        workflow(
            {"id": "a", "agent": "exits", "policy": {"retry": {"max_attempts": 3}}},
            {"id": "b", "agent": "echo", "depends_on": ["a"]},
        ),
        agents={"exits": exits},
    )
    error = result.steps["a"].error
    assert error is not None
    assert error["type"] == "AgentExitError"
    assert error["message"].startswith(f"the agent raised {type(raised).__name__}")
    assert calls["exits"] == 1
    assert result.steps["b"].status is StepStatus.SKIPPED
    assert_replays_to(result, events)


async def test_an_exit_raised_while_an_agent_is_cancelled_fails_its_step(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """SystemExit beside a Cancelled (an agent's nursery cut by the timeout) fails the step."""

    async def exits_on_cancel(input: Any) -> Any:
        async def child() -> None:
            try:
                await trio.sleep_forever()
            finally:
                raise SystemExit(1)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(child)
            await trio.sleep_forever()

    result, events = await execute(
        workflow(
            {"id": "a", "agent": "exits", "policy": {"timeout": 1}},
            {"id": "b", "agent": "echo", "depends_on": ["a"]},
            fail_fast=False,
        ),
        agents={"exits": exits_on_cancel},
    )
    assert result.steps["a"].status is StepStatus.FAILED
    assert result.steps["a"].error == {
        "type": "ExceptionGroup",
        "message": "Exceptions from Trio nursery (1 sub-exception): AgentExitError: the agent "
        "raised SystemExit, which would end the process; its step fails instead",
    }
    assert result.steps["b"].status is StepStatus.SKIPPED
    assert trio.current_time() == 1.0
    assert_replays_to(result, events)


async def test_a_keyboard_interrupt_from_a_sync_agent_fails_its_step() -> None:
    """A sync function raising KeyboardInterrupt in its worker thread fails its step too.

    On the real clock: a virtual one would jump to the attempt timeout while the thread runs.
    """
    result, events = await execute(
        workflow(
            {
                "id": "a",
                "agent": {"id": "python", "config": {"callable": "agent_fixtures:interrupt"}},
            },
        )
    )
    error = result.steps["a"].error
    assert error is not None
    assert error["type"] == "AgentExitError"
    assert error["message"].startswith("the agent raised KeyboardInterrupt")
    assert result.status is ExecutionStatus.FAILED
    assert_replays_to(result, events)


async def test_a_real_ctrl_c_inside_an_agent_still_interrupts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A SIGINT that trio's handler raises inside an agent goes on out of the runtime."""

    async def interrupted(input: Any) -> Any:
        signal.raise_signal(signal.SIGINT)
        await trio.sleep(1)
        return "not interrupted"

    async def scenario() -> None:
        async with open_runtime(agents={"interrupted": interrupted}) as rt:
            handle = await rt.start(workflow({"id": "a", "agent": "interrupted"}))
            await handle.wait()

    with pytest.raises(BaseException) as caught:  # noqa: PT011 - the leaves are checked below
        await scenario()
    leaves = [caught.value]
    while any(isinstance(leaf, BaseExceptionGroup) for leaf in leaves):
        leaves = [
            inner
            for leaf in leaves
            for inner in (leaf.exceptions if isinstance(leaf, BaseExceptionGroup) else (leaf,))
        ]
    assert {type(leaf) for leaf in leaves} <= {KeyboardInterrupt, ExecutionStateError}
    assert KeyboardInterrupt in {type(leaf) for leaf in leaves}


async def test_json_like_outputs_are_recorded_as_the_journal_replays_them(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A tuple output becomes a list, in the result as in the journal."""

    async def pair(input: Any) -> Any:
        return (1, "two")

    result, events = await execute(workflow({"id": "a", "agent": "pair"}), agents={"pair": pair})
    assert result.steps["a"].output == [1, "two"]
    assert result.output == {"a": [1, "two"]}
    assert_replays_to(result, events)


# -- references and outputs ------------------------------------------------------------------


async def test_references_resolve_from_validated_inputs_with_defaults_and_step_outputs(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Input (with defaults) and step-output references resolve, whole or interpolated."""
    document = workflow(
        {
            "id": "fetch",
            "agent": "echo",
            "input": {"items": ["${inputs.topic}", "${inputs.depth}"], "meta": {"n": 3}},
        },
        {
            "id": "use",
            "agent": "echo",
            "depends_on": ["fetch"],
            "input": {
                "first": "${steps.fetch.output.items[0]}",
                "n": "${steps.fetch.output.meta.n}",
                "text": "topic=${inputs.topic} depth=${inputs.depth}",
            },
        },
        inputs={
            "type": "object",
            "required": ["topic"],
            "properties": {"topic": {"type": "string"}, "depth": {"type": "integer", "default": 2}},
        },
    )
    result, events = await execute(document, {"topic": "trio"})
    assert result.steps["use"].output == {"first": "trio", "n": 3, "text": "topic=trio depth=2"}
    assert one(events, EventType.EXECUTION_STARTED).data["inputs"] == {"topic": "trio", "depth": 2}


async def test_workflow_output_template_is_rendered_from_step_outputs_and_inputs(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The `output` template shapes the execution's output."""
    result, events = await execute(
        workflow(
            {"id": "a", "agent": "echo", "input": {"v": [10, 20]}},
            output={
                "second": "${steps.a.output.v[1]}",
                "label": "v=${steps.a.output.v[0]}",
                "who": "${inputs.who}",
            },
        ),
        {"who": "me"},
    )
    assert result.output == {"second": 20, "label": "v=10", "who": "me"}
    assert one(events, EventType.EXECUTION_SUCCEEDED).data["output"] == result.output


async def test_default_output_holds_every_step_output_by_id(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Without `output`, the execution's output maps each step id to its output."""
    result, _ = await execute(
        workflow(
            {"id": "a", "agent": "echo", "input": 1},
            {"id": "b", "agent": "echo", "input": {"x": "${steps.a.output}"}, "depends_on": ["a"]},
        )
    )
    assert result.output == {"a": 1, "b": {"x": 1}}


async def test_default_output_lists_steps_in_document_order_not_completion_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The default output's keys follow the workflow, whichever step finished first."""
    result, _ = await execute(workflow(sleep("slow", 3), sleep("mid", 2), sleep("fast", 1)))
    assert list(result.output) == ["slow", "mid", "fast"]


async def test_a_reference_without_a_value_at_run_time_fails_its_step(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """`${steps.a.output.missing}` fails the step (started, then failed) without running it."""
    result, events = await execute(
        workflow(
            {"id": "a", "agent": "echo", "input": {"x": 1}},
            {"id": "b", "agent": "echo", "depends_on": ["a"], "input": "${steps.a.output.missing}"},
        )
    )
    assert result.status is ExecutionStatus.FAILED
    assert result.steps["b"].error is not None
    assert result.steps["b"].error["type"] == "ReferenceResolutionError"
    assert [e.type for e in events if e.step_id == "b"] == ["step.started", "step.failed"]
    assert_replays_to(result, events)


async def test_an_output_template_without_a_value_fails_the_execution(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An `output` reference with no value at the end fails the execution, steps succeeded."""
    result, events = await execute(
        workflow({"id": "a", "agent": "echo", "input": {"x": 1}}, output="${steps.a.output.y}")
    )
    assert result.status is ExecutionStatus.FAILED
    assert result.error is not None
    assert result.error["type"] == "ReferenceResolutionError"
    assert result.steps["a"].status is StepStatus.SUCCEEDED
    assert_replays_to(result, events)


# -- execution timeout -----------------------------------------------------------------------


async def test_workflow_timeout_fails_the_execution_and_cancels_running_steps_then(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """`timeout` 2.5: the running step and the one waiting on it are cancelled at exactly 2.5."""
    result, events = await execute(
        workflow(sleep("quick", 1), sleep("slow", 10), sleep("later", 1, "slow"), timeout=2.5)
    )
    assert result.status is ExecutionStatus.FAILED
    assert result.error is not None
    assert result.error["type"] == "ExecutionTimeoutError"
    assert "2.5" in result.error["message"]
    assert endings(events) == {
        "quick": ("step.succeeded", 1.0),
        "slow": ("step.cancelled", 2.5),
        "later": ("step.cancelled", 2.5),
    }
    assert one(events, EventType.EXECUTION_FAILED).elapsed == 2.5
    assert trio.current_time() == 2.5
    assert_replays_to(result, events)


async def test_execution_timeout_argument_overrides_the_workflow_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """`execution_timeout=` wins over the workflow's own `timeout`."""
    async with open_runtime() as rt:
        handle = await rt.start(workflow(sleep("slow", 10), timeout=5), execution_timeout=1.5)
        result = await handle.wait()
        events = await rt.journal.events(handle.execution_id)
    assert result.error is not None
    assert result.error["type"] == "ExecutionTimeoutError"
    assert endings(events)["slow"] == ("step.cancelled", 1.5)
    assert one(events, EventType.EXECUTION_FAILED).elapsed == 1.5


async def test_nothing_starts_once_the_timeout_has_passed_even_in_a_chain(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A step that ends past the timeout does not start its successor on its own step actor."""

    async def overruns(input: Any) -> Any:
        # Time passes without a checkpoint: the scheduler has had no chance to notice.
        autojump_clock.jump(2)
        return "late"

    result, events = await execute(
        workflow(
            {"id": "first", "agent": "overruns"},
            {"id": "next", "agent": "echo", "depends_on": ["first"]},
            timeout=1.0,
        ),
        agents={"overruns": overruns},
    )
    assert result.error is not None
    assert result.error["type"] == "ExecutionTimeoutError"
    assert not of_type(events, EventType.STEP_STARTED, "next")
    assert result.steps["next"].status is StepStatus.CANCELLED
    assert_replays_to(result, events)


async def test_timeout_not_reached_changes_nothing(autojump_clock: trio.testing.MockClock) -> None:
    """An execution that finishes before its timeout succeeds."""
    result, events = await execute(workflow(sleep("a", 1), timeout=1.5))
    assert result.status is ExecutionStatus.SUCCEEDED
    assert one(events, EventType.EXECUTION_SUCCEEDED).elapsed == 1.0


# -- cancellation ----------------------------------------------------------------------------


async def cancel_after(
    document: dict[str, Any],
    at: float,
    *,
    agents: Any = None,
    grace: float = 5.0,
    execution_timeout: float | None = None,
) -> tuple[ExecutionResult, list[Event]]:
    """Start `document`, cancel it at virtual time `at`, and return its result and events."""
    async with open_runtime(agents=agents, cancel_grace=grace) as rt:
        handle = await rt.start(document, execution_timeout=execution_timeout)
        await trio.sleep(at)
        assert handle.cancel("user pressed stop") is True
        result = await handle.wait()
        events = await rt.journal.events(handle.execution_id)
    return result, events


async def test_cooperative_cancel_lets_an_agent_that_waits_for_it_finish(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An agent awaiting `wait_cancel_requested()` wraps up in the grace; its step succeeds."""

    async def polite(input: Any, context: AgentContext) -> Any:
        await context.wait_cancel_requested()
        await trio.sleep(0.5)
        return {"wrapped_up_at": trio.current_time()}

    result, events = await cancel_after(
        workflow({"id": "p", "agent": "polite"}, sleep("next", 1, "p")),
        1.0,
        agents={"polite": polite},
    )
    assert result.status is ExecutionStatus.CANCELLED
    assert result.error == {"type": "Cancelled", "message": "user pressed stop"}
    assert result.steps["p"].status is StepStatus.SUCCEEDED
    assert result.steps["p"].output == {"wrapped_up_at": 1.5}
    assert result.steps["next"].status is StepStatus.CANCELLED
    assert endings(events) == {"p": ("step.succeeded", 1.5), "next": ("step.cancelled", 1.5)}
    cancelled = one(events, EventType.EXECUTION_CANCELLED)
    assert cancelled.elapsed == 1.5
    assert cancelled.data["reason"] == "user pressed stop"
    assert trio.current_time() == 1.5
    assert_replays_to(result, events)


async def test_cooperative_cancel_seen_by_polling_cancel_requested(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An agent polling `context.cancel_requested` returns what it has at the next poll."""

    async def worker(input: Any, context: AgentContext) -> Any:
        done = 0
        while not context.cancel_requested:
            await trio.sleep(0.25)
            done += 1
        return {"done": done}

    result, events = await cancel_after(
        workflow({"id": "w", "agent": "worker"}), 1.1, agents={"worker": worker}
    )
    assert result.status is ExecutionStatus.CANCELLED
    assert result.steps["w"].output == {"done": 5}
    assert endings(events)["w"] == ("step.succeeded", 1.25)
    assert one(events, EventType.EXECUTION_CANCELLED).elapsed == 1.25


async def test_an_agent_that_fails_on_cancel_is_recorded_failed_and_the_run_cancelled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A failure raised in answer to the cancel is recorded; the execution still ends cancelled."""

    async def grumpy(input: Any, context: AgentContext) -> Any:
        await context.wait_cancel_requested()
        raise RuntimeError("interrupted")

    result, events = await cancel_after(
        workflow({"id": "g", "agent": "grumpy"}), 2.0, agents={"grumpy": grumpy}
    )
    assert result.status is ExecutionStatus.CANCELLED
    assert result.steps["g"].status is StepStatus.FAILED
    assert endings(events)["g"] == ("step.failed", 2.0)
    assert one(events, EventType.EXECUTION_CANCELLED).elapsed == 2.0
    assert_replays_to(result, events)


async def test_cancel_is_forced_when_the_grace_runs_out(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """`sleep` ignores the cancel signal: cancelled at 1, forced at exactly 1 + grace (3)."""
    result, events = await cancel_after(
        workflow(sleep("stuck", 100), sleep("other", 100)), 1.0, grace=3.0
    )
    assert result.status is ExecutionStatus.CANCELLED
    assert endings(events) == {"stuck": ("step.cancelled", 4.0), "other": ("step.cancelled", 4.0)}
    assert one(events, EventType.EXECUTION_CANCELLED).elapsed == 4.0
    assert trio.current_time() == 4.0
    assert_replays_to(result, events)


async def test_cancel_with_zero_grace_is_immediate(autojump_clock: trio.testing.MockClock) -> None:
    """With no grace the running steps are cancelled at the moment of the request."""
    result, events = await cancel_after(workflow(sleep("stuck", 100)), 2.0, grace=0.0)
    assert endings(events) == {"stuck": ("step.cancelled", 2.0)}
    assert result.status is ExecutionStatus.CANCELLED


async def test_cancel_before_anything_ran_starts_no_step(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A cancel right after `start` ends the execution at once; no agent runs."""
    async with open_runtime() as rt:
        handle = await rt.start(workflow(sleep("a", 5), sleep("b", 5, "a")))
        assert handle.cancel() is True
        result = await handle.wait()
        events = await rt.journal.events(handle.execution_id)
    assert result.status is ExecutionStatus.CANCELLED
    assert of_type(events, EventType.STEP_STARTED) == []
    assert endings(events) == {"a": ("step.cancelled", 0.0), "b": ("step.cancelled", 0.0)}
    assert trio.current_time() == 0.0
    assert_replays_to(result, events)


async def test_a_cancel_reaches_every_step_of_a_fan_out_wider_than_one_spawn_pass(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Steps started over several spawn passes are all cancelled together, and journaled so."""
    count = 4 * SPAWNS_PER_PASS
    result, events = await cancel_after(
        workflow(*(sleep(f"s{i}", 10) for i in range(count)), strategy="parallel"), 0.5, grace=0
    )
    assert result.status is ExecutionStatus.CANCELLED
    assert set(starts(events).values()) == {0.0}
    assert set(endings(events).values()) == {("step.cancelled", 0.5)}
    assert len(endings(events)) == count
    assert_replays_to(result, events)


async def test_a_failure_stops_the_steps_of_a_wide_fan_out_still_waiting_for_an_actor(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Under fail_fast, ready steps not yet given an actor never start; all end cancelled."""
    count = 4 * SPAWNS_PER_PASS
    result, events = await execute(
        workflow(fail("broken"), *(sleep(f"s{i}", 10) for i in range(count)), strategy="parallel")
    )
    assert result.status is ExecutionStatus.FAILED
    ended = endings(events)
    assert ended.pop("broken") == ("step.failed", 0.0)
    assert set(ended.values()) == {("step.cancelled", 0.0)}
    assert len(ended) == count
    assert len(starts(events)) < count + 1
    assert_replays_to(result, events)


async def test_the_grace_never_outlasts_the_execution_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Cancelled at 1 with a 5 s grace but a 2 s timeout: forced at 2, recorded cancelled."""
    result, events = await cancel_after(
        workflow(sleep("stuck", 100)), 1.0, grace=5.0, execution_timeout=2.0
    )
    assert result.status is ExecutionStatus.CANCELLED
    assert endings(events) == {"stuck": ("step.cancelled", 2.0)}
    assert one(events, EventType.EXECUTION_CANCELLED).elapsed == 2.0


async def test_a_cancel_during_the_first_attempt_starts_no_retry(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A flaky agent cancelled in attempt 1 fails it in the grace: no attempt 2, step cancelled."""
    calls: list[int] = []

    async def flaky(input: Any, context: AgentContext) -> Any:
        calls.append(context.attempt)
        await trio.sleep(2.0)
        raise RuntimeError("flaky")

    retrying = {
        "retry": {"max_attempts": 7, "initial_delay": 0.1, "jitter": "none"},
        "circuit_breaker": None,
    }
    result, events = await cancel_after(
        workflow({"id": "f", "agent": "flaky", "policy": retrying}),
        1.0,
        agents={"flaky": flaky},
        grace=30.0,
    )
    assert calls == [1]
    assert len(of_type(events, EventType.ATTEMPT_STARTED)) == 1
    assert of_type(events, EventType.RETRY_SCHEDULED) == []
    assert result.status is ExecutionStatus.CANCELLED
    assert result.steps["f"].status is StepStatus.CANCELLED
    assert result.steps["f"].attempts == 1
    assert endings(events) == {"f": ("step.cancelled", 2.0)}
    assert one(events, EventType.EXECUTION_CANCELLED).elapsed == 2.0
    assert_replays_to(result, events)


async def test_a_cancel_during_a_backoff_ends_the_step_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Cancelled 1 s into a 10 s backoff: the step is cancelled then, not after the grace."""
    retrying = {
        "retry": {"max_attempts": 3, "initial_delay": 10.0, "jitter": "none"},
        "circuit_breaker": None,
    }
    result, events = await cancel_after(workflow(fail("f", policy=retrying)), 1.0, grace=30.0)
    assert len(of_type(events, EventType.ATTEMPT_STARTED)) == 1
    assert result.steps["f"].status is StepStatus.CANCELLED
    assert endings(events) == {"f": ("step.cancelled", 1.0)}
    assert one(events, EventType.EXECUTION_CANCELLED).elapsed == 1.0
    assert_replays_to(result, events)


async def shielded_run(
    grace: float, *, cancel_at: float | None, workflow_timeout: float | None = None
) -> tuple[ExecutionResult, list[Event], list[Event], float]:
    """Run one agent that shields itself until released after the execution has ended.

    Returns the result, the journal when the result came, the journal once the runtime closed
    (the agent had returned by then) and the trio time of the result.
    """
    release = trio.Event()

    async def stubborn(input: Any, context: AgentContext) -> Any:
        with trio.CancelScope(shield=True):
            await release.wait()
        context.progress({"late": True})
        context.record_usage(tokens=1)
        return "late"

    async with open_journal(None) as journal:
        async with open_runtime(
            journal=journal, agents={"stubborn": stubborn}, cancel_grace=grace
        ) as rt:
            handle = await rt.start(
                workflow({"id": "s", "agent": "stubborn"}, timeout=workflow_timeout)
            )
            if cancel_at is not None:
                await trio.sleep(cancel_at)
                handle.cancel()
            result = await handle.wait()
            ended_at = trio.current_time()
            at_result = await journal.events(handle.execution_id)
            release.set()
        at_close = await journal.events(handle.execution_id)
    return result, at_result, at_close, ended_at


async def test_a_shielded_agent_cannot_hold_a_cancel_past_the_grace(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Cancelled at 1, grace 2: the engine gives up on the step and ends the execution at 3.5."""
    result, at_result, at_close, ended_at = await shielded_run(2.0, cancel_at=1.0)
    given_up = 1.0 + 2.0 + FORCED_STOP_WAIT
    assert ended_at == given_up
    assert result.status is ExecutionStatus.CANCELLED
    assert result.steps["s"].status is StepStatus.CANCELLED
    assert result.steps["s"].attempts == 1
    assert endings(at_result) == {"s": ("step.cancelled", given_up)}
    assert one(at_result, EventType.EXECUTION_CANCELLED).elapsed == given_up
    assert "step s did not stop when cancelled" in caplog.text
    # What the agent did after it was given up on reached no journal: nothing follows the end.
    assert at_close == at_result
    assert_replays_to(result, at_close)


async def test_a_shielded_agent_cannot_hold_a_timed_out_execution(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A workflow timeout of 2 over a shielded agent: the execution fails at 2 + the bound."""
    result, at_result, at_close, ended_at = await shielded_run(
        5.0, cancel_at=None, workflow_timeout=2.0
    )
    assert ended_at == 2.0 + FORCED_STOP_WAIT
    assert result.status is ExecutionStatus.FAILED
    assert result.error is not None
    assert result.error["type"] == "ExecutionTimeoutError"
    assert endings(at_result) == {"s": ("step.cancelled", 2.0 + FORCED_STOP_WAIT)}
    assert at_close == at_result


async def test_cancel_does_not_hang_when_a_step_is_stopped_before_it_got_its_input(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A step forced before it read its input is still accounted for: no hang."""
    async with open_runtime() as rt:
        async with rt.bus.subscribe(buffer=1, lossless=True) as slow_view:

            async def drain_slowly() -> None:
                async for _ in slow_view:
                    await trio.sleep(10)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(drain_slowly)
                await trio.lowlevel.checkpoint()  # the view now waits; it takes the first item
                await rt.bus.publish("taken by the view, which then naps for 10 s")
                await rt.bus.publish("fills the view's buffer")
                handle = await rt.start(workflow(sleep("a", 5)), execution_timeout=1.0)
                with trio.fail_after(60):
                    result = await handle.wait()
                nursery.cancel_scope.cancel()
        events = await rt.journal.events(handle.execution_id)
    assert result.status is ExecutionStatus.FAILED
    assert result.error is not None
    assert result.error["type"] == "ExecutionTimeoutError"
    assert result.steps["a"].status is StepStatus.CANCELLED
    assert starts(events) == {}  # the actor never got to its input: the case under test
    assert endings(events) == {"a": ("step.cancelled", 1.0)}
    assert_replays_to(result, events)


async def test_cancel_after_the_end_or_twice_returns_false(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """`cancel()` is True only for the request that starts the cancellation."""
    async with open_runtime(cancel_grace=0) as rt:
        handle = await rt.start(workflow(sleep("a", 10)))
        await trio.sleep(1)
        assert handle.cancel() is True
        assert handle.cancel() is False
        await handle.wait()
        assert handle.cancel() is False
        finished = await rt.start(workflow(sleep("a", 1)))
        result = await finished.wait()
        assert result.status is ExecutionStatus.SUCCEEDED
        assert finished.cancel() is False


# -- resilience ------------------------------------------------------------------------------


async def test_retries_record_each_attempt_and_the_scheduled_delay(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Two failures then success: attempts at 0, 1 and 3 (delays 1 then 2, no jitter)."""
    policy = {
        "retry": {"max_attempts": 3, "initial_delay": 1.0, "multiplier": 2.0, "jitter": "none"},
        "circuit_breaker": None,
    }
    result, events = await execute(
        workflow(
            {
                "id": "f",
                "agent": {"id": "fail", "config": {"times": 2}},
                "input": "ok",
                "policy": policy,
            },
        )
    )
    assert result.status is ExecutionStatus.SUCCEEDED
    assert result.steps["f"].attempts == 3
    assert result.steps["f"].output == "ok"
    assert [(e.attempt, e.elapsed) for e in of_type(events, EventType.ATTEMPT_STARTED)] == [
        (1, 0.0),
        (2, 1.0),
        (3, 3.0),
    ]
    assert [(e.attempt, e.data) for e in of_type(events, EventType.RETRY_SCHEDULED)] == [
        (1, {"delay": 1.0, "next_attempt": 2}),
        (2, {"delay": 2.0, "next_attempt": 3}),
    ]
    assert len(of_type(events, EventType.ATTEMPT_FAILED)) == 2
    assert one(events, EventType.STEP_SUCCEEDED).elapsed == 3.0
    assert_replays_to(result, events)


async def test_the_last_attempts_error_fails_the_step_after_max_attempts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """`max_attempts` counts calls; no retry is scheduled after the last one."""
    policy = {
        "retry": {"max_attempts": 2, "initial_delay": 0.5, "jitter": "none"},
        "circuit_breaker": None,
    }
    result, events = await execute(workflow(fail("f", policy=policy)))
    assert result.steps["f"].attempts == 2
    assert len(of_type(events, EventType.ATTEMPT_STARTED)) == 2
    assert len(of_type(events, EventType.RETRY_SCHEDULED)) == 1
    assert one(events, EventType.STEP_FAILED).elapsed == 0.5


async def test_attempt_timeout_fails_an_attempt_and_is_retried(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Attempts time out at 2 s each: failed at 2, retried at 3, step failed at 5."""
    policy = {
        "timeout": 2.0,
        "retry": {"max_attempts": 2, "initial_delay": 1.0, "jitter": "none"},
        "circuit_breaker": None,
    }
    result, events = await execute(workflow(sleep("slow", 10, policy=policy)))
    assert result.steps["slow"].error is not None
    assert result.steps["slow"].error["type"] == "AttemptTimeoutError"
    assert [(e.attempt, e.elapsed) for e in of_type(events, EventType.ATTEMPT_FAILED)] == [
        (1, 2.0),
        (2, 5.0),
    ]
    assert [e.elapsed for e in of_type(events, EventType.ATTEMPT_STARTED)] == [0.0, 3.0]
    assert one(events, EventType.STEP_FAILED).elapsed == 5.0


async def test_breaker_opens_and_rejects_across_executions_of_one_runtime(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A breaker opened in one execution rejects the next execution's call."""
    policy = {
        "retry": {"max_attempts": 1},
        "circuit_breaker": {"failure_threshold": 2, "reset_timeout": 30.0},
    }
    async with open_runtime() as rt:
        first = await rt.start(
            workflow(fail("x", policy=policy), fail("y", policy=policy), fail_fast=False)
        )
        await first.wait()
        first_events = await rt.journal.events(first.execution_id)
        second = await rt.start(workflow(fail("z", policy=policy)))
        result = await second.wait()
        second_events = await rt.journal.events(second.execution_id)
    opened = one(first_events, EventType.BREAKER_OPENED)
    assert opened.data["key"] == "fail"
    assert (opened.data["from"], opened.data["to"]) == ("closed", "open")
    assert of_type(second_events, EventType.ATTEMPT_STARTED) == []
    rejected = one(second_events, EventType.BREAKER_REJECTED, "z")
    assert rejected.data["error"]["type"] == "CircuitOpenError"
    assert rejected.data["retry_after"] == 30.0
    assert result.steps["z"].error is not None
    assert result.steps["z"].error["type"] == "CircuitOpenError"


async def test_breaker_half_opens_after_the_reset_timeout_and_closes_on_success(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """After `reset_timeout` the next call is a probe; its success closes the breaker."""
    breaker = {"failure_threshold": 1, "reset_timeout": 10.0, "half_open_requests": 1}
    policy = {"retry": {"max_attempts": 1}, "circuit_breaker": breaker, "key": "svc"}
    async with open_runtime() as rt:
        failing = await rt.start(workflow(fail("x", policy=policy)))
        await failing.wait()
        await trio.sleep(10)
        probe = await rt.start(workflow({"id": "p", "agent": "echo", "input": 1, "policy": policy}))
        result = await probe.wait()
        events = await rt.journal.events(probe.execution_id)
    assert result.status is ExecutionStatus.SUCCEEDED
    transitions = [
        (e.type, e.data["from"], e.data["to"]) for e in events if e.type.startswith("breaker.")
    ]
    assert transitions == [
        ("breaker.half_opened", "open", "half_open"),
        ("breaker.closed", "half_open", "closed"),
    ]
    assert {e.data["key"] for e in events if e.type.startswith("breaker.")} == {"svc"}


async def test_breakers_are_keyed_by_policy_key_across_agents(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Steps sharing a policy `key` share a breaker across agents; other keys do not."""
    breaker = {"failure_threshold": 1, "reset_timeout": 60.0}
    shared = {"retry": {"max_attempts": 1}, "circuit_breaker": breaker, "key": "shared"}
    other = {"retry": {"max_attempts": 1}, "circuit_breaker": breaker, "key": "other"}
    by_agent = {"retry": {"max_attempts": 1}, "circuit_breaker": breaker}
    result, events = await execute(
        workflow(
            fail("first", policy=shared, on_error="continue"),
            {"id": "same_key", "agent": "echo", "depends_on": ["first"], "policy": shared},
            {"id": "other_key", "agent": "echo", "depends_on": ["first"], "policy": other},
            {"id": "agent_key", "agent": "echo", "depends_on": ["first"], "policy": by_agent},
            fail_fast=False,
        )
    )
    assert one(events, EventType.BREAKER_OPENED, "first").data["key"] == "shared"
    assert result.steps["same_key"].status is StepStatus.FAILED
    rejected = one(events, EventType.BREAKER_REJECTED)
    assert rejected.step_id == "same_key"
    assert rejected.data["error"]["type"] == "CircuitOpenError"
    assert result.steps["other_key"].status is StepStatus.SUCCEEDED
    assert result.steps["agent_key"].status is StepStatus.SUCCEEDED


async def broken_service(input: Any) -> Any:
    """A `python` callable whose service is down."""
    raise RetryableError("the service is down")


async def working_service(input: Any) -> Any:
    """A `python` callable whose service works."""
    return input


def python_step(step_id: str, function: str, policy: dict[str, Any], **extra: Any) -> Any:
    """A step calling a function of this module through the `python` agent."""
    agent = {"id": "python", "config": {"callable": f"{__name__}:{function}"}}
    return {"id": step_id, "agent": agent, "policy": policy, **extra}


async def test_python_steps_are_keyed_by_their_callable_not_by_the_agent_id(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A failing callable opens its own breaker only; other callables, or a policy `key`, run."""
    breaker = {"failure_threshold": 1, "reset_timeout": 60.0}
    policy = {"retry": {"max_attempts": 1}, "circuit_breaker": breaker}
    keyed = {**policy, "key": "own"}
    result, events = await execute(
        workflow(
            python_step("broken", "broken_service", policy, on_error="continue"),
            python_step("again", "broken_service", policy, depends_on=["broken"]),
            python_step("other", "working_service", policy, depends_on=["broken"], input=1),
            python_step("keyed", "broken_service", keyed, depends_on=["broken"]),
            fail_fast=False,
        )
    )
    key = f"python:{__name__}:broken_service"
    assert one(events, EventType.BREAKER_OPENED, "broken").data["key"] == key
    assert one(events, EventType.BREAKER_REJECTED).step_id == "again"
    assert result.steps["other"].status is StepStatus.SUCCEEDED
    assert one(events, EventType.ATTEMPT_FAILED, "keyed").data["error"]["type"] == "RetryableError"
    assert one(events, EventType.BREAKER_OPENED, "keyed").data["key"] == "own"


async def test_breaker_state_is_per_runtime(autojump_clock: trio.testing.MockClock) -> None:
    """A new runtime starts with closed breakers."""
    policy = {"retry": {"max_attempts": 1}, "circuit_breaker": {"failure_threshold": 1}}
    await execute(workflow(fail("x", policy=policy)))
    result, events = await execute(workflow(fail("x", policy=policy)))
    assert of_type(events, EventType.BREAKER_REJECTED) == []
    assert len(of_type(events, EventType.ATTEMPT_STARTED)) == 1
    assert result.steps["x"].error is not None
    assert result.steps["x"].error["type"] == "RetryableError"


async def test_bulkhead_rejects_a_call_beyond_its_slots(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Bulkhead of 1 without waiting: the second parallel call is rejected (`attempt.rejected`)."""
    policy = {
        "retry": {"max_attempts": 1},
        "circuit_breaker": None,
        "bulkhead": {"max_concurrent": 1, "max_wait": 0},
    }
    result, events = await execute(
        workflow(sleep("a", 1, policy=policy), sleep("b", 1, policy=policy), fail_fast=False)
    )
    statuses = sorted(step.status for step in result.steps.values())
    assert statuses == [StepStatus.FAILED, StepStatus.SUCCEEDED]
    rejected = one(events, EventType.ATTEMPT_REJECTED)
    assert rejected.data["error"]["type"] == "BulkheadFullError"
    assert rejected.elapsed == 0.0
    assert len(of_type(events, EventType.ATTEMPT_STARTED)) == 1


async def test_bulkhead_with_wait_queues_the_second_call_until_a_slot_frees(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """With `max_wait`, the second call waits for the first to finish and starts at exactly 1."""
    policy = {
        "retry": {"max_attempts": 1},
        "circuit_breaker": None,
        "bulkhead": {"max_concurrent": 1, "max_wait": 5},
    }
    result, events = await execute(
        workflow(sleep("a", 1, policy=policy), sleep("b", 1, policy=policy))
    )
    assert result.status is ExecutionStatus.SUCCEEDED
    assert sorted(e.elapsed for e in of_type(events, EventType.ATTEMPT_STARTED)) == [0.0, 1.0]
    assert one(events, EventType.EXECUTION_SUCCEEDED).elapsed == 2.0


async def test_rate_limit_rejects_calls_beyond_the_burst(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """One token per 2 s, burst 1, no waiting: the second call is rejected with a retry_after."""
    policy = {
        "retry": {"max_attempts": 1},
        "circuit_breaker": None,
        "rate_limit": {"rate": 0.5, "burst": 1, "max_wait": 0},
    }
    result, events = await execute(
        workflow(
            {"id": "a", "agent": "echo", "policy": policy},
            {"id": "b", "agent": "echo", "policy": policy},
            fail_fast=False,
        )
    )
    rejected = one(events, EventType.ATTEMPT_REJECTED)
    assert rejected.data["error"]["type"] == "RateLimitedError"
    assert rejected.data["retry_after"] == 2.0
    assert sorted(step.status for step in result.steps.values()) == [
        StepStatus.FAILED,
        StepStatus.SUCCEEDED,
    ]


# -- events ----------------------------------------------------------------------------------


async def test_events_are_gap_free_and_timed_on_the_trio_clock(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Seq runs 1..n without gaps; `elapsed` never decreases and matches the virtual clock."""
    result, events = await execute(workflow(sleep("a", 0.5), sleep("b", 2, "a"), sleep("c", 1)))
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert all(e.execution_id == result.execution_id for e in events)
    elapsed = [e.elapsed for e in events]
    assert elapsed == sorted(elapsed)
    assert (elapsed[0], elapsed[-1]) == (0.0, 2.5)
    assert events[0].type == EventType.EXECUTION_STARTED
    assert events[-1].type == EventType.EXECUTION_SUCCEEDED
    assert all(e.ts.endswith("Z") for e in events)


async def test_the_bus_sees_the_journals_events_in_the_same_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A bus subscriber receives the execution's events exactly as the journal holds them."""
    async with open_runtime() as rt:
        async with rt.bus.subscribe(buffer=1000) as view:
            handle = await rt.start(workflow(sleep("a", 1), fail("b", "a"), fail_fast=False))
            await handle.wait()
            seen: list[Event] = []
            while True:
                try:
                    item = view.receive_nowait()
                except trio.WouldBlock:
                    break
                if isinstance(item, Event):
                    seen.append(item)
        assert seen == await rt.journal.events(handle.execution_id)


async def test_progress_from_an_agent_is_journaled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """`context.progress(...)` becomes a `step.progress` event of the step and attempt."""

    async def chatty(input: Any, context: AgentContext) -> Any:
        context.progress({"percent": 50})
        await trio.sleep(1)
        context.progress({"percent": 100})
        return "done"

    result, events = await execute(
        workflow({"id": "c", "agent": "chatty"}), agents={"chatty": chatty}
    )
    progress = of_type(events, EventType.STEP_PROGRESS, "c")
    assert [(e.attempt, e.elapsed, e.data) for e in progress] == [
        (1, 0.0, {"percent": 50}),
        (1, 1.0, {"percent": 100}),
    ]
    assert_replays_to(result, events)


async def test_the_journal_replays_to_the_returned_result_for_every_kind_of_ending(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Succeeded, failed, timed out and cancelled executions all replay to their results."""
    documents = [
        workflow(
            sleep("a", 1),
            {"id": "b", "agent": "echo", "input": "${steps.a.output}", "depends_on": ["a"]},
        ),
        workflow(sleep("a", 1), fail("b"), sleep("c", 1, "b"), fail_fast=False),
        workflow(sleep("a", 5), timeout=1),
    ]
    for document in documents:
        result, events = await execute(document)
        assert_replays_to(result, events)
    result, events = await cancel_after(workflow(sleep("a", 5), sleep("b", 1, "a")), 1, grace=1)
    assert_replays_to(result, events)


async def test_the_runtime_result_read_from_the_journal_equals_the_handles(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Right after `wait()`, `runtime.result(id)` (journal) agrees with the returned result."""
    async with open_runtime() as rt:
        handle = await rt.start(workflow(sleep("a", 1), fail("b", "a"), fail_fast=False))
        result = await handle.wait()
        from_journal = await rt.result(handle.execution_id)
    assert from_journal.status is result.status
    assert from_journal.error == result.error
    assert {k: v.status for k, v in from_journal.steps.items()} == {
        k: v.status for k, v in result.steps.items()
    }


async def test_emitter_backpressure_keeps_the_journal_gap_free(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A one-slot journal queue still gets every event of many busy steps once, in order."""
    policy = {
        "retry": {"max_attempts": 3, "initial_delay": 1.0, "jitter": "none"},
        "circuit_breaker": None,
    }
    async with open_journal(None, queue_size=1) as journal:
        result, events = await execute(
            workflow(*(fail(f"s{i}", policy=policy) for i in range(12)), fail_fast=False),
            journal=journal,
        )
        assert not journal.statistics().failed
    assert len(of_type(events, EventType.ATTEMPT_STARTED)) == 36
    assert_replays_to(result, events)


# -- scheduler properties (Hypothesis) -------------------------------------------------------


@st.composite
def scheduling_cases(draw: st.DrawFn) -> dict[str, Any]:
    """A random DAG (edges i<j) of 1-8 steps with a random strategy, limit and failure set."""
    count = draw(st.integers(1, 8))
    edges = [
        sorted(draw(st.sets(st.integers(0, j - 1), max_size=3))) if j else [] for j in range(count)
    ]
    # Per-step draws (a third fail, a quarter continue) make several failures at once common.
    failing = {i for i in range(count) if draw(st.sampled_from([False, False, True]))}
    continuing = {i for i in range(count) if draw(st.sampled_from([False, False, False, True]))}
    return {
        "count": count,
        "edges": edges,
        "strategy": draw(st.sampled_from(["dag", "dag", "sequential", "parallel"])),
        "max_concurrency": draw(st.sampled_from([0, 0, 1, 2, 3])),
        "failing": failing,
        "continuing": continuing,
        "fail_fast": draw(st.booleans()),
        "max_attempts": draw(st.integers(1, 2)),
    }


def build_case(case: dict[str, Any]) -> dict[str, Any]:
    """The workflow of a case: 1 s sleeps, `fail` steps that fail every attempt (1 s backoff)."""
    steps = []
    for index in range(case["count"]):
        step_id = f"s{index}"
        step = fail(step_id) if index in case["failing"] else sleep(step_id, 1)
        if case["edges"][index]:
            step["depends_on"] = [f"s{d}" for d in case["edges"][index]]
        if index in case["continuing"]:
            step["on_error"] = "continue"
        steps.append(step)
    policy = {
        "retry": {"max_attempts": case["max_attempts"], "initial_delay": 1.0, "jitter": "none"},
        "circuit_breaker": None,
    }
    return workflow(
        *steps,
        strategy=case["strategy"],
        max_concurrency=case["max_concurrency"],
        fail_fast=case["fail_fast"],
        defaults={"policy": policy},
    )


def check_schedule(case: dict[str, Any], result: ExecutionResult, events: list[Event]) -> None:
    """Every scheduling property of one run, derived from its journal."""
    document = build_case(case)
    dependencies = load_workflow(document).dependencies
    continuing = {f"s{i}" for i in case["continuing"]}
    limit = case["max_concurrency"]
    started = starts(events)
    ended = endings(events)
    step_seq = {e.step_id: e.seq for e in events if e.type == EventType.STEP_STARTED}
    end_seq = {e.step_id: e.seq for e in events if e.type in STEP_ENDINGS}

    # Each step runs at most once, with at most max_attempts attempts, and ends exactly once.
    assert all(
        n == 1 for n in Counter(e.step_id for e in of_type(events, EventType.STEP_STARTED)).values()
    )
    attempts = Counter(e.step_id for e in of_type(events, EventType.ATTEMPT_STARTED))
    assert all(n <= case["max_attempts"] for n in attempts.values())
    assert Counter(e.step_id for e in events if e.type in STEP_ENDINGS) == Counter(
        dependencies.keys()
    )

    # A step starts only after each dependency finished and succeeded (or failed with continue).
    for step_id in started:
        for dependency in dependencies[step_id]:
            assert end_seq[dependency] < step_seq[step_id]
            status = result.steps[dependency].status
            assert status is StepStatus.SUCCEEDED or (
                status is StepStatus.FAILED and dependency in continuing
            )

    # Never more than max_concurrency steps at once.
    if limit:
        assert peak_concurrency(events) <= limit

    # Dependents (transitive) of a step that failed for good are skipped.
    def dependents_of(step_id: str) -> set[str]:
        found: set[str] = set()
        stack = [s for s, deps in dependencies.items() if step_id in deps]
        while stack:
            current = stack.pop()
            if current not in found:
                found.add(current)
                stack.extend(s for s, deps in dependencies.items() if current in deps)
        return found

    hard_failures = [
        s for s, r in result.steps.items() if r.status is StepStatus.FAILED and s not in continuing
    ]
    for failed in hard_failures:
        for dependent in dependents_of(failed):
            assert result.steps[dependent].status is StepStatus.SKIPPED, (failed, dependent)

    # The execution fails exactly when a step failed for good.
    expected = ExecutionStatus.FAILED if hard_failures else ExecutionStatus.SUCCEEDED
    assert result.status is expected
    if not case["fail_fast"] or not hard_failures:
        # Nothing is cut short: every step either ran to its end or was skipped for a failure.
        assert all(r.status is not StepStatus.CANCELLED for r in result.steps.values())
    else:
        # Fail fast: nothing starts after the first hard failure; the running steps end then.
        first = min(ended[s][1] for s in hard_failures)
        assert all(t <= first for t in started.values())
        for kind, at in ended.values():
            if kind == "step.cancelled":
                assert at == first

    # A ready step never waits: unbounded, it starts exactly when its last dependency finished.
    for step_id, at in started.items():
        ready = max((ended[d][1] for d in dependencies[step_id]), default=0.0)
        if not limit:
            assert at == ready, (step_id, at, ready)
        else:
            # It waited only while every slot was taken, at each moment it could have started
            # (the running set only changes at event times).
            assert at >= ready
            moments = {ready} | {e.elapsed for e in events if ready <= e.elapsed < at}
            for moment in sorted(moments - {at}):
                running = {s for s, t in started.items() if t <= moment < ended[s][1]}
                assert len(running) == limit, (step_id, moment, running)

    # The journal replays to the returned result.
    assert_replays_to(result, events)


@settings(max_examples=400)
@given(case=scheduling_cases())
def test_scheduler_properties_on_random_dags(case: dict[str, Any]) -> None:
    """Random DAGs, strategies, limits and failures keep every scheduling property."""

    async def main() -> tuple[ExecutionResult, list[Event]]:
        return await execute(build_case(case))

    result, events = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    check_schedule(case, result, events)


@st.composite
def wide_scheduling_cases(draw: st.DrawFn) -> dict[str, Any]:
    """A fan-out wider than several spawn passes, a few dependencies, failures and limits."""
    count = draw(st.integers(SPAWNS_PER_PASS, 3 * SPAWNS_PER_PASS + 5))
    edges = [
        sorted(draw(st.sets(st.integers(0, j - 1), max_size=1))) if j and j % 7 == 0 else []
        for j in range(count)
    ]
    failing = set(draw(st.sets(st.integers(0, count - 1), max_size=3)))
    return {
        "count": count,
        "edges": edges,
        "strategy": draw(st.sampled_from(["dag", "parallel"])),
        "max_concurrency": draw(st.sampled_from([0, 0, 0, 5, SPAWNS_PER_PASS + 3])),
        "failing": failing,
        "continuing": set(draw(st.sets(st.sampled_from(sorted(failing) or [0]), max_size=2))),
        "fail_fast": draw(st.booleans()),
        "max_attempts": 1,
    }


@settings(max_examples=40, deadline=None)
@given(case=wide_scheduling_cases())
def test_scheduler_properties_hold_on_fan_outs_wider_than_a_spawn_pass(
    case: dict[str, Any],
) -> None:
    """Bounding spawns per pass keeps every scheduling property on fan-outs of 32-101 steps."""

    async def main() -> tuple[ExecutionResult, list[Event]]:
        return await execute(build_case(case))

    result, events = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    check_schedule(case, result, events)


def test_property_checks_can_fail() -> None:
    """The property checker rejects a journal where a step started before its dependency ended."""
    case = {
        "count": 2,
        "edges": [[], [0]],
        "strategy": "dag",
        "max_concurrency": 0,
        "failing": set(),
        "continuing": set(),
        "fail_fast": True,
        "max_attempts": 1,
    }

    async def main() -> tuple[ExecutionResult, list[Event]]:
        return await execute(build_case(case))

    result, events = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    check_schedule(case, result, events)
    # Pretend s1 started late, at 1.5 instead of 1: the "never left waiting" check must trip.
    tampered = [
        attrs.evolve(e, elapsed=1.5)
        if e.type == EventType.STEP_STARTED and e.step_id == "s1"
        else e
        for e in events
    ]
    with pytest.raises(AssertionError):
        check_schedule(case, result, tampered)


class _Metered(Agent):
    """Records token usage the way the LLM agent does, then echoes its input."""

    async def run(self, input: Any, context: AgentContext) -> Any:
        context.record_usage(input_tokens=10, output_tokens=3)
        if input == "twice":
            context.record_usage(input_tokens=1, output_tokens=1)
        return input


async def test_recorded_usage_is_journaled_and_totalled() -> None:
    """Usage an agent records becomes `step.usage` events and step and execution totals."""
    workflow = {
        "schema_version": "1.0",
        "name": "metered",
        "steps": [
            {"id": "a", "agent": "metered", "input": "once"},
            {"id": "b", "agent": "metered", "input": "twice"},
        ],
    }
    async with open_runtime(agents={"metered": _Metered}) as runtime:
        handle = await runtime.start(workflow)
        result = await handle.wait()
        events = await runtime.journal.events(handle.execution_id)
        replayed = await runtime.result(handle.execution_id)
    assert result.usage == {"input_tokens": 21, "output_tokens": 7}
    assert result.steps["a"].usage == {"input_tokens": 10, "output_tokens": 3}
    assert result.steps["b"].usage == {"input_tokens": 11, "output_tokens": 4}
    usage_events = [e for e in events if e.type == "step.usage"]
    assert [(e.step_id, e.attempt, e.data) for e in usage_events if e.step_id == "a"] == [
        ("a", 1, {"input_tokens": 10, "output_tokens": 3})
    ]
    assert events[-1].data["usage"] == {"input_tokens": 21, "output_tokens": 7}
    assert replayed.usage == result.usage
    assert replayed.steps["b"].usage == result.steps["b"].usage


class _DeadlineReporter(Agent):
    """Returns the deadline its context carries, relative to the start of the attempt."""

    async def run(self, input: Any, context: AgentContext) -> Any:
        return context.deadline - trio.current_time()


async def test_agents_see_their_attempt_deadline(autojump_clock: trio.testing.MockClock) -> None:
    """`context.deadline` is the attempt's deadline: the policy timeout from the attempt start."""
    workflow = {
        "schema_version": "1.0",
        "name": "deadline",
        "steps": [{"id": "a", "agent": "deadline", "policy": {"timeout": 7.5}}],
    }
    async with open_runtime(agents={"deadline": _DeadlineReporter}) as runtime:
        result = await (await runtime.start(workflow)).wait()
    assert result.steps["a"].output == pytest.approx(7.5)

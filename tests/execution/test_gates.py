"""`_gates`: approval gates open, wait, resolve exactly once, suspend and re-open across restarts.

Time runs on pytest-trio's `autojump_clock`; the wall clock that deadlines are written in is made
to follow it (`follow_trio_clock`), so deadlines and timeouts are asserted exactly.
"""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import attrs
import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestr8._agents._contract import AgentContext
from orchestr8._errors import (
    GateAlreadyAnsweredError,
    GateAnswerInvalidError,
    GateNotFoundError,
)
from orchestr8._execution import _gates
from orchestr8._execution._gates import gate_step_id, has_gates
from orchestr8._execution._handle import ExecutionHandle
from orchestr8._execution._runtime import Runtime, open_runtime
from orchestr8._journal import _requests
from orchestr8._journal._events import Event, EventType, ExecutionStatus, StepStatus, utc_timestamp
from orchestr8._journal._journal import Journal, open_journal
from orchestr8._journal._replay import replay
from orchestr8._journal._requests import RequestKind
from orchestr8._workflow._codec import load_workflow

NO_RETRY: dict[str, Any] = {"retry": {"max_attempts": 1}, "circuit_breaker": None}

CALLS: list[str] = []
"""The units the agents below ran, in order (reset for every test)."""


@pytest.fixture(autouse=True)
def reset_calls() -> Iterator[None]:
    """Each test counts its own calls."""
    CALLS.clear()
    yield
    CALLS.clear()


@pytest.fixture(autouse=True)
def follow_trio_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The gates' wall clock moves with trio's (virtual) clock, from a fixed moment."""
    start = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)

    def now() -> datetime.datetime:
        return start + datetime.timedelta(seconds=trio.current_time())

    monkeypatch.setattr(_gates, "utc_now", now)


async def work(input: Any, context: AgentContext) -> Any:
    """Sleep `input.delay` seconds (default none), then return the input."""
    CALLS.append(context.step_id)
    delay = input.get("delay", 0) if isinstance(input, dict) else 0
    await trio.sleep(delay)
    return input


AGENTS = {"work": work}


def document(*steps: dict[str, Any], **options: Any) -> dict[str, Any]:
    """A "1.1" workflow with these steps, no retries."""
    return {
        "schema_version": "1.1",
        "name": "gates",
        "steps": list(steps),
        "defaults": {"policy": NO_RETRY},
        **options,
    }


def gate(step_id: str = "g", **approval: Any) -> dict[str, Any]:
    """An approval step `step_id` asking a fixed question, with these approval fields."""
    more: dict[str, Any] = {
        key: approval.pop(key)
        for key in ("depends_on", "for_each", "repeat", "when")
        if key in approval
    }
    return {"id": step_id, "approval": {"prompt": "ok?", **approval}, **more}


APPROVE: dict[str, Any] = {"approve": True, "input": {}, "by": "tester"}


@asynccontextmanager
async def runtime_on(journal: Journal) -> AsyncIterator[Runtime]:
    """A runtime with the test agents on `journal`."""
    async with open_runtime(journal=journal, agents=AGENTS) as runtime:
        yield runtime


def of_type(events: list[Event], type: str, step_id: str | None = None) -> list[Event]:
    """The events of `type` (for `step_id`, when given)."""
    return [e for e in events if e.type == type and (step_id is None or e.step_id == step_id)]


def test_gate_ids_name_their_step() -> None:
    """ID, ID[i] and ID#k belong to step ID; a workflow has gates when a step is an approval."""
    assert [gate_step_id(unit) for unit in ("g", "g[3]", "g#2", "a#b")] == ["g", "g", "g", "a#b"]
    assert has_gates(load_workflow(document(gate())))
    assert not has_gates(load_workflow(document({"id": "a", "agent": "work"})))


async def test_a_gate_opens_the_dag_goes_on_and_its_dependents_wait_for_the_answer(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """gate.opened, then other branches run; the answer resolves it and its dependent runs."""
    steps = (
        {"id": "draft", "agent": "work", "input": {"text": "v1"}},
        gate(prompt="Ship ${steps.draft.output.text}?", depends_on=["draft"]),
        {"id": "side", "agent": "work", "input": {"delay": 5}},
        {"id": "ship", "agent": "work", "depends_on": ["g"], "input": "${steps.g.output}"},
    )
    async with open_journal(None) as journal, runtime_on(journal) as runtime:
        handle = await runtime.start(document(*steps))
        await handle.wait_blocked_on_gates()
        assert trio.current_time() == pytest.approx(5.0)
        assert sorted(CALLS) == ["draft", "side"]
        (state,) = handle.open_gates()
        assert (state.gate_id, state.status, state.prompt) == ("g", "open", "Ship v1?")
        assert handle.gates is not None
        resolved = await handle.gates.answer(
            "g", {"approve": True, "input": {"n": 1}, "reason": "fine", "by": "ada"}
        )
        assert resolved is not None
        assert resolved.status == "approved"
        result = await handle.wait()
        events = await journal.events(handle.execution_id)
        (request,) = await journal.requests(handle.execution_id)
    assert request.outcome == "applied"
    assert result.status is ExecutionStatus.SUCCEEDED
    output = {"approved": True, "input": {"n": 1}, "by": "ada", "reason": "fine"}
    assert result.steps["g"].output == output
    assert result.steps["ship"].output == output
    types = [e.type for e in events if e.step_id == "g"]
    assert types == ["step.started", "gate.opened", "gate.resolved", "step.succeeded"]
    opened = of_type(events, EventType.GATE_OPENED, "g")[0].data
    assert opened["prompt"] == "Ship v1?"
    assert opened["deadline"] is None
    assert of_type(events, EventType.GATE_RESOLVED)[0].data["how"] == "answer"
    assert replay(events).gates["g"].status == "approved"


async def test_a_rejected_gate_succeeds_and_a_when_skips_what_follows(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """approved false is an output: the gate succeeds, `when: steps.g.output.approved` skips."""
    steps = (
        gate(),
        {"id": "ship", "agent": "work", "depends_on": ["g"], "when": "steps.g.output.approved"},
    )
    async with open_journal(None) as journal, runtime_on(journal) as runtime:
        handle = await runtime.start(document(*steps))
        await handle.wait_blocked_on_gates()
        assert handle.gates is not None
        await handle.gates.answer("g", {"approve": False, "reason": "no", "by": "bob"})
        result = await handle.wait()
    assert result.status is ExecutionStatus.SUCCEEDED
    assert result.steps["g"].output == {"approved": False, "input": {}, "by": "bob", "reason": "no"}
    assert result.steps["ship"].status is StepStatus.SKIPPED


@pytest.mark.parametrize(("on_timeout", "approved"), [("reject", False), ("approve", True)])
async def test_a_deadline_resolves_the_gate_as_on_timeout_says(
    autojump_clock: trio.testing.MockClock, on_timeout: str, approved: bool
) -> None:
    """After `timeout` seconds (trio's clock) the gate resolves by timeout, approved or not."""
    async with open_journal(None) as journal, runtime_on(journal) as runtime:
        handle = await runtime.start(document(gate(timeout=30, on_timeout=on_timeout)))
        result = await handle.wait()
        events = await journal.events(handle.execution_id)
    assert trio.current_time() == pytest.approx(30.0)
    assert result.steps["g"].output == {
        "approved": approved,
        "input": {},
        "by": "timeout",
        "reason": "timed out after 30 s",
    }
    (resolved,) = of_type(events, EventType.GATE_RESOLVED)
    assert resolved.data["how"] == "timeout"
    assert resolved.data["request_id"] is None
    opened = of_type(events, EventType.GATE_OPENED)[0].data
    assert opened["deadline"] == "2030-01-01T00:00:30.000Z"


async def test_on_timeout_fail_fails_the_step_once_without_retries(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """on_timeout fail: GateTimedOutError, no attempts, the execution fails."""
    async with open_journal(None) as journal, runtime_on(journal) as runtime:
        handle = await runtime.start(
            document(
                gate(timeout=2, on_timeout="fail"),
                defaults={"policy": {"retry": {"max_attempts": 3}}},
            )
        )
        result = await handle.wait()
        events = await journal.events(handle.execution_id)
    assert result.status is ExecutionStatus.FAILED
    assert result.steps["g"].error is not None
    assert result.steps["g"].error["type"] == "GateTimedOutError"
    assert len(of_type(events, EventType.STEP_STARTED, "g")) == 1
    assert not of_type(events, EventType.ATTEMPT_STARTED)


async def test_an_early_answer_is_held_and_applied_when_the_gate_opens(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An answer for a gate whose dependency still runs waits for it, then resolves it at once."""
    steps = ({"id": "slow", "agent": "work", "input": {"delay": 10}}, gate(depends_on=["slow"]))
    async with open_journal(None) as journal, runtime_on(journal) as runtime:
        handle = await runtime.start(document(*steps))
        await trio.sleep(1)
        assert handle.gates is not None
        assert await handle.gates.answer("g", APPROVE) is None
        result = await handle.wait()
    assert trio.current_time() == pytest.approx(10.0)
    assert result.steps["g"].output is not None
    assert result.steps["g"].output["approved"] is True


async def test_answers_to_unknown_resolved_or_invalid_gates_are_refused(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """No such gate, already resolved, or not matching the schema: refused, nothing recorded."""
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    steps = (
        gate(schema=schema),
        {"id": "after", "agent": "work", "depends_on": ["g"], "input": {"delay": 5}},
    )
    async with open_journal(None) as journal, runtime_on(journal) as runtime:
        handle = await runtime.start(document(*steps))
        await handle.wait_blocked_on_gates()
        board = handle.gates
        assert board is not None
        with pytest.raises(GateNotFoundError):
            await board.answer("nope", APPROVE)
        with pytest.raises(GateNotFoundError):
            await board.answer("g[0]", APPROVE)
        with pytest.raises(GateNotFoundError):
            await board.answer("g#1", APPROVE)
        with pytest.raises(GateAnswerInvalidError) as invalid:
            await board.answer("g", {"approve": True, "input": {"n": "x"}})
        assert [problem.path for problem in invalid.value.problems] == ["$.input.n"]
        assert handle.open_gates()[0].status == "open"
        await board.answer("g", {"approve": True, "input": {"n": 2}})
        with pytest.raises(GateAlreadyAnsweredError):
            await board.answer("g", APPROVE)
        await handle.wait()
        requests = await journal.requests(handle.execution_id)
    assert [request.outcome for request in requests] == ["applied"]


async def test_a_request_delivered_for_a_resolved_gate_is_refused_with_the_reason(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A journaled answer that arrives after the timeout is settled refused, saying so."""
    steps = (
        gate(timeout=1),
        {"id": "after", "agent": "work", "depends_on": ["g"], "input": {"delay": 5}},
    )
    async with open_journal(None) as journal, runtime_on(journal) as runtime:
        handle = await runtime.start(document(*steps))
        await trio.sleep(2)
        request = await journal.submit_request(
            handle.execution_id, RequestKind.ANSWER, APPROVE, target="g"
        )
        assert handle.gates is not None
        await handle.gates.deliver(request)
        await handle.gates.deliver(request)
        await handle.wait()
        (settled,) = await journal.requests(handle.execution_id)
    assert settled.outcome == "refused"
    assert settled.detail == "gate 'g' was timed out already"


async def test_each_map_item_has_its_own_gate(autojump_clock: trio.testing.MockClock) -> None:
    """g[0], g[1], g[2]: answered out of order, each output is its own answer."""
    steps = (gate(prompt="item ${item}", for_each="['a', 'b', 'c']"),)
    async with open_journal(None) as journal, runtime_on(journal) as runtime:
        handle = await runtime.start(document(*steps))
        await handle.wait_blocked_on_gates()
        opened = sorted((state.gate_id, state.prompt) for state in handle.open_gates())
        assert opened == [("g[0]", "item a"), ("g[1]", "item b"), ("g[2]", "item c")]
        board = handle.gates
        assert board is not None
        for index in (2, 0, 1):
            await board.answer(f"g[{index}]", {"approve": index != 1, "input": {"i": index}})
        result = await handle.wait()
    outputs = result.steps["g"].output
    assert [item["input"]["i"] for item in outputs] == [0, 1, 2]
    assert [item["approved"] for item in outputs] == [True, False, True]


async def test_a_loop_asks_again_until_approved(autojump_clock: trio.testing.MockClock) -> None:
    """repeat until output.approved: one gate per iteration, g#1 then g#2."""
    steps = (
        gate(prompt="round ${iteration}", repeat={"until": "output.approved", "max_iterations": 3}),
    )
    async with open_journal(None) as journal, runtime_on(journal) as runtime:
        handle = await runtime.start(document(*steps))
        board = handle.gates
        assert board is not None
        await handle.wait_blocked_on_gates()
        assert [state.gate_id for state in handle.open_gates()] == ["g#1"]
        for wrong in ("g", "g#0", "g[1]"):
            with pytest.raises(GateNotFoundError):
                await board.answer(wrong, APPROVE)
        await board.answer("g#1", {"approve": False})
        await handle.wait_blocked_on_gates()
        (second,) = handle.open_gates()
        assert (second.gate_id, second.prompt) == ("g#2", "round 2")
        await board.answer("g#2", APPROVE)
        result = await handle.wait()
    assert result.steps["g"].output["approved"] is True


async def test_cancel_while_a_gate_waits_ends_it_cancelled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A cancel ends the waiting gate like any unit: step.cancelled, execution cancelled."""
    async with open_journal(None) as journal, runtime_on(journal) as runtime:
        handle = await runtime.start(document(gate(for_each="`[1, 2]`")))
        await handle.wait_blocked_on_gates()
        assert handle.cancel("stop")
        result = await handle.wait()
        events = await journal.events(handle.execution_id)
    assert result.status is ExecutionStatus.CANCELLED
    assert {e.step_id for e in of_type(events, EventType.STEP_CANCELLED)} >= {"g[0]", "g[1]"}
    assert trio.current_time() == pytest.approx(0.0)


async def test_suspend_records_waiting_and_resume_reopens_with_the_same_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """suspend: status waiting, nothing re-runs on resume, the gate re-opens with its deadline."""
    steps = (
        {"id": "draft", "agent": "work", "input": {"text": "v1"}},
        gate(depends_on=["draft"], timeout=100),
        {"id": "ship", "agent": "work", "depends_on": ["g"]},
    )
    async with open_journal(None) as journal:
        async with runtime_on(journal) as runtime:
            handle = await runtime.start(document(*steps))
            assert not handle.suspend()
            await handle.wait_blocked_on_gates()
            assert handle.suspend()
            result = await handle.wait()
            assert result.status is ExecutionStatus.WAITING
        execution_id = handle.execution_id
        events = await journal.events(execution_id)
        (waiting,) = of_type(events, EventType.EXECUTION_WAITING)
        assert waiting.data == {"gates": ["g"]}
        assert not of_type(events, EventType.STEP_CANCELLED)
        state = replay(events)
        assert state.status is ExecutionStatus.WAITING
        assert state.gates["g"].status == "open"
        await trio.sleep(40)
        # Answered while no run takes it (through the stopped run's board): the journal holds
        # it as a pending request, which the resume applies.
        assert handle.gates is not None
        assert await handle.gates.answer("g", APPROVE) is None
        async with runtime_on(journal) as runtime:
            resumed = await runtime.resume(execution_id)
            result = await resumed.wait()
        events = await journal.events(execution_id)
        (request,) = await journal.requests(execution_id)
    assert result.status is ExecutionStatus.SUCCEEDED
    assert CALLS == ["draft", "ship"]
    first, again = of_type(events, EventType.GATE_OPENED)
    assert again.data["reopened"] is True
    assert again.data["deadline"] == first.data["deadline"] == "2030-01-01T00:01:40.000Z"
    assert request.outcome == "applied"


async def test_a_deadline_that_passed_while_suspended_applies_at_once_on_resume(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """No answer before the deadline: the re-opened gate times out at once."""
    async with open_journal(None) as journal:
        async with runtime_on(journal) as runtime:
            handle = await runtime.start(document(gate(timeout=10)))
            await handle.wait_blocked_on_gates()
            assert handle.suspend()
            await handle.wait()
        await trio.sleep(60)
        async with runtime_on(journal) as runtime:
            started = trio.current_time()
            result = await (await runtime.resume(handle.execution_id)).wait()
            assert trio.current_time() == pytest.approx(started)
    assert result.steps["g"].output["by"] == "timeout"


async def test_an_answer_recorded_before_the_deadline_wins_over_a_passed_deadline(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An answer recorded (created_at) before the deadline applies, though the deadline passed."""
    async with open_journal(None) as journal:
        async with runtime_on(journal) as runtime:
            handle = await runtime.start(document(gate(timeout=10)))
            await handle.wait_blocked_on_gates()
            assert handle.suspend()
            await handle.wait()
        await journal.submit_request(handle.execution_id, RequestKind.ANSWER, APPROVE, target="g")
        # The wall clock is far past the deadline now; the request was recorded at the real
        # time, which is before the (2030) deadline.
        later = datetime.datetime(2031, 1, 1, tzinfo=datetime.UTC)
        monkeypatch.setattr(_gates, "utc_now", lambda: later)
        async with runtime_on(journal) as runtime:
            result = await (await runtime.resume(handle.execution_id)).wait()
    assert result.steps["g"].output["approved"] is True
    assert result.steps["g"].output["by"] == "tester"


async def test_an_answer_recorded_after_a_passed_deadline_loses_to_the_timeout(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Recorded after the deadline (here: the deadline lies in the past), the timeout wins."""
    past = datetime.datetime(2001, 1, 1, tzinfo=datetime.UTC)
    monkeypatch.setattr(_gates, "utc_now", lambda: past)
    async with open_journal(None) as journal:
        async with runtime_on(journal) as runtime:
            handle = await runtime.start(document(gate(timeout=10)))
            await handle.wait_blocked_on_gates()
            assert handle.suspend()
            await handle.wait()
        await journal.submit_request(handle.execution_id, RequestKind.ANSWER, APPROVE, target="g")
        monkeypatch.setattr(_gates, "utc_now", lambda: past + datetime.timedelta(days=1))
        async with runtime_on(journal) as runtime:
            result = await (await runtime.resume(handle.execution_id)).wait()
        (request,) = await journal.requests(handle.execution_id)
    assert result.steps["g"].output["by"] == "timeout"
    assert request.outcome == "refused"


async def test_a_resolved_gate_whose_step_never_ended_resolves_from_the_journal(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Crash after gate.resolved: the resume reuses the answer, and settles its request applied."""
    async with open_journal(None) as journal:
        async with runtime_on(journal) as runtime:
            handle = await runtime.start(document(gate()))
            await handle.wait_blocked_on_gates()
            assert handle.gates is not None
            await handle.gates.answer("g", APPROVE)
            await handle.wait()
        execution_id = handle.execution_id
        record = await journal.get_execution(execution_id)
        events = await journal.events(execution_id)
    # The journal as a crash right after gate.resolved leaves it: the request still pending.
    resolved_seq = of_type(events, EventType.GATE_RESOLVED)[0].seq
    async with open_journal(None) as crashed:
        await crashed.create_execution(
            attrs.evolve(record, status=ExecutionStatus.RUNNING, finished_at=None, output=None)
        )
        for event in events:
            if event.seq <= resolved_seq:
                await crashed.append(event)
        await crashed.flush()
        request = await crashed.submit_request(
            execution_id, RequestKind.ANSWER, APPROVE, target="g"
        )
        assert request.request_id == events[resolved_seq - 1].data["request_id"]
        async with runtime_on(crashed) as runtime:
            result = await (await runtime.resume(execution_id)).wait()
        (settled,) = await crashed.requests(execution_id)
        events = await crashed.events(execution_id)
    assert result.steps["g"].output["approved"] is True
    assert settled.outcome == "applied"
    assert len(of_type(events, EventType.GATE_OPENED)) == 1
    assert len(of_type(events, EventType.GATE_RESOLVED)) == 1


async def test_a_loop_suspended_at_its_gate_asks_that_iteration_again_on_resume(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Suspended at g#2: nothing is cancelled, the resume re-opens g#2 (g#1 is reused)."""
    steps = (gate(repeat={"until": "output.approved", "max_iterations": 3}),)
    async with open_journal(None) as journal:
        async with runtime_on(journal) as runtime:
            handle = await runtime.start(document(*steps))
            assert handle.gates is not None
            await handle.wait_blocked_on_gates()
            await handle.gates.answer("g#1", {"approve": False})
            await handle.wait_blocked_on_gates()
            assert handle.suspend()
            assert (await handle.wait()).status is ExecutionStatus.WAITING
        async with runtime_on(journal) as runtime:
            resumed = await runtime.resume(handle.execution_id)
            await resumed.wait_blocked_on_gates()
            assert [state.gate_id for state in resumed.open_gates()] == ["g#2"]
            assert resumed.gates is not None
            await resumed.gates.answer("g#2", APPROVE)
            result = await resumed.wait()
        events = await journal.events(handle.execution_id)
    assert result.steps["g"].output["approved"] is True
    assert not of_type(events, EventType.STEP_CANCELLED)
    assert [e.step_id for e in of_type(events, EventType.GATE_OPENED)] == ["g#1", "g#2", "g#2"]


async def test_item_gates_that_fill_their_map_limit_block_the_run(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """max_concurrency 1 caps the map's items: a waiting item gate holds the map's only slot."""
    steps = (gate(for_each="`[0, 1]`"),)
    async with open_journal(None) as journal, runtime_on(journal) as runtime:
        handle = await runtime.start(document(*steps, max_concurrency=1))
        await handle.wait_blocked_on_gates()
        assert [state.gate_id for state in handle.open_gates()] == ["g[0]"]
        assert handle.gates is not None
        await handle.gates.answer("g[0]", APPROVE)
        await handle.wait_blocked_on_gates()
        assert [state.gate_id for state in handle.open_gates()] == ["g[1]"]
        assert handle.suspend()
        assert (await handle.wait()).status is ExecutionStatus.WAITING


async def test_a_run_without_gates_has_no_board_and_never_blocks() -> None:
    """No approval step: no board, wait_blocked_on_gates waits for the end, suspend refuses."""
    async with open_journal(None) as journal, runtime_on(journal) as runtime:
        handle = await runtime.start(document({"id": "a", "agent": "work", "input": {}}))
        assert handle.gates is None
        assert handle.open_gates() == []
        await handle.wait_blocked_on_gates()
        assert handle.done
        assert not handle.suspend()
        finished = ExecutionHandle(handle.execution_id, None, handle.result)
        await finished.wait_blocked_on_gates()
        assert not finished.suspend()
        assert finished.open_gates() == []


async def test_an_answer_for_a_gate_the_workflow_lacks_is_refused_when_delivered(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A journaled answer for no gate of the workflow, or a malformed one: settled refused."""
    async with open_journal(None) as journal, runtime_on(journal) as runtime:
        handle = await runtime.start(document(gate()))
        await handle.wait_blocked_on_gates()
        request = await journal.submit_request(
            handle.execution_id, RequestKind.ANSWER, APPROVE, target="other"
        )
        assert handle.gates is not None
        await handle.gates.deliver(request)
        invalid = await journal.submit_request(
            handle.execution_id, RequestKind.ANSWER, {"approve": "yes"}, target="g"
        )
        await handle.gates.deliver(invalid)
        assert handle.open_gates()[0].status == "open"
        handle.cancel()
        await handle.wait()
        refused = await journal.requests(handle.execution_id)
    assert [(r.outcome, r.detail) for r in refused] == [
        ("refused", "no approval gate 'other'"),
        ("refused", "invalid answer: $.approve: expected true or false"),
    ]


async def test_a_rejection_owes_no_input_matching_the_schema(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A required property binds approvals only: a rejection's input is kept as given."""
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    async with open_journal(None) as journal, runtime_on(journal) as runtime:
        handle = await runtime.start(document(gate(schema=schema)))
        await handle.wait_blocked_on_gates()
        assert handle.gates is not None
        with pytest.raises(GateAnswerInvalidError):
            await handle.gates.answer("g", {"approve": True, "input": {}})
        answer = {"approve": False, "input": {"n": "x"}, "reason": "no", "by": "me"}
        resolved = await handle.gates.answer("g", answer)
        result = await handle.wait()
    assert resolved is not None
    assert resolved.status == "rejected"
    assert result.steps["g"].output == {
        "approved": False,
        "input": {"n": "x"},
        "by": "me",
        "reason": "no",
    }


async def test_an_approval_gets_the_schema_defaults_it_left_out(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A field with a default need not be given, even when required; a rejection gets none."""
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer", "default": 3}, "note": {"type": "string"}},
        "required": ["n"],
    }
    async with open_journal(None) as journal, runtime_on(journal) as runtime:
        approved = await runtime.start(document(gate(schema=schema)))
        await approved.wait_blocked_on_gates()
        assert approved.gates is not None
        await approved.gates.answer("g", {"approve": True, "input": {"note": "ok"}, "by": "me"})
        rejected = await runtime.start(document(gate(schema=schema)))
        await rejected.wait_blocked_on_gates()
        assert rejected.gates is not None
        await rejected.gates.answer("g", {"approve": False, "reason": "no", "by": "me"})
        approved_output = (await approved.wait()).steps["g"].output
        rejected_output = (await rejected.wait()).steps["g"].output
    assert approved_output["input"] == {"note": "ok", "n": 3}
    assert rejected_output["input"] == {}


async def test_gate_ids_past_the_map_items_or_the_loop_bound_are_not_found(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """g[5] of a 1-item map and l#9 of a 3-iteration loop never exist: not found, not held."""
    steps = (
        gate(for_each="['a']"),
        gate("l", repeat={"until": "output.approved", "max_iterations": 3}),
    )
    async with open_journal(None) as journal, runtime_on(journal) as runtime:
        handle = await runtime.start(document(*steps))
        await handle.wait_blocked_on_gates()
        board = handle.gates
        assert board is not None
        with pytest.raises(GateNotFoundError, match=r"map g has 1 items"):
            await board.answer("g[5]", APPROVE)
        with pytest.raises(GateNotFoundError, match=r"l#1 to #3"):
            await board.answer("l#9", APPROVE)
        request = await journal.submit_request(
            handle.execution_id, RequestKind.ANSWER, APPROVE, target="g[7]"
        )
        await board.deliver(request)
        handle.cancel()
        await handle.wait()
        (refused,) = await journal.requests(handle.execution_id)
    assert refused.outcome == "refused"
    assert refused.detail == "no gate 'g[7]': map g has 1 items (g[0] on)"


async def test_an_early_answer_for_an_item_past_the_map_is_refused_once_the_map_starts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Held while the item count is unknown; refused, saying why, once the map's gates open."""
    steps = (
        {"id": "list", "agent": "work", "input": {"delay": 5, "items": ["a"]}},
        gate(for_each="steps.list.output.items", depends_on=["list"]),
    )
    async with open_journal(None) as journal, runtime_on(journal) as runtime:
        handle = await runtime.start(document(*steps))
        board = handle.gates
        assert board is not None
        assert await board.answer("g[3]", APPROVE) is None
        await handle.wait_blocked_on_gates()
        await board.answer("g[0]", APPROVE)
        result = await handle.wait()
        requests = await journal.requests(handle.execution_id)
    assert result.status is ExecutionStatus.SUCCEEDED
    assert [(r.target, r.outcome, r.detail) for r in requests] == [
        ("g[3]", "refused", "no gate 'g[3]': map g has 1 items (g[0] on)"),
        ("g[0]", "applied", None),
    ]


async def test_a_waiting_gate_holds_no_concurrency_slot(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """max_concurrency 1: while g waits, the independent step still runs; then it blocks."""
    steps = (gate(), {"id": "side", "agent": "work", "input": {"delay": 5}})
    async with open_journal(None) as journal, runtime_on(journal) as runtime:
        handle = await runtime.start(document(*steps, max_concurrency=1))
        await handle.wait_blocked_on_gates()
        assert trio.current_time() == pytest.approx(5.0)
        assert CALLS == ["side"]
        assert handle.gates is not None
        await handle.gates.answer("g", APPROVE)
        result = await handle.wait()
    assert result.status is ExecutionStatus.SUCCEEDED


# -- properties ---------------------------------------------------------------------------------

ITEMS = 3
TIMEOUT = 50.5
"""Not a whole number: an answer (at whole seconds) never lands exactly on a deadline."""


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    """When the gates open, answers at random times (early, in time, late, never), a suspend."""
    answers = {
        index: (draw(st.integers(0, 90)), draw(st.booleans()))
        for index in range(ITEMS)
        if draw(st.booleans())
    }
    return {
        "before": draw(st.integers(0, 20)),
        "answers": answers,
        "suspend_at": draw(st.none() | st.integers(0, 70)),
        "offline_for": draw(st.integers(0, 60)),
    }


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(scenario=scenarios())
def test_every_gate_resolves_exactly_once_with_its_answer_in_time_or_by_timeout(
    scenario: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each gate of a map resolves once: by its own answer when recorded before its deadline
    (online, early, or while no process ran), else by timeout, across a random suspend."""
    start = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
    monkeypatch.setattr(
        _gates, "utc_now", lambda: start + datetime.timedelta(seconds=trio.current_time())
    )
    follow_in_journal(monkeypatch, start)
    events, requests = trio.run(
        run_scenario, scenario, clock=trio.testing.MockClock(autojump_threshold=0)
    )
    resolved = of_type(events, EventType.GATE_RESOLVED)
    assert sorted(e.step_id or "" for e in resolved) == [f"g[{i}]" for i in range(ITEMS)]
    deadline = scenario["before"] + TIMEOUT
    for event in resolved:
        index = int((event.step_id or "")[2:-1])
        answer = scenario["answers"].get(index)
        if answer is not None and answer[0] < deadline:
            assert event.data["how"] == "answer"
            assert (event.data["approved"], event.data["input"]) == (answer[1], {"index": index})
        else:
            assert event.data["how"] == "timeout"
    applied = {r.request_id: r.target for r in requests if r.outcome == "applied"}
    by_answer = {e.data["request_id"]: e.step_id for e in resolved if e.data["how"] == "answer"}
    assert applied == by_answer
    (output,) = [e.data["output"] for e in of_type(events, EventType.STEP_SUCCEEDED, "g")]
    assert [item["input"].get("index", index) for index, item in enumerate(output)] == [0, 1, 2]


def follow_in_journal(monkeypatch: pytest.MonkeyPatch, start: datetime.datetime) -> None:
    """Requests are stamped with the same clock as the gates' deadlines (the memory journal)."""

    def stamp(moment: datetime.datetime | None = None) -> str:
        return utc_timestamp(moment or start + datetime.timedelta(seconds=trio.current_time()))

    monkeypatch.setattr(_requests, "utc_timestamp", stamp)


async def run_scenario(scenario: dict[str, Any]) -> tuple[list[Event], list[Any]]:
    """Run the map of gates with the scenario's answers and suspend; its events and requests."""
    steps = (
        {"id": "slow", "agent": "work", "input": {"delay": scenario["before"]}},
        gate(for_each="`[0, 1, 2]`", timeout=TIMEOUT, depends_on=["slow"]),
    )
    live: dict[str, Any] = {}
    async with open_journal(None) as journal:
        async with trio.open_nursery() as answering:
            await run_and_resume(journal, answering, document(*steps), scenario, live)
            answering.cancel_scope.cancel()
        execution_id = live["execution_id"]
        return await journal.events(execution_id), await journal.requests(execution_id)


async def run_and_resume(
    journal: Journal,
    answering: trio.Nursery,
    workflow: dict[str, Any],
    scenario: dict[str, Any],
    live: dict[str, Any],
) -> None:
    """Start the execution, answer and suspend as the scenario says, resume it if it waits."""
    async with runtime_on(journal) as runtime:
        handle = await runtime.start(workflow)
        execution_id = live["execution_id"] = handle.execution_id
        live["board"] = handle.gates
        for index, (at, approve) in scenario["answers"].items():
            body = {"approve": approve, "input": {"index": index}, "by": "tester"}
            answering.start_soon(answer_at, journal, live, execution_id, index, at, body)
        if scenario["suspend_at"] is not None:
            await trio.sleep_until(scenario["suspend_at"])
            await handle.wait_blocked_on_gates()
            handle.suspend()
        result = await handle.wait()
        live["board"] = None
    if result.status is ExecutionStatus.WAITING:
        await trio.sleep(scenario["offline_for"])
        async with runtime_on(journal) as runtime:
            handle = await runtime.resume(execution_id)
            live["board"] = handle.gates
            await handle.wait()
            live["board"] = None


async def answer_at(
    journal: Journal,
    live: Mapping[str, Any],
    execution_id: str,
    index: int,
    at: int,
    body: dict[str, Any],
) -> None:
    """At `at`, record the answer; a live run's board gets it at once (the control loop's job)."""
    await trio.sleep_until(at)
    request = await journal.submit_request(
        execution_id, RequestKind.ANSWER, body, target=f"g[{index}]"
    )
    board = live.get("board")
    if board is not None:
        await board.deliver(request)

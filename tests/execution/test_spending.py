"""Budgets at run time: the llm agent's calls reserved and settled, refused at the cap, resumed."""

from __future__ import annotations

import json
import math
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
from cli_in_process import call
from cli_processes import cli, environment, event_types

from orchestr8 import (
    BudgetExhaustedError,
    ExecutionResult,
    GateAnswerInvalidError,
    open_runtime,
    price_for,
)
from orchestr8._execution._spending import JournalSpend, journal_spend
from orchestr8._journal._events import Event
from orchestr8._llm._session import Spend
from orchestr8.testing import FakeAnthropic, use_fake_anthropic

NO_RETRY: dict[str, Any] = {"retry": {"max_attempts": 1}, "circuit_breaker": None}
MODEL = "claude-sonnet-4-5"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No real credentials or endpoints leak into a test."""
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    """A fake plugged into every llm agent of the test, checked to be fully used at the end."""
    fake = FakeAnthropic()
    with fake, use_fake_anthropic(fake):
        yield fake


def llm_step(step_id: str, **more: Any) -> dict[str, Any]:
    """A step calling the llm agent (max_tokens 100) once, without retries."""
    agent = {"id": "llm", "config": {"model": MODEL, "max_tokens": 100}}
    return {"id": step_id, "agent": agent, "input": f"Say {step_id}", "policy": NO_RETRY, **more}


def document(*steps: dict[str, Any], budget: Any = None) -> dict[str, Any]:
    """A sequential 1.1 workflow of `steps`, with the workflow budget `budget` when given."""
    workflow: dict[str, Any] = {
        "schema_version": "1.1",
        "name": "budgeted",
        "strategy": "sequential",
        "steps": list(steps),
    }
    if budget is not None:
        workflow["budget"] = budget
    return workflow


async def execute(
    workflow: dict[str, Any], journal: Path | None = None, **start: Any
) -> tuple[ExecutionResult, list[Event]]:
    """Run a workflow to its end and return its result and events."""
    async with open_runtime(journal=journal) as runtime:
        handle = await runtime.start(workflow, **start)
        result = await handle.wait()
        events = await runtime.journal.events(result.execution_id)
    return result, events


def of_type(events: list[Event], type: str) -> list[Event]:
    """The events of one type."""
    return [event for event in events if event.type == type]


async def test_each_call_is_reserved_then_settled_with_its_price(fake: FakeAnthropic) -> None:
    """budget.reserved holds the worst case, budget.settled the priced usage."""
    fake.reply_text("a", input_tokens=40, output_tokens=10)
    result, events = await execute(document(llm_step("a"), budget={"max_cost_usd": 1.0}))
    assert result.succeeded
    [reserved] = of_type(events, "budget.reserved")
    [settled] = of_type(events, "budget.settled")
    price = price_for("anthropic", MODEL)
    assert price is not None
    assert reserved.step_id == "a"
    assert reserved.attempt == 1
    assert reserved.data["reservation"] == settled.data["reservation"] == 1
    assert reserved.data["model"] == f"anthropic:{MODEL}"
    assert reserved.data["scope"] == "workflow"
    assert reserved.data["output_tokens"] == 100
    assert reserved.data["llm_calls"] == 1
    assert reserved.data["cost_usd"] == pytest.approx(
        (reserved.data["input_tokens"] * price.input + 100 * price.output) / 1e6
    )
    assert settled.data == {
        "reservation": 1,
        "cost_usd": pytest.approx((40 * price.input + 10 * price.output) / 1e6),
        "input_tokens": 40,
        "output_tokens": 10,
        "llm_calls": 1,
    }
    assert events.index(reserved) < events.index(settled)


async def test_without_a_budget_nothing_is_recorded(fake: FakeAnthropic) -> None:
    """A workflow with no budget pays nothing for budgets: no budget event at all."""
    fake.reply_text("a")
    result, events = await execute(document(llm_step("a")))
    assert result.succeeded
    assert not [event for event in events if event.type.startswith("budget.")]


async def test_a_call_past_the_cap_is_never_made(fake: FakeAnthropic) -> None:
    """The second call of a one-call budget fails its step, not retried, and reaches no API."""
    fake.reply_text("a")
    workflow = document(llm_step("a"), llm_step("b"), budget={"max_llm_calls": 1})
    workflow["steps"][1]["policy"] = {"retry": {"max_attempts": 3}, "circuit_breaker": None}
    result, events = await execute(workflow)
    assert not result.succeeded
    assert len(fake.requests) == 1
    error = result.steps["b"].error
    assert error is not None
    assert error["type"] == "BudgetExhaustedError"
    assert error["message"] == (
        "the workflow's budget cannot cover this model call: max_llm_calls would need 1 more"
        " but 0 is left"
    )
    [exhausted] = of_type(events, "budget.exhausted")
    assert exhausted.step_id == "b"
    assert exhausted.data == {
        "scope": "workflow",
        "limit": "max_llm_calls",
        "asked": 1,
        "remaining": 0,
        "on_exhaust": "fail",
    }
    assert len(of_type(events, "attempt.started")) == 2


async def test_a_steps_budget_caps_its_own_calls_only(fake: FakeAnthropic) -> None:
    """A step's max_output_tokens below its max_tokens refuses its call; others still run."""
    fake.reply_text("b")
    small = llm_step("a", budget={"max_output_tokens": 50})
    result, events = await execute(
        document(small, llm_step("b", depends_on=[])) | {"strategy": "dag", "fail_fast": False}
    )
    assert result.steps["a"].error is not None
    assert (
        "steps.a.budget cannot cover this model call: max_output_tokens would need 100"
        in (result.steps["a"].error["message"])
    )
    assert result.steps["b"].output["text"] == "b"
    assert [event.step_id for event in of_type(events, "budget.reserved")] == []


async def test_map_items_running_at_once_never_jointly_overspend(fake: FakeAnthropic) -> None:
    """Ten items in parallel under a three-call budget: exactly three calls are made."""
    for _ in range(3):
        fake.reply_text("ok", input_tokens=5, output_tokens=5)
    step = llm_step("each", for_each="inputs.items", on_item_error="continue")
    step["input"] = "Item ${item}"
    workflow = document(step, budget={"max_llm_calls": 3})
    workflow["inputs"] = {"type": "object"}
    result, events = await execute(workflow, inputs={"items": list(range(10))})
    assert len(fake.requests) == 3
    assert len(of_type(events, "budget.reserved")) == 3
    assert len(of_type(events, "budget.exhausted")) == 7
    outputs = result.steps["each"].output
    assert sum(output is not None for output in outputs) == 3


async def test_a_map_under_a_tiny_cap_never_opens_the_shared_breaker(fake: FakeAnthropic) -> None:
    """Twenty items, retried, past a two-call cap: every refusal is neutral for the llm breaker.

    The items beyond the cap fail with BudgetExhaustedError (not CircuitOpenError), no breaker
    opens, and the runtime's next execution of the same agent is unaffected.
    """
    for _ in range(3):
        fake.reply_text("ok", input_tokens=5, output_tokens=5)
    step = llm_step("each", for_each="inputs.items", on_item_error="continue")
    step["input"] = "Item ${item}"
    step["policy"] = {"retry": {"max_attempts": 3, "jitter": "none"}}
    capped = document(step, budget={"max_llm_calls": 2})
    capped["inputs"] = {"type": "object"}
    async with open_runtime() as runtime:
        first = await (await runtime.start(capped, inputs={"items": list(range(20))})).wait()
        events = await runtime.journal.events(first.execution_id)
        second = await (await runtime.start(document(llm_step("after")))).wait()
        breaker = runtime.resilience.breakers.find("llm")
    failed = [event for event in of_type(events, "step.failed") if event.step_id != "each"]
    errors = [event.data["error"]["type"] for event in failed]
    assert errors == ["BudgetExhaustedError"] * 18
    assert not [event for event in events if event.type.startswith("breaker.")]
    assert second.succeeded
    assert breaker is not None
    assert breaker.statistics().failures == 0
    assert len(fake.requests) == 3


async def test_a_failed_call_without_usage_counts_nothing(fake: FakeAnthropic) -> None:
    """A call the API refused is settled with zeros: its hold is released."""
    fake.reply_bad_request()
    fake.reply_text("b")
    workflow = document(
        llm_step("a", on_error="continue"), llm_step("b"), budget={"max_llm_calls": 1}
    )
    result, events = await execute(workflow)
    assert result.succeeded
    settled = [event.data for event in of_type(events, "budget.settled")]
    assert settled[0] == {
        "reservation": 1,
        "cost_usd": 0.0,
        "input_tokens": 0,
        "output_tokens": 0,
        "llm_calls": 0,
    }
    assert settled[1]["llm_calls"] == 1


async def test_max_cost_on_start_lowers_the_workflows_cap(fake: FakeAnthropic) -> None:
    """start(max_cost_usd=) caps a workflow without a budget; the journal records the cap."""
    workflow = document(llm_step("a"))
    workflow["schema_version"] = "1.0"
    async with open_runtime() as runtime:
        handle = await runtime.start(workflow, max_cost_usd=0.0)
        result = await handle.wait()
        record = await runtime.journal.get_execution(result.execution_id)
    assert result.steps["a"].error is not None
    assert "max_cost_usd" in result.steps["a"].error["message"]
    assert record.workflow["budget"] == {"max_cost_usd": 0.0}
    assert record.workflow["schema_version"] == "1.1"
    assert fake.requests == []


async def test_resume_counts_the_earlier_runs_spend_and_never_repays(
    fake: FakeAnthropic, tmp_path: Path
) -> None:
    """A resumed execution keeps its succeeded steps' spend: the cap still holds across runs."""
    fake.reply_text("a", input_tokens=10, output_tokens=10)
    fake.reply_bad_request()
    fake.reply_text("b again", input_tokens=10, output_tokens=10)
    journal = tmp_path / "journal.db"
    workflow = document(llm_step("a"), llm_step("b"), budget={"max_llm_calls": 2})
    first, _ = await execute(workflow, journal)
    assert not first.succeeded
    async with open_runtime(journal=journal) as runtime:
        handle = await runtime.resume(first.execution_id)
        second = await handle.wait()
        events = await runtime.journal.events(first.execution_id)
    assert second.succeeded
    assert len(fake.requests) == 3
    numbers = [event.data["reservation"] for event in of_type(events, "budget.reserved")]
    assert numbers == [1, 2, 3]
    async with open_runtime(journal=journal) as runtime:
        events = await runtime.journal.events(first.execution_id)
    assert journal_spend(events).steps["a"].llm_calls == 1


def event(seq: int, type: str, step_id: str | None, **data: Any) -> Event:
    """A journal event of execution `x`."""
    return Event("x", seq, "2026-12-07T00:00:00Z", 0.0, type, step_id, 1, data)


def test_journal_spend_counts_unsettled_holds_at_their_worst_case() -> None:
    """Settled calls count their spend, held ones their ask; items count for their map step."""
    ask = {"cost_usd": 0.5, "input_tokens": 100, "output_tokens": 50, "llm_calls": 1}
    spent = {"cost_usd": 0.1, "input_tokens": 20, "output_tokens": 5, "llm_calls": 1}
    events = [
        event(1, "budget.reserved", "a", reservation=1, **ask),
        event(2, "budget.settled", "a", reservation=1, **spent),
        event(3, "budget.reserved", "m[3]", reservation=2, **ask),
        event(4, "budget.reserved", "loop#2", reservation=4, **ask),
        event(5, "budget.settled", "loop#2", reservation=4, **spent),
        event(6, "budget.settled", "a", reservation=9, **spent),
        event(7, "budget.reserved", None, reservation=5, **ask),
        event(8, "budget.reserved", "a", reservation="x", **ask),
        event(9, "step.usage", "a", input_tokens=7),
    ]
    found = journal_spend(events)
    assert found == JournalSpend(
        steps={
            "a": Spend(cost_usd=0.1, input_tokens=20, output_tokens=5, llm_calls=1),
            "loop": Spend(cost_usd=0.1, input_tokens=20, output_tokens=5, llm_calls=1),
            "m": Spend(cost_usd=0.5, input_tokens=100, output_tokens=50, llm_calls=1),
        },
        last_reservation=4,
    )


def test_journal_spend_reads_malformed_counts_as_zero() -> None:
    """A count that is not a whole number >= 0, or a cost that is not finite, counts 0."""
    bad = {"cost_usd": float("nan"), "input_tokens": -3, "output_tokens": True, "llm_calls": 1.5}
    found = journal_spend([event(1, "budget.reserved", "a", reservation=1, **bad)])
    assert found.steps["a"] == Spend()
    assert journal_spend([]) == JournalSpend({}, 0)


async def test_a_budget_exhausted_error_is_never_retried() -> None:
    """BudgetExhaustedError is a NonRetryableError and an ExecutionError."""
    from orchestr8 import ExecutionError, NonRetryableError, is_retryable

    error = BudgetExhaustedError("no")
    assert isinstance(error, NonRetryableError)
    assert isinstance(error, ExecutionError)
    assert not is_retryable(error)


async def test_a_resume_after_a_kill_counts_the_call_in_flight_and_never_repays(
    tmp_path: Path,
) -> None:
    """Killed during b's call: the resume counts that call at its worst case, so the two-call
    cap refuses b's new call, and a (succeeded) is not called again."""
    workflow = document(llm_step("a"), llm_step("b"), budget={"max_llm_calls": 2})
    path = tmp_path / "w.json"
    path.write_text(json.dumps(workflow))
    journal = tmp_path / "j.db"
    fake = SignallingFake()
    fake.reply_text("a", input_tokens=5, output_tokens=5)
    fake.reply_text("b takes forever", delay=600)
    async with fake.serve() as base_url:
        env = environment(tmp_path, ANTHROPIC_BASE_URL=base_url, ANTHROPIC_API_KEY="sk-test")
        command = [sys.executable, "-m", "orchestr8", "run", str(path), "--journal", str(journal)]
        process = await trio.lowlevel.open_process(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            with trio.fail_after(20):
                await fake.second_request.wait()
        finally:
            process.kill()
            await process.wait()
        assert "budget.reserved" in event_types(journal, only_execution(journal))
        execution_id = only_execution(journal)
        types = event_types(journal, execution_id)
        assert types.count("budget.reserved") == 2
        assert types.count("budget.settled") == 1
        resumed = await trio.to_thread.run_sync(
            lambda: cli(
                "resume", execution_id, "--journal", str(journal), "--json", cwd=tmp_path, env=env
            )
        )
    assert resumed.returncode == 2, resumed.stderr
    assert len(fake.requests) == 2
    result = json.loads(resumed.stdout)
    assert result["steps"]["a"]["status"] == "succeeded"
    assert result["steps"]["b"]["error"]["type"] == "BudgetExhaustedError"
    assert (
        "max_llm_calls would need 1 more but 0 is left" in result["steps"]["b"]["error"]["message"]
    )
    types = event_types(journal, execution_id)
    assert types.count("budget.exhausted") == 1
    assert types.count("budget.reserved") == 2


class SignallingFake(FakeAnthropic):
    """FakeAnthropic that says when its second request (b's call) has arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.second_request = trio.Event()

    def _respond(self, method: str, path: str, headers: Any, body: bytes) -> Any:
        answer = super()._respond(method, path, headers, body)
        if len(self.requests) == 2:
            self.second_request.set()
        return answer


def only_execution(journal: Path) -> str:
    """The id of the one execution the journal holds."""
    with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as connection:
        [(execution_id,)] = connection.execute("SELECT execution_id FROM executions").fetchall()
    connection.close()
    return str(execution_id)


async def test_a_fork_carries_the_kept_steps_spend(fake: FakeAnthropic) -> None:
    """Forked from b, the fork keeps a's call in its budget: b is still refused, a not re-run."""
    fake.reply_text("a", input_tokens=5, output_tokens=5)
    workflow = document(llm_step("a"), llm_step("b"), budget={"max_llm_calls": 1})
    async with open_runtime() as runtime:
        handle = await runtime.start(workflow)
        source = await handle.wait()
        assert source.steps["b"].error is not None
        forked = await (await runtime.fork(source.execution_id, "b")).wait()
        events = await runtime.journal.events(forked.execution_id)
    assert len(fake.requests) == 1
    assert forked.steps["a"].output["text"] == "a"
    assert forked.steps["b"].error is not None
    assert forked.steps["b"].error["type"] == "BudgetExhaustedError"
    copied = [event for event in of_type(events, "budget.settled") if "reused_from" in event.data]
    assert [event.step_id for event in copied] == ["a"]
    assert journal_spend(events).steps["a"].llm_calls == 1


async def test_pause_waits_for_a_raised_limit_then_makes_the_call(fake: FakeAnthropic) -> None:
    """on_exhaust pause: gate `budget` opens with the shortfall; approving a higher
    max_llm_calls lets the call go on, and the step succeeds."""
    fake.reply_text("a")
    fake.reply_text("b")
    budget = {"max_llm_calls": 1, "on_exhaust": "pause"}
    async with open_runtime() as runtime:
        handle = await runtime.start(document(llm_step("a"), llm_step("b"), budget=budget))
        await handle.wait_blocked_on_gates()
        (gate,) = handle.open_gates()
        assert gate.gate_id == "budget"
        assert gate.prompt is not None
        assert gate.prompt.startswith(
            "the workflow's budget cannot cover this model call: max_llm_calls would need 1 more"
            " but 0 is left. Approve with new limits to go on (max_llm_calls is 1)"
        )
        assert gate.schema is not None
        assert gate.schema["properties"]["max_llm_calls"]["type"] == "integer"
        assert handle.gates is not None
        with pytest.raises(GateAnswerInvalidError):
            await handle.gates.answer("budget", {"approve": True, "input": {"max_dollars": 1}})
        with pytest.raises(GateAnswerInvalidError):
            await handle.gates.answer("budget", {"approve": True, "input": {}})
        await handle.gates.answer("budget", {"approve": True, "input": {"max_llm_calls": 2}})
        result = await handle.wait()
        events = await runtime.journal.events(handle.execution_id)
    assert result.succeeded, result.error
    assert result.steps["b"].output["text"] == "b"
    [exhausted] = of_type(events, "budget.exhausted")
    assert exhausted.data["on_exhaust"] == "pause"
    assert [event.step_id for event in of_type(events, "gate.resolved")] == ["budget"]
    assert len(of_type(events, "budget.settled")) == 2


async def test_a_rejected_pause_fails_the_call(fake: FakeAnthropic) -> None:
    """Rejecting a step's pause gate (`STEP.budget`) fails the call with the shortfall."""
    step = llm_step("b", budget={"max_output_tokens": 10, "on_exhaust": "pause"})
    async with open_runtime() as runtime:
        handle = await runtime.start(document(step))
        await handle.wait_blocked_on_gates()
        assert [gate.gate_id for gate in handle.open_gates()] == ["b.budget"]
        assert handle.gates is not None
        await handle.gates.answer("b.budget", {"approve": False, "reason": "too dear"})
        result = await handle.wait()
    error = result.steps["b"].error
    assert error is not None
    assert error["type"] == "BudgetExhaustedError"
    assert "steps.b.budget cannot cover this model call: max_output_tokens" in error["message"]
    assert fake.requests == []


async def test_a_raise_too_small_opens_the_next_gate(fake: FakeAnthropic) -> None:
    """An approval that still falls short pauses again, at `budget#2`."""
    fake.reply_text("b", input_tokens=5, output_tokens=5)
    step = llm_step("b")
    budget = {"max_output_tokens": 10, "on_exhaust": "pause"}
    async with open_runtime() as runtime:
        handle = await runtime.start(document(step, budget=budget))
        assert handle.gates is not None
        await handle.wait_blocked_on_gates()
        await handle.gates.answer("budget", {"approve": True, "input": {"max_output_tokens": 50}})
        await handle.wait_blocked_on_gates()
        assert [gate.gate_id for gate in handle.open_gates()] == ["budget#2"]
        await handle.gates.answer(
            "budget#2", {"approve": True, "input": {"max_output_tokens": 500}}
        )
        result = await handle.wait()
    assert result.succeeded, result.error


def test_a_paused_run_is_answered_from_the_command_line_and_resumed(tmp_path: Path) -> None:
    """run --exit-when-waiting stops at gate budget (exit 5); orchestr8 approve raises the
    limit; resume makes the call, and the step that already ran is not called again."""
    workflow = document(
        llm_step("a"), llm_step("b"), budget={"max_llm_calls": 1, "on_exhaust": "pause"}
    )
    (tmp_path / "w.json").write_text(json.dumps(workflow))
    fake = FakeAnthropic()
    fake.reply_text("a")
    fake.reply_text("b")
    with fake, use_fake_anthropic(fake):
        ran = call("run", "w.json", "--journal", "j.db", "--exit-when-waiting", cwd=tmp_path)
        assert ran.code == 5, ran.stderr
        assert "gate budget waits for an answer" in ran.stderr
        execution_id = only_execution(tmp_path / "j.db")
        approved = call(
            "approve",
            execution_id,
            "budget",
            "--input",
            "max_llm_calls=2",
            "--journal",
            "j.db",
            cwd=tmp_path,
        )
        assert approved.code == 0, approved.stderr
        resumed = call("resume", execution_id, "--journal", "j.db", "--json", cwd=tmp_path)
    assert resumed.code == 0, resumed.stderr
    assert json.loads(resumed.stdout)["steps"]["b"]["output"]["text"] == "b"
    assert len(fake.requests) == 2


async def test_a_raise_is_applied_again_when_the_execution_resumes(
    fake: FakeAnthropic, tmp_path: Path
) -> None:
    """The gate answered before a failure answers again from the journal on resume: its raised
    limit holds, and nobody is asked twice."""
    fake.reply_text("a")
    fake.reply_bad_request()
    fake.reply_text("b")
    journal = tmp_path / "j.db"
    budget = {"max_llm_calls": 1, "on_exhaust": "pause"}
    async with open_runtime(journal=journal) as runtime:
        handle = await runtime.start(document(llm_step("a"), llm_step("b"), budget=budget))
        await handle.wait_blocked_on_gates()
        assert handle.gates is not None
        await handle.gates.answer("budget", {"approve": True, "input": {"max_llm_calls": 2}})
        first = await handle.wait()
    assert not first.succeeded
    async with open_runtime(journal=journal) as runtime:
        second = await (await runtime.resume(first.execution_id)).wait()
        events = await runtime.journal.events(first.execution_id)
    assert second.succeeded, second.error
    assert len(of_type(events, "gate.opened")) == 1
    assert len(fake.requests) == 3


async def test_a_runtime_wide_cap_applies_to_every_start_and_bad_caps_are_refused(
    fake: FakeAnthropic,
) -> None:
    """open_runtime(max_cost_usd=) caps each execution (the lower cap wins); negative, NaN or
    infinite caps are a ValueError naming max_cost_usd."""
    async with open_runtime(max_cost_usd=0.0) as runtime:
        handle = await runtime.start(document(llm_step("a")), max_cost_usd=5.0)
        result = await handle.wait()
        record = await runtime.journal.get_execution(result.execution_id)
        for bad in (-1.0, math.nan, math.inf):
            with pytest.raises(ValueError, match="max_cost_usd must be a finite number"):
                await runtime.start(document(llm_step("a")), max_cost_usd=bad)
    assert record.workflow["budget"] == {"max_cost_usd": 0.0}
    assert fake.requests == []
    with pytest.raises(ValueError, match="max_cost_usd"):
        async with open_runtime(max_cost_usd=-0.5):
            pass


async def test_a_fork_with_a_bigger_workflow_budget_goes_on(fake: FakeAnthropic) -> None:
    """The workflow's budget is no part of a step: a fork with a larger one keeps a, runs b."""
    fake.reply_text("a")
    fake.reply_text("b")
    workflow = document(llm_step("a"), llm_step("b"), budget={"max_llm_calls": 1})
    bigger = document(llm_step("a"), llm_step("b"), budget={"max_llm_calls": 2})
    async with open_runtime() as runtime:
        source = await (await runtime.start(workflow)).wait()
        forked = await (await runtime.fork(source.execution_id, "b", workflow=bigger)).wait()
    assert forked.succeeded, forked.error
    assert forked.steps["b"].output["text"] == "b"
    assert len(fake.requests) == 2


async def test_under_a_cost_cap_a_model_without_a_price_is_refused_at_load() -> None:
    """A workflow cap, a step cap or max_cost_usd make an unpriced model a load problem."""
    from orchestr8 import WorkflowValidationError

    unpriced = llm_step("a")
    unpriced["agent"]["config"]["model"] = "anthropic:claude-unreleased"
    async with open_runtime() as runtime:
        runtime.load(document(unpriced))
        for workflow in (
            document(unpriced, budget={"max_cost_usd": 1}),
            document({**unpriced, "budget": {"max_cost_usd": 1}}),
        ):
            with pytest.raises(WorkflowValidationError, match="has no price"):
                runtime.load(workflow)
        with pytest.raises(WorkflowValidationError, match="has no price"):
            await runtime.start(document(unpriced), max_cost_usd=1.0)


async def test_a_model_that_bills_more_than_estimated_is_reserved_at_what_it_billed(
    fake: FakeAnthropic,
) -> None:
    """A one-character prompt billed 2,000 tokens: the next call asks 2,000 and the cap holds."""
    fake.reply_text("ok", input_tokens=2000, output_tokens=2)
    workflow = document(
        llm_step("a"), llm_step("b", on_error="continue"), budget={"max_input_tokens": 3000}
    )
    result, events = await execute(workflow)
    assert len(fake.requests) == 1
    [reserved] = of_type(events, "budget.reserved")
    [exhausted] = of_type(events, "budget.exhausted")
    assert reserved.data["input_tokens"] < 20
    assert exhausted.data["limit"] == "max_input_tokens"
    assert exhausted.data["asked"] == 2000
    assert exhausted.data["remaining"] == 1000
    assert result.steps["b"].error is not None


def child_step(step_id: str, *steps: dict[str, Any]) -> dict[str, Any]:
    """A sub-workflow step whose inline child runs `steps` one after another."""
    child = {
        "schema_version": "1.1",
        "name": "child",
        "strategy": "sequential",
        "steps": list(steps),
    }
    return {"id": step_id, "workflow": child, "policy": NO_RETRY}


async def test_max_cost_caps_a_child_execution_too(fake: FakeAnthropic) -> None:
    """--max-cost covers the execution tree: a call of a child the cap cannot cover is refused.

    The refusal is journaled by the parent, on the sub-workflow step; no API call is made.
    """
    workflow = document(child_step("c", llm_step("s")))
    result, events = await execute(workflow, max_cost_usd=0.0001)
    assert not result.succeeded
    assert fake.requests == []
    [exhausted] = of_type(events, "budget.exhausted")
    assert exhausted.step_id == "c"
    assert exhausted.data["limit"] == "max_cost_usd"
    error = result.steps["c"].error
    assert error is not None
    assert "in the parent execution, for its step c" in error["message"]
    # Not retried: the step fails with the budget's own error after one attempt.
    assert error["type"] == "BudgetExhaustedError"
    assert result.steps["c"].attempts == 1


async def test_a_parents_budget_counts_its_childrens_calls(fake: FakeAnthropic) -> None:
    """Three calls in two children under the parent's two-call budget: the third is refused.

    The parent's journal holds the children's reservations and settlements on their steps, so
    a resume of the parent counts them.
    """
    for _ in range(2):
        fake.reply_text("ok", input_tokens=10, output_tokens=5)
    workflow = document(
        child_step("c", llm_step("s"), llm_step("t")),
        child_step("d", llm_step("u")),
        budget={"max_llm_calls": 2},
    )
    workflow["steps"][1]["depends_on"] = ["c"]
    workflow["steps"][1]["on_error"] = "continue"
    result, events = await execute(workflow)
    assert len(fake.requests) == 2
    assert [event.step_id for event in of_type(events, "budget.settled")] == ["c", "c"]
    assert [event.step_id for event in of_type(events, "budget.exhausted")] == ["d"]
    assert journal_spend(events).steps["c"] == Spend(
        cost_usd=of_type(events, "budget.settled")[0].data["cost_usd"] * 2,
        input_tokens=20,
        output_tokens=10,
        llm_calls=2,
    )
    assert result.steps["c"].error is None


async def test_under_a_cap_a_childs_model_without_a_price_is_refused_at_load() -> None:
    """A cost cap on the parent covers its children: their models need a price at load."""
    step = llm_step("s")
    step["agent"]["config"]["model"] = "anthropic:no-such-model"
    workflow = document(child_step("c", step), budget={"max_cost_usd": 1.0})
    with pytest.raises(Exception, match=r"\$\.steps\[0\]\.workflow\.steps\[0\]\.agent.*no price"):
        await execute(workflow)


async def test_a_models_first_call_runs_alone_so_a_parallel_map_keeps_an_input_cap(
    fake: FakeAnthropic,
) -> None:
    """Ten items at once, each billed 2,000 tokens for a 10-token estimate, cap 5,000.

    The first call runs alone; the others then ask 2,000 each: two calls are made, 4,000 tokens,
    where blind estimates would have let all ten through (20,000).
    """
    for _ in range(2):
        fake.reply_text("ok", input_tokens=2000, output_tokens=2)
    step = llm_step("each", for_each="inputs.items", on_item_error="continue")
    step["input"] = "Item ${item}"
    workflow = document(step, budget={"max_input_tokens": 5000})
    workflow["inputs"] = {"type": "object"}
    result, events = await execute(workflow, inputs={"items": list(range(10))})
    assert len(fake.requests) == 2
    assert [event.data["input_tokens"] for event in of_type(events, "budget.reserved")] == [
        10,
        2000,
    ]
    assert sum(event.data["input_tokens"] for event in of_type(events, "budget.settled")) == 4000
    assert len(of_type(events, "budget.exhausted")) == 8
    assert sum(output is not None for output in result.steps["each"].output) == 2


async def test_a_call_limit_alone_never_makes_a_first_call_wait(fake: FakeAnthropic) -> None:
    """Without an input or cost limit the estimate cannot overspend: items start together."""
    for _ in range(3):
        fake.reply_text("ok", input_tokens=5, output_tokens=5)
    step = llm_step("each", for_each="inputs.items")
    step["input"] = "Item ${item}"
    workflow = document(step, budget={"max_llm_calls": 3})
    workflow["inputs"] = {"type": "object"}
    result, events = await execute(workflow, inputs={"items": list(range(3))})
    assert result.succeeded
    kinds = [event.type for event in events if event.type.startswith("budget.")]
    assert kinds[:3] == ["budget.reserved"] * 3


async def test_a_raise_resolves_the_other_pauses_it_covers(fake: FakeAnthropic) -> None:
    """Three items past a one-call step budget: two wait at m.budget and m.budget#2.

    Approving max_llm_calls 3 at one gate resolves the other as covered: all three calls run.
    """
    for _ in range(3):
        fake.reply_text("ok")
    step = llm_step("m", for_each="inputs.items")
    step["input"] = "Item ${item}"
    step["budget"] = {"max_llm_calls": 1, "on_exhaust": "pause"}
    step["policy"] = {"timeout": None, "retry": {"max_attempts": 1}, "circuit_breaker": None}
    workflow = document(step)
    workflow["inputs"] = {"type": "object"}
    async with open_runtime() as runtime:
        handle = await runtime.start(workflow, inputs={"items": [0, 1, 2]})
        await handle.wait_blocked_on_gates()
        gates = sorted(gate.gate_id for gate in handle.open_gates())
        assert gates == ["m.budget", "m.budget#2"]
        assert handle.gates is not None
        await handle.gates.answer(gates[0], {"approve": True, "input": {"max_llm_calls": 3}})
        result = await handle.wait()
        events = await runtime.journal.events(handle.execution_id)
    assert result.succeeded, result.error
    assert len(fake.requests) == 3
    resolved = {event.step_id: event.data for event in of_type(events, "gate.resolved")}
    assert resolved[gates[1]]["how"] == "covered"
    assert resolved[gates[1]]["by"] == "orchestr8"
    assert resolved[gates[1]]["reason"] == "covered by the limits approved at gate m.budget"

"""Answering a gate: checked on submit against the gate's schema, recorded once, then applied."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
from gate_scripts import (
    AMOUNT_SCHEMA,
    GATED,
    STAMP,
    append,
    gate_opened,
    gate_resolved,
    opened,
    record_gated,
)
from hypothesis import given
from hypothesis import strategies as st

from orchestr8 import open_runtime
from orchestr8._errors import (
    GateAlreadyAnsweredError,
    GateAnswerInvalidError,
    GateNotFoundError,
    Problem,
)
from orchestr8._execution._answers import (
    answer_problems,
    answered_by,
    find_gate,
    gate_step_id,
    submit_answer,
)
from orchestr8._execution._lock import ExecutionLocks
from orchestr8._journal._events import EventType
from orchestr8._journal._journal import open_journal
from orchestr8._journal._requests import RequestKind

APPROVE = {"approve": True, "input": {"amount": 12}}


@pytest.mark.parametrize(
    ("gate_id", "step_id"),
    [
        ("sign", "sign"),
        ("review[3]", "review"),
        ("poll#2", "poll"),
        ("a#2[0]", "a"),
        ("x[y]", "x[y]"),
    ],
)
def test_a_gate_id_names_its_approval_step(gate_id: str, step_id: str) -> None:
    """`STEP[i]` and `STEP#k` are units of `STEP`; anything else is a step id as it is."""
    assert gate_step_id(gate_id) == step_id


async def test_an_unknown_gate_is_refused_naming_the_approval_steps() -> None:
    """No approval step by that id: 404-style error listing those that exist."""
    async with open_journal() as journal:
        await record_gated(journal, "e1")
        with pytest.raises(GateNotFoundError, match=r"no approval step 'draft'.*sign, review"):
            await submit_answer(journal, "e1", "draft", APPROVE)
        with pytest.raises(GateNotFoundError, match=r"child execution e1\.child"):
            await find_gate(journal, "e1", "child")
        nested = {
            **GATED,
            "steps": [
                {"id": "inner", "workflow": {"steps": [{"id": "cg", "approval": {}}]}},
            ],
        }
        await record_gated(journal, "e2", workflow=nested)
        with pytest.raises(GateNotFoundError) as raised:
            await find_gate(journal, "e2", "cg")
        assert str(raised.value).endswith(
            "; cg is a step of the sub-workflow of inner: answer it in the child execution e2.inner"
        )
        assert await journal.requests("e1") == []


async def test_a_gate_id_must_fit_its_step_map_or_not() -> None:
    """A map's gates are addressed per item; a plain step's gate has no index."""
    async with open_journal() as journal:
        await record_gated(journal, "e1")
        with pytest.raises(GateNotFoundError, match=r"review\[0\], review\[1\]"):
            await find_gate(journal, "e1", "review")
        with pytest.raises(GateNotFoundError, match="sign is not a map"):
            await find_gate(journal, "e1", "sign[0]")
        with pytest.raises(GateNotFoundError, match="sign is not a loop"):
            await find_gate(journal, "e1", "sign#2")
        looped = {**GATED, "steps": [{"id": "poll", "approval": {}, "repeat": {}}]}
        await record_gated(journal, "e2", workflow=looped)
        with pytest.raises(GateNotFoundError, match="poll#1, poll#2"):
            await find_gate(journal, "e2", "poll")
        with pytest.raises(GateNotFoundError, match="no gate 'poll\\[0\\]'; its gates are poll#1"):
            await find_gate(journal, "e2", "poll[0]")
        assert (await find_gate(journal, "e2", "poll#3")).step_id == "poll"
        assert (await find_gate(journal, "e1", "review[1]")).step_id == "review"


async def test_a_gate_past_the_maps_items_or_the_loops_bound_is_not_found() -> None:
    """Once map.started recorded 2 items, review[2] is no gate; poll#4 is past max_iterations."""
    async with open_journal() as journal:
        await record_gated(journal, "e1")
        assert (await find_gate(journal, "e1", "review[7]")).step_id == "review"
        await append(journal, "e1", (EventType.STEP_STARTED, "review", {}))
        await append(journal, "e1", (EventType.MAP_STARTED, "review", {"count": 2}))
        with pytest.raises(GateNotFoundError, match=r"no gate 'review\[2\]': map review has 2"):
            await find_gate(journal, "e1", "review[2]")
        assert (await find_gate(journal, "e1", "review[1]")).step_id == "review"
        looped = {
            **GATED,
            "steps": [{"id": "poll", "approval": {}, "repeat": {"max_iterations": 3}}],
        }
        await record_gated(journal, "e2", workflow=looped)
        with pytest.raises(GateNotFoundError, match="loop poll has iterations poll#1 to #3"):
            await find_gate(journal, "e2", "poll#4")
        with pytest.raises(GateNotFoundError, match="poll#1 to #3"):
            await find_gate(journal, "e2", "poll#0")
        assert (await find_gate(journal, "e2", "poll#3")).step_id == "poll"


async def test_a_number_with_a_leading_zero_is_refused_naming_the_gate_meant() -> None:
    """review[01] and poll#02 would be held apart from review[1] and poll#2: refused instead."""
    looped = {**GATED, "steps": [*GATED["steps"], {"id": "poll", "approval": {}, "repeat": {}}]}
    async with open_journal() as journal:
        await record_gated(journal, "e1", workflow=looped)
        with pytest.raises(GateNotFoundError) as raised:
            await find_gate(journal, "e1", "review[01]")
        assert str(raised.value) == (
            "execution e1: no gate 'review[01]': write the number without a leading zero, review[1]"
        )
        with pytest.raises(GateNotFoundError, match=r"leading zero, poll#2$"):
            await find_gate(journal, "e1", "poll#02")
        assert (await find_gate(journal, "e1", "review[0]")).step_id == "review"


async def test_a_gate_whose_step_or_item_was_skipped_is_refused() -> None:
    """A skipped gate never opens: an answer for it could never apply, so it is not held."""
    skipped = {"reason": "when was false: inputs.go"}
    async with open_journal() as journal:
        await record_gated(journal, "e1", (EventType.STEP_SKIPPED, "sign", skipped))
        await append(journal, "e1", (EventType.STEP_SKIPPED, "review[1]", skipped))
        with pytest.raises(GateNotFoundError) as raised:
            await submit_answer(journal, "e1", "sign", APPROVE)
        assert str(raised.value) == (
            "execution e1: gate 'sign' never opens: step sign was skipped "
            "(when was false: inputs.go)"
        )
        with pytest.raises(GateNotFoundError, match="step review\\[1\\] was skipped"):
            await find_gate(journal, "e1", "review[1]")
        assert await journal.requests("e1") == []


def test_problems_show_the_values_as_json() -> None:
    """true, null and objects are written as JSON in problems, never as Python's True or None."""
    schema = {"properties": {"a": {"type": "string"}, "b": {"const": 1}, "c": {"type": "array"}}}
    body = {"approve": True, "input": {"a": True, "b": {"x": 2}, "c": None}}
    assert answer_problems(body, schema) == [
        Problem("$.input.a", "true is not of type 'string'"),
        Problem("$.input.b", "1 was expected"),
        Problem("$.input.c", "null is not of type 'array'"),
    ]
    assert answer_problems({"approve": None}, None) == [
        Problem("$.approve", "expected true or false, got null")
    ]


async def test_an_invalid_answer_lists_every_problem_and_records_nothing() -> None:
    """Each schema error has its path under `$.input`; the gate stays open for a valid one."""
    async with open_journal() as journal:
        await record_gated(journal, "e1", gate_opened("sign", AMOUNT_SCHEMA))
        body = {"approve": True, "input": {"amount": 5, "extra": 1}}
        with pytest.raises(GateAnswerInvalidError) as raised:
            await submit_answer(journal, "e1", "sign", body)
        assert [str(problem) for problem in raised.value.problems] == [
            "$.input: Additional properties are not allowed ('extra' was unexpected)",
            "$.input.amount: 5 is less than the minimum of 10",
        ]
        assert await journal.requests("e1") == []
        outcome = await submit_answer(journal, "e1", "sign", APPROVE)
        assert outcome.request.body == {
            "approve": True,
            "input": {"amount": 12},
            "reason": None,
            "by": "api",
        }


async def test_a_rejection_needs_a_reason_and_skips_the_schema() -> None:
    """No reason: refused at `$.reason`; with one, the input is not held to the form."""
    async with open_journal() as journal:
        await record_gated(journal, "e1", gate_opened("sign", AMOUNT_SCHEMA))
        with pytest.raises(GateAnswerInvalidError, match=r"\$\.reason: a rejection needs"):
            await submit_answer(journal, "e1", "sign", {"approve": False, "reason": "  "})
        outcome = await submit_answer(
            journal, "e1", "sign", {"approve": False, "reason": "too much"}, by="ada@lab"
        )
        assert outcome.request.body["by"] == "ada@lab"
        assert "rejection recorded" in outcome.message


async def test_an_answer_nobody_applies_says_resume_continues_it(tmp_path: Path) -> None:
    """Recorded for a waiting execution no process runs: the message names `orchestr8 resume`."""
    async with open_journal(tmp_path / "journal.db") as journal:
        await record_gated(journal, "e1", gate_opened("sign", AMOUNT_SCHEMA))
        outcome = await submit_answer(journal, "e1", "sign", APPROVE)
        assert (outcome.status, outcome.runner, outcome.held) == ("recorded", "nobody", False)
        assert "`orchestr8 resume e1` continues it" in outcome.message
        assert outcome.gate is not None
        assert outcome.gate.status == "open"
        [request] = await journal.requests("e1")
        assert (request.kind, request.target, request.outcome) == (RequestKind.ANSWER, "sign", None)
        assert outcome.to_json()["request_id"] == request.request_id


async def test_an_answer_after_the_deadline_nobody_ran_is_refused_naming_it() -> None:
    """Past an open gate's deadline with no process running it: 409 naming what resume does."""
    async with open_journal() as journal:
        late = {**opened("sign"), "deadline": "2020-01-01T00:00:00+00:00", "on_timeout": "approve"}
        await record_gated(journal, "e1", (EventType.GATE_OPENED, "sign", late))
        with pytest.raises(GateAlreadyAnsweredError) as refused:
            await submit_answer(journal, "e1", "sign", {"approve": True})
        assert await journal.requests("e1") == []
    assert str(refused.value) == (
        "gate sign of execution e1 timed out at 2020-01-01T00:00:00+00:00 (its deadline passed "
        "while no process ran it): it takes no answer, and it resolves as approved when resumed "
        "(`orchestr8 resume e1`)"
    )


async def test_an_answer_for_a_locked_execution_is_applied_by_its_process(tmp_path: Path) -> None:
    """Another process holds the execution's lock: recorded, it applies it within a second."""
    path = tmp_path / "journal.db"
    async with open_journal(path) as journal:
        await record_gated(journal, "e1", gate_opened("sign", AMOUNT_SCHEMA))
        locks = ExecutionLocks(path)
        try:
            assert locks.acquire("e1")
            outcome = await submit_answer(journal, "e1", "sign", APPROVE)
        finally:
            locks.close()
        assert outcome.runner == "elsewhere"
        assert "the process running it applies it" in outcome.message


async def test_an_early_answer_is_held_and_checked_against_the_steps_schema() -> None:
    """Before the gate opens: validated with the document's schema, recorded, held."""
    async with open_journal() as journal:
        await record_gated(journal, "e1")
        with pytest.raises(GateAnswerInvalidError, match="minimum of 10"):
            await submit_answer(journal, "e1", "sign", {"approve": True, "input": {"amount": 1}})
        outcome = await submit_answer(journal, "e1", "sign", APPROVE)
        assert outcome.held
        assert outcome.gate is None
        assert "applies when the gate opens" in outcome.message
        assert (await submit_answer(journal, "e1", "review[1]", {"approve": True})).held


async def test_a_second_answer_is_refused_naming_who_answered_and_when() -> None:
    """One answer per gate: the second is refused with the first's author and time."""
    async with open_journal() as journal:
        await record_gated(journal, "e1", gate_opened("sign", AMOUNT_SCHEMA))
        first = await submit_answer(journal, "e1", "sign", APPROVE, by="ada@lab")
        with pytest.raises(GateAlreadyAnsweredError) as raised:
            await submit_answer(journal, "e1", "sign", {"approve": False, "reason": "no"})
        message = str(raised.value)
        assert "approved by ada@lab at " + first.request.created_at in message
        assert raised.value.existing == first.request


async def test_a_resolved_gate_and_a_finished_execution_take_no_answer() -> None:
    """A gate resolved (by a person or its deadline) or an ended execution: refused."""
    async with open_journal() as journal:
        await record_gated(journal, "e1", gate_opened("sign"), gate_resolved("sign", by="bob@desk"))
        with pytest.raises(GateAlreadyAnsweredError) as raised:
            await submit_answer(journal, "e1", "sign", APPROVE)
        assert str(raised.value) == (
            "gate sign of execution e1 is resolved already: approved "
            f"(answered by bob@desk at {STAMP}, event 3)"
        )
        await record_gated(
            journal, "e2", gate_opened("sign"), gate_resolved("sign", False, how="timeout")
        )
        with pytest.raises(GateAlreadyAnsweredError, match="rejected \\(timed out"):
            await submit_answer(journal, "e2", "sign", APPROVE)
        await record_gated(journal, "e3")
        await append(journal, "e3", (EventType.EXECUTION_SUCCEEDED, None, {"output": None}))
        with pytest.raises(GateAlreadyAnsweredError, match="execution e3 already succeeded"):
            await submit_answer(journal, "e3", "sign", APPROVE)
        gate = (await find_gate(journal, "e2", "sign")).state
        assert gate is not None
        assert answered_by(gate) == "its deadline"
        await record_gated(journal, "e4", gate_opened("sign"))
        await append(journal, "e4", (EventType.EXECUTION_CANCELLED, None, {"reason": "stop"}))
        with pytest.raises(GateAlreadyAnsweredError, match="was closed: the execution ended"):
            await submit_answer(journal, "e4", "sign", APPROVE)
        gate = (await find_gate(journal, "e4", "sign")).state
        assert gate is not None
        assert answered_by(gate) == "someone"


async def test_an_ended_execution_is_named_first_whatever_became_of_the_gate() -> None:
    """After the run ended, a resolved gate or a held answer is not what the refusal says."""
    async with open_journal() as journal:
        await record_gated(journal, "e1", gate_opened("sign"), gate_resolved("sign"))
        await append(journal, "e1", (EventType.EXECUTION_SUCCEEDED, None, {"output": None}))
        await record_gated(journal, "e2")
        await submit_answer(journal, "e2", "sign", APPROVE)
        await append(journal, "e2", (EventType.EXECUTION_FAILED, None, {"error": "boom"}))
        for execution_id, status in (("e1", "succeeded"), ("e2", "failed")):
            with pytest.raises(GateAlreadyAnsweredError) as raised:
                await submit_answer(journal, execution_id, "sign", APPROVE)
            assert str(raised.value) == (
                f"execution {execution_id} already {status}; its gates take no answers"
            )


async def test_an_answer_to_an_execution_this_runtime_runs_waits_until_applied(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Run here: the answer is reported `applied` once the run's control loop settles it."""
    async with open_runtime(cancel_grace=0.1) as runtime:
        journal = runtime.journal
        await record_gated(journal, "e1", gate_opened("sign"))
        # A live run stands for e1 (the gate itself needs the engine's gate board).
        live = await runtime.start(
            {
                "schema_version": "1.0",
                "name": "n",
                "steps": [{"id": "nap", "agent": "sleep", "input": {"seconds": 30}}],
            }
        )
        monkeypatch.setattr(runtime, "find", lambda execution_id: live)

        async def settle_when_recorded() -> None:
            await journal.wait_for_request(5)
            [request] = await journal.requests("e1")
            await journal.settle_request(request.request_id, "applied", "gate approved")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(settle_when_recorded)
            outcome = await submit_answer(journal, "e1", "sign", {"approve": True}, runtime=runtime)
        live.cancel()
        assert (outcome.status, outcome.runner) == ("applied", "here")
        assert outcome.message.endswith("approval applied")


async def test_an_answer_the_run_refuses_is_reported_as_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The gate board refused it (its deadline won the race): 409-style error with the detail."""
    async with open_runtime(cancel_grace=0.1) as runtime:
        journal = runtime.journal
        await record_gated(journal, "e1", gate_opened("sign"))
        live = await runtime.start(
            {
                "schema_version": "1.0",
                "name": "n",
                "steps": [{"id": "nap", "agent": "sleep", "input": {"seconds": 30}}],
            }
        )
        monkeypatch.setattr(runtime, "find", lambda execution_id: live)

        async def refuse_when_recorded() -> None:
            await journal.wait_for_request(5)
            [request] = await journal.requests("e1")
            await journal.settle_request(request.request_id, "refused", "timed out first")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(refuse_when_recorded)
            with pytest.raises(GateAlreadyAnsweredError, match="refused the answer: timed out"):
                await submit_answer(journal, "e1", "sign", {"approve": True}, runtime=runtime)
        live.cancel()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)


@given(
    body=json_values
    | st.fixed_dictionaries(
        {"approve": st.booleans()},
        optional={"input": json_values, "reason": json_values, "by": json_values},
    ),
    schema=st.sampled_from([None, AMOUNT_SCHEMA, {"type": "object"}, {"type": 5}, {"$ref": "x:y"}]),
)
def test_any_answer_either_fits_or_yields_problems_with_paths(body: Any, schema: Any) -> None:
    """Whatever the body and schema, the check returns problems at JSON paths, never raises."""
    problems = answer_problems(body, schema)
    assert all(isinstance(problem, Problem) for problem in problems)
    assert all(problem.path.startswith("$") and problem.message for problem in problems)
    if not problems:
        assert isinstance(body, dict)
        assert isinstance(body["approve"], bool)


@pytest.mark.parametrize(
    ("body", "schema", "expected"),
    [
        ("yes", None, ["$: expected an object, got string"]),
        ({"approve": 1}, None, ["$.approve: expected true or false, got 1"]),
        ({}, None, ["$.approve: required"]),
        (
            {"approve": True, "input": [1], "by": 3},
            None,
            ["$.by: expected a string, got number", "$.input: expected an object, got array"],
        ),
        (
            {"approve": True, "input": {}},
            {"type": 5},
            [
                "$.input: the gate's schema is not a valid JSON Schema: 5 is not valid under any "
                "of the given schemas"
            ],
        ),
        (
            {"approve": True, "input": {}},
            {"$ref": "urn:nowhere"},
            [
                "$.input: the gate's schema has a reference that does not resolve: "
                "Unresolvable: urn:nowhere"
            ],
        ),
        (
            {"approve": True, "input": {"x": {"y": [True]}}},
            {"properties": {"x": {"properties": {"y": {"items": {"type": "string"}}}}}},
            ["$.input.x.y[0]: true is not of type 'string'"],
        ),
        (
            {"approve": True, "input": {"mail": "nope"}},
            {"properties": {"mail": {"format": "email"}}},
            ["$.input.mail: 'nope' is not a 'email'"],
        ),
    ],
)
def test_each_problem_of_an_answer_is_named_at_its_path(
    body: object, schema: Any, expected: list[str]
) -> None:
    """Not an object, a wrong type, a broken gate schema, a nested misfit: each at its path."""
    assert [str(problem) for problem in answer_problems(body, schema)] == expected


async def test_two_answers_racing_for_a_gate_one_wins(tmp_path: Path) -> None:
    """Submitted at once (two terminals): one is recorded, the other refused naming it."""
    async with open_journal(tmp_path / "journal.db") as journal:
        await record_gated(journal, "e1", gate_opened("sign"))
        won: list[str] = []
        refused: list[GateAlreadyAnsweredError] = []

        async def answer(by: str) -> None:
            try:
                await submit_answer(journal, "e1", "sign", {"approve": True}, by=by)
            except GateAlreadyAnsweredError as error:
                refused.append(error)
            else:
                won.append(by)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(answer, "ada")
            nursery.start_soon(answer, "bob")
        assert len(won) == 1
        [error] = refused
        assert f"approved by {won[0]} at" in str(error)
        assert len(await journal.requests("e1")) == 1

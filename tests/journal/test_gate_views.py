"""`_gate_views`: expired gates and refused answers, as the views show them."""

from __future__ import annotations

import datetime

from orchestr8._execution._gates import gate_document
from orchestr8._journal._gate_views import (
    all_gates_expired,
    expiry_outcome,
    is_expired,
    refused_answer_line,
    refused_answers,
)
from orchestr8._journal._replay import GateState
from orchestr8._journal._requests import ControlRequest, RequestKind

NOW = datetime.datetime(2030, 1, 1, 12, 0, tzinfo=datetime.UTC)


def gate(deadline: str | None, status: str = "open", on_timeout: str = "approve") -> GateState:
    """A gate with this deadline and status."""
    return GateState(gate_id="g", status=status, deadline=deadline, on_timeout=on_timeout)


def answer(request_id: int, outcome: str | None, **body: object) -> ControlRequest:
    """An answer request for gate g, settled `outcome` with a detail when refused."""
    detail = "gate 'g' was timed out already" if outcome == "refused" else None
    return ControlRequest(
        request_id,
        "run-1",
        RequestKind.ANSWER,
        "g",
        dict(body),
        "2030-01-01T11:00:00.000Z",
        outcome=outcome,
        detail=detail,
    )


def test_an_open_gate_past_its_deadline_is_expired() -> None:
    """Open with a passed deadline: expired; a future one, none, or a resolved gate: not."""
    assert is_expired(gate("2030-01-01T11:59:59.000Z"), NOW)
    assert is_expired(gate("2030-01-01T12:00:00Z"), NOW)
    assert not is_expired(gate("2030-01-01T12:00:01.000Z"), NOW)
    assert not is_expired(gate(None), NOW)
    assert not is_expired(gate("not a time"), NOW)
    assert not is_expired(gate("2030-01-01T11:00:00.000Z", status="approved"), NOW)
    assert gate_document(gate("2030-01-01T11:00:00"), now=NOW)["expired"] is True
    assert expiry_outcome("approve") == "resolves as approved when resumed"
    assert expiry_outcome("reject") == "resolves as rejected when resumed"
    assert expiry_outcome(None) == "resolves as rejected when resumed"
    assert expiry_outcome("fail") == "fails its step (GateTimedOutError) when resumed"


def test_refused_answers_are_listed_with_who_and_why() -> None:
    """Only refused answers, oldest first; cancels and applied or pending answers are left out."""
    requests = [
        answer(1, "refused", approve=True, by="ann"),
        answer(2, "applied", approve=True, by="bob"),
        answer(3, None, approve=False, by="cy"),
        ControlRequest(4, "run-1", RequestKind.CANCEL, None, {}, "t", outcome="refused"),
        answer(5, "refused", approve=False),
    ]
    listed = refused_answers(requests)
    assert [item["request_id"] for item in listed] == [1, 5]
    assert listed[0] == {
        "request_id": 1,
        "gate_id": "g",
        "approve": True,
        "by": "ann",
        "created_at": "2030-01-01T11:00:00.000Z",
        "detail": "gate 'g' was timed out already",
    }
    assert refused_answer_line(listed[0]) == (
        "approval #1 of gate g by ann was refused: gate 'g' was timed out already"
    )
    assert refused_answer_line({**listed[1], "detail": None}) == (
        "rejection #5 of gate g was refused: no reason given"
    )


def test_all_gates_expired_needs_open_gates_all_past_their_deadlines() -> None:
    """No open gate, or one still in time: not all expired; resolved gates do not count."""
    past, future = gate("2030-01-01T11:00:00.000Z"), gate("2030-01-01T13:00:00.000Z")
    resolved = gate(None, status="approved")
    assert all_gates_expired([past, resolved], NOW)
    assert not all_gates_expired([past, future], NOW)
    assert not all_gates_expired([resolved], NOW)
    assert not all_gates_expired([], NOW)

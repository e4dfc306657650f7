"""Approval gates as the views show them: expired deadlines, and answers that were refused.

The journal holds what happened; a person also needs what it means now. Two things replay alone
cannot say:

- A gate's deadline is wall-clock time (it survives restarts), but only a running process
  applies `on_timeout`: a gate of a `waiting` execution whose deadline passed while no process
  ran it is still `open` in the journal. The views show it *expired* (`expired: true` in the
  JSON, `expired` in `inspect`'s GATES table) with what a resume does with it
  (`expiry_outcome`). Pure view logic, from the deadline and the wall clock: nothing is recorded.
- An answer the execution's owner refused (it names no gate, came after the timeout, or does
  not fit) lives only in the `requests` table, with the reason in its `detail`. `inspect ID`
  lists each under the GATES table and REST gives them in the gate documents
  (`refused_answers`), so whoever answered learns it was not taken.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from typing import Any, Final

from ._replay import GateState
from ._requests import ControlRequest, RequestKind

__all__ = [
    "all_gates_expired",
    "expiry_outcome",
    "is_expired",
    "refused_answer_line",
    "refused_answers",
]

_OUTCOMES: Final[Mapping[str, str]] = {
    "approve": "resolves as approved when resumed",
    "reject": "resolves as rejected when resumed",
    "fail": "fails its step (GateTimedOutError) when resumed",
}


def _parse(timestamp: str | None) -> datetime.datetime | None:
    if not timestamp:
        return None
    try:
        moment = datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=datetime.UTC)


def is_expired(gate: GateState, now: datetime.datetime) -> bool:
    """Whether `gate` is still open though its deadline has passed at `now` (UTC)."""
    deadline = _parse(gate.deadline)
    return gate.is_open and deadline is not None and deadline <= now


def all_gates_expired(gates: Iterable[GateState], now: datetime.datetime) -> bool:
    """Whether `gates` has open gates and every one of them is expired at `now`."""
    open_gates = [gate for gate in gates if gate.is_open]
    return bool(open_gates) and all(is_expired(gate, now) for gate in open_gates)


def expiry_outcome(on_timeout: str | None) -> str:
    """What a resume does with an expired gate, in words: `resolves as approved when resumed`."""
    return _OUTCOMES.get(on_timeout or "reject", _OUTCOMES["reject"])


def refused_answers(requests: Iterable[ControlRequest]) -> list[dict[str, Any]]:
    """The answers the owner refused, oldest first, each with who sent it and why it was refused."""
    return [
        {
            "request_id": request.request_id,
            "gate_id": request.target,
            "approve": request.body.get("approve"),
            "by": request.body.get("by"),
            "created_at": request.created_at,
            "detail": request.detail,
        }
        for request in requests
        if request.kind == RequestKind.ANSWER and request.outcome == "refused"
    ]


def refused_answer_line(refused: Mapping[str, Any]) -> str:
    """One line for people about a refused answer: `answer #3 to g by ann refused: why`."""
    verdict = "approval" if refused.get("approve") is True else "rejection"
    by = f" by {refused['by']}" if refused.get("by") else ""
    detail = refused.get("detail") or "no reason given"
    return (
        f"{verdict} #{refused['request_id']} of gate {refused['gate_id']}{by} was refused: {detail}"
    )

"""Approval gates at run time: the gate board of an execution, and how a gate unit waits.

An approval step (`_workflow/_approvals.py`) runs no agent: its unit (the step `ID`, a map item
`ID[i]`, a loop iteration `ID#k`: the *gate id*) opens a gate when it becomes ready. Opening
records `gate.opened` (the prompt, rendered now, the answer's schema, the timeout and its
deadline as wall-clock time), and the unit then waits, holding its step actor, while the rest of
the workflow goes on. The gate resolves once:

- by an answer, delivered to the board (`GateBoard.deliver`) by the control loop or by
  `GateBoard.answer` in this process: it is checked against the schema again (an invalid one is
  refused and the gate stays open), `gate.resolved` is recorded and flushed, and only then is
  the request settled `applied` (so a crash in between leaves a pending request whose id is in
  `gate.resolved`: the next run settles it `applied`, never applies it twice);
- by its deadline (the trio clock inside a run): `on_timeout` `reject` or `approve` resolves it
  so, with the reason `timed out after N s`; `fail` fails the step with `GateTimedOutError`,
  never retried.

Either way the step succeeds with `{"approved", "input", "by", "reason"}`: a rejected gate is a
step that succeeded with `approved` false, and its dependents read it (`when:
"steps.g.output.approved"`). An answer for a gate that has not opened yet is held (still
pending in the journal) and applied when it opens, in request order; an answer for a resolved
gate is refused with the reason. A run that stops (a cancel, a timeout, a failure, `suspend`)
ends its waiting gates as cancelled units, recording nothing for them but what any unit gets.

A resumed run re-opens a gate that was open with its original deadline (`reopened`): a deadline
that passed meanwhile applies `on_timeout` at once, unless an answer was recorded before the
deadline (its request's `created_at`), which wins. Answers recorded while no process ran the
execution are pending requests, read when the gate opens. A gate resolved in the journal whose
step never recorded its end resolves again from that record, asking nobody.
"""

from __future__ import annotations

import contextlib
import datetime
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

import attrs
import trio

from .._errors import (
    CallStoppedError,
    GateAlreadyAnsweredError,
    GateAnswerInvalidError,
    GateNotFoundError,
    GateTimedOutError,
    JournalError,
)
from .._journal._events import EventType, utc_timestamp
from .._journal._gate_views import is_expired
from .._journal._replay import GateState
from .._journal._requests import ControlRequest, RequestKind
from .._journal._state_at import gate_document as state_gate_document
from .._workflow._approvals import Approval, answer_problems, with_defaults
from .._workflow._budgets import budget_pauses, pause_approval
from .._workflow._document import Step, Workflow

if TYPE_CHECKING:
    from .._journal._journal import Journal
    from ._emitter import Emitter
    from ._state import RunState

__all__ = ["GateBoard", "gate_document", "gate_step_id", "has_gates", "utc_now"]

#: Who resolved a gate that timed out, in `gate.resolved` and the step's output.
TIMEOUT_BY: Final = "timeout"


def utc_now() -> datetime.datetime:
    """The wall clock in UTC: what deadlines that must survive a restart are written in."""
    return datetime.datetime.now(datetime.UTC)


def _now() -> datetime.datetime:
    return utc_now()


def gate_document(gate: GateState, *, now: datetime.datetime | None = None) -> dict[str, Any]:
    """A gate as JSON, for `inspect` and the REST API: what it asks, and how it was answered.

    The state document's form (`_state_at.gate_document`) plus `expired`: still open, though its
    deadline passed at `now` (default: the wall clock), as happens while no process runs a
    `waiting` execution: a resume applies its `on_timeout`.
    """
    document = state_gate_document(gate)
    document["expired"] = is_expired(gate, utc_now() if now is None else now)
    return document


def has_gates(workflow: Workflow) -> bool:
    """Whether `workflow` has an approval step or a budget that pauses: it needs a gate board."""
    return any(step.approval is not None for step in workflow.steps) or budget_pauses(workflow)


def gate_step_id(gate_id: str) -> str:
    """The approval step of a gate id: `STEP[2]` and `STEP#3` (and `STEP#3[2]`) → `STEP`."""
    step_id = gate_id
    while True:
        if step_id.endswith("]"):
            head, bracket, index = step_id[:-1].rpartition("[")
            if bracket and head and index.isdigit():
                step_id = head
                continue
        head, hash_sign, number = step_id.rpartition("#")
        if hash_sign and head and number.isdigit():
            step_id = head
            continue
        return step_id


def _iso(moment: datetime.datetime | None) -> str | None:
    return None if moment is None else utc_timestamp(moment)


def _parse_time(text: str | None) -> datetime.datetime | None:
    if not text:
        return None
    moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=datetime.UTC)


def _recorded_after(request: ControlRequest, deadline: datetime.datetime | None) -> bool:
    """Whether `request` was recorded after `deadline` (too late for it)."""
    created = _parse_time(request.created_at)
    return deadline is not None and created is not None and created > deadline


def _seconds(value: float) -> str:
    return f"{value:g}"


@attrs.define(eq=False)
class _OpenGate:
    """A gate open in this run: what it asked, its deadlines, and how it resolved."""

    gate_id: str
    approval: Approval
    prompt: str
    deadline: datetime.datetime | None
    """The wall-clock deadline, as recorded (it survives restarts)."""
    opened_seq: int
    resolved_seq: int | None = None
    answer: dict[str, Any] | None = None
    """The `gate.resolved` data once claimed: by an answer or the deadline, whichever came first."""
    waiting: bool = False
    """Opened and found no answer waiting: only such a gate blocks the run."""
    done: trio.Event = attrs.field(factory=trio.Event)
    """Set once `gate.resolved` is recorded and flushed, or the gate closed unresolved."""


class GateBoard:
    """The gates of one execution: opens them, takes their answers, resolves each exactly once."""

    def __init__(
        self,
        *,
        execution_id: str,
        state: RunState,
        emitter: Emitter,
        journal: Journal,
        stop_event: trio.Event,
        before: Mapping[str, GateState] | None = None,
        wall_clock: Callable[[], datetime.datetime] | None = None,
    ) -> None:
        """Hold the gates of `state`'s run; `before` holds the gates a resumed run recorded.

        `stop_event` (a cancel, timeout, failure or suspend winding the run down) ends a waiting
        gate's unit as cancelled; `wall_clock` gives the time deadlines are written in (None:
        `utc_now`, looked up at each use).
        """
        self.execution_id = execution_id
        self._state = state
        self._steps = state.workflow.steps_by_id
        self._emitter = emitter
        self._journal = journal
        self._stop_event = stop_event
        self._wall_clock = wall_clock or _now
        self._before: dict[str, GateState] = dict(before or {})
        self._open: dict[str, _OpenGate] = {}
        self._held: dict[str, list[ControlRequest]] = {}
        self._handled: set[int] = set()
        self._resolved: dict[str, dict[str, Any]] = {
            gate_id: dict(gate.answer)
            for gate_id, gate in self._before.items()
            if gate.answer is not None
        }
        self._changed = trio.Event()
        # Gates no approval step declares, opened at run time (a budget's pause), by gate id.
        self._asked: dict[str, Approval] = {}

    # -- what the views ask ---------------------------------------------------------------------

    def open_gates(self) -> list[GateState]:
        """The gates open now, in the order they opened (as `replay` would show them)."""
        return [self._gate_state(gate) for gate in self._open.values() if gate.answer is None]

    @property
    def waiting_count(self) -> int:
        """How many gates wait for an answer (opened, no answer found): they block the run."""
        return sum(1 for gate in self._open.values() if gate.waiting)

    def waiting_ids(self) -> list[str]:
        """The ids of the gates waiting for an answer, in the order they opened."""
        return [gate.gate_id for gate in self._open.values() if gate.waiting]

    def notify(self) -> None:
        """Wake whoever waits in `changed`: a gate opened or resolved, or a unit settled."""
        self._changed.set()
        self._changed = trio.Event()

    async def changed(self) -> None:
        """Wait for the next `notify`."""
        await self._changed.wait()

    # -- answers --------------------------------------------------------------------------------

    def check_answer(self, gate_id: str, body: Mapping[str, Any]) -> Approval:
        """The approval of `gate_id` once `body` is a valid answer to it; raise otherwise.

        Raises:
            GateNotFoundError: no approval step of this execution has that gate id.
            GateAlreadyAnsweredError: the gate resolved already.
            GateAnswerInvalidError: the answer is malformed or its input does not match the schema.
        """
        approval = self._approval_of(gate_id)
        if approval is None:
            raise GateNotFoundError(f"execution {self.execution_id}: {self._not_found(gate_id)}")
        if gate_id in self._resolved:
            raise GateAlreadyAnsweredError(f"gate '{gate_id}' was resolved already")
        problems = answer_problems(approval, body)
        if problems:
            raise GateAnswerInvalidError(problems)
        return approval

    async def answer(self, gate_id: str, body: Mapping[str, Any]) -> GateState | None:
        """Answer a gate from this process: record the request in the journal, then deliver it.

        Returns the gate once resolved by it (still `open` if the run stopped first), or None
        when the gate is not open in this run (the answer is held, and applied when it opens,
        here or in the run that resumes the execution). The journal always holds it first.

        Raises:
            GateNotFoundError, GateAlreadyAnsweredError, GateAnswerInvalidError: as
                `check_answer`; nothing is recorded then.
        """
        self.check_answer(gate_id, body)
        request = await self._journal.submit_request(
            self.execution_id, RequestKind.ANSWER, dict(body), target=gate_id
        )
        gate = self._open.get(gate_id)
        await self.deliver(request)
        if gate is None:
            return None
        await gate.done.wait()
        return self._gate_state(gate)

    async def deliver(self, request: ControlRequest) -> None:
        """Apply an answer request to its gate, hold it until the gate opens, or refuse it.

        Settles the request itself (`applied` once `gate.resolved` is flushed, or `refused` with
        the reason); a held one stays pending. Delivering the same request again does nothing.
        """
        if request.request_id in self._handled:
            return
        self._handled.add(request.request_id)
        gate_id = request.target or ""
        resolved = self._resolved.get(gate_id)
        if resolved is not None:
            if resolved.get("request_id") == request.request_id:
                # Resolved by this very request before a crash: it was applied.
                await self._settle(request, "applied", "applied before the restart")
            else:
                how = "timed out" if resolved.get("how") == "timeout" else "answered"
                await self._settle(request, "refused", f"gate '{gate_id}' was {how} already")
            return
        approval = self._approval_of(gate_id)
        if approval is None:
            await self._settle(request, "refused", self._not_found(gate_id))
            return
        problems = answer_problems(approval, request.body)
        if problems:
            detail = "; ".join(f"{problem.path}: {problem.message}" for problem in problems)
            await self._settle(request, "refused", f"invalid answer: {detail}")
            return
        gate = self._open.get(gate_id)
        if gate is None or not gate.waiting:
            # Early (or the gate is still looking for answers): applied when it opens.
            self._held.setdefault(gate_id, []).append(request)
        else:
            await self._apply(gate, request)

    async def _apply(self, gate: _OpenGate, request: ControlRequest) -> None:
        body = request.body
        if gate.answer is not None:
            how = "timed out" if gate.answer.get("how") == "timeout" else "answered"
            await self._settle(request, "refused", f"gate '{gate.gate_id}' was {how} already")
            return
        answer_input = body.get("input")
        given = dict(answer_input) if isinstance(answer_input, Mapping) else {}
        approval = self._approval_of(gate.gate_id)
        if body["approve"] is True and approval is not None:
            given = with_defaults(approval.schema, given)
        durable = await self._resolve(
            gate,
            {
                "approved": bool(body["approve"]),
                "input": given,
                "by": str(body.get("by") or "unknown"),
                "reason": body.get("reason"),
                "how": "answer",
                "request_id": request.request_id,
            },
        )
        if durable:
            # Only once `gate.resolved` is durable: a crash before leaves the request pending,
            # and the next run finds its id in `gate.resolved` (`deliver`).
            await self._settle(request, "applied")

    async def _settle(
        self, request: ControlRequest, outcome: str, detail: str | None = None
    ) -> None:
        await self._journal.settle_request(request.request_id, outcome, detail)

    async def _resolve(self, gate: _OpenGate, answer: dict[str, Any]) -> bool:
        """Claim the gate for `answer`, record `gate.resolved` and flush it; whether it is durable.

        Claimed before anything awaits, so an answer and the deadline never both resolve it.
        """
        gate.answer = answer
        self._set_waiting(gate, False)
        self._resolved[gate.gate_id] = answer
        try:
            event = await self._emitter.emit(
                EventType.GATE_RESOLVED, step_id=gate.gate_id, data=answer
            )
            gate.resolved_seq = event.seq
            with contextlib.suppress(JournalError):
                await self._emitter.flush()
        finally:
            gate.done.set()
            self.notify()
        return self._emitter.failure is None

    # -- the gate unit --------------------------------------------------------------------------

    async def hold(self, step: Step, gate_id: str, local_values: Mapping[str, Any] | None) -> Any:
        """Run one gate unit: open it, wait for its answer or deadline, return the step's output.

        Raises:
            GateTimedOutError: it timed out with `on_timeout` `fail`.
            CallStoppedError: the run stopped (cancel, timeout, failure, suspend) while it waited.
            Orchestr8Error: its prompt could not be rendered.
        """
        approval = step.approval
        assert approval is not None, "only an approval step is a gate"
        recorded = self._resolved.get(gate_id)
        if recorded is not None:
            # Resolved in the run this one resumes, before its step could record its end: its
            # answer's request may still be pending (settled `applied` by `deliver`).
            await self._deliver_pending(gate_id)
            return _outcome(gate_id, approval, recorded)
        if step.for_each is not None and self._held:
            await self._refuse_held_past_the_items()
        prompt = approval.prompt.render(self._state.inputs, self._state.outputs, local_values)
        return await self._open_and_wait(gate_id, approval, prompt)

    async def ask(self, gate_id: str, approval: Approval, prompt: str) -> dict[str, Any]:
        """Open a gate no approval step declares (a budget's pause), wait, return its outcome.

        The gate is answered like any (`orchestr8 approve ID GATE`, REST, `handle.gates`);
        the outcome is `{"approved", "input", "by", "reason"}`. A gate resolved in the run this
        one resumes answers again from its record, asking nobody.

        Raises:
            CallStoppedError: the run stopped (cancel, timeout, failure, suspend) while it waited.
        """
        self._asked[gate_id] = approval
        recorded = self._resolved.get(gate_id)
        if recorded is not None:
            await self._deliver_pending(gate_id)
            return dict(_outcome(gate_id, approval, recorded))
        return dict(await self._open_and_wait(gate_id, approval, prompt))

    async def resolve_open(self, gate_id: str, answer: dict[str, Any]) -> bool:
        """Resolve the open, unanswered gate `gate_id` with `answer` (the runtime's own answer).

        A budget's raise resolves the other pauses it covers this way. False (nothing done)
        when no such gate is open or it has an answer already.
        """
        gate = self._open.get(gate_id)
        if gate is None or gate.answer is not None:
            return False
        await self._resolve(gate, answer)
        return True

    async def _open_and_wait(self, gate_id: str, approval: Approval, prompt: Any) -> Any:
        """Open the gate (`gate.opened`), take the answers waiting for it, wait for the rest."""
        before = self._before.pop(gate_id, None)
        # Open when its run stopped (suspended, or its process died): the same deadline. A gate
        # its execution closed (cancelled, failed) asks again, with a new one.
        reopened = before is not None and before.is_open
        now = self._wall_clock()
        if reopened:
            assert before is not None
            deadline = _parse_time(before.deadline)
        elif approval.timeout is not None:
            deadline = now + datetime.timedelta(seconds=approval.timeout)
        else:
            deadline = None
        data: dict[str, Any] = {
            "prompt": prompt if isinstance(prompt, str) else json.dumps(prompt),
            "schema": approval.schema,
            "timeout": approval.timeout,
            "on_timeout": approval.on_timeout,
            "deadline": _iso(deadline),
        }
        if reopened:
            data["reopened"] = True
        event = await self._emitter.emit(EventType.GATE_OPENED, step_id=gate_id, data=data)
        gate = _OpenGate(gate_id, approval, data["prompt"], deadline, event.seq)
        self._open[gate_id] = gate
        try:
            await self._take_waiting_answers(gate)
            # An answer found there resolved it already (`_apply` returns once it is recorded).
            if gate.answer is None:
                if deadline is not None and deadline <= now:
                    await self._time_out(gate)
                else:
                    await self._wait(gate, now)
        finally:
            del self._open[gate_id]
            self._set_waiting(gate, False)
            # Resolved, or closed unresolved (the run stopped): nobody waits for it any more.
            gate.done.set()
            self.notify()
        assert gate.answer is not None
        return _outcome(gate_id, approval, gate.answer)

    async def _refuse_held_past_the_items(self) -> None:
        """Refuse the early answers held for map items that cannot exist, now the count is known.

        Before a map starts any index may come; once one of its item gates opens, an answer held
        for an index at or past its item count would wait forever: it is refused, saying why.
        """
        for gate_id in [gate_id for gate_id in self._held if self._approval_of(gate_id) is None]:
            for request in self._held.pop(gate_id):
                await self._settle(request, "refused", self._not_found(gate_id))

    async def _take_waiting_answers(self, gate: _OpenGate) -> None:
        """Apply the answers that came before the gate opened: journaled ones and held ones.

        In request order; the first valid one resolves the gate, the others are refused. After a
        restart, an answer recorded after a deadline that has passed comes too late: the timeout
        resolves the gate first.
        """
        await self._deliver_pending(gate.gate_id)
        deadline = gate.deadline
        expired = deadline is not None and deadline <= self._wall_clock()
        while held := self._held.pop(gate.gate_id, None):
            for request in sorted(held, key=lambda request: request.request_id):
                if gate.answer is None and expired and _recorded_after(request, deadline):
                    await self._time_out(gate)
                await self._apply(gate, request)
        if gate.answer is None:
            self._set_waiting(gate, True)
            self.notify()

    def _set_waiting(self, gate: _OpenGate, waiting: bool) -> None:
        """Mark `gate` waiting for an answer or not; a waiting gate frees its concurrency slot.

        While it waits, its unit counts in `RunState.gated`, not against `max_concurrency`, and
        the engine starts what that lets start; once it resolves the unit counts again.
        """
        if gate.waiting == waiting:
            return
        gate.waiting = waiting
        self._state.gated += 1 if waiting else -1
        if waiting:
            self._state.on_units_ready()

    async def _deliver_pending(self, gate_id: str) -> None:
        """Deliver the journal's pending answers for `gate_id` (recorded while no run took them)."""
        for request in await self._journal.pending_requests([self.execution_id]):
            if request.kind is RequestKind.ANSWER and request.target == gate_id:
                await self.deliver(request)

    async def _wait(self, gate: _OpenGate, now: datetime.datetime) -> None:
        """Wait for an answer, the deadline (trio's clock) or the run stopping."""
        remaining = float("inf") if gate.deadline is None else (gate.deadline - now).total_seconds()
        with trio.move_on_after(remaining):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_cancel_on, self._stop_event, nursery.cancel_scope)
                await gate.done.wait()
                nursery.cancel_scope.cancel()
        if gate.answer is not None:
            # Claimed by an answer, maybe as the deadline passed: it wins once recorded.
            with trio.CancelScope(shield=True):
                await gate.done.wait()
            return
        if self._stop_event.is_set():
            raise CallStoppedError(f"gate {gate.gate_id} stopped waiting: the run is stopping")
        await self._time_out(gate)

    async def _time_out(self, gate: _OpenGate) -> None:
        approval = gate.approval
        timeout = approval.timeout or 0.0
        await self._resolve(
            gate,
            {
                "approved": approval.on_timeout == "approve",
                "input": {},
                "by": TIMEOUT_BY,
                "reason": f"timed out after {_seconds(timeout)} s",
                "how": "timeout",
                "request_id": None,
            },
        )

    # -- lookups --------------------------------------------------------------------------------

    def _approval_of(self, gate_id: str) -> Approval | None:
        asked = self._asked.get(gate_id) or pause_approval(self._state.workflow, gate_id)
        if asked is not None:
            return asked
        step = self._steps.get(gate_step_id(gate_id))
        if step is None or step.approval is None:
            return None
        if step.for_each is not None or step.repeat is not None:
            return step.approval if _unit_of(step, gate_id, self._item_count(step)) else None
        return step.approval if gate_id == step.id else None

    def _not_found(self, gate_id: str) -> str:
        """Why `gate_id` names no gate: no such approval step, or a unit it cannot have."""
        step = self._steps.get(gate_step_id(gate_id))
        if step is None or step.approval is None:
            return f"no approval gate '{gate_id}'"
        count = self._item_count(step)
        if step.for_each is not None and count is not None:
            return f"no gate '{gate_id}': map {step.id} has {count} items ({step.id}[0] on)"
        if step.repeat is not None:
            most = step.repeat.max_iterations
            return f"no gate '{gate_id}': loop {step.id} has iterations {step.id}#1 to #{most}"
        return f"no approval gate '{gate_id}'"

    def _item_count(self, step: Step) -> int | None:
        """How many items map `step` has, once known (it started, here or in the run resumed)."""
        run = self._state.maps.get(step.id)
        if run is not None:
            return run.count
        return self._state.recorded_item_counts.get(step.id)

    def _gate_state(self, gate: _OpenGate) -> GateState:
        approval, answer = gate.approval, gate.answer
        status = "open" if answer is None else "approved" if answer["approved"] else "rejected"
        return GateState(
            gate_id=gate.gate_id,
            status=status,
            prompt=gate.prompt,
            schema=approval.schema,
            deadline=_iso(gate.deadline),
            timeout=approval.timeout,
            on_timeout=approval.on_timeout,
            opened_seq=gate.opened_seq,
            resolved_seq=gate.resolved_seq,
            answer=answer,
        )


def _unit_of(step: Step, gate_id: str, item_count: int | None) -> bool:
    """Whether `gate_id` names a unit of `step` that can exist: `ID[i]`, `ID#k`.

    A map item's index is below the map's `item_count` once that is known (before, any index
    may come); a loop iteration's number is 1 to `max_iterations`.
    """
    suffix = gate_id[len(step.id) :]
    if step.for_each is not None and suffix.startswith("[") and suffix.endswith("]"):
        index = suffix[1:-1]
        return index.isdigit() and (item_count is None or int(index) < item_count)
    if step.repeat is not None and suffix.startswith("#"):
        number = suffix[1:]
        return number.isdigit() and 1 <= int(number) <= step.repeat.max_iterations
    return False


async def _cancel_on(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


def _outcome(gate_id: str, approval: Approval, answer: Mapping[str, Any]) -> Any:
    """The gate step's output for its `gate.resolved` data; raise for `on_timeout` `fail`."""
    if answer.get("how") == "timeout" and approval.on_timeout == "fail":
        raise GateTimedOutError(
            f"gate {gate_id} timed out after {_seconds(approval.timeout or 0.0)} s"
            " (on_timeout: fail)"
        )
    return {
        "approved": answer["approved"],
        "input": answer.get("input") or {},
        "by": answer.get("by"),
        "reason": answer.get("reason"),
    }

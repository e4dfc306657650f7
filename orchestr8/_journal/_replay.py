"""Replay: rebuilding what the events say about an execution and its steps.

`replay` folds an execution's events (`_events`) into an `ExecutionState`, with a `StepState` per
step and a `GateState` per approval gate, so `inspect`, the REST API, the timeline and `resume` all
read one truth from the journal. Replaying a prefix of the events gives the state at that point
(time travel). Event types it does not know (breaker transitions, vendor events) leave the state
as it is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

import attrs

from ._costs import add_cost, call_cost
from ._events import Event, EventType, ExecutionStatus, StepStatus
from ._llm_calls import LLMCalls, fold_llm_call


@attrs.frozen
class StepState:
    """What the events say about one step: status, attempts made, output or error, and when."""

    status: StepStatus = StepStatus.PENDING
    attempts: int = 0
    output: Any = None
    error: Any = None
    started: float | None = None
    finished: float | None = None
    usage: Mapping[str, int] = attrs.field(factory=dict)
    output_redacted: bool = False
    """Whether redaction changed the recorded `output`: a resume runs the step again."""
    reason: str | None = None
    """Why the step was skipped (`step.skipped`'s `reason`), e.g. `when was false: ...`."""
    child: str | None = None
    """The child execution a sub-workflow step runs (its `child.started`), else None."""
    plans: int = 0
    """How many plans its planners proposed (`plan.proposed`), for a plan or a replanned step."""
    rejected_plans: int = 0
    """How many of those plans were refused (`plan.rejected`)."""
    replans: int = 0
    """How many replacement plans it was handed to after failing for good (`step.replanned`)."""
    items: int | None = None
    """For a map step (`for_each`): how many items it has, as `map.started` recorded."""
    earlier_attempts: int = 0
    """The attempts it made in runs before the last resume (`attempts` counts the last run's)."""
    earlier_seconds: float = 0.0
    """How long it ran in runs before the last resume, each run to its end or interruption."""
    llm: LLMCalls | None = None
    """Its model calls (`llm.called`), across resumes; None when it called no model."""

    @property
    def total_attempts(self) -> int:
        """Every attempt the journal holds for it, across resumes: what views show."""
        return self.earlier_attempts + self.attempts

    @property
    def cost_usd(self) -> float | None:
        """What its priced model calls cost (`llm.called`), across resumes; None: none priced."""
        llm = self.llm
        return None if llm is None or llm.unpriced == llm.calls else llm.cost_usd

    @property
    def duration(self) -> float | None:
        """How long it ran, summed over its runs (a resume's downtime excluded); None if never."""
        if self.started is not None and self.finished is not None:
            return self.earlier_seconds + self.finished - self.started
        return self.earlier_seconds if self.earlier_attempts or self.earlier_seconds else None

    def carried_over(self, interrupted_at: float) -> StepState:
        """The state a resume starts it from: pending, keeping what its earlier runs counted.

        Kept: attempts, time, plans, its model calls and its usage (tokens), so a resumed map
        step counts the items it reuses, as the execution's total does.

        A run still going when its process stopped ran until `interrupted_at` (the last event).
        """
        ran = 0.0
        if self.started is not None:
            end = self.finished if self.finished is not None else interrupted_at
            ran = max(0.0, end - self.started)
        return StepState(
            earlier_attempts=self.total_attempts,
            earlier_seconds=self.earlier_seconds + ran,
            plans=self.plans,
            rejected_plans=self.rejected_plans,
            replans=self.replans,
            llm=self.llm,
            # Its tokens so far (a map's reused items, earlier attempts), like its calls' cost.
            usage=self.usage,
        )

    @property
    def reusable(self) -> bool:
        """Whether a resume reuses this step: it succeeded, and its output is recorded as it was."""
        return self.status is StepStatus.SUCCEEDED and not self.output_redacted


GATE_OPEN = "open"
"""A gate's status while it waits for an answer."""
GATE_CLOSED = "closed"
"""A gate's status when its execution ended while it was still open."""


@attrs.frozen
class GateState:
    """What the events say about one approval gate: what it asks, and how it was answered.

    `status` is `open`, `approved`, `rejected`, or `closed` (the execution ended while it was
    open); `deadline` is the wall-clock ISO time it times out at (None: never); `answer` is the
    `gate.resolved` event's data once resolved.
    """

    gate_id: str
    status: str = GATE_OPEN
    prompt: str | None = None
    schema: Any = None
    timeout: float | None = None
    on_timeout: str | None = None
    deadline: str | None = None
    opened_seq: int = 0
    resolved_seq: int | None = None
    answer: Mapping[str, Any] | None = None

    @property
    def is_open(self) -> bool:
        """Whether it still waits for an answer."""
        return self.status == GATE_OPEN


@attrs.frozen
class ExecutionState:
    """What the events say about an execution; `replay` builds it, `inspect` and `resume` read it.

    `started_at`/`finished_at` are wall-clock timestamps, `started`/`finished`/`elapsed` trio-clock
    seconds; `last_seq` is the highest seq seen (0 for no events); `steps` keeps first-seen order.
    """

    status: ExecutionStatus = ExecutionStatus.PENDING
    output: Any = None
    error: Any = None
    started_at: str | None = None
    finished_at: str | None = None
    started: float | None = None
    finished: float | None = None
    elapsed: float = 0.0
    last_seq: int = 0
    steps: Mapping[str, StepState] = attrs.field(factory=dict)
    usage: Mapping[str, int] = attrs.field(factory=dict)
    """Every `step.usage` count of the execution summed, across resumes."""
    gates: Mapping[str, GateState] = attrs.field(factory=dict)
    """Its approval gates by gate id, in the order they first opened."""
    cost_usd: float | None = None
    """What its priced model calls cost in all (`llm.called`), across resumes; None: none."""


_STEP_ENDINGS: Mapping[str, StepStatus] = {
    EventType.STEP_SUCCEEDED: StepStatus.SUCCEEDED,
    EventType.STEP_FAILED: StepStatus.FAILED,
    EventType.STEP_SKIPPED: StepStatus.SKIPPED,
    EventType.STEP_CANCELLED: StepStatus.CANCELLED,
}
_STEP_EVENT_TYPES = frozenset(
    {
        EventType.STEP_STARTED,
        EventType.ATTEMPT_STARTED,
        EventType.ATTEMPT_FAILED,
        EventType.ATTEMPT_REJECTED,
        EventType.BREAKER_REJECTED,
        EventType.RETRY_SCHEDULED,
        EventType.STEP_USAGE,
        EventType.LLM_CALLED,
        EventType.CHILD_STARTED,
        EventType.PLAN_PROPOSED,
        EventType.PLAN_REJECTED,
        EventType.STEP_REPLANNED,
        EventType.MAP_STARTED,
        *_STEP_ENDINGS,
    }
)
# A map item's usage and model calls also count for its map step (`ID[3]` for `ID`).
_COUNTED_FOR_THE_MAP: Final = frozenset({EventType.STEP_USAGE, EventType.LLM_CALLED})
_EXECUTION_ENDINGS: Mapping[str, ExecutionStatus] = {
    EventType.EXECUTION_SUCCEEDED: ExecutionStatus.SUCCEEDED,
    EventType.EXECUTION_FAILED: ExecutionStatus.FAILED,
    EventType.EXECUTION_CANCELLED: ExecutionStatus.CANCELLED,
}
_GATE_EVENT_TYPES = frozenset({EventType.GATE_OPENED, EventType.GATE_RESOLVED})


def replay(events: Iterable[Event]) -> ExecutionState:
    """Fold the events of one execution, in seq order, into its state; unknown types are ignored.

    `execution.resumed` sets the execution back to running and every step without a
    `step.succeeded` back to pending, while succeeded steps keep their recorded output.

    Raises:
        ValueError: the events belong to more than one execution.
    """
    state = ExecutionState()
    steps: dict[str, StepState] = {}
    usage: dict[str, int] = {}
    gates: dict[str, GateState] = {}
    cost: float | None = None
    execution_id: str | None = None
    for event in events:
        interrupted_at = state.elapsed
        if execution_id is None:
            execution_id = event.execution_id
        elif event.execution_id != execution_id:
            raise ValueError(
                f"replay needs the events of one execution, got {execution_id!r} "
                f"and {event.execution_id!r}"
            )
        state = attrs.evolve(state, last_seq=max(state.last_seq, event.seq), elapsed=event.elapsed)
        if event.type == EventType.EXECUTION_RESUMED:
            steps = {
                step_id: step
                if step.status is StepStatus.SUCCEEDED
                else step.carried_over(interrupted_at)
                for step_id, step in steps.items()
            }
        if event.type.startswith("execution."):
            state = _reduce_execution(state, event)
            if state.status.is_terminal:
                gates = {
                    gate_id: attrs.evolve(gate, status=GATE_CLOSED) if gate.is_open else gate
                    for gate_id, gate in gates.items()
                }
        elif event.step_id is not None and event.type in _GATE_EVENT_TYPES:
            gates[event.step_id] = _reduce_gate(gates.get(event.step_id), event)
            unit = steps.get(event.step_id)
            if unit is not None:
                steps[event.step_id] = _gate_unit(unit, event)
        elif event.step_id is not None and event.type in _STEP_EVENT_TYPES:
            steps[event.step_id] = _reduce_step(steps.get(event.step_id, StepState()), event)
            if event.type == EventType.LLM_CALLED:
                cost = add_cost(cost, call_cost(event.data))
            if event.type in _COUNTED_FOR_THE_MAP:
                if event.type == EventType.STEP_USAGE:
                    _add_counts(usage, event.data)
                if event.step_id.endswith("]") and "[" in event.step_id:
                    # A map item's usage and calls count for its map step (`ID[3]` for `ID`).
                    owner = event.step_id[: event.step_id.rindex("[")]
                    if owner in steps:
                        steps[owner] = _reduce_step(steps[owner], event)
    return attrs.evolve(state, steps=steps, usage=usage, gates=gates, cost_usd=cost)


def _add_counts(totals: dict[str, int], counts: Mapping[str, Any]) -> dict[str, int]:
    """Add the whole-number counts of `counts` into `totals`, ignoring anything else."""
    for name, value in counts.items():
        if isinstance(value, int) and not isinstance(value, bool):
            totals[name] = totals.get(name, 0) + value
    return totals


def _reduce_execution(state: ExecutionState, event: Event) -> ExecutionState:
    """Apply one execution-level event; the journal's executions row follows the same rules."""
    if event.type in (EventType.EXECUTION_STARTED, EventType.EXECUTION_RESUMED):
        return attrs.evolve(
            state,
            status=ExecutionStatus.RUNNING,
            started_at=state.started_at if state.started_at is not None else event.ts,
            started=state.started if state.started is not None else event.elapsed,
            finished_at=None,
            finished=None,
            output=None,
            error=None,
        )
    if event.type == EventType.EXECUTION_WAITING:
        # Not finished (the journal's row clears the same fields): it carries on when resumed.
        return attrs.evolve(
            state,
            status=ExecutionStatus.WAITING,
            finished_at=None,
            finished=None,
            output=None,
            error=None,
        )
    ending = _EXECUTION_ENDINGS.get(event.type)
    if ending is None:
        return state
    return attrs.evolve(
        state,
        status=ending,
        finished_at=event.ts,
        finished=event.elapsed,
        output=event.data.get("output") if ending is ExecutionStatus.SUCCEEDED else None,
        error=None if ending is ExecutionStatus.SUCCEEDED else event.data.get("error"),
    )


def _reduce_gate(gate: GateState | None, event: Event) -> GateState:
    """Apply a `gate.opened` or `gate.resolved` event to the state of its gate."""
    assert event.step_id is not None
    data = event.data
    if event.type == EventType.GATE_OPENED:
        timeout = data.get("timeout")
        return GateState(
            gate_id=event.step_id,
            prompt=_text(data.get("prompt")),
            schema=data.get("schema"),
            timeout=float(timeout) if isinstance(timeout, int | float) else None,
            on_timeout=_text(data.get("on_timeout")),
            deadline=_text(data.get("deadline")),
            opened_seq=event.seq if gate is None or not data.get("reopened") else gate.opened_seq,
        )
    if gate is None:
        gate = GateState(gate_id=event.step_id)
    approved = data.get("approved") is True
    return attrs.evolve(
        gate,
        status="approved" if approved else "rejected",
        resolved_seq=event.seq,
        answer=dict(data),
    )


def _gate_unit(unit: StepState, event: Event) -> StepState:
    """A gate's unit while its gate is open is `waiting` (nothing runs), then `running` again."""
    if event.type == EventType.GATE_OPENED and unit.status is StepStatus.RUNNING:
        return attrs.evolve(unit, status=StepStatus.WAITING)
    if event.type == EventType.GATE_RESOLVED and unit.status is StepStatus.WAITING:
        return attrs.evolve(unit, status=StepStatus.RUNNING)
    return unit


def _text(value: Any) -> str | None:
    """`value` when it is text, else None (events from elsewhere may carry anything)."""
    return value if isinstance(value, str) else None


def _reduce_step(step: StepState, event: Event) -> StepState:
    """Apply one step-level event to the state of its step."""
    if event.type == EventType.STEP_STARTED:
        return StepState(
            status=StepStatus.RUNNING,
            attempts=step.attempts,
            started=event.elapsed,
            usage=step.usage,
            plans=step.plans,
            rejected_plans=step.rejected_plans,
            replans=step.replans,
            earlier_attempts=step.earlier_attempts,
            earlier_seconds=step.earlier_seconds,
            llm=step.llm,
        )
    if event.type == EventType.STEP_USAGE:
        return attrs.evolve(step, usage=_add_counts(dict(step.usage), event.data))
    if event.type == EventType.LLM_CALLED:
        return attrs.evolve(step, llm=fold_llm_call(step.llm, event.data))
    if event.type == EventType.MAP_STARTED:
        count = event.data.get("count")
        return attrs.evolve(step, items=count if isinstance(count, int) else None)
    if event.type == EventType.ATTEMPT_STARTED:
        attempts = event.attempt if event.attempt is not None else step.attempts + 1
        started = step.started if step.started is not None else event.elapsed
        return attrs.evolve(
            step, status=StepStatus.RUNNING, attempts=max(step.attempts, attempts), started=started
        )
    if event.type == EventType.ATTEMPT_FAILED:
        return attrs.evolve(step, error=event.data.get("error"))
    if event.type in (EventType.ATTEMPT_REJECTED, EventType.BREAKER_REJECTED):
        # A refused call still uses up its attempt number.
        attempts = max(step.attempts, event.attempt or 0)
        return attrs.evolve(step, attempts=attempts, error=event.data.get("error"))
    if event.type == EventType.RETRY_SCHEDULED:
        return attrs.evolve(step, status=StepStatus.RETRYING)
    if event.type == EventType.CHILD_STARTED:
        child = event.data.get("child_id")
        return attrs.evolve(step, child=child if isinstance(child, str) else step.child)
    if event.type == EventType.PLAN_PROPOSED:
        return attrs.evolve(step, plans=step.plans + 1)
    if event.type == EventType.PLAN_REJECTED:
        return attrs.evolve(step, rejected_plans=step.rejected_plans + 1)
    if event.type == EventType.STEP_REPLANNED:
        return attrs.evolve(step, replans=step.replans + 1)
    ending = _STEP_ENDINGS.get(event.type)
    if ending is None:
        return step
    return attrs.evolve(
        step,
        status=ending,
        output=event.data.get("output") if ending is StepStatus.SUCCEEDED else None,
        error=event.data.get("error") if ending is StepStatus.FAILED else None,
        finished=event.elapsed,
        output_redacted=ending is StepStatus.SUCCEEDED
        and event.data.get("output_redacted") is True,
        reason=_reason(event) if ending is StepStatus.SKIPPED else None,
    )


def _reason(event: Event) -> str | None:
    """The text reason a `step.skipped` event gives, if it gives one."""
    reason = event.data.get("reason")
    return reason if isinstance(reason, str) else None

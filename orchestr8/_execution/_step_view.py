"""One step of an execution as the dashboard's step panel shows it, read from the journal.

`step_view` answers `GET /executions/{id}/steps/{step_id}`: the step's declared input (the
`input` its recorded workflow document gives it), its resolved input (those `${...}` references
evaluated at read time against the recorded inputs and step outputs, which the journal holds
redacted, so the resolved input is redacted the same way), its status, output, error, skip
reason, every attempt (start, end, duration, outcome, error), its tokens, its approval gate and
its child execution. A map item (`ID[3]`) and a loop iteration (`ID#2`) are steps of their own
here, with their own records; their declared input is their step's.

It lives in `_execution` and not in `_journal` because resolving references needs the workflow
stage's templates and expressions (`_workflow`), which the journal may not import.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from .._errors import Orchestr8Error, Problem
from .._journal._events import Event, EventType, StepStatus
from .._journal._graph_view import INTERRUPTED, shown_step_status
from .._journal._iterations import is_iteration_of
from .._journal._map_items import split_item_id
from .._journal._records import ExecutionRecord
from .._journal._replay import ExecutionState, replay
from .._journal._state_at import gate_document, step_document
from .._observability._redaction import REDACTED
from .._workflow._conditions import compile_expression, expression_scope
from .._workflow._expressions import compile_template
from .._workflow._map_fields import FOR_EACH_ROOTS

__all__ = ["StepAttempt", "attempts_of", "resolve_input", "step_view"]


@attrs.define
class StepAttempt:
    """One attempt of a step: when it started and ended (elapsed seconds) and how it ended."""

    attempt: int
    started: float
    started_at: str
    finished: float | None = None
    finished_at: str | None = None
    outcome: str = "running"
    error: Any = None

    def to_json(self) -> dict[str, Any]:
        """The attempt as the step document lists it (`duration` is None while it runs)."""
        duration = None if self.finished is None else max(0.0, self.finished - self.started)
        return {
            "attempt": self.attempt,
            "started": self.started_at,
            "finished": self.finished_at,
            "duration": duration,
            "outcome": self.outcome,
            "error": self.error,
        }


def attempts_of(events: Sequence[Event], unit_id: str) -> list[StepAttempt]:
    """Every attempt of `unit_id` the events hold, across resumes, numbered from 1 in order.

    An attempt still open when the execution resumed (its process died) is `interrupted`; one
    still open after the last event is `running`, unless the step ended without closing it. A
    call a circuit breaker or a rate limit refused (`breaker.rejected`, `attempt.rejected`) used
    up its attempt without running: it is an attempt of no duration, `rejected`, with the error.
    """
    attempts: list[StepAttempt] = []
    current: StepAttempt | None = None

    def close(event: Event, outcome: str, error: Any = None) -> None:
        nonlocal current
        if current is not None:
            current.finished, current.finished_at = event.elapsed, event.ts
            current.outcome, current.error = outcome, error
            current = None

    for event in events:
        if event.type == EventType.EXECUTION_RESUMED:
            close(event, "interrupted")
            continue
        if event.step_id != unit_id:
            continue
        if event.type == EventType.ATTEMPT_STARTED:
            close(event, "interrupted")
            current = StepAttempt(len(attempts) + 1, event.elapsed, event.ts)
            attempts.append(current)
        elif event.type in (EventType.ATTEMPT_REJECTED, EventType.BREAKER_REJECTED):
            close(event, "interrupted")
            rejected = StepAttempt(len(attempts) + 1, event.elapsed, event.ts)
            rejected.finished, rejected.finished_at = event.elapsed, event.ts
            rejected.outcome, rejected.error = "rejected", event.data.get("error")
            attempts.append(rejected)
        elif event.type in (EventType.ATTEMPT_FAILED, EventType.STEP_FAILED):
            close(event, "failed", event.data.get("error"))
        elif event.type == EventType.STEP_SUCCEEDED:
            close(event, "succeeded")
        elif event.type in (EventType.STEP_CANCELLED, EventType.STEP_SKIPPED):
            close(event, "interrupted")
    return attempts


def _declared_step(record: ExecutionRecord, step_id: str) -> Mapping[str, Any] | None:
    """The step `step_id` of the recorded workflow document, or None if it declares none."""
    for step in record.workflow.get("steps", ()):
        if isinstance(step, Mapping) and step.get("id") == step_id:
            return step
    return None


def _base_step_id(unit_id: str) -> str:
    """The declared step a unit belongs to: `ID` for `ID`, `ID[3]` and `ID#2`."""
    item = split_item_id(unit_id)
    if item is not None:
        return item[0]
    prefix, separator, number = unit_id.rpartition("#")
    return prefix if separator and number.isdigit() else unit_id


def _outputs(state: ExecutionState) -> dict[str, Any]:
    """The recorded outputs of the steps that succeeded, by unit id (what references read)."""
    return {
        unit: step.output
        for unit, step in state.steps.items()
        if step.status is StepStatus.SUCCEEDED
    }


def _local_values(
    declared: Mapping[str, Any], unit_id: str, inputs: Mapping[str, Any], state: ExecutionState
) -> dict[str, Any]:
    """What `${item}`/`${index}` (a map item) or `${iteration}`/`${previous}` (an iteration) read.

    Raises:
        LookupError: the map's `for_each` does not give a list long enough for the item.
    """
    outputs = _outputs(state)
    item = split_item_id(unit_id)
    if item is not None:
        problems: list[Problem] = []
        expression = compile_expression(
            declared.get("for_each"), "$.for_each", FOR_EACH_ROOTS, problems
        )
        values = (
            None if expression is None else expression.evaluate(expression_scope(inputs, outputs))
        )
        if not isinstance(values, list) or item[1] >= len(values):
            raise LookupError(f"for_each gives no item {item[1]}")
        return {"item": values[item[1]], "index": item[1]}
    base = _base_step_id(unit_id)
    if base != unit_id:
        number = int(unit_id.rpartition("#")[2])
        previous = state.steps.get(f"{base}#{number - 1}")
        return {"iteration": number, "previous": None if previous is None else previous.output}
    return {}


def resolve_input(
    record: ExecutionRecord,
    events: Sequence[Event],
    unit_id: str,
    state: ExecutionState | None = None,
) -> tuple[bool, Any, str | None]:
    """The step's input with its references evaluated: `(resolved, value, why not)`.

    Read against the recorded (redacted) inputs and outputs, so a redacted value stays `***`;
    `${secrets.NAME}` reads as `***` too. A step that has not started cannot be resolved yet.
    `state` is `replay(events)` when the caller has it already (one replay per request).
    """
    declared = _declared_step(record, _base_step_id(unit_id))
    if declared is None or "input" not in declared:
        return False, None, "the recorded workflow declares no input for this step"
    if state is None:
        state = replay(events)
    step = state.steps.get(unit_id)
    if step is None or step.status is StepStatus.PENDING:
        return False, None, "the step has not started: its references are resolved when it runs"
    if step.status is StepStatus.SKIPPED and not step.total_attempts:
        return False, None, "the step was skipped: its input was never resolved"
    try:
        template = compile_template(declared["input"], path="$.input")
        template = template.bind_secrets({name: REDACTED for name in template.secret_names})
        local_values = _local_values(declared, unit_id, record.inputs, state)
        return True, template.render(record.inputs, _outputs(state), local_values), None
    except (Orchestr8Error, LookupError, TypeError, ValueError) as error:
        return False, None, f"its references cannot be resolved from the journal: {error}"


def _knows(record: ExecutionRecord, state: ExecutionState, unit_id: str) -> bool:
    """Whether the execution has the unit: a declared step, or one its events name."""
    if unit_id in state.steps:
        return True
    base = _base_step_id(unit_id)
    return base == unit_id and _declared_step(record, base) is not None


def step_view(
    record: ExecutionRecord, events: Sequence[Event], unit_id: str, *, status: str = ""
) -> dict[str, Any] | None:
    """The step document of `unit_id` in the execution, or None if it has no such step.

    `status` is the execution's status as views show it (`_liveness.shown_status`): when it is
    `interrupted`, a running step and its open attempt are shown `interrupted` too.
    """
    state = replay(events)
    if not _knows(record, state, unit_id):
        return None
    base = _base_step_id(unit_id)
    declared = _declared_step(record, base) or {}
    step = state.steps.get(unit_id)
    resolved, value, why = resolve_input(record, events, unit_id, state)
    agent = declared.get("agent")
    for event in events:
        if event.step_id == unit_id and event.type == EventType.STEP_STARTED:
            agent = event.data.get("agent", agent)
    gate = state.gates.get(unit_id)
    document = step_document(step)
    document["status"] = shown_step_status(str(document["status"]), status)
    attempts = [attempt.to_json() for attempt in attempts_of(events, unit_id)]
    if status == INTERRUPTED:
        for attempt in attempts:
            if attempt["outcome"] == "running":
                attempt["outcome"] = INTERRUPTED
    document.update(
        {
            "execution_id": record.execution_id,
            "step_id": unit_id,
            "declared_step": base,
            "kind": _kind(declared, unit_id),
            "agent": agent if isinstance(agent, str | dict) else None,
            "depends_on": list(declared.get("depends_on", ())),
            "declared_input": declared.get("input"),
            "resolved_input": {"resolved": resolved, "value": value, "reason": why},
            "attempt_count": document["attempts"],
            "attempts": attempts,
            "gate": None if gate is None else {"gate_id": unit_id, **gate_document(gate)},
            "child_execution_id": None if step is None else step.child,
            "items": sorted(
                (unit for unit in state.steps if (split_item_id(unit) or ("",))[0] == unit_id),
                key=lambda unit: (split_item_id(unit) or ("", 0))[1],
            ),
            "iterations": [unit for unit in state.steps if is_iteration_of(unit, unit_id)],
            "llm": None if step is None or step.llm is None else step.llm.to_json(),
        }
    )
    return document


def _kind(declared: Mapping[str, Any], unit_id: str) -> str:
    """What the step is: `item`, `iteration`, `map`, `loop`, `approval`, `workflow` or `agent`."""
    if split_item_id(unit_id) is not None:
        return "item"
    if _base_step_id(unit_id) != unit_id:
        return "iteration"
    for field, kind in (
        ("for_each", "map"),
        ("repeat", "loop"),
        ("approval", "approval"),
        ("workflow", "workflow"),
    ):
        if field in declared:
            return kind
    return "agent"

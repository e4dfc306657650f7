"""Answering an approval gate from anywhere: checked on submit, recorded in the journal, applied.

`submit_answer` is what `orchestr8 approve`/`reject`, the interactive prompt of `run` and
`POST /executions/{id}/gates/{gate}` share. It finds the gate's approval step in the execution's
recorded workflow (a gate id is the step's unit id: `STEP`, a map item's `STEP[i]`, a loop
iteration's `STEP#k`), checks the answer against the gate's schema (the one its `gate.opened`
event carries, else the step's), refuses an answer for a gate already resolved or answered, then
records it as an `answer` control request. Whoever runs the execution applies it: this runtime at
once (it waits briefly and reports `applied`), another process within a second (`recorded`), or
the next `orchestr8 resume` (`recorded`, nobody runs it). An answer for a gate that has not opened
yet is held and applied when it opens. Nothing is recorded when the answer is refused, so an
invalid answer leaves the gate open for a valid one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Literal

import attrs
import trio

from .._errors import (
    GateAlreadyAnsweredError,
    GateAnswerInvalidError,
    GateNotFoundError,
    Problem,
)
from .._journal._events import Event, StepStatus
from .._journal._gate_views import expiry_outcome, is_expired
from .._journal._replay import replay
from .._journal._requests import ControlRequest, RequestKind
from .._json import append_path
from .._workflow._approvals import with_defaults
from ._claims import held
from ._gates import gate_document as gates_gate_document
from ._gates import gate_step_id, utc_now

if TYPE_CHECKING:
    from .._journal._journal import ExecutionRecord, Journal
    from .._journal._replay import ExecutionState, GateState
    from ._runtime import Runtime

__all__ = [
    "ANSWER_KEYS",
    "SETTLE_WAIT",
    "AnswerOutcome",
    "GateSpec",
    "answer_problems",
    "answered_by",
    "find_gate",
    "gate_document",
    "gate_step_id",
    "submit_answer",
    "wait_settled",
]

ANSWER_KEYS: Final = ("approve", "input", "reason", "by")
"""The keys of an answer's body; `approve` is required, the others optional."""

SETTLE_WAIT: Final = 2.0
"""How long `submit_answer` waits for the runtime running the execution to apply an answer."""

_SETTLE_POLL: Final = 0.02
"""How often, while waiting, the answer's request is read back (trio clock)."""

Runner = Literal["here", "elsewhere", "nobody"]
"""Who runs the execution: this runtime, another process, or no process."""


@attrs.frozen
class GateSpec:
    """A gate as an answer sees it: the approval step's fields and, once open, the gate's state."""

    execution_id: str
    gate_id: str
    step_id: str
    prompt: str
    schema: Mapping[str, Any] | None
    """The JSON Schema of the answer's `input` (the opened gate's, else the step's); None: any."""
    state: GateState | None
    """The gate as replay sees it; None while it has not opened."""
    finished: str | None
    """The execution's terminal status when it has ended, else None."""
    resolved_at: str | None = None
    """When the gate was resolved (its `gate.resolved` event's time), else None."""


@attrs.frozen
class AnswerOutcome:
    """What became of an answer: where it is, who applies it, and the gate after it."""

    execution_id: str
    gate_id: str
    request: ControlRequest
    status: Literal["applied", "recorded"]
    """`applied`: the gate took it; `recorded`: in the journal, to be applied by its runner."""
    runner: Runner
    held: bool
    """The gate has not opened yet: the answer waits for it."""
    gate: GateState | None
    """The gate after the answer was applied (or as it was when recorded); None: not open."""

    @property
    def message(self) -> str:
        """One line for people: what happened and, when nobody runs it, how it continues."""
        verdict = "approval" if self.request.body.get("approve") else "rejection"
        where = f"gate {self.gate_id} of execution {self.execution_id}"
        if self.status == "applied":
            return f"{where}: {verdict} applied"
        held = " (the gate has not opened yet: it applies when the gate opens)"
        suffix = held if self.held else ""
        if self.runner == "here" or self.runner == "elsewhere":
            return f"{where}: {verdict} recorded; the process running it applies it{suffix}"
        return (
            f"{where}: {verdict} recorded; no process runs the execution: "
            f"`orchestr8 resume {self.execution_id}` continues it{suffix}"
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON form the REST API and `--json` give."""
        return {
            "status": self.status,
            "execution_id": self.execution_id,
            "gate_id": self.gate_id,
            "request_id": self.request.request_id,
            "held": self.held,
            "runner": self.runner,
            "message": self.message,
            "gate": None if self.gate is None else gate_document(self.gate),
        }


def gate_document(gate: GateState) -> dict[str, Any]:
    """The JSON form of a gate for the views, with its id: `_gates.gate_document` and `gate_id`."""
    return {"gate_id": gate.gate_id, **gates_gate_document(gate)}


async def find_gate(journal: Journal, execution_id: str, gate_id: str) -> GateSpec:
    """Find a gate of an execution: its approval step in the recorded workflow, its state.

    Raises:
        ExecutionNotFoundError: no such execution.
        GateNotFoundError: the gate id names no approval step of the execution (the message
            lists those that exist), or does not fit the step (an item index on a step that is
            not a map, no index on one that is).
    """
    record = await journal.get_execution(execution_id)
    events = await journal.events(execution_id)
    return _gate_spec(record, events, gate_id)


def _gate_spec(record: ExecutionRecord, events: Sequence[Event], gate_id: str) -> GateSpec:
    state = replay(events)
    gate = state.gates.get(gate_id)
    steps = [step for step in record.workflow.get("steps", ()) if isinstance(step, dict)]
    step_id = gate_step_id(gate_id)
    step = next((step for step in steps if step.get("id") == step_id), None)
    approval = step.get("approval") if step is not None else None
    where = f"execution {record.execution_id}"
    if gate is None and not isinstance(approval, dict):
        known = [str(step["id"]) for step in steps if isinstance(step.get("approval"), dict)]
        listed = f"its approval steps: {', '.join(known)}" if known else "it has no approval steps"
        hint = ""
        if step is not None and "workflow" in step:
            hint = (
                f"; {step_id} runs a sub-workflow: answer its gates in the child execution "
                f"{record.execution_id}.{step_id}"
            )
        hint = hint or _child_hint(record.execution_id, steps, step_id)
        raise GateNotFoundError(f"{where} has no approval step {step_id!r} ({listed}){hint}")
    if gate is None and isinstance(step, dict):
        _check_unit_form(where, step, gate_id)
        _check_unit_exists(where, step, gate_id, state)
        _check_not_skipped(where, step_id, gate_id, state)
    spec_schema = approval.get("schema") if isinstance(approval, dict) else None
    prompt = approval.get("prompt") if isinstance(approval, dict) else None
    schema = gate.schema if gate is not None else spec_schema
    finished = str(state.status) if state.status.is_terminal else None
    resolved_seq = gate.resolved_seq if gate is not None else None
    resolved_at = next((event.ts for event in events if event.seq == resolved_seq), None)
    return GateSpec(
        execution_id=record.execution_id,
        gate_id=gate_id,
        step_id=step_id,
        prompt=(gate.prompt if gate is not None else prompt) or "",
        schema=schema if isinstance(schema, Mapping) else None,
        state=gate,
        finished=finished,
        resolved_at=resolved_at,
    )


def _child_hint(execution_id: str, steps: Sequence[Mapping[str, Any]], step_id: str) -> str:
    """Where to answer a gate of a sub-workflow asked on its parent: the child execution's id."""
    for step in steps:
        inner = step.get("workflow")
        if not isinstance(inner, Mapping):
            continue
        for child_step in inner.get("steps", ()):
            if isinstance(child_step, Mapping) and child_step.get("id") == step_id:
                return (
                    f"; {step_id} is a step of the sub-workflow of {step.get('id')}: answer it "
                    f"in the child execution {execution_id}.{step.get('id')}"
                )
    return ""


def _check_unit_form(where: str, step: Mapping[str, Any], gate_id: str) -> None:
    """Refuse a gate id whose form the step cannot have: `[i]` needs `for_each`, and so on."""
    step_id = str(step.get("id"))
    is_map = "for_each" in step
    is_loop = "repeat" in step
    indexed = gate_id.endswith("]")
    numbered = "#" in gate_id[len(step_id) :]
    if is_map and not indexed:
        raise GateNotFoundError(
            f"{where}: {step_id} is a map (for_each): answer each item's gate, "
            f"{step_id}[0], {step_id}[1], ..."
        )
    its_gates = (
        f"its gates are {step_id}#1, {step_id}#2, ..."
        if is_loop
        else f"its gates are {step_id}[0], {step_id}[1], ..."
        if is_map
        else f"its gate is {step_id}"
    )
    if indexed and not is_map:
        raise GateNotFoundError(
            f"{where}: {step_id} is not a map (for_each), so it has no gate {gate_id!r}; "
            f"{its_gates}"
        )
    if is_loop and not numbered:
        raise GateNotFoundError(
            f"{where}: {step_id} is a loop (repeat): answer each iteration's gate, "
            f"{step_id}#1, {step_id}#2, ..."
        )
    if numbered and not is_loop:
        raise GateNotFoundError(
            f"{where}: {step_id} is not a loop (repeat), so it has no gate {gate_id!r}; {its_gates}"
        )


def _check_unit_exists(
    where: str, step: Mapping[str, Any], gate_id: str, state: ExecutionState
) -> None:
    """Refuse a unit its step never has: an item past the map's items, or a loop iteration.

    The map's item count is known once `map.started` recorded it; a loop iteration must be 1 to
    its `max_iterations`.
    """
    step_id = str(step.get("id"))
    suffix = gate_id[len(step_id) :]
    digits = suffix.strip("[]#")
    if len(digits) > 1 and digits.startswith("0") and digits.isdigit():
        written = suffix.replace(digits, str(int(digits)))
        raise GateNotFoundError(
            f"{where}: no gate {gate_id!r}: write the number without a leading zero, "
            f"{step_id}{written}"
        )
    recorded = state.steps.get(step_id)
    count = recorded.items if recorded is not None else None
    index = suffix[1:-1] if suffix.startswith("[") else ""
    if index.isdigit() and count is not None and int(index) >= count:
        raise GateNotFoundError(
            f"{where}: no gate {gate_id!r}: map {step_id} has {count} items ({step_id}[0] on)"
        )
    repeat = step.get("repeat")
    most = repeat.get("max_iterations") if isinstance(repeat, Mapping) else None
    number = suffix[1:] if suffix.startswith("#") else ""
    if number.isdigit() and isinstance(most, int) and not 1 <= int(number) <= most:
        raise GateNotFoundError(
            f"{where}: no gate {gate_id!r}: loop {step_id} has iterations {step_id}#1 to #{most}"
        )


def _check_not_skipped(where: str, step_id: str, gate_id: str, state: ExecutionState) -> None:
    """Refuse a gate whose step (or item) the run skipped: it never opens, so no answer applies."""
    for unit_id in dict.fromkeys((step_id, gate_id)):
        unit = state.steps.get(unit_id)
        if unit is not None and unit.status is StepStatus.SKIPPED:
            reason = f" ({unit.reason})" if unit.reason else ""
            raise GateNotFoundError(
                f"{where}: gate {gate_id!r} never opens: step {unit_id} was skipped{reason}"
            )


def answer_problems(body: object, schema: Mapping[str, Any] | None) -> list[Problem]:
    """Every problem of an answer's body, each with its JSON path; empty when it is valid.

    The body is `{"approve": bool, "input": {...}, "reason": str | null, "by": str}`. An
    approval's `input` must fit `schema` (JSON Schema 2020-12; every error at its path, e.g.
    `$.input.amount: 5 is less than the minimum of 10`); a rejection needs a `reason` and its
    input is not checked against the schema (a person who says no owes no form).
    """
    if not isinstance(body, Mapping):
        return [Problem("$", f"expected an object, got {_type_name(body)}")]
    problems = [
        Problem(
            append_path("$", str(key)), f"unknown key; expected one of {', '.join(ANSWER_KEYS)}"
        )
        for key in body
        if key not in ANSWER_KEYS
    ]
    approve = body.get("approve")
    if not isinstance(approve, bool):
        message = (
            "required"
            if "approve" not in body
            else f"expected true or false, got {json.dumps(approve, default=repr)}"
        )
        problems.append(Problem("$.approve", message))
    for key in ("reason", "by"):
        value = body.get(key)
        if value is not None and not isinstance(value, str):
            problems.append(Problem(f"$.{key}", f"expected a string, got {_type_name(value)}"))
    if approve is False and not (isinstance(body.get("reason"), str) and body["reason"].strip()):
        problems.append(Problem("$.reason", "a rejection needs a reason"))
    answer_input = body.get("input", {})
    if not isinstance(answer_input, Mapping):
        problems.append(Problem("$.input", f"expected an object, got {_type_name(answer_input)}"))
    elif approve is True and schema is not None:
        problems += _schema_problems(with_defaults(schema, answer_input), schema)
    return problems


def _schema_problems(value: Mapping[str, Any], schema: Mapping[str, Any]) -> list[Problem]:
    """The errors of `value` against `schema`, each at its path under `$.input`."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError
    from referencing.exceptions import Unresolvable

    try:
        Draft202012Validator.check_schema(schema)
        # Formats checked as the gate board checks them (`_workflow/_approvals.py`).
        validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
        errors = list(validator.iter_errors(value))
    except SchemaError as error:
        return [
            Problem("$.input", f"the gate's schema is not a valid JSON Schema: {error.message}")
        ]
    except Unresolvable as error:
        return [
            Problem("$.input", f"the gate's schema has a reference that does not resolve: {error}")
        ]
    problems = []
    for failure in errors:
        path = "$.input"
        for segment in failure.absolute_path:
            path = append_path(path, segment)
        problems.append(Problem(path, _json_message(failure.message, failure.instance)))
    return sorted(dict.fromkeys(problems), key=lambda problem: problem.path)


def _json_message(message: str, instance: Any) -> str:
    """A schema error's message with the value it starts with as JSON (`true`, not `True`).

    Strings stay in single quotes, as every problem shows them.
    """
    shown = repr(instance)
    if isinstance(instance, str) or not message.startswith(shown):
        return message
    return json.dumps(instance, default=repr) + message[len(shown) :]


def _type_name(value: object) -> str:
    """A JSON type name for messages (`null`, `boolean`, `number`, `string`, `array`, `object`)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list | tuple) else "object"


def _normalised(body: Mapping[str, Any], by: str) -> dict[str, Any]:
    """The request body recorded: every key present, `by` defaulted."""
    reason = body.get("reason")
    return {
        "approve": body["approve"],
        "input": dict(body.get("input") or {}),
        "reason": reason if isinstance(reason, str) and reason.strip() else None,
        "by": body.get("by") or by,
    }


async def submit_answer(
    journal: Journal,
    execution_id: str,
    gate_id: str,
    body: object,
    *,
    runtime: Runtime | None = None,
    by: str = "api",
    settle_wait: float = SETTLE_WAIT,
) -> AnswerOutcome:
    """Check an answer to a gate, record it in the journal, and say what became of it.

    `by` is who answered when the body names nobody. When `runtime` runs the execution, its
    control loop applies the answer at once: this waits up to `settle_wait` seconds (trio clock)
    for that and reports `applied`; otherwise the answer is `recorded` for whoever runs it.

    Raises:
        ExecutionNotFoundError: no such execution.
        GateNotFoundError: no approval step or gate by that id (the message lists the steps).
        GateAnswerInvalidError: the body or its input does not fit (`problems`, with paths);
            nothing was recorded and the gate stays open.
        GateAlreadyAnsweredError: the gate was resolved, or an answer for it was recorded
            (`existing`), or the execution has ended; the message says who answered and when.
    """
    spec = await find_gate(journal, execution_id, gate_id)
    closed = spec.state is not None and spec.state.status == "closed"
    if spec.finished is not None and not closed:
        # Said first: whatever became of the gate or an earlier answer, nothing applies now.
        raise GateAlreadyAnsweredError(
            f"execution {execution_id} already {spec.finished}; its gates take no answers",
            existing=None,
        )
    _refuse_if_resolved(spec)
    existing = next(
        (
            request
            for request in await journal.requests(execution_id)
            if request.kind == RequestKind.ANSWER and request.target == gate_id
        ),
        None,
    )
    if existing is not None:
        raise GateAlreadyAnsweredError(_answered_message(spec, existing), existing=existing)
    problems = answer_problems(body, spec.schema)
    if problems or not isinstance(body, Mapping):
        raise GateAnswerInvalidError(problems)
    runner = await _runner(journal, runtime, execution_id)
    if runner == "nobody":
        _refuse_if_expired(spec)
    try:
        request = await journal.submit_request(
            execution_id, RequestKind.ANSWER, _normalised(body, by), target=gate_id
        )
    except GateAlreadyAnsweredError as error:
        if not isinstance(error.existing, ControlRequest):
            raise
        raise GateAlreadyAnsweredError(
            _answered_message(spec, error.existing), existing=error.existing
        ) from None
    if runner == "here" and runtime is not None:
        handle = runtime.find(execution_id)
        board = None if handle is None else handle.gates
        if board is not None:
            # Run here: handed to its gate board at once (the control loop may hand it over
            # too; a board takes each request once). Not open yet: held there, no wait.
            await board.deliver(request)
        if spec.state is not None:
            request = await wait_settled(journal, request, settle_wait)
    return await _outcome(journal, spec, request, runner)


def _refuse_if_resolved(spec: GateSpec) -> None:
    """Refuse an answer for a gate that resolved (an answer, its deadline) or was closed."""
    gate = spec.state
    if gate is None or gate.status == "open":
        return
    answer = gate.answer or {}
    if gate.status == "closed":
        raise GateAlreadyAnsweredError(
            f"gate {spec.gate_id} of execution {spec.execution_id} was closed: the execution "
            f"ended ({spec.finished or 'stopped'}) while it waited",
            existing=None,
        )
    how = "timed out" if answer.get("how") == "timeout" else f"answered by {answer.get('by')}"
    raise GateAlreadyAnsweredError(
        f"gate {spec.gate_id} of execution {spec.execution_id} is resolved already: "
        f"{gate.status} ({how} at {spec.resolved_at}, event {gate.resolved_seq})",
        existing=None,
    )


def _refuse_if_expired(spec: GateSpec) -> None:
    """Refuse an answer for an open gate whose deadline passed while no process ran it.

    The resume that continues the execution times the gate out before it reads any answer,
    so such an answer could never apply: refused now, rather than recorded and refused later.
    """
    gate = spec.state
    if gate is None or not is_expired(gate, utc_now()):
        return
    raise GateAlreadyAnsweredError(
        f"gate {spec.gate_id} of execution {spec.execution_id} timed out at {gate.deadline} "
        f"(its deadline passed while no process ran it): it takes no answer, and it "
        f"{expiry_outcome(gate.on_timeout)} (`orchestr8 resume {spec.execution_id}`)",
        existing=None,
    )


def _answered_message(spec: GateSpec, existing: ControlRequest) -> str:
    """Who answered the gate before, and when: the 409's detail."""
    verdict = "approved" if existing.body.get("approve") else "rejected"
    state = f"; {existing.outcome}" if existing.outcome else "; not yet applied"
    return (
        f"gate {spec.gate_id} of execution {spec.execution_id} was answered already: "
        f"{verdict} by {existing.body.get('by')} at {existing.created_at}{state}"
    )


async def _runner(journal: Journal, runtime: Runtime | None, execution_id: str) -> Runner:
    """Who runs the execution: this runtime, another process (its lock is held), or nobody."""
    if runtime is not None:
        handle = runtime.find(execution_id)
        if handle is not None and not handle.done:
            return "here"
    if await held(journal, [execution_id]):
        return "elsewhere"
    return "nobody"


async def wait_settled(journal: Journal, request: ControlRequest, seconds: float) -> ControlRequest:
    """The request read back once settled, or as it is after `seconds` (trio clock)."""
    with trio.move_on_after(seconds if math.isfinite(seconds) else 0.0):
        while True:
            for recorded in await journal.requests(request.execution_id):
                if recorded.request_id == request.request_id:
                    request = recorded
            if request.outcome is not None:
                break
            await trio.sleep(_SETTLE_POLL)
    return request


async def _outcome(
    journal: Journal, spec: GateSpec, request: ControlRequest, runner: Runner
) -> AnswerOutcome:
    """Describe what became of a recorded answer, from the request and the gate as replayed."""
    if request.outcome == "refused":
        raise GateAlreadyAnsweredError(
            f"gate {spec.gate_id} of execution {spec.execution_id} refused the answer: "
            f"{request.detail or 'no reason given'}",
            existing=request,
        )
    gate = replay(await journal.events(spec.execution_id)).gates.get(spec.gate_id)
    return AnswerOutcome(
        execution_id=spec.execution_id,
        gate_id=spec.gate_id,
        request=request,
        status="applied" if request.outcome == "applied" else "recorded",
        runner=runner,
        held=gate is None,
        gate=gate,
    )


def answered_by(gate: GateState) -> str:
    """Who or what resolved a gate, for a line telling it (`alice@host`, `its deadline`)."""
    answer = gate.answer or {}
    if answer.get("how") == "timeout":
        return "its deadline"
    return str(answer.get("by") or "someone")

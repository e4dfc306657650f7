"""Forks: a new execution that reuses a finished one's outputs up to a step, and runs the rest.

`orchestr8 fork ID --from STEP` (and `Runtime.fork`) starts a new execution of the source's
workflow that keeps the recorded outputs of every step not downstream of STEP and runs STEP and
everything that depends on it, transitively, again, with changed inputs if given. `plan_fork`
decides which is which, from the source's journal alone (no trio, nothing written): the
`ForkPlan` a dry run shows and the runtime carries out.

What a fork keeps and what it runs:

- The fork point is a step (`STEP`), a map item (`STEP[i]`: only that item of the map runs
  again, the map's other items are kept) or a loop iteration (`STEP#k`: iterations before k are
  kept, the loop goes on from k). The point and its dependents run again.
- A step is kept only when the source recorded it succeeded (with its output as it was, not
  redacted) or skipped; any other step runs again, and so do its dependents. A map or loop that
  runs again for that reason alone keeps its items and iterations that succeeded, as a resume
  does.
- With another workflow document (`--workflow FILE`) every kept step must have the spec the
  source ran (`step_spec_hashes`): otherwise the fork is refused, with a diff of each change.

The new execution records `forked_from` and `fork_seq` (the source's last seq when it was
forked); its `execution.started` says so, with `from_step`. Each kept unit's recorded events are
copied into it (`copied_events`), stamped now and marked `reused_from` (the source and seq), so
the fork's journal tells its whole story; then it runs like a resume (`_resumption`), which
reuses what was copied. Approval gates downstream run again, so they are asked again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

import attrs

from .._agents._contract import Agent
from .._errors import ForkRefusedError, InputValidationError, Problem
from .._journal._events import Event, EventFactory, EventType, StepStatus
from .._journal._journal import ExecutionRecord
from .._journal._map_items import split_item_id
from .._journal._replay import ExecutionState, StepState, replay
from .._json import append_path
from .._observability._redaction import default_redactor, redact
from .._workflow._codec import journal_document
from .._workflow._document import Step, Workflow
from .._workflow._inputs import validate_inputs
from .._workflow._spec_hashes import step_spec_difference, step_spec_hashes, step_specs
from ._admission import WorkflowLike
from ._loop import iteration_id
from ._map import item_id
from ._secrets import redacted_inputs

PAID_AGENTS: Final = frozenset({"llm", "research"})
"""Agents that call a paid model: a dry run lists them among the calls a fork pays again."""

_KEPT_STATUSES: Final = frozenset({StepStatus.SUCCEEDED, StepStatus.SKIPPED})

# The gate events of a kept approval step are copied with it (the gate keeps its answer).
_COPIED_TYPES: Final = frozenset(
    {
        EventType.STEP_SUCCEEDED,
        EventType.STEP_SKIPPED,
        EventType.MAP_STARTED,
        EventType.CHILD_STARTED,
        EventType.GATE_OPENED,
        EventType.GATE_RESOLVED,
    }
)


@attrs.frozen
class ForkPoint:
    """Where a fork starts running again: a step, one item of a map, or a loop's iteration."""

    step_id: str
    item: int | None = None
    """The map item (`STEP[i]`) that runs again, the map's others kept; None for all."""
    iteration: int | None = None
    """The loop iteration (`STEP#k`) the loop goes on from; None for the whole loop."""

    def __str__(self) -> str:
        """The point as written on the command line: `STEP`, `STEP[i]` or `STEP#k`."""
        if self.item is not None:
            return item_id(self.step_id, self.item)
        if self.iteration is not None:
            return iteration_id(self.step_id, self.iteration)
        return self.step_id


@attrs.frozen
class Rerun:
    """A step the fork runs again, and why."""

    step_id: str
    reason: str


@attrs.frozen
class RepaidCall:
    """A step the fork runs again that calls a paid model, with what the source recorded."""

    step_id: str
    agent: str | None
    usage: Mapping[str, int]
    """The `step.usage` counts the source recorded for what runs again (tokens, ...)."""


@attrs.frozen
class ForkPlan:
    """What a fork keeps, what it runs again and which paid calls that repeats."""

    source_id: str
    fork_seq: int
    """The source's last event seq: the fork is of the source as it was then."""
    point: ForkPoint
    kept: tuple[str, ...]
    """The steps whose recorded outcome the fork keeps, in document order."""
    rerun: tuple[Rerun, ...]
    """The steps the fork runs again, in document order."""
    kept_items: Mapping[str, tuple[int, ...]]
    """For map steps that run again: the items kept, by step id."""
    kept_iterations: Mapping[str, int]
    """For loop steps that run again: how many iterations (from the first) are kept."""
    repaid: tuple[RepaidCall, ...]
    copied: tuple[Event, ...]
    """The source's events of the kept units, in seq order, that the fork copies."""

    def to_json(self) -> dict[str, Any]:
        """The plan as `--dry-run --json` and the REST dry run show it."""
        return {
            "source": self.source_id,
            "fork_seq": self.fork_seq,
            "from": str(self.point),
            "kept": list(self.kept),
            "rerun": [{"step": rerun.step_id, "reason": rerun.reason} for rerun in self.rerun],
            "kept_items": {step_id: list(items) for step_id, items in self.kept_items.items()},
            "kept_iterations": dict(self.kept_iterations),
            "repaid_calls": [
                {"step": call.step_id, "agent": call.agent, "usage": dict(call.usage)}
                for call in self.repaid
            ],
            "repaid_usage": self.repaid_usage,
        }

    @property
    def repaid_usage(self) -> dict[str, int]:
        """The usage counts of every call paid again, summed."""
        totals: dict[str, int] = {}
        for call in self.repaid:
            for name, count in call.usage.items():
                totals[name] = totals.get(name, 0) + count
        return totals

    def describe(self) -> str:
        """The plan for people: what is kept, what runs again and why, which calls are repaid."""
        lines = [f"fork of {self.source_id} at seq {self.fork_seq}, from {self.point}"]
        lines.append(f"kept ({len(self.kept)}): {', '.join(self.kept) or 'nothing'}")
        lines.append(f"runs again ({len(self.rerun)}):")
        for rerun in self.rerun:
            detail = ""
            if rerun.step_id in self.kept_items:
                kept = self.kept_items[rerun.step_id]
                detail = f" (keeps {len(kept)} item{'s' if len(kept) != 1 else ''})"
            elif rerun.step_id in self.kept_iterations:
                count = self.kept_iterations[rerun.step_id]
                detail = f" (keeps iteration{'s' if count != 1 else ''} 1-{count})"
            lines.append(f"  {rerun.step_id}{detail}: {rerun.reason}")
        if self.repaid:
            lines.append("paid calls made again (as the source recorded them):")
            for call in self.repaid:
                usage = _describe_usage(call.usage) or "no usage recorded"
                lines.append(f"  {call.step_id} ({call.agent or 'no agent'}): {usage}")
            if total := _describe_usage(self.repaid_usage):
                lines.append(f"  in all: {total}")
        else:
            lines.append("paid calls made again: none")
        return "\n".join(lines)


def parse_fork_point(text: str, workflow: Workflow, state: ExecutionState) -> ForkPoint:
    """Read `--from`: `STEP`, `STEP[i]` (a map item) or `STEP#k` (a loop iteration).

    Raises:
        ForkRefusedError: no such step, or the item or iteration is not one it has.
    """
    item = split_item_id(text)
    step_id, iteration = text, None
    if item is not None:
        step_id = item[0]
    else:
        prefix, hash_sign, number = text.rpartition("#")
        if hash_sign and prefix and number.isdigit():
            step_id, iteration = prefix, int(number)
    step = workflow.steps_by_id.get(step_id)
    if step is None:
        known = ", ".join(workflow.steps_by_id)
        raise ForkRefusedError(f"--from {text}: no step '{step_id}' in the workflow ({known})")
    if item is not None:
        index = item[1]
        if step.for_each is None:
            raise ForkRefusedError(f"--from {text}: step '{step_id}' is not a map (for_each)")
        recorded = state.steps.get(step_id, StepState()).items
        if recorded is None:
            raise ForkRefusedError(
                f"--from {text}: map step '{step_id}' never started its items in the source; "
                f"fork from {step_id}"
            )
        if index >= recorded:
            raise ForkRefusedError(
                f"--from {text}: map step '{step_id}' had {recorded} item(s) in the source "
                f"(0-{recorded - 1})"
            )
        return ForkPoint(step_id, item=index)
    if iteration is not None:
        if step.repeat is None:
            raise ForkRefusedError(f"--from {text}: step '{step_id}' is not a loop (repeat)")
        if not 1 <= iteration <= step.repeat.max_iterations:
            raise ForkRefusedError(
                f"--from {text}: loop step '{step_id}' has iterations 1-"
                f"{step.repeat.max_iterations}"
            )
        return ForkPoint(step_id, iteration=iteration)
    return ForkPoint(step_id)


def plan_fork(
    record: ExecutionRecord,
    events: Sequence[Event],
    workflow: Workflow,
    document: Mapping[str, Any],
    point_text: str,
) -> ForkPlan:
    """Decide what a fork of `record` from `point_text` keeps and runs again.

    `workflow` is what the fork runs, and `document` its journal document (the source's own
    unless another was given): kept steps must have the spec the source recorded.

    Raises:
        ForkRefusedError: the fork point is not one the workflow has, or a kept step's spec
            changed (each change shown as a diff).
    """
    state = replay(events)
    point = parse_fork_point(point_text, workflow, state)
    steps = state.steps
    recorded_specs = step_specs(record.workflow)
    rerun: dict[str, str] = {}
    # Steps re-run whole: their items and iterations are all run again too.
    whole: set[str] = set()
    for step_id in workflow.order:
        recorded = steps.get(step_id)
        upstream = [need for need in workflow.dependencies[step_id] if need in rerun]
        if step_id == point.step_id:
            rerun[step_id] = "the fork point"
            if point.item is None and point.iteration is None:
                whole.add(step_id)
        elif upstream:
            rerun[step_id] = f"depends on {upstream[0]}, which runs again"
        elif step_id not in recorded_specs:
            rerun[step_id] = "the source's workflow has no such step"
        elif recorded is None:
            rerun[step_id] = "the source never ran it"
        elif recorded.status not in _KEPT_STATUSES:
            rerun[step_id] = f"it did not succeed in the source ({recorded.status})"
        elif recorded.output_redacted:
            rerun[step_id] = "its recorded output is redacted (it held a secret)"
        if upstream:
            whole.add(step_id)
    kept = tuple(step.id for step in workflow.steps if step.id not in rerun)
    kept_items: dict[str, tuple[int, ...]] = {}
    kept_iterations: dict[str, int] = {}
    for step_id in rerun:
        if step_id in whole:
            continue
        step = workflow.steps_by_id[step_id]
        if step.for_each is not None:
            items = _kept_items(step_id, state, point)
            if items:
                kept_items[step_id] = items
        elif step.repeat is not None:
            count = _kept_iterations(step_id, state, point)
            if count:
                kept_iterations[step_id] = count
    # A map or loop keeping items or iterations keeps outputs of its spec too.
    _check_specs(record, document, [*kept, *kept_items, *kept_iterations])
    ordered_rerun = tuple(
        Rerun(step.id, rerun[step.id]) for step in workflow.steps if step.id in rerun
    )
    units = _copied_units(state, kept, kept_items, kept_iterations)
    return ForkPlan(
        source_id=record.execution_id,
        fork_seq=state.last_seq,
        point=point,
        kept=kept,
        rerun=ordered_rerun,
        kept_items=kept_items,
        kept_iterations=kept_iterations,
        repaid=_repaid_calls(workflow, state, ordered_rerun, kept_items, kept_iterations),
        copied=_copied(events, units, kept_items),
    )


@attrs.frozen
class PreparedFork:
    """A fork ready to record: its plan, the workflow it runs and the inputs it runs with."""

    plan: ForkPlan
    workflow: Workflow
    document: Mapping[str, Any]
    """The journal document of `workflow`, redacted, as the fork's record keeps it."""
    inputs: Mapping[str, Any]
    """The fork's inputs, checked against the workflow's `inputs` schema (secrets and all)."""

    def record(self, execution_id: str) -> ExecutionRecord:
        """The fork's journal record: the workflow and redacted inputs, and where it came from."""
        return ExecutionRecord(
            execution_id=execution_id,
            workflow_name=redact(self.workflow.name),
            workflow=dict(self.document),
            inputs=redact(dict(self.inputs)),
            forked_from=self.plan.source_id,
            fork_seq=self.plan.fork_seq,
        )

    def start_data(self, execution_id: str) -> dict[str, Any]:
        """The data of the fork's `execution.started`: a start's, and where it was forked from.

        Its correlation id is its own id, as for any execution started without one.
        """
        return {
            "workflow": redact(self.workflow.name),
            "inputs": redact(dict(self.inputs)),
            "correlation_id": execution_id,
            "forked_from": self.plan.source_id,
            "fork_seq": self.plan.fork_seq,
            "from_step": str(self.plan.point),
        }

    def supplied(self) -> dict[str, Any]:
        """The inputs the fork's record keeps redacted, for its run to take again (`_secrets`)."""
        return {name: self.inputs[name] for name in redacted_inputs(redact(dict(self.inputs)))}


def prepare_fork(
    record: ExecutionRecord,
    events: Sequence[Event],
    admit: Callable[[WorkflowLike], tuple[Workflow, Mapping[str, Agent]]],
    point_text: str,
    *,
    workflow: WorkflowLike | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> PreparedFork:
    """Plan a fork of `record` and check what it would run with; nothing is written.

    `workflow` replaces the source's recorded document (its kept steps must be unchanged);
    `overrides` change the source's inputs (`fork_inputs`).

    Raises:
        ForkRefusedError: `record` is a child execution, the fork point is not one the workflow
            has, or a kept step's spec changed.
        WorkflowValidationError: `workflow` is invalid.
        InputValidationError: an input the journal redacted is not given again, or the inputs
            do not fit the workflow's `inputs` schema.
    """
    if record.parent_id is not None:
        raise ForkRefusedError(
            f"execution {record.execution_id} is a child of execution {record.parent_id} (its "
            f"step {record.parent_step}); fork {record.parent_id} from that step instead"
        )
    if workflow is None:
        loaded, _ = admit(record.workflow)
        document: Mapping[str, Any] = record.workflow
    else:
        loaded, _ = admit(workflow)
        document = default_redactor().redact_workflow(journal_document(loaded))
    plan = plan_fork(record, events, loaded, document, point_text)
    inputs = fork_inputs(record.inputs, overrides or {})
    missing = [name for name in redacted_inputs(inputs) if name not in (overrides or {})]
    if missing:
        raise InputValidationError(
            [
                Problem(
                    append_path("$.inputs", name),
                    "the journal keeps this input redacted (its key looks like a secret); "
                    "give it again to fork",
                )
                for name in missing
            ]
        )
    return PreparedFork(plan, loaded, document, validate_inputs(loaded, inputs))


def copied_events(plan: ForkPlan, factory: EventFactory) -> list[Event]:
    """The fork's copies of the kept units' events: stamped now, each marked `reused_from`."""
    return [
        factory.create(
            event.type,
            step_id=event.step_id,
            data={
                **event.data,
                "reused_from": {"execution_id": plan.source_id, "seq": event.seq},
            },
        )
        for event in plan.copied
    ]


def fork_inputs(recorded: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The source's recorded inputs with `overrides` applied; a dotted key sets a nested value.

    `a.b=1` sets `b` inside the object `a` (made when missing). The result still holds `***`
    where the journal redacted an input not overridden: `require_unredacted` refuses those.

    Raises:
        InputValidationError: a dotted key goes through a value that is not an object.
    """
    inputs: dict[str, Any] = _copy_objects(dict(recorded))
    problems: list[Problem] = []
    for key, value in overrides.items():
        names = key.split(".")
        target = inputs
        for depth, name in enumerate(names[:-1]):
            inner = target.setdefault(name, {})
            if not isinstance(inner, dict):
                path = "$.inputs." + ".".join(names[: depth + 1])
                problems.append(Problem(path, f"is not an object, so {key} cannot be set in it"))
                break
            target = inner
        else:
            target[names[-1]] = value
    if problems:
        raise InputValidationError(problems)
    return inputs


def _copy_objects(value: Any) -> Any:
    """`value` with every object copied, so overrides never change the record's inputs."""
    if isinstance(value, dict):
        return {key: _copy_objects(inner) for key, inner in value.items()}
    return value


def _check_specs(record: ExecutionRecord, document: Mapping[str, Any], kept: Iterable[str]) -> None:
    """Refuse the fork when a kept step's spec differs from the one the source ran."""
    if document is record.workflow:
        return
    before, after = step_specs(record.workflow), step_specs(document)
    recorded, now = step_spec_hashes(record.workflow), step_spec_hashes(document)
    changed = [step_id for step_id in kept if recorded.get(step_id) != now.get(step_id)]
    if changed:
        differences = "".join(
            step_spec_difference(step_id, before.get(step_id), after.get(step_id))
            for step_id in changed
        )
        raise ForkRefusedError(
            f"the workflow changed for step(s) the fork would keep: {', '.join(changed)}; "
            f"fork from an earlier step, or keep them as they were\n{differences}".rstrip()
        )


def _kept_items(step_id: str, state: ExecutionState, point: ForkPoint) -> tuple[int, ...]:
    """The items of a map step running again that the fork keeps: those that succeeded."""
    count = state.steps[step_id].items if step_id in state.steps else None
    if count is None:
        return ()
    skip = point.item if point.step_id == step_id else None
    return tuple(
        index
        for index in range(count)
        if index != skip
        and (unit := state.steps.get(item_id(step_id, index))) is not None
        and unit.reusable
    )


def _kept_iterations(step_id: str, state: ExecutionState, point: ForkPoint) -> int:
    """How many iterations of a loop running again the fork keeps: the first ones succeeded."""
    limit = point.iteration - 1 if point.step_id == step_id and point.iteration else None
    count = 0
    while limit is None or count < limit:
        unit = state.steps.get(iteration_id(step_id, count + 1))
        if unit is None or not unit.reusable:
            break
        count += 1
    return count


def _copied_units(
    state: ExecutionState,
    kept: Sequence[str],
    kept_items: Mapping[str, tuple[int, ...]],
    kept_iterations: Mapping[str, int],
) -> set[str]:
    """Every unit whose events the fork copies: kept steps with their items and iterations."""
    units: set[str] = set()
    owners = set(kept)
    for unit_id in state.steps:
        owner = _owner(unit_id)
        if unit_id in owners or owner in owners:
            units.add(unit_id)
    for step_id, items in kept_items.items():
        units.update(item_id(step_id, index) for index in items)
    for step_id, count in kept_iterations.items():
        units.update(iteration_id(step_id, number) for number in range(1, count + 1))
    return units


def _owner(unit_id: str) -> str | None:
    """The step a map item (`ID[i]`) or loop iteration (`ID#k`) belongs to, else None."""
    item = split_item_id(unit_id)
    if item is not None:
        return item[0]
    prefix, hash_sign, number = unit_id.rpartition("#")
    return prefix if hash_sign and prefix and number.isdigit() else None


def _copied(
    events: Sequence[Event], units: set[str], kept_items: Mapping[str, tuple[int, ...]]
) -> tuple[Event, ...]:
    """The last event of each copied type per unit (a map's `map.started` too), in seq order."""
    last: dict[tuple[str, str], Event] = {}
    for event in events:
        unit = event.step_id
        if unit is None or event.type not in _COPIED_TYPES:
            continue
        if unit in units or (event.type == EventType.MAP_STARTED and unit in kept_items):
            if event.type in (EventType.STEP_SUCCEEDED, EventType.STEP_SKIPPED):
                # Only the ending the replay holds counts: an earlier run's is superseded.
                last.pop((unit, EventType.STEP_SUCCEEDED), None)
                last.pop((unit, EventType.STEP_SKIPPED), None)
            last[(unit, event.type)] = event
    return tuple(sorted(last.values(), key=lambda event: event.seq))


def _repaid_calls(
    workflow: Workflow,
    state: ExecutionState,
    rerun: Sequence[Rerun],
    kept_items: Mapping[str, tuple[int, ...]],
    kept_iterations: Mapping[str, int],
) -> tuple[RepaidCall, ...]:
    """The steps running again whose agent is a paid model's or whose source recorded usage."""
    calls = []
    for entry in rerun:
        step = workflow.steps_by_id[entry.step_id]
        usage = _rerun_usage(step, state, kept_items, kept_iterations)
        agent = step.agent.id if step.agent is not None else None
        if usage or agent in PAID_AGENTS:
            calls.append(RepaidCall(step.id, agent, usage))
    return tuple(calls)


def _rerun_usage(
    step: Step,
    state: ExecutionState,
    kept_items: Mapping[str, tuple[int, ...]],
    kept_iterations: Mapping[str, int],
) -> dict[str, int]:
    """The usage the source recorded for what of `step` runs again."""
    step_id = step.id
    units: list[str]
    if step_id in kept_items:
        kept = set(kept_items[step_id])
        units = [
            unit_id
            for unit_id in state.steps
            if (item := split_item_id(unit_id)) is not None
            and item[0] == step_id
            and item[1] not in kept
        ]
    elif step.repeat is not None:
        first = kept_iterations.get(step_id, 0)
        units = [
            unit_id
            for unit_id in state.steps
            if _owner(unit_id) == step_id and int(unit_id.rpartition("#")[2]) > first
        ]
        if not first:
            units.append(step_id)
    else:
        # A map step's own usage holds its items' (replay adds them).
        units = [step_id]
    totals: dict[str, int] = {}
    for unit_id in units:
        recorded = state.steps.get(unit_id)
        for name, count in (recorded.usage if recorded is not None else {}).items():
            totals[name] = totals.get(name, 0) + count
    return totals


def _describe_usage(usage: Mapping[str, int]) -> str:
    return ", ".join(f"{count} {name}" for name, count in sorted(usage.items()))

"""Fork plans: what a fork of an execution keeps, and what it runs again, and why.

`orchestr8 fork ID --from STEP` (and `Runtime.fork`) starts a new execution that keeps the
recorded outputs of every step not downstream of STEP and runs STEP and everything that depends
on it, transitively, again. `plan_fork` decides which is which from the source's journal alone
(no trio, nothing written): the `ForkPlan` a dry run shows and `_forking` carries out.

- The fork point is a step (`STEP`), a map item (`STEP[i]`: only that item of the map runs
  again, the map's other items are kept) or a loop iteration (`STEP#k`: iterations before k are
  kept, the loop goes on from k). The point and its dependents run again.
- A step is kept only when the source recorded it succeeded (with its output as it was, not
  redacted) or skipped; any other step runs again, and so do its dependents. A map or loop that
  runs again for that reason alone keeps its items and iterations that succeeded, as a resume
  does.
- A step the source skipped because its `when` was false is evaluated again by the fork, so
  when that `when` reads an input the fork changes (`changed_inputs`) it is not kept: it is
  re-checked (`RECHECKED`), and its dependents run again, as the fork will run them.
- With another workflow document (`--workflow FILE`) every kept step (and every map or loop
  keeping items or iterations) must have the spec the source ran (`step_spec_hashes`):
  otherwise the fork is refused, with a diff of each change.
- The plan lists the source's events the fork copies (the kept units'), and the paid calls it
  makes again: steps whose agent is `llm` or `research` or whose source recorded usage.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import attrs

from .._errors import ForkRefusedError
from .._journal._events import Event, EventType, StepStatus
from .._journal._journal import ExecutionRecord
from .._journal._map_items import split_item_id
from .._journal._replay import ExecutionState, StepState, replay
from .._workflow._document import Step, Workflow
from .._workflow._spec_hashes import step_spec_difference, step_spec_hashes, step_specs
from ._loop import iteration_id
from ._map import item_id

PAID_AGENTS: Final = frozenset({"llm", "research"})
"""Agents that call a paid model: a dry run lists them among the calls a fork pays again."""

RECHECKED: Final = "re-checked: its when reads inputs"
"""Why a skipped step whose `when` reads a changed input runs again (its `when` is evaluated)."""

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

# Every budget event of a kept unit is copied, not only its last: the spend of the calls a
# fork keeps counts in its budgets (`_spending.journal_spend`), and is never paid again.
_COPIED_IN_FULL: Final = frozenset({EventType.BUDGET_RESERVED, EventType.BUDGET_SETTLED})


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
                detail = " (keeps iteration 1)" if count == 1 else f" (keeps iterations 1-{count})"
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
    recorded_hashes: Mapping[str, str] | None = None,
    changed_inputs: frozenset[str] = frozenset(),
) -> ForkPlan:
    """Decide what a fork of `record` from `point_text` keeps and runs again.

    `workflow` is what the fork runs, and `document` its journal document (the source's own
    unless another was given): kept steps must have the spec the source recorded, as
    `recorded_hashes` (the journal's, `Journal.step_hashes`) says, else as hashing the
    recorded document says. `changed_inputs` names the inputs the fork changes: a skipped
    step whose `when` reads one of them is re-checked rather than kept.

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
        elif recorded.status is StepStatus.SKIPPED and _when_reads(
            workflow.steps_by_id[step_id], changed_inputs
        ):
            rerun[step_id] = RECHECKED
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
    _check_specs(record, document, [*kept, *kept_items, *kept_iterations], recorded_hashes)
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


def _when_reads(step: Step, names: frozenset[str]) -> bool:
    """Whether `step`'s `when` reads one of the inputs `names` (any, if it reads all inputs)."""
    when = step.when
    if when is None or not names or "inputs" not in when.roots:
        return False
    read = {
        str(reference.path[0])
        for _, reference in when.located_references
        if reference.source == "inputs" and reference.path
    }
    return not read or not read.isdisjoint(names)


def _check_specs(
    record: ExecutionRecord,
    document: Mapping[str, Any],
    kept: Iterable[str],
    recorded_hashes: Mapping[str, str] | None,
) -> None:
    """Refuse the fork when a kept step's spec differs from the one the source ran."""
    if document is record.workflow:
        return
    before, after = step_specs(record.workflow), step_specs(document)
    recorded = recorded_hashes if recorded_hashes is not None else step_spec_hashes(record.workflow)
    now = step_spec_hashes(document)
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
    """Per unit, the last event of each copied type (a map's too) and every budget event, by seq."""
    last: dict[tuple[str, str], Event] = {}
    in_full: list[Event] = []
    for event in events:
        unit = event.step_id
        if unit in units and event.type in _COPIED_IN_FULL:
            in_full.append(event)
        if unit is None or event.type not in _COPIED_TYPES:
            continue
        if unit in units or (event.type == EventType.MAP_STARTED and unit in kept_items):
            if event.type in (EventType.STEP_SUCCEEDED, EventType.STEP_SKIPPED):
                # Only the ending the replay holds counts: an earlier run's is superseded.
                last.pop((unit, EventType.STEP_SUCCEEDED), None)
                last.pop((unit, EventType.STEP_SKIPPED), None)
            last[(unit, event.type)] = event
    return tuple(sorted([*last.values(), *in_full], key=lambda event: event.seq))


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

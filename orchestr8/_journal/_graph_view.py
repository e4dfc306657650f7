"""The graph view: an execution's steps as nodes and edges, compact enough for 10,000 steps.

The dashboard draws an execution's DAG from `graph_document`: one node per declared step of the
recorded workflow document (read as JSON, never through `_workflow`), with its kind, agent,
dependencies and what `replay` says of it (status, attempts, when it started, how long it ran),
and no outputs, so that a 10,000-step document stays near 1 MB. A step made of units of its own
(a map's items `ID[3]`, a loop's iterations `ID#2`) or running a child execution (a sub-workflow
or a plan) is one node with a `group`: how many members, counted by status, and the child's id.
`group_members` lists one group's members, a page at a time, for the node once it is expanded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from ._events import StepStatus
from ._iterations import is_iteration_of
from ._map_items import ITEM_STATUS_ORDER, NOT_STARTED, item_counts, split_item_id
from ._replay import ExecutionState, StepState

__all__ = [
    "GROUP_KINDS",
    "INTERRUPTED",
    "STEP_KINDS",
    "graph_document",
    "group_members",
    "shown_step_status",
    "step_kind",
]

#: The kinds a node has: what a step runs.
STEP_KINDS: Final = ("agent", "map", "loop", "workflow", "plan", "approval")
#: The kinds of node that collapse members (items, iterations, a child execution) into one.
GROUP_KINDS: Final = ("map", "loop", "workflow", "plan")
#: The execution status views show when no process runs an unfinished execution (`_liveness`).
INTERRUPTED: Final = "interrupted"
#: The step statuses that say a process works on the step now: `interrupted` once none does.
_IN_PROGRESS: Final = frozenset({str(StepStatus.RUNNING), str(StepStatus.RETRYING)})


def shown_step_status(status: str, execution_status: str) -> str:
    """A step's status as views show it: a running step of an interrupted execution is interrupted.

    The journal keeps such a step `running` (its process died without a word); the execution's
    shown status (`_execution/_liveness`) says no process runs it, so neither does the step run.
    """
    if execution_status == INTERRUPTED and status in _IN_PROGRESS:
        return INTERRUPTED
    return status


def _shown_counts(counts: Mapping[str, int], execution_status: str) -> dict[str, int]:
    """Members counted by status, their running ones counted `interrupted` when the run is."""
    shown: dict[str, int] = {}
    for status, count in counts.items():
        key = shown_step_status(status, execution_status)
        shown[key] = shown.get(key, 0) + count
    return shown


def step_kind(step: Mapping[str, Any]) -> str:
    """What a step of a workflow document runs: one of `STEP_KINDS` (a plain agent by default)."""
    if step.get("for_each") is not None:
        return "map"
    if step.get("repeat") is not None:
        return "loop"
    for kind in ("workflow", "plan", "approval"):
        if step.get(kind) is not None:
            return kind
    return "agent"


def _agent_id(step: Mapping[str, Any]) -> str | None:
    """The agent id a step names (`"echo"` or `{"id": "echo", ...}`), else None."""
    agent = step.get("agent")
    if isinstance(agent, str):
        return agent
    if isinstance(agent, Mapping) and isinstance(agent.get("id"), str):
        return str(agent["id"])
    return None


def _declared_steps(workflow: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The steps of a recorded workflow document that carry a string id, in declaration order."""
    steps = workflow.get("steps")
    if not isinstance(steps, list):
        return []
    return [step for step in steps if isinstance(step, Mapping) and isinstance(step.get("id"), str)]


def _seconds(value: float | None) -> float | None:
    """A time in seconds rounded to the millisecond (shorter JSON), or None."""
    return None if value is None else round(value, 3)


def _iteration_units(state: ExecutionState) -> dict[str, list[tuple[int, StepState]]]:
    """The loop iterations (`ID#k`) in `state`, by loop step id, in iteration order."""
    found: dict[str, list[tuple[int, StepState]]] = {}
    for unit_id, unit in state.steps.items():
        owner, separator, number = unit_id.rpartition("#")
        if separator and number.isdigit() and is_iteration_of(unit_id, owner):
            found.setdefault(owner, []).append((int(number), unit))
    for units in found.values():
        units.sort(key=lambda pair: pair[0])
    return found


def _ordered_counts(counts: Mapping[str, int]) -> dict[str, int]:
    """Counts by status in the order views list them (most telling first), zeros left out."""
    ordered = {status: counts[status] for status in ITEM_STATUS_ORDER if counts.get(status)}
    ordered.update({status: n for status, n in counts.items() if n and status not in ordered})
    return ordered


def _group(
    kind: str,
    step: Mapping[str, Any],
    unit: StepState | None,
    maps: Mapping[str, Any],
    loops: Mapping[str, list[tuple[int, StepState]]],
) -> dict[str, Any] | None:
    """The `group` of a node of kind `kind`: its members counted by status, or None."""
    step_id = str(step["id"])
    if kind == "map":
        counted = maps.get(step_id)
        if counted is None:
            return {"kind": "map", "total": None, "counts": {}}
        return {"kind": "map", "total": counted.count, "counts": dict(counted.statuses)}
    if kind == "loop":
        repeat = step.get("repeat")
        bound = repeat.get("max_iterations") if isinstance(repeat, Mapping) else None
        counts: dict[str, int] = {}
        for _, iteration in loops.get(step_id, []):
            counts[iteration.status] = counts.get(iteration.status, 0) + 1
        return {
            "kind": "loop",
            "total": bound if isinstance(bound, int) else None,
            "counts": _ordered_counts(counts),
        }
    if kind in ("workflow", "plan"):
        status = unit.status if unit is not None else StepStatus.PENDING
        group: dict[str, Any] = {"kind": kind, "total": 1, "counts": {str(status): 1}}
        if unit is not None and unit.child is not None:
            group["child_execution_id"] = unit.child
        return group
    return None


def graph_document(
    execution_id: str,
    workflow: Mapping[str, Any],
    state: ExecutionState,
    *,
    status: str,
) -> dict[str, Any]:
    """The graph of an execution: its declared steps as nodes, each with its state, no outputs.

    `workflow` is the recorded workflow document, `state` the replay of the execution's events
    and `status` the execution's status as views show it (`interrupted` included: then its
    running steps and members are `interrupted` too, `shown_step_status`). Each node has
    `id`, `kind`, `agent`, `depends_on`, `status`, `attempts`, `started` (seconds after the
    execution started), `duration` and, for a map, loop, sub-workflow or plan, a `group`; an
    approval step whose gate opened has its `gate` status (`open`, `approved`, `rejected`...).
    Under the `sequential` strategy each step also depends on the one declared before it.
    """
    maps = item_counts(state)
    loops = _iteration_units(state)
    sequential = workflow.get("strategy") == "sequential"
    nodes: list[dict[str, Any]] = []
    previous: str | None = None
    for step in _declared_steps(workflow):
        step_id = str(step["id"])
        kind = step_kind(step)
        unit = state.steps.get(step_id)
        declared = step.get("depends_on")
        depends_on = (
            [name for name in declared if isinstance(name, str)]
            if isinstance(declared, list)
            else []
        )
        if sequential and previous is not None and previous not in depends_on:
            depends_on.append(previous)
        previous = step_id
        node: dict[str, Any] = {
            "id": step_id,
            "kind": kind,
            "agent": _agent_id(step),
            "depends_on": depends_on,
            "status": shown_step_status(
                str(unit.status if unit is not None else StepStatus.PENDING), status
            ),
            "attempts": unit.total_attempts if unit is not None else 0,
            "started": _seconds(unit.started) if unit is not None else None,
            "duration": _seconds(unit.duration) if unit is not None else None,
        }
        group = _group(kind, step, unit, maps, loops)
        if group is not None:
            group["counts"] = _shown_counts(group["counts"], status)
            node["group"] = group
        elif unit is not None and unit.child is not None:
            node["child_execution_id"] = unit.child
        gate = state.gates.get(step_id)
        if gate is not None:
            node["gate"] = gate.status
        nodes.append(node)
    name = workflow.get("name")
    return {
        "execution_id": execution_id,
        "workflow": name if isinstance(name, str) else "",
        "status": status,
        "last_seq": state.last_seq,
        "nodes": nodes,
    }


def _member(
    member_id: str, unit: StepState | None, unstarted: str, execution_status: str
) -> dict[str, Any]:
    """One member of a group as the expanded node lists it."""
    if unit is None:
        return {"id": member_id, "status": unstarted, "attempts": 0, "duration": None}
    return {
        "id": member_id,
        "status": shown_step_status(str(unit.status), execution_status),
        "attempts": unit.total_attempts,
        "duration": _seconds(unit.duration),
    }


def group_members(
    execution_id: str,
    workflow: Mapping[str, Any],
    state: ExecutionState,
    step_id: str,
    *,
    offset: int,
    limit: int,
    status: str = "",
) -> dict[str, Any] | None:
    """One page of a group's members (a map's items, a loop's iterations), or None if no group.

    `status` is the execution's status as views show it: when `interrupted`, so are its running
    members.

    Items are listed by index, every item `for_each` yielded (those not started yet `pending`,
    or `not_started` once the execution ended); iterations in order, as far as they ran. A
    sub-workflow or plan has no members here: its `child_execution_id` is the execution to open.
    `total` counts every member; `next_offset` is None on the last page.
    """
    step = next((each for each in _declared_steps(workflow) if each["id"] == step_id), None)
    if step is None:
        return None
    kind = step_kind(step)
    if kind not in GROUP_KINDS:
        return None
    unit = state.steps.get(step_id)
    member_ids: list[str] = []
    if kind == "map":
        seen = {
            parsed[1]
            for unit_id in state.steps
            if (parsed := split_item_id(unit_id)) is not None and parsed[0] == step_id
        }
        count = unit.items if unit is not None and unit.items is not None else None
        indices = range(count) if count is not None else sorted(seen)
        member_ids = [f"{step_id}[{index}]" for index in indices]
    elif kind == "loop":
        member_ids = [
            f"{step_id}#{number}" for number, _ in _iteration_units(state).get(step_id, [])
        ]
    unstarted = NOT_STARTED if state.status.is_terminal else str(StepStatus.PENDING)
    page = member_ids[offset : offset + limit]
    following = offset + limit
    return {
        "execution_id": execution_id,
        "step_id": step_id,
        "kind": kind,
        "total": len(member_ids),
        "offset": offset,
        "next_offset": following if following < len(member_ids) else None,
        "child_execution_id": unit.child if unit is not None else None,
        "members": [
            _member(member_id, state.steps.get(member_id), unstarted, status) for member_id in page
        ],
    }

"""Map items as the views show them: the items of each map step, counted by status.

A map step (`for_each`) journals each item as a unit of its own, `ID[i]`, so `replay` holds one
`StepState` per item that started, next to the map step's own (whose `items` is the count
`map.started` recorded). A map of 1,000 items is not 1,000 rows to a person: `inspect`, the
timeline and the REST execution document show each map step's items grouped, as counted here
(`map 1000: 998 succeeded, 2 failed`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from ._events import StepStatus
from ._replay import ExecutionState

#: What items that never started count as once their execution finished (cancelled or failed
#: before they could start): not `pending`, which says they are still to run.
NOT_STARTED = "not_started"

#: The order item statuses are listed in, most telling first.
ITEM_STATUS_ORDER: tuple[str, ...] = (
    StepStatus.SUCCEEDED,
    StepStatus.FAILED,
    StepStatus.CANCELLED,
    StepStatus.SKIPPED,
    StepStatus.RUNNING,
    StepStatus.WAITING,
    StepStatus.RETRYING,
    StepStatus.PENDING,
    NOT_STARTED,
)


def split_item_id(unit_id: str) -> tuple[str, int] | None:
    """The map step id and item index of an item's id (`ID[3]` → `("ID", 3)`), or None."""
    if not unit_id.endswith("]"):
        return None
    step_id, bracket, index = unit_id[:-1].rpartition("[")
    if not bracket or not step_id or not index.isdigit():
        return None
    return step_id, int(index)


@attrs.frozen
class ItemCounts:
    """The items of one map step: how many, how many in each status, their attempts."""

    count: int | None
    """How many items `for_each` yielded (None: its `map.started` is not in the events)."""
    statuses: Mapping[str, int]
    """How many items are in each status; items that never started count as `pending`, or as
    `not_started` once the execution finished."""
    attempts: int
    """The attempts of all its items together."""
    failed: tuple[int, ...]
    """The indices of the items that failed, in order."""

    def describe(self) -> str:
        """One line for people: `map 1000: 998 succeeded, 2 failed`."""
        return describe_items(self.to_json())

    def to_json(self) -> dict[str, Any]:
        """The JSON form views put under a map step's `items`."""
        return {
            "count": self.count,
            **self.statuses,
            "attempts": self.attempts,
            "failed_items": list(self.failed),
        }


def describe_items(items: Mapping[str, Any]) -> str:
    """One line for people from an `ItemCounts.to_json()` document: `map 3: 2 succeeded, 1 failed`.

    The attempts follow when items were retried (`; 1004 attempts`).
    """
    counts = ", ".join(
        f"{items[status]} {status.replace('_', ' ')}"
        for status in ITEM_STATUS_ORDER
        if items.get(status)
    )
    total = "?" if items.get("count") is None else str(items["count"])
    line = f"map {total}: {counts}" if counts else f"map {total}"
    started = sum(
        items.get(status, 0)
        for status in ITEM_STATUS_ORDER
        if status not in (StepStatus.PENDING, StepStatus.SKIPPED, NOT_STARTED)
    )
    if items.get("attempts", 0) > started:
        line += f"; {items['attempts']} attempts"
    return line


def item_counts(state: ExecutionState) -> dict[str, ItemCounts]:
    """The items of every map step in `state`, counted, by map step id (in first-seen order)."""
    found: dict[str, dict[str, int]] = {}
    unstarted_status = NOT_STARTED if state.status.is_terminal else StepStatus.PENDING
    attempts: dict[str, int] = {}
    failed: dict[str, list[int]] = {}
    for unit_id, unit in state.steps.items():
        parsed = split_item_id(unit_id)
        if parsed is None:
            if unit.items is not None:
                found.setdefault(unit_id, {})
            continue
        step_id, index = parsed
        statuses = found.setdefault(step_id, {})
        statuses[unit.status] = statuses.get(unit.status, 0) + 1
        attempts[step_id] = attempts.get(step_id, 0) + unit.attempts
        if unit.status is StepStatus.FAILED:
            failed.setdefault(step_id, []).append(index)
    counted: dict[str, ItemCounts] = {}
    for step_id, statuses in found.items():
        owner = state.steps.get(step_id)
        count = owner.items if owner is not None else None
        if count is not None:
            unstarted = count - sum(statuses.values())
            if unstarted > 0:
                statuses[unstarted_status] = statuses.get(unstarted_status, 0) + unstarted
        ordered = {
            str(status): statuses[status] for status in ITEM_STATUS_ORDER if statuses.get(status)
        }
        counted[step_id] = ItemCounts(
            count, ordered, attempts.get(step_id, 0), tuple(sorted(failed.get(step_id, ())))
        )
    return counted

"""What an execution's budget events say for views: each step's settled spend and unsettled holds.

`budget.reserved` holds a call's worst case; `budget.settled` replaces it by what the call spent.
A reservation never settled is a call in flight, or one cut off by a kill: the ledger of a
resumed run counts it at its worst case (it may have been paid for), so `inspect` shows it as
*held, unsettled* rather than hiding it. Settled spend also stands in for a step that has no
`llm.called` of its own: a fork's kept steps, whose settlements the fork copied
(`reused_from`), show what they cost.

A map item's or loop iteration's events count for its step (`ID[3]`, `ID#2` → `ID`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, Final

import attrs

from ._costs import round_cost
from ._events import Event, EventType

__all__ = ["BudgetSpend", "StepBudgetSpend", "budget_spend"]

#: The counts a budget event carries besides its cost.
_COUNTS: Final = ("input_tokens", "output_tokens", "llm_calls")


@attrs.frozen
class StepBudgetSpend:
    """One step's spend as its budget events tell it: settled, and held but never settled."""

    settled: Mapping[str, float] = attrs.field(factory=dict)
    held: Mapping[str, float] = attrs.field(factory=dict)


@attrs.frozen
class BudgetSpend:
    """Every step's budget spend, by step id, and the unsettled holds summed."""

    steps: Mapping[str, StepBudgetSpend]
    held: Mapping[str, float]
    """All unsettled holds together (empty when none)."""


def _owner(unit_id: str) -> str:
    """The step a unit's events count for: `ID` for `ID[3]` and `ID#2`."""
    if unit_id.endswith("]") and "[" in unit_id:
        unit_id = unit_id[: unit_id.rindex("[")]
    return unit_id.split("#", 1)[0]


def _amounts(data: Mapping[str, Any]) -> dict[str, float]:
    """The cost and counts of a budget event; malformed ones count as 0."""
    amounts: dict[str, float] = {}
    cost = data.get("cost_usd")
    if isinstance(cost, int | float) and not isinstance(cost, bool) and math.isfinite(cost):
        amounts["cost_usd"] = max(float(cost), 0.0)
    for name in _COUNTS:
        value = data.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            amounts[name] = value
    return amounts


def _add(total: Mapping[str, float], amounts: Mapping[str, float]) -> dict[str, float]:
    added = dict(total)
    for name, value in amounts.items():
        summed = added.get(name, 0) + value
        added[name] = round_cost(summed) if name == "cost_usd" else summed
    return added


def budget_spend(events: Iterable[Event]) -> BudgetSpend:
    """Fold the budget events of an execution's journal into each step's settled and held spend."""
    open_holds: dict[int, tuple[str, dict[str, float]]] = {}
    settled: dict[str, dict[str, float]] = {}
    for event in events:
        if event.type not in (EventType.BUDGET_RESERVED, EventType.BUDGET_SETTLED):
            continue
        number = event.data.get("reservation")
        if not isinstance(number, int) or isinstance(number, bool) or event.step_id is None:
            continue
        step_id = _owner(event.step_id)
        if event.type == EventType.BUDGET_RESERVED:
            open_holds[number] = (step_id, _amounts(event.data))
        else:
            open_holds.pop(number, None)
            settled[step_id] = _add(settled.get(step_id, {}), _amounts(event.data))
    held: dict[str, dict[str, float]] = {}
    total: dict[str, float] = {}
    for step_id, amounts in open_holds.values():
        held[step_id] = _add(held.get(step_id, {}), amounts)
        total = _add(total, amounts)
    steps = {
        step_id: StepBudgetSpend(settled.get(step_id, {}), held.get(step_id, {}))
        for step_id in (*settled, *(s for s in held if s not in settled))
    }
    return BudgetSpend(steps, total)

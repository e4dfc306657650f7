"""What model calls cost, as the journal tells it: the `cost_usd` of `llm.called` events summed.

The `llm` agent journals each API call as `llm.called` with its `cost_usd`: the call's usage
priced by the provider's price (docs/budgets.md), or null when the model has no price. Replay
sums them for the execution (`ExecutionState.cost_usd`; per step, `_llm_calls` folds them into
`StepState.llm`, whose `cost_usd` a step shows), so `inspect` and the REST documents show what a
run cost. `None` means no call was priced (none was made, or no price was known); a run whose
calls were only partly priced shows the priced part.

Sums are rounded to `COST_DECIMALS` (10) decimal places, a ten-billionth of a dollar, so float
noise (`0.005600000000000001`) never reaches a view: `--json` and REST show `0.0056`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

__all__ = ["COST_DECIMALS", "add_cost", "call_cost", "round_cost"]

#: The decimal places a summed cost keeps: float noise below a ten-billionth of a dollar goes.
COST_DECIMALS: Final = 10


def round_cost(cost: float) -> float:
    """`cost` in US dollars rounded to `COST_DECIMALS` places (sums of floats carry noise)."""
    return round(cost, COST_DECIMALS)


def call_cost(data: Mapping[str, Any]) -> float | None:
    """The cost of one `llm.called` event's call in US dollars, or None when it has none."""
    cost = data.get("cost_usd")
    if isinstance(cost, bool) or not isinstance(cost, int | float):
        return None
    return float(cost) if math.isfinite(cost) and cost >= 0 else None


def add_cost(total: float | None, cost: float | None) -> float | None:
    """`total` with `cost` added; None only while both are None (nothing priced yet)."""
    if cost is None:
        return total
    return cost if total is None else round_cost(total + cost)

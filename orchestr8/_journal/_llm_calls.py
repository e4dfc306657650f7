"""The model calls of a step, folded from its `llm.called` events: how many, who answered, cost.

The `llm` agent journals every API call it makes as `llm.called` (`{"provider", "model", "usage",
"cost_usd", "latency_s", "fallback_index", "outcome", "error"?}`, see docs/events.md). Replay
folds them per step into an `LLMCalls` (a map item's calls count for its map step too), which
`inspect` and the REST step documents show: the calls made, those that failed, the providers
that answered (so a fallback shows), and the cost of those whose price was known. A step that
calls no model has none, and costs replay nothing.

Across a resume a step keeps its earlier calls: their tokens were spent, so they stay counted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import attrs

from .._json import JSON
from ._costs import round_cost

__all__ = ["LLMCalls", "fold_llm_call", "total_llm_calls"]


@attrs.frozen
class LLMCalls:
    """What the `llm.called` events of a step say: calls, failures, who answered, what it cost."""

    calls: int = 0
    """Every API call, answered or failed."""
    failed: int = 0
    """The calls that failed (an error, an open breaker does not count: no call was made)."""
    providers: tuple[str, ...] = ()
    """The providers that answered, each once, in the order they first did."""
    models: tuple[str, ...] = ()
    """The `provider:model` names that answered, each once, in the order they first did."""
    cost_usd: float = 0.0
    """The summed cost of the calls whose price was known."""
    unpriced: int = 0
    """Calls whose cost is unknown (`cost_usd` null): `cost_usd` leaves them out."""

    def to_json(self) -> dict[str, JSON]:
        """The summary as REST and `inspect --json` show it."""
        return {
            "calls": self.calls,
            "failed": self.failed,
            "providers": list(self.providers),
            "models": list(self.models),
            "cost_usd": self.cost_usd,
            "unpriced": self.unpriced,
        }


def fold_llm_call(calls: LLMCalls | None, data: Mapping[str, Any]) -> LLMCalls:
    """`calls` with one more `llm.called` event's `data`; malformed fields count as absent."""
    calls = calls or LLMCalls()
    failed = data.get("outcome") == "failed"
    providers, models = calls.providers, calls.models
    provider, model = data.get("provider"), data.get("model")
    if not failed and isinstance(provider, str):
        if provider not in providers:
            providers += (provider,)
        name = f"{provider}:{model}" if isinstance(model, str) else provider
        if name not in models:
            models += (name,)
    cost = data.get("cost_usd")
    priced = isinstance(cost, int | float) and not isinstance(cost, bool) and math.isfinite(cost)
    amount = float(cost) if priced and cost is not None else 0.0
    return LLMCalls(
        calls=calls.calls + 1,
        failed=calls.failed + failed,
        providers=providers,
        models=models,
        cost_usd=round_cost(calls.cost_usd + amount),
        unpriced=calls.unpriced + (not priced),
    )


def total_llm_calls(per_step: Mapping[str, LLMCalls | None]) -> LLMCalls | None:
    """The calls of several steps together (None when none called a model).

    Pass only the steps whose calls are not already counted in another's (a map step holds its
    items' calls, so its items are left out).
    """
    total: LLMCalls | None = None
    for calls in per_step.values():
        if calls is None:
            continue
        if total is None:
            total = calls
            continue
        total = LLMCalls(
            calls=total.calls + calls.calls,
            failed=total.failed + calls.failed,
            providers=total.providers
            + tuple(p for p in calls.providers if p not in total.providers),
            models=total.models + tuple(m for m in calls.models if m not in total.models),
            cost_usd=round_cost(total.cost_usd + calls.cost_usd),
            unpriced=total.unpriced + calls.unpriced,
        )
    return total

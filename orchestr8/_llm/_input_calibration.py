"""Calibrating input estimates from the calls that settled: what a model really bills for a prompt.

A reservation's input is estimated from the prompt's characters (`worst_case_spend`: characters
/ 4 plus a per-call floor). A provider may bill far more (a tokenizer that splits code finely, a
hidden system prompt, a tool preamble). Each execution keeps, per model, the largest ratio of
real input tokens to the estimate among its settled calls; a later call of that model is reserved
at its estimate times that ratio (never less than the estimate), its cost raised by the extra
input at the model's input price. So once one call of a model has settled, calls like it (a map's
items, a loop's iterations, a tool loop's turns) are reserved at least at what they will spend,
and a cap holds for them.

Pure and synchronous, like the ledger: one per execution, fed by settlements.
"""

from __future__ import annotations

import math

import attrs

from ._prices import PriceEntry
from ._session import Spend

__all__ = ["InputCalibration"]


@attrs.define
class InputCalibration:
    """Per model, the largest real/estimated input ratio of the settled calls of one execution."""

    _ratios: dict[str, float] = attrs.field(factory=dict, init=False)

    def ratio(self, model: str) -> float:
        """How many times its estimate a call of `model` is reserved at (1 before any settled)."""
        return self._ratios.get(model, 1.0)

    def observe(self, model: str, estimated_input: int, real_input: int) -> None:
        """Learn from a settled call of `model`: estimated `estimated_input`, billed `real_input`.

        A call estimated at 0 tokens, or billed no more than its estimate, teaches nothing.
        """
        if estimated_input <= 0 or real_input <= estimated_input:
            return
        ratio = real_input / estimated_input
        if ratio > self.ratio(model):
            self._ratios[model] = ratio

    def ask(self, model: str, estimate: Spend, price: PriceEntry | None) -> Spend:
        """`estimate` (a call's worst case) with its input scaled by `model`'s ratio, and priced.

        The extra input tokens cost the model's input price (nothing without a price).
        """
        ratio = self._ratios.get(model)
        if ratio is None or estimate.input_tokens == 0:
            return estimate
        scaled = math.ceil(estimate.input_tokens * ratio)
        extra = scaled - estimate.input_tokens
        cost = estimate.cost_usd + (0.0 if price is None else extra * price.input / 1_000_000)
        return attrs.evolve(estimate, input_tokens=scaled, cost_usd=cost)

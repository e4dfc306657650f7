"""Calibrating input estimates: the largest real/estimated ratio of a model's settled calls."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestr8._llm._budget_ledger import BudgetLedger, Shortfall
from orchestr8._llm._input_calibration import InputCalibration
from orchestr8._llm._prices import PriceEntry
from orchestr8._llm._session import Spend
from orchestr8._workflow._budgets import Budget

PRICE = PriceEntry(2.0, 10.0, 0.2)


def estimate(input_tokens: int, output_tokens: int = 10) -> Spend:
    """A worst case priced at PRICE."""
    cost = (input_tokens * PRICE.input + output_tokens * PRICE.output) / 1_000_000
    return Spend(cost_usd=cost, input_tokens=input_tokens, output_tokens=output_tokens, llm_calls=1)


def test_before_any_settled_call_the_estimate_stands() -> None:
    """A model with no settled call is reserved at its estimate."""
    calibration = InputCalibration()
    assert calibration.ratio("anthropic:claude-haiku-4-5") == 1.0
    assert calibration.ask("anthropic:claude-haiku-4-5", estimate(9), PRICE) == estimate(9)


def test_a_call_that_billed_more_scales_the_next_asks_input_and_cost() -> None:
    """Estimated 9, billed 2,000: the next call of 9 asks 2,000 tokens, priced at the input rate."""
    calibration = InputCalibration()
    calibration.observe("anthropic:claude-haiku-4-5", 9, 2000)
    asked = calibration.ask("anthropic:claude-haiku-4-5", estimate(9), PRICE)
    assert asked == estimate(2000)
    assert asked.cost_usd == pytest.approx(estimate(2000).cost_usd)
    assert calibration.ask("anthropic:claude-haiku-4-5", estimate(18), None).input_tokens == 4000
    assert calibration.ask("anthropic:claude-haiku-4-5", estimate(18), None).cost_usd == (
        estimate(18).cost_usd
    )


def test_calibration_is_per_model_and_only_ever_grows() -> None:
    """Another model keeps its estimate; a call billed under its estimate lowers nothing."""
    calibration = InputCalibration()
    calibration.observe("a:m", 10, 30)
    calibration.observe("a:m", 10, 20)
    calibration.observe("a:m", 10, 5)
    calibration.observe("a:m", 0, 50)
    assert calibration.ratio("a:m") == 3.0
    assert calibration.ratio("b:m") == 1.0
    assert calibration.ask("a:m", Spend(llm_calls=1), PRICE) == Spend(llm_calls=1)


@given(
    factor=st.integers(min_value=1, max_value=50),
    estimates=st.lists(st.integers(min_value=1, max_value=400), min_size=1, max_size=30),
    cap=st.integers(min_value=0, max_value=20_000),
)
def test_after_the_first_settled_call_a_cap_holds_for_calls_alike(
    factor: int, estimates: list[int], cap: int
) -> None:
    """Calls billing `factor` times their estimate, one after another: after the first settles,
    the input cap is passed by no more than that first call's underestimate."""
    ledger = BudgetLedger(Budget(max_input_tokens=cap), {})
    calibration = InputCalibration()
    first_overshoot: int | None = None
    for tokens in estimates:
        ask = calibration.ask("p:m", estimate(tokens), PRICE)
        found = ledger.try_reserve("step", ask)
        if isinstance(found, Shortfall):
            continue
        real = tokens * factor
        ledger.settle(found, estimate(real))
        calibration.observe("p:m", tokens, real)
        if first_overshoot is None:
            first_overshoot = real - ask.input_tokens
        assert ledger.spent.input_tokens <= cap + first_overshoot

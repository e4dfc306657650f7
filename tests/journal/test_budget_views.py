"""Budget events folded for views: settled spend per step, holds never settled, item owners."""

from __future__ import annotations

from event_scripts import Script

from orchestr8._journal._budget_views import StepBudgetSpend, budget_spend


def test_items_and_iterations_count_for_their_step_and_open_holds_stay_held() -> None:
    """`m[2]` and `m#1` count for `m`; a reservation with no settlement is held."""
    script = Script().add("execution.started")
    script.add("budget.reserved", "m[2]", reservation=1, cost_usd=0.5, input_tokens=9)
    script.add("budget.settled", "m[2]", reservation=1, cost_usd=0.1, input_tokens=4)
    script.add("budget.reserved", "m#1", reservation=2, cost_usd=0.2, llm_calls=1)
    script.add("budget.reserved", "x", reservation=3, cost_usd=0.3)
    spend = budget_spend(script.events)
    assert spend.steps["m"] == StepBudgetSpend(
        settled={"cost_usd": 0.1, "input_tokens": 4},
        held={"cost_usd": 0.2, "llm_calls": 1},
    )
    assert spend.held == {"cost_usd": 0.5, "llm_calls": 1}


def test_malformed_budget_events_count_nothing() -> None:
    """No reservation number, a bool, NaN or a negative count: left out, never a crash."""
    script = Script().add("execution.started")
    script.add("budget.reserved", "a", reservation="one", cost_usd=1.0)
    script.add("budget.settled", "a", reservation=True, cost_usd=1.0)
    script.add("budget.settled", "a", reservation=4, cost_usd=float("nan"), input_tokens=-1)
    assert budget_spend(script.events).steps == {"a": StepBudgetSpend(settled={}, held={})}
    assert budget_spend(script.events).held == {}

"""What model calls cost, folded by replay from `llm.called`: per step, per map, in all."""

from __future__ import annotations

import math
from typing import Any

import pytest
from event_scripts import Script

from orchestr8._journal._costs import add_cost, call_cost, round_cost
from orchestr8._journal._replay import replay


@pytest.mark.parametrize(
    ("data", "cost"),
    [
        ({"cost_usd": 0.25}, 0.25),
        ({"cost_usd": 2}, 2.0),
        ({"cost_usd": 0}, 0.0),
        ({"cost_usd": None}, None),
        ({}, None),
        ({"cost_usd": True}, None),
        ({"cost_usd": "0.1"}, None),
        ({"cost_usd": -1}, None),
        ({"cost_usd": math.nan}, None),
    ],
)
def test_a_calls_cost_is_a_finite_number_or_none(data: dict[str, Any], cost: float | None) -> None:
    """Only a finite number >= 0 is a cost; anything else (an unpriced call) is none."""
    assert call_cost(data) == cost


def test_costs_add_up_and_none_means_nothing_priced() -> None:
    """None plus None stays None; a priced call makes a total."""
    assert add_cost(None, None) is None
    assert add_cost(None, 0.5) == 0.5
    assert add_cost(0.5, None) == 0.5
    assert add_cost(0.5, 0.25) == 0.75


def test_replay_sums_costs_per_step_per_map_and_in_all() -> None:
    """Items count for their map; a resumed step keeps what it paid; unpriced calls add none."""
    script = Script().add("execution.started")
    script.add("step.started", "a", agent="llm").add("attempt.started", "a", attempt=1)
    script.add("llm.called", "a", attempt=1, cost_usd=0.5)
    script.add("llm.called", "a", attempt=1, cost_usd=None)
    script.add("step.started", "m", agent="llm")
    for index, cost in enumerate((0.25, 0.125)):
        script.add("step.started", f"m[{index}]", agent="llm")
        script.add("llm.called", f"m[{index}]", attempt=1, cost_usd=cost)
    script.add("step.started", "free", agent="llm")
    script.add("llm.called", "free", attempt=1, cost_usd=None)
    script.add("execution.resumed", reused_steps=[])
    script.add("step.started", "a", agent="llm")
    script.add("llm.called", "a", attempt=1, cost_usd=0.5)
    state = replay(script.events)
    assert state.steps["a"].cost_usd == 1.0
    assert state.steps["m"].cost_usd == 0.375
    assert state.steps["m[1]"].cost_usd == 0.125
    assert state.steps["free"].cost_usd is None
    assert state.cost_usd == 1.375
    assert replay(Script().add("execution.started").events).cost_usd is None


def test_sums_carry_no_float_noise() -> None:
    """0.1 + 0.2 is 0.3 to ten decimals, not 0.30000000000000004."""
    assert 0.1 + 0.2 != 0.3
    assert add_cost(0.1, 0.2) == 0.3
    assert round_cost(0.1 + 0.2) == 0.3

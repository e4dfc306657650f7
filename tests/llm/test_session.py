"""The LLM session: spends, reservations, and the stand-in outside an engine."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestr8 import Spend, detached_session
from orchestr8._llm._session import NO_RESERVATION

spends = st.builds(
    Spend,
    cost_usd=st.floats(min_value=0, max_value=1e6, allow_nan=False),
    input_tokens=st.integers(min_value=0, max_value=10**9),
    output_tokens=st.integers(min_value=0, max_value=10**9),
    llm_calls=st.integers(min_value=0, max_value=10**6),
)


@given(spends, spends)
def test_spends_add_up(first: Spend, second: Spend) -> None:
    """Adding two spends adds every field."""
    total = first + second
    assert total.cost_usd == pytest.approx(first.cost_usd + second.cost_usd)
    assert total.input_tokens == first.input_tokens + second.input_tokens
    assert total.output_tokens == first.output_tokens + second.output_tokens
    assert total.llm_calls == first.llm_calls + second.llm_calls
    assert set(total.to_json()) == {"cost_usd", "input_tokens", "output_tokens", "llm_calls"}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("cost_usd", math.nan, "finite number"),
        ("cost_usd", math.inf, "finite number"),
        ("cost_usd", -0.5, "cannot be negative"),
        ("cost_usd", True, "finite number"),
        ("input_tokens", -1, "whole number"),
        ("output_tokens", 1.5, "whole number"),
        ("llm_calls", False, "whole number"),
    ],
)
def test_a_spend_refuses_what_no_bill_can_hold(field: str, value: object, message: str) -> None:
    """NaN, infinite, negative and non-whole amounts are refused with the reason."""
    with pytest.raises(ValueError, match=message):
        Spend(**{field: value})  # type: ignore[arg-type]


async def test_the_detached_session_holds_nothing_and_records_nothing() -> None:
    """Outside an engine: no breaker, no budget, calls and scores go nowhere."""
    session = detached_session()
    assert session.provider_guard("anthropic") is None
    reservation = await session.reserve(None, Spend(cost_usd=5), model="anthropic:m")
    assert reservation is NO_RESERVATION
    session.settle(None, reservation, Spend(cost_usd=1))
    session.record_call(None, {"provider": "anthropic"})
    session.record_score(None, {"structure": 100})

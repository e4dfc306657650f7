"""Prices: the dated table, the lookup with overrides and release suffixes, what a call costs."""

from __future__ import annotations

import math
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestr8._llm._prices import (
    FREE,
    PriceEntry,
    cost_of,
    price_entry,
    price_for,
    price_table,
)

ANTHROPIC_MODELS = (
    "claude-opus-4-1",
    "claude-opus-4",
    "claude-sonnet-4-5",
    "claude-sonnet-4",
    "claude-3-7-sonnet",
    "claude-haiku-4-5",
    "claude-3-5-haiku",
)
OPENAI_MODELS = (
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "gpt-4o",
    "gpt-4o-mini",
    "o3",
    "o4-mini",
)


@attrs.frozen
class Counts:
    """Token counts shaped like `_chat.Usage`."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0


@attrs.frozen
class Spec:
    """A price as a provider spec class holds it, without a cached price."""

    input: float = 2.0
    output: float = 6.0


def test_the_table_is_dated_and_names_its_sources() -> None:
    """as_of is an ISO date; every provider kind has a source; the current models are priced."""
    table = price_table()
    assert len(table.as_of) == 10
    assert table.as_of[4] == "-"
    assert table.sources["anthropic"].startswith("https://")
    assert table.sources["openai"].startswith("https://")
    assert set(ANTHROPIC_MODELS) <= set(table.models["anthropic"])
    assert set(OPENAI_MODELS) <= set(table.models["openai"])


@pytest.mark.parametrize(
    ("kind", "model"),
    [("anthropic", model) for model in ANTHROPIC_MODELS]
    + [("openai", model) for model in OPENAI_MODELS],
)
def test_every_listed_model_has_a_plausible_price(kind: str, model: str) -> None:
    """Output costs more than input, and a cache read less, for every listed model."""
    price = price_for(kind, model)
    assert price is not None
    assert 0 < price.cached_input < price.input < price.output


def test_a_release_suffix_is_priced_as_its_family() -> None:
    """Dated ids and -latest find their family's price; a longer family name is not a prefix."""
    sonnet = price_for("anthropic", "claude-sonnet-4-5")
    assert price_for("anthropic", "claude-sonnet-4-5-20250929") == sonnet
    assert price_for("anthropic", "claude-3-5-haiku-latest") == price_for(
        "anthropic", "claude-3-5-haiku"
    )
    assert price_for("openai", "gpt-4o-2024-08-06") == price_for("openai", "gpt-4o")
    assert price_for("openai", "gpt-4.1-mini") != price_for("openai", "gpt-4.1")
    assert price_for("openai", "gpt-5-unknown") is None
    assert price_for("anthropic", "claude-sonnet-4-5-extra") is None


def test_local_models_are_free_and_unknown_kinds_unpriced() -> None:
    """The local section prices every model at 0; a kind the table lacks has no prices."""
    assert price_for("local", "llama3.1") == FREE
    assert price_for("vertex", "gemini") is None


def test_overrides_win_model_first_then_the_wildcard() -> None:
    """A provider's prices win over the table: its exact model, then its bare one, then '*'."""
    overrides: dict[str, Any] = {
        "gpt-4.1": {"input": 1.0, "output": 2.0},
        "*": PriceEntry(0.5, 0.5, 0.25),
    }
    assert price_for("openai", "gpt-4.1-2025-04-14", overrides) == PriceEntry(1.0, 2.0, 1.0)
    assert price_for("openai", "gpt-4o", overrides) == PriceEntry(0.5, 0.5, 0.25)
    assert price_for("openai", "my-finetune", {"my-finetune": {"input": 3, "output": 4}}) == (
        PriceEntry(3, 4, 3)
    )
    assert price_for("openai", "gpt-4o", {"other": {"input": 3, "output": 4}}) == price_for(
        "openai", "gpt-4o"
    )


def test_a_price_entry_reads_attributes_too() -> None:
    """price_entry takes an object with input/output/cached_input attributes (a spec class)."""
    assert price_entry(PriceEntry(1, 2, 0.5)) == PriceEntry(1, 2, 0.5)
    assert price_entry(Spec()) == PriceEntry(2.0, 6.0, 2.0)
    assert price_entry(FREE).to_json() == {"input": 0.0, "output": 0.0, "cached_input": 0.0}


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ({"input": 1.0}, TypeError),
        ({"input": "1", "output": 2}, TypeError),
        ({"input": True, "output": 2}, TypeError),
        ({"input": -1, "output": 2}, ValueError),
        ({"input": 1, "output": math.nan}, ValueError),
    ],
)
def test_a_bad_price_is_refused(value: dict[str, Any], error: type[Exception]) -> None:
    """A price needs input and output, each a finite number ≥ 0."""
    with pytest.raises(error):
        price_entry(value)


def test_cost_of_prices_cached_input_apart() -> None:
    """Cached tokens at the cached price, the rest of the input at input, output at output."""
    price = PriceEntry(3.0, 15.0, 0.3)
    usage = Counts(input_tokens=1_000_000, output_tokens=100_000, cached_input_tokens=400_000)
    assert cost_of(usage, price) == pytest.approx(0.6 * 3.0 + 0.4 * 0.3 + 0.1 * 15.0)
    assert cost_of(Counts(), price) == 0
    assert cost_of(Counts(input_tokens=10, cached_input_tokens=50), price) == pytest.approx(
        10 * 0.3 / 1_000_000
    )


@given(
    st.integers(0, 10**8),
    st.integers(0, 10**8),
    st.integers(0, 10**8),
    st.floats(0, 100),
    st.floats(0, 100),
)
def test_cost_is_never_negative_and_never_above_the_uncached_cost(
    input_tokens: int, output_tokens: int, cached: int, input_price: float, output_price: float
) -> None:
    """A cache read at most the input price never makes a call dearer than without a cache."""
    price = PriceEntry(input_price, output_price, input_price / 10)
    usage = Counts(input_tokens, output_tokens, cached)
    uncached = Counts(input_tokens, output_tokens, 0)
    assert 0 <= cost_of(usage, price) <= cost_of(uncached, price) + 1e-9

"""Model prices: the vendored, dated price table, the overrides a provider spec gives, and costs.

`prices.json` (package data beside this module) holds public list prices in US dollars per
million tokens (`input`, `output`, `cached_input`) per provider kind and model, with the date
they were read (`as_of`) and where (a source URL per kind). Prices change: the table is a
snapshot, and a provider's `prices` (in the workflow's `providers` or a providers file) overrides
it per model, `"*"` standing for every model of that provider.

A model is looked up as written, then without a release suffix (`claude-sonnet-4-5-20250929`,
`gpt-4o-2024-08-06` and `claude-3-5-haiku-latest` are priced as `claude-sonnet-4-5`, `gpt-4o`
and `claude-3-5-haiku`), then as `"*"`: first in the overrides, then in the table's section of
the provider's kind. A model found nowhere has no price (`None`), which a cost cap refuses at
load. The section `local` prices every model at 0.

`cost_of` prices a call's usage: input tokens (cached ones included, as providers normalise
them) at the input price, except the cached ones at `cached_input`; output tokens (reasoning
ones included) at the output price.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Mapping
from importlib import resources
from typing import Any, Final, Protocol

import attrs

__all__ = [
    "FREE",
    "PriceEntry",
    "PriceTable",
    "UsageCounts",
    "cost_of",
    "price_entry",
    "price_for",
    "price_table",
]

#: Prices are per this many tokens.
TOKENS_PER_PRICE: Final = 1_000_000

#: A release suffix a model id may carry beyond its family name: a date, or `-latest`.
_RELEASE_SUFFIX: Final = re.compile(r"-(?:\d{8}|\d{4}-\d{2}-\d{2}|latest)$")


def _price(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{attribute.name} must be a number of USD per million tokens")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{attribute.name} must be a finite number ≥ 0, got {value!r}")


@attrs.frozen
class PriceEntry:
    """One model's price in US dollars per million tokens: input, output and cached input."""

    input: float = attrs.field(validator=_price)
    output: float = attrs.field(validator=_price)
    cached_input: float = attrs.field(validator=_price)

    def to_json(self) -> dict[str, float]:
        """The entry as the price table and provider specs write it."""
        return {"input": self.input, "output": self.output, "cached_input": self.cached_input}


#: The price of a model that costs nothing per token (a local model).
FREE: Final = PriceEntry(0.0, 0.0, 0.0)


class UsageCounts(Protocol):
    """The token counts `cost_of` prices (`_chat.Usage` has them)."""

    @property
    def input_tokens(self) -> int:
        """Input tokens, cached ones included."""

    @property
    def output_tokens(self) -> int:
        """Output tokens, reasoning ones included."""

    @property
    def cached_input_tokens(self) -> int:
        """The input tokens read from the provider's prompt cache."""


@attrs.frozen
class PriceTable:
    """The vendored price table: its date, a source URL per provider kind, and the prices."""

    as_of: str
    sources: Mapping[str, str]
    models: Mapping[str, Mapping[str, PriceEntry]]


def price_entry(value: Any) -> PriceEntry:
    """A `PriceEntry` from one, or from `{"input", "output", "cached_input"?}` (or attributes).

    `cached_input` left out is the input price: a provider without a cache discount.

    Raises:
        TypeError, ValueError: a price is missing, not a number, negative or not finite.
    """
    if isinstance(value, PriceEntry):
        return value
    if isinstance(value, Mapping):
        input_price, output_price = value.get("input"), value.get("output")
        cached = value.get("cached_input")
    else:
        input_price, output_price = getattr(value, "input", None), getattr(value, "output", None)
        cached = getattr(value, "cached_input", None)
    if input_price is None or output_price is None:
        raise TypeError("a price needs input and output (USD per million tokens)")
    return PriceEntry(input_price, output_price, input_price if cached is None else cached)


@functools.cache
def price_table() -> PriceTable:
    """The vendored price table (`prices.json`), read once."""
    text = resources.files(__package__).joinpath("prices.json").read_text(encoding="utf-8")
    document = json.loads(text)
    kinds = document["kinds"]
    return PriceTable(
        as_of=document["as_of"],
        sources={kind: section["source"] for kind, section in kinds.items()},
        models={
            kind: {model: price_entry(entry) for model, entry in section["models"].items()}
            for kind, section in kinds.items()
        },
    )


def price_for(
    kind: str, model: str, overrides: Mapping[str, Any] | None = None
) -> PriceEntry | None:
    """The price of `model` (bare, no provider prefix) on a provider of `kind`, or None.

    `overrides`: the provider spec's `prices` (model or `"*"` → a `PriceEntry` or its JSON
    form); they win over the table. See the module docstring for the lookup order.
    """
    names = _names(model)
    if overrides:
        found = _lookup(overrides, names)
        if found is not None:
            return price_entry(found)
    section = price_table().models.get(kind)
    if section is None:
        return None
    entry = _lookup(section, names)
    return None if entry is None else price_entry(entry)


def cost_of(usage: UsageCounts, price: PriceEntry) -> float:
    """What `usage` costs at `price`, in US dollars."""
    cached = min(max(usage.cached_input_tokens, 0), max(usage.input_tokens, 0))
    uncached = max(usage.input_tokens, 0) - cached
    dollars = (
        uncached * price.input
        + cached * price.cached_input
        + max(usage.output_tokens, 0) * price.output
    )
    return dollars / TOKENS_PER_PRICE


def _names(model: str) -> tuple[str, ...]:
    """The names a model is looked up under: as written, without a release suffix, `*`."""
    bare = _RELEASE_SUFFIX.sub("", model)
    return (model, "*") if bare == model else (model, bare, "*")


def _lookup(prices: Mapping[str, Any], names: tuple[str, ...]) -> Any:
    for name in names:
        if name in prices:
            return prices[name]
    return None

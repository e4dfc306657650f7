"""The session an agent reaches through `AgentContext.llm`: budgets, breakers and the journal.

One session serves every call of an execution (the engine sets it; the test harness sets its
own). It is the single place where an execution's LLM spend is reserved and settled, so steps
running in parallel and the items of a map can never jointly overspend a budget, and where calls
and scores become journal events. `context` is the calling agent's `AgentContext` (typed loosely
here because this stage sits below the agents): the session reads its step id and attempt.

An agent called outside any engine (by hand, in a script) has no session; `detached_session()`
stands in: no breakers, no budget, nothing journaled.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from .._json import JSON
from ._provider import ProviderGuard

if TYPE_CHECKING:
    from ._catalog import ProviderCatalog

__all__ = ["NO_RESERVATION", "LLMSession", "Reservation", "Spend", "detached_session"]


def _whole(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"a spend count must be a whole number >= 0, got {value!r}")
    return value


def _money(value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"a cost must be a finite number of US dollars, got {value!r}")
    if value < 0:
        raise ValueError(f"a cost cannot be negative, got {value!r}")
    return float(value)


@attrs.frozen(kw_only=True)
class Spend:
    """What a call may cost or did cost: US dollars, tokens in and out, and calls."""

    cost_usd: float = attrs.field(default=0.0, converter=_money)
    input_tokens: int = attrs.field(default=0, converter=_whole)
    output_tokens: int = attrs.field(default=0, converter=_whole)
    llm_calls: int = attrs.field(default=0, converter=_whole)

    def __add__(self, other: Spend) -> Spend:
        """The sum of two spends."""
        return Spend(
            cost_usd=self.cost_usd + other.cost_usd,
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            llm_calls=self.llm_calls + other.llm_calls,
        )

    def to_json(self) -> dict[str, JSON]:
        """The spend as budget events carry it (the cost rounded to 10 decimal places)."""
        return {
            "cost_usd": round(self.cost_usd, 10),
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "llm_calls": self.llm_calls,
        }


@attrs.frozen
class Reservation:
    """A hold on a budget for one call, settled with what the call really spent."""

    number: int
    """The reservation's number within its execution; 0 for a call no budget covers."""
    ask: Spend
    """What was held: the call's worst case."""


NO_RESERVATION = Reservation(0, Spend())
"""The reservation of a call no budget covers: settling it does nothing."""


class LLMSession(Protocol):
    """What an agent that calls models may ask of the execution it runs in."""

    @property
    def catalog(self) -> ProviderCatalog:
        """The providers its calls may use: the runtime's, with the workflow's own over them."""
        ...

    def provider_guard(self, provider: str) -> ProviderGuard | None:
        """The circuit breaker of `provider` (shared by the runtime), or None where none is kept."""
        ...

    async def reserve(self, context: Any, ask: Spend, *, model: str) -> Reservation:
        """Hold `ask` on every budget that covers the caller's step, before the call is made.

        Checked and held in one step, so concurrent calls cannot jointly overspend. Without a
        budget it returns `NO_RESERVATION` and records nothing.

        Raises:
            BudgetExhaustedError: a budget cannot cover `ask` (after its pause gate, if any).
        """
        ...

    def settle(self, context: Any, reservation: Reservation, spent: Spend) -> None:
        """Replace the hold of `reservation` with what the call really spent."""
        ...

    def record_call(self, context: Any, call: Mapping[str, JSON]) -> None:
        """Journal one finished call as an `llm.called` event (provider, model, usage, cost...)."""
        ...

    def record_score(self, context: Any, score: Mapping[str, JSON]) -> None:
        """Journal the adherence score of a reply as a `step.scored` event."""
        ...


class _DetachedSession:
    """The session of an agent called outside any engine: no breakers, budget or journal."""

    @functools.cached_property
    def catalog(self) -> ProviderCatalog:
        """The built-in providers only, made on first use."""
        from ._catalog import ProviderCatalog

        return ProviderCatalog()

    def provider_guard(self, provider: str) -> ProviderGuard | None:
        """No breaker is kept outside an engine."""
        return None

    async def reserve(self, context: Any, ask: Spend, *, model: str) -> Reservation:
        """No budget applies."""
        return NO_RESERVATION

    def settle(self, context: Any, reservation: Reservation, spent: Spend) -> None:
        """Nothing was held."""

    def record_call(self, context: Any, call: Mapping[str, JSON]) -> None:
        """There is no journal to record in."""

    def record_score(self, context: Any, score: Mapping[str, JSON]) -> None:
        """There is no journal to record in."""


_DETACHED = _DetachedSession()


def detached_session() -> LLMSession:
    """The session for an agent called outside any engine (`AgentContext.llm` is None)."""
    return _DETACHED

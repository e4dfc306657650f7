"""The LLM session of one execution: what `AgentContext.llm` is while the engine runs a step.

One `ExecutionLLMSession` per execution, made when its steps' runner is, and handed to every
attempt's context (no allocation per step). It holds:

- the providers its calls may use: the runtime's catalog with the workflow's own `providers`
  over it (`ProviderCatalog.overlay`); provider instances are the runtime's, shared;
- each provider's circuit breaker, one per runtime, from the shared breaker registry under the
  key `llm-provider:NAME` (`PROVIDER_BREAKER_POLICY`: 5 failures in a row open it for 60 s, then
  3 probes); its transitions are journaled like any breaker's, in the step whose call caused them;
- `record_call` and `record_score`, which emit `llm.called` and `step.scored` for the calling
  step and attempt, as `step.usage` is emitted, and nothing once that step was given up on;
- `reserve` and `settle`, handed to the execution's budgets (`_spending.ExecutionBudget`; none
  when the workflow sets no budget: a call then holds and records nothing).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from .._journal._events import EventType
from .._json import JSON
from .._llm._catalog import ProviderCatalog
from .._llm._fallback import PROVIDER_BREAKER_PREFIX
from .._llm._model_names import parse_model_name
from .._llm._prices import PriceEntry, price_entry
from .._llm._provider import ProviderGuard
from .._llm._session import NO_RESERVATION, Reservation, Spend
from .._workflow._policy import CircuitBreakerPolicy
from ._emitter import Emitter
from ._step_resilience import SharedResilience, StepListener

if TYPE_CHECKING:
    from ._spending import ExecutionBudget

__all__ = ["PROVIDER_BREAKER_POLICY", "ExecutionLLMSession"]

#: The breaker every provider gets: open after 5 failures in a row, for 60 s, then 3 probes.
PROVIDER_BREAKER_POLICY: Final = CircuitBreakerPolicy()


class ExecutionLLMSession:
    """The `LLMSession` of one execution: its catalog, the provider breakers, its LLM events."""

    def __init__(
        self,
        *,
        catalog: ProviderCatalog,
        resilience: SharedResilience,
        emitter: Emitter,
        listeners: Mapping[str, StepListener],
        budget: ExecutionBudget | None = None,
    ) -> None:
        """Serve the calls of one execution.

        `listeners` are the execution's step listeners by step id (the runner's own mapping):
        a call of a step that has none, or whose listener is silenced, is not journaled.
        """
        self.catalog = catalog
        self._resilience = resilience
        self._emitter = emitter
        self._listeners = listeners
        self.budget = budget
        """The execution's budgets, or None when its workflow sets none."""

    def provider_guard(self, provider: str) -> ProviderGuard:
        """The runtime's circuit breaker of `provider` (`llm-provider:NAME`), made on first use."""
        return self._resilience.breakers.get(
            PROVIDER_BREAKER_PREFIX + provider, PROVIDER_BREAKER_POLICY
        )

    async def reserve(self, context: Any, ask: Spend, *, model: str) -> Reservation:
        """Hold `ask` on the budgets of the caller's step and the workflow (see `_spending`).

        Raises:
            BudgetExhaustedError: a budget cannot cover `ask` (after its pause gate, if any).
        """
        if self.budget is None:
            return NO_RESERVATION
        return await self.budget.reserve(context, ask, model=model, price_of=self._price_of)

    def _price_of(self, model: str) -> PriceEntry | None:
        """The price of `provider:model` in this execution's catalog; None when none is known."""
        name = parse_model_name(model, field="model", bare_allowed=True)
        found = self.catalog.price(name.provider, name.model)
        return None if found is None else price_entry(found)

    def settle(self, context: Any, reservation: Reservation, spent: Spend) -> None:
        """Replace the hold of `reservation` by what the call spent."""
        if self.budget is not None:
            self.budget.settle(context, reservation, spent)

    def record_call(self, context: Any, call: Mapping[str, JSON]) -> None:
        """Journal one finished model call of the calling step as `llm.called`."""
        self._emit(EventType.LLM_CALLED, context, call)

    def record_score(self, context: Any, score: Mapping[str, JSON]) -> None:
        """Journal the adherence score of a reply of the calling step as `step.scored`."""
        self._emit(EventType.STEP_SCORED, context, score)

    def _emit(self, event_type: EventType, context: Any, data: Mapping[str, JSON]) -> None:
        listener = self._listeners.get(context.step_id)
        if listener is None or listener.silenced:
            # Silenced, or a map item that ended (an agent's late report): not recorded.
            return
        self._emitter.emit_nowait(
            event_type, step_id=context.step_id, attempt=context.attempt, data=dict(data)
        )

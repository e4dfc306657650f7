"""The LLM session of an execution: what `AgentContext.llm` is for the agents of one execution.

One per execution, made with its run (`ExecutionRun`). Reservations and settlements go to the
execution's budgets (`_spending.ExecutionBudget`; none when the workflow sets no budget, and then
a reservation holds nothing and records nothing). Finished calls and scores become `llm.called`
and `step.scored` events of the calling unit and attempt.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._journal._events import EventType
from .._json import JSON
from .._llm._provider import ProviderGuard
from .._llm._session import NO_RESERVATION, Reservation, Spend

if TYPE_CHECKING:
    from ._emitter import Emitter
    from ._spending import ExecutionBudget

__all__ = ["ExecutionLLMSession"]


class ExecutionLLMSession:
    """The session every agent of one execution reaches through `AgentContext.llm`."""

    def __init__(self, emitter: Emitter, budget: ExecutionBudget | None = None) -> None:
        """Journal through `emitter`; hold and settle calls on `budget` (None: no budget)."""
        self._emitter = emitter
        self.budget = budget
        """The execution's budgets, or None when its workflow sets none."""

    def provider_guard(self, provider: str) -> ProviderGuard | None:
        """No circuit breaker is kept per provider by this session."""
        return None

    async def reserve(self, context: Any, ask: Spend, *, model: str) -> Reservation:
        """Hold `ask` on the budgets of the caller's step and the workflow (see `_spending`).

        Raises:
            BudgetExhaustedError: a budget cannot cover `ask`.
        """
        if self.budget is None:
            return NO_RESERVATION
        return await self.budget.reserve(context, ask, model=model)

    def settle(self, context: Any, reservation: Reservation, spent: Spend) -> None:
        """Replace the hold of `reservation` by what the call spent."""
        if self.budget is not None:
            self.budget.settle(context, reservation, spent)

    def record_call(self, context: Any, call: Mapping[str, JSON]) -> None:
        """Journal one finished call as `llm.called`."""
        self._emitter.emit_nowait(
            EventType.LLM_CALLED, step_id=context.step_id, attempt=context.attempt, data=dict(call)
        )

    def record_score(self, context: Any, score: Mapping[str, JSON]) -> None:
        """Journal a reply's adherence score as `step.scored`."""
        self._emitter.emit_nowait(
            EventType.STEP_SCORED,
            step_id=context.step_id,
            attempt=context.attempt,
            data=dict(score),
        )

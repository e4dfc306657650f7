"""The budget ledger: one execution's LLM spend, held before each call and settled after it.

Pure and synchronous, so one trio thread checks **and** holds in the same step: steps running in
parallel and the items of a map can never jointly overspend (the race LiteLLM's
check-then-increment budgets have). Each budget is a *scope*: the workflow's (`"workflow"`) and
each step's (`"steps.ID"`, covering every attempt, item and iteration of the step). A call of a
step is checked against its step's scope and the workflow's; for every limit a scope sets,

    settled + held + ask <= limit

must hold, or nothing is held and the call is refused (`BudgetExhaustedError`, or a pause gate
that may raise the limit). `settle` replaces a hold by what the call really spent; `release`
drops a hold whose call spent nothing known. The ledger never exceeds a limit as long as a
call spends no more than its ask (its worst case); a call that does spend more (its input was
estimated) is still counted in full, and the next reservation sees it.

`restore` adds spend found in the journal (a resumed or forked execution), before the first new
reservation: settled calls at what they spent, unsettled ones at their ask.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping
from typing import Final

import attrs

from .._errors import BudgetExhaustedError
from .._workflow._budgets import LIMIT_NAMES, Budget, OnExhaust
from ._chat import ChatRequest, Usage
from ._prices import PriceEntry, cost_of
from ._session import Reservation, Spend

__all__ = [
    "CALL_INPUT_FLOOR",
    "WORKFLOW_SCOPE",
    "BudgetLedger",
    "Shortfall",
    "call_spend",
    "scope_of",
    "worst_case_spend",
]

#: The scope of the workflow's budget; a step's is `steps.ID`.
WORKFLOW_SCOPE: Final = "workflow"

#: Each limit and the spend field it caps.
_CAPPED: Final = {
    "max_cost_usd": "cost_usd",
    "max_input_tokens": "input_tokens",
    "max_output_tokens": "output_tokens",
    "max_llm_calls": "llm_calls",
}

#: Rounding headroom for sums of dollars: a cap of 0.3 admits 0.1 + 0.2.
_CENT_FRACTION: Final = 1e-9


def scope_of(step_id: str) -> str:
    """The scope name of a step's budget, as events and gate ids show it."""
    return f"steps.{step_id}"


#: Input tokens every call is estimated at beyond its characters / 4: the framing a provider
#: bills around the messages (a one-word prompt bills about 8 at Anthropic and OpenAI).
CALL_INPUT_FLOOR: Final = 8


def worst_case_spend(request: ChatRequest, price: PriceEntry | None) -> Spend:
    """The most one call of `request` may spend, as estimated: what a reservation holds for it.

    Input: the request's characters (system prompt, messages, tools, JSON schema) / 4, rounded
    up (`ChatRequest.estimated_input_tokens`), plus `CALL_INPUT_FLOOR` tokens of framing;
    output: its `max_tokens`, the most a model may answer; one call; priced at `price` with no
    cache discount (0 without a price). The execution scales the input by what earlier calls
    of the model billed (`_input_calibration`).
    """
    estimated_input = request.estimated_input_tokens() + CALL_INPUT_FLOOR
    usage = Usage(input_tokens=estimated_input, output_tokens=request.max_tokens)
    return call_spend(usage, price)


def call_spend(usage: Usage, price: PriceEntry | None) -> Spend:
    """What one call that used `usage` spent, priced at `price` (0 without a price)."""
    return Spend(
        cost_usd=0.0 if price is None else cost_of(usage, price),
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        llm_calls=1,
    )


@attrs.frozen
class Shortfall:
    """Why a scope cannot cover an ask: the limit, its scope, what was asked and what is left."""

    scope: str
    limit: str
    asked: float
    remaining: float
    on_exhaust: OnExhaust

    def message(self) -> str:
        """One sentence naming the limit, the scope, the ask and what is left."""
        return (
            f"{_where(self.scope)} cannot cover this model call: {self.limit} would need"
            f" {_show(self.limit, self.asked)} more but {_show(self.limit, self.remaining)} is left"
        )

    def to_json(self) -> dict[str, str | float]:
        """The `budget.exhausted` event's data."""
        return {
            "scope": self.scope,
            "limit": self.limit,
            "asked": self.asked,
            "remaining": self.remaining,
            "on_exhaust": self.on_exhaust,
        }

    def error(self) -> BudgetExhaustedError:
        """The error that fails the call."""
        return BudgetExhaustedError(self.message())


def _where(scope: str) -> str:
    return "the workflow's budget" if scope == WORKFLOW_SCOPE else f"{scope}.budget"


def _show(limit: str, amount: float) -> str:
    if limit == "max_cost_usd":
        return f"${amount:.6f}".rstrip("0").rstrip(".")
    return str(int(amount))


@attrs.define
class _Scope:
    """One budget's limits (raised by a pause gate's answer) and what is settled and held."""

    limits: dict[str, float]
    on_exhaust: OnExhaust
    settled: Spend = attrs.field(factory=Spend)
    held: Spend = attrs.field(factory=Spend)

    def shortfall(self, name: str, ask: Spend) -> Shortfall | None:
        for limit, value in self.limits.items():
            field = _CAPPED[limit]
            asked: float = getattr(ask, field)
            used: float = getattr(self.settled, field) + getattr(self.held, field)
            headroom = _CENT_FRACTION if limit == "max_cost_usd" else 0
            if asked and used + asked > value + headroom:
                remaining = max(value - used, 0)
                return Shortfall(name, limit, asked, remaining, self.on_exhaust)
        return None


def _minus(left: Spend, right: Spend) -> Spend:
    """`left - right`, which the held spend of a scope never goes below zero in."""
    return Spend(
        cost_usd=max(left.cost_usd - right.cost_usd, 0.0),
        input_tokens=left.input_tokens - right.input_tokens,
        output_tokens=left.output_tokens - right.output_tokens,
        llm_calls=left.llm_calls - right.llm_calls,
    )


class BudgetLedger:
    """The limits of one execution's budgets, and what its model calls hold and have spent."""

    def __init__(self, workflow: Budget | None, steps: Mapping[str, Budget]) -> None:
        """Hold the budgets of the workflow (None: none) and of steps, by step id."""
        self._scopes: dict[str, _Scope] = {}
        if workflow is not None:
            self._scopes[WORKFLOW_SCOPE] = _scope(workflow)
        for step_id, budget in steps.items():
            self._scopes[scope_of(step_id)] = _scope(budget)
        self._numbers: Iterator[int] = itertools.count(1)
        self._open: dict[int, tuple[str, ...]] = {}
        self._spent = Spend()

    def covers(self, step_id: str) -> bool:
        """Whether any budget applies to the calls of `step_id`."""
        return bool(self._scopes_of(step_id))

    def scopes(self, step_id: str) -> tuple[str, ...]:
        """The scopes a call of `step_id` is checked against, its step's first."""
        return self._scopes_of(step_id)

    @property
    def spent(self) -> Spend:
        """Everything settled (and restored) so far, across every step."""
        return self._spent

    def remaining(self, scope: str = WORKFLOW_SCOPE) -> dict[str, float]:
        """What is left of each limit of `scope` (nothing held or settled on it yet: the limit).

        Raises:
            KeyError: no budget has that scope.
        """
        state = self._scopes[scope]
        left: dict[str, float] = {}
        for limit, value in state.limits.items():
            field = _CAPPED[limit]
            left[limit] = max(value - getattr(state.settled, field) - getattr(state.held, field), 0)
        return left

    def limits(self, scope: str) -> dict[str, float]:
        """The limits of `scope` as they stand (a pause gate's answer may have raised them)."""
        return dict(self._scopes[scope].limits)

    def shortfall(self, step_id: str, ask: Spend) -> Shortfall | None:
        """The first limit a call of `step_id` asking `ask` would exceed, or None."""
        for name in self._scopes_of(step_id):
            found = self._scopes[name].shortfall(name, ask)
            if found is not None:
                return found
        return None

    def try_reserve(self, step_id: str, ask: Spend) -> Reservation | Shortfall:
        """Check and hold `ask` on every scope of `step_id` at once, or say what falls short.

        A step no budget covers gets a reservation that holds nothing (number 0).
        """
        names = self._scopes_of(step_id)
        if not names:
            return Reservation(0, ask)
        missing = self.shortfall(step_id, ask)
        if missing is not None:
            return missing
        for name in names:
            state = self._scopes[name]
            state.held = state.held + ask
        number = next(self._numbers)
        self._open[number] = names
        return Reservation(number, ask)

    def reserve(self, step_id: str, ask: Spend) -> Reservation:
        """`try_reserve`, raising when a budget cannot cover `ask`.

        Raises:
            BudgetExhaustedError: naming the limit, its scope, what was asked and what is left.
        """
        found = self.try_reserve(step_id, ask)
        if isinstance(found, Shortfall):
            raise found.error()
        return found

    def settle(self, reservation: Reservation, spent: Spend) -> bool:
        """Replace the hold of `reservation` by `spent`; False (and nothing done) if none held."""
        names = self._open.pop(reservation.number, None)
        if names is None:
            return False
        for name in names:
            state = self._scopes[name]
            state.held = _minus(state.held, reservation.ask)
            state.settled = state.settled + spent
        self._spent = self._spent + spent
        return True

    def release(self, reservation: Reservation) -> bool:
        """Drop the hold of `reservation` (its call spent nothing known); whether it held."""
        return self.settle(reservation, Spend())

    def restore(self, step_id: str, spent: Spend) -> None:
        """Count `spent`, found in the journal of an earlier run, as settled for `step_id`."""
        for name in self._scopes_of(step_id):
            state = self._scopes[name]
            state.settled = state.settled + spent
        self._spent = self._spent + spent

    def skip_numbers(self, last: int) -> None:
        """Number new reservations after `last` (the highest found in the journal)."""
        self._numbers = itertools.count(last + 1)

    def raise_limits(self, scope: str, limits: Mapping[str, float]) -> None:
        """Set new limits on `scope` (a pause gate's answer); each only ever goes up.

        Raises:
            KeyError: no budget has that scope.
            ValueError: a limit is unknown, or not a finite number ≥ 0.
        """
        state = self._scopes[scope]
        for limit, value in limits.items():
            if limit not in _CAPPED:
                raise ValueError(f"unknown limit {limit!r}: one of {', '.join(LIMIT_NAMES)}")
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{limit} must be a number, got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{limit} must be a finite number >= 0, got {value!r}")
            if limit not in state.limits:
                raise ValueError(f"{_where(scope)} sets no {limit} to raise")
            state.limits[limit] = max(state.limits[limit], float(value))

    def _scopes_of(self, step_id: str) -> tuple[str, ...]:
        step = scope_of(step_id)
        return tuple(name for name in (step, WORKFLOW_SCOPE) if name in self._scopes)


def _scope(budget: Budget) -> _Scope:
    return _Scope(limits=dict(budget.limits()), on_exhaust=budget.on_exhaust)

"""The budget ledger: check-and-hold in one step, settle, release, restore, raise limits."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    rule,
)

from orchestr8._errors import BudgetExhaustedError
from orchestr8._llm._budget_ledger import (
    CALL_INPUT_FLOOR,
    WORKFLOW_SCOPE,
    BudgetLedger,
    Shortfall,
    call_spend,
    scope_of,
    worst_case_spend,
)
from orchestr8._llm._chat import ChatMessage, ChatRequest, Usage
from orchestr8._llm._prices import PriceEntry
from orchestr8._llm._session import Reservation, Spend
from orchestr8._workflow._budgets import Budget

CALL = Spend(cost_usd=0.25, input_tokens=100, output_tokens=50, llm_calls=1)


def test_a_reservation_holds_on_the_step_and_the_workflow() -> None:
    """A call is held on its step's budget and the workflow's; another step only on the latter."""
    ledger = BudgetLedger(Budget(max_cost_usd=1.0), {"draft": Budget(max_llm_calls=2)})
    held = ledger.reserve("draft", CALL)
    assert held == Reservation(1, CALL)
    assert ledger.scopes("draft") == (scope_of("draft"), WORKFLOW_SCOPE)
    assert ledger.remaining() == {"max_cost_usd": 0.75}
    assert ledger.remaining(scope_of("draft")) == {"max_llm_calls": 1}
    assert ledger.reserve("review", CALL).number == 2
    assert ledger.remaining() == {"max_cost_usd": 0.5}
    assert ledger.scopes("review") == (WORKFLOW_SCOPE,)


def test_no_budget_holds_nothing_and_numbers_nothing() -> None:
    """A step no budget covers gets reservation 0; settling it changes nothing."""
    ledger = BudgetLedger(None, {"draft": Budget(max_llm_calls=1)})
    assert not ledger.covers("review")
    assert ledger.covers("draft")
    free = ledger.reserve("review", CALL)
    assert free.number == 0
    ledger.settle(free, CALL)
    assert ledger.spent == Spend()


def test_a_call_the_budget_cannot_cover_is_refused_holding_nothing() -> None:
    """The first limit short is named with its scope, the ask and what is left; nothing held."""
    ledger = BudgetLedger(Budget(max_cost_usd=0.3), {"draft": Budget(max_output_tokens=60)})
    ledger.reserve("review", CALL)
    with pytest.raises(BudgetExhaustedError) as caught:
        ledger.reserve("review", CALL)
    assert str(caught.value) == (
        "the workflow's budget cannot cover this model call: max_cost_usd would need $0.25 more"
        " but $0.05 is left"
    )
    found = ledger.try_reserve("draft", Spend(output_tokens=61))
    assert found == Shortfall(scope_of("draft"), "max_output_tokens", 61, 60, "fail")
    assert found.message() == (
        "steps.draft.budget cannot cover this model call: max_output_tokens would need 61 more"
        " but 60 is left"
    )
    assert found.to_json()["scope"] == "steps.draft"
    assert ledger.remaining() == {"max_cost_usd": pytest.approx(0.05)}


def test_settle_replaces_the_hold_by_the_real_spend() -> None:
    """After settling, what is left reflects what was spent, not the worst case."""
    ledger = BudgetLedger(Budget(max_input_tokens=1000), {})
    held = ledger.reserve("a", Spend(input_tokens=800))
    assert ledger.remaining() == {"max_input_tokens": 200}
    ledger.settle(held, Spend(input_tokens=300))
    assert ledger.remaining() == {"max_input_tokens": 700}
    ledger.settle(held, Spend(input_tokens=300))
    assert ledger.spent == Spend(input_tokens=300)


def test_release_gives_the_hold_back() -> None:
    """A released call spent nothing known: its hold returns whole."""
    ledger = BudgetLedger(Budget(max_llm_calls=1), {})
    held = ledger.reserve("a", CALL)
    assert ledger.try_reserve("a", CALL) == Shortfall(WORKFLOW_SCOPE, "max_llm_calls", 1, 0, "fail")
    ledger.release(held)
    assert ledger.reserve("a", CALL).number == 2


def test_a_zero_limit_refuses_every_call_but_free_asks() -> None:
    """max_llm_calls 0 refuses any call; an ask of nothing on a limit never falls short."""
    ledger = BudgetLedger(Budget(max_llm_calls=0, max_cost_usd=0), {})
    assert isinstance(ledger.try_reserve("a", CALL), Shortfall)
    assert isinstance(ledger.try_reserve("a", Spend(llm_calls=0)), Reservation)


def test_cost_sums_tolerate_float_rounding() -> None:
    """A cap of 0.3 admits 0.1 and then 0.2: rounding never refuses what fits exactly."""
    ledger = BudgetLedger(Budget(max_cost_usd=0.3), {})
    ledger.reserve("a", Spend(cost_usd=0.1))
    ledger.reserve("a", Spend(cost_usd=0.2))
    assert isinstance(ledger.try_reserve("a", Spend(cost_usd=0.001)), Shortfall)


def test_restore_counts_an_earlier_runs_spend() -> None:
    """Restored spend counts on the step's and the workflow's scopes, and numbers continue."""
    ledger = BudgetLedger(Budget(max_cost_usd=1.0), {"a": Budget(max_llm_calls=3)})
    ledger.restore("a", Spend(cost_usd=0.5, llm_calls=2))
    ledger.restore("b", Spend(cost_usd=0.25, llm_calls=1))
    ledger.skip_numbers(7)
    assert ledger.remaining() == {"max_cost_usd": 0.25}
    assert ledger.remaining(scope_of("a")) == {"max_llm_calls": 1}
    assert ledger.spent == Spend(cost_usd=0.75, llm_calls=3)
    assert ledger.reserve("a", Spend(cost_usd=0.25, llm_calls=1)).number == 8


def test_raise_limits_only_raises_set_limits() -> None:
    """A pause gate's answer lifts a limit, never lowers it; unknown or unset ones are refused."""
    ledger = BudgetLedger(Budget(max_cost_usd=0.2, on_exhaust="pause"), {})
    assert ledger.try_reserve("a", CALL) == Shortfall(
        WORKFLOW_SCOPE, "max_cost_usd", 0.25, 0.2, "pause"
    )
    ledger.raise_limits(WORKFLOW_SCOPE, {"max_cost_usd": 1})
    assert ledger.limits(WORKFLOW_SCOPE) == {"max_cost_usd": 1.0}
    ledger.raise_limits(WORKFLOW_SCOPE, {"max_cost_usd": 0.5})
    assert ledger.limits(WORKFLOW_SCOPE) == {"max_cost_usd": 1.0}
    assert ledger.reserve("a", CALL).number == 1
    bad: list[tuple[dict[str, Any], str]] = [
        ({"max_dollars": 1}, "unknown limit 'max_dollars'"),
        ({"max_llm_calls": 3}, "the workflow's budget sets no max_llm_calls to raise"),
        ({"max_cost_usd": -1}, "must be a finite number >= 0"),
        ({"max_cost_usd": "5"}, "must be a number"),
        ({"max_cost_usd": True}, "must be a number"),
    ]
    for limits, message in bad:
        with pytest.raises(ValueError, match=message):
            ledger.raise_limits(WORKFLOW_SCOPE, limits)
    with pytest.raises(KeyError):
        ledger.raise_limits(scope_of("a"), {"max_cost_usd": 1})


SPENDS = st.builds(
    Spend,
    cost_usd=st.floats(0, 1, allow_nan=False),
    input_tokens=st.integers(0, 500),
    output_tokens=st.integers(0, 500),
    llm_calls=st.integers(0, 2),
)

LIMITS = {
    "max_cost_usd": ("cost_usd", 1e-9),
    "max_input_tokens": ("input_tokens", 0),
    "max_output_tokens": ("output_tokens", 0),
    "max_llm_calls": ("llm_calls", 0),
}


class LedgerMachine(RuleBasedStateMachine):
    """Random interleavings of reserve, settle and release across steps."""

    held = Bundle("held")

    def __init__(self) -> None:
        super().__init__()
        self.ledger = BudgetLedger(
            Budget(max_cost_usd=3.0, max_input_tokens=2000, max_llm_calls=6),
            {
                "a": Budget(max_output_tokens=700, max_cost_usd=1.5),
                "b": Budget(max_llm_calls=3),
            },
        )
        self.settled: dict[str, Spend] = {}
        self.total = Spend()

    @rule(target=held, step=st.sampled_from(["a", "b", "c"]), ask=SPENDS)
    def reserve(self, step: str, ask: Spend) -> tuple[str, Reservation] | None:
        """Reserve; a refusal holds nothing."""
        before = {scope: self.ledger.remaining(scope) for scope in self.ledger.scopes(step)}
        found = self.ledger.try_reserve(step, ask)
        if isinstance(found, Shortfall):
            after = {scope: self.ledger.remaining(scope) for scope in self.ledger.scopes(step)}
            assert before == after
            return None
        return (step, found)

    @rule(held=consumes(held), fraction=st.floats(0, 1))
    def settle(self, held: tuple[str, Reservation] | None, fraction: float) -> None:
        """Settle with at most the worst case (a fraction of each count)."""
        if held is None:
            return
        step, reservation = held
        ask = reservation.ask
        spent = Spend(
            cost_usd=ask.cost_usd * fraction,
            input_tokens=int(ask.input_tokens * fraction),
            output_tokens=int(ask.output_tokens * fraction),
            llm_calls=ask.llm_calls,
        )
        self.ledger.settle(reservation, spent)
        self.settled[step] = self.settled.get(step, Spend()) + spent
        self.total = self.total + spent

    @rule(held=consumes(held))
    def release(self, held: tuple[str, Reservation] | None) -> None:
        """Release a hold."""
        if held is not None:
            self.ledger.release(held[1])

    @invariant()
    def never_over_a_limit(self) -> None:
        """No scope's settled plus held spend ever passes a limit."""
        for scope in (WORKFLOW_SCOPE, scope_of("a"), scope_of("b")):
            state = self.ledger._scopes[scope]
            for limit, value in state.limits.items():
                field, headroom = LIMITS[limit]
                used = getattr(state.settled, field) + getattr(state.held, field)
                assert used <= value + headroom

    @invariant()
    def settled_totals_equal_the_sum_of_spends(self) -> None:
        """The ledger's spent is exactly what was settled."""
        spent = self.ledger.spent
        assert spent.input_tokens == self.total.input_tokens
        assert spent.output_tokens == self.total.output_tokens
        assert spent.llm_calls == self.total.llm_calls
        assert spent.cost_usd == pytest.approx(self.total.cost_usd)


TestLedgerInterleavings = LedgerMachine.TestCase


@given(st.lists(SPENDS, max_size=30))
def test_sequential_reservations_stop_at_the_cap(asks: list[Spend]) -> None:
    """Reserving until refused never passes the cap, and each refusal names a real shortfall."""
    ledger = BudgetLedger(Budget(max_input_tokens=1000, max_cost_usd=2.0), {})
    for ask in asks:
        found = ledger.try_reserve("x", ask)
        if isinstance(found, Shortfall):
            assert found.asked > found.remaining
    assert all(value >= 0 for value in ledger.remaining().values())


def test_the_worst_case_is_the_prompt_estimate_plus_max_tokens() -> None:
    """Characters / 4 rounded up plus the per-call floor, max_tokens out, priced without cache."""
    request = ChatRequest(
        model="claude-sonnet-4-5",
        system="x" * 10,
        messages=(ChatMessage(role="user", content="y" * 30),),
        max_tokens=500,
    )
    price = PriceEntry(3.0, 15.0, 0.3)
    assert worst_case_spend(request, price) == Spend(
        cost_usd=((10 + CALL_INPUT_FLOOR) * 3.0 + 500 * 15.0) / 1_000_000,
        input_tokens=10 + CALL_INPUT_FLOOR,
        output_tokens=500,
        llm_calls=1,
    )
    assert worst_case_spend(request, None).cost_usd == 0


def test_a_calls_spend_prices_its_real_usage() -> None:
    """call_spend prices cached input apart and counts one call."""
    usage = Usage(input_tokens=1000, output_tokens=200, cached_input_tokens=600)
    assert call_spend(usage, PriceEntry(1.0, 2.0, 0.1)) == Spend(
        cost_usd=(400 * 1.0 + 600 * 0.1 + 200 * 2.0) / 1_000_000,
        input_tokens=1000,
        output_tokens=200,
        llm_calls=1,
    )

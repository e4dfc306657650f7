"""An execution's budgets at run time: its ledger, the budget events, and spend from the journal.

One `ExecutionBudget` per execution whose workflow or steps set a `budget`, or whose parent
step a budget covers (none otherwise: an execution without budgets pays nothing for them). The
execution's LLM session hands it every reservation and settlement (`_llm_session`); a call is
checked against its step's budget and the workflow's — its step being the unit's step (`ID` for
the item `ID[3]` or the iteration `ID#2`).

Events, only for calls a budget covers: `budget.reserved` once a call's worst case is held,
`budget.settled` once the call ended (with what it spent; all zeros when nothing is known of its
usage), `budget.exhausted` when a budget cannot cover a call, which then fails with
`BudgetExhaustedError` (never retried) or, under `on_exhaust: "pause"`, waits at the budget's
approval gate (`budget`, `STEP.budget`) until a person raises the limits (approve, with the new
limits as input) or refuses (reject: the call fails). An approved raise also resolves the
scope's other waiting gates it now covers (`how: "covered"`).

Estimates learn (`_input_calibration`): a call's input is scaled by what the model's settled
calls billed in this run, and under an input-token or cost limit a model's first call runs alone
(the others wait for it to settle). A child execution (sub-workflow, plan) gets a
`ParentBudget`: each of its calls is held on its own budgets, then on its parent step's, which
journals it; so a workflow budget and `run --max-cost` cap the whole execution tree.

A resumed or forked execution first counts what its journal holds (`journal_spend`): settled
calls at what they spent, calls reserved but never settled (the process died during the call)
at their worst case, since they may have been paid for; so a resume never spends past a cap and
never forgets a call.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs
import trio

from .._errors import BudgetExhaustedError, JournalError
from .._journal._events import Event, EventType
from .._llm._budget_ledger import WORKFLOW_SCOPE, BudgetLedger, Shortfall
from .._llm._input_calibration import InputCalibration
from .._llm._prices import PriceEntry
from .._llm._session import NO_RESERVATION, Reservation, Spend
from .._workflow._budgets import pause_approval, pause_gate_id
from .._workflow._document import Workflow
from ._gates import gate_step_id

if TYPE_CHECKING:
    from ._emitter import Emitter
    from ._gates import GateBoard

__all__ = [
    "ExecutionBudget",
    "JournalSpend",
    "ParentBudget",
    "journal_spend",
    "link_to_parent",
]


@attrs.frozen
class ParentBudget:
    """The budgets a child execution's calls also count against: its parent step's, as it runs.

    A sub-workflow step's (or a plan's) child execution calls models on behalf of that step: each
    of its calls is reserved on its own budgets and then, as a call of `step_id` (attempt
    `attempt`), on the parent's (and so on up to the root), where the parent's journal records
    it. So a workflow budget and `run --max-cost` cap the whole execution tree.
    """

    budget: ExecutionBudget
    step_id: str
    """The parent's unit that runs the child (`c`, a map item's `c[2]`, an iteration's `c#3`)."""
    attempt: int


def link_to_parent(
    budget: ExecutionBudget | None, unit_id: str, attempt: int
) -> ParentBudget | None:
    """The link a child run by `unit_id` gets to its parent's budgets; None when none covers it."""
    if budget is None or not budget.covers(unit_id):
        return None
    return ParentBudget(budget, unit_id, attempt)


@attrs.frozen
class _Caller:
    """The calling unit a parent's budget sees for a child's call (an `AgentContext`'s part)."""

    step_id: str
    attempt: int


@attrs.frozen
class JournalSpend:
    """What an execution's journal says its budgets spent: per step, and the last reservation."""

    steps: Mapping[str, Spend]
    """Settled spend plus unsettled reservations at their worst case, by step id."""
    last_reservation: int
    """The highest reservation number recorded; new ones count on from it."""


def _spend_of(data: Mapping[str, Any]) -> Spend:
    """The spend a budget event carries; what is not a whole count (or a cost) counts as 0."""

    def count(name: str) -> int:
        value = data.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0

    cost = data.get("cost_usd")
    dollars = float(cost) if isinstance(cost, int | float) and not isinstance(cost, bool) else 0.0
    return Spend(
        cost_usd=dollars if math.isfinite(dollars) and dollars >= 0 else 0.0,
        input_tokens=count("input_tokens"),
        output_tokens=count("output_tokens"),
        llm_calls=count("llm_calls"),
    )


def journal_spend(events: Iterable[Event]) -> JournalSpend:
    """Fold the budget events of an execution's journal into what its budgets spent."""
    held: dict[int, tuple[str, Spend]] = {}
    steps: dict[str, Spend] = {}
    last = 0
    for event in events:
        if event.type not in (EventType.BUDGET_RESERVED, EventType.BUDGET_SETTLED):
            continue
        number = event.data.get("reservation")
        if not isinstance(number, int) or isinstance(number, bool) or event.step_id is None:
            continue
        step_id = gate_step_id(event.step_id)
        if event.type == EventType.BUDGET_RESERVED:
            held[number] = (step_id, _spend_of(event.data))
            last = max(last, number)
        elif held.pop(number, None) is not None:
            steps[step_id] = steps.get(step_id, Spend()) + _spend_of(event.data)
    for step_id, ask in held.values():
        steps[step_id] = steps.get(step_id, Spend()) + ask
    return JournalSpend(steps, last)


class ExecutionBudget:
    """The budgets of one execution: check and hold before each call, settle after it."""

    def __init__(
        self,
        workflow: Workflow,
        ledger: BudgetLedger,
        emitter: Emitter,
        gates: GateBoard | None = None,
        parent: ParentBudget | None = None,
    ) -> None:
        """Keep `ledger` (of `workflow`'s budgets), journal through `emitter`, pause at `gates`.

        `parent` is the parent execution's budgets a child's calls count against too.
        """
        self._workflow = workflow
        self._parent = parent
        # With a parent: each call's own reservation and the parent's, by a number of our own.
        self._links: dict[int, tuple[Reservation, Reservation]] = {}
        self._link_numbers = itertools.count(1)
        self.ledger = ledger
        self._emitter = emitter
        self._gates = gates
        self._pauses: dict[str, int] = {}
        # The calls waiting at each scope's pause gates: gate id -> (step id, ask).
        self._waiting: dict[str, dict[str, tuple[str, Spend]]] = {}
        self.calibration = InputCalibration()
        """Per model, how far real input outran the estimate in this run (`_input_calibration`)."""
        # Open reservations: their model and the input estimate before calibration.
        self._estimates: dict[int, tuple[str, int]] = {}
        # The models a settled call told what they bill; the first call of each other model
        # in flight (set when it ends), and the reservation numbers of those first calls.
        self._billed_models: set[str] = set()
        self._probes: dict[str, trio.Event] = {}
        self._probe_numbers: dict[int, str] = {}

    @classmethod
    def for_workflow(
        cls,
        workflow: Workflow,
        emitter: Emitter,
        gates: GateBoard | None = None,
        parent: ParentBudget | None = None,
    ) -> ExecutionBudget | None:
        """The budgets of an execution of `workflow`, or None when it sets none and has no parent.

        `gates` is the execution's gate board, where a budget with `on_exhaust: "pause"` waits;
        `parent` the budgets of the parent step of a child execution (`link_to_parent`).
        """
        steps = {step.id: step.budget for step in workflow.steps if step.budget is not None}
        if workflow.budget is None and not steps and parent is None:
            return None
        return cls(workflow, BudgetLedger(workflow.budget, steps), emitter, gates, parent)

    def covers(self, unit_id: str) -> bool:
        """Whether any budget (this execution's or an ancestor's) covers the calls of `unit_id`."""
        return self._parent is not None or self.ledger.covers(gate_step_id(unit_id))

    def restore(self, spent: JournalSpend) -> None:
        """Count what an earlier run of the execution (or the one it forks) spent."""
        for step_id, spend in spent.steps.items():
            self.ledger.restore(step_id, spend)
        self.ledger.skip_numbers(spent.last_reservation)

    async def reserve(
        self,
        context: Any,
        ask: Spend,
        *,
        model: str,
        price_of: Callable[[str], PriceEntry | None] | None = None,
        pause: bool = True,
    ) -> Reservation:
        """Hold `ask` for a call of `model` by the unit `context.step_id`, or refuse it.

        `pause` False: a budget set to pause refuses instead (a child's call at its parent's).

        `ask` is the call's estimated worst case; what is held is that with its input scaled by
        what earlier calls of `model` in this run really billed (`InputCalibration`), priced by
        `price_of(model)` (None: the extra input costs nothing).

        A child execution's call is then reserved on its parent step's budgets too (never
        pausing there: a parent's budget that cannot cover it refuses it).

        Raises:
            BudgetExhaustedError: a budget of the step or the workflow (or of a parent step or
                workflow) cannot cover `ask`.
        """
        if self._parent is None:
            return await self._reserve_own(
                context, ask, model=model, price_of=price_of, pause=pause
            )
        return await self._reserve_linked(context, ask, model, price_of, self._parent)

    async def _reserve_linked(
        self,
        context: Any,
        ask: Spend,
        model: str,
        price_of: Callable[[str], PriceEntry | None] | None,
        parent: ParentBudget,
    ) -> Reservation:
        """Reserve on this execution's budgets, then on the parent's; the pair under one number."""
        own = await self._reserve_own(context, ask, model=model, price_of=price_of)
        caller = _Caller(parent.step_id, parent.attempt)
        try:
            upper = await parent.budget.reserve(
                caller, ask, model=model, price_of=price_of, pause=False
            )
        except BudgetExhaustedError as refused:
            self._settle_own(context, own, Spend())
            raise BudgetExhaustedError(
                f"in the parent execution, for its step {parent.step_id}: {refused}"
            ) from None
        except BaseException:
            self._settle_own(context, own, Spend())
            raise
        number = next(self._link_numbers)
        self._links[number] = (own, upper)
        return Reservation(number, own.ask if own.number else upper.ask)

    async def _reserve_own(
        self,
        context: Any,
        ask: Spend,
        *,
        model: str,
        price_of: Callable[[str], PriceEntry | None] | None,
        pause: bool = True,
    ) -> Reservation:
        """Hold `ask` on this execution's budgets of the caller (see `reserve`)."""
        unit_id: str = context.step_id
        step_id = gate_step_id(unit_id)
        scopes = self.ledger.scopes(step_id)
        if not scopes:
            return NO_RESERVATION
        while self._needs_probe(scopes, model):
            probe = self._probes.get(model)
            if probe is None:
                break
            # The model's first call is in flight: wait for what it bills (see `_needs_probe`).
            await probe.wait()
        probing = self._needs_probe(scopes, model)
        if probing:
            self._probes[model] = trio.Event()
        try:
            found = await self._hold(context, unit_id, step_id, scopes, ask, model, price_of, pause)
        except BaseException:
            if probing:
                self._end_probe(model)
            raise
        if probing:
            self._probe_numbers[found.number] = model
        return found

    def _needs_probe(self, scopes: tuple[str, ...], model: str) -> bool:
        """Whether a call of `model` must first learn what it bills: run alone until one settles.

        So under an input-token or cost limit, a model's first call runs alone: the calls of a
        map's first wave are reserved at what that call billed, not at a blind estimate.
        """
        if model in self._billed_models:
            return False
        return any(
            "max_input_tokens" in self.ledger.limits(scope)
            or "max_cost_usd" in self.ledger.limits(scope)
            for scope in scopes
        )

    def _end_probe(self, model: str) -> None:
        """The first call of `model` ended: wake the calls waiting for it."""
        probe = self._probes.pop(model, None)
        if probe is not None:
            probe.set()

    async def _hold(
        self,
        context: Any,
        unit_id: str,
        step_id: str,
        scopes: tuple[str, ...],
        ask: Spend,
        model: str,
        price_of: Callable[[str], PriceEntry | None] | None,
        pause: bool,
    ) -> Reservation:
        """Calibrate `ask`, then check and hold it (pausing or refusing), and journal the hold."""
        estimated_input = ask.input_tokens
        if self.calibration.ratio(model) > 1.0:
            ask = self.calibration.ask(model, ask, None if price_of is None else price_of(model))
        while isinstance(found := self.ledger.try_reserve(step_id, ask), Shortfall):
            await self._emitter.emit(
                EventType.BUDGET_EXHAUSTED,
                step_id=unit_id,
                attempt=context.attempt,
                data=found.to_json(),
                trusted=True,
            )
            if not pause or found.on_exhaust != "pause":
                raise found.error()
            if not await self._paused(found, step_id, ask):
                raise found.error()
        await self._emitter.emit(
            EventType.BUDGET_RESERVED,
            step_id=unit_id,
            attempt=context.attempt,
            data={"reservation": found.number, "model": model, **ask.to_json(), "scope": scopes[0]},
            trusted=True,
        )
        self._estimates[found.number] = (model, estimated_input)
        # Durable before the call is made: a process killed during the call leaves the hold in
        # the journal, and the resume counts it. (A failed journal cancels the run anyway.)
        with contextlib.suppress(JournalError):
            await self._emitter.flush()
        return found

    async def _paused(self, shortfall: Shortfall, caller: str, ask: Spend) -> bool:
        """Wait at the scope's budget gate (it pauses); whether the answer raised the limits.

        The gate id is `budget` for the workflow's budget and `STEP.budget` for a step's, then
        `#2`, `#3`... for the scope's later pauses in the same run. Its answer's input holds new
        limits (`{"max_cost_usd": 5}`), each only ever raising one.
        """
        scope = shortfall.scope
        number = self._pauses.get(scope, 0) + 1
        self._pauses[scope] = number
        step_id = None if scope == WORKFLOW_SCOPE else scope.removeprefix("steps.")
        gate_id = pause_gate_id(step_id, number)
        approval = pause_approval(self._workflow, gate_id)
        assert self._gates is not None, "a workflow with a pausing budget has a gate board"
        assert approval is not None, "a pausing budget has a gate"
        limits = self.ledger.limits(scope)
        prompt = (
            f"{shortfall.message()}. Approve with new limits to go on"
            f" ({', '.join(f'{name} is {value:g}' for name, value in limits.items())}),"
            " or reject to fail the call."
        )
        waiting = self._waiting.setdefault(scope, {})
        waiting[gate_id] = (caller, ask)
        try:
            answer = await self._gates.ask(gate_id, approval, prompt)
        finally:
            waiting.pop(gate_id, None)
        if not answer["approved"]:
            return False
        self.ledger.raise_limits(scope, answer["input"])
        if answer["input"]:
            await self._resolve_covered(scope, gate_id, caller, ask)
        return True

    async def _resolve_covered(self, scope: str, raised_at: str, step_id: str, ask: Spend) -> None:
        """After a raise at gate `raised_at`, approve the scope's other waiting calls it covers.

        In the order their gates opened, each call that still fits beside the approved call (and
        the ones approved before it here) has its gate resolved as approved with no new limits
        (`how: "covered"`), so one raise never needs one approval per waiting call.
        """
        assert self._gates is not None, "a workflow with a pausing budget has a gate board"
        covered = {step_id: ask}
        for gate_id, (other_step, other_ask) in list(self._waiting.get(scope, {}).items()):
            together = dict(covered)
            together[other_step] = together.get(other_step, Spend()) + other_ask
            if any(self.ledger.shortfall(unit, spend) for unit, spend in together.items()):
                continue
            answer = {
                "approved": True,
                "input": {},
                "by": "orchestr8",
                "reason": f"covered by the limits approved at gate {raised_at}",
                "how": "covered",
            }
            if await self._gates.resolve_open(gate_id, answer):
                covered = together

    def settle(self, context: Any, reservation: Reservation, spent: Spend) -> None:
        """Replace the hold of `reservation` by `spent`, and journal it; no hold: nothing.

        A call with known usage calibrates the input estimates of its model's later calls. A
        child's call is settled on its parent step's budgets too.
        """
        if self._parent is not None:
            linked = self._links.pop(reservation.number, None)
            if linked is None:
                return
            own, upper = linked
            self._settle_own(context, own, spent)
            self._parent.budget.settle(
                _Caller(self._parent.step_id, self._parent.attempt), upper, spent
            )
            return
        self._settle_own(context, reservation, spent)

    def _settle_own(self, context: Any, reservation: Reservation, spent: Spend) -> None:
        """Settle `reservation` on this execution's budgets, and journal it; no hold: nothing."""
        if not self.ledger.settle(reservation, spent):
            return
        estimate = self._estimates.pop(reservation.number, None)
        if estimate is not None and spent.llm_calls:
            self.calibration.observe(estimate[0], estimate[1], spent.input_tokens)
            self._billed_models.add(estimate[0])
        probed = self._probe_numbers.pop(reservation.number, None)
        if probed is not None:
            self._end_probe(probed)
        self._emitter.emit_nowait(
            EventType.BUDGET_SETTLED,
            step_id=context.step_id,
            attempt=context.attempt,
            data={"reservation": reservation.number, **spent.to_json()},
            trusted=True,
        )

"""Budgets in the workflow AST: `budget` on a workflow and on a step, and their load-time checks.

`"budget": {"max_cost_usd": 2.0, "max_input_tokens": N, "max_output_tokens": N,
"max_llm_calls": N, "on_exhaust": "fail"}` caps what the model calls of an execution (the
workflow's budget) or of one step (the step's, all its attempts, map items and iterations
together) may spend. Every limit is optional, but a budget names at least one. Before each call
the call's worst case is reserved against every budget that applies; a call no budget can cover
fails with `BudgetExhaustedError` (`on_exhaust: "fail"`) or waits at an approval gate whose
answer may raise the limits (`"pause"`). The ledger is `_llm/_budget_ledger.py`, the run time
`_execution/_spending.py`; the rules are in docs/budgets.md.

What is checked when the document loads, each problem at its JSON path:

- the field needs schema_version "1.1";
- `max_cost_usd` is a finite number ≥ 0; the token and call limits are integers ≥ 0;
- a budget names at least one limit.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Literal

import attrs

from .._errors import Problem
from ._approvals import Approval
from ._conditions import require_version_1_1
from ._schema import add_schema_checks, schema_metadata

if TYPE_CHECKING:
    from ._document import Workflow

__all__ = [
    "LIMIT_NAMES",
    "Budget",
    "OnExhaust",
    "budget_pauses",
    "budget_problems",
    "capped_workflow",
    "cost_capped",
    "pause_approval",
    "pause_gate_clashes",
    "pause_gate_id",
    "raw_budget_problems",
    "with_cost_cap",
]

OnExhaust = Literal["fail", "pause"]

#: The limits a budget may set, in the order messages and documents list them.
LIMIT_NAMES: Final = ("max_cost_usd", "max_input_tokens", "max_output_tokens", "max_llm_calls")


def _finite(_: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    """Refuse NaN and infinities, which no spend can be compared with."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{attribute.name} must be a finite number, got {value!r}")


@attrs.frozen(kw_only=True, field_transformer=add_schema_checks)
class Budget:
    """What model calls may spend (dollars, tokens, calls) and what happens when it runs out."""

    max_cost_usd: float | None = attrs.field(
        default=None,
        validator=_finite,
        metadata=schema_metadata(
            "The most the calls may cost, in US dollars (priced by the provider's price table).",
            constraints={"minimum": 0},
        ),
    )
    max_input_tokens: int | None = attrs.field(
        default=None,
        metadata=schema_metadata(
            "The most input (prompt) tokens the calls may send, cached ones included.",
            constraints={"minimum": 0},
        ),
    )
    max_output_tokens: int | None = attrs.field(
        default=None,
        metadata=schema_metadata(
            "The most output tokens the calls may receive.", constraints={"minimum": 0}
        ),
    )
    max_llm_calls: int | None = attrs.field(
        default=None,
        metadata=schema_metadata(
            "The most model calls (API requests) that may be made.", constraints={"minimum": 0}
        ),
    )
    on_exhaust: OnExhaust = attrs.field(
        default="fail",
        metadata=schema_metadata(
            "fail: a call the budget cannot cover fails its step (BudgetExhaustedError, not"
            " retried); pause: the call waits at an approval gate (budget, or STEP.budget)"
            " whose answer may raise the limits; a rejection fails it."
        ),
    )

    def limits(self) -> dict[str, float | int]:
        """The limits this budget sets, by name (`LIMIT_NAMES` order), the unset ones left out."""
        found: dict[str, float | int] = {}
        for name in LIMIT_NAMES:
            value = getattr(self, name)
            if value is not None:
                found[name] = value
        return found


def pause_gate_clashes(budget: Budget | None, step_ids: Sequence[str]) -> list[Problem]:
    """A step named `budget` beside a workflow budget that pauses: both would be gate `budget`."""
    if budget is None or budget.on_exhaust != "pause" or "budget" not in step_ids:
        return []
    message = (
        'a step named "budget" would share its id with the pause gate of the workflow\'s'
        " budget (on_exhaust pause): rename the step"
    )
    return [Problem(f"$.steps[{step_ids.index('budget')}].id", message)]


def budget_problems(budget: Budget | None, where: str, version: str) -> list[Problem]:
    """The problems of a built `budget` found at `where` (`$.budget`, `$.steps[2].budget`)."""
    if budget is None:
        return []
    return _problems(where, version, names=budget.limits().keys())


def raw_budget_problems(budget: Any, where: str, version: object) -> list[Problem]:
    """`budget_problems` on a raw budget of a document that cannot become a `Workflow`.

    What the schema reports (a limit that is not a number, an unknown key) is left to it.
    """
    if not isinstance(budget, Mapping) or not isinstance(version, str):
        return []
    names = [name for name in LIMIT_NAMES if budget.get(name) is not None]
    return _problems(where, version, names=names)


def _problems(where: str, version: str, *, names: Collection[str]) -> list[Problem]:
    problems: list[Problem] = []
    require_version_1_1(version, where, "budget", problems)
    if not names:
        message = f"a budget sets at least one limit: {', '.join(LIMIT_NAMES)}"
        problems.append(Problem(where, message))
    return problems


def with_cost_cap(budget: Budget | None, max_cost_usd: float | None) -> Budget | None:
    """`budget` with its cost cap lowered to `max_cost_usd` (`run --max-cost`), or made from it.

    The lower of the two caps wins; the other limits and `on_exhaust` are kept.
    """
    if max_cost_usd is None:
        return budget
    if budget is None:
        return Budget(max_cost_usd=max_cost_usd)
    current = budget.max_cost_usd
    cap = max_cost_usd if current is None else min(current, max_cost_usd)
    return attrs.evolve(budget, max_cost_usd=cap)


def capped_workflow(workflow: Workflow, max_cost_usd: float | None) -> Workflow:
    """`workflow` with its budget's cost cap lowered to `max_cost_usd`; as it is when None.

    The cap becomes part of the workflow the journal records, so a resume or a fork keeps it.
    A "1.0" document becomes "1.1", the version budgets came with (a "1.0" document reads the
    same as "1.1").

    Raises:
        ValueError: `max_cost_usd` is negative or not finite.
    """
    if max_cost_usd is None:
        return workflow
    budget = with_cost_cap(workflow.budget, max_cost_usd)
    if budget == workflow.budget:
        return workflow
    return attrs.evolve(workflow, schema_version="1.1", budget=budget)


def cost_capped(workflow: Workflow, step_id: str) -> bool:
    """Whether a cost cap covers the model calls of `step_id`: its own or the workflow's.

    `run --max-cost` is part of the workflow's budget by the time agents are built
    (`capped_workflow`), so this sees it too. With a cost cap, a model without a price is
    refused at load.

    Raises:
        KeyError: the workflow has no such step.
    """
    step = workflow.steps_by_id[step_id]
    capped = (budget for budget in (workflow.budget, step.budget) if budget is not None)
    return any(budget.max_cost_usd is not None for budget in capped)


def budget_pauses(workflow: Workflow) -> bool:
    """Whether a budget of `workflow` (its own or a step's) pauses when it runs out."""
    budgets = (workflow.budget, *(step.budget for step in workflow.steps))
    return any(budget is not None and budget.on_exhaust == "pause" for budget in budgets)


def pause_gate_id(step_id: str | None, number: int = 1) -> str:
    """The id of a budget's pause gate, so a person can answer it (`orchestr8 approve ID GATE`).

    `budget` for the workflow's budget (`step_id` None), `STEP.budget` for a step's; `#2`,
    `#3`... for the later pauses of one run. A step id holds no `.`, so none is a step's.
    """
    base = "budget" if step_id is None else f"{step_id}.budget"
    return base if number == 1 else f"{base}#{number}"


def pause_approval(workflow: Workflow, gate_id: str) -> Approval | None:
    """The gate a pausing budget of `workflow` opens as `gate_id`, or None if it has none.

    Known before it opens, so an early answer (recorded while no process ran the execution)
    is held for it. Its answer's input holds new values for the budget's limits.
    """
    base, hash_sign, number = gate_id.rpartition("#")
    if not (hash_sign and number.isdigit() and int(number) >= 2 and str(int(number)) == number):
        base = gate_id
    if base == "budget":
        budget = workflow.budget
    elif base.endswith(".budget") and base[: -len(".budget")] in workflow.steps_by_id:
        budget = workflow.steps_by_id[base[: -len(".budget")]].budget
    else:
        return None
    if budget is None or budget.on_exhaust != "pause":
        return None
    properties = {
        name: {
            "type": "number" if name == "max_cost_usd" else "integer",
            "minimum": 0,
            "description": f"the new {name}; a limit only ever goes up",
        }
        for name in budget.limits()
    }
    schema = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
        "minProperties": 1,
    }
    return Approval(prompt="A budget ran out: approve with new limits, or reject.", schema=schema)

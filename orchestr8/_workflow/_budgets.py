"""Budgets in the workflow AST: `budget` on a workflow and on a step, and their load-time checks.

`"budget": {"max_cost_usd": 2.0, "max_input_tokens": N, "max_output_tokens": N,
"max_llm_calls": N, "on_exhaust": "fail"}` caps what the model calls of an execution (the
workflow's budget) or of one step (the step's, all its attempts, map items and iterations
together) may spend. Every limit is optional, but a budget names at least one. Before each call
the call's worst case is reserved against every budget that applies; a call no budget can cover
fails with `BudgetExhaustedError` (`on_exhaust: "fail"`) or waits at an approval gate that may
raise the limit (`"pause"`). The ledger is `_llm/_budget_ledger.py`; the rules are in
docs/budgets.md.

What is checked when the document loads, each problem at its JSON path:

- the field needs schema_version "1.1";
- `max_cost_usd` is a finite number ≥ 0; the token and call limits are integers ≥ 0;
- a budget names at least one limit.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any, Final, Literal

import attrs

from .._errors import Problem
from ._conditions import require_version_1_1
from ._schema import add_schema_checks, schema_metadata

__all__ = [
    "LIMIT_NAMES",
    "Budget",
    "OnExhaust",
    "budget_problems",
    "raw_budget_problems",
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
            " retried); pause: the call waits at an approval gate whose answer may raise the"
            " limits."
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

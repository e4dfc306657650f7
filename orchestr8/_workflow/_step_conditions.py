"""A step's condition (`when`) in the AST: compiled from its text, and checked where it stands.

A `when` is compiled as soon as a `Step` is built (`_map_fields.to_when`, as
`for_each` is), before the step has
a place in a workflow; the workflow then compiles it again at `$.steps[N].when` with the roots that
step may read (`condition_roots`) and the schema version it needs (`locate_conditions`), so the
graph checks and run-time errors name where it is written. The codec checks the raw steps of a
document that cannot become a `Workflow` the same way (`outline_condition`), with the same
`condition_roots`, so one function decides what a condition may read. A map step's `when` may
read its `item` and `index` too: it is then a per-item filter (`filters_items`), which the engine
checks for each item rather than once for the step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

import attrs

from .._errors import Problem
from ._conditions import compile_expression, require_version_1_1
from ._references import Reference

if TYPE_CHECKING:
    from ._document import Step

#: What a step's `when` may read, whatever the step.
CONDITION_ROOTS: Final = frozenset({"inputs", "steps"})

#: What the `when` of a map step (`for_each`) may read besides: its item, which makes it a
#: per-item filter.
ITEM_ROOTS: Final = frozenset({"item", "index"})

#: What the `when` of a map step may read.
MAP_CONDITION_ROOTS: Final = CONDITION_ROOTS | ITEM_ROOTS


def condition_roots(step: Step | Mapping[str, Any]) -> frozenset[str]:
    """The roots a step's `when` may read: for a `Step`, or a raw step the codec checks.

    The one place that decides it: a step with `for_each` adds `item` and `index` here (its
    `when` is then a per-item filter).
    """
    if isinstance(step, Mapping):
        has_for_each = step.get("for_each") is not None
    else:
        has_for_each = step.for_each is not None
    return MAP_CONDITION_ROOTS if has_for_each else CONDITION_ROOTS


def filters_items(step: Step) -> bool:
    """Whether `step` is a map whose `when` reads its item: checked per item, not for the step."""
    return (
        step.for_each is not None
        and step.when is not None
        and not ITEM_ROOTS.isdisjoint(step.when.roots)
    )


def outline_condition(
    step: Mapping[str, Any], index: int, version: object, problems: list[Problem]
) -> tuple[tuple[str, Reference], ...]:
    """`locate_conditions` on a raw step of a document that cannot become a `Workflow`.

    Returns the steps and inputs its `when` reads, located, for the graph checks. What the schema
    reports (a `when` that is not a string, or empty) is left to it.
    """
    if isinstance(version, str):
        if step.get("accept_skipped") is True:
            path = f"$.steps[{index}].accept_skipped"
            require_version_1_1(version, path, "accept_skipped", problems)
        if "when" in step:
            require_version_1_1(version, f"$.steps[{index}].when", "when", problems)
    text = step.get("when")
    if not isinstance(text, str) or not text:
        return ()
    path = f"$.steps[{index}].when"
    expression = compile_expression(text, path, condition_roots(step), problems)
    return () if expression is None else expression.located_references


def locate_conditions(
    steps: Sequence[Step], version: str, problems: list[Problem]
) -> tuple[Step, ...]:
    """The steps with each `when` compiled where it stands; what is wrong goes to `problems`.

    `when` and `accept_skipped` need schema version 1.1; a `when` may read only its step's
    `condition_roots`. A step whose `when` is refused comes back without it, so the other checks
    still run.
    """
    located = list(steps)
    for index, step in enumerate(located):
        if step.accept_skipped:
            path = f"$.steps[{index}].accept_skipped"
            require_version_1_1(version, path, "accept_skipped", problems)
        if step.when is None:
            continue
        path = f"$.steps[{index}].when"
        require_version_1_1(version, path, "when", problems)
        when = compile_expression(step.when.text, path, condition_roots(step), problems)
        if when is None:
            located[index] = attrs.evolve(step, when=None)
        elif step.when.path != path:
            located[index] = attrs.evolve(step, when=when)
    return tuple(located)

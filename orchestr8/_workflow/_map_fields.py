"""The load-time checks of a map step's fields: `for_each`, `on_item_error`, `max_concurrency`.

A step with `for_each` is a map (schema 1.1): its expression may read `inputs` and the outputs of
steps it depends on (`steps.ID.output`), and its `input` may read `${item}` and `${index}`.
`map_fields` compiles each `for_each` again at its own JSON path (the converter compiled it
without knowing where it stands), refuses the fields in a "1.0" document and where they mean
nothing, and gives the graph checks what they need: the steps the expression reads, and the local
names the step's references may use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

import attrs

from .._errors import Problem
from ._conditions import SCOPE_ROOTS, Expression, compile_expression, require_version_1_1
from ._graph import StepOutline
from ._references import Reference

if TYPE_CHECKING:
    from ._document import Step

#: What a `for_each` expression may read.
FOR_EACH_ROOTS: Final = frozenset({"inputs", "steps"})

#: The local names a map step's input may read: the item and its 0-based position.
MAP_LOCAL_NAMES: Final = frozenset({"item", "index"})


def to_optional_expression(value: object) -> Expression | None:
    """A field's expression, compiled where its JSON path is not known yet (the converter).

    Only what is wrong wherever the expression stands (its syntax, unknown functions) is refused
    here; the roots it reads are checked at its path by the `Workflow` (`map_fields`).

    Raises:
        ValueError: the text is not a valid JMESPath expression (the converter locates it).
    """
    if value is None or isinstance(value, Expression):
        return value
    problems: list[Problem] = []
    compiled = compile_expression(value, "$", SCOPE_ROOTS, problems)
    if compiled is None:
        raise ValueError(problems[0].message)
    return compiled


def map_fields(
    version: str,
    steps: Sequence[Step],
    outlines: Sequence[StepOutline],
    problems: list[Problem],
) -> tuple[tuple[Step, ...], list[StepOutline]]:
    """Check the map fields of every step; return the steps and outlines the graph checks use.

    A map step comes back with its `for_each` compiled at `$.steps[i].for_each`, and its outline
    reads the steps the expression reads and may use `${item}` and `${index}`.
    """
    checked: list[Step] = []
    checked_outlines: list[StepOutline] = []
    for index, (step, outline) in enumerate(zip(steps, outlines, strict=True)):
        path = f"$.steps[{index}]"
        if step.on_item_error != "fail":
            _needs_for_each(version, step, f"{path}.on_item_error", "on_item_error", problems)
        if step.max_concurrency:
            _needs_for_each(version, step, f"{path}.max_concurrency", "max_concurrency", problems)
        if step.for_each is None:
            checked.append(step)
            checked_outlines.append(outline)
            continue
        require_version_1_1(version, f"{path}.for_each", "for_each", problems)
        if step.repeat is not None:
            problems.append(
                Problem(
                    f"{path}.for_each",
                    "a step cannot both map (for_each) and loop (repeat): loop in a step that"
                    " depends on the map, or map over the loop's output",
                )
            )
        compiled = compile_expression(
            step.for_each.text, f"{path}.for_each", FOR_EACH_ROOTS, problems
        )
        if compiled is None:
            checked.append(step)
            checked_outlines.append(outline)
            continue
        checked.append(attrs.evolve(step, for_each=compiled))
        checked_outlines.append(
            attrs.evolve(
                outline,
                references=outline.references + compiled.located_references,
                local_names=outline.local_names | MAP_LOCAL_NAMES,
            )
        )
    return tuple(checked), checked_outlines


def raw_map_outline(
    step: Mapping[str, Any], index: int, problems: list[Problem]
) -> tuple[tuple[tuple[str, Reference], ...], frozenset[str]]:
    """For a raw step of a document with other errors: what its `for_each` reads, and its locals.

    The references `for_each` reads (its problems go to `problems`), and the local names its
    input may use: `item` and `index` when it has a `for_each` at all.
    """
    if "for_each" not in step:
        return (), frozenset()
    if not isinstance(step["for_each"], str):
        # The schema names what is wrong with it.
        return (), MAP_LOCAL_NAMES
    compiled = compile_expression(
        step["for_each"], f"$.steps[{index}].for_each", FOR_EACH_ROOTS, problems
    )
    return (compiled.located_references if compiled else ()), MAP_LOCAL_NAMES


def _needs_for_each(
    version: str, step: Step, path: str, field: str, problems: list[Problem]
) -> None:
    """Refuse a map-only field in a "1.0" document, or on a step that is not a map."""
    require_version_1_1(version, path, field, problems)
    if step.for_each is None:
        problems.append(Problem(path, f'"{field}" applies only to a step with for_each'))

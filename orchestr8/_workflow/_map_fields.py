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

from .._errors import Problem, WorkflowValidationError
from ._conditions import SCOPE_ROOTS, Expression, compile_expression, require_version_1_1
from ._graph import StepOutline
from ._references import Reference

if TYPE_CHECKING:
    from ._document import Step

#: What a `for_each` expression may read.
FOR_EACH_ROOTS: Final = frozenset({"inputs", "steps"})

#: The local names a map step's input may read: the item and its 0-based position.
MAP_LOCAL_NAMES: Final = frozenset({"item", "index"})


def to_when(value: object) -> Expression | None:
    """The converter of `Step.when`: its text compiled (`compile_field`), None kept."""
    return compile_field(value, "when")


def to_for_each(value: object) -> Expression | None:
    """The converter of `Step.for_each`: its text compiled (`compile_field`), None kept."""
    return compile_field(value, "for_each")


def compile_field(value: object, field: str) -> Expression | None:
    """Compile a `Step` field holding an expression, before the step has a place in a workflow.

    Only what is wrong wherever the expression stands (its syntax, unknown functions) is refused
    here, located at `$.FIELD`; the `Workflow` checks the roots it reads at its real path, and
    the codec reports a document's problems where they are written.

    Raises:
        WorkflowValidationError: the text is not a valid JMESPath expression.
    """
    if value is None or isinstance(value, Expression):
        return value
    problems: list[Problem] = []
    compiled = compile_expression(value, f"$.{field}", SCOPE_ROOTS, problems)
    if compiled is None:
        raise WorkflowValidationError(problems)
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
        _check_fields(
            _MapFields(
                has_for_each=step.for_each is not None,
                sets_on_item_error=step.on_item_error != "fail",
                sets_max_concurrency=step.max_concurrency != 0,
                has_repeat=step.repeat is not None,
                replans=not isinstance(step.on_error, str),
            ),
            index,
            version,
            problems,
        )
        compiled = None
        if step.for_each is not None:
            compiled = compile_expression(
                step.for_each.text, f"$.steps[{index}].for_each", FOR_EACH_ROOTS, problems
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
    step: Mapping[str, Any], index: int, version: object, problems: list[Problem]
) -> tuple[tuple[tuple[str, Reference], ...], frozenset[str]]:
    """`map_fields` on a raw step of a document that cannot become a `Workflow`.

    Returns the references `for_each` reads (its problems go to `problems`), and the local names
    the step's input may use: `item` and `index` when it has a `for_each` at all. What the schema
    reports (a `for_each` that is not a string) is left to it.
    """
    if isinstance(version, str):
        fields = _MapFields(
            has_for_each="for_each" in step,
            sets_on_item_error=step.get("on_item_error", "fail") != "fail",
            sets_max_concurrency=step.get("max_concurrency", 0) != 0,
            has_repeat="repeat" in step,
            replans=isinstance(step.get("on_error"), Mapping),
        )
        _check_fields(fields, index, version, problems)
    if "for_each" not in step:
        return (), frozenset()
    if not isinstance(step["for_each"], str):
        return (), MAP_LOCAL_NAMES
    compiled = compile_expression(
        step["for_each"], f"$.steps[{index}].for_each", FOR_EACH_ROOTS, problems
    )
    return (compiled.located_references if compiled else ()), MAP_LOCAL_NAMES


@attrs.frozen
class _MapFields:
    """Which map fields one step sets (and whether it loops), as the field checks need them."""

    has_for_each: bool
    sets_on_item_error: bool
    sets_max_concurrency: bool
    has_repeat: bool
    replans: bool


def _check_fields(fields: _MapFields, index: int, version: str, problems: list[Problem]) -> None:
    """Map fields need schema "1.1", map-only ones for_each; a map neither loops nor replans."""
    path = f"$.steps[{index}]"
    for field, present in (
        ("on_item_error", fields.sets_on_item_error),
        ("max_concurrency", fields.sets_max_concurrency),
    ):
        if present:
            require_version_1_1(version, f"{path}.{field}", field, problems)
            if not fields.has_for_each:
                problems.append(
                    Problem(f"{path}.{field}", f'"{field}" applies only to a step with for_each')
                )
    if not fields.has_for_each:
        return
    require_version_1_1(version, f"{path}.for_each", "for_each", problems)
    if fields.has_repeat:
        problems.append(
            Problem(
                f"{path}.for_each",
                "a step cannot both map (for_each) and loop (repeat): loop in a step that"
                " depends on the map, or map over the loop's output",
            )
        )
    if fields.replans:
        problems.append(
            Problem(
                f"{path}.on_error",
                "a map step is not replanned: give its items' failures to on_item_error, or"
                " replan a step that reads the map's output",
            )
        )

"""Loops in the workflow AST: `repeat` on a step, and the load-time checks of a loop.

`"repeat": {"until": "<expression>", "max_iterations": N}` runs the step's agent again and again:
after each iteration `until` is evaluated over `output` (that iteration's output), `iteration`
(its number, from 1), `inputs` and `steps.ID.output` of the step's dependencies; when it holds
the step succeeds with that output, otherwise the next iteration runs with `${previous}` in its
input. `max_iterations` is required: a loop without a bound is refused at load. The run time is
`_execution/_loop.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal

import attrs

from .._errors import Problem
from ._conditions import Expression, compile_expression, require_version_1_1
from ._references import Reference
from ._schema import add_schema_checks, schema_metadata

#: What `until` may read: this iteration's output and number, the inputs, dependencies' outputs.
UNTIL_ROOTS: Final = frozenset({"output", "iteration", "inputs", "steps"})

#: The `${...}` locals a repeat step's input may read.
LOOP_LOCALS: Final = frozenset({"previous", "iteration"})

OnMaxIterations = Literal["fail", "succeed"]


def to_until(value: Any) -> Expression:
    """`until` as compiled: an `Expression` as it is, a string compiled with the roots it may read.

    The workflow compiles it again at its JSON path with the roots `until` may read
    (`check_repeat`); here only a string that is no expression at all is refused.

    Raises:
        ValueError: the text is not a JMESPath expression.
    """
    if isinstance(value, Expression):
        return value
    problems: list[Problem] = []
    expression = compile_expression(value, "until", UNTIL_ROOTS, problems)
    if expression is None:
        raise ValueError(problems[0].message)
    return expression


@attrs.frozen(kw_only=True, field_transformer=add_schema_checks)
class Repeat:
    """How a step loops: run again until `until` holds, at most `max_iterations` times in all."""

    until: Expression = attrs.field(
        converter=to_until,
        metadata=schema_metadata(
            "A JMESPath expression over output (this iteration's output), iteration (from 1),"
            " inputs and steps.ID.output: true ends the loop with this output.",
            constraints={"minLength": 1},
            json_type=str,
        ),
    )
    max_iterations: int = attrs.field(
        metadata=schema_metadata(
            "The most iterations the loop runs; reaching it without until holding fails the"
            " step unless on_max_iterations is succeed.",
            constraints={"minimum": 1},
        ),
    )


def check_repeat(
    repeat: Repeat | None,
    on_max_iterations: OnMaxIterations,
    *,
    index: int,
    version: str,
    problems: list[Problem],
) -> tuple[tuple[str, Reference], ...]:
    """Check a step's loop fields; return the references its `until` reads, for the graph checks.

    `until` is compiled again at its JSON path, with the roots it may read, and the step keeps
    that compiled form (so a run-time error names where the expression is).
    """
    _check_fields(repeat is not None, on_max_iterations != "fail", index, version, problems)
    if repeat is None:
        return ()
    until = compile_expression(
        repeat.until.text, f"$.steps[{index}].repeat.until", UNTIL_ROOTS, problems
    )
    if until is None:
        return ()
    # The same text, now located: equal to what the step held, so the step stays equal too.
    object.__setattr__(repeat, "until", until)
    return until.located_references


def outline_repeat(
    step: Mapping[str, Any], index: int, version: object, problems: list[Problem]
) -> tuple[tuple[str, Reference], ...]:
    """`check_repeat` on a raw step of a document that cannot become a `Workflow`.

    What the schema reports (a missing bound, an until that is not a string) is left to it.
    """
    on_max_iterations = step.get("on_max_iterations", "fail")
    if isinstance(version, str):
        _check_fields("repeat" in step, on_max_iterations != "fail", index, version, problems)
    repeat = step.get("repeat")
    until = repeat.get("until") if isinstance(repeat, Mapping) else None
    if not isinstance(until, str) or not until.strip():
        return ()
    compiled = compile_expression(until, f"$.steps[{index}].repeat.until", UNTIL_ROOTS, problems)
    return () if compiled is None else compiled.located_references


def _check_fields(
    has_repeat: bool, sets_on_max: bool, index: int, version: str, problems: list[Problem]
) -> None:
    """The loop fields need schema "1.1", and on_max_iterations needs repeat."""
    where = f"$.steps[{index}]"
    if sets_on_max:
        require_version_1_1(version, f"{where}.on_max_iterations", "on_max_iterations", problems)
        if not has_repeat:
            problems.append(
                Problem(f"{where}.on_max_iterations", "only a step with repeat has iterations")
            )
    if has_repeat:
        require_version_1_1(version, f"{where}.repeat", "repeat", problems)

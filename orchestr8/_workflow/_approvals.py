"""Approval steps in the workflow AST: the `approval` step kind and its load-time checks.

`"approval": {"prompt": "...", "schema": {...}, "timeout": SECONDS, "on_timeout": "reject"}` makes
a step a *gate*: when it becomes ready it asks a person (or a program) for an answer instead of
calling an agent, and its output is that answer, `{"approved", "input", "by", "reason"}`. The
`prompt` may hold `${...}` references, resolved when the gate opens; `schema` is a JSON Schema
(Draft 2020-12) the answer's `input` must match; `timeout` bounds the wait (none: it waits
forever), and `on_timeout` says what a timeout means: `reject` (the default), `approve`, or
`fail` (the step fails with `GateTimedOutError`).

What is checked when the document loads, each problem at its JSON path:

- the field needs schema_version "1.1";
- `timeout`, when given, is a positive number of seconds;
- `schema` is a valid JSON Schema (`check_schema` against the Draft 2020-12 meta-schema);
- `schema` describes an object (`type` is "object", a list holding it, or not given): an
  answer's `input` is always an object, so any other type would refuse every approval;
- an approval step runs no agent, workflow or plan, and takes no `retry`, `breaker` or `timeout`
  policy, nor a replanning `on_error`: there is no call to retry or time out.

An approval step may carry `for_each` (one gate per item, `ID[i]`), `repeat` (one per iteration,
`ID#k`), `when` and `depends_on`. The gates run in `_execution/_gates.py`. `answer_problems`
checks an answer against the step, for the engine and for the views that take answers.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final, Literal

import attrs
from jsonschema import Draft202012Validator

from .._errors import Problem
from ._conditions import require_version_1_1
from ._expressions import Template, compile_template
from ._references import json_type_name
from ._schema import add_schema_checks, schema_metadata
from ._schema_problems import schema_problems

if TYPE_CHECKING:
    from ._references import Reference

__all__ = [
    "APPROVAL_AGENT_ID",
    "Approval",
    "OnTimeout",
    "answer_problems",
    "approval_problems",
    "approval_references",
    "raw_approval_problems",
    "with_defaults",
]

OnTimeout = Literal["reject", "approve", "fail"]

#: What events, logs and metrics call the runner of an approval step (it has no agent).
APPROVAL_AGENT_ID: Final = "approval"

#: The policy fields an approval step may not set: a gate makes no call to retry or time out.
_REFUSED_POLICY: Final = ("retry", "circuit_breaker", "timeout")


def _to_prompt(value: Any) -> Template:
    return value if isinstance(value, Template) else compile_template(value)


@attrs.frozen(kw_only=True, field_transformer=add_schema_checks)
class Approval:
    """A gate: what to ask, the shape of the answer's input, and how long to wait for it."""

    prompt: Template = attrs.field(
        converter=_to_prompt,
        metadata=schema_metadata(
            "What the person is asked; ${...} references are resolved when the gate opens.",
            constraints={"minLength": 1},
            json_type=str,
        ),
    )
    schema: dict[str, Any] | None = attrs.field(
        default=None,
        metadata=schema_metadata(
            "A JSON Schema (Draft 2020-12) the answer's input must match; null: any object."
        ),
    )
    timeout: float | None = attrs.field(
        default=None,
        metadata=schema_metadata(
            "Seconds the gate waits for an answer (a positive number); null: it waits forever."
            " The deadline survives restarts."
        ),
    )
    on_timeout: OnTimeout = attrs.field(
        default="reject",
        metadata=schema_metadata(
            "What a timeout means: reject (approved false), approve (approved true), or fail"
            " (the step fails with GateTimedOutError, never retried)."
        ),
    )


def approval_references(approval: Approval | None, index: int) -> tuple[tuple[str, Reference], ...]:
    """The `${...}` references of a gate's prompt, each with its JSON path, for the graph checks."""
    if approval is None:
        return ()
    return tuple(
        (f"$.steps[{index}].approval.prompt{suffix}", reference)
        for suffix, reference in approval.prompt.located_references
    )


def approval_problems(
    index: int,
    version: str,
    approval: Approval | None,
    *,
    runs: bool,
    policy_fields: tuple[str, ...],
    replans: bool,
) -> list[Problem]:
    """The problems of a built step's `approval`: version, timeout, schema, what it may not have.

    `runs`: the step also names an agent, workflow or plan; `policy_fields`: the policy fields
    the step sets itself; `replans`: its `on_error` is a replanning.
    """
    if approval is None:
        return []
    return _problems(
        index,
        version,
        timeout=approval.timeout,
        schema=approval.schema,
        runs=runs,
        policy_fields=policy_fields,
        replans=replans,
    )


def raw_approval_problems(step: Mapping[str, Any], index: int, version: object) -> list[Problem]:
    """`approval_problems` on a raw step of a document that cannot become a `Workflow`.

    What the schema reports (a prompt that is not a string, an unknown on_timeout) is left to it.
    """
    approval = step.get("approval")
    if not isinstance(approval, Mapping) or not isinstance(version, str):
        return []
    policy = step.get("policy")
    timeout = approval.get("timeout")
    schema = approval.get("schema")
    return _problems(
        index,
        version,
        timeout=timeout if isinstance(timeout, int | float) else None,
        schema=schema if isinstance(schema, Mapping) else None,
        runs=any(step.get(name) is not None for name in ("agent", "workflow", "plan")),
        policy_fields=tuple(policy) if isinstance(policy, Mapping) else (),
        replans=isinstance(step.get("on_error"), Mapping),
    )


def _problems(
    index: int,
    version: str,
    *,
    timeout: float | None,
    schema: Mapping[str, Any] | None,
    runs: bool,
    policy_fields: tuple[str, ...],
    replans: bool,
) -> list[Problem]:
    where = f"$.steps[{index}]"
    problems: list[Problem] = []
    require_version_1_1(version, f"{where}.approval", "approval", problems)
    if timeout is not None and not timeout > 0:
        problems.append(
            Problem(f"{where}.approval.timeout", "must be a positive number of seconds")
        )
    if schema is not None:
        problems += _schema_problems(json.dumps(schema, sort_keys=True), f"{where}.approval.schema")
    if runs:
        message = "an approval step asks a person: it has no agent, workflow or plan"
        problems.append(Problem(where, message))
    for name in _REFUSED_POLICY:
        if name in policy_fields:
            message = f"an approval step makes no call: it takes no {name} (remove it)"
            problems.append(Problem(f"{where}.policy.{name}", message))
    if replans:
        message = "an approval step cannot be replanned: on_error is fail or continue"
        problems.append(Problem(f"{where}.on_error", message))
    return problems


_META_VALIDATOR: Final = Draft202012Validator(Draft202012Validator.META_SCHEMA)


@functools.lru_cache(maxsize=256)
def _schema_problems(text: str, path: str) -> tuple[Problem, ...]:
    """A gate's schema checked against the meta-schema, once per distinct schema and place."""
    schema = json.loads(text)
    problems = tuple(schema_problems(_META_VALIDATOR.iter_errors(schema), prefix=path))
    kind = schema.get("type", "object")
    kinds = kind if isinstance(kind, list) else [kind]
    if not problems and "object" not in kinds:
        message = (
            f'must describe an object (type "object" or no type), not {json.dumps(kind)}: '
            "an answer's input is always an object, so no approval could fit"
        )
        problems += (Problem(f"{path}.type", message),)
    return problems


@functools.lru_cache(maxsize=256)
def _answer_validator(text: str) -> Draft202012Validator:
    """The validator of a gate's answers, built once per distinct schema."""
    return Draft202012Validator(
        json.loads(text), format_checker=Draft202012Validator.FORMAT_CHECKER
    )


def with_defaults(schema: Any, answer_input: Mapping[str, Any]) -> dict[str, Any]:
    """`answer_input` with the schema's top-level `default`s filled in where a field is absent.

    Every way of answering (the prompt, `orchestr8 approve`, REST, `handle.gates.answer`) gets
    the same output for the same answer: a field with a default need not be given, and a
    required field with a default is not missing.
    """
    filled = dict(answer_input)
    properties = schema.get("properties") if isinstance(schema, Mapping) else None
    if isinstance(properties, Mapping):
        for name, field in properties.items():
            if name not in filled and isinstance(field, Mapping) and "default" in field:
                filled[name] = field["default"]
    return filled


def answer_problems(approval: Approval, body: Any) -> list[Problem]:
    """What is wrong with an answer `{"approve", "input", "reason", "by"}` to a gate of `approval`.

    `approve` must be a boolean, `input` an object (absent: `{}`), `reason` and `by` strings or
    null. Only an approval's `input` must match the gate's schema: a person who says no owes no
    form, so a rejection's input is kept as given, unchecked. Paths are the body's:
    `$.input.amount`.
    """
    if not isinstance(body, Mapping):
        return [Problem("$", f"an answer is an object, not {json_type_name(body)}")]
    problems: list[Problem] = []
    if not isinstance(body.get("approve"), bool):
        problems.append(Problem("$.approve", "expected true or false"))
    for name in ("reason", "by"):
        value = body.get(name)
        if value is not None and not isinstance(value, str):
            problems.append(Problem(f"$.{name}", f"expected a string, got {json_type_name(value)}"))
    answer_input = body.get("input", {})
    if answer_input is None:
        answer_input = {}
    if not isinstance(answer_input, Mapping):
        problems.append(
            Problem("$.input", f"expected an object, got {json_type_name(answer_input)}")
        )
    elif approval.schema is not None and body.get("approve") is True:
        validator = _answer_validator(json.dumps(approval.schema, sort_keys=True))
        filled = with_defaults(approval.schema, answer_input)
        problems += schema_problems(validator.iter_errors(filled), prefix="$.input")
    return problems

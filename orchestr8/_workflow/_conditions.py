"""Expressions in workflow documents: JMESPath, compiled and checked at load, evaluated per run.

Conditions (`when`), maps (`for_each`) and loops (`repeat.until`) are expressions over a scope of
named roots: `inputs`, `steps` (`steps.ID.output`), and the local roots a step defines (`item` and
`index` in a map, `output` and `iteration` in a loop's `until`). The language is JMESPath
(https://jmespath.org): it has a specification and a compliance suite, it compares, combines
with `&&`, `||` and `!`, tests membership (`contains`) and length (`length`), filters and
projects lists, and it cannot run code. CEL was weighed too: its Python implementation is heavier
and slower, and JMESPath covers what conditions need.

Compiling parses the text once and walks the syntax tree for the names it reads at the top level:
a root outside those the field allows, a function JMESPath does not have, or `steps` without a
step id is a `Problem` at the field's JSON path, like a syntax error. The steps it reads come out
as `Reference`s with that path, so the graph checks (`_graph`) report an unknown step or one the
step does not depend on exactly as they do for `${...}` references. Evaluation errors (a function
given the wrong type, an ordering of a string against a number) raise `ExpressionError`, which
fails the step that evaluated it.

Two traps of JMESPath get their own hints: numbers are JSON literals in backticks (`` `3` ``),
and `"text"` is a quoted field name, so strings are written in single quotes (`'text'`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

import attrs
import jmespath
from jmespath import exceptions as jmespath_errors
from jmespath import functions as jmespath_functions
from jmespath.parser import ParsedResult

from .._errors import ExpressionError, Problem
from ._references import Reference

#: Every root an expression can read somewhere; each field allows a subset.
SCOPE_ROOTS: Final = frozenset(
    {"inputs", "steps", "item", "index", "output", "iteration", "previous"}
)

#: The schema version that introduced expressions and the fields built on them.
EXPRESSIVE_VERSION: Final = "1.1"

_NUMBER: Final = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
_WORD_OPERATORS: Final = re.compile(r"(?<![\w.'`])(?:and|or|not)(?![\w'`])")

#: How deeply an expression may nest (operators, function calls, projections). A deeper one is
#: refused at load: evaluating it could exhaust Python's stack in the middle of a run.
MAX_EXPRESSION_DEPTH: Final = 50

_FUNCTION_NAMES: Final = frozenset(jmespath_functions.Functions.FUNCTION_TABLE)

#: Node types whose first child is read from the node's own context and the others from its
#: result (`a.b`, `a[0]`, `a[*].b`, `a[?x].b`, `a.*.b`, `a[]`, `a | b`).
_CHAINS: Final = frozenset(
    {
        "subexpression",
        "index_expression",
        "projection",
        "filter_projection",
        "value_projection",
        "flatten",
        "pipe",
    }
)

#: Node types whose children are all read from the node's own context.
_SAME_CONTEXT: Final = frozenset(
    {
        "comparator",
        "and_expression",
        "or_expression",
        "not_expression",
        "function_expression",
        "multi_select_list",
        "multi_select_dict",
        "key_val_pair",
    }
)


@attrs.frozen(eq=False)
class Expression:
    """A compiled JMESPath expression, with the roots and steps it reads; equal by its text.

    `located_references` holds one synthetic `Reference` per input and step it reads, located at
    the expression's JSON path, for the graph checks.
    """

    text: str
    path: str
    step_ids: frozenset[str]
    roots: frozenset[str]
    located_references: tuple[tuple[str, Reference], ...] = attrs.field(repr=False)
    _parsed: ParsedResult = attrs.field(repr=False, alias="parsed")

    def __eq__(self, other: object) -> bool:
        """Two expressions are equal when they are written the same."""
        return isinstance(other, Expression) and other.text == self.text

    def __hash__(self) -> int:
        """Hash by the text, as equality is by the text."""
        return hash(self.text)

    def evaluate(self, scope: Mapping[str, Any]) -> Any:
        """The expression's value in `scope` (see `expression_scope`).

        Raises:
            ExpressionError: evaluation failed (a function given a value of the wrong type, an
                ordering of values that cannot be ordered); the message names the expression.
        """
        try:
            return self._parsed.search(scope)
        except (jmespath_errors.JMESPathError, TypeError, ValueError) as error:
            detail = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise ExpressionError(f"{self.path}: {self.text!r} failed: {detail}") from None

    def holds(self, scope: Mapping[str, Any]) -> bool:
        """Whether the expression is true in `scope` by JMESPath's rules.

        false, null, "", [] and {} are false; every other value is true.

        Raises:
            ExpressionError: evaluation failed.
        """
        value = self.evaluate(scope)
        return not (value is None or value is False or value in ("", [], {}))


def compile_expression(
    text: object, path: str, allowed_roots: Iterable[str], problems: list[Problem]
) -> Expression | None:
    """Compile `text` found at `path`; on a problem append it to `problems` and return None.

    `allowed_roots` are the names this field may read (a subset of `SCOPE_ROOTS`).
    """
    if not isinstance(text, str):
        problems.append(Problem(path, f"must be a JMESPath expression (a string), not {text!r}"))
        return None
    if not text.strip():
        problems.append(Problem(path, "must be a JMESPath expression, not an empty string"))
        return None
    try:
        parsed = jmespath.compile(text)
    except jmespath_errors.JMESPathError as error:
        problems.append(Problem(path, _syntax_message(text, error)))
        return None
    except RecursionError:
        # The parser recurses once per nesting level: too deep a text exhausts Python's stack.
        parsed = None
    if parsed is None or _depth(parsed.parsed) > MAX_EXPRESSION_DEPTH:
        problems.append(
            Problem(
                path,
                f"{_shown(text)} nests more than {MAX_EXPRESSION_DEPTH} levels deep"
                f" ({len(text)} characters): split it, or simplify it",
            )
        )
        return None
    reading = _Reading()
    reading.walk(parsed.parsed, at_root=True)
    allowed = frozenset(allowed_roots)
    found: list[Problem] = [
        Problem(path, _root_message(text, name, allowed))
        for name in sorted(reading.roots - allowed)
    ]
    found += [
        Problem(path, f"{_shown(text)} calls unknown function {name}()")
        for name in sorted(reading.functions - _FUNCTION_NAMES)
    ]
    if reading.unnamed_steps and "steps" in allowed:
        found.append(
            Problem(
                path, f"{_shown(text)} reads steps without naming one: write steps.STEP_ID.output"
            )
        )
    found += [
        Problem(
            path, f"{_shown(text)} reads steps.{name} but not its output: write steps.{name}.output"
        )
        for name in sorted(reading.step_paths_without_output)
    ]
    if reading.negated_path:
        found.append(
            Problem(
                path,
                f"{_shown(text)}: '!' binds tighter than '.', so it negates only the first name"
                " of the path and the rest reads null: write !(a.b)",
            )
        )
    if reading.whole_scope:
        found.append(
            Problem(
                path, f"{_shown(text)} reads '@' at the top: name what it reads (inputs, steps...)"
            )
        )
    if found:
        problems.extend(found)
        return None
    located = tuple(
        (path, Reference("steps", step_id, (), f"steps.{step_id}"))
        for step_id in sorted(reading.step_ids)
    ) + tuple(
        (path, Reference("inputs", None, (name,), f"inputs.{name}"))
        for name in sorted(reading.input_names)
    )
    return Expression(
        text=text,
        path=path,
        step_ids=frozenset(reading.step_ids),
        roots=frozenset(reading.roots),
        located_references=located,
        parsed=parsed,
    )


def expression_scope(
    inputs: Mapping[str, Any], outputs: Mapping[str, Any], **local_values: Any
) -> dict[str, Any]:
    """The scope an expression reads: the inputs, `steps.ID.output` of each finished step, locals.

    A step with no output in `outputs` (skipped, or not finished) reads as null.
    """
    scope: dict[str, Any] = {
        "inputs": inputs,
        "steps": {step_id: {"output": output} for step_id, output in outputs.items()},
    }
    scope.update(local_values)
    return scope


def require_version_1_1(version: str, path: str, field: str, problems: list[Problem]) -> None:
    """Refuse `field` (found at `path`) in a document older than the version that introduced it."""
    if version != EXPRESSIVE_VERSION:
        problems.append(
            Problem(
                path,
                f'"{field}" needs schema_version "{EXPRESSIVE_VERSION}" (this document says'
                f' "{version}")',
            )
        )


class _Reading:
    """What an expression reads, gathered by walking its JMESPath syntax tree."""

    def __init__(self) -> None:
        self.roots: set[str] = set()
        self.step_ids: set[str] = set()
        self.input_names: set[str] = set()
        self.functions: set[str] = set()
        self.unnamed_steps = False
        self.whole_scope = False
        self.negated_path = False
        self.step_paths_without_output: set[str] = set()

    def walk(self, node: Mapping[str, Any], *, at_root: bool) -> None:
        """Record the names `node` reads; `at_root`: it is evaluated against the whole scope."""
        kind = node["type"]
        children: list[Any] = node.get("children", [])
        if kind == "field":
            if at_root:
                self.roots.add(node["value"])
                self.unnamed_steps |= node["value"] == "steps"
        elif kind == "current":
            self.whole_scope |= at_root
        elif kind in _CHAINS:
            self._chain(kind, children, at_root=at_root)
        elif kind in _SAME_CONTEXT:
            if kind == "function_expression":
                self.functions.add(node["value"])
            for child in children:
                if isinstance(child, Mapping):
                    self.walk(child, at_root=at_root)
        elif kind == "expref":
            for child in children:
                self.walk(child, at_root=False)

    def _chain(self, kind: str, children: list[Any], *, at_root: bool) -> None:
        """Walk a chain: its first link in this context, the others in the first link's result.

        Only a plain path (`steps.ID...`, `inputs.NAME...`) names a step or an input: a
        projection over `steps` (`steps.*.output`) reads steps without naming one.
        """
        first, rest = children[0], [child for child in children[1:] if isinstance(child, Mapping)]
        # `!a.b` is `(!a).b`: a field of a boolean, always null. Nobody means that.
        self.negated_path |= first["type"] == "not_expression" and bool(rest)
        named = kind == "subexpression" and bool(rest)
        if at_root and first["type"] == "field" and first["value"] in ("steps", "inputs") and named:
            name = _leading_field(rest[0])
            self.roots.add(first["value"])
            if name is None:
                self.unnamed_steps |= first["value"] == "steps"
            elif first["value"] == "steps":
                self.step_ids.add(name)
                after = _leading_field(rest[1]) if len(rest) > 1 else None
                if after != "output":
                    self.step_paths_without_output.add(name)
            else:
                self.input_names.add(name)
        else:
            self.walk(first, at_root=at_root)
        for child in rest:
            self.walk(child, at_root=False)


def _depth(node: Mapping[str, Any]) -> int:
    """How many levels the syntax tree `node` has (walked without recursion)."""
    deepest, pending = 0, [(node, 1)]
    while pending:
        current, depth = pending.pop()
        deepest = max(deepest, depth)
        pending.extend(
            (child, depth + 1)
            for child in current.get("children", ())
            if isinstance(child, Mapping)
        )
    return deepest


def _shown(text: str) -> str:
    """`text` quoted for a message, cut short when it is long."""
    return repr(text) if len(text) <= 80 else repr(text[:77] + "...")


def _leading_field(node: Mapping[str, Any]) -> str | None:
    """The field a chain starts from (`b` in `b[0].c`), or None when it starts otherwise."""
    while node["type"] in _CHAINS:
        node = node["children"][0]
    return str(node["value"]) if node["type"] == "field" else None


def _syntax_message(text: str, error: jmespath_errors.JMESPathError) -> str:
    """The parser's complaint in one line, with a hint for the two common traps."""
    first = str(error).splitlines()[0].removesuffix(", for expression:").rstrip(":")
    # "Parse error ..." reads as a secret `token: value` pair to the redaction
    # of free text (REST problem documents), which would hide the message: say it without it.
    first = first.removeprefix("invalid token: ")
    position = getattr(error, "lex_position", None)
    if "column" not in first and isinstance(position, int):
        # JMESPath counts columns from 0, as its own "Parse error at column N" does.
        first += f" at column {position}"
    return f"{_shown(text)} is not a valid expression: {first}{_syntax_hint(text, error)}"


def _syntax_hint(text: str, error: jmespath_errors.JMESPathError) -> str:
    """What a newcomer most likely meant, for the mistakes JMESPath's message does not explain."""
    kind = str(getattr(error, "token_type", "")).lower()
    position = getattr(error, "lex_position", None)
    if kind == "number":
        written = _NUMBER.match(text, position) if isinstance(position, int) else None
        number = written.group(0) if written else "3"
        return f" (numbers are JSON literals in backticks: `{number}`)"
    if "${" in text:
        return " (an expression is not a template: write steps.ID.output, not ${steps.ID.output})"
    if _WORD_OPERATORS.search(text):
        return " (JMESPath writes and, or and not as &&, || and !)"
    if getattr(error, "token_value", None) == "=":
        return " (equality is ==)"
    return ""


def _root_message(text: str, name: str, allowed: frozenset[str]) -> str:
    """Why `name` cannot be read here, with the roots that can."""
    readable = ", ".join(sorted(allowed)) or "nothing"
    message = f"{_shown(text)} reads '{name}', which is not defined here (it may read {readable})"
    if name in ("true", "false", "null"):
        message += f"; JSON literals are written in backticks: `{name}`"
    elif name not in SCOPE_ROOTS:
        message += "; strings are written in single quotes ('text'), \"text\" names a field"
    return message

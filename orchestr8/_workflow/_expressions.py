"""`${...}` references in workflow documents, compiled once at load time and rendered per step.

A step's `input` and the workflow's `output` are templates: JSON values whose strings may hold
references to the execution inputs (`${inputs.topic}`) or to the output of another step
(`${steps.search.output.items[0].url}`). A string that is exactly one reference takes the
referenced JSON value as is; references inside a longer string are interpolated as text (strings as
they are, everything else JSON-encoded). In a run of `$` signs directly before `{`, each `$$` stands
for one literal `$`, so `$${` writes a literal `${`.

A step's `input` and its agent's `config` may also hold secret references (`${secrets.NAME}`),
which `Template.bind_secrets` replaces by their values before an execution runs (`_secrets`);
the values never reach the journal.

Compiling parses every string once and records the references (for the static checks); rendering
walks the pre-built nodes and builds fresh containers, so agents may mutate their input safely.
One reference's syntax, and how it resolves against inputs and step outputs, is in `_references`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import attrs

from .._errors import Problem, WorkflowValidationError
from .._json import JSON, append_path
from ._references import Reference, parse_reference

_OPENING = re.compile(r"(\$+)\{")


class _Constant:
    """A scalar, or a string without references: rendered as itself."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def render(
        self,
        inputs: Mapping[str, Any],
        step_outputs: Mapping[str, Any],
        local_values: Mapping[str, Any] | None = None,
    ) -> Any:
        return self.value


class _WholeReference:
    """A string that is exactly one reference: rendered as the referenced JSON value."""

    __slots__ = ("reference",)

    def __init__(self, reference: Reference) -> None:
        self.reference = reference

    def render(
        self,
        inputs: Mapping[str, Any],
        step_outputs: Mapping[str, Any],
        local_values: Mapping[str, Any] | None = None,
    ) -> Any:
        return self.reference.resolve(inputs, step_outputs, local_values)


class _Interpolation:
    """A string mixing text and references: rendered as text."""

    __slots__ = ("parts",)

    def __init__(self, parts: tuple[str | Reference, ...]) -> None:
        self.parts = parts

    def render(
        self,
        inputs: Mapping[str, Any],
        step_outputs: Mapping[str, Any],
        local_values: Mapping[str, Any] | None = None,
    ) -> str:
        pieces: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                pieces.append(part)
                continue
            value = part.resolve(inputs, step_outputs, local_values)
            pieces.append(value if isinstance(value, str) else _as_text(value))
        return "".join(pieces)


class _Object:
    """A JSON object: rendered as a fresh dict (keys are never templates)."""

    __slots__ = ("items",)

    def __init__(self, items: tuple[tuple[str, _Node], ...]) -> None:
        self.items = items

    def render(
        self,
        inputs: Mapping[str, Any],
        step_outputs: Mapping[str, Any],
        local_values: Mapping[str, Any] | None = None,
    ) -> Any:
        return {key: node.render(inputs, step_outputs, local_values) for key, node in self.items}


class _Array:
    """A JSON array: rendered as a fresh list."""

    __slots__ = ("nodes",)

    def __init__(self, nodes: tuple[_Node, ...]) -> None:
        self.nodes = nodes

    def render(
        self,
        inputs: Mapping[str, Any],
        step_outputs: Mapping[str, Any],
        local_values: Mapping[str, Any] | None = None,
    ) -> Any:
        return [node.render(inputs, step_outputs, local_values) for node in self.nodes]


_Node = _Constant | _WholeReference | _Interpolation | _Object | _Array


def _bind(node: _Node, secrets: Mapping[str, str]) -> _Node:
    """Replace the secret references below `node` by constants (see `Template.bind_secrets`)."""
    if isinstance(node, _WholeReference):
        name = node.reference.secret_name
        return node if name is None else _Constant(secrets[name])
    if isinstance(node, _Interpolation):
        parts: list[str | Reference] = []
        for part in node.parts:
            name = part.secret_name if isinstance(part, Reference) else None
            piece: str | Reference = part if name is None else secrets[name]
            if isinstance(piece, str) and parts and isinstance(parts[-1], str):
                parts[-1] += piece
            else:
                parts.append(piece)
        if len(parts) == 1 and isinstance(parts[0], str):
            return _Constant(parts[0])
        if len(parts) == 1 and isinstance(parts[0], Reference):
            return _WholeReference(parts[0])
        return _Interpolation(tuple(parts))
    if isinstance(node, _Object):
        return _Object(tuple((key, _bind(item, secrets)) for key, item in node.items))
    if isinstance(node, _Array):
        return _Array(tuple(_bind(item, secrets) for item in node.nodes))
    return node


def _as_text(value: Any) -> str:
    """Interpolate a non-string value as JSON text (null, true, 2.5, {"a": 1})."""
    return json.dumps(value, ensure_ascii=False, default=str)


@attrs.frozen
class Template:
    """A compiled JSON template (a step `input` or the workflow `output`); equal by `source`.

    `source` is the JSON value as written; `located_references` pairs each reference with the
    path suffix of the string holding it (`.prompt`, `[0]`, or `` for the value itself).
    """

    source: Any
    located_references: tuple[tuple[str, Reference], ...] = attrs.field(eq=False, repr=False)
    _node: _Node = attrs.field(eq=False, repr=False, alias="node")

    @property
    def references(self) -> tuple[Reference, ...]:
        """Every reference in the template, in document order."""
        return tuple(reference for _, reference in self.located_references)

    def render(
        self,
        inputs: Mapping[str, Any],
        step_outputs: Mapping[str, Any],
        local_values: Mapping[str, Any] | None = None,
    ) -> Any:
        """Build the concrete value from the inputs and the outputs of finished steps, by step id.

        `local_values` holds the local roots of this run of the step (`item` and `index` for a
        map item, `previous` and `iteration` for a loop iteration).

        Raises:
            ReferenceResolutionError: a reference points at a missing key, an index out of range,
                or into a value that is not a container.
        """
        return self._node.render(inputs, step_outputs, local_values)

    @property
    def secret_names(self) -> frozenset[str]:
        """The names of the secrets this template references (`${secrets.NAME}`)."""
        return frozenset(
            name
            for _, reference in self.located_references
            if (name := reference.secret_name) is not None
        )

    def bind_secrets(self, secrets: Mapping[str, str]) -> Template:
        """Return the template with every `${secrets.NAME}` replaced by `secrets[NAME]` (text).

        The result keeps `source` (what the journal records: the references, not the values);
        a template without secret references is returned as is.

        Raises:
            KeyError: a referenced secret is missing from `secrets`.
        """
        if not self.secret_names:
            return self
        return Template(self.source, self.located_references, _bind(self._node, secrets))


def compile_template(value: JSON, *, path: str = "$") -> Template:
    """Parse every string of a JSON value once, so rendering at run time only walks nodes.

    Args:
        value: the JSON value (dicts, lists, strings, numbers, booleans, None).
        path: the JSON path of the value, used in problem messages.

    Raises:
        WorkflowValidationError: with one problem per malformed reference.
    """
    compiler = _Compiler(path)
    node = compiler.compile(value, "")
    if compiler.problems:
        raise WorkflowValidationError(compiler.problems)
    return Template(value, tuple(compiler.located), node)


def scan_template(
    value: Any, *, path: str = "$"
) -> tuple[tuple[tuple[str, Reference], ...], tuple[Problem, ...]]:
    """Find every well-formed reference (with its absolute path) and every malformed one.

    Unlike `compile_template` this never raises, so a document's static checks can report the
    references that are wrong and the ones that are misplaced in one go.
    """
    compiler = _Compiler(path)
    compiler.compile(value, "")
    located = tuple((path + suffix, reference) for suffix, reference in compiler.located)
    return located, tuple(compiler.problems)


class _Compiler:
    """Builds the nodes of one template, collecting references and problems on the way."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[Problem] = []
        self.located: list[tuple[str, Reference]] = []

    def compile(self, value: Any, suffix: str) -> _Node:
        if isinstance(value, str):
            return self.compile_string(value, suffix) if "${" in value else _Constant(value)
        if isinstance(value, Mapping):
            return _Object(
                tuple(
                    (key, self.compile(item, append_path(suffix, key)))
                    for key, item in value.items()
                )
            )
        if isinstance(value, list | tuple):
            return _Array(
                tuple(
                    self.compile(item, append_path(suffix, index))
                    for index, item in enumerate(value)
                )
            )
        return _Constant(value)

    def compile_string(self, text: str, suffix: str) -> _Node:
        parts: list[str | Reference] = []
        literal: list[str] = []
        position = 0
        malformed = False
        while (opening := _OPENING.search(text, position)) is not None:
            dollars = len(opening.group(1))
            literal.append(text[position : opening.start()] + "$" * (dollars // 2))
            position = opening.end()
            if dollars % 2 == 0:
                literal.append("{")
                continue
            try:
                reference, position = parse_reference(text, position - 2)
            except ValueError as error:
                self.problems.append(Problem(self.path + suffix, str(error)))
                malformed = True
                closing = text.find("}", position)
                position = len(text) if closing < 0 else closing + 1
                continue
            if "".join(literal):
                parts.append("".join(literal))
            literal = []
            parts.append(reference)
            self.located.append((suffix, reference))
        if malformed:
            return _Constant(text)
        if tail := "".join(literal) + text[position:]:
            parts.append(tail)
        if len(parts) == 1 and isinstance(parts[0], Reference):
            return _WholeReference(parts[0])
        if all(isinstance(part, str) for part in parts):
            return _Constant("".join(str(part) for part in parts))
        return _Interpolation(tuple(parts))

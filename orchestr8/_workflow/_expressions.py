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
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Literal, NoReturn

import attrs

from .._errors import Problem, ReferenceResolutionError, WorkflowValidationError
from .._json import JSON, PathSegment, append_path

_OPENING = re.compile(r"(\$+)\{")
_INPUTS_ROOT = re.compile(r"inputs\b(?!-)")
_STEPS_ROOT = re.compile(r"steps\.([A-Za-z_][A-Za-z0-9_-]*)\.output\b(?!-)")
_SECRETS_ROOT = re.compile(r"secrets\b(?!-)")
_SECRET_NAME = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)\s*\}")
_DOTTED_KEY = re.compile(r"\.([A-Za-z0-9_-]+)")
_INDEX = re.compile(r"\[\s*(0|[1-9][0-9]*)\s*\]")
_DOUBLE_QUOTED_KEY = re.compile(r'\[\s*("(?:[^"\\]|\\.)*")\s*\]')
_SINGLE_QUOTED_KEY = re.compile(r"\[\s*'((?:[^'\\]|\\['\\])*)'\s*\]")
_SINGLE_QUOTE_ESCAPE = re.compile(r"\\(['\\])")
_CLOSING = re.compile(r"\s*\}")


def json_type_name(value: object) -> str:
    """Name the JSON type of a value (`an object`, `a string`, ...) for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "an array"
    return f"a {type(value).__name__} (not JSON)"


@attrs.frozen
class Reference:
    """One parsed `${...}` reference: where its value comes from and the path into that value.

    `source` is `inputs` (then `path[0]` is the input name), `steps` (then `step_id` names the
    step and `path` goes into its output) or `secrets` (then `path` is just the secret's name);
    `text` is the reference as written, for messages.
    """

    source: Literal["inputs", "steps", "secrets"]
    step_id: str | None
    path: tuple[PathSegment, ...]
    text: str

    @property
    def input_name(self) -> str | None:
        """The top-level input this reference reads, or None for step outputs and `${inputs}`."""
        if self.source == "inputs" and self.path and isinstance(self.path[0], str):
            return self.path[0]
        return None

    @property
    def secret_name(self) -> str | None:
        """The secret this reference names (`${secrets.NAME}`), or None for other references."""
        return str(self.path[0]) if self.source == "secrets" else None

    def resolve(self, inputs: Mapping[str, Any], step_outputs: Mapping[str, Any]) -> Any:
        """Return the referenced JSON value, or raise `ReferenceResolutionError` naming the gap."""
        if self.step_id is not None:
            if self.step_id not in step_outputs:
                self._fail(f"step '{self.step_id}' has no output")
            value: Any = step_outputs[self.step_id]
        elif self.source == "inputs":
            value = inputs
        else:
            self._fail("secrets are bound before an execution runs; this one was not supplied")
        for position, segment in enumerate(self.path):
            if isinstance(segment, int):
                if not isinstance(value, list | tuple):
                    kind = json_type_name(value)
                    self._fail(f"{self._describe(position)} is {kind}, not an array")
                if segment >= len(value):
                    self._fail(
                        f"index {segment} is out of range for {self._describe(position)}"
                        f" (length {len(value)})"
                    )
            elif not isinstance(value, Mapping):
                self._fail(f"{self._describe(position)} is {json_type_name(value)}, not an object")
            elif segment not in value:
                self._fail(f"{self._describe(position)} has no key '{segment}'")
            value = value[segment]
        return value

    def _fail(self, problem: str) -> NoReturn:
        """Raise the error for this reference, naming it first so the user can find it."""
        raise ReferenceResolutionError(f"{self.text}: {problem}", reference=self.text)

    def _describe(self, length: int) -> str:
        """Spell the first `length` segments of the path, e.g. `steps.search.output.items`."""
        text = "inputs" if self.step_id is None else f"steps.{self.step_id}.output"
        for segment in self.path[:length]:
            text = append_path(text, segment)
        return text


class _Constant:
    """A scalar, or a string without references: rendered as itself."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def render(self, inputs: Mapping[str, Any], step_outputs: Mapping[str, Any]) -> Any:
        return self.value


class _WholeReference:
    """A string that is exactly one reference: rendered as the referenced JSON value."""

    __slots__ = ("reference",)

    def __init__(self, reference: Reference) -> None:
        self.reference = reference

    def render(self, inputs: Mapping[str, Any], step_outputs: Mapping[str, Any]) -> Any:
        return self.reference.resolve(inputs, step_outputs)


class _Interpolation:
    """A string mixing text and references: rendered as text."""

    __slots__ = ("parts",)

    def __init__(self, parts: tuple[str | Reference, ...]) -> None:
        self.parts = parts

    def render(self, inputs: Mapping[str, Any], step_outputs: Mapping[str, Any]) -> str:
        pieces: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                pieces.append(part)
                continue
            value = part.resolve(inputs, step_outputs)
            pieces.append(value if isinstance(value, str) else _as_text(value))
        return "".join(pieces)


class _Object:
    """A JSON object: rendered as a fresh dict (keys are never templates)."""

    __slots__ = ("items",)

    def __init__(self, items: tuple[tuple[str, _Node], ...]) -> None:
        self.items = items

    def render(self, inputs: Mapping[str, Any], step_outputs: Mapping[str, Any]) -> Any:
        return {key: node.render(inputs, step_outputs) for key, node in self.items}


class _Array:
    """A JSON array: rendered as a fresh list."""

    __slots__ = ("nodes",)

    def __init__(self, nodes: tuple[_Node, ...]) -> None:
        self.nodes = nodes

    def render(self, inputs: Mapping[str, Any], step_outputs: Mapping[str, Any]) -> Any:
        return [node.render(inputs, step_outputs) for node in self.nodes]


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

    def render(self, inputs: Mapping[str, Any], step_outputs: Mapping[str, Any]) -> Any:
        """Build the concrete value from the inputs and the outputs of finished steps, by step id.

        Raises:
            ReferenceResolutionError: a reference points at a missing key, an index out of range,
                or into a value that is not a container.
        """
        return self._node.render(inputs, step_outputs)

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


def parse_reference(text: str, start: int = 0) -> tuple[Reference, int]:
    """Parse the reference whose `${` begins at `start`; return it and the index after its `}`.

    Raises:
        ValueError: the reference is malformed; the message quotes it and says what is wrong.
    """
    if not text.startswith("${", start):
        raise ValueError(f"expected '${{' at offset {start}")
    closing = text.find("}", start)
    shown = text[start : closing + 1] if closing >= 0 else text[start:]
    if closing < 0:
        raise ValueError(f"unterminated reference {shown} (missing '}}')")
    position = start + 2
    while text[position].isspace():
        position += 1
    step_id: str | None = None
    if root := _INPUTS_ROOT.match(text, position):
        source: Literal["inputs", "steps", "secrets"] = "inputs"
    elif root := _STEPS_ROOT.match(text, position):
        source, step_id = "steps", root.group(1)
    elif root := _SECRETS_ROOT.match(text, position):
        named = _SECRET_NAME.match(text, root.end())
        if named is None:
            raise ValueError(
                f"invalid reference {shown}: a secret reference is '${{secrets.NAME}}', NAME a "
                "letter or '_' then letters, digits or '_', with nothing after it"
            )
        return Reference("secrets", None, (named.group(1),), text[start : named.end()]), named.end()
    else:
        raise ValueError(
            f"invalid reference {shown}: it must start with 'inputs', 'steps.STEP_ID.output'"
            " or 'secrets'"
        )
    position = root.end()
    path: list[PathSegment] = []
    while not (end := _CLOSING.match(text, position)):
        if segment := _DOTTED_KEY.match(text, position):
            path.append(segment.group(1))
        elif segment := _INDEX.match(text, position):
            path.append(int(segment.group(1)))
        elif segment := _DOUBLE_QUOTED_KEY.match(text, position):
            path.append(json.loads(segment.group(1)))
        elif segment := _SINGLE_QUOTED_KEY.match(text, position):
            path.append(_SINGLE_QUOTE_ESCAPE.sub(r"\1", segment.group(1)))
        else:
            written = text[start + 2 : position].strip()
            if text.find("}", position) < 0:
                raise ValueError(f"unterminated reference {text[start:]} (missing '}}')")
            raise ValueError(
                f"invalid reference {shown}: expected '.key', '[index]', '[\"key\"]' or '}}'"
                f" after '{written}'"
            )
        position = segment.end()
    written = text[start : end.end()]
    return Reference(source, step_id, tuple(path), written), end.end()

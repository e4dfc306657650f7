"""One `${...}` reference: its syntax, parsed into a source and a path, and its resolution.

A reference reads the execution inputs (`${inputs.topic}`), another step's output
(`${steps.search.output.items[0].url}`), a secret (`${secrets.NAME}`) or a value local to one run of
a step: the map item and its position (`${item.url}`, `${index}`) or a loop's previous output and
iteration number (`${previous.draft}`, `${iteration}`). After the root come
`.key`, `[index]`, `["key"]` or `['key']` segments, with blanks allowed around brackets and
before the closing brace. Resolving walks the path through JSON values and names the first gap
(`steps.search.output.items is an object, not an array`). Templates that hold references are in
`_expressions`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Literal, NoReturn, cast

import attrs

from .._errors import ReferenceResolutionError
from .._json import PathSegment, append_path

_INPUTS_ROOT = re.compile(r"inputs\b(?!-)")
_STEPS_ROOT = re.compile(r"steps\.([A-Za-z_][A-Za-z0-9_-]*)\.output\b(?!-)")
_SECRETS_ROOT = re.compile(r"secrets\b(?!-)")
_LOCAL_ROOT = re.compile(r"(item|index|previous|iteration)\b(?!-)")
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


Source = Literal["inputs", "steps", "secrets", "item", "index", "previous", "iteration"]
"""Where a reference's value comes from: its root."""

#: The roots whose values exist only within one run of a step (a map item, a loop iteration).
LOCAL_SOURCES: frozenset[str] = frozenset({"item", "index", "previous", "iteration"})


@attrs.frozen
class Reference:
    """One parsed `${...}` reference: where its value comes from and the path into that value.

    `source` is `inputs` (then `path[0]` is the input name), `steps` (then `step_id` names the
    step and `path` goes into its output), `secrets` (then `path` is just the secret's name) or
    one of `LOCAL_SOURCES` (then `path` goes into that local value); `text` is the reference as
    written, for messages.
    """

    source: Source
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

    def resolve(
        self,
        inputs: Mapping[str, Any],
        step_outputs: Mapping[str, Any],
        local_values: Mapping[str, Any] | None = None,
    ) -> Any:
        """Return the referenced JSON value, or raise `ReferenceResolutionError` naming the gap.

        `local_values` holds the values of the local roots (`item`, `index`, `previous`,
        `iteration`) for the run of the step being rendered.
        """
        if self.step_id is not None:
            if self.step_id not in step_outputs:
                self._fail(f"step '{self.step_id}' has no output")
            value: Any = step_outputs[self.step_id]
        elif self.source == "inputs":
            value = inputs
        elif self.source in LOCAL_SOURCES:
            if local_values is None or self.source not in local_values:
                self._fail(f"'{self.source}' has no value here")
            value = local_values[self.source]
            if value is None and self.source == "previous":
                # A loop's first iteration has no previous output: every path into it is null.
                return None
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
        text = f"steps.{self.step_id}.output" if self.step_id is not None else self.source
        for segment in self.path[:length]:
            text = append_path(text, segment)
        return text


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
    source: Source
    if root := _INPUTS_ROOT.match(text, position):
        source = "inputs"
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
    elif root := _LOCAL_ROOT.match(text, position):
        source = cast(Source, root.group(1))  # one of the four names `_LOCAL_ROOT` matches
    else:
        raise ValueError(
            f"invalid reference {shown}: it must start with 'inputs', 'steps.STEP_ID.output',"
            " 'secrets', 'item', 'index', 'previous' or 'iteration'"
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

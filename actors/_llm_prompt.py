"""Prompt templates of the `llm` agent: JSON messages whose strings hold `${input...}` placeholders.

A placeholder reads the step input: `${input}` is the whole input, `${input.topic}` a key,
`${input.items[0]}` an index, `${input["a key"]}` any key. The path syntax is the one workflow
references use; only the root differs, because a prompt sees the step's (already rendered) input,
not the workflow's `inputs` or other steps. A placeholder is always replaced by text: strings as
they are, every other JSON value JSON-encoded. In a run of `$` signs directly before `{`, each
`$$` stands for one literal `$`, so `$${input}` writes a literal `${input}`.

Templates are compiled when the agent is built, so a malformed placeholder is a configuration
error at validation time; a placeholder the input cannot satisfy is a `PromptInputError` at run
time, which is not retried (the same input would fail again).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, NoReturn

import attrs

from orchestr8 import AgentConfigurationError, BreakerNeutral, NonRetryableError

__all__ = [
    "Placeholder",
    "PromptInputError",
    "PromptTemplate",
    "TextTemplate",
    "as_text",
    "compile_text",
    "messages_from_input",
]

PathSegment = str | int

_OPENING = re.compile(r"(\$+)\{")
_ROOT = re.compile(r"\s*input(?![A-Za-z0-9_-])")
_DOTTED_KEY = re.compile(r"\.([A-Za-z0-9_-]+)")
_INDEX = re.compile(r"\[\s*(0|[1-9][0-9]*)\s*\]")
_DOUBLE_QUOTED_KEY = re.compile(r'\[\s*("(?:[^"\\]|\\.)*")\s*\]')
_SINGLE_QUOTED_KEY = re.compile(r"\[\s*'((?:[^'\\]|\\['\\])*)'\s*\]")
_SINGLE_QUOTE_ESCAPE = re.compile(r"\\(['\\])")
_CLOSING = re.compile(r"\s*\}")
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ROLES = ("user", "assistant")


class PromptInputError(NonRetryableError, BreakerNeutral):
    """The step input lacks what a prompt placeholder asks for, or cannot make a prompt at all."""


def _describe(path: tuple[PathSegment, ...]) -> str:
    text = "input"
    for segment in path:
        if isinstance(segment, int):
            text += f"[{segment}]"
        elif _PLAIN_KEY.match(segment):
            text += f".{segment}"
        else:
            text += f"[{json.dumps(segment)}]"
    return text


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    return "an object" if isinstance(value, Mapping) else type(value).__name__


def as_text(value: Any) -> str:
    """The text a placeholder becomes: a string as it is, any other JSON value as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


@attrs.frozen
class Placeholder:
    """One `${input...}` placeholder: the path into the step input, and the text as written."""

    path: tuple[PathSegment, ...]
    text: str

    def resolve(self, value: Any) -> Any:
        """Return the value at `path` in the step input `value`.

        Raises:
            PromptInputError: a key is missing, an index is out of range, or the path goes into
                a value that is not a container; the message names the placeholder.
        """
        for position, segment in enumerate(self.path):
            where = _describe(self.path[:position])
            if isinstance(segment, int):
                if not isinstance(value, list | tuple):
                    self._fail(f"{where} is {_kind(value)}, not an array")
                if segment >= len(value):
                    self._fail(f"index {segment} is out of range for {where} (length {len(value)})")
            elif not isinstance(value, Mapping):
                self._fail(f"{where} is {_kind(value)}, not an object")
            elif segment not in value:
                keys = ", ".join(repr(str(key)) for key in list(value)[:10]) or "none"
                self._fail(f"{where} has no key {segment!r} (its keys: {keys})")
            value = value[segment]
        return value

    def _fail(self, problem: str) -> NoReturn:
        raise PromptInputError(f"prompt placeholder {self.text}: the step {problem}")


@attrs.frozen
class TextTemplate:
    """A string with placeholders, rendered as text."""

    parts: tuple[str | Placeholder, ...]

    def render(self, value: Any) -> str:
        """Fill every placeholder from the step input `value`."""
        return "".join(
            part if isinstance(part, str) else as_text(part.resolve(value)) for part in self.parts
        )


def _parse_placeholder(text: str, start: int) -> tuple[Placeholder, int]:
    """Parse the placeholder whose `${` begins at `start`; return it and the index after it."""
    closing = text.find("}", start)
    shown = text[start : closing + 1] if closing >= 0 else text[start:]
    if closing < 0:
        raise ValueError(f"unterminated placeholder {shown} (missing '}}')")
    root = _ROOT.match(text, start + 2)
    if root is None:
        raise ValueError(
            f"invalid placeholder {shown}: prompt placeholders start with 'input' (the step's "
            "input), e.g. ${input.topic}; workflow references such as ${inputs...} or "
            "${steps...} belong in the step's input"
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
            raise ValueError(
                f"invalid placeholder {shown}: expected '.key', '[index]', '[\"key\"]' or '}}'"
                f" after '{written}'"
            )
        position = segment.end()
    return Placeholder(tuple(path), text[start : end.end()]), end.end()


def compile_text(text: str) -> str | TextTemplate:
    """Compile a string: itself when it holds no placeholder, else a `TextTemplate`.

    Raises:
        ValueError: a placeholder is malformed; the message quotes it.
    """
    if "${" not in text:
        return text
    parts: list[str | Placeholder] = []
    literal: list[str] = []
    position = 0
    while (opening := _OPENING.search(text, position)) is not None:
        dollars = len(opening.group(1))
        literal.append(text[position : opening.start()] + "$" * (dollars // 2))
        position = opening.end()
        if dollars % 2 == 0:
            literal.append("{")
            continue
        placeholder, position = _parse_placeholder(text, position - 2)
        if literal:
            parts.append("".join(literal))
            literal = []
        parts.append(placeholder)
    tail = "".join(literal) + text[position:]
    if tail:
        parts.append(tail)
    if all(isinstance(part, str) for part in parts):
        return "".join(str(part) for part in parts)
    return TextTemplate(tuple(parts))


def _compile_value(value: Any, path: str) -> Any:
    """Compile every string in a JSON value (a message's content: a string or content blocks)."""
    if isinstance(value, str):
        try:
            return compile_text(value)
        except ValueError as error:
            raise AgentConfigurationError(f"{path}: {error}") from None
    if isinstance(value, Mapping):
        return {key: _compile_value(item, f"{path}.{key}") for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_compile_value(item, f"{path}[{index}]") for index, item in enumerate(value)]
    return value


def _render_value(node: Any, value: Any) -> Any:
    if isinstance(node, TextTemplate):
        return node.render(value)
    if isinstance(node, dict):
        return {key: _render_value(item, value) for key, item in node.items()}
    if isinstance(node, list):
        return [_render_value(item, value) for item in node]
    return node


@attrs.frozen
class PromptTemplate:
    """The compiled `prompt` config: the messages to send, with placeholders to fill per call."""

    messages: tuple[tuple[str, Any], ...]
    """Pairs of role and compiled content."""

    @classmethod
    def compile(cls, prompt: Any) -> PromptTemplate:
        """Compile a `prompt` config value: a string (one user message) or a list of messages.

        Raises:
            AgentConfigurationError: the value has the wrong shape or a malformed placeholder.
        """
        if isinstance(prompt, str):
            return cls((("user", _compile_value(prompt, "prompt")),))
        if not isinstance(prompt, list) or not prompt:
            raise AgentConfigurationError(
                "prompt must be a string (one user message) or a non-empty list of "
                '{"role", "content"} messages'
            )
        messages: list[tuple[str, Any]] = []
        for index, message in enumerate(prompt):
            where = f"prompt[{index}]"
            if not isinstance(message, Mapping) or set(message) != {"role", "content"}:
                raise AgentConfigurationError(
                    f"{where} must be an object with exactly the keys 'role' and 'content'"
                )
            role, content = message["role"], message["content"]
            if role not in _ROLES:
                hint = " (put system text in the 'system' config key)" if role == "system" else ""
                raise AgentConfigurationError(
                    f"{where}.role must be 'user' or 'assistant', got {role!r}{hint}"
                )
            if not isinstance(content, str) and not (
                isinstance(content, list) and all(isinstance(block, Mapping) for block in content)
            ):
                raise AgentConfigurationError(
                    f"{where}.content must be a string or a list of content-block objects"
                )
            messages.append((role, _compile_value(content, f"{where}.content")))
        return cls(tuple(messages))

    def render(self, value: Any) -> list[dict[str, Any]]:
        """Build the API's `messages` from the step input `value`.

        Raises:
            PromptInputError: a placeholder cannot be filled from `value`.
        """
        return [
            {"role": role, "content": _render_value(content, value)}
            for role, content in self.messages
        ]


def messages_from_input(value: Any) -> list[dict[str, Any]]:
    """The messages of an agent without a `prompt`: the input is the user message.

    The input is a string, or an object whose string `prompt` is the message.

    Raises:
        PromptInputError: the input is neither.
    """
    if isinstance(value, Mapping) and isinstance(value.get("prompt"), str):
        value = value["prompt"]
    if not isinstance(value, str):
        shape = (
            "an object without a string 'prompt'" if isinstance(value, Mapping) else _kind(value)
        )
        raise PromptInputError(
            "the llm agent has no 'prompt' config, so its step input must be the user message: "
            f"a string, or an object with a string 'prompt'; got {shape}"
        )
    return [{"role": "user", "content": value}]

"""Prompt template files: a versioned prompt with declared variables, examples and expectations.

A template is a JSON file (canonical), an XML file (`_template_xml` reads it into the same
document) or an inline object. It declares its `variables`; its `system` and `messages` texts
hold `${vars.NAME}` placeholders (`$${` writes a literal `${`). Everything is checked when it is
loaded: a placeholder naming an undeclared variable, an example missing a variable, a bad
`output_schema` or `expect` is a `TemplateError` naming the file and the JSON path (or, for XML,
the line). Rendering fills the placeholders, escaped for the template's `format`:

- `text`: a string as it is, any other value as JSON;
- `xml`: the same text with `& < > " '` written as entities (and characters XML cannot hold
  as U+FFFD), so a value stays text inside its element whatever it contains;
- `json`: the text JSON-escaped, for placeholders inside JSON strings (checked at load: every
  text holding a placeholder must be JSON once filled), so a value stays inside its string.

A declared variable without a value and without a default fails the render with
`TemplateInputError` (not retried). `provenance()` is what every `llm.called` journals, so runs
of the same template stay comparable: the path, the `version`, and the sha256 of the file's
bytes (of the canonical JSON of an inline template).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

from .._errors import TemplateError, TemplateInputError
from .._json import (
    JSON,
    append_path,
    escape_lone_surrogates,
    json_value_problems,
    parse_strict,
)
from ._chat import ChatMessage, Role
from ._checkers import JsonSchemaCheck
from ._scoring import Expectations, compile_expect

__all__ = [
    "TEMPLATE_FORMATS",
    "PromptTemplateFile",
    "RenderedPrompt",
    "TemplateVariable",
    "as_text",
    "escape_json_string",
    "escape_xml",
    "load_template",
]

#: How placeholder values are escaped, by the template's `format`.
TEMPLATE_FORMATS = ("text", "json", "xml")
_KEYS = frozenset(
    {
        "description",
        "examples",
        "expect",
        "format",
        "messages",
        "name",
        "output_schema",
        "system",
        "variables",
        "version",
    }
)
_VARIABLE_KEYS = frozenset({"default", "description", "type"})
_TYPES: Mapping[str, Callable[[Any], bool]] = {
    "array": lambda value: isinstance(value, list),
    "boolean": lambda value: isinstance(value, bool),
    "integer": lambda value: isinstance(value, int) and not isinstance(value, bool),
    "number": lambda value: isinstance(value, int | float) and not isinstance(value, bool),
    "object": lambda value: isinstance(value, Mapping),
    "string": lambda value: isinstance(value, str),
}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPENING = re.compile(r"(\$+)\{")
_PLACEHOLDER = re.compile(r"\{\s*vars\.([A-Za-z_][A-Za-z0-9_]*)\s*\}")
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_XML_ENTITIES = {
    "&": "&amp;",
    "<": "&lt;",
    ">": "&gt;",
    '"': "&quot;",
    "'": "&apos;",
    "\r": "&#13;",
}
_XML_SPECIAL = re.compile("[&<>\"'\r]")


@attrs.frozen
class TemplateVariable:
    """A declared variable: its description, optional JSON type and optional default."""

    name: str
    description: str = ""
    type: str | None = None
    default: Any = None
    has_default: bool = False


@attrs.frozen
class RenderedPrompt:
    """A filled template: the system text, the messages (examples first) and the reply schema."""

    system: str | None
    messages: tuple[ChatMessage, ...]
    json_schema: Mapping[str, Any] | None


def as_text(value: Any) -> str:
    """The text a value becomes in a prompt: a string as it is, any other JSON value as JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def escape_xml(text: str) -> str:
    """Write `text` as XML character data: the five specials (and CR) as entities, the rest kept.

    A carriage return is written `&#13;`, so a parser's line-end normalisation keeps it;
    characters XML 1.0 cannot hold at all (most control characters) become U+FFFD.
    """
    text = _NOT_XML.sub("\ufffd", text)
    return _XML_SPECIAL.sub(lambda match: _XML_ENTITIES[match.group()], text)


def escape_json_string(text: str) -> str:
    """Write `text` as the inside of a JSON string (quotes, backslashes, controls escaped)."""
    return json.dumps(text, ensure_ascii=False)[1:-1]


_ESCAPES: Mapping[str, Callable[[str], str]] = {
    "text": lambda text: text,
    "xml": escape_xml,
    "json": escape_json_string,
}


@attrs.frozen
class _Text:
    """A compiled text: literal parts and the names of the variables between them."""

    parts: tuple[str | tuple[str], ...]

    def names(self) -> set[str]:
        return {part[0] for part in self.parts if isinstance(part, tuple)}

    def fill(self, values: Mapping[str, Any], escape: Callable[[str], str]) -> str:
        return "".join(
            part if isinstance(part, str) else escape(as_text(values[part[0]]))
            for part in self.parts
        )


def _compile_text(text: str) -> _Text:
    """Split `text` at its `${vars.NAME}` placeholders; `$$` before `{` is one literal `$`.

    Raises:
        ValueError: a placeholder is malformed; the message quotes it.
    """
    parts: list[str | tuple[str]] = []
    literal: list[str] = []
    position = 0
    while (opening := _OPENING.search(text, position)) is not None:
        dollars = len(opening.group(1))
        literal.append(text[position : opening.start()] + "$" * (dollars // 2))
        position = opening.end()
        if dollars % 2 == 0:
            literal.append("{")
            continue
        placeholder = _PLACEHOLDER.match(text, position - 1)
        if placeholder is None:
            closing = text.find("}", position)
            shown = text[position - 2 : closing + 1] if closing >= 0 else text[position - 2 :]
            raise ValueError(
                f"invalid placeholder {shown}: a template placeholder is ${{vars.NAME}}, NAME a "
                "declared variable (write $${ for a literal ${)"
            )
        parts += ["".join(literal), (placeholder.group(1),)]
        literal = []
        position = placeholder.end()
    parts.append("".join(literal) + text[position:])
    return _Text(tuple(part for part in parts if part != ""))


class _Locator:
    """Turns a JSON path in a template document into the place a person looks it up."""

    def __init__(self, shown: str, lines: Mapping[str, int] | None) -> None:
        self.shown = shown
        self.lines = lines

    def error(self, path: str, problem: str) -> TemplateError:
        if self.lines is None:
            return TemplateError(f"template {self.shown}: {path}: {problem}")
        prefix = path
        while prefix not in self.lines and len(prefix) > 1:
            prefix = re.sub(r"(\.[^.\[]*|\[[^\]]*\])$", "", prefix) or "$"
        line = self.lines.get(prefix, 1)
        return TemplateError(f"template {self.shown} line {line}: {problem}")


def _variables(value: Any, locate: _Locator) -> dict[str, TemplateVariable]:
    if not isinstance(value, Mapping):
        raise locate.error("$.variables", "must be an object of variable declarations")
    declared = {}
    for name, spec in value.items():
        where = append_path("$.variables", name)
        if not _NAME.fullmatch(name):
            raise locate.error(where, f"{name!r} is not a variable name (letters, digits, _)")
        if not isinstance(spec, Mapping):
            raise locate.error(where, 'must be an object such as {"description": "..."}')
        unknown = sorted(set(spec) - _VARIABLE_KEYS)
        if unknown:
            known = ", ".join(sorted(_VARIABLE_KEYS))
            raise locate.error(where, f"unknown key {unknown[0]!r} (known: {known})")
        description = spec.get("description", "")
        if not isinstance(description, str):
            raise locate.error(f"{where}.description", "must be a string")
        kind = spec.get("type")
        if kind is not None and kind not in _TYPES:
            raise locate.error(f"{where}.type", f"must be one of {', '.join(sorted(_TYPES))}")
        if "default" in spec and kind is not None and not _TYPES[kind](spec["default"]):
            raise locate.error(f"{where}.default", f"is not of the declared type {kind}")
        declared[name] = TemplateVariable(
            name, description, kind, spec.get("default"), "default" in spec
        )
    return declared


def _string(document: Mapping[str, Any], key: str, locate: _Locator, required: bool) -> str | None:
    value = document.get(key)
    if value is None:
        if required:
            raise locate.error(f"$.{key}", "is required: a non-empty string")
        return None
    if not isinstance(value, str) or not value.strip():
        raise locate.error(f"$.{key}", f"must be a non-empty string, got {value!r}")
    return value


class PromptTemplateFile:
    """A loaded, checked template: render it with variable values, journal its provenance."""

    def __init__(
        self, document: Any, *, path: str | None, sha256: str, lines: Mapping[str, int] | None
    ) -> None:
        """Check `document` (a template object) and compile its texts.

        Raises:
            TemplateError: the first problem, with the file and JSON path (or line).
        """
        locate = _Locator(path or "(inline)", lines)
        self.path = path
        self.sha256 = sha256
        if not isinstance(document, Mapping):
            raise locate.error("$", "a template must be a JSON object")
        unknown = sorted(set(document) - _KEYS)
        if unknown:
            known = ", ".join(sorted(_KEYS))
            raise locate.error(append_path("$", unknown[0]), f"unknown key (known: {known})")
        self.version: str = _string(document, "version", locate, required=True) or ""
        self.name: str | None = _string(document, "name", locate, required=False)
        self.format: str = document.get("format", "text")
        if self.format not in TEMPLATE_FORMATS:
            raise locate.error("$.format", f"must be one of {', '.join(TEMPLATE_FORMATS)}")
        self._escape = _ESCAPES[self.format]
        self.variables = _variables(document.get("variables", {}), locate)
        system = _string(document, "system", locate, required=False)
        self._system = None if system is None else self._compile(system, "$.system", locate)
        self._messages = self._compile_messages(document.get("messages"), locate)
        self.output_schema: Mapping[str, Any] | None = None
        if "output_schema" in document:
            try:
                self.output_schema = JsonSchemaCheck(document["output_schema"]).schema
            except ValueError as error:
                raise locate.error("$.output_schema", str(error)) from None
        self.expect: Expectations | None = None
        if "expect" in document:
            try:
                self.expect = compile_expect(document["expect"], "$.expect")
            except TemplateError as error:
                path, _, problem = str(error).partition(": ")
                raise locate.error(path, problem) from None
        self._examples = self._compile_examples(document.get("examples", []), locate)

    def _compile(self, text: str, where: str, locate: _Locator) -> _Text:
        try:
            compiled = _compile_text(text)
        except ValueError as error:
            raise locate.error(where, str(error)) from None
        undeclared = sorted(compiled.names() - set(self.variables))
        if undeclared:
            known = ", ".join(sorted(self.variables)) or "none"
            raise locate.error(
                where,
                f"placeholder ${{vars.{undeclared[0]}}} names an undeclared variable "
                f"(declared: {known})",
            )
        if self.format == "json" and compiled.names():
            filled = compiled.fill(dict.fromkeys(compiled.names(), "x"), escape_json_string)
            try:
                json.loads(filled)
            except ValueError as error:
                raise locate.error(
                    where,
                    f"a json-format text must be JSON once filled, with every placeholder "
                    f"inside a JSON string ({error})",
                ) from None
        return compiled

    def _compile_messages(self, value: Any, locate: _Locator) -> tuple[tuple[Role, _Text], ...]:
        if not isinstance(value, list) or not value:
            raise locate.error("$.messages", 'is required: a non-empty list of {"role", "content"}')
        messages: list[tuple[Role, _Text]] = []
        for index, message in enumerate(value):
            where = f"$.messages[{index}]"
            if not isinstance(message, Mapping) or set(message) != {"role", "content"}:
                raise locate.error(where, "must be an object with exactly 'role' and 'content'")
            if message["role"] not in ("user", "assistant"):
                hint = " (system text goes in 'system')" if message["role"] == "system" else ""
                raise locate.error(f"{where}.role", f"must be 'user' or 'assistant'{hint}")
            if not isinstance(message["content"], str):
                raise locate.error(f"{where}.content", "must be a string")
            content = self._compile(message["content"], f"{where}.content", locate)
            messages.append((message["role"], content))
        if not any(role == "user" for role, _ in messages):
            raise locate.error("$.messages", "needs at least one user message")
        return tuple(messages)

    def _compile_examples(self, value: Any, locate: _Locator) -> tuple[ChatMessage, ...]:
        """Render the few-shot examples once: each a user message and the assistant's answer."""
        if not isinstance(value, list):
            raise locate.error("$.examples", 'must be a list of {"input", "output"} objects')
        user = [text for role, text in self._messages if role == "user"][-1]
        messages: list[ChatMessage] = []
        for index, example in enumerate(value):
            where = f"$.examples[{index}]"
            if not isinstance(example, Mapping) or set(example) != {"input", "output"}:
                raise locate.error(where, "must be an object with exactly 'input' and 'output'")
            if not isinstance(example["input"], Mapping):
                raise locate.error(f"{where}.input", "must be an object of variable values")
            for name in example["input"]:
                if name not in self.variables:
                    known = ", ".join(sorted(self.variables)) or "none"
                    raise locate.error(
                        append_path(f"{where}.input", name),
                        f"names an undeclared variable (declared: {known})",
                    )
            try:
                values = self._values(example["input"])
            except TemplateInputError as error:
                raise locate.error(f"{where}.input", str(error)) from None
            output = example["output"]
            messages += [
                ChatMessage(role="user", content=user.fill(values, self._escape)),
                ChatMessage(role="assistant", content=as_text(output)),
            ]
        return tuple(messages)

    def _values(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Every declared variable's value: given, else its default.

        Raises:
            TemplateInputError: a variable has neither, or its value is of the wrong type.
        """
        values = {}
        for name, variable in self.variables.items():
            if name in given:
                value = given[name]
            elif variable.has_default:
                value = variable.default
            else:
                about = f" ({variable.description})" if variable.description else ""
                keys = ", ".join(sorted(map(str, given))) or "none"
                raise TemplateInputError(
                    f"template {self._label()}: variable {name!r}{about} has no value and no "
                    f"default (the values given: {keys})"
                )
            if variable.type is not None and not _TYPES[variable.type](value):
                raise TemplateInputError(
                    f"template {self._label()}: variable {name!r} must be of type "
                    f"{variable.type}, got {json.dumps(value, default=str)[:80]}"
                )
            values[name] = value
        return values

    def _label(self) -> str:
        return self.path or repr(self.name or "(inline)")

    def render(self, variables: Mapping[str, Any]) -> RenderedPrompt:
        """Fill the template from `variables` (extra keys are ignored), examples first.

        Raises:
            TemplateInputError: a declared variable has no value and no default, or a value of
                the wrong type (not retried: the same values would fail again).
        """
        values = self._values(variables)
        system = None if self._system is None else self._system.fill(values, self._escape)
        messages = self._examples + tuple(
            ChatMessage(role=role, content=text.fill(values, self._escape))
            for role, text in self._messages
        )
        return RenderedPrompt(system, messages, self.output_schema)

    def provenance(self) -> dict[str, JSON]:
        """What every `llm.called` journals: `path` (None inline), `version` and `sha256`."""
        return {"path": self.path, "version": self.version, "sha256": self.sha256}

    def __repr__(self) -> str:
        """Name the template by its path (or name) and version."""
        return f"<PromptTemplateFile {self._label()} version={self.version!r}>"


def _read_json(data: bytes, shown: str) -> Any:
    try:
        document, duplicates = parse_strict(data.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise TemplateError(f"template {shown}: not UTF-8 text ({error.reason})") from None
    except json.JSONDecodeError as error:
        raise TemplateError(
            f"template {shown} line {error.lineno} column {error.colno}: not JSON: {error.msg}"
        ) from None
    except (ValueError, RecursionError) as error:
        raise TemplateError(f"template {shown}: not strict JSON: {error}") from None
    problems = json_value_problems(document, duplicates=duplicates)
    if problems:
        raise TemplateError(f"template {shown}: {problems[0].path}: {problems[0].message}")
    return document


def load_template(
    source: str | os.PathLike[str] | Mapping[str, Any], *, directory: Path | None = None
) -> PromptTemplateFile:
    """Load a template file (`.json` or `.xml`) or an inline template object, and check it.

    A relative path is resolved against `directory` (the workflow file's directory); without
    one a relative path is refused, since a workflow submitted without a file has no place to
    resolve it from.

    Raises:
        TemplateError: the file cannot be read or is unusable; the message names the file and
            the JSON path (the line, for XML) of the first problem.
    """
    if isinstance(source, Mapping):
        problems = json_value_problems(source)
        if problems:
            raise TemplateError(f"template (inline): {problems[0].path}: {problems[0].message}")
        canonical = json.dumps(source, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        digest = hashlib.sha256(escape_lone_surrogates(canonical).encode()).hexdigest()
        return PromptTemplateFile(source, path=None, sha256=digest, lines=None)
    shown = os.fspath(source)
    path = Path(shown)
    if not path.is_absolute():
        if directory is None:
            raise TemplateError(
                f"template {shown}: a relative path needs the workflow file's directory, and "
                "this workflow has no file (it was given as a document or JSON text): use an "
                "absolute path or an inline template object"
            )
        path = directory / path
    suffix = path.suffix.lower()
    if suffix not in (".json", ".xml"):
        raise TemplateError(f"template {shown}: the file must end in .json or .xml")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise TemplateError(f"template {shown}: cannot be read: {error.strerror}") from None
    digest = hashlib.sha256(data).hexdigest()
    if suffix == ".xml":
        from ._template_xml import read_xml_template

        document, lines = read_xml_template(data, shown)
        return PromptTemplateFile(document, path=shown, sha256=digest, lines=lines)
    return PromptTemplateFile(_read_json(data, shown), path=shown, sha256=digest, lines=None)

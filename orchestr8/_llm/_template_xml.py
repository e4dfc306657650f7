"""XML template files: read into the same document a JSON template is, with each part's line.

The format (every element directly under `<template>`, in any order; the reference is
docs/llm.md, "Prompt templates")::

    <template name="brief" version="1.0" format="xml">
      <description>What the template is for.</description>
      <variable name="topic" type="string">What the brief is about.</variable>
      <variable name="words" type="integer" default="150">The length.</variable>
      <system>You write briefs.</system>
      <message role="user"><![CDATA[<topic>${vars.topic}</topic>]]></message>
      <example>
        <input name="topic">tea</input>
        <output>Tea is ...</output>
      </example>
      <output_schema>{"type": "object"}</output_schema>
      <expect>{"constraints": {"max_words": 200}}</expect>
    </template>

Texts (`system`, `message`, `output`, `description`) are the element's character data, dedented
and stripped; markup meant for the prompt goes inside `<![CDATA[ ... ]]>` (or as entities),
since a child element there is refused. A `default` or an example `input` of a variable whose
`type` is not `string` is read as JSON (`default="150"` is the number 150). `output_schema` and
`expect` hold JSON. A DOCTYPE (and so any entity declaration) is refused: a template never
expands entities it defines. Every problem names the line.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Mapping
from typing import Any
from xml.parsers import expat

import attrs

from .._errors import TemplateError
from .._json import append_path

__all__ = ["read_xml_template"]

_ATTRIBUTES: Mapping[str, frozenset[str]] = {
    "template": frozenset({"name", "version", "format"}),
    "description": frozenset(),
    "variable": frozenset({"name", "type", "default"}),
    "system": frozenset(),
    "message": frozenset({"role"}),
    "example": frozenset(),
    "input": frozenset({"name"}),
    "output": frozenset(),
    "output_schema": frozenset(),
    "expect": frozenset(),
}
_CHILDREN: Mapping[str, frozenset[str]] = {
    "template": frozenset(
        {"description", "variable", "system", "message", "example", "output_schema", "expect"}
    ),
    "example": frozenset({"input", "output"}),
}


@attrs.define
class _Element:
    tag: str
    attributes: dict[str, str]
    line: int
    children: list[_Element] = attrs.Factory(list)
    text: list[str] = attrs.Factory(list)

    def content(self) -> str:
        return textwrap.dedent("".join(self.text)).strip()


class _Reader:
    """Builds the element tree with expat, refusing DOCTYPEs and unknown elements as it goes."""

    def __init__(self, shown: str) -> None:
        self.shown = shown
        self.parser = expat.ParserCreate()
        self.parser.StartElementHandler = self._start
        self.parser.EndElementHandler = self._end
        self.parser.CharacterDataHandler = self._text
        self.parser.StartDoctypeDeclHandler = self._doctype
        self.stack: list[_Element] = []
        self.root: _Element | None = None

    def error(self, line: int, problem: str) -> TemplateError:
        return TemplateError(f"template {self.shown} line {line}: {problem}")

    def _start(self, tag: str, attributes: dict[str, str]) -> None:
        line = self.parser.CurrentLineNumber
        parent = self.stack[-1] if self.stack else None
        if parent is None and tag != "template":
            raise self.error(line, f"the root element must be <template>, not <{tag}>")
        if parent is not None:
            allowed = _CHILDREN.get(parent.tag, frozenset())
            if tag not in allowed:
                if not allowed:
                    raise self.error(
                        line,
                        f"<{parent.tag}> holds the element <{tag}>; write markup meant for the "
                        "prompt inside <![CDATA[ ... ]]>",
                    )
                known = ", ".join(f"<{name}>" for name in sorted(allowed))
                raise self.error(line, f"<{tag}> is not allowed in <{parent.tag}> ({known})")
        unknown = sorted(set(attributes) - _ATTRIBUTES[tag])
        if unknown:
            known = ", ".join(sorted(_ATTRIBUTES[tag])) or "none"
            raise self.error(line, f"<{tag}> has no attribute {unknown[0]!r} (known: {known})")
        element = _Element(tag, dict(attributes), line)
        if parent is None:
            self.root = element
        else:
            parent.children.append(element)
        self.stack.append(element)

    def _end(self, tag: str) -> None:
        self.stack.pop()

    def _text(self, text: str) -> None:
        if self.stack:
            self.stack[-1].text.append(text)

    def _doctype(self, *_: Any) -> None:
        raise self.error(self.parser.CurrentLineNumber, "a template may not have a DOCTYPE")

    def read(self, data: bytes) -> _Element:
        try:
            self.parser.Parse(data, True)
        except expat.ExpatError as error:
            problem = expat.errors.messages[error.code]
            raise self.error(error.lineno, f"not well-formed XML: {problem}") from None
        assert self.root is not None
        return self.root


def _typed(value: str, kind: str | None, line: int, reader: _Reader) -> Any:
    """A value written in an attribute or as text: JSON unless the variable is a string."""
    if kind in (None, "string"):
        return value
    try:
        return json.loads(value)
    except ValueError:
        raise reader.error(line, f"{value!r} is not JSON, as a {kind} value must be") from None


def _json_text(element: _Element, reader: _Reader) -> Any:
    try:
        return json.loads(element.content())
    except ValueError as error:
        raise reader.error(element.line, f"<{element.tag}> must hold JSON: {error}") from None


def _required(element: _Element, attribute: str, reader: _Reader) -> str:
    if attribute not in element.attributes:
        raise reader.error(element.line, f"<{element.tag}> needs the attribute {attribute!r}")
    return element.attributes[attribute]


def read_xml_template(data: bytes, shown: str) -> tuple[dict[str, Any], dict[str, int]]:
    """Read an XML template into a template document and the line of each JSON path in it.

    Raises:
        TemplateError: the XML is malformed, has a DOCTYPE, or an element or attribute the
            format does not have; the message names the file and the line.
    """
    reader = _Reader(shown)
    root = reader.read(data)
    document: dict[str, Any] = {
        key: value for key, value in root.attributes.items() if key in ("name", "version", "format")
    }
    lines = {"$": root.line, "$.name": root.line, "$.version": root.line, "$.format": root.line}
    variables: dict[str, Any] = {}
    kinds: dict[str, str | None] = {}
    messages: list[dict[str, str]] = []
    examples: list[dict[str, Any]] = []
    # Variables first, so an example reads its values by their declared types wherever it is.
    for element in sorted(root.children, key=lambda element: element.tag != "variable"):
        if element.tag in ("description", "system", "output_schema", "expect"):
            if element.tag in document:
                raise reader.error(element.line, f"<{element.tag}> appears twice")
            single = element.tag in ("description", "system")
            document[element.tag] = element.content() if single else _json_text(element, reader)
            lines[f"$.{element.tag}"] = element.line
        elif element.tag == "variable":
            name = _required(element, "name", reader)
            where = append_path("$.variables", name)
            if name in variables:
                raise reader.error(element.line, f"the variable {name!r} is declared twice")
            spec: dict[str, Any] = {"description": element.content()}
            kind = kinds[name] = element.attributes.get("type")
            if kind is not None:
                spec["type"] = kind
            if "default" in element.attributes:
                spec["default"] = _typed(element.attributes["default"], kind, element.line, reader)
            variables[name] = spec
            lines[where] = element.line
        elif element.tag == "message":
            lines[f"$.messages[{len(messages)}]"] = element.line
            messages.append(
                {"role": _required(element, "role", reader), "content": element.content()}
            )
        else:
            where = f"$.examples[{len(examples)}]"
            lines[where] = element.line
            inputs: dict[str, Any] = {}
            outputs = [child for child in element.children if child.tag == "output"]
            if len(outputs) != 1:
                raise reader.error(element.line, "an <example> needs exactly one <output>")
            for child in element.children:
                if child.tag == "input":
                    name = _required(child, "name", reader)
                    kind = kinds.get(name)
                    inputs[name] = _typed(child.content(), kind, child.line, reader)
                    lines[append_path(f"{where}.input", name)] = child.line
            examples.append({"input": inputs, "output": outputs[0].content()})
    if variables:
        document["variables"] = variables
    lines["$.variables"] = root.line
    document["messages"] = messages
    lines["$.messages"] = root.line
    if examples:
        document["examples"] = examples
    return document, lines

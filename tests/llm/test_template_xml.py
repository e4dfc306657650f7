"""XML template files: the same template as JSON, with every problem located by its line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from orchestr8._errors import TemplateError
from orchestr8._llm._template_xml import read_xml_template
from orchestr8._llm._templates import load_template

BRIEF = b"""<?xml version="1.0" encoding="utf-8"?>
<template name="brief" version="1.0" format="xml">
  <description>A short brief.</description>
  <example>
    <input name="topic">tea</input>
    <input name="words">20</input>
    <output>Tea is a leaf.</output>
  </example>
  <variable name="topic" type="string">What the brief is about.</variable>
  <variable name="words" type="integer" default="150">How long.</variable>
  <system>
    You write briefs of ${vars.words} words.
    Keep to the facts.
  </system>
  <message role="user"><![CDATA[<topic>${vars.topic}</topic>]]></message>
  <output_schema>{"type": "object"}</output_schema>
  <expect>{"structure": {"required_tags": ["brief"]}}</expect>
</template>
"""


def test_an_xml_template_reads_into_a_template_document() -> None:
    """Attributes, texts (dedented, stripped), typed values and JSON parts become the document."""
    document, lines = read_xml_template(BRIEF, "brief.xml")
    assert document == {
        "name": "brief",
        "version": "1.0",
        "format": "xml",
        "description": "A short brief.",
        "variables": {
            "topic": {"description": "What the brief is about.", "type": "string"},
            "words": {"description": "How long.", "type": "integer", "default": 150},
        },
        "system": "You write briefs of ${vars.words} words.\nKeep to the facts.",
        "messages": [{"role": "user", "content": "<topic>${vars.topic}</topic>"}],
        "examples": [{"input": {"topic": "tea", "words": 20}, "output": "Tea is a leaf."}],
        "output_schema": {"type": "object"},
        "expect": {"structure": {"required_tags": ["brief"]}},
    }
    assert lines["$.messages[0]"] == 15
    assert lines["$.examples[0].input.words"] == 6


def test_an_xml_template_renders_with_values_escaped(tmp_path: Path) -> None:
    """Loaded from a file, the XML template renders like a JSON one, values XML-escaped."""
    (tmp_path / "brief.xml").write_bytes(BRIEF)
    template = load_template("brief.xml", directory=tmp_path)
    rendered = template.render({"topic": "</topic><evil>"})
    assert [message.content for message in rendered.messages] == [
        "<topic>tea</topic>",
        "Tea is a leaf.",
        "<topic>&lt;/topic&gt;&lt;evil&gt;</topic>",
    ]
    assert template.provenance()["path"] == "brief.xml"


@pytest.mark.parametrize(
    ("xml", "problem"),
    [
        ("<template version='1'>\n<message role='user'>a", "line 2: not well-formed XML: no"),
        ("<prompt/>", "line 1: the root element must be <template>, not <prompt>"),
        (
            '<!DOCTYPE t [<!ENTITY a "b">]>\n<template/>',
            "line 1: a template may not have a DOCTYPE",
        ),
        (
            "<template version='1'>\n<message role='user'><b>x</b></message></template>",
            "line 2: <message> holds the element <b>; write markup meant for the prompt "
            "inside <![CDATA[ ... ]]>",
        ),
        (
            "<template version='1'>\n\n<prompt/></template>",
            "line 3: <prompt> is not allowed in <template> (<description>, <example>,",
        ),
        ("<template version='1' author='me'/>", "line 1: <template> has no attribute 'author'"),
        ("<template version='1'><message>x</message></template>", "line 1: <message> needs the"),
        (
            "<template version='1'><system>a</system>\n<system>b</system></template>",
            "line 2: <system> appears twice",
        ),
        (
            "<template version='1'><variable name='a'/>\n<variable name='a'/></template>",
            "line 2: the variable 'a' is declared twice",
        ),
        (
            "<template version='1'>\n<variable name='n' type='integer' default='x'/></template>",
            "line 2: 'x' is not JSON, as a integer value must be",
        ),
        ("<template version='1'>\n<expect>{oops</expect></template>", "line 2: <expect> must hold"),
        (
            "<template version='1'>\n<example><input name='a'>x</input></example></template>",
            "line 2: an <example> needs exactly one <output>",
        ),
    ],
)
def test_a_malformed_xml_template_names_the_line(xml: str, problem: str) -> None:
    """Malformed XML, a DOCTYPE, unknown elements or attributes: each names its line."""
    with pytest.raises(TemplateError, match="^" + re.escape(f"template t.xml {problem}")):
        read_xml_template(xml.encode(), "t.xml")


@pytest.mark.parametrize(
    ("xml", "problem"),
    [
        (
            "<template version='1'>\n<variable name='a'/>\n<message role='user'>${vars.b}"
            "</message></template>",
            "line 3: placeholder ${vars.b} names an undeclared variable (declared: a)",
        ),
        (
            "<template version='1'>\n<message role='user'>x</message>\n<example>\n"
            "<input name='c'>1</input>\n<output>y</output></example></template>",
            "line 4: names an undeclared variable (declared: none)",
        ),
        ("<template>\n<message role='user'>x</message></template>", "line 1: is required"),
        ("<template version='1'>\n</template>", "line 1: is required: a non-empty list"),
        (
            "<template version='1'>\n<message role='user'>x</message>\n"
            '<expect>{"constraints": {"max_word": 1}}</expect></template>',
            "line 3: unknown checker 'max_word'",
        ),
    ],
)
def test_template_problems_in_an_xml_file_name_the_line(
    tmp_path: Path, xml: str, problem: str
) -> None:
    """The checks shared with JSON templates locate their problem by the XML line."""
    (tmp_path / "t.xml").write_text(xml)
    with pytest.raises(TemplateError, match="^" + re.escape(f"template t.xml {problem}")):
        load_template("t.xml", directory=tmp_path)

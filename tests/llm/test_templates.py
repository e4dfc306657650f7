"""Prompt template files: strict variables, escaping per format, examples, schema, provenance."""

from __future__ import annotations

import hashlib
import json
import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestr8._errors import NonRetryableError, TemplateError, TemplateInputError
from orchestr8._llm._chat import ChatMessage
from orchestr8._llm._templates import (
    PromptTemplateFile,
    load_template,
)

BRIEF: dict[str, Any] = {
    "name": "brief",
    "version": "1.2.0",
    "variables": {
        "topic": {"description": "what the brief is about", "type": "string"},
        "words": {"type": "integer", "default": 150},
    },
    "system": "You write briefs of ${vars.words} words.",
    "messages": [{"role": "user", "content": "Write a brief on ${vars.topic}."}],
}


def _template(**changes: Any) -> PromptTemplateFile:
    return load_template({**BRIEF, **changes})


def _texts(messages: tuple[ChatMessage, ...]) -> list[tuple[str, Any]]:
    return [(message.role, message.content) for message in messages]


def test_render_fills_placeholders_and_defaults() -> None:
    """Given values fill their placeholders, defaults the rest; extra values are ignored."""
    rendered = _template().render({"topic": "tea", "unused": 1})
    assert rendered.system == "You write briefs of 150 words."
    assert _texts(rendered.messages) == [("user", "Write a brief on tea.")]
    assert rendered.json_schema is None


def test_a_doubled_dollar_writes_a_literal_placeholder() -> None:
    """`$${vars.x}` stays text, and `$$` before `{` is one `$`."""
    template = _template(
        messages=[{"role": "user", "content": "$${vars.topic} $$$${x} ${vars.topic}"}]
    )
    assert _texts(template.render({"topic": "t"}).messages) == [("user", "${vars.topic} $${x} t")]


def test_a_missing_variable_fails_the_render_without_retry() -> None:
    """A declared variable with no value and no default is a `TemplateInputError`."""
    with pytest.raises(TemplateInputError) as caught:
        _template().render({"subject": "tea"})
    assert isinstance(caught.value, NonRetryableError)
    assert str(caught.value) == (
        "template 'brief': variable 'topic' (what the brief is about) has no value and no "
        "default (the values given: subject)"
    )


def test_a_value_of_the_wrong_type_fails_the_render() -> None:
    """A value must be of its variable's declared type."""
    with pytest.raises(TemplateInputError, match="variable 'words' must be of type integer, got"):
        _template().render({"topic": "tea", "words": "many"})


def test_non_string_values_are_inserted_as_json() -> None:
    """A number, object or array value becomes its JSON text."""
    template = _template(variables={"topic": {}, "words": {"default": 9}})
    assert template.render({"topic": {"a": [1, None]}}).messages[0].content == (
        'Write a brief on {"a": [1, null]}.'
    )


def test_examples_come_first_as_user_and_assistant_turns() -> None:
    """Each example renders the last user message with its input, then its output."""
    template = _template(
        examples=[
            {"input": {"topic": "tea"}, "output": "Tea: a leaf."},
            {"input": {"topic": "cocoa", "words": 5}, "output": {"brief": "Cocoa."}},
        ]
    )
    assert _texts(template.render({"topic": "coffee"}).messages) == [
        ("user", "Write a brief on tea."),
        ("assistant", "Tea: a leaf."),
        ("user", "Write a brief on cocoa."),
        ("assistant", '{"brief": "Cocoa."}'),
        ("user", "Write a brief on coffee."),
    ]


def test_the_output_schema_becomes_the_calls_json_schema() -> None:
    """`output_schema` is checked at load and handed out with every render."""
    schema = {"type": "object", "required": ["brief"]}
    assert _template(output_schema=schema).render({"topic": "t"}).json_schema == schema


def test_expectations_are_compiled_with_the_template() -> None:
    """`expect` is compiled at load and kept for scoring."""
    template = _template(expect={"constraints": {"max_words": 10}})
    assert template.expect is not None
    assert template.expect.constraints[0].name == "max_words"


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        (
            {"messages": [{"role": "user", "content": "On ${vars.topik}"}]},
            "$.messages[0].content: placeholder ${vars.topik} names an undeclared variable "
            "(declared: topic, words)",
        ),
        (
            {"system": "${input.topic}"},
            "$.system: invalid placeholder ${input.topic}: a template placeholder is ${vars.NAME}",
        ),
        ({"system": "${vars.topic"}, "$.system: invalid placeholder ${vars.topic: a template"),
        ({"version": None}, "$.version: is required: a non-empty string"),
        ({"version": 2}, "$.version: must be a non-empty string, got 2"),
        ({"format": "yaml"}, "$.format: must be one of text, json, xml"),
        ({"prompt": "x"}, "$.prompt: unknown key (known: description, examples, expect,"),
        ({"variables": []}, "$.variables: must be an object of variable declarations"),
        ({"variables": {"a-b": {}}}, "$.variables['a-b']: 'a-b' is not a variable name"),
        ({"variables": {"a": "x"}}, '$.variables.a: must be an object such as {"description"'),
        ({"variables": {"a": {"kind": 1}}}, "$.variables.a: unknown key 'kind' (known: default,"),
        ({"variables": {"a": {"description": 1}}}, "$.variables.a.description: must be a string"),
        ({"variables": {"a": {"type": "str"}}}, "$.variables.a.type: must be one of array, bo"),
        (
            {"variables": {"a": {"type": "integer", "default": "1"}}},
            "$.variables.a.default: is not of the declared type integer",
        ),
        ({"messages": []}, '$.messages: is required: a non-empty list of {"role", "content"}'),
        ({"messages": [{"role": "user"}]}, "$.messages[0]: must be an object with exactly"),
        (
            {"messages": [{"role": "system", "content": "x"}]},
            "$.messages[0].role: must be 'user' or 'assistant' (system text goes in 'system')",
        ),
        ({"messages": [{"role": "user", "content": []}]}, "$.messages[0].content: must be a str"),
        (
            {"messages": [{"role": "assistant", "content": "x"}]},
            "$.messages: needs at least one user message",
        ),
        ({"output_schema": {"type": 5}}, "$.output_schema: is not a valid JSON Schema"),
        ({"expect": {"constraints": {"max_word": 1}}}, "$.expect.constraints: unknown checker"),
        ({"examples": {}}, '$.examples: must be a list of {"input", "output"} objects'),
        ({"examples": [{"input": {}}]}, "$.examples[0]: must be an object with exactly 'input'"),
        (
            {"examples": [{"input": [], "output": ""}]},
            "$.examples[0].input: must be an object of variable values",
        ),
        (
            {"examples": [{"input": {"topik": "x"}, "output": ""}]},
            "$.examples[0].input.topik: names an undeclared variable (declared: topic, words)",
        ),
        (
            {"examples": [{"input": {}, "output": ""}]},
            "$.examples[0].input: template 'brief': variable 'topic' (what the brief is about) "
            "has no value",
        ),
    ],
)
def test_an_unusable_template_names_the_json_path(changes: dict[str, Any], problem: str) -> None:
    """Each problem is a `TemplateError` naming the template and the JSON path."""
    with pytest.raises(TemplateError, match="^" + re.escape("template (inline): " + problem)):
        _template(**changes)


def test_a_template_must_be_an_object() -> None:
    """A file holding a JSON array is refused at `$`."""
    with pytest.raises(TemplateError, match=re.escape("template (inline): $: a template must be")):
        PromptTemplateFile([], path=None, sha256="", lines=None)


def test_an_inline_template_that_is_not_json_is_refused() -> None:
    """Inline values JSON cannot hold are named by path."""
    with pytest.raises(TemplateError, match=re.escape("template (inline): $.version: numbers")):
        load_template({**BRIEF, "version": float("nan")})


def test_json_format_inserts_json_escaped_text() -> None:
    """In a json template a value stays inside its JSON string."""
    template = _template(
        format="json",
        system="Answer in JSON.",
        messages=[{"role": "user", "content": '{"task": "brief", "topic": "${vars.topic}"}'}],
    )
    content = template.render({"topic": 'a", "evil": "1'}).messages[0].content
    assert json.loads(str(content)) == {"task": "brief", "topic": 'a", "evil": "1'}


def test_json_format_refuses_a_placeholder_outside_a_string() -> None:
    """A json-format text must stay JSON once filled, so a bare placeholder is a load error."""
    with pytest.raises(TemplateError, match=re.escape("$.messages[0].content: a json-format")):
        _template(
            format="json",
            system="Answer in JSON.",
            messages=[{"role": "user", "content": '{"n": ${vars.words}}'}],
        )


def test_xml_format_keeps_a_value_inside_its_element() -> None:
    """An XML value cannot close its element or open another."""
    template = _template(
        format="xml",
        messages=[{"role": "user", "content": "<doc><topic>${vars.topic}</topic></doc>"}],
    )
    content = template.render({"topic": "</topic><evil/>"}).messages[0].content
    assert content == "<doc><topic>&lt;/topic&gt;&lt;evil/&gt;</topic></doc>"


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(), children, max_size=3)
    ),
    max_leaves=8,
)
_XML = _template(
    format="xml", messages=[{"role": "user", "content": "<doc><v>${vars.topic}</v></doc>"}]
)
_JSON = _template(
    format="json",
    system="Answer in JSON.",
    variables={"topic": {}},
    messages=[{"role": "user", "content": '{"v": "${vars.topic}", "w": 1}'}],
)


@given(st.text())
def test_no_string_breaks_out_of_its_xml_element(value: str) -> None:
    """Whatever a value holds, the filled XML parses to the one element, holding the value.

    Only characters XML 1.0 cannot hold at all change (to U+FFFD); the length never changes.
    """
    content = _XML.render({"topic": value}).messages[0].content
    root = ElementTree.fromstring(str(content))
    assert [child.tag for child in root] == ["v"]
    text = root[0].text or ""
    assert len(text) == len(value)
    for kept, given_character in zip(text, value, strict=True):
        assert kept in (given_character, "\ufffd")


@given(_JSON_VALUES)
def test_no_value_breaks_out_of_its_json_string(value: Any) -> None:
    """Whatever a value is, the filled JSON parses and its string holds the value's text."""
    content = _JSON.render({"topic": value}).messages[0].content
    expected = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    assert json.loads(str(content)) == {"v": expected, "w": 1}


def test_a_template_file_is_read_relative_to_the_directory(tmp_path: Path) -> None:
    """A relative path resolves against `directory`; provenance keeps the path as written."""
    data = json.dumps(BRIEF, indent=2).encode()
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "brief.json").write_bytes(data)
    template = load_template("prompts/brief.json", directory=tmp_path)
    assert template.provenance() == {
        "path": "prompts/brief.json",
        "version": "1.2.0",
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    assert repr(template) == "<PromptTemplateFile prompts/brief.json version='1.2.0'>"
    absolute = load_template(tmp_path / "prompts" / "brief.json")
    assert absolute.sha256 == template.sha256


def test_an_inline_templates_hash_is_of_its_canonical_json() -> None:
    """The order of keys does not change an inline template's sha256; its content does."""
    reordered = dict(reversed(list(BRIEF.items())))
    assert load_template(reordered).sha256 == load_template(BRIEF).sha256
    assert load_template({**BRIEF, "version": "2"}).sha256 != load_template(BRIEF).sha256
    assert load_template(BRIEF).provenance()["path"] is None


def test_a_relative_path_without_a_directory_says_why() -> None:
    """A workflow without a file (e.g. over REST) cannot use a relative template path."""
    with pytest.raises(TemplateError, match="a relative path needs the workflow file's directory"):
        load_template("prompts/brief.json")


@pytest.mark.parametrize(
    ("name", "data", "problem"),
    [
        ("t.yaml", b"", "template t.yaml: the file must end in .json or .xml"),
        ("t.json", b"\xff", "template t.json: not UTF-8 text"),
        ("t.json", b'{\n  "a": ,\n}', "template t.json line 2 column 8: not JSON: Expecting value"),
        ("t.json", b'{"a": NaN}', "template t.json: not strict JSON"),
        ("t.json", b'{"a": 1, "a": 2}', "template t.json: $: duplicate key 'a'"),
        ("t.json", b'{"version": "1"}', "template t.json: $.messages: is required"),
    ],
)
def test_an_unusable_file_names_the_file(
    tmp_path: Path, name: str, data: bytes, problem: str
) -> None:
    """Unreadable, non-JSON or invalid files are `TemplateError`s naming the file."""
    (tmp_path / name).write_bytes(data)
    with pytest.raises(TemplateError, match="^" + re.escape(problem)):
        load_template(name, directory=tmp_path)


def test_a_missing_file_is_a_template_error(tmp_path: Path) -> None:
    """A file that cannot be read says so."""
    with pytest.raises(TemplateError, match=r"template gone\.json: cannot be read: No such file"):
        load_template("gone.json", directory=tmp_path)

"""Tests of `_workflow_redaction`: a redacted workflow document stays a valid workflow."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from orchestr8._observability._redaction import REDACTED, Redactor
from orchestr8._workflow._codec import load_workflow

KEY = "sk-ant-api03-abcdefgh12345678"


def test_a_workflow_document_stays_a_valid_workflow() -> None:
    """Keys count in step inputs, agent configs and the output; a schema is never a secret."""
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {"api_key": {"type": "string"}, "password": {"type": "string"}},
    }
    document: dict[str, Any] = {
        "schema_version": "1.0",
        "name": "keyed",
        "inputs": schema,
        "steps": [
            {
                "id": "token",
                "agent": {"id": "echo", "config": {}},
                "input": {"api_key": "literal-key-1", "password": "${inputs.password}"},
            },
            {
                "id": "b",
                "agent": {"id": "fail", "config": {"message": "uses " + KEY, "token": "abcdefgh"}},
            },
        ],
        "output": {"secret": "inline-out", "echo": "${steps.token.output}"},
    }
    redacted: dict[str, Any] = Redactor(secret_values=[KEY]).redact_workflow(document)
    assert redacted["inputs"] is schema
    assert redacted["steps"][0]["id"] == "token"
    assert redacted["steps"][0]["input"] == {"api_key": REDACTED, "password": "${inputs.password}"}
    assert redacted["steps"][1]["agent"]["config"] == {"message": "uses ***", "token": REDACTED}
    assert redacted["output"] == {"secret": REDACTED, "echo": "${steps.token.output}"}
    assert document["steps"][0]["input"]["api_key"] == "literal-key-1"
    load_workflow(redacted)


def test_an_inline_child_workflow_is_redacted_as_a_workflow_of_its_own() -> None:
    """A sub-workflow step's inline child gets its step inputs and agent configs redacted by key."""
    child: dict[str, Any] = {
        "schema_version": "1.1",
        "name": "child",
        "inputs": {"type": "object", "properties": {"token": {"type": "string"}}},
        "steps": [{"id": "a", "agent": {"id": "echo", "config": {"token": "abcdefgh"}}}],
    }
    document: dict[str, Any] = {
        "schema_version": "1.1",
        "name": "parent",
        "steps": [{"id": "s", "workflow": child, "input": {"token": "literal"}}],
    }
    redacted: dict[str, Any] = Redactor().redact_workflow(document)
    step = redacted["steps"][0]
    assert step["input"] == {"token": REDACTED}
    assert step["workflow"]["steps"][0]["agent"]["config"] == {"token": REDACTED}
    assert step["workflow"]["inputs"] is child["inputs"]
    load_workflow(redacted)


def test_a_document_with_nothing_to_redact_is_returned_as_is() -> None:
    """No copy of a clean workflow document: the journal records one per execution."""
    document = {
        "name": "n",
        "steps": [{"id": "a", "agent": {"id": "echo", "config": {"x": 1}}, "input": {"q": "text"}}],
    }
    assert Redactor(secret_values=[KEY]).redact_workflow(document) is document


_KEYS = st.sampled_from(["api_key", "token", "password", "topic", "Authorization", "n"])
_VALUES = st.recursive(
    st.none() | st.integers() | st.sampled_from(["text", KEY, "${inputs.topic}", "Bearer x1234"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_KEYS, children, max_size=3),
    max_leaves=8,
)


@given(
    properties=st.dictionaries(
        _KEYS, st.sampled_from([{"type": "string"}, {"default": KEY}]), max_size=4
    ),
    inputs=st.lists(st.dictionaries(_KEYS, _VALUES, max_size=3), min_size=1, max_size=3),
    configs=st.lists(st.dictionaries(_KEYS, _VALUES, max_size=3), min_size=1, max_size=3),
)
def test_redacting_a_workflow_always_leaves_a_loadable_workflow_with_the_same_structure(
    properties: dict[str, Any], inputs: list[dict[str, Any]], configs: list[dict[str, Any]]
) -> None:
    """Whatever keys and values it holds, the journaled copy loads, with its schema and steps."""
    schema = {"type": "object", "properties": {**properties, "topic": {"type": "string"}}}
    steps = [
        {"id": f"token{index}", "agent": {"id": "echo", "config": config}, "input": step_input}
        for index, (step_input, config) in enumerate(zip(inputs, configs, strict=False))
    ]
    document = {"schema_version": "1.0", "name": "keyed", "inputs": schema, "steps": steps}
    redacted = Redactor(secret_values=[KEY]).redact_workflow(document)
    loaded = load_workflow(redacted)
    assert set(loaded.inputs["properties"]) == set(schema["properties"])
    assert [step.id for step in loaded.steps] == [step["id"] for step in steps]
    assert KEY not in json.dumps(redacted)

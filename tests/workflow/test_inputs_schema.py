"""Tests for reading a workflow's `inputs` JSON Schema."""

from __future__ import annotations

from orchestr8._workflow._inputs_schema import declared_names


def test_declared_names_follow_properties_and_additional_properties() -> None:
    """Names are checked only when the schema declares properties and forbids others."""
    assert declared_names({"type": "object"}) is None
    assert declared_names({"properties": {"a": {}}, "additionalProperties": True}) is None
    known = declared_names({"properties": {"a": {}}, "patternProperties": {"^x_": {}}})
    assert known is not None
    assert (known("a"), known("x_1"), known("b")) == (True, True, False)

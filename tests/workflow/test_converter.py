"""Tests for the strict converter between workflow documents and the AST."""

from __future__ import annotations

from typing import Any

import cattrs
import pytest

from orchestr8._workflow._converter import converter
from orchestr8._workflow._document import Workflow


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (None, str),
        (3, str),
        (2.9, int),
        (True, int),
        (True, float),
        ("1", float),
        (1, bool),
        ("a", tuple[str, ...]),
    ],
)
def test_the_converter_itself_is_strict(value: Any, kind: Any) -> None:
    """The one converter refuses values of the wrong JSON type even without the schema."""
    with pytest.raises((TypeError, ValueError, cattrs.BaseValidationError)):
        converter.structure(value, kind)


def test_the_converter_locates_errors_inside_arrays_by_index() -> None:
    """Errors found while structuring array items keep the item's index in their path."""
    document = {
        "schema_version": "1.0",
        "name": "w",
        "steps": [
            {"id": "a", "agent": "echo"},
            {"id": "b", "agent": "echo", "policy": {"timeout": 10**400}},
            {"id": "c", "agent": "echo", "depends_on": ["a", 5]},
        ],
    }
    with pytest.raises(cattrs.BaseValidationError) as caught:
        converter.structure(document, Workflow)
    paths = [message.rpartition(" @ ")[2] for message in cattrs.transform_error(caught.value)]
    assert sorted(paths) == ["$.steps[1].policy.timeout", "$.steps[2].depends_on[1]"]

"""The workflows docs/budgets.md shows are valid: a reader can copy each one and run it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from orchestr8 import load_workflow

BUDGETS = Path(__file__).parent.parent / "docs" / "budgets.md"
_BLOCK = re.compile(r"```json\n(.*?)```", re.DOTALL)


def documented_workflows() -> list[str]:
    """Every ```json block of docs/budgets.md that is a whole workflow document."""
    return [
        block
        for block in _BLOCK.findall(BUDGETS.read_text(encoding="utf-8"))
        if '"schema_version"' in block
    ]


def test_the_page_shows_a_workflow() -> None:
    """The page opens with a whole workflow, not only fragments."""
    assert documented_workflows()


@pytest.mark.parametrize("block", documented_workflows())
def test_each_documented_workflow_validates(block: str) -> None:
    """Each whole workflow on the page loads without a problem."""
    load_workflow(json.loads(block))

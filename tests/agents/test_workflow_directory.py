"""Agents learn the directory of the workflow file whose agents are being built."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from orchestr8 import Agent, AgentContext, AgentRegistry, workflow_directory
from orchestr8._execution._admission import admit_workflow

seen: list[Path | None] = []


class Looks(Agent):
    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        seen.append(workflow_directory())

    async def run(self, input: Any, context: AgentContext) -> Any:
        return input


def test_no_directory_outside_admission() -> None:
    """Outside admission there is no workflow file."""
    assert workflow_directory() is None


def test_a_file_and_its_child_file_each_give_their_own_directory(tmp_path: Path) -> None:
    """A workflow file's agents see its directory; a child file's agents see the child's."""
    seen.clear()
    (tmp_path / "children").mkdir()
    child = {"schema_version": "1.1", "name": "child", "steps": [{"id": "c", "agent": "looks"}]}
    (tmp_path / "children" / "child.json").write_text(json.dumps(child))
    parent = {
        "schema_version": "1.1",
        "name": "parent",
        "steps": [
            {"id": "p", "agent": "looks"},
            {"id": "sub", "workflow": "children/child.json"},
            {
                "id": "inline",
                "workflow": {
                    "schema_version": "1.1",
                    "name": "inline",
                    "steps": [{"id": "i", "agent": "looks"}],
                },
            },
        ],
    }
    path = tmp_path / "parent.json"
    path.write_text(json.dumps(parent))
    admit_workflow(path, AgentRegistry({"looks": Looks}))
    assert seen == [tmp_path.resolve(), (tmp_path / "children").resolve(), tmp_path.resolve()]
    assert workflow_directory() is None


def test_a_document_without_a_file_has_no_directory() -> None:
    """A document (from REST, or built in code) has no directory to resolve against."""
    seen.clear()
    admit_workflow(
        {"schema_version": "1.1", "name": "doc", "steps": [{"id": "a", "agent": "looks"}]},
        AgentRegistry({"looks": Looks}),
    )
    assert seen == [None]

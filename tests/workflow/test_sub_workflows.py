"""`_sub_workflows`: a step's child workflow (a path, a name or inline), checked at load."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestr8._errors import WorkflowValidationError
from orchestr8._workflow._codec import (
    load_workflow,
    parse_workflow,
    validate_workflow_document,
    workflow_to_json,
)
from orchestr8._workflow._document import Step, Workflow
from orchestr8._workflow._sub_workflows import (
    MAX_SUB_WORKFLOW_DEPTH,
    SubWorkflow,
    WorkflowCatalog,
    to_sub_workflow,
)

CHILD: dict[str, Any] = {
    "schema_version": "1.1",
    "name": "child",
    "inputs": {"type": "object", "properties": {"text": {"type": "string"}}},
    "steps": [{"id": "a", "agent": "echo", "input": "${inputs.text}"}],
    "output": "${steps.a.output}",
}


def parent(workflow: Any, **step: Any) -> dict[str, Any]:
    """A "1.1" parent whose one step runs `workflow`."""
    return {
        "schema_version": "1.1",
        "name": "parent",
        "steps": [{"id": "s", "workflow": workflow, "input": {"text": "hi"}, **step}],
        "output": "${steps.s.output}",
    }


def write(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def problems(source: Any, **options: Any) -> list[str]:
    with pytest.raises(WorkflowValidationError) as caught:
        load_workflow(source, **options)
    return [str(problem) for problem in caught.value.problems]


def test_a_path_is_loaded_relative_to_the_parent_file(tmp_path: Path) -> None:
    """`"workflow": "child.json"` loads the file beside the parent, whatever the working dir."""
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub" / "child.json", CHILD)
    loaded = load_workflow(write(tmp_path / "parent.json", parent("sub/child.json")))
    sub = loaded.steps[0].workflow
    assert sub is not None
    assert sub.reference == "sub/child.json"
    assert sub.workflow is not None
    assert sub.workflow.name == "child"
    assert sub.label == "sub/child.json"
    assert loaded.steps[0].agent is None


def test_a_loaded_child_is_written_inline_and_loads_back_equal(tmp_path: Path) -> None:
    """The codec writes the child as loaded (the journal keeps what ran); it loads back equal."""
    write(tmp_path / "child.json", CHILD)
    loaded = load_workflow(write(tmp_path / "parent.json", parent("child.json")))
    document = workflow_to_json(loaded)
    assert document["steps"][0]["workflow"] == CHILD
    again = load_workflow(document)
    assert again == loaded
    assert again.steps[0].workflow is not None
    assert again.steps[0].workflow.label == "child"


def test_an_inline_child_is_checked_with_its_problems_at_nested_paths() -> None:
    """Problems of an inline child are reported at `$.steps[i].workflow...`, all at once."""
    child = {**CHILD, "steps": [{"id": "a", "agent": "echo"}, {"id": "a", "agent": ""}]}
    assert problems(parent(child)) == [
        "$.steps[0].workflow.steps[1].agent: must not be empty",
        "$.steps[0].workflow.steps[1].id: duplicate step id 'a' (also $.steps[0].id)",
    ]


def test_a_step_has_an_agent_or_a_workflow_never_both_nor_neither() -> None:
    """Both, or neither, is a problem at the step's path, reported with the others."""
    both = parent(CHILD, agent="echo")
    assert problems(both) == [
        "$.steps[0]: a step runs an agent, a workflow or a plan: only one of them"
    ]
    neither = {"schema_version": "1.1", "name": "p", "steps": [{"id": "s"}, {"id": 3}]}
    assert "$.steps[0]: a step needs an agent, a workflow or a plan" in problems(neither)


def test_a_missing_child_file_names_the_file(tmp_path: Path) -> None:
    """A path to no file is a problem at the step's `workflow`, naming the file."""
    found = problems(write(tmp_path / "parent.json", parent("nowhere.json")))
    assert found == ["$.steps[0].workflow: in nowhere.json: $: no such file"]


def test_a_path_in_a_document_without_a_file_is_refused() -> None:
    """A document given as JSON has no directory: a relative path in it is refused, saying why."""
    [found] = problems(parent("child.json"))
    assert found.startswith("$.steps[0].workflow: the file path 'child.json' is refused")
    assert "inline the child document or use a registered name" in found


def test_parse_workflow_refuses_a_relative_path_naming_the_source() -> None:
    """`parse_workflow` has no file either: its error names the source it was given."""
    with pytest.raises(WorkflowValidationError) as caught:
        parse_workflow(parent("child.json"), source="request body")
    assert caught.value.source == "request body"
    assert caught.value.problems[0].path == "$.steps[0].workflow"


@pytest.mark.parametrize(("literal", "kind"), [("a string", "a string"), ([1], "an array")])
def test_a_literal_input_that_is_no_object_is_a_load_problem(literal: Any, kind: str) -> None:
    """A sub-workflow step's literal input is its child's inputs: one not an object never runs."""
    found = problems(parent(CHILD, input=literal))
    assert found == [
        "$.steps[0].input: a sub-workflow step's input is its child's inputs: an object (or"
        f" null), not {kind}"
    ]
    assert load_workflow(parent(CHILD, input=None)).steps[0].workflow is not None
    assert load_workflow(parent(CHILD, input="${inputs.x}")).steps[0].workflow is not None


def test_an_absolute_path_from_a_document_without_a_file_is_refused_unread(
    tmp_path: Path,
) -> None:
    """A request body may not read server files: existing or not, the same refusal, no content."""
    secret = {
        "schema_version": "sk-SECRET",
        "name": "x",
        "steps": [{"id": "a", "agent": "ghp_TOKEN"}],
    }
    existing = write(tmp_path / "secret.json", secret)
    missing = tmp_path / "missing.json"
    for document in (parent(str(existing)), json.dumps(parent(str(existing)))):
        [found] = problems(document)
        assert "sk-SECRET" not in found
        assert "ghp_TOKEN" not in found
        assert found == f"$.steps[0].workflow: the file path '{existing}' is refused" + (
            ": this document was not loaded from a file, so it may not read sub-workflow files"
            " (inline the child document or use a registered name)"
        )
    [for_missing] = validate_workflow_document(parent(str(missing)))
    assert for_missing.message == found.split(": ", 1)[1].replace(str(existing), str(missing))


def test_an_absolute_path_works_from_a_document_loaded_from_a_file(tmp_path: Path) -> None:
    """A file's document may name a child by absolute path (the file's author owns the server)."""
    child = write(tmp_path / "child.json", CHILD)
    loaded = load_workflow(write(tmp_path / "elsewhere.json", parent(str(child))))
    assert loaded.steps[0].workflow is not None


def test_a_workflow_including_itself_directly_or_not_is_a_cycle(tmp_path: Path) -> None:
    """a.json → b.json → a.json is refused, naming the loop; so is a file including itself."""
    write(tmp_path / "a.json", parent("b.json"))
    write(tmp_path / "b.json", parent("a.json"))
    [found] = problems(tmp_path / "a.json")
    assert found.startswith("$.steps[0].workflow: in b.json: $.steps[0].workflow:")
    assert "the workflow includes itself: a.json → b.json → a.json ('a.json')" in found
    write(tmp_path / "self.json", parent("self.json"))
    assert problems(tmp_path / "self.json") == [
        "$.steps[0].workflow: the workflow includes itself: self.json → self.json ('self.json')"
    ]


def test_a_registered_name_loads_and_an_unknown_one_suggests_a_near_name(tmp_path: Path) -> None:
    """Names come from the catalog (a path, text or document each); typos get a did-you-mean."""
    catalog = WorkflowCatalog(
        {"summarise": write(tmp_path / "child.json", CHILD), "inline": CHILD},
        entry_points=False,
    )
    loaded = load_workflow(parent("summarise"), workflows=catalog)
    assert loaded.steps[0].workflow is not None
    assert loaded.steps[0].workflow.label == "summarise"
    assert load_workflow(parent("inline"), workflows=catalog).steps[0].workflow is not None
    assert problems(parent("sumarise"), workflows=catalog) == [
        "$.steps[0].workflow: unknown workflow name 'sumarise' (did you mean 'summarise'?)"
    ]
    assert problems(parent("other"), workflows=catalog) == [
        "$.steps[0].workflow: unknown workflow name 'other' (registered: inline, summarise)"
    ]


def test_a_plain_mapping_of_names_works_as_well_as_a_catalog() -> None:
    """`load_workflow(..., workflows={...})` takes the names as a mapping too."""
    loaded = load_workflow(parent("child"), workflows={"child": CHILD})
    assert loaded.steps[0].workflow is not None
    assert loaded.steps[0].workflow.label == "child"


def test_a_name_that_includes_itself_is_a_cycle() -> None:
    """A registered workflow whose step names it again is refused."""
    catalog = WorkflowCatalog({"loop": json.dumps(parent("loop"))}, entry_points=False)
    [found] = problems(parent("loop"), workflows=catalog)
    assert "the workflow includes itself: loop → loop ('loop')" in found


def test_names_come_from_entry_points_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """The `orchestr8.workflows` entry points name workflows; a broken one is a clear problem."""

    class EntryPoint:
        def __init__(self, name: str, value: Any) -> None:
            self.name, self.value, self._loaded = name, f"pkg:{name}", value

        def load(self) -> Any:
            if isinstance(self._loaded, Exception):
                raise self._loaded
            return self._loaded

    found = [
        EntryPoint("good", CHILD),
        EntryPoint("broken", ImportError("no module pkg")),
        EntryPoint("odd", 42),
    ]
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: found)
    catalog = WorkflowCatalog()
    assert catalog.names() == ["broken", "good", "odd"]
    assert load_workflow(parent("good"), workflows=catalog).steps[0].workflow is not None
    assert problems(parent("broken"), workflows=catalog) == [
        "$.steps[0].workflow: workflow 'broken': the entry point 'pkg:broken' cannot be loaded:"
        " no module pkg"
    ]
    assert problems(parent("odd"), workflows=catalog) == [
        "$.steps[0].workflow: workflow 'odd': the entry point 'pkg:odd' is not a workflow path"
        " or document (it is a int)"
    ]


def test_sub_workflows_need_schema_version_1_1() -> None:
    """A "1.0" document may not use `workflow`; the problem names the field and the version."""
    document = {**parent(CHILD), "schema_version": "1.0"}
    assert problems(document) == [
        '$.steps[0].workflow: "workflow" needs schema_version "1.1" (this document says "1.0")'
    ]


def test_a_workflow_value_that_is_neither_text_nor_object_is_refused_by_the_schema() -> None:
    """A number is refused where a path, a name or a document belongs."""
    found = validate_workflow_document(parent(7))
    assert [str(problem) for problem in found] == [
        "$.steps[0].workflow: expected a string or an object, got an integer"
    ]


def nested(depth: int) -> dict[str, Any]:
    """A workflow whose children nest inline `depth` levels deep."""
    document: dict[str, Any] = CHILD
    for _ in range(depth):
        document = parent(document)
    return document


@given(st.integers(min_value=1, max_value=MAX_SUB_WORKFLOW_DEPTH + 3))
def test_nesting_loads_up_to_the_depth_limit_and_no_deeper(depth: int) -> None:
    """Children nest up to `MAX_SUB_WORKFLOW_DEPTH` levels; deeper is one problem at the limit."""
    if depth <= MAX_SUB_WORKFLOW_DEPTH:
        loaded = load_workflow(nested(depth))
        for _ in range(depth):
            sub = loaded.steps[0].workflow
            assert sub is not None
            assert sub.workflow is not None
            loaded = sub.workflow
        assert loaded.name == "child"
    else:
        path = "$" + ".steps[0].workflow" * (MAX_SUB_WORKFLOW_DEPTH + 1)
        assert problems(nested(depth)) == [
            f"{path}: sub-workflows nest deeper than {MAX_SUB_WORKFLOW_DEPTH} levels"
        ]


def test_python_built_steps_take_a_loaded_workflow_only() -> None:
    """`Step(workflow=Workflow(...))` runs it inline; a raw document is refused with the reason."""
    child = load_workflow(CHILD)
    step = Step(id="s", workflow=child)
    assert step.workflow == SubWorkflow(None, child)
    assert step.workflow is not None
    assert step.workflow.label == "child"
    assert to_sub_workflow(step.workflow) is step.workflow
    with pytest.raises(TypeError, match="load documents with load_workflow"):
        Step(id="s", workflow=CHILD)
    built = Workflow(name="p", schema_version="1.1", steps=[step])
    assert built.steps[0].workflow is step.workflow


def test_sub_workflow_equality_follows_the_child_workflow() -> None:
    """Two references to equal children are equal and hash alike; other values are not."""
    child = load_workflow(CHILD)
    one, two = SubWorkflow("a.json", child), SubWorkflow(None, load_workflow(CHILD))
    assert one == two
    assert hash(one) == hash(two)
    assert one != "a.json"
    assert repr(one) == "SubWorkflow('a.json', 'a.json')"
    assert SubWorkflow(None, None).label == "inline"
